#![doc = include_str!("../guides/README.md")]
// Each guide is a module whose documentation is the guide's markdown (in `guides/`, inside the
// package so that `cargo package` and docs.rs have it). Its Rust blocks run as doctests.

macro_rules! guides {
    ($($name:ident => $file:literal),* $(,)?) => {
        $(
            #[doc = include_str!(concat!("../guides/", $file))]
            pub mod $name {}
        )*
    };
}

guides! {
    getting_started => "getting-started.md",
    handlers_and_extractors => "handlers-and-extractors.md",
    rooms_and_broadcasts => "rooms-and-broadcasts.md",
    acks_and_timeouts => "acks-and-timeouts.md",
    middlewares => "middlewares.md",
    sessions_and_auth => "sessions-and-auth.md",
    graceful_shutdown => "graceful-shutdown.md",
    connection_state_recovery => "connection-state-recovery.md",
    many_nodes => "many-nodes.md",
    from_node => "from-node.md",
    from_socketioxide => "from-socketioxide.md",
}
