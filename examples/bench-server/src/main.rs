//! Belfry as the benchmark harness (`shared/bench/CONTRACT.md`) expects a server: `echo`,
//! `ack`, `join` and `bcast` on `/`, listening on `127.0.0.1:$PORT` with a backlog of 1024.
//!
//! ```text
//! cargo build --release -p bench-server
//! SERVERS="socketioxide node rawws belfry" SERVER_CMD_belfry=target/release/bench-server \
//!     shared/bench/run.sh
//! ```
//!
//! Written as a user would: default options but `max_payload` (1 MB, the contract's), handlers
//! as plain async functions of extractors.
use axum::serve::ListenerExt;
use belfry::{
    AckSender, SocketIo, SocketRef,
    extract::{Args, Data},
};
use serde_json::Value;

async fn on_connect(socket: SocketRef) {
    // echo: the same arguments back to the sender.
    socket.on("echo", |socket: SocketRef, args: Args| async move {
        let _ = socket.emit("echo", &args);
    });
    // ack: acknowledge with the same arguments.
    socket.on("ack", |args: Args, ack: AckSender| async move {
        let _ = ack.send(&args);
    });
    // join: join the room, then ack with no arguments.
    socket.on(
        "join",
        |socket: SocketRef, Data(room): Data<String>, ack: AckSender| async move {
            socket.join(room);
            let _ = ack.send(&());
        },
    );
    // bcast: `msg` to the room but the sender, then ack once queued for every recipient.
    socket.on(
        "bcast",
        |socket: SocketRef, Data((room, payload)): Data<(String, Value)>, ack: AckSender| async move {
            let _ = socket.to(room).emit("msg", &payload);
            let _ = ack.send(&());
        },
    );
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let (layer, io) = SocketIo::builder().max_payload(1_000_000).build_layer();
    io.ns("/", on_connect);
    let app = axum::Router::new().layer(layer);
    // tokio's `TcpListener::bind` listens with a backlog of 128; the contract asks for ≥ 511.
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(std::net::SocketAddr::from(([127, 0, 0, 1], port)))?;
    // Small frames go out at once rather than waiting for the peer's ack (Nagle's algorithm is
    // off: Node's http server does the same by default).
    let listener = socket.listen(1024)?.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    // Ctrl-C ends the process normally (so that profilers such as heaptrack can write their
    // data); the harness stops it with SIGTERM.
    //
    // The accept loop runs on a worker, not on the main thread that `#[tokio::main]` blocks on:
    // with one core, a connection accepted on the main thread is handed to the worker through
    // the runtime's shared queue and a wake-up of the worker's thread, about a tenth of the
    // server's CPU per connection (`loadgen connect --n 10000`, alternating runs).
    let server = axum::serve(listener, app).with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    });
    tokio::spawn(server.into_future())
        .await
        .map_err(std::io::Error::other)?
}
