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

use std::{
    collections::{HashSet, VecDeque},
    sync::Arc,
    time::{Duration, Instant},
};

use belfry_core::{adapter::AdapterEvent, parser::Payload};
use belfry_engine::TransportType;
use parking_lot::Mutex;
use serde::{Serialize, ser::SerializeTuple};
use serde_json::{Value, json, value::RawValue};

use crate::{
    ConnectError, DisconnectReason, SocketIo, SocketRef, extract::Data, io::WeakSocketIo,
    observe::Observer, socket::Socket,
};

/// How often `server_stats` is sent.
const STATS_INTERVAL: Duration = Duration::from_secs(2);

/// The most admin sessions remembered (the oldest is forgotten first).
const MAX_SESSIONS: usize = 1024;

/// How the UI authenticates (Node's `auth` option, which must be given).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum AdminAuth {
    /// No authentication (Node's `auth: false`): anyone reaching the server can use the UI.
    None,
    /// A username and the bcrypt hash of the password (Node's `{type: "basic", ...}`).
    Basic {
        /// The username.
        username: String,
        /// The password's bcrypt hash (`$2a$`, `$2b$` or `$2y$`).
        password_hash: String,
    },
}

impl AdminAuth {
    /// [`AdminAuth::Basic`].
    pub fn basic(username: impl Into<String>, password_hash: impl Into<String>) -> AdminAuth {
        AdminAuth::Basic {
            username: username.into(),
            password_hash: password_hash.into(),
        }
    }
}

/// Node's `mode`: what is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Mode {
    /// Every socket, room and event, live (the default, as Node's outside production).
    #[default]
    Development,
    /// The aggregated statistics only.
    Production,
}

/// The options of [`instrument`].
#[derive(Debug, Clone)]
pub struct AdminOptions {
    auth: AdminAuth,
    namespace: String,
    readonly: bool,
    server_id: Option<String>,
    mode: Mode,
}

impl AdminOptions {
    /// Options with `auth` and Node's defaults: namespace `/admin`, commands allowed,
    /// development mode, the host name as server id.
    pub fn new(auth: AdminAuth) -> AdminOptions {
        AdminOptions {
            auth,
            namespace: "/admin".to_owned(),
            readonly: false,
            server_id: None,
            mode: Mode::Development,
        }
    }

    /// The namespace the UI connects to (default `/admin`).
    #[must_use]
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Refuses the UI's commands (emit, join, leave, disconnect).
    #[must_use]
    pub fn readonly(mut self, readonly: bool) -> Self {
        self.readonly = readonly;
        self
    }

    /// The id of this server in the UI (default: the host name).
    #[must_use]
    pub fn server_id(mut self, id: impl Into<String>) -> Self {
        self.server_id = Some(id.into());
        self
    }

    /// What is reported (default [`Mode::Development`]).
    #[must_use]
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }
}

/// Why [`instrument`] refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The password is not a bcrypt hash.
    #[error("the `password` field must be a valid bcrypt hash")]
    InvalidHash,
    /// The server is instrumented already.
    #[error("the server is already instrumented")]
    AlreadyInstrumented,
    /// Not called within a Tokio runtime (the statistics task needs one).
    #[error("instrument must be called within a Tokio runtime")]
    NoRuntime,
}

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

/// Sends `server_stats` now and every 2 seconds, until the server is gone.
async fn stats_loop(admin: Arc<Admin>) {
    let mut interval = tokio::time::interval(STATS_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(io) = admin.io.upgrade() else {
            return;
        };
        admin.send_stats(&io);
    }
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

#[derive(Debug, Serialize)]
struct AggregatedEvent {
    timestamp: u64,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(rename = "subType", skip_serializing_if = "Option::is_none")]
    sub_type: Option<&'static str>,
    count: u64,
}

/// The admin session ids handed out, the oldest forgotten past [`MAX_SESSIONS`].
#[derive(Default)]
struct Sessions {
    ids: HashSet<String>,
    order: VecDeque<String>,
}

impl Sessions {
    fn insert(&mut self, id: String) {
        if self.order.len() >= MAX_SESSIONS
            && let Some(oldest) = self.order.pop_front()
        {
            self.ids.remove(&oldest);
        }
        self.ids.insert(id.clone());
        self.order.push_back(id);
    }
}

/// Arguments spread into an emit (a tuple of any length to serde).
struct Spread<'a>(&'a [Value]);

impl Serialize for Spread<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut tuple = serializer.serialize_tuple(self.0.len())?;
        for value in self.0 {
            tuple.serialize_element(value)?;
        }
        tuple.end()
    }
}

impl Admin {
    /// Node's basic authentication: a known session id, or the username and password (then a
    /// new session id is sent as `session`, before CONNECT).
    async fn authenticate(&self, socket: &SocketRef, auth: &Value) -> Result<(), ConnectError> {
        let AdminAuth::Basic {
            username,
            password_hash,
        } = &self.auth
        else {
            return Ok(());
        };
        if let Some(id) = auth["sessionId"].as_str()
            && self.sessions.lock().ids.contains(id)
        {
            return Ok(());
        }
        if auth["username"].as_str() == Some(username.as_str())
            && let Some(password) = auth["password"].as_str()
        {
            // bcrypt is slow on purpose: off the runtime's threads.
            let (password, hash) = (password.to_owned(), password_hash.clone());
            let matches = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash))
                .await
                .is_ok_and(|result| result.unwrap_or(false));
            if matches {
                let id = random_hex(8);
                self.sessions.lock().insert(id.clone());
                let _ = socket.emit("session", &id);
                return Ok(());
            }
        }
        Err(ConnectError::new("invalid credentials"))
    }

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

    /// The UI's commands: `emit(nsp, filter, event, ...args)`, `join(nsp, room, filter)`,
    /// `leave(nsp, room, filter)`, `_disconnect(nsp, close, filter)`; a filter is a room (often
    /// a socket id) or empty for the whole namespace.
    fn register_commands(&self, socket: &SocketRef) {
        let io = self.io.clone();
        socket.on("emit", move |Data(args): Data<Vec<Value>>| {
            let io = io.clone();
            async move {
                if let (Some(operator), Some(event)) = (target(&io, &args, 1), args.get(2)) {
                    let event = event.as_str().unwrap_or_default();
                    let rest = args.get(3..).unwrap_or_default();
                    let _ = operator.emit(event, &Spread(rest));
                }
            }
        });
        let io = self.io.clone();
        socket.on("join", move |Data(args): Data<Vec<Value>>| {
            let io = io.clone();
            async move {
                if let (Some(operator), Some(room)) = (target(&io, &args, 2), args.get(1)) {
                    let room = room.as_str().unwrap_or_default().to_owned();
                    let _ = operator.sockets_join(room).await;
                }
            }
        });
        let io = self.io.clone();
        socket.on("leave", move |Data(args): Data<Vec<Value>>| {
            let io = io.clone();
            async move {
                if let (Some(operator), Some(room)) = (target(&io, &args, 2), args.get(1)) {
                    let room = room.as_str().unwrap_or_default().to_owned();
                    let _ = operator.sockets_leave(&room).await;
                }
            }
        });
        let io = self.io.clone();
        socket.on("_disconnect", move |Data(args): Data<Vec<Value>>| {
            let io = io.clone();
            async move {
                if let Some(operator) = target(&io, &args, 2) {
                    let close = args.get(1).and_then(Value::as_bool).unwrap_or(false);
                    let _ = operator.disconnect_sockets(close).await;
                }
            }
        });
    }

    /// Sends `event` with `data` to the UI's sockets.
    fn report<T: Serialize + ?Sized>(&self, io: &SocketIo, event: &str, data: &T) {
        if let Some(operator) = io.of(&self.namespace) {
            let _ = operator.emit(event, data);
        }
    }

    /// A live `event_received` or `event_sent` report: `[ns, id, ["name", ...args], time]`,
    /// binary arguments as binary (the UI shows them as buffers, as Node's reports).
    fn live_event(&self, socket: &Socket, event: &str, payload: &Payload) {
        if !self.development || socket.ns() == self.namespace {
            return;
        }
        if payload.attachments.is_empty() {
            if let Some(args) = raw(payload) {
                let data = (socket.ns(), socket.id().as_str(), args, now_iso());
                self.live(socket, event, &data);
            }
        } else if let Ok(args) = serde_json::from_str::<Value>(&payload.json) {
            let args = WithBinary {
                value: &args,
                attachments: &payload.attachments,
            };
            let data = (socket.ns(), socket.id().as_str(), args, now_iso());
            self.live(socket, event, &data);
        }
    }

    /// A live report, in development mode, about a socket of another namespace.
    fn live<T: Serialize + ?Sized>(&self, socket: &Socket, event: &str, data: &T) {
        if self.development && socket.ns() != self.namespace {
            self.report(socket.io_ref(), event, data);
        }
    }

    fn count(&self, kind: &'static str, sub_type: Option<&'static str>, count: u64) {
        let timestamp = crate::handshake::now_millis() / 1000 * 1000;
        let mut events = self.events.lock();
        match events
            .iter_mut()
            .find(|e| e.timestamp == timestamp && e.kind == kind && e.sub_type == sub_type)
        {
            Some(event) => event.count += count,
            None => events.push(AggregatedEvent {
                timestamp,
                kind,
                sub_type,
                count,
            }),
        }
    }

    fn send_stats(&self, io: &SocketIo) {
        let namespaces = io.all_namespaces();
        let mut polling = HashSet::new();
        let sockets: Vec<_> = namespaces.iter().flat_map(|ns| ns.sockets()).collect();
        for socket in &sockets {
            if socket.conn().transport() == TransportType::Polling {
                polling.insert(socket.engine_id().clone());
            }
        }
        let stats = json!({
            "serverId": self.server_id,
            "hostname": self.hostname,
            "pid": std::process::id(),
            "uptime": self.started.elapsed().as_secs_f64(),
            "clientsCount": io.clients_count(),
            "pollingClientsCount": polling.len(),
            "aggregatedEvents": std::mem::take(&mut *self.events.lock()),
            "namespaces": namespaces
                .iter()
                .map(|ns| json!({ "name": ns.name(), "socketsCount": ns.sockets().len() }))
                .collect::<Vec<_>>(),
        });
        self.report(io, "server_stats", &stats);
    }
}

/// The operator a command addresses: namespace `args[0]`, within the room `args[filter]` if
/// one is given.
fn target(io: &WeakSocketIo, args: &[Value], filter: usize) -> Option<crate::BroadcastOperator> {
    let operator = io.upgrade()?.of(args.first()?.as_str()?)?;
    Some(match args.get(filter).and_then(Value::as_str) {
        Some(room) if !room.is_empty() => operator.within(room),
        _ => operator,
    })
}

impl Observer for Admin {
    fn engine_connected(&self, _polling: bool) {
        self.count("rawConnection", None, 1);
    }

    fn engine_disconnected(&self, reason: DisconnectReason) {
        self.count("rawDisconnection", Some(reason.as_str()), 1);
    }

    fn packet_in(&self, bytes: usize) {
        self.count("packetsIn", None, 1);
        self.count("bytesIn", None, bytes as u64);
    }

    fn packets_out(&self, packets: usize, bytes: usize) {
        self.count("packetsOut", None, packets as u64);
        self.count("bytesOut", None, bytes as u64);
    }

    fn socket_upgraded(&self, socket: &Socket) {
        if self.development {
            let update =
                json!({ "id": socket.id().as_str(), "nsp": socket.ns(), "transport": "websocket" });
            self.report(socket.io_ref(), "socket_updated", &update);
        }
    }

    fn socket_connected(&self, socket: &Socket) {
        if self.development {
            self.report(
                socket.io_ref(),
                "socket_connected",
                &(serialize(socket), now_iso()),
            );
        }
    }

    fn socket_disconnected(&self, socket: &Socket, reason: DisconnectReason) {
        if self.development {
            let data = (
                socket.ns(),
                socket.id().as_str(),
                reason.as_str(),
                now_iso(),
            );
            self.report(socket.io_ref(), "socket_disconnected", &data);
        }
    }

    fn event_received(&self, socket: &Socket, payload: &Payload) {
        self.live_event(socket, "event_received", payload);
    }

    fn event_sent(&self, socket: &Socket, payload: &Payload) {
        self.live_event(socket, "event_sent", payload);
    }

    fn data_updated(&self, socket: &Socket) {
        if self.development {
            let update =
                json!({ "id": socket.id().as_str(), "nsp": socket.ns(), "data": data(socket) });
            self.report(socket.io_ref(), "socket_updated", &update);
        }
    }

    fn room_event(&self, ns: &str, event: &AdapterEvent) {
        let Some(io) = self.io.upgrade().filter(|_| self.development) else {
            return;
        };
        match event {
            AdapterEvent::JoinRoom(room, id) => {
                self.report(&io, "room_joined", &(ns, room, id.as_str(), now_iso()));
            }
            AdapterEvent::LeaveRoom(room, id) => {
                self.report(&io, "room_left", &(ns, room, id.as_str(), now_iso()));
            }
            _ => {}
        }
    }
}

/// A JSON value whose placeholders (`{"_placeholder":true,"num":N}`) serialize as the bytes of
/// attachment `N`: sent on, they become binary attachments again.
struct WithBinary<'a> {
    value: &'a Value,
    attachments: &'a [bytes::Bytes],
}

impl WithBinary<'_> {
    fn at<'b>(&'b self, value: &'b Value) -> WithBinary<'b> {
        WithBinary {
            value,
            attachments: self.attachments,
        }
    }

    /// The attachment a placeholder object stands for.
    fn attachment(&self) -> Option<&bytes::Bytes> {
        let object = self.value.as_object()?;
        if object.len() != 2 || object.get("_placeholder") != Some(&Value::Bool(true)) {
            return None;
        }
        let num = usize::try_from(object.get("num")?.as_u64()?).ok()?;
        self.attachments.get(num)
    }
}

impl Serialize for WithBinary<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        if let Some(bytes) = self.attachment() {
            return serializer.serialize_bytes(bytes);
        }
        match self.value {
            Value::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&self.at(item))?;
                }
                seq.end()
            }
            Value::Object(entries) => {
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (key, item) in entries {
                    map.serialize_entry(key, &self.at(item))?;
                }
                map.end()
            }
            other => other.serialize(serializer),
        }
    }
}

/// The arguments of an event as they came, `["name", ...args]`.
fn raw(payload: &Payload) -> Option<&RawValue> {
    serde_json::from_str(&payload.json).ok()
}

/// The socket's data as the UI shows it (an object; `{}` until set).
fn data(socket: &Socket) -> Value {
    match socket.data_value() {
        Value::Null => json!({}),
        data => data,
    }
}

/// Node's `serialize(socket, nsp)`.
fn serialize(socket: &Socket) -> Value {
    let handshake = socket.handshake();
    let header = |name: &str| handshake.headers.get(name).and_then(Value::as_str);
    let address = header("cf-connecting-ip")
        .or_else(|| header("x-forwarded-for"))
        .unwrap_or(&handshake.address)
        .to_owned();
    let engine_id = socket.engine_id().as_str();
    json!({
        "id": socket.id().as_str(),
        "clientId": engine_id.get(..12).unwrap_or(engine_id),
        "transport": socket.conn().transport().as_str(),
        "nsp": socket.ns(),
        "data": data(socket),
        "handshake": {
            "address": address,
            "headers": handshake.headers,
            "query": handshake.query,
            "issued": handshake.issued,
            "secure": handshake.secure,
            "time": handshake.time,
            "url": handshake.url,
            "xdomain": handshake.xdomain,
        },
        "rooms": socket.rooms(),
    })
}

/// Now as JavaScript's `Date.toJSON` writes it: `2026-11-22T04:30:00.000Z`.
fn now_iso() -> String {
    crate::handshake::iso_date(crate::handshake::now_millis())
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

/// `bytes` random bytes from the OS in hex (Node's `randomBytes(n).toString("hex")`).
fn random_hex(bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    getrandom::fill(&mut raw).expect("the OS random source is available");
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_bounded() {
        let mut sessions = Sessions::default();
        for i in 0..MAX_SESSIONS + 10 {
            sessions.insert(i.to_string());
        }
        assert_eq!(sessions.ids.len(), MAX_SESSIONS);
        assert!(!sessions.ids.contains("0"));
        assert!(sessions.ids.contains(&(MAX_SESSIONS + 9).to_string()));
    }

    #[test]
    fn session_ids_are_sixteen_hex_digits() {
        let id = random_hex(8);
        assert_eq!(id.len(), 16);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(id, random_hex(8));
    }

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
