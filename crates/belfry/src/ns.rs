//! Namespaces: their sockets, adapter (rooms, broadcasts) and connect handler.

use std::{
    collections::HashMap,
    fmt,
    sync::{
        Arc, Weak,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use belfry_core::proto::{SocketId, sid::SocketIdMap};
use belfry_core::{
    Str,
    adapter::{
        Adapter, AdapterFactory, BroadcastFlags, LocalAckSink, LocalSockets, RestoredSession,
        ServerSideReply, SocketInfo,
    },
    parser::{Packet, PacketData, Parser, Payload},
};
use belfry_engine::Socket as EngineSocket;
use futures_util::FutureExt;
use parking_lot::RwLock;

use crate::{
    ConnectError, SocketIo, SocketRef,
    client::Connection,
    handler::{BoxFuture, ContextKind, ErasedHandler, HandlerContext, Rejected},
    observe::Observer,
    server_side::{ServerSideEvent, ServerSideHandler},
    socket::Socket,
};

/// What every namespace of a server shares.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NsOptions {
    /// The default ack timeout.
    pub(crate) ack_timeout: Duration,
    /// How packets are encoded.
    pub(crate) parser: Parser,
}

/// A namespace: the sockets connected to it, its adapter, and the handler run on each connect.
pub(crate) struct Namespace {
    name: Str,
    /// Replaced when the namespace is registered again (`SocketIo::ns` with the same path).
    on_connect: RwLock<ErasedHandler>,
    middlewares: RwLock<Vec<ErasedHandler<Result<(), ConnectError>>>>,
    sockets: RwLock<SocketIdMap<Arc<Socket>>>,
    adapter: Arc<dyn Adapter>,
    /// Ack ids come from one counter per namespace, as in Node, so that a broadcast asking for
    /// acks is encoded once with one id for every recipient.
    next_ack: AtomicU64,
    options: NsOptions,
    /// For a child of a dynamic namespace: its parent, whose middlewares it uses and which
    /// forgets it once it is empty.
    parent: Option<Weak<ParentNamespace>>,
    /// Listeners of other servers' server-side events, by event name.
    server_side: RwLock<HashMap<String, Vec<ServerSideHandler>>>,
    /// The server's observer, once it was shown this namespace (it listens to its room events
    /// and counts its broadcasts).
    observer: std::sync::OnceLock<Arc<dyn Observer>>,
}

impl fmt::Debug for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Namespace")
            .field("name", &self.name)
            .field("sockets", &self.sockets.read().len())
            .finish_non_exhaustive()
    }
}

impl Namespace {
    pub(crate) fn new(
        name: Str,
        on_connect: ErasedHandler,
        options: NsOptions,
        parent: Option<Weak<ParentNamespace>>,
        adapter: &AdapterFactory,
    ) -> Arc<Namespace> {
        Arc::new_cyclic(|me| Namespace {
            adapter: adapter(Arc::new(NamespaceSockets {
                ns: me.clone(),
                name: name.to_string(),
            })),
            name,
            on_connect: RwLock::new(on_connect),
            middlewares: RwLock::new(Vec::new()),
            sockets: RwLock::new(SocketIdMap::default()),
            next_ack: AtomicU64::new(0),
            options,
            parent,
            server_side: RwLock::new(HashMap::new()),
            observer: std::sync::OnceLock::new(),
        })
    }

    /// Runs `on_connect` for the sockets that connect from now on.
    pub(crate) fn set_connect_handler(&self, on_connect: ErasedHandler) {
        *self.on_connect.write() = on_connect;
    }

    /// Shows `observer` this namespace's room events (once).
    pub(crate) fn observe(&self, observer: &Arc<dyn Observer>) {
        if self.observer.set(observer.clone()).is_err() {
            return;
        }
        let (observer, name) = (observer.clone(), self.name.clone());
        self.adapter
            .on_event(Box::new(move |event| observer.room_event(&name, event)));
    }

    /// Adds a listener of other servers' server-side events named `event`.
    pub(crate) fn on_server_side(&self, event: String, handler: ServerSideHandler) {
        self.server_side
            .write()
            .entry(event)
            .or_default()
            .push(handler);
    }

    /// The server's default ack timeout.
    pub(crate) fn ack_timeout(&self) -> Duration {
        self.options.ack_timeout
    }

    /// The parser that encodes this namespace's packets.
    pub(crate) fn parser(&self) -> Parser {
        self.options.parser
    }

    pub(crate) fn next_ack_id(&self) -> u64 {
        self.next_ack.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn name_str(&self) -> Str {
        self.name.clone()
    }

    pub(crate) fn add_middleware(&self, middleware: ErasedHandler<Result<(), ConnectError>>) {
        self.middlewares.write().push(middleware);
    }

    /// A client asks to join. Under connection state recovery, a client presenting its
    /// private session id and last offset first gets its old socket back, if the adapter still
    /// has it. Then the middlewares run in order (asynchronously, if there are any; skipped for
    /// a recovered socket when so configured), then the connect handler's arguments are
    /// extracted. A refusal from either is answered with a CONNECT_ERROR and leaves nothing
    /// behind; otherwise the socket is registered, the client gets CONNECT, and the handler runs.
    pub(crate) fn connect(
        self: &Arc<Self>,
        io: &SocketIo,
        conn: &Arc<EngineSocket<Connection>>,
        auth: Option<Str>,
    ) {
        let Some(claim) = io
            .config()
            .recovery
            .and_then(|_| RecoveryClaim::from_auth(auth.as_deref()))
        else {
            return self.connect_as(io, conn, auth, None);
        };
        let mut restore = self.adapter.restore_session(&claim.pid, &claim.offset);
        // The in-memory adapter answers at once; a remote one is waited for on a task.
        if let Some(restored) = (&mut restore).now_or_never() {
            return self.connect_as(io, conn, auth, restored_or_log(restored));
        }
        let (ns, io, conn) = (self.clone(), io.clone(), conn.clone());
        tokio::spawn(async move {
            let restored = restored_or_log(restore.await);
            if !conn.is_closed() {
                ns.connect_as(&io, &conn, auth, restored);
            }
        });
    }

    /// Creates the socket (the `restored` one, if any) and runs the middlewares.
    fn connect_as(
        self: &Arc<Self>,
        io: &SocketIo,
        conn: &Arc<EngineSocket<Connection>>,
        auth: Option<Str>,
        restored: Option<RestoredSession>,
    ) {
        let socket = Socket::new(
            self.clone(),
            conn.clone(),
            io.clone(),
            auth.as_deref(),
            restored.as_ref().map(|restored| &restored.session),
        );
        let skip_middlewares = match restored {
            Some(restored) => {
                socket.restore(restored);
                io.config()
                    .recovery
                    .is_some_and(|recovery| recovery.get_skip_middlewares())
            }
            None => false,
        };
        let middlewares = match self.parent.as_ref().and_then(Weak::upgrade) {
            _ if skip_middlewares => Vec::new(),
            Some(parent) => parent.middlewares.read().clone(),
            None => self.middlewares.read().clone(),
        };
        if middlewares.is_empty() {
            self.accept(socket, auth);
            return;
        }
        let ns = self.clone();
        tokio::spawn(async move {
            for middleware in middlewares {
                let mut ctx = HandlerContext {
                    socket: SocketRef(socket.clone()),
                    kind: ContextKind::Connect { auth: auth.clone() },
                };
                let refusal = match middleware(&mut ctx) {
                    Err(Rejected(message)) => Some(ConnectError::new(message)),
                    Ok(future) => future.await.err(),
                };
                if let Some(refusal) = refusal {
                    ns.refuse(&socket, &refusal);
                    return;
                }
            }
            // Node sends nothing if the connection closed while the middlewares ran.
            if !socket.conn().is_closed() {
                ns.accept(socket, auth);
            }
        });
    }

    /// Extracts the connect handler's arguments, then registers the socket and answers CONNECT,
    /// or refuses.
    fn accept(self: &Arc<Self>, socket: Arc<Socket>, auth: Option<Str>) {
        let mut ctx = HandlerContext {
            socket: SocketRef(socket.clone()),
            kind: ContextKind::Connect { auth },
        };
        let on_connect = self.on_connect.read().clone();
        match on_connect(&mut ctx) {
            Err(Rejected(message)) => self.refuse(&socket, &ConnectError::new(message)),
            Ok(future) => {
                socket.conn().data().insert(self.name(), socket.clone());
                socket.joined();
                if let Some(parent) = self.parent.as_ref().and_then(Weak::upgrade) {
                    parent.keep(self);
                }
                let pid = socket.pid().map(SocketId::as_str);
                let packet = if socket.conn().protocol() == 3 {
                    // socket.io 2.x clients get a CONNECT without payload.
                    Packet {
                        ns: self.name.clone(),
                        data: PacketData::Connect(None),
                    }
                } else {
                    Packet::connect(self.name.clone(), socket.id().as_str(), pid)
                };
                let _ = socket.send(packet);
                socket
                    .span()
                    .in_scope(|| tracing::debug!("socket connected"));
                if let Some(observer) = socket.io_ref().observer() {
                    observer.socket_connected(&socket);
                }
                socket.start_connect_handler(future);
            }
        }
    }

    fn refuse(&self, socket: &Arc<Socket>, refusal: &ConnectError) {
        socket
            .span()
            .in_scope(|| tracing::debug!(message = %refusal.message, "connect refused"));
        let packet = if socket.conn().protocol() == 3 {
            // socket.io 2.x's ERROR packet: the data, or else the message (Node's).
            let payload = match &refusal.data {
                Some(data) => data.to_string(),
                None => serde_json::Value::from(refusal.message.as_str()).to_string(),
            };
            Packet {
                ns: self.name.clone(),
                data: PacketData::ConnectError(payload.into()),
            }
        } else {
            Packet::connect_error(self.name.clone(), &refusal.message, refusal.data.as_ref())
        };
        let _ = socket.send(packet);
        socket.close(crate::DisconnectReason::ServerNamespaceDisconnect);
    }

    pub(crate) fn add_socket(&self, socket: Arc<Socket>) {
        self.sockets.write().insert(socket.id().clone(), socket);
    }

    /// Removes a socket; an emptied child of a dynamic namespace is forgotten by its parent.
    pub(crate) fn remove_socket(&self, id: &SocketId) {
        let empty = {
            let mut sockets = self.sockets.write();
            sockets.remove(id);
            sockets.is_empty()
        };
        if empty && let Some(parent) = self.parent.as_ref().and_then(Weak::upgrade) {
            parent.forget_if_empty(self);
        }
    }

    fn is_empty(&self) -> bool {
        self.sockets.read().is_empty()
    }

    pub(crate) fn sockets(&self) -> Vec<Arc<Socket>> {
        self.sockets.read().values().cloned().collect()
    }

    /// The socket `id`, if connected here.
    pub(crate) fn socket(&self, id: &SocketId) -> Option<Arc<Socket>> {
        self.sockets.read().get(id).cloned()
    }

    pub(crate) fn adapter(&self) -> &Arc<dyn Adapter> {
        &self.adapter
    }
}

/// What a client presents to recover its socket: in its CONNECT auth, `pid` and `offset`,
/// both strings (the client adds them to its own auth).
#[derive(serde::Deserialize)]
struct RecoveryClaim {
    pid: String,
    offset: String,
}

impl RecoveryClaim {
    fn from_auth(auth: Option<&str>) -> Option<RecoveryClaim> {
        serde_json::from_str(auth?).ok()
    }
}

/// The session an adapter restored; a failure is logged and gives a fresh socket, as in Node.
fn restored_or_log(
    restored: Result<Option<RestoredSession>, belfry_core::adapter::AdapterError>,
) -> Option<RestoredSession> {
    restored.unwrap_or_else(|error| {
        tracing::debug!(%error, "session not restored");
        None
    })
}

/// The namespace as its adapter sees it.
struct NamespaceSockets {
    ns: Weak<Namespace>,
    name: String,
}

impl NamespaceSockets {
    /// Runs `f` on each of the sockets `ids` still here; looked up under one lock, run without
    /// it (`f` may run user callbacks).
    fn each(&self, ids: &[SocketId], mut f: impl FnMut(&Arc<Socket>)) {
        if let Some(ns) = self.ns.upgrade() {
            let mut sockets = Vec::with_capacity(ids.len());
            {
                let all = ns.sockets.read();
                sockets.extend(ids.iter().filter_map(|id| all.get(id).cloned()));
            }
            for socket in &sockets {
                f(socket);
            }
        }
    }
}

impl LocalSockets for NamespaceSockets {
    fn namespace(&self) -> &str {
        &self.name
    }

    fn send(&self, ids: &[SocketId], packet: &Packet, flags: &BroadcastFlags) -> usize {
        let Some(ns) = self.ns.upgrade() else {
            return 0;
        };
        // Encoded once: every recipient's queue holds the same frames.
        let frames = crate::socket::frames(packet, ns.parser());
        let compress = flags.compress != Some(false);
        let mut delivered = 0;
        // Queued under the map's read lock, without taking a reference on each socket (that
        // touched every recipient twice more): queuing runs no user code. The outgoing
        // listeners (user code) of the recipients that have any run after, without the lock.
        let mut observed = Vec::new();
        {
            let all = ns.sockets.read();
            for socket in ids.iter().filter_map(|id| all.get(id)) {
                // Node's `volatile`: dropped for a client that cannot take it right now.
                if flags.volatile && !socket.conn().is_writable() {
                    continue;
                }
                if socket.observes_outgoing() {
                    observed.push(socket.clone());
                }
                match crate::socket::send_frames_with(socket.conn(), &frames, compress) {
                    Ok(()) => delivered += 1,
                    Err(crate::EmitError::Full) if !flags.volatile => {
                        tracing::debug!(id = %socket.id(), "broadcast skipped a full socket");
                    }
                    Err(_) => {}
                }
            }
        }
        for socket in observed {
            socket.notify_outgoing(packet);
        }
        if let Some(observer) = ns.observer.get()
            && delivered > 0
        {
            let (packets, bytes) = crate::socket::data_of(&frames);
            observer.packets_out(packets * delivered, bytes * delivered);
        }
        delivered
    }

    fn join(&self, ids: &[SocketId], rooms: &[String]) {
        self.each(ids, |socket| {
            for room in rooms {
                socket.join(room.clone());
            }
        });
    }

    fn leave(&self, ids: &[SocketId], rooms: &[String]) {
        self.each(ids, |socket| {
            for room in rooms {
                socket.leave(room);
            }
        });
    }

    fn disconnect(&self, ids: &[SocketId], close: bool) {
        self.each(ids, |socket| {
            if close {
                socket.disconnect_all();
            } else {
                socket.disconnect();
            }
        });
    }

    fn describe(&self, ids: &[SocketId]) -> Vec<SocketInfo> {
        let mut infos = Vec::with_capacity(ids.len());
        self.each(ids, |socket| {
            infos.push(SocketInfo {
                id: socket.id().to_string(),
                handshake: serde_json::to_value(socket.handshake()).unwrap_or_default(),
                rooms: socket.rooms(),
                data: socket.data_value(),
            });
        });
        infos
    }

    fn send_with_ack(
        &self,
        ids: &[SocketId],
        payload: &Payload,
        timeout: Duration,
        on_answer: LocalAckSink,
    ) -> usize {
        let Some(ns) = self.ns.upgrade() else {
            return 0;
        };
        let id = ns.next_ack_id();
        let packet = Packet::event(ns.name_str(), payload.clone(), Some(id));
        let frames = crate::socket::frames(&packet, ns.parser());
        let mut waiting = Vec::new();
        self.each(ids, |socket| {
            if let Some(answer) = socket.send_expecting_ack(id, &packet, &frames) {
                waiting.push((socket.clone(), answer));
            }
        });
        let sent = waiting.len();
        if sent > 0 {
            // One task waits for every answer of this broadcast.
            tokio::spawn(async move {
                let answers = waiting.into_iter().map(|(socket, answer)| async move {
                    socket.wait_ack_payload(id, answer, timeout).await.ok()
                });
                let mut answers: futures_util::stream::FuturesUnordered<_> = answers.collect();
                while let Some(answer) = futures_util::StreamExt::next(&mut answers).await {
                    if let Some(payload) = answer {
                        on_answer(payload);
                    }
                }
            });
        }
        sent
    }

    fn server_side_event(&self, data: Vec<serde_json::Value>, reply: Option<ServerSideReply>) {
        let Some(ns) = self.ns.upgrade() else {
            return;
        };
        let Some(event) = ServerSideEvent::new(data, reply) else {
            tracing::debug!(ns = %self.name, "server-side event without a name dropped");
            return;
        };
        let handlers = ns
            .server_side
            .read()
            .get(event.event())
            .cloned()
            .unwrap_or_default();
        for handler in handlers {
            let future: BoxFuture = handler(event.clone());
            tokio::spawn(future);
        }
    }
}

/// A dynamic namespace: a matcher for namespace names, and the handler and middlewares its
/// children share. A child is created by the first CONNECT whose name matches, and forgotten
/// when its last socket leaves.
pub(crate) struct ParentNamespace {
    matcher: Box<dyn Fn(&str) -> bool + Send + Sync>,
    on_connect: ErasedHandler,
    middlewares: RwLock<Vec<ErasedHandler<Result<(), ConnectError>>>>,
    children: RwLock<HashMap<String, Arc<Namespace>>>,
    options: NsOptions,
    adapter: AdapterFactory,
}

impl fmt::Debug for ParentNamespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParentNamespace")
            .field("children", &self.children.read().keys())
            .finish_non_exhaustive()
    }
}

impl ParentNamespace {
    pub(crate) fn new(
        matcher: Box<dyn Fn(&str) -> bool + Send + Sync>,
        on_connect: ErasedHandler,
        options: NsOptions,
        adapter: AdapterFactory,
    ) -> Arc<ParentNamespace> {
        Arc::new(ParentNamespace {
            matcher,
            on_connect,
            middlewares: RwLock::new(Vec::new()),
            children: RwLock::new(HashMap::new()),
            options,
            adapter,
        })
    }

    pub(crate) fn add_middleware(&self, middleware: ErasedHandler<Result<(), ConnectError>>) {
        self.middlewares.write().push(middleware);
    }

    /// The existing child named `name`.
    pub(crate) fn child(&self, name: &str) -> Option<Arc<Namespace>> {
        self.children.read().get(name).cloned()
    }

    /// The child named `name`, created if `name` matches and it does not exist yet.
    pub(crate) fn child_for_connect(self: &Arc<Self>, name: &str) -> Option<Arc<Namespace>> {
        if let Some(child) = self.child(name) {
            return Some(child);
        }
        if !(self.matcher)(name) {
            return None;
        }
        let mut children = self.children.write();
        let child = children.entry(name.to_owned()).or_insert_with(|| {
            tracing::debug!(ns = %name, "dynamic namespace created");
            Namespace::new(
                Str::from(name),
                self.on_connect.clone(),
                self.options,
                Some(Arc::downgrade(self)),
                &self.adapter,
            )
        });
        Some(child.clone())
    }

    pub(crate) fn children(&self) -> Vec<Arc<Namespace>> {
        self.children.read().values().cloned().collect()
    }

    /// Puts `child` back if it was forgotten while a socket was joining it.
    fn keep(&self, child: &Arc<Namespace>) {
        self.children
            .write()
            .entry(child.name().to_owned())
            .or_insert_with(|| child.clone());
    }

    /// Forgets `child` if it has no socket (checked under the lock that `keep` takes).
    fn forget_if_empty(&self, child: &Namespace) {
        let mut children = self.children.write();
        if let Some(current) = children.get(child.name())
            && std::ptr::eq(Arc::as_ptr(current), child)
            && child.is_empty()
        {
            children.remove(child.name());
            tracing::debug!(ns = %child.name(), "empty dynamic namespace removed");
        }
    }
}
