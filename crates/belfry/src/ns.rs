//! Namespaces: their sockets, rooms and connect handler.

use std::{
    collections::{HashMap, HashSet},
    fmt,
    sync::{
        Arc, Weak,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use belfry_core::{Str, parser::Packet};
use belfry_engine::{Sid, Socket as EngineSocket};
use parking_lot::RwLock;

use crate::{
    ConnectError, SocketIo, SocketRef,
    client::Connection,
    handler::{ContextKind, ErasedHandler, HandlerContext, Rejected},
    socket::Socket,
};

/// A namespace: the sockets connected to it, their rooms, and the handler run on each connect.
pub(crate) struct Namespace {
    name: Str,
    on_connect: ErasedHandler,
    middlewares: RwLock<Vec<ErasedHandler<Result<(), ConnectError>>>>,
    sockets: RwLock<HashMap<Sid, Arc<Socket>>>,
    rooms: RwLock<HashMap<String, HashSet<Sid>>>,
    /// Ack ids come from one counter per namespace, as in Node, so that a broadcast asking for
    /// acks is encoded once with one id for every recipient.
    next_ack: AtomicU64,
    ack_timeout: Duration,
    /// For a child of a dynamic namespace: its parent, whose middlewares it uses and which
    /// forgets it once it is empty.
    parent: Option<Weak<ParentNamespace>>,
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
        ack_timeout: Duration,
        parent: Option<Weak<ParentNamespace>>,
    ) -> Arc<Namespace> {
        Arc::new(Namespace {
            name,
            on_connect,
            middlewares: RwLock::new(Vec::new()),
            sockets: RwLock::new(HashMap::new()),
            rooms: RwLock::new(HashMap::new()),
            next_ack: AtomicU64::new(0),
            ack_timeout,
            parent,
        })
    }

    /// The server's default ack timeout.
    pub(crate) fn ack_timeout(&self) -> Duration {
        self.ack_timeout
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

    /// A client asks to join: the middlewares run in order (asynchronously, if there are any),
    /// then the connect handler's arguments are extracted. A refusal from either is answered
    /// with a CONNECT_ERROR and leaves nothing behind; otherwise the socket is registered, the
    /// client gets CONNECT, and the handler runs.
    pub(crate) fn connect(
        self: &Arc<Self>,
        io: &SocketIo,
        conn: &Arc<EngineSocket<Connection>>,
        auth: Option<Str>,
    ) {
        let socket = Socket::new(self.clone(), conn.clone(), io.clone(), auth.as_deref());
        let middlewares = match self.parent.as_ref().and_then(Weak::upgrade) {
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
        match (self.on_connect)(&mut ctx) {
            Err(Rejected(message)) => self.refuse(&socket, &ConnectError::new(message)),
            Ok(future) => {
                socket.conn().data().insert(self.name(), socket.clone());
                socket.joined();
                if let Some(parent) = self.parent.as_ref().and_then(Weak::upgrade) {
                    parent.keep(self);
                }
                let packet = Packet::connect(self.name.clone(), socket.id().as_str());
                let _ = socket.send(&packet);
                tracing::debug!(ns = %self.name, id = %socket.id(), "socket connected");
                socket.enqueue(future);
            }
        }
    }

    fn refuse(&self, socket: &Arc<Socket>, refusal: &ConnectError) {
        tracing::debug!(ns = %self.name, message = %refusal.message, "connect refused");
        let packet =
            Packet::connect_error(self.name.clone(), &refusal.message, refusal.data.as_ref());
        let _ = socket.send(&packet);
        socket.close(crate::DisconnectReason::ServerNamespaceDisconnect);
    }

    pub(crate) fn add_socket(&self, socket: Arc<Socket>) {
        self.sockets.write().insert(socket.id().clone(), socket);
    }

    /// Removes a socket; an emptied child of a dynamic namespace is forgotten by its parent.
    pub(crate) fn remove_socket(&self, id: &Sid) {
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

    pub(crate) fn add_to_room(&self, room: &str, id: &Sid) {
        self.rooms
            .write()
            .entry(room.to_owned())
            .or_default()
            .insert(id.clone());
    }

    /// Removes `id` from `room`; a room is deleted with its last member.
    pub(crate) fn remove_from_room(&self, room: &str, id: &Sid) {
        let mut rooms = self.rooms.write();
        if let Some(members) = rooms.get_mut(room) {
            members.remove(id);
            if members.is_empty() {
                rooms.remove(room);
            }
        }
    }

    /// The names of the rooms that have members (each socket's own room included).
    pub(crate) fn room_names(&self) -> Vec<String> {
        self.rooms.read().keys().cloned().collect()
    }

    /// The sockets in any of `rooms` (every socket when `rooms` is empty) and in none of
    /// `except`, each once.
    pub(crate) fn targets(&self, rooms: &[String], except: &[String]) -> Vec<Arc<Socket>> {
        let room_map = self.rooms.read();
        let excluded: HashSet<&Sid> = except
            .iter()
            .filter_map(|room| room_map.get(room))
            .flatten()
            .collect();
        let sockets = self.sockets.read();
        if rooms.is_empty() {
            return sockets
                .iter()
                .filter(|(id, _)| !excluded.contains(id))
                .map(|(_, socket)| socket.clone())
                .collect();
        }
        let mut seen = HashSet::new();
        rooms
            .iter()
            .filter_map(|room| room_map.get(room))
            .flatten()
            .filter(|id| !excluded.contains(id) && seen.insert(*id))
            .filter_map(|id| sockets.get(id).cloned())
            .collect()
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
    ack_timeout: Duration,
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
        ack_timeout: Duration,
    ) -> Arc<ParentNamespace> {
        Arc::new(ParentNamespace {
            matcher,
            on_connect,
            middlewares: RwLock::new(Vec::new()),
            children: RwLock::new(HashMap::new()),
            ack_timeout,
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
                self.ack_timeout,
                Some(Arc::downgrade(self)),
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
