//! A socket: one client in one namespace. Its handler queue is in [`jobs`], how its packets
//! become Engine.IO messages in [`wire`].

use std::{
    collections::HashMap,
    fmt,
    ops::Deref,
    sync::{
        Arc, Weak,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use belfry_core::{
    Str,
    adapter::{BroadcastOptions, RestoredSession, Session},
    parser::{Packet, PacketData, Parser, Payload},
    proto::SocketId,
};
use belfry_engine::{Packet as EnginePacket, Sid, Socket as EngineSocket};
use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use serde::{Serialize, de::DeserializeOwned};
use tokio::sync::oneshot;

mod events;
mod jobs;
mod wire;

use jobs::Queue;
use wire::msgpack_frames;
pub(crate) use wire::{
    data_of, deserialize_args, event_payload, frames, into_frames, packet_payload, send_frames,
    send_frames_with,
};

use crate::{
    AckError, BroadcastOperator, DisconnectReason, EmitError, Handshake, SocketIo,
    client::Connection,
    handler::{BoxFuture, ContextKind, ErasedHandler, Handler, HandlerContext, Rejected, erase},
    ns::Namespace,
};

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

    /// Hands the client's answer to the emit waiting for it; unknown or repeated ids are
    /// ignored, so a callback runs at most once.
    pub(crate) fn on_ack(&self, id: u64, payload: Payload) {
        if let Some(tx) = self.acks.lock().remove(&id) {
            let _ = tx.send(payload);
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

/// The `on_any_outgoing` callback.
type OutgoingListener = Arc<dyn Fn(&str, &str) + Send + Sync>;
