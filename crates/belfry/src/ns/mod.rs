//! Namespaces: their sockets, adapter (rooms, broadcasts) and connect handler. Joining one is in
//! [`connect`], what its adapter sees in [`local_sockets`], dynamic namespaces in [`dynamic`].

use std::{
    collections::HashMap,
    fmt,
    sync::{
        Arc, Weak,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use belfry_core::proto::{SocketId, sid::SocketIdMap};
use belfry_core::{
    Str,
    adapter::{Adapter, AdapterFactory},
    parser::Parser,
};
use parking_lot::RwLock;

mod connect;
mod dynamic;
mod local_sockets;

pub(crate) use dynamic::ParentNamespace;
use local_sockets::NamespaceSockets;

use crate::{
    ConnectError, handler::ErasedHandler, observe::Observer, server_side::ServerSideHandler,
    socket::Socket,
};

/// What every namespace of a server shares.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NsOptions {
    /// The default ack timeout.
    pub(crate) ack_timeout: Duration,
    /// How packets are encoded.
    pub(crate) parser: Parser,
    /// How many of one socket's event handlers may be waiting at once.
    pub(crate) max_handlers_in_flight: usize,
    /// Connection state recovery, when on (told to the adapter).
    pub(crate) recovery: Option<belfry_core::adapter::ConnectionStateRecovery>,
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
    /// Its sockets run their event handlers one at a time (each waits for the one before).
    serial_handlers: AtomicBool,
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

/// A namespace that goes away (a dynamic namespace forgotten once empty, every namespace
/// when the server is dropped) closes its adapter: a cluster adapter releases its
/// subscriptions and tells the other servers (Node's `cleanupEmptyChildNamespaces`). Closing
/// twice (after `SocketIo::close`) does nothing more.
impl Drop for Namespace {
    fn drop(&mut self) {
        self.adapter.close();
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
                recovery: options.recovery,
            })),
            name,
            on_connect: RwLock::new(on_connect),
            middlewares: RwLock::new(Vec::new()),
            sockets: RwLock::new(SocketIdMap::default()),
            next_ack: AtomicU64::new(0),
            options,
            serial_handlers: AtomicBool::new(false),
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
    /// How many of one socket's event handlers may be waiting at once.
    pub(crate) fn max_handlers_in_flight(&self) -> usize {
        self.options.max_handlers_in_flight
    }

    /// Whether its sockets run their event handlers one at a time.
    pub(crate) fn serial_handlers(&self) -> bool {
        self.serial_handlers.load(Ordering::Relaxed)
    }

    pub(crate) fn set_serial_handlers(&self, serial: bool) {
        self.serial_handlers.store(serial, Ordering::Relaxed);
    }

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
