//! The server handle, [`SocketIo`]: namespaces, broadcasts, shutdown. Its builder is in
//! [`builder`], its tower layer in [`layer`], the handles of registered namespaces in
//! [`namespace`].

use std::{
    any::{Any, TypeId},
    collections::HashMap,
    fmt,
    future::Future,
    sync::{Arc, OnceLock},
    time::Duration,
};

use belfry_core::{Str, adapter::AdapterFactory};
use belfry_engine::Engine;
use parking_lot::RwLock;
use serde::{Serialize, de::DeserializeOwned};

mod builder;
mod layer;
mod namespace;

pub(crate) use builder::IoConfig;
pub use builder::SocketIoBuilder;
pub use layer::SocketIoLayer;
pub use namespace::{NamespaceHandle, ParentNamespaceHandle};

use crate::{
    BroadcastOperator, DisconnectReason, EmitError, ServerSideError, ServerSideEvent,
    client::Client,
    handler::{Handler, erase, kind},
    ns::{Namespace, NsOptions, ParentNamespace},
    observe::Observer,
    server_side::erase_server_side,
};

/// The Socket.IO server: namespaces, broadcasts, shutdown. Cloning is cheap; every clone is the
/// same server.
///
/// # Examples
///
/// ```no_run
/// use axum::{Router, routing::get};
/// use belfry::{SocketIo, SocketRef, extract::Data};
///
/// # async fn run() -> std::io::Result<()> {
/// let (layer, io) = SocketIo::new_layer();
/// io.ns("/", |socket: SocketRef| async move {
///     socket.on("chat", |socket: SocketRef, Data(text): Data<String>| async move {
///         let _ = socket.broadcast().emit("chat", &text);
///     });
/// });
/// let app = Router::new().route("/", get(|| async { "hello" })).layer(layer);
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
/// belfry::serve(listener, app)
///     .with_graceful_shutdown(async move {
///         let _ = tokio::signal::ctrl_c().await;
///         io.close().await;
///     })
///     .await
/// # }
/// ```
#[derive(Clone)]
pub struct SocketIo {
    inner: Arc<IoInner>,
}

struct IoInner {
    config: IoConfig,
    namespaces: RwLock<HashMap<String, Arc<Namespace>>>,
    parents: RwLock<Vec<Arc<ParentNamespace>>>,
    state: HashMap<TypeId, Box<dyn Any + Send + Sync>>,
    engine: OnceLock<Engine<Client>>,
    adapter: AdapterFactory,
    observer: OnceLock<Arc<dyn Observer>>,
}

/// A [`SocketIo`] that does not keep the server alive (for what the server itself holds).
#[derive(Clone)]
pub(crate) struct WeakSocketIo(std::sync::Weak<IoInner>);

impl WeakSocketIo {
    pub(crate) fn upgrade(&self) -> Option<SocketIo> {
        self.0.upgrade().map(|inner| SocketIo { inner })
    }
}

impl fmt::Debug for SocketIo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SocketIo")
            .field("config", &self.inner.config)
            .field("namespaces", &self.inner.namespaces.read().keys())
            .finish_non_exhaustive()
    }
}

impl SocketIo {
    /// A builder with Node's defaults.
    pub fn builder() -> SocketIoBuilder {
        SocketIoBuilder::with_defaults()
    }

    /// A server with the default options: its layer and its handle.
    pub fn new_layer() -> (SocketIoLayer, SocketIo) {
        SocketIo::builder().build_layer()
    }

    /// Registers namespace `path` and the handler run when a socket connects to it. The main
    /// namespace `/` exists from the start (as in Node); registering it sets its handler.
    ///
    /// The handler's extractors run before the client is answered: if one fails, the connect
    /// is refused with a CONNECT_ERROR carrying its message.
    ///
    /// Registering a path again replaces only its connect handler, for the sockets that connect
    /// from then on: the namespace, its sockets, rooms, middlewares and listeners stay.
    pub fn ns<H: Handler<T, kind::Connect>, T>(
        &self,
        path: impl Into<String>,
        handler: H,
    ) -> NamespaceHandle {
        let mut path = path.into();
        if !path.starts_with('/') {
            path.insert(0, '/');
        }
        let handler = erase(handler);
        // Made under the table's lock: a namespace made and then dropped for one registered
        // meanwhile would have run the adapter factory for nothing (a cluster adapter's
        // subscription pointing at the dropped one). The factory runs no code of the server's.
        let mut namespaces = self.inner.namespaces.write();
        if let Some(ns) = namespaces.get(&path) {
            ns.set_connect_handler(handler);
            return NamespaceHandle(ns.clone());
        }
        let ns = Namespace::new(
            Str::from(path.as_str()),
            handler,
            self.ns_options(),
            None,
            &self.inner.adapter,
        );
        if let Some(observer) = self.observer() {
            ns.observe(observer);
        }
        namespaces.insert(path, ns.clone());
        NamespaceHandle(ns)
    }

    /// Registers a dynamic namespace (Node's `io.of(regex)` or `io.of(fn)`): a CONNECT to a name
    /// no static namespace has, for which `matcher` returns true, creates a child namespace of
    /// that name, sharing `handler` and the parent's middlewares. A child is removed when its
    /// last socket leaves. Matchers are tried in the order they were registered.
    ///
    /// # Examples
    ///
    /// ```
    /// use belfry::{SocketIo, SocketRef};
    ///
    /// let (_layer, io) = SocketIo::new_layer();
    /// let workspaces = io.dynamic_ns(
    ///     |name| name.strip_prefix("/workspace-").is_some_and(|id| id.parse::<u32>().is_ok()),
    ///     |socket: SocketRef| async move {
    ///         let _ = socket.emit("hello", socket.ns());
    ///     },
    /// );
    /// // Later: reaches every socket of every workspace.
    /// let _ = workspaces.emit("maintenance", &"in 5 minutes");
    /// ```
    pub fn dynamic_ns<M, H, T>(&self, matcher: M, handler: H) -> ParentNamespaceHandle
    where
        M: Fn(&str) -> bool + Send + Sync + 'static,
        H: Handler<T, kind::Connect>,
    {
        let parent = ParentNamespace::new(
            Box::new(matcher),
            erase(handler),
            self.ns_options(),
            self.inner.adapter.clone(),
        );
        self.inner.parents.write().push(parent.clone());
        ParentNamespaceHandle(parent)
    }

    /// A broadcast to every socket of namespace `path`, if it exists (Node's `io.of(path)`).
    pub fn of(&self, path: &str) -> Option<BroadcastOperator> {
        self.namespace(path).map(BroadcastOperator::new)
    }

    /// A broadcast to one room or several of the main namespace (Node's `io.to(room)` and
    /// `io.to([a, b])`; see [`IntoRooms`](crate::IntoRooms)).
    pub fn to(&self, rooms: impl crate::IntoRooms) -> BroadcastOperator {
        self.main().to(rooms)
    }

    /// Same as [`SocketIo::to`] (Node's `io.in(room)`).
    pub fn within(&self, rooms: impl crate::IntoRooms) -> BroadcastOperator {
        self.main().within(rooms)
    }

    /// A broadcast to the main namespace delivered on this server only (Node's `io.local`).
    pub fn local(&self) -> BroadcastOperator {
        self.main().local()
    }

    /// A broadcast to the main namespace with Node's `compress` flag (see
    /// [`BroadcastOperator::compress`]).
    pub fn compress(&self, compress: bool) -> BroadcastOperator {
        self.main().compress(compress)
    }

    /// A broadcast to the main namespace dropped for clients whose queue is full (Node's
    /// `io.volatile`).
    pub fn volatile(&self) -> BroadcastOperator {
        self.main().volatile()
    }

    /// A broadcast to the main namespace whose acks are awaited at most `timeout` (Node's
    /// `io.timeout(ms)`).
    pub fn timeout(&self, timeout: Duration) -> BroadcastOperator {
        self.main().timeout(timeout)
    }

    /// A broadcast to the main namespace except the sockets of one room or several.
    pub fn except(&self, rooms: impl crate::IntoRooms) -> BroadcastOperator {
        self.main().except(rooms)
    }

    /// The sockets of the main namespace on every server (Node's `io.fetchSockets()`); see
    /// [`BroadcastOperator::fetch_sockets`].
    ///
    /// # Errors
    ///
    /// As [`BroadcastOperator::fetch_sockets`].
    ///
    /// # Examples
    ///
    /// ```
    /// use belfry::SocketIo;
    ///
    /// # async fn count(io: SocketIo) -> Result<usize, belfry::core::adapter::AdapterError> {
    /// let everyone = io.fetch_sockets().await?;
    /// # Ok(everyone.len()) }
    /// ```
    pub async fn fetch_sockets(
        &self,
    ) -> Result<Vec<crate::RemoteSocket>, belfry_core::adapter::AdapterError> {
        self.main().fetch_sockets().await
    }

    /// Sends `event` to every socket of the main namespace; returns how many got it.
    ///
    /// # Errors
    ///
    /// As [`BroadcastOperator::emit`].
    pub fn emit<T: Serialize + ?Sized>(&self, event: &str, data: &T) -> Result<usize, EmitError> {
        self.main().emit(event, data)
    }

    /// Sends `event` to the main namespace's listeners on the other servers (Node's
    /// `io.serverSideEmit`); see [`BroadcastOperator::server_side_emit`].
    ///
    /// # Errors
    ///
    /// As [`BroadcastOperator::server_side_emit`].
    pub async fn server_side_emit<T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
    ) -> Result<(), ServerSideError> {
        self.main().server_side_emit(event, data).await
    }

    /// [`SocketIo::server_side_emit`] waiting for every other server's answer; see
    /// [`BroadcastOperator::server_side_emit_with_ack`].
    ///
    /// # Errors
    ///
    /// As [`BroadcastOperator::server_side_emit_with_ack`].
    pub async fn server_side_emit_with_ack<R: DeserializeOwned, T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
    ) -> Result<Vec<R>, ServerSideError> {
        self.main().server_side_emit_with_ack(event, data).await
    }

    /// Listens to the server-side events named `event` that other servers send to the main
    /// namespace (Node's `io.on(event, (...args, ack) => ..)`). Several listeners may listen
    /// to one event; each runs on its own task. Register it after `io.ns("/", ..)`, which
    /// replaces the main namespace.
    ///
    /// # Examples
    ///
    /// ```
    /// use belfry::{ServerSideEvent, SocketIo};
    ///
    /// let (_layer, io) = SocketIo::new_layer();
    /// io.on_server_side("uptime?", |event: ServerSideEvent| async move {
    ///     let _ = event.ack(&42);
    /// });
    /// ```
    pub fn on_server_side<F, Fut>(&self, event: impl Into<String>, listener: F)
    where
        F: Fn(ServerSideEvent) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.namespace("/")
            .expect("the main namespace is created with the server and never removed")
            .on_server_side(event.into(), erase_server_side(listener));
    }

    /// Disconnects every socket with "server shutting down", closes every connection, and
    /// resolves once all of them are gone; then closes every namespace's adapter (as Node's
    /// `io.close()`: a cluster adapter tells the other servers this one left, and releases its
    /// subscriptions). Use it in axum's graceful shutdown.
    pub async fn close(&self) {
        let namespaces = self.all_namespaces();
        for ns in &namespaces {
            for socket in ns.sockets() {
                socket.close(DisconnectReason::ServerShuttingDown);
            }
        }
        self.engine().close().await;
        for ns in &namespaces {
            ns.adapter().close();
        }
    }

    /// The rooms of namespace `ns` that have members, each socket's own room included (Node's
    /// `io.of(ns).adapter.rooms.keys()`); `None` for an unknown namespace. A room is deleted
    /// with its last member.
    pub fn rooms(&self, ns: &str) -> Option<Vec<String>> {
        self.namespace(ns).map(|ns| ns.adapter().rooms())
    }

    /// How many namespaces exist, dynamic children included.
    pub fn namespace_count(&self) -> usize {
        let children: usize = self
            .inner
            .parents
            .read()
            .iter()
            .map(|parent| parent.children().len())
            .sum();
        self.inner.namespaces.read().len() + children
    }

    /// The number of connected clients (engine sessions).
    pub fn clients_count(&self) -> usize {
        self.engine().clients_count()
    }

    fn main(&self) -> BroadcastOperator {
        BroadcastOperator::new(
            self.namespace("/")
                .expect("the main namespace is created with the server and never removed"),
        )
    }

    /// The live engine session `sid`.
    pub(crate) fn engine_socket(
        &self,
        sid: &str,
    ) -> Option<Arc<belfry_engine::Socket<crate::client::Connection>>> {
        self.engine().socket(sid)
    }

    fn engine(&self) -> &Engine<Client> {
        self.inner
            .engine
            .get()
            .expect("the engine is set when the server is built")
    }

    /// Every namespace, dynamic children included.
    pub(crate) fn all_namespaces(&self) -> Vec<Arc<Namespace>> {
        let mut namespaces: Vec<_> = self.inner.namespaces.read().values().cloned().collect();
        for parent in self.inner.parents.read().iter() {
            namespaces.extend(parent.children());
        }
        namespaces
    }

    /// The server's observer, if one was set.
    pub(crate) fn observer(&self) -> Option<&Arc<dyn Observer>> {
        self.inner.observer.get()
    }

    /// Sets the server's observer and shows it every namespace; false if one was set before.
    #[cfg_attr(not(feature = "admin"), allow(dead_code))]
    pub(crate) fn set_observer(&self, observer: Arc<dyn Observer>) -> bool {
        if self.inner.observer.set(observer.clone()).is_err() {
            return false;
        }
        for ns in self.all_namespaces() {
            ns.observe(&observer);
        }
        true
    }

    /// A handle that does not keep the server alive.
    pub(crate) fn downgrade(&self) -> WeakSocketIo {
        WeakSocketIo(Arc::downgrade(&self.inner))
    }

    /// The static namespace `path`, or the existing dynamic child of that name.
    pub(crate) fn namespace(&self, path: &str) -> Option<Arc<Namespace>> {
        if let Some(ns) = self.inner.namespaces.read().get(path) {
            return Some(ns.clone());
        }
        self.inner
            .parents
            .read()
            .iter()
            .find_map(|parent| parent.child(path))
    }

    /// The namespace a CONNECT to `path` joins: static, or a dynamic child (created if a
    /// matcher accepts `path`).
    pub(crate) fn namespace_for_connect(&self, path: &str) -> Option<Arc<Namespace>> {
        if let Some(ns) = self.namespace(path) {
            return Some(ns);
        }
        let parents = self.inner.parents.read().clone();
        let child = parents
            .iter()
            .find_map(|parent| parent.child_for_connect(path))?;
        if let Some(observer) = self.observer() {
            child.observe(observer);
        }
        Some(child)
    }

    pub(crate) fn config(&self) -> &IoConfig {
        &self.inner.config
    }

    pub(crate) fn ack_timeout(&self) -> Duration {
        self.inner.config.ack_timeout
    }

    fn ns_options(&self) -> NsOptions {
        NsOptions {
            ack_timeout: self.inner.config.ack_timeout,
            parser: self.inner.config.parser,
            max_handlers_in_flight: self.inner.config.max_handlers_in_flight,
            recovery: self.inner.config.recovery,
        }
    }

    pub(crate) fn state<T: Clone + 'static>(&self) -> Option<T> {
        self.inner
            .state
            .get(&TypeId::of::<T>())
            .and_then(|state| state.downcast_ref::<T>())
            .cloned()
    }
}
