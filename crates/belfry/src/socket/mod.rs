//! A socket: one client in one namespace, and its public API (identity, listeners, data, rooms).
//! Sending is in [`emit`], the acks it asks for in [`acks`], the per-socket options of both
//! (`timeout`, `volatile`, `compress`) in [`operator`], joining and leaving its namespace
//! in [`lifecycle`], running its events in [`events`], its handler queue in [`jobs`], how its
//! packets become Engine.IO messages in [`wire`].

use std::{
    collections::HashMap,
    fmt,
    ops::Deref,
    sync::{
        Arc, Weak,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use belfry_core::{Str, adapter::Session, parser::Payload, proto::SocketId};
use belfry_engine::{Sid, Socket as EngineSocket};
use parking_lot::{Mutex, RwLock};
use serde::{Serialize, de::DeserializeOwned};
use tokio::sync::oneshot;

mod acks;
mod emit;
mod events;
mod jobs;
mod lifecycle;
mod operator;
mod wire;

use jobs::Queue;
pub use operator::SocketOperator;
pub(crate) use wire::{
    data_of, deserialize_args, event_payload, frames, into_frames, packet_payload, send_frames,
    send_frames_with,
};

use crate::{
    BroadcastOperator, ConnectError, Handshake, IntoRooms, SocketIo,
    client::Connection,
    handler::{ErasedHandler, Handler, erase, erase_middleware, kind},
    ns::Namespace,
};

/// One client connected to one namespace.
///
/// Handlers receive it as [`SocketRef`]. Its events' handlers start in the order the packets
/// arrived; those that await run concurrently (one at a time with serial handlers).
pub struct Socket {
    me: Weak<Socket>,
    id: SocketId,
    /// The private session id, under connection state recovery.
    pid: Option<SocketId>,
    recovered: bool,
    /// When the socket connected (ms since the epoch), and its CONNECT auth: the rest of the
    /// handshake is read from the request when asked for.
    issued: u64,
    auth: Option<Str>,
    ns: Arc<Namespace>,
    conn: Arc<EngineSocket<Connection>>,
    io: SocketIo,
    /// Every listener in the order added (a socket has a handful: a scan beats a map, and
    /// costs one allocation instead of one per event name).
    listeners: RwLock<Vec<Listener>>,
    packet_middlewares: RwLock<Vec<ErasedHandler<Result<(), ConnectError>>>>,
    outgoing: RwLock<Option<OutgoingListener>>,
    /// Whether `outgoing` holds a listener: a broadcast checks it for every recipient, without
    /// taking the lock.
    has_outgoing: AtomicBool,
    any_handler: RwLock<Option<ErasedHandler>>,
    disconnecting_handler: RwLock<Option<ErasedHandler>>,
    disconnect_handler: RwLock<Option<ErasedHandler>>,
    extensions: RwLock<http::Extensions>,
    data: RwLock<crate::Value>,
    acks: Mutex<HashMap<u64, oneshot::Sender<Payload>>>,
    queue: Mutex<Queue>,
    connected: AtomicBool,
    span: tracing::Span,
}

/// A shared handle on a [`Socket`], as handlers receive it.
#[derive(Clone)]
pub struct SocketRef(pub(crate) Arc<Socket>);

impl Deref for SocketRef {
    type Target = Socket;

    fn deref(&self) -> &Socket {
        &self.0
    }
}

impl fmt::Debug for SocketRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Debug for Socket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Socket")
            .field("id", &self.id)
            .field("ns", &self.ns.name())
            .field("connected", &self.connected())
            .finish_non_exhaustive()
    }
}

impl Socket {
    /// Creates the socket; its handlers start in order, on the reader's task or a task started
    /// when events arrive. A
    /// recovered socket takes the id of its `previous` session.
    pub(crate) fn new(
        ns: Arc<Namespace>,
        conn: Arc<EngineSocket<Connection>>,
        io: SocketIo,
        auth: Option<&str>,
        previous: Option<&Session>,
    ) -> Arc<Socket> {
        let issued = crate::handshake::now_millis();
        let auth = auth.map(Str::from);
        let id = match previous {
            Some(session) => session.sid.clone(),
            // socket.io 2.x: the engine id, prefixed by the namespace outside `/` (Node's).
            None if conn.protocol() == 3 && ns.name() == "/" => SocketId::from(conn.id().as_str()),
            None if conn.protocol() == 3 => SocketId::from(format!("{}#{}", ns.name(), conn.id())),
            None => SocketId::random(),
        };
        let pid = io
            .config()
            .recovery
            .filter(|_| conn.protocol() != 3)
            .map(|_| previous.map_or_else(SocketId::random, |session| session.pid.clone()));
        let span = tracing::debug_span!(parent: conn.span(), "socket", ns = %ns.name(), %id);
        Arc::new_cyclic(|me| Socket {
            me: me.clone(),
            id,
            pid,
            recovered: previous.is_some(),
            issued,
            auth,
            ns,
            conn,
            io,
            listeners: RwLock::new(Vec::new()),
            packet_middlewares: RwLock::new(Vec::new()),
            outgoing: RwLock::new(None),
            has_outgoing: AtomicBool::new(false),
            any_handler: RwLock::new(None),
            disconnecting_handler: RwLock::new(None),
            disconnect_handler: RwLock::new(None),
            extensions: RwLock::new(http::Extensions::new()),
            data: RwLock::new(crate::Value::Null),
            acks: Mutex::new(HashMap::new()),
            queue: Mutex::new(Queue::default()),
            connected: AtomicBool::new(true),
            span,
        })
    }

    /// The socket id: 20 URL-safe characters, distinct from the engine session id.
    pub fn id(&self) -> &SocketId {
        &self.id
    }

    /// Whether this socket is a recovered one (Node's `socket.recovered`): its client came back
    /// within the recovery window, kept its id, rooms and data, and got the events it missed.
    /// Always false without [`connection state recovery`](crate::SocketIoBuilder::connection_state_recovery).
    pub fn recovered(&self) -> bool {
        self.recovered
    }

    /// The private session id of connection state recovery, sent in the CONNECT reply.
    pub(crate) fn pid(&self) -> Option<&SocketId> {
        self.pid.as_ref()
    }

    /// The details of the connection (Node's `socket.handshake`), built from the handshake
    /// request when asked for.
    pub fn handshake(&self) -> Handshake {
        Handshake::new(self.conn.req_parts(), self.auth.as_deref(), self.issued)
    }

    /// One parameter of the handshake request's query (Node's `socket.handshake.query[name]`),
    /// decoded as [`Handshake::query`] is (the last of repeated keys), without building the
    /// whole [`Handshake`]; `None` when the query does not have it.
    ///
    /// # Examples
    ///
    /// ```
    /// use belfry::{ConnectError, SocketIo, SocketRef};
    ///
    /// let (_layer, io) = SocketIo::new_layer();
    /// io.ns("/", |_socket: SocketRef| async {})
    ///     .middleware(|socket: SocketRef| async move {
    ///         // `io("/", { query: { token: "..." } })` on the client.
    ///         match socket.query_param("token") {
    ///             Some(token) if token == "secret" => Ok(()),
    ///             _ => Err(ConnectError::new("not authorized")),
    ///         }
    ///     });
    /// ```
    pub fn query_param(&self, name: &str) -> Option<String> {
        crate::handshake::query_param(self.conn.req_parts().uri.query()?, name)
    }

    /// The namespace name (`/`, `/chat`...).
    pub fn ns(&self) -> &str {
        self.ns.name()
    }

    /// The handshake HTTP request, with the extensions that tower layers put there.
    pub fn req_parts(&self) -> &http::request::Parts {
        self.conn.req_parts()
    }

    /// The id of the underlying Engine.IO session (shared by the client's sockets).
    pub fn engine_id(&self) -> &Sid {
        self.conn.id()
    }

    /// The server handle.
    pub fn io(&self) -> SocketIo {
        self.io.clone()
    }

    pub(crate) fn io_ref(&self) -> &SocketIo {
        &self.io
    }

    /// True until the socket leaves its namespace.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// Adds a listener for `event`; an event runs each of its listeners in the order they were
    /// added (Node's `socket.on`). The [`ListenerId`] returned removes this listener alone
    /// ([`Socket::off_listener`]); it can be ignored.
    ///
    /// # Examples
    ///
    /// ```
    /// use belfry::{AckSender, SocketIo, SocketRef, extract::Data};
    ///
    /// let (_layer, io) = SocketIo::new_layer();
    /// io.ns("/", |socket: SocketRef| async move {
    ///     socket.on("echo", |socket: SocketRef, Data(msg): Data<String>| async move {
    ///         let _ = socket.emit("echo", &msg);
    ///     });
    ///     socket.on("add", |Data((a, b)): Data<(i64, i64)>, ack: AckSender| async move {
    ///         let _ = ack.send(&(a + b));
    ///     });
    /// });
    /// ```
    pub fn on<H: Handler<T, kind::Event>, T>(
        &self,
        event: impl Into<String>,
        handler: H,
    ) -> ListenerId {
        self.add_listener(event.into(), erase(handler), false)
    }

    /// Adds a listener for `event` that runs once, then is removed (Node's `socket.once`). Its
    /// [`ListenerId`] removes it before it ran.
    pub fn once<H: Handler<T, kind::Event>, T>(
        &self,
        event: impl Into<String>,
        handler: H,
    ) -> ListenerId {
        self.add_listener(event.into(), erase(handler), true)
    }

    fn add_listener(&self, event: String, handler: ErasedHandler, once: bool) -> ListenerId {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let id = ListenerId(NEXT.fetch_add(1, Ordering::Relaxed));
        self.listeners.write().push(Listener {
            event: event.into_boxed_str(),
            handler,
            once,
            id,
        });
        id
    }

    /// Removes every listener of `event` (Node's `socket.off(event)` and
    /// `socket.removeAllListeners(event)`).
    pub fn off(&self, event: &str) {
        self.listeners.write().retain(|l| &*l.event != event);
    }

    /// Removes the one listener that [`Socket::on`] or [`Socket::once`] returned `id` for
    /// (Node's `socket.off(event, listener)`: Rust closures cannot be compared, so the listener
    /// is named by its id). False if it was already gone (removed, a `once` that ran) or is not
    /// this socket's. An event being handled still runs the listeners it started with.
    ///
    /// # Examples
    ///
    /// ```
    /// use belfry::{SocketIo, SocketRef};
    ///
    /// let (_layer, io) = SocketIo::new_layer();
    /// io.ns("/", |socket: SocketRef| async move {
    ///     let log = socket.on("move", || async { tracing::debug!("moved") });
    ///     socket.on("move", |socket: SocketRef| async move {
    ///         let _ = socket.emit("moved", &());
    ///     });
    ///     socket.on("quiet", move |socket: SocketRef| async move {
    ///         // The other "move" listener stays.
    ///         socket.off_listener(log);
    ///     });
    /// });
    /// ```
    pub fn off_listener(&self, id: ListenerId) -> bool {
        let mut listeners = self.listeners.write();
        let before = listeners.len();
        listeners.retain(|l| l.id != id);
        listeners.len() != before
    }

    /// Adds a per-packet middleware (Node's `socket.use`): an async function of extractors run
    /// for every incoming event, in the order added, before any listener. It returns
    /// `Result<(), E>`, where `E` is any error that implements `Display`: an `Err` drops the
    /// event and, if the client asked for an ack, answers it `{"error": message}` (the error's
    /// `Display`), or `{"error": message, "data": data}` for a
    /// [`ConnectError`](crate::ConnectError) with data. (Node emits an `error` event on the
    /// server's socket and leaves the ack unanswered.)
    ///
    /// # Examples
    ///
    /// ```
    /// use belfry::{SocketIo, SocketRef, extract::Event};
    ///
    /// let (_layer, io) = SocketIo::new_layer();
    /// io.ns("/", |socket: SocketRef| async move {
    ///     socket.packet_middleware(|Event(name): Event| async move {
    ///         if name.starts_with("admin:") { Err("forbidden") } else { Ok(()) }
    ///     });
    /// });
    /// ```
    pub fn packet_middleware<H, T, E>(&self, middleware: H)
    where
        H: Handler<T, kind::Event, Result<(), E>>,
        E: fmt::Display + Send + 'static,
    {
        self.packet_middlewares
            .write()
            .push(erase_middleware(middleware));
    }

    /// Sets a callback seeing every event sent to this socket, before it is encoded (Node's
    /// `onAnyOutgoing`): the event name and its arguments as [`Value`](crate::Value)s, binary
    /// included (they are parsed only while a callback is set).
    pub fn on_any_outgoing(
        &self,
        listener: impl Fn(&str, &[crate::Value]) + Send + Sync + 'static,
    ) {
        *self.outgoing.write() = Some(Arc::new(listener));
        self.has_outgoing.store(true, Ordering::Release);
    }

    /// Removes the [`Socket::on_any_outgoing`] callback.
    pub fn off_any_outgoing(&self) {
        let mut outgoing = self.outgoing.write();
        outgoing.take();
        self.has_outgoing.store(false, Ordering::Release);
    }

    /// Registers a handler run for every incoming event, before the event's own handler
    /// (Node's `onAny`). It may take [`Event`](crate::extract::Event) for the name.
    pub fn on_any<H: Handler<T, kind::Event>, T>(&self, handler: H) {
        *self.any_handler.write() = Some(erase(handler));
    }

    /// Removes the [`Socket::on_any`] handler.
    pub fn off_any(&self) {
        self.any_handler.write().take();
    }

    /// Registers the handler run when the socket starts leaving its namespace, while it is
    /// still in its rooms (Node's `disconnecting` event). It may take
    /// [`DisconnectReason`](crate::DisconnectReason).
    pub fn on_disconnecting<H: Handler<T, kind::Disconnect>, T>(&self, handler: H) {
        *self.disconnecting_handler.write() = Some(erase(handler));
    }

    /// Registers the handler run when the socket has left its namespace (rooms left, pending
    /// acks failed). It may take [`DisconnectReason`](crate::DisconnectReason).
    pub fn on_disconnect<H: Handler<T, kind::Disconnect>, T>(&self, handler: H) {
        *self.disconnect_handler.write() = Some(erase(handler));
    }

    /// Stores `value` on the socket, one per type; handlers read it with the
    /// [`Extension`](crate::extract::Extension) extractor. It stays on this server: for what
    /// other servers should see, use [`Socket::set_data`].
    pub fn insert_extension<T: Clone + Send + Sync + 'static>(&self, value: T) {
        self.extensions.write().insert(value);
    }

    /// A clone of the value of type `T` stored with [`Socket::insert_extension`].
    pub fn extension<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        self.extensions.read().get::<T>().cloned()
    }

    /// Sets the socket's data (Node's `socket.data`): any value that serializes to JSON, with
    /// bytes anywhere (`bytes::Bytes`, [`Binary`](crate::Binary), [`Value::Binary`](crate::Value::Binary))
    /// kept as binary. Other servers see it in their `fetch_sockets`
    /// ([`RemoteSocket::data`](crate::RemoteSocket::data)).
    ///
    /// # Errors
    ///
    /// `data` does not serialize to JSON (the data is left as it was).
    ///
    /// # Examples
    ///
    /// ```
    /// use belfry::{SocketIo, SocketRef};
    ///
    /// let (_layer, io) = SocketIo::new_layer();
    /// io.ns("/", |socket: SocketRef| async move {
    ///     let _ = socket.set_data(&serde_json::json!({ "user": "alice" }));
    ///     let user: serde_json::Value = socket.data().unwrap_or_default();
    ///     assert_eq!(user["user"], "alice");
    /// });
    /// ```
    pub fn set_data<T: Serialize + ?Sized>(&self, data: &T) -> Result<(), serde_json::Error> {
        *self.data.write() = belfry_core::args::to_value(data)?;
        if let Some(observer) = self.io.observer() {
            observer.data_updated(self);
        }
        Ok(())
    }

    /// The socket's data (see [`Socket::set_data`]; `null` until set), as `T`.
    ///
    /// # Errors
    ///
    /// The data does not deserialize into `T`.
    pub fn data<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        belfry_core::args::from_value(&self.data.read())
    }

    /// The socket's data, binary included.
    pub(crate) fn data_value(&self) -> crate::Value {
        self.data.read().clone()
    }

    /// Joins one room or several (Node's `socket.join(room)` and `socket.join([a, b])`; see
    /// [`IntoRooms`]). Does nothing once the socket left its namespace.
    ///
    /// # Examples
    ///
    /// ```
    /// use belfry::{SocketIo, SocketRef};
    ///
    /// let (_layer, io) = SocketIo::new_layer();
    /// io.ns("/", |socket: SocketRef| async move {
    ///     socket.join("lobby");
    ///     socket.join(["team-a", "team-a/voice"]);
    ///     socket.leave(["lobby", "team-a/voice"]);
    ///     assert!(socket.rooms().contains(&"team-a".to_owned()));
    /// });
    /// ```
    pub fn join(&self, rooms: impl IntoRooms) {
        let rooms = rooms.into_rooms();
        if self.connected() && !rooms.is_empty() {
            self.span
                .in_scope(|| tracing::debug!(?rooms, "joined rooms"));
            self.ns.adapter().add_all(&self.id, &rooms);
        }
    }

    /// Leaves one room or several (Node's `socket.leave(room)`; see [`IntoRooms`]).
    pub fn leave(&self, rooms: impl IntoRooms) {
        for room in rooms.into_rooms() {
            self.span.in_scope(|| tracing::debug!(%room, "left room"));
            self.ns.adapter().del(&self.id, &room);
        }
    }

    /// The rooms the socket is in, its own (named after its id) included.
    pub fn rooms(&self) -> Vec<String> {
        self.ns.adapter().socket_rooms(&self.id)
    }

    /// A broadcast to one room or several, except this socket (Node's `socket.to(room)` and
    /// `socket.to([a, b])`; see [`IntoRooms`]).
    pub fn to(&self, rooms: impl IntoRooms) -> BroadcastOperator {
        self.broadcast().to(rooms)
    }

    /// Same as [`Socket::to`] (Node's `socket.in(room)`).
    pub fn within(&self, rooms: impl IntoRooms) -> BroadcastOperator {
        self.to(rooms)
    }

    /// A broadcast to the namespace except the sockets of `rooms` and this socket (Node's
    /// `socket.except(room)`).
    pub fn except(&self, rooms: impl IntoRooms) -> BroadcastOperator {
        self.broadcast().except(rooms)
    }

    /// A broadcast to every socket of the namespace but this one.
    pub fn broadcast(&self) -> BroadcastOperator {
        BroadcastOperator::new(self.ns.clone()).except(self.id.to_string())
    }

    /// This socket, with a timeout for the answer to the next event sent with
    /// [`SocketOperator::emit_with_ack`] (Node's `socket.timeout(ms)`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use belfry::{AckError, SocketIo, SocketRef};
    ///
    /// let (_layer, io) = SocketIo::new_layer();
    /// io.ns("/", |socket: SocketRef| async move {
    ///     let answer: Result<u32, AckError> =
    ///         socket.timeout(Duration::from_secs(1)).emit_with_ack("age?", &()).await;
    ///     if let Err(AckError::Timeout) = answer {
    ///         tracing::info!("no answer within a second");
    ///     }
    /// });
    /// ```
    pub fn timeout(&self, timeout: Duration) -> SocketOperator<'_> {
        SocketOperator::new(self).timeout(timeout)
    }

    /// This socket, dropping what is sent to it next if its client cannot take it right now
    /// (Node's `socket.volatile`; see [`SocketOperator::volatile`]).
    pub fn volatile(&self) -> SocketOperator<'_> {
        SocketOperator::new(self).volatile()
    }

    /// This socket, sending what is sent to it next compressed or not (Node's
    /// `socket.compress(bool)`; see [`SocketOperator::compress`]).
    pub fn compress(&self, compress: bool) -> SocketOperator<'_> {
        SocketOperator::new(self).compress(compress)
    }

    pub(crate) fn conn(&self) -> &Arc<EngineSocket<Connection>> {
        &self.conn
    }

    /// The socket's tracing span (`socket{ns, id}` at debug level, inside its connection's
    /// `engine{sid, transport}` span): its handlers run in it.
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }
}

/// One listener of an event.
struct Listener {
    event: Box<str>,
    handler: ErasedHandler,
    once: bool,
    id: ListenerId,
}

/// Names one listener added by [`Socket::on`] or [`Socket::once`], for
/// [`Socket::off_listener`] (what Node's `socket.off(event, listener)` does with the function
/// itself). Ids are unique across the sockets of the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenerId(u64);

/// The `on_any_outgoing` callback.
type OutgoingListener = Arc<dyn Fn(&str, &[crate::Value]) + Send + Sync>;
