//! Instruments a server for the Socket.IO Admin UI (`@socket.io/admin-ui`), as Node's
//! `instrument(io, opts)` does (feature `admin`).
//!
//! The UI (hosted at <https://admin.socket.io>, or its files from the npm package served by your
//! app) connects to the `/admin` namespace. Belfry then sends it, as Node's instrumentation:
//! `config` (the features), `all_sockets` and live `socket_connected`, `socket_disconnected`,
//! `socket_updated`, `room_joined`, `room_left`, `event_received`, `event_sent` (in development
//! mode), and `server_stats` every 2 seconds; it obeys the UI's `emit`, `join`, `leave` and
//! `_disconnect` commands (unless read-only).
//!
//! ```
//! use belfry::{SocketIo, admin::{AdminAuth, AdminOptions}};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), belfry::admin::AdminError> {
//! let (_layer, io) = SocketIo::new_layer();
//! // The password as a bcrypt hash, as Node's option takes it (here: "changeit").
//! let hash = "$2b$10$iY.XPxgARsemH1.30mM5MeOuBRmC8xu0DmM9dg8KlwYzO4plFv/Ka";
//! belfry::admin::instrument(&io, AdminOptions::new(AdminAuth::basic("admin", hash)))?;
//! # Ok(()) }
//! ```
//!
//! Left out compared to Node: sessions live in memory only (no Redis store), and `all_sockets`
//! lists this server's sockets (each server of a cluster sends its own `server_stats`).

use std::{sync::Arc, time::Instant};

use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::{SocketIo, SocketRef, extract::Data, io::WeakSocketIo};

mod auth;
mod commands;
mod options;
mod reports;
mod serialize;

use auth::Sessions;
pub use options::{AdminAuth, AdminError, AdminOptions, Mode};
use reports::{AggregatedEvent, stats_loop};
use serialize::serialize;

/// Instruments `io` for the Admin UI: registers the admin namespace (with its authentication
/// middleware), reports sockets, rooms and events, and sends `server_stats` every 2 seconds
/// while the server lives.
///
/// # Errors
///
/// An invalid password hash, a server instrumented already, or no Tokio runtime.
pub fn instrument(io: &SocketIo, options: AdminOptions) -> Result<(), AdminError> {
    if let AdminAuth::Basic { password_hash, .. } = &options.auth
        && password_hash.parse::<bcrypt::HashParts>().is_err()
    {
        return Err(AdminError::InvalidHash);
    }
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| AdminError::NoRuntime)?;
    let mut features: Vec<&str> = if options.readonly {
        Vec::new()
    } else {
        vec![
            "EMIT",
            "JOIN",
            "LEAVE",
            "DISCONNECT",
            "MJOIN",
            "MLEAVE",
            "MDISCONNECT",
        ]
    };
    features.push("AGGREGATED_EVENTS");
    let development = options.mode == Mode::Development;
    if development {
        features.push("ALL_EVENTS");
    }
    let hostname = hostname();
    let admin = Arc::new(Admin {
        io: io.downgrade(),
        namespace: options.namespace.clone(),
        development,
        features,
        readonly: options.readonly,
        auth: options.auth,
        server_id: options.server_id.unwrap_or_else(|| hostname.clone()),
        hostname,
        started: Instant::now(),
        events: Mutex::new(Vec::new()),
        sessions: Mutex::new(Sessions::default()),
    });
    if !io.set_observer(admin.clone()) {
        return Err(AdminError::AlreadyInstrumented);
    }
    let on_connect = admin.clone();
    let guard = admin.clone();
    io.ns(options.namespace, move |socket: SocketRef| {
        let admin = on_connect.clone();
        async move { admin.on_connection(&socket) }
    })
    .middleware(move |socket: SocketRef, Data(auth): Data<Value>| {
        let admin = guard.clone();
        async move { admin.authenticate(&socket, &auth).await }
    });
    runtime.spawn(stats_loop(admin));
    Ok(())
}

struct Admin {
    io: WeakSocketIo,
    namespace: String,
    development: bool,
    features: Vec<&'static str>,
    readonly: bool,
    auth: AdminAuth,
    server_id: String,
    hostname: String,
    started: Instant,
    /// Node's `EventBuffer`: counts per second, type and subtype, until the next stats.
    events: Mutex<Vec<AggregatedEvent>>,
    sessions: Mutex<Sessions>,
}

impl Admin {
    fn on_connection(self: &Arc<Self>, socket: &SocketRef) {
        if !self.readonly {
            self.register_commands(socket);
        }
        let _ = socket.emit("config", &json!({ "supportedFeatures": self.features }));
        if self.development
            && let Some(io) = self.io.upgrade()
        {
            let sockets: Vec<Value> = io
                .all_namespaces()
                .iter()
                .flat_map(|ns| ns.sockets())
                .map(|socket| serialize(&socket))
                .collect();
            let _ = socket.emit("all_sockets", &sockets);
        }
    }
}

/// The host name (Node's `os.hostname()`).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_password_must_be_a_bcrypt_hash() {
        let (_layer, io) = SocketIo::new_layer();
        let refused = instrument(&io, AdminOptions::new(AdminAuth::basic("a", "plain")));
        assert!(matches!(refused, Err(AdminError::InvalidHash)));
        instrument(&io, AdminOptions::new(AdminAuth::None)).unwrap();
        let again = instrument(&io, AdminOptions::new(AdminAuth::None));
        assert!(matches!(again, Err(AdminError::AlreadyInstrumented)));
    }
}
