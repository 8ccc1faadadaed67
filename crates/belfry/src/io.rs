//! The server handle, its builder and its tower layer.

use std::{
    any::{Any, TypeId},
    collections::HashMap,
    fmt,
    future::Future,
    sync::{Arc, OnceLock},
    time::Duration,
};

use belfry_core::{
    Str,
    adapter::{
        Adapter, AdapterFactory, AdapterListener, ConnectionStateRecovery, LocalAdapter,
        LocalSockets,
    },
    parser::{DEFAULT_MAX_ATTACHMENTS, Parser},
};
use belfry_engine::{Engine, EngineConfig, EngineConfigBuilder, EngineLayer, EngineService};
use bytes::Bytes;
use parking_lot::RwLock;
use serde::{Serialize, de::DeserializeOwned};
use tower_layer::Layer;

use crate::{
    BroadcastOperator, ConnectError, DisconnectReason, EmitError, ServerSideError, ServerSideEvent,
    client::Client,
    client_files::{ClientFiles, ServeClientLayer},
    handler::{Handler, erase},
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

/// The Socket.IO options.
#[derive(Debug, Clone)]
pub(crate) struct IoConfig {
    pub(crate) connect_timeout: Duration,
    pub(crate) ack_timeout: Duration,
    pub(crate) max_attachments: usize,
    pub(crate) recovery: Option<ConnectionStateRecovery>,
    pub(crate) parser: Parser,
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
        SocketIoBuilder {
            engine: EngineConfig::builder(),
            config: IoConfig {
                connect_timeout: Duration::from_secs(45),
                ack_timeout: Duration::from_secs(5),
                max_attachments: DEFAULT_MAX_ATTACHMENTS,
                recovery: None,
                parser: Parser::Default,
            },
            state: HashMap::new(),
            adapter: None,
            client_files: None,
        }
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
    pub fn ns<H: Handler<T>, T>(&self, path: impl Into<String>, handler: H) -> NamespaceHandle {
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
        H: Handler<T>,
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

    /// A broadcast to `room` of the main namespace.
    pub fn to(&self, room: impl Into<String>) -> BroadcastOperator {
        self.main().to(room)
    }

    /// Same as [`SocketIo::to`] (Node's `io.in(room)`).
    pub fn within(&self, room: impl Into<String>) -> BroadcastOperator {
        self.main().within(room)
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

    /// A broadcast to the main namespace except `room`.
    pub fn except(&self, room: impl Into<String>) -> BroadcastOperator {
        self.main().except(room)
    }

    /// Sends `event` to every socket of the main namespace; returns how many got it.
    ///
    /// # Errors
    ///
    /// As [`BroadcastOperator::emit`].
    pub fn emit<T: Serialize + ?Sized>(&self, event: &str, data: &T) -> Result<usize, EmitError> {
        self.main().emit(event, data)
    }

    /// [`SocketIo::emit`] with binary attachments appended as the last arguments.
    ///
    /// # Errors
    ///
    /// As [`BroadcastOperator::emit`].
    pub fn emit_binary<T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
        attachments: Vec<Bytes>,
    ) -> Result<usize, EmitError> {
        self.main().emit_binary(event, data, attachments)
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
    /// resolves once all of them are gone. Use it in axum's graceful shutdown.
    pub async fn close(&self) {
        for ns in self.all_namespaces() {
            for socket in ns.sockets() {
                socket.close(DisconnectReason::ServerShuttingDown);
            }
        }
        self.engine().close().await;
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

/// A namespace just registered with [`SocketIo::ns`], to add its connect middlewares.
#[derive(Debug, Clone)]
pub struct NamespaceHandle(Arc<Namespace>);

impl NamespaceHandle {
    /// Adds a connect middleware (Node's `nsp.use`): an async function of extractors returning
    /// `Result<(), ConnectError>`. Middlewares run in the order they were added, before the
    /// client is answered; the first `Err` refuses the connect with a CONNECT_ERROR
    /// `{"message":..,"data":..}`. A middleware may emit to the socket: the client receives it
    /// once connected.
    ///
    /// # Examples
    ///
    /// ```
    /// use belfry::{ConnectError, SocketIo, SocketRef, extract::Data};
    ///
    /// #[derive(serde::Deserialize)]
    /// struct Auth { token: String }
    ///
    /// let (_layer, io) = SocketIo::new_layer();
    /// io.ns("/admin", |_socket: SocketRef| async {})
    ///     .middleware(|Data(auth): Data<Auth>| async move {
    ///         if auth.token == "secret" {
    ///             Ok(())
    ///         } else {
    ///             Err(ConnectError::new("not authorized").with_data(serde_json::json!({"code": 401})))
    ///         }
    ///     });
    /// ```
    pub fn middleware<H, T>(self, middleware: H) -> Self
    where
        H: Handler<T, Result<(), ConnectError>>,
    {
        self.0.add_middleware(erase(middleware));
        self
    }

    /// The namespace name.
    pub fn name(&self) -> &str {
        self.0.name()
    }

    /// Listens to the server-side events named `event` that other servers send to this
    /// namespace (see [`SocketIo::on_server_side`]).
    pub fn on_server_side<F, Fut>(self, event: impl Into<String>, listener: F) -> Self
    where
        F: Fn(ServerSideEvent) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.0
            .on_server_side(event.into(), erase_server_side(listener));
        self
    }

    /// Adds a listener of the namespace's room events (Node's `adapter.on("create-room")`...).
    pub fn on_adapter_event(self, listener: AdapterListener) -> Self {
        self.0.adapter().on_event(listener);
        self
    }
}

/// A dynamic namespace registered with [`SocketIo::dynamic_ns`]: adds middlewares shared by its
/// children, and broadcasts to all of them.
#[derive(Debug, Clone)]
pub struct ParentNamespaceHandle(Arc<ParentNamespace>);

impl ParentNamespaceHandle {
    /// Adds a connect middleware that every child runs (see [`NamespaceHandle::middleware`]).
    pub fn middleware<H, T>(self, middleware: H) -> Self
    where
        H: Handler<T, Result<(), ConnectError>>,
    {
        self.0.add_middleware(erase(middleware));
        self
    }

    /// The names of the children that exist now.
    pub fn children(&self) -> Vec<String> {
        self.0
            .children()
            .iter()
            .map(|child| child.name().to_owned())
            .collect()
    }

    /// One broadcast operator per child, to select sockets across every child.
    pub fn operators(&self) -> Vec<BroadcastOperator> {
        self.0
            .children()
            .into_iter()
            .map(BroadcastOperator::new)
            .collect()
    }

    /// Sends `event` to every socket of every child; returns how many got it.
    ///
    /// # Errors
    ///
    /// As [`BroadcastOperator::emit`].
    pub fn emit<T: Serialize + ?Sized>(&self, event: &str, data: &T) -> Result<usize, EmitError> {
        self.operators()
            .iter()
            .map(|operator| operator.emit(event, data))
            .sum()
    }
}

/// Builds a [`SocketIo`] server and its [`SocketIoLayer`].
pub struct SocketIoBuilder {
    engine: EngineConfigBuilder,
    config: IoConfig,
    state: HashMap<TypeId, Box<dyn Any + Send + Sync>>,
    /// `None`: the in-memory adapter (keeping sessions when recovery is on).
    adapter: Option<AdapterFactory>,
    client_files: Option<ClientFiles>,
}

impl fmt::Debug for SocketIoBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SocketIoBuilder")
            .field("engine", &self.engine)
            .field("config", &self.config)
            .field("serve_client", &self.client_files.is_some())
            .finish_non_exhaustive()
    }
}

impl SocketIoBuilder {
    /// Sets any Engine.IO option (path, transports, cookie, hooks...).
    ///
    /// # Examples
    ///
    /// ```
    /// use belfry::SocketIo;
    /// use belfry::engine::TransportType;
    ///
    /// let (_layer, _io) = SocketIo::builder()
    ///     .engine(|engine| engine.transports([TransportType::Websocket]).path("/rt"))
    ///     .build_layer();
    /// ```
    pub fn engine(
        mut self,
        configure: impl FnOnce(EngineConfigBuilder) -> EngineConfigBuilder,
    ) -> Self {
        self.engine = configure(self.engine);
        self
    }

    /// Time between two server pings (default 25 s).
    pub fn ping_interval(self, interval: Duration) -> Self {
        self.engine(|engine| engine.ping_interval(interval))
    }

    /// Time to wait for a pong (default 20 s).
    pub fn ping_timeout(self, timeout: Duration) -> Self {
        self.engine(|engine| engine.ping_timeout(timeout))
    }

    /// The largest message accepted, in bytes, on both transports (default 1 MB).
    pub fn max_payload(self, bytes: u64) -> Self {
        self.engine(|engine| engine.max_payload(bytes))
    }

    /// Accepts socket.io 2.x clients (Engine.IO v3, Socket.IO protocol v4), as Node's
    /// `allowEIO3` (default false). They join `/` as soon as they connect, with the engine id as
    /// socket id (`/nsp#<engine id>` in other namespaces), pass their auth as the namespace's
    /// query string (`io("/nsp", { query: {..} })`), and get refusals as v4 ERROR packets
    /// carrying the refusal's data, or else its message. Connection state recovery does not
    /// apply to them.
    pub fn allow_eio3(self, allow: bool) -> Self {
        self.engine(|engine| engine.allow_eio3(allow))
    }

    /// How long a client may stay connected without joining a namespace (default 45 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }

    /// How long [`Socket::emit_with_ack`](crate::Socket::emit_with_ack) waits (default 5 s).
    pub fn ack_timeout(mut self, timeout: Duration) -> Self {
        self.config.ack_timeout = timeout;
        self
    }

    /// The most binary attachments one packet may carry (default 10, Node's `maxAttachments`).
    pub fn max_attachments(mut self, attachments: usize) -> Self {
        self.config.max_attachments = attachments;
        self
    }

    /// Sets how each namespace's adapter is made (default: [`LocalAdapter`], one server). A
    /// cluster adapter (Redis) is plugged in here. The factory runs while the server registers
    /// a namespace: it must not call the server back.
    pub fn adapter<F>(mut self, factory: F) -> Self
    where
        F: Fn(Arc<dyn LocalSockets>) -> Arc<dyn Adapter> + Send + Sync + 'static,
    {
        self.adapter = Some(Arc::new(factory));
        self
    }

    /// Chooses the parser (Node's `parser` option): [`Parser::Default`] (JSON text, the
    /// default) or [`Parser::Msgpack`] (`socket.io-msgpack-parser`). Clients must use the same.
    ///
    /// # Examples
    ///
    /// ```
    /// use belfry::{SocketIo, core::parser::Parser};
    ///
    /// // For clients made with `io(url, { parser: require("socket.io-msgpack-parser") })`.
    /// let (_layer, _io) = SocketIo::builder().parser(Parser::Msgpack).build_layer();
    /// ```
    pub fn parser(mut self, parser: Parser) -> Self {
        self.config.parser = parser;
        self
    }

    /// Turns on connection state recovery (Node's `connectionStateRecovery`): a client that
    /// lost its connection for a while gets back its socket id, rooms and data, and the events
    /// broadcast meanwhile ([`Socket::recovered`](crate::Socket::recovered) tells it). Each
    /// event without ack gets an offset as its last argument, as in Node. The in-memory
    /// adapter keeps what recovery needs; an adapter set with [`SocketIoBuilder::adapter`]
    /// must support it (the Redis adapter does not, as Node's).
    ///
    /// # Examples
    ///
    /// ```
    /// use belfry::{SocketIo, SocketRef, core::adapter::ConnectionStateRecovery};
    ///
    /// let (_layer, io) = SocketIo::builder()
    ///     .connection_state_recovery(ConnectionStateRecovery::default())
    ///     .build_layer();
    /// io.ns("/", |socket: SocketRef| async move {
    ///     if !socket.recovered() {
    ///         socket.join("lobby");
    ///     }
    /// });
    /// ```
    pub fn connection_state_recovery(mut self, options: ConnectionStateRecovery) -> Self {
        self.config.recovery = Some(options);
        self
    }

    /// Adds a state that handlers extract with [`State<T>`](crate::extract::State), one per
    /// type.
    pub fn with_state<T: Clone + Send + Sync + 'static>(mut self, state: T) -> Self {
        self.state.insert(TypeId::of::<T>(), Box::new(state));
        self
    }

    /// Adds the state `T` derived from the state `S` already added, with axum's
    /// [`FromRef`](axum::extract::FromRef): the same impls serve axum's `State<T>` and Belfry's.
    ///
    /// # Panics
    ///
    /// If no state of type `S` was added with [`SocketIoBuilder::with_state`] before.
    ///
    /// # Examples
    ///
    /// ```
    /// use axum::extract::FromRef;
    /// use belfry::{SocketIo, SocketRef, extract::State};
    ///
    /// #[derive(Clone)]
    /// struct AppState { db: Db }
    /// #[derive(Clone)]
    /// struct Db(&'static str);
    ///
    /// impl FromRef<AppState> for Db {
    ///     fn from_ref(app: &AppState) -> Db { app.db.clone() }
    /// }
    ///
    /// let (_layer, io) = SocketIo::builder()
    ///     .with_state(AppState { db: Db("postgres://") })
    ///     .with_state_from::<AppState, Db>()
    ///     .build_layer();
    /// io.ns("/", |_socket: SocketRef, State(db): State<Db>| async move {
    ///     let _ = db.0;
    /// });
    /// ```
    pub fn with_state_from<S, T>(self) -> Self
    where
        S: Clone + Send + Sync + 'static,
        T: axum::extract::FromRef<S> + Clone + Send + Sync + 'static,
    {
        let derived = self
            .state
            .get(&TypeId::of::<S>())
            .and_then(|state| state.downcast_ref::<S>())
            .map(T::from_ref)
            .expect("`with_state::<S>` must be called before `with_state_from::<S, _>`");
        self.with_state(derived)
    }

    /// Serves the official browser client under the engine path, as Node's `serveClient` does:
    /// `/socket.io/socket.io.min.js`, `socket.io.js`, `socket.io.esm.min.js`,
    /// `socket.io.msgpack.min.js` and their source maps, each with an `ETag` (`304 Not
    /// Modified` when the browser already has it) and `Cache-Control: public, max-age=0`.
    ///
    /// `dir` is the `dist` folder of the `socket.io-client` npm package, usually
    /// `node_modules/socket.io-client/dist`; the files are read once, now. Unlike Node, Belfry
    /// ships no copy of the client: install it with npm. Layers added with
    /// [`SocketIoLayer::engine_layer`] see these requests too; wrap the router in tower-http's
    /// `CompressionLayer` to compress them.
    ///
    /// # Errors
    ///
    /// The folder cannot be read, or holds no `socket.io.min.js`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use belfry::SocketIo;
    ///
    /// # fn run() -> std::io::Result<()> {
    /// let (layer, io) = SocketIo::builder()
    ///     .serve_client("node_modules/socket.io-client/dist")?
    ///     .build_layer();
    /// // <script src="/socket.io/socket.io.min.js"></script> now loads the client.
    /// # Ok(()) }
    /// ```
    pub fn serve_client(mut self, dir: impl AsRef<std::path::Path>) -> std::io::Result<Self> {
        self.client_files = Some(ClientFiles::read(dir.as_ref())?);
        Ok(self)
    }

    /// The layer to mount in an axum `Router`, and the server handle.
    pub fn build_layer(self) -> (SocketIoLayer, SocketIo) {
        let adapter = self.adapter.unwrap_or_else(|| match self.config.recovery {
            Some(options) => {
                Arc::new(move |local| Arc::new(LocalAdapter::with_recovery(local, options)))
            }
            None => Arc::new(|local| Arc::new(LocalAdapter::new(local))),
        });
        let io = SocketIo {
            inner: Arc::new(IoInner {
                config: self.config,
                namespaces: RwLock::new(HashMap::new()),
                parents: RwLock::new(Vec::new()),
                state: self.state,
                engine: OnceLock::new(),
                adapter,
                observer: OnceLock::new(),
            }),
        };
        io.ns("/", || async {});
        let client = Client {
            io: io.clone(),
            timeouts: Arc::default(),
        };
        let engine = Engine::new(client, self.engine.build());
        let mut layer = engine.layer();
        if let Some(files) = self.client_files {
            let path = engine.config().path().into();
            layer = layer.engine_layer(ServeClientLayer { files, path });
        }
        let layer = SocketIoLayer(layer);
        // Set once, here, before the handle is given out.
        let _ = io.inner.engine.set(engine);
        (layer, io)
    }
}

/// The tower layer of a Socket.IO server: answers the engine path (default `/socket.io/`) and
/// passes every other request to the service it wraps.
#[derive(Debug, Clone)]
pub struct SocketIoLayer(EngineLayer);

impl SocketIoLayer {
    /// Wraps the engine's own HTTP requests in a tower layer (Node's `io.engine.use`); what it
    /// puts in the request extensions reaches handlers through
    /// [`HttpExtension`](crate::extract::HttpExtension).
    pub fn engine_layer<L, B>(self, layer: L) -> Self
    where
        L: Layer<belfry_engine::EngineHttp>,
        L::Service: tower_service::Service<
                http::Request<belfry_engine::RequestBody>,
                Response = http::Response<B>,
            > + Clone
            + Send
            + Sync
            + 'static,
        <L::Service as tower_service::Service<http::Request<belfry_engine::RequestBody>>>::Future:
            Send + 'static,
        <L::Service as tower_service::Service<http::Request<belfry_engine::RequestBody>>>::Error:
            Into<belfry_engine::BoxError>,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<belfry_engine::BoxError>,
    {
        SocketIoLayer(self.0.engine_layer(layer))
    }
}

impl<S> Layer<S> for SocketIoLayer {
    type Service = EngineService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        self.0.layer(inner)
    }
}
