//! A socket: one client in one namespace.

use std::{
    cell::RefCell,
    collections::{HashMap, VecDeque},
    fmt::{self, Write as _},
    ops::Deref,
    panic::AssertUnwindSafe,
    sync::{
        Arc, Weak,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use belfry_core::proto::SocketId;
use belfry_core::{
    Str,
    adapter::{BroadcastOptions, RestoredSession, Session},
    parser::{Packet, PacketData, Parser, Payload, is_reserved_event, write_header},
};
use belfry_engine::{Packet as EnginePacket, SendError, Sid, Socket as EngineSocket};
use bytes::Bytes;
use futures_util::FutureExt;
use parking_lot::{Mutex, RwLock};
use serde::{Serialize, de::DeserializeOwned};
use tokio::sync::oneshot;

use crate::{
    AckError, BroadcastOperator, DisconnectReason, EmitError, Handshake, SocketIo, args,
    client::Connection,
    handler::{BoxFuture, ContextKind, ErasedHandler, Handler, HandlerContext, Rejected, erase},
    ns::Namespace,
};

/// How many events may wait for one socket's handlers before the client is cut off as a flood.
const MAX_PENDING_EVENTS: usize = 65_536;

/// How many bytes of event payloads may wait for one socket's handlers before the client is cut
/// off as a flood.
const MAX_PENDING_BYTES: usize = 16 << 20;

/// One client connected to one namespace.
///
/// Handlers receive it as [`SocketRef`]. Its events run their handlers one at a time, in the
/// order the packets arrived; a slow handler delays only this socket.
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
    packet_middlewares: RwLock<Vec<ErasedHandler<Result<(), String>>>>,
    outgoing: RwLock<Option<OutgoingListener>>,
    /// Whether `outgoing` holds a listener: a broadcast checks it for every recipient, without
    /// taking the lock.
    has_outgoing: AtomicBool,
    any_handler: RwLock<Option<ErasedHandler>>,
    disconnecting_handler: RwLock<Option<ErasedHandler>>,
    disconnect_handler: RwLock<Option<ErasedHandler>>,
    extensions: RwLock<http::Extensions>,
    data: RwLock<serde_json::Value>,
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
    /// Creates the socket; its handlers run in order on a task started when events arrive. A
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
            data: RwLock::new(serde_json::Value::Null),
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

    /// Puts back what the socket had before its connection was lost, and sends the events its
    /// client missed (before the CONNECT reply, as Node; the client holds them until then).
    pub(crate) fn restore(&self, restored: RestoredSession) {
        let RestoredSession { session, missed } = restored;
        self.ns.adapter().add_all(&self.id, &session.rooms);
        *self.data.write() = session.data;
        for payload in missed {
            let _ = self.send(Packet::event(self.ns.name_str(), payload, None));
        }
    }

    /// The details of the connection (Node's `socket.handshake`), built from the handshake
    /// request when asked for.
    pub fn handshake(&self) -> Handshake {
        Handshake::new(self.conn.req_parts(), self.auth.as_deref(), self.issued)
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
    /// added (Node's `socket.on`).
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
    pub fn on<H: Handler<T>, T>(&self, event: impl Into<String>, handler: H) {
        self.add_listener(event.into(), erase(handler), false);
    }

    /// Adds a listener for `event` that runs once, then is removed (Node's `socket.once`).
    pub fn once<H: Handler<T>, T>(&self, event: impl Into<String>, handler: H) {
        self.add_listener(event.into(), erase(handler), true);
    }

    fn add_listener(&self, event: String, handler: ErasedHandler, once: bool) {
        self.listeners.write().push(Listener {
            event: event.into_boxed_str(),
            handler,
            once,
        });
    }

    /// Removes every listener of `event`.
    pub fn off(&self, event: &str) {
        self.listeners.write().retain(|l| &*l.event != event);
    }

    /// Adds a per-packet middleware (Node's `socket.use`): an async function of extractors run
    /// for every incoming event, in the order added, before any listener. `Err(message)` drops
    /// the event; if the client asked for an ack, it is answered `{"error": message}`.
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
        H: Handler<T, Result<(), E>>,
        E: fmt::Display + Send + 'static,
    {
        let middleware = erase(middleware);
        self.packet_middlewares
            .write()
            .push(Arc::new(move |ctx: &mut HandlerContext| {
                let future = middleware(ctx)?;
                Ok(
                    Box::pin(async move { future.await.map_err(|e| e.to_string()) })
                        as BoxFuture<Result<(), String>>,
                )
            }));
    }

    /// Sets a callback seeing every event sent to this socket, before it is encoded (Node's
    /// `onAnyOutgoing`): the event name and its JSON arguments array.
    pub fn on_any_outgoing(&self, listener: impl Fn(&str, &str) + Send + Sync + 'static) {
        *self.outgoing.write() = Some(Arc::new(listener));
        self.has_outgoing.store(true, Ordering::Release);
    }

    /// Removes the [`Socket::on_any_outgoing`] callback.
    pub fn off_any_outgoing(&self) {
        let mut outgoing = self.outgoing.write();
        outgoing.take();
        self.has_outgoing.store(false, Ordering::Release);
    }

    /// Whether [`Socket::notify_outgoing`] has anything to do for this socket: an outgoing
    /// listener, or the server's observer.
    pub(crate) fn observes_outgoing(&self) -> bool {
        self.has_outgoing.load(Ordering::Acquire) || self.io.observer().is_some()
    }

    /// Calls the outgoing listener, if any, for an event packet about to be sent.
    pub(crate) fn notify_outgoing(&self, packet: &Packet) {
        let PacketData::Event { payload, .. } = &packet.data else {
            return;
        };
        if let Some(observer) = self.io.observer() {
            observer.event_sent(self, payload);
        }
        if !self.has_outgoing.load(Ordering::Acquire) {
            return;
        }
        let Some(listener) = self.outgoing.read().clone() else {
            return;
        };
        if let Ok((name, _)) = payload.event() {
            listener(&name, &payload.json);
        }
    }

    /// Registers a handler run for every incoming event, before the event's own handler
    /// (Node's `onAny`). It may take [`Event`](crate::extract::Event) for the name.
    pub fn on_any<H: Handler<T>, T>(&self, handler: H) {
        *self.any_handler.write() = Some(erase(handler));
    }

    /// Removes the [`Socket::on_any`] handler.
    pub fn off_any(&self) {
        self.any_handler.write().take();
    }

    /// Registers the handler run when the socket starts leaving its namespace, while it is
    /// still in its rooms (Node's `disconnecting` event). It may take
    /// [`DisconnectReason`](crate::DisconnectReason).
    pub fn on_disconnecting<H: Handler<T>, T>(&self, handler: H) {
        *self.disconnecting_handler.write() = Some(erase(handler));
    }

    /// Registers the handler run when the socket has left its namespace (rooms left, pending
    /// acks failed). It may take [`DisconnectReason`](crate::DisconnectReason).
    pub fn on_disconnect<H: Handler<T>, T>(&self, handler: H) {
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

    /// Sets the socket's data (Node's `socket.data`): any value that serializes to JSON. Other
    /// servers see it in their `fetch_remote_sockets`
    /// ([`SocketInfo::data`](belfry_core::adapter::SocketInfo)).
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
        *self.data.write() = serde_json::to_value(data)?;
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
        T::deserialize(&*self.data.read())
    }

    /// The socket's data as JSON.
    pub(crate) fn data_value(&self) -> serde_json::Value {
        self.data.read().clone()
    }

    /// Sends `event` to this client. `data` is the arguments: a tuple for several, `()` for none,
    /// anything else for one (see "Arguments" in the [crate docs](crate)). A fixed-size array
    /// `[T; N]` is a tuple to serde and spreads too: send `&array[..]` or a `Vec` for one array.
    ///
    /// # Errors
    ///
    /// A reserved event name, data that does not serialize, a full send queue, or a
    /// disconnected socket.
    pub fn emit<T: Serialize + ?Sized>(&self, event: &str, data: &T) -> Result<(), EmitError> {
        self.emit_binary(event, data, Vec::new())
    }

    /// Like [`Socket::emit`], with binary attachments appended as the last arguments (they reach
    /// a Node client as `Buffer`s).
    ///
    /// # Errors
    ///
    /// As [`Socket::emit`].
    pub fn emit_binary<T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
        attachments: Vec<Bytes>,
    ) -> Result<(), EmitError> {
        let payload = event_payload(self.ns.name(), None, event, data, attachments)?;
        let packet = Packet::event(self.ns.name_str(), payload, None);
        if self.pid.is_some() && self.connected() && self.ns.socket(&self.id).is_some() {
            // Under recovery, Node sends through the adapter (to the socket's own room), which
            // keeps the event and gives it an offset.
            let own = BroadcastOptions {
                rooms: vec![self.id.to_string()],
                ..BroadcastOptions::default()
            };
            return match self.ns.adapter().broadcast(&packet, &own) {
                Ok(0) => Err(EmitError::Full),
                Ok(_) => Ok(()),
                Err(error) => {
                    tracing::warn!(%error, "emit through the adapter failed");
                    Err(EmitError::Disconnected)
                }
            };
        }
        self.send(packet)
    }

    /// Sends `event` and waits for the client's acknowledgement, deserialized into `R` (one
    /// argument as `R`, several as a tuple). Waits at most the server's ack timeout (see
    /// [`SocketIoBuilder::ack_timeout`](crate::SocketIoBuilder::ack_timeout)).
    ///
    /// # Errors
    ///
    /// [`AckError::Timeout`] without an answer in time, [`AckError::Disconnected`] if the socket
    /// left first, and the errors of [`Socket::emit`].
    pub async fn emit_with_ack<R: DeserializeOwned, T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
    ) -> Result<R, AckError> {
        self.emit_with_ack_timeout(event, data, self.io.ack_timeout())
            .await
    }

    /// [`Socket::emit_with_ack`] with its own timeout.
    ///
    /// # Errors
    ///
    /// As [`Socket::emit_with_ack`].
    pub async fn emit_with_ack_timeout<R: DeserializeOwned, T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
        timeout: Duration,
    ) -> Result<R, AckError> {
        let id = self.ns.next_ack_id();
        let payload = event_payload(self.ns.name(), Some(id), event, data, Vec::new())?;
        let rx = self.expect_ack(id);
        if let Err(error) = self.send(Packet::event(self.ns.name_str(), payload, Some(id))) {
            self.forget_ack(id);
            return Err(error.into());
        }
        self.wait_ack(id, rx, timeout).await
    }

    /// Registers a waiter for ack `id`.
    pub(crate) fn expect_ack(&self, id: u64) -> oneshot::Receiver<Payload> {
        let (tx, rx) = oneshot::channel();
        self.acks.lock().insert(id, tx);
        rx
    }

    /// Stops waiting for ack `id` (timed out, or never sent).
    pub(crate) fn forget_ack(&self, id: u64) {
        self.acks.lock().remove(&id);
    }

    /// Queues `frames` (the encoding of `packet`, an event asking for ack `id`) and registers
    /// the waiter of its answer; `None` when the socket cannot take them. For broadcasts,
    /// whose frames are encoded once for every recipient.
    pub(crate) fn send_expecting_ack(
        &self,
        id: u64,
        packet: &Packet,
        frames: &[EnginePacket],
    ) -> Option<oneshot::Receiver<Payload>> {
        let answer = self.expect_ack(id);
        self.notify_outgoing(packet);
        if send_frames_with(&self.conn, frames, true).is_err() {
            self.forget_ack(id);
            return None;
        }
        if let Some(observer) = self.io.observer() {
            let (packets, bytes) = data_of(frames);
            observer.packets_out(packets, bytes);
        }
        Some(answer)
    }

    /// Waits for ack `id` at most `timeout`, and deserializes it.
    pub(crate) async fn wait_ack<R: DeserializeOwned>(
        &self,
        id: u64,
        rx: oneshot::Receiver<Payload>,
        timeout: Duration,
    ) -> Result<R, AckError> {
        let answer = self.wait_ack_payload(id, rx, timeout).await?;
        deserialize_args(&answer).map_err(AckError::Deserialize)
    }

    /// Waits for ack `id` at most `timeout`; forgets it on a timeout.
    pub(crate) async fn wait_ack_payload(
        &self,
        id: u64,
        rx: oneshot::Receiver<Payload>,
        timeout: Duration,
    ) -> Result<Payload, AckError> {
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(payload)) => Ok(payload),
            Ok(Err(_)) => Err(AckError::Disconnected),
            Err(_) => {
                self.forget_ack(id);
                Err(AckError::Timeout)
            }
        }
    }

    /// Joins `room`.
    pub fn join(&self, room: impl Into<String>) {
        let room = room.into();
        if self.connected() {
            self.span.in_scope(|| tracing::debug!(%room, "joined room"));
            self.ns.adapter().add_all(&self.id, &[room]);
        }
    }

    /// Leaves `room`.
    pub fn leave(&self, room: &str) {
        self.span.in_scope(|| tracing::debug!(%room, "left room"));
        self.ns.adapter().del(&self.id, room);
    }

    /// The rooms the socket is in, its own (named after its id) included.
    pub fn rooms(&self) -> Vec<String> {
        self.ns.adapter().socket_rooms(&self.id)
    }

    /// A broadcast to `room`, except this socket (Node's `socket.to(room)`).
    pub fn to(&self, room: impl Into<String>) -> BroadcastOperator {
        self.broadcast().to(room)
    }

    /// A broadcast to the namespace except `room` and this socket.
    pub fn except(&self, room: impl Into<String>) -> BroadcastOperator {
        self.broadcast().except(room)
    }

    /// A broadcast to every socket of the namespace but this one.
    pub fn broadcast(&self) -> BroadcastOperator {
        BroadcastOperator::new(self.ns.clone()).except(self.id.to_string())
    }

    /// Makes the socket leave its namespace: the client gets a DISCONNECT, the reason is
    /// [`DisconnectReason::ServerNamespaceDisconnect`]. The connection stays open for the
    /// client's other namespaces.
    pub fn disconnect(&self) {
        if self.connected() {
            let _ = self.send(Packet::disconnect(self.ns.name_str()));
            self.close(DisconnectReason::ServerNamespaceDisconnect);
        }
    }

    /// Disconnects every socket of this client, then closes its connection (Node's
    /// `socket.disconnect(true)`).
    pub fn disconnect_all(&self) {
        let sockets: Vec<_> = self.conn.data().sockets().collect();
        for socket in sockets {
            socket.disconnect();
        }
        self.conn.close();
    }

    /// Encodes and queues one packet, with its attachments, on the connection.
    pub(crate) fn send(&self, packet: Packet) -> Result<(), EmitError> {
        if !self.connected() {
            return Err(EmitError::Disconnected);
        }
        let parser = self.ns.parser();
        let frames = if parser == Parser::Msgpack {
            // The one encoding that can fail: tell the caller rather than drop the packet.
            let frames = msgpack_frames(&packet).map_err(EmitError::Encode)?;
            self.notify_outgoing(&packet);
            frames
        } else {
            self.notify_outgoing(&packet);
            into_frames(packet, parser)
        };
        let Some(observer) = self.io.observer() else {
            return send_frames(&self.conn, frames);
        };
        let (packets, bytes) = data_of(&frames);
        send_frames(&self.conn, frames)?;
        observer.packets_out(packets, bytes);
        Ok(())
    }

    pub(crate) fn conn(&self) -> &Arc<EngineSocket<Connection>> {
        &self.conn
    }

    /// The socket's tracing span (`socket{ns, id}` at debug level, inside its connection's
    /// `engine{sid, transport}` span): its handlers run in it.
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// Runs the handler of an incoming event, after those of the events before it.
    ///
    /// Called by the connection's reader with no lock held, so an event arriving at an idle
    /// queue starts at once, on the reader's task (see [`Socket::enqueue_sized`]).
    pub(crate) fn on_event(self: &Arc<Self>, payload: Payload, ack: Option<u64>) {
        let bytes = payload.json.len() + payload.attachments.iter().map(Bytes::len).sum::<usize>();
        self.enqueue_sized(bytes, true, |now| {
            if now {
                // Its turn already: the handler's own future is the job, when one handler is all
                // the event runs (no future of `run_event` to allocate).
                let (ctx, listeners, any) = self.prepare_event(payload, ack)?;
                self.start_event(ctx, listeners, any)
            } else {
                let socket = self.clone();
                Some(Box::pin(async move {
                    if let Some((ctx, listeners, any)) = socket.prepare_event(payload, ack) {
                        socket.run_event(ctx, listeners, any).await;
                    }
                }))
            }
        });
    }

    /// The start of an event's run, when its turn comes: the observer sees it, and the
    /// listeners that run it are taken (`once` listeners are removed). `None` when nothing runs.
    fn prepare_event(
        self: &Arc<Self>,
        payload: Payload,
        ack: Option<u64>,
    ) -> Option<(HandlerContext, Handlers, Option<ErasedHandler>)> {
        if let Some(observer) = self.io.observer() {
            observer.event_received(self, &payload);
        }
        let (name, args) = payload.event().ok()?;
        let listeners = self.take_listeners(&name);
        let any = self.any_handler.read().clone();
        if listeners.is_empty() && any.is_none() && self.packet_middlewares.read().is_empty() {
            tracing::debug!(event = %name, "event with no listener");
            return None;
        }
        tracing::debug!(event = %name, ack = ack.is_some(), "event");
        let ctx = HandlerContext {
            socket: SocketRef(self.clone()),
            kind: ContextKind::Event {
                name,
                payload,
                args,
                ack,
            },
        };
        Some((ctx, listeners, any))
    }

    /// Runs a prepared event up to its first wait: one handler alone is called here and its
    /// future returned; anything more is returned as [`Socket::run_event`].
    fn start_event(
        self: &Arc<Self>,
        mut ctx: HandlerContext,
        listeners: Handlers,
        any: Option<ErasedHandler>,
    ) -> Option<BoxFuture> {
        match listeners {
            Handlers {
                first: Some(handler),
                rest,
            } if rest.is_empty() && any.is_none() && self.packet_middlewares.read().is_empty() => {
                self.call_handler(&handler, &mut ctx)
            }
            listeners => {
                let socket = self.clone();
                Some(Box::pin(async move {
                    socket.run_event(ctx, listeners, any).await;
                }))
            }
        }
    }

    /// Runs an event's packet middlewares, then its handlers, one after the other.
    async fn run_event(
        &self,
        mut ctx: HandlerContext,
        listeners: Handlers,
        any: Option<ErasedHandler>,
    ) {
        if !self.run_packet_middlewares(&mut ctx).await {
            return;
        }
        for handler in any.into_iter().chain(listeners) {
            self.run_handler(&handler, &mut ctx).await;
        }
    }

    /// The handlers of the listeners of `event`, in order; `once` listeners are removed (they
    /// run this time, and never again). No allocation for an event with one listener.
    fn take_listeners(&self, event: &str) -> Handlers {
        let collect = |all: &[Listener]| {
            let mut matching = all.iter().filter(|l| &*l.event == event);
            Handlers {
                first: matching.next().map(|l| l.handler.clone()),
                rest: matching.map(|l| l.handler.clone()).collect(),
            }
        };
        {
            let all = self.listeners.read();
            if !all.iter().any(|l| l.once && &*l.event == event) {
                return collect(&all);
            }
        }
        let mut all = self.listeners.write();
        let handlers = collect(&all);
        all.retain(|l| !(l.once && &*l.event == event));
        handlers
    }

    /// Runs the per-packet middlewares in order; false (the client's ack answered with the
    /// error) if one refused the event.
    async fn run_packet_middlewares(&self, ctx: &mut HandlerContext) -> bool {
        let middlewares = self.packet_middlewares.read().clone();
        for middleware in middlewares {
            let refusal = match middleware(ctx) {
                Ok(future) => future.await.err(),
                Err(Rejected(message)) => Some(message),
            };
            if let Some(message) = refusal {
                tracing::debug!(%message, "event refused by a packet middleware");
                self.answer_error(ctx, &message);
                return false;
            }
        }
        true
    }

    /// Answers the client's ack, if it asked for one, with `{"error": message}`.
    fn answer_error(&self, ctx: &HandlerContext, message: &str) {
        if let Some(id) = ctx.ack_id() {
            let error = serde_json::json!({ "error": message });
            let _ = self.send(Packet::ack(
                self.ns.name_str(),
                Payload::json(format!("[{error}]")),
                id,
            ));
        }
    }

    /// Extracts and runs one event handler; a refusal answers the client's ack, if it asked.
    async fn run_handler(&self, handler: &ErasedHandler, ctx: &mut HandlerContext) {
        if let Some(future) = self.call_handler(handler, ctx) {
            future.await;
        }
    }

    /// Extracts an event handler's arguments and calls it: its future, or `None` when an
    /// extractor refused the event (the client's ack, if it asked, is answered).
    fn call_handler(&self, handler: &ErasedHandler, ctx: &mut HandlerContext) -> Option<BoxFuture> {
        match handler(ctx) {
            Ok(future) => Some(future),
            Err(Rejected(message)) => {
                tracing::debug!(%message, "event refused by an extractor");
                self.answer_error(ctx, &message);
                None
            }
        }
    }

    /// Hands the client's answer to the emit waiting for it; unknown or repeated ids are
    /// ignored, so a callback runs at most once.
    pub(crate) fn on_ack(&self, id: u64, payload: Payload) {
        if let Some(tx) = self.acks.lock().remove(&id) {
            let _ = tx.send(payload);
        }
    }

    /// Queues a job behind the socket's pending handlers.
    pub(crate) fn enqueue(&self, future: BoxFuture) {
        self.enqueue_sized(0, false, |_| Some(future));
    }

    /// Runs the connect handler's `future` (queued first: nothing is queued before it) on the
    /// caller's task as far as it goes without waiting, like an event's handler: a handler
    /// that only registers listeners starts no task.
    pub(crate) fn start_connect_handler(&self, future: BoxFuture) {
        self.enqueue_sized(0, true, |_| Some(future));
    }

    /// Queues a job for an event of `bytes` bytes. A client whose events pile up past
    /// [`MAX_PENDING_EVENTS`] or [`MAX_PENDING_BYTES`] is cut off as a flood.
    ///
    /// Jobs run one at a time, in order, on a task started when a job arrives at an idle queue
    /// and ending when the queue is empty: an idle socket holds no task. With `inline`, a job
    /// arriving at an idle queue is first run right here, by the caller (which must hold no
    /// lock a handler could want): most handlers finish without waiting, and then no task is
    /// started at all. One that waits continues on a task.
    ///
    /// `job(now)` makes the job: `now` when it runs at once (it may do its synchronous start
    /// itself and return what is left, or nothing), else to be queued.
    fn enqueue_sized(
        &self,
        bytes: usize,
        inline: bool,
        job: impl FnOnce(bool) -> Option<BoxFuture>,
    ) {
        let idle = {
            let mut queue = self.queue.lock();
            if queue.closed {
                return;
            }
            if !queue.admit(bytes) {
                drop(queue);
                let _span = self.span.enter();
                tracing::warn!("too many pending events, closing the connection");
                self.conn.close();
                return;
            }
            let idle = !std::mem::replace(&mut queue.draining, true);
            if !(idle && inline) {
                if let Some(future) = job(false) {
                    queue.jobs.push_back(Job { future, bytes });
                } else {
                    queue.release(bytes);
                }
                idle
            } else {
                queue.release(bytes);
                drop(queue);
                let Some(rest) = self.run_inline(job) else {
                    return self.finish_inline();
                };
                queue = self.queue.lock();
                queue.jobs.push_front(Job {
                    future: rest,
                    bytes: 0,
                });
                true
            }
        };
        if idle {
            self.spawn_drain();
        }
    }

    /// Makes a job and polls it once on the caller's task; returns it if it is not done. Its
    /// wakeups are dropped: the task that takes it over polls it again, which registers that
    /// task instead.
    fn run_inline(&self, job: impl FnOnce(bool) -> Option<BoxFuture>) -> Option<BoxFuture> {
        let _span = self.span.enter();
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let run = || {
            let mut future = job(true)?;
            future.as_mut().poll(&mut cx).is_pending().then_some(future)
        };
        match std::panic::catch_unwind(AssertUnwindSafe(run)) {
            Ok(rest) => rest,
            Err(_) => {
                tracing::error!("a handler panicked");
                None
            }
        }
    }

    /// After a job ran inline to its end: jobs queued meanwhile (by the job itself) get a task.
    fn finish_inline(&self) {
        let more = {
            let mut queue = self.queue.lock();
            queue.draining = !queue.jobs.is_empty();
            queue.draining
        };
        if more {
            self.spawn_drain();
        }
    }

    fn spawn_drain(&self) {
        if let Some(socket) = self.me.upgrade() {
            let span = self.span.clone();
            tokio::spawn(tracing::Instrument::instrument(socket.drain(), span));
        }
    }

    /// Runs queued jobs until the queue is empty.
    ///
    /// Each job runs as the connection's own work, as one run on the reader's task does: what
    /// it sends to its own client may go past the send queue's caps, and the next job waits
    /// until the writer took what filled them (so that the answers of a burst of events whose
    /// handlers wait are written, not refused).
    async fn drain(self: Arc<Self>) {
        loop {
            let job = {
                let mut queue = self.queue.lock();
                match queue.jobs.pop_front() {
                    Some(job) => {
                        queue.release(job.bytes);
                        job
                    }
                    None => {
                        queue.draining = false;
                        return;
                    }
                }
            };
            self.conn.until_unblocked().await;
            let own = OwnWork {
                conn: &self.conn,
                future: job.future,
            };
            if AssertUnwindSafe(own).catch_unwind().await.is_err() {
                tracing::error!("a handler panicked");
            }
        }
    }

    /// Leaves the namespace for `reason`. The `disconnecting` handler runs first, with the rooms
    /// still joined; then rooms are left, pending acks fail, and the disconnect handler runs,
    /// after the handlers already queued. Idempotent.
    pub(crate) fn close(&self, reason: DisconnectReason) {
        if !self.connected.swap(false, Ordering::AcqRel) {
            return;
        }
        self.span
            .in_scope(|| tracing::debug!(%reason, "socket disconnected"));
        if let Some(observer) = self.io.observer() {
            observer.socket_disconnected(self, reason);
        }
        self.conn.data().remove(self.ns.name());
        self.acks.lock().clear();
        let disconnecting = self.disconnecting_handler.read().clone();
        match (disconnecting, self.me.upgrade()) {
            (Some(handler), Some(me)) => {
                if let Some(future) = self.run_close_handler(&handler, reason) {
                    self.enqueue(future);
                }
                self.enqueue(Box::pin(async move {
                    if let Some(future) = me.leave_namespace(reason) {
                        future.await;
                    }
                }));
            }
            _ => {
                if let Some(future) = self.leave_namespace(reason) {
                    self.enqueue(future);
                }
            }
        }
        // Nothing is queued after the disconnect handlers.
        self.queue.lock().closed = true;
    }

    /// Leaves every room and the namespace; returns the disconnect handler's future. Under
    /// recovery, a socket whose connection was lost is kept for its client's return first.
    fn leave_namespace(&self, reason: DisconnectReason) -> Option<BoxFuture> {
        if let Some(pid) = &self.pid
            && reason.is_recoverable()
        {
            self.ns.adapter().persist_session(Session {
                sid: self.id.clone(),
                pid: pid.clone(),
                rooms: self.rooms(),
                data: self.data_value(),
            });
        }
        self.ns.adapter().del_all(&self.id);
        self.ns.remove_socket(&self.id);
        let handler = self.disconnect_handler.read().clone()?;
        self.run_close_handler(&handler, reason)
    }

    fn run_close_handler(
        &self,
        handler: &ErasedHandler,
        reason: DisconnectReason,
    ) -> Option<BoxFuture> {
        let mut ctx = HandlerContext {
            socket: SocketRef(self.me.upgrade()?),
            kind: ContextKind::Disconnect { reason },
        };
        match handler(&mut ctx) {
            Ok(future) => Some(future),
            Err(Rejected(message)) => {
                tracing::debug!(%message, "disconnect handler refused");
                None
            }
        }
    }

    /// Registers `self` in its namespace and own room; called once CONNECT succeeded.
    pub(crate) fn joined(self: &Arc<Self>) {
        self.ns.add_socket(self.clone());
        // Its own room, joined quietly: not a room the user chose.
        self.ns.adapter().add_all(&self.id, &[self.id.to_string()]);
    }
}

/// One listener of an event.
struct Listener {
    event: Box<str>,
    handler: ErasedHandler,
    once: bool,
}

/// The handlers an event runs.
struct Handlers {
    first: Option<ErasedHandler>,
    rest: Vec<ErasedHandler>,
}

impl Handlers {
    fn is_empty(&self) -> bool {
        self.first.is_none()
    }
}

impl IntoIterator for Handlers {
    type Item = ErasedHandler;
    type IntoIter =
        std::iter::Chain<std::option::IntoIter<ErasedHandler>, std::vec::IntoIter<ErasedHandler>>;

    fn into_iter(self) -> Self::IntoIter {
        self.first.into_iter().chain(self.rest)
    }
}

/// The `on_any_outgoing` callback.
type OutgoingListener = Arc<dyn Fn(&str, &str) + Send + Sync>;

/// A job polled as its connection's own work ([`EngineSocket::as_own_work`]).
struct OwnWork<'a> {
    conn: &'a EngineSocket<Connection>,
    future: BoxFuture,
}

impl std::future::Future for OwnWork<'_> {
    type Output = ();

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        let this = self.get_mut();
        this.conn.as_own_work(|| this.future.as_mut().poll(cx))
    }
}

/// A handler run waiting in a socket's queue, with the size of the event it handles.
struct Job {
    future: BoxFuture,
    bytes: usize,
}

/// The handler runs waiting in a socket's queue.
#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    events: usize,
    bytes: usize,
    /// A task is running the jobs.
    draining: bool,
    /// The socket left: nothing more is queued.
    closed: bool,
}

impl Queue {
    fn admit(&mut self, bytes: usize) -> bool {
        if self.events >= MAX_PENDING_EVENTS || self.bytes + bytes > MAX_PENDING_BYTES {
            return false;
        }
        self.events += 1;
        self.bytes += bytes;
        true
    }

    fn release(&mut self, bytes: usize) {
        self.events = self.events.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub(bytes);
    }
}

/// The payload of `["event", ...data, ...placeholders]` for an event to `ns` (asking for
/// answer `ack`). Its JSON is written after the packet's Engine.IO text header, in the same
/// buffer, so that encoding the packet shares that buffer ([`Packet::encode_shared`]).
pub(crate) fn event_payload<T: Serialize + ?Sized>(
    ns: &str,
    ack: Option<u64>,
    event: &str,
    data: &T,
    attachments: Vec<Bytes>,
) -> Result<Payload, EmitError> {
    if is_reserved_event(event) {
        return Err(EmitError::ReservedEvent(event.to_owned()));
    }
    packet_payload(ns, false, ack, Some(event), data, attachments)
}

/// The payload of an event (`event` given) or an ack (`is_ack`, answering `id`) to `ns`: its
/// JSON array written after the packet's Engine.IO text header, in one buffer, with a
/// placeholder per attachment.
pub(crate) fn packet_payload<T: Serialize + ?Sized>(
    ns: &str,
    is_ack: bool,
    id: Option<u64>,
    event: Option<&str>,
    data: &T,
    attachments: Vec<Bytes>,
) -> Result<Payload, EmitError> {
    let (text, (start, found)) = build_text(|text| {
        write_header(text, "4", ns, is_ack, id);
        let start = text.len();
        let mut found = match event {
            Some(event) => args::push_event_array(text, event, data)?,
            None => args::push_args_array(text, data)?,
        };
        append_placeholders(text, &mut found, attachments);
        Ok::<_, EmitError>((start, found))
    })?;
    let end = text.len();
    Ok(Payload::new(text.into_slice(start..end), found))
}

thread_local! {
    /// Where a packet's text is written before it is copied into a buffer of its exact size:
    /// one buffer per thread, grown once, instead of a buffer per packet regrown as the
    /// serializer writes (a 4 KiB argument took seven reallocations).
    static TEXT: RefCell<String> = const { RefCell::new(String::new()) };
}

/// The largest text buffer a thread keeps between packets.
const TEXT_KEEP: usize = 64 * 1024;

/// The shortest text given away with its buffer instead of copied out of it.
const TEXT_GIVE: usize = 1024;

/// Runs `write` on an empty text buffer (the thread's, unless a `Serialize` implementation
/// emits from inside one: then a new one) and returns what it wrote as a `Str` of its size.
fn build_text<R, E>(write: impl FnOnce(&mut String) -> Result<R, E>) -> Result<(Str, R), E> {
    TEXT.with(|buffer| match buffer.try_borrow_mut() {
        Ok(mut text) => {
            text.clear();
            let result = write(&mut text);
            let out = result.map(|r| {
                let written = if text.len() < TEXT_GIVE {
                    Str::from(text.as_str())
                } else {
                    // A large text is given away rather than copied: cut to its size (glibc
                    // shrinks a block in place), the thread's buffer replaced by one as large
                    // (none past what a thread keeps).
                    let capacity = match text.capacity() {
                        capacity if capacity > TEXT_KEEP => 0,
                        capacity => capacity,
                    };
                    let mut given = std::mem::replace(&mut *text, String::with_capacity(capacity));
                    given.shrink_to_fit();
                    Str::from(given)
                };
                (written, r)
            });
            if text.capacity() > TEXT_KEEP {
                *text = String::new();
            }
            out
        }
        Err(_) => {
            let mut text = String::new();
            let r = write(&mut text)?;
            Ok((Str::from(text), r))
        }
    })
}

/// Appends a placeholder per attachment to the JSON array ending `text` (`[args]` becomes
/// `[args,{placeholder n},...]`, numbered after the bytes already `found`), and the attachments
/// to `found`.
pub(crate) fn append_placeholders(text: &mut String, found: &mut Vec<Bytes>, more: Vec<Bytes>) {
    if more.is_empty() {
        return;
    }
    text.pop();
    for num in found.len()..found.len() + more.len() {
        if !text.ends_with('[') {
            text.push(',');
        }
        let _ = write!(text, r#"{{"_placeholder":true,"num":{num}}}"#);
    }
    text.push(']');
    found.extend(more);
}

/// The Engine.IO messages of a packet as `parser` writes it: its text, then each attachment
/// (the default parser), or one binary message (msgpack).
pub(crate) fn frames(packet: &Packet, parser: Parser) -> Frames {
    if parser == Parser::Msgpack {
        return msgpack_frame(packet);
    }
    // Encoded once with the Engine.IO message type, so that every recipient's transport sends
    // the same buffer as it is.
    text_frames(
        packet.encode_shared("4"),
        packet.attachments().iter().cloned(),
    )
}

/// [`frames`] of a packet given away: its text keeps the payload's reference to its buffer.
pub(crate) fn into_frames(packet: Packet, parser: Parser) -> Frames {
    if parser == Parser::Msgpack {
        return msgpack_frame(&packet);
    }
    let (text, attachments) = packet.into_shared("4");
    text_frames(text, attachments)
}

fn msgpack_frame(packet: &Packet) -> Frames {
    msgpack_frames(packet).unwrap_or_else(|error| {
        // A placeholder without its attachment (the raw text of an `Args` holding binary).
        tracing::error!(%error, "packet not encodable, dropped");
        Frames::Many(Vec::new())
    })
}

/// The one binary message of a packet (msgpack); an error for a payload msgpack cannot carry.
fn msgpack_frames(packet: &Packet) -> Result<Frames, belfry_core::msgpack::WireError> {
    belfry_core::parser::msgpack::encode(packet)
        .map(|message| Frames::One([EnginePacket::Binary(message)]))
}

fn text_frames<A>(text: Str, attachments: A) -> Frames
where
    A: IntoIterator<Item = Bytes>,
    A::IntoIter: ExactSizeIterator,
{
    let attachments = attachments.into_iter();
    let text = EnginePacket::Encoded(text);
    if attachments.len() == 0 {
        return Frames::One([text]);
    }
    let mut frames = Vec::with_capacity(1 + attachments.len());
    frames.push(text);
    frames.extend(attachments.map(EnginePacket::Binary));
    Frames::Many(frames)
}

/// The Engine.IO messages of one packet: most packets are one (no allocation for the list).
pub(crate) enum Frames {
    One([EnginePacket; 1]),
    Many(Vec<EnginePacket>),
}

impl std::ops::Deref for Frames {
    type Target = [EnginePacket];

    fn deref(&self) -> &[EnginePacket] {
        match self {
            Frames::One(one) => one,
            Frames::Many(many) => many,
        }
    }
}

/// Queues the frames of a packet for one connection, giving them away (see
/// [`EngineSocket::send_all_with`]).
pub(crate) fn send_frames(
    conn: &EngineSocket<Connection>,
    frames: Frames,
) -> Result<(), EmitError> {
    match frames {
        Frames::One(one) => conn.send_all_with(one, true),
        Frames::Many(many) => conn.send_all_with(many, true),
    }
    .map_err(emit_error)
}

/// Queues frames shared with other connections (a broadcast's), saying whether they may be
/// compressed (Node's `compress` flag).
pub(crate) fn send_frames_with(
    conn: &EngineSocket<Connection>,
    frames: &[EnginePacket],
    compress: bool,
) -> Result<(), EmitError> {
    conn.send_many_with(frames, compress).map_err(emit_error)
}

/// How many of `frames` carry data, and how many bytes of it, as Node's Admin UI counts what
/// goes out: the data of each Engine.IO packet (without the packet type).
pub(crate) fn data_of(frames: &[EnginePacket]) -> (usize, usize) {
    frames
        .iter()
        .map(|frame| match frame {
            // Its text starts with the Engine.IO message type.
            EnginePacket::Encoded(text) => text.len().saturating_sub(1),
            EnginePacket::Message(text) => text.len(),
            EnginePacket::Binary(data) => data.len(),
            _ => 0,
        })
        .filter(|&len| len > 0)
        .fold((0, 0), |(packets, bytes), len| (packets + 1, bytes + len))
}

fn emit_error(error: SendError) -> EmitError {
    match error {
        SendError::Full => EmitError::Full,
        _ => EmitError::Disconnected,
    }
}

/// Deserializes acknowledgement arguments: one as `R`, several as a tuple, none as `null`.
pub(crate) fn deserialize_args<R: DeserializeOwned>(
    payload: &Payload,
) -> Result<R, serde_json::Error> {
    let args = payload
        .elements()
        .map_err(<serde_json::Error as serde::de::Error>::custom)?;
    let json = match args.len() {
        0 => "null",
        1 => args.first().expect("one argument"),
        _ => &payload.json,
    };
    crate::binary::from_str(json, &payload.attachments)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_payloads_end_with_placeholders() {
        let payload = event_payload(
            "/",
            None,
            "up",
            &(1, "a"),
            vec![Bytes::from_static(b"x"); 2],
        )
        .unwrap();
        assert_eq!(
            &*payload.json,
            r#"["up",1,"a",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#
        );
        let payload = event_payload("/", None, "up", &(), vec![Bytes::from_static(b"x")]).unwrap();
        assert_eq!(&*payload.json, r#"["up",{"_placeholder":true,"num":0}]"#);
        assert!(matches!(
            event_payload("/", None, "disconnect", &(), Vec::new()),
            Err(EmitError::ReservedEvent(_))
        ));
    }

    /// Texts on either side of the length given away with their buffer come out the same, and
    /// the thread's buffer goes on serving after a large one.
    #[test]
    fn large_and_small_texts_alternate() {
        for len in [10, TEXT_GIVE - 20, TEXT_GIVE, 5000, 10, 70_000, 3] {
            let arg = "x".repeat(len);
            let payload = event_payload("/", Some(4), "big", &arg, Vec::new()).unwrap();
            assert_eq!(&*payload.json, format!(r#"["big","{arg}"]"#));
            let text = Packet::event("/", payload, Some(4)).encode_shared("4");
            assert_eq!(&*text, format!(r#"424["big","{arg}"]"#));
        }
    }
}
