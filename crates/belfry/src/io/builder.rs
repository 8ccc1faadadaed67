//! The server's builder and the options it sets.

use std::{
    any::{Any, TypeId},
    collections::HashMap,
    fmt,
    sync::{Arc, OnceLock},
    time::Duration,
};

use belfry_core::{
    adapter::{Adapter, AdapterFactory, ConnectionStateRecovery, LocalAdapter, LocalSockets},
    parser::{DEFAULT_MAX_ATTACHMENTS, Parser},
};
use belfry_engine::{Engine, EngineConfig, EngineConfigBuilder};
use parking_lot::RwLock;

use super::{IoInner, SocketIo, SocketIoLayer};
use crate::{
    client::Client,
    client_files::{ClientFiles, ServeClientLayer},
};

/// The default of [`SocketIoBuilder::max_handlers_in_flight`].
const DEFAULT_MAX_HANDLERS_IN_FLIGHT: usize = 1024;

/// The Socket.IO options.
#[derive(Debug, Clone)]
pub(crate) struct IoConfig {
    pub(crate) connect_timeout: Duration,
    pub(crate) ack_timeout: Duration,
    pub(crate) max_attachments: usize,
    pub(crate) recovery: Option<ConnectionStateRecovery>,
    pub(crate) parser: Parser,
    pub(crate) max_handlers_in_flight: usize,
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
    /// A builder with Node's defaults (see [`SocketIo::builder`]).
    pub(super) fn with_defaults() -> SocketIoBuilder {
        SocketIoBuilder {
            engine: EngineConfig::builder(),
            config: IoConfig {
                connect_timeout: Duration::from_secs(45),
                ack_timeout: Duration::from_secs(5),
                max_attachments: DEFAULT_MAX_ATTACHMENTS,
                recovery: None,
                parser: Parser::Default,
                max_handlers_in_flight: DEFAULT_MAX_HANDLERS_IN_FLIGHT,
            },
            state: HashMap::new(),
            adapter: None,
            client_files: None,
        }
    }

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

    /// Refuses engine requests from pages of other origins than `origins` (default: every origin
    /// is accepted): a browser sends the user's cookies with a WebSocket handshake from any page,
    /// and CORS does not apply to it. Requests without an `Origin` header (non-browser clients)
    /// are accepted; the others get `403`. The rules: [`EngineConfigBuilder::allowed_origins`];
    /// the why: [cross-site WebSocket hijacking][hijacking].
    ///
    /// [hijacking]: crate::guides::sessions_and_auth#cross-site-websocket-hijacking
    ///
    /// # Examples
    ///
    /// ```
    /// use belfry::SocketIo;
    ///
    /// let (_layer, _io) = SocketIo::builder()
    ///     .allowed_origins(["https://app.example"])
    ///     .build_layer();
    /// ```
    pub fn allowed_origins<I, S>(self, origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.engine(|engine| engine.allowed_origins(origins))
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

    /// How many of one socket's event handlers may be waiting at once (default 1024). An
    /// event's handler starts when the event arrives, in arrival order, and later events do
    /// not wait for it to finish, as in Node; at this bound the socket's next events wait for
    /// a handler to finish, and once as many wait, the connection is not read (TCP holds the
    /// client back; acks and heartbeats are read until then), so that a client flooding slow
    /// events keeps its memory bounded. Node has no such bound. See [`NamespaceHandle::serial_handlers`](crate::NamespaceHandle::serial_handlers)
    /// for handlers that run one at a time.
    ///
    /// # Panics
    ///
    /// If `handlers` is 0.
    pub fn max_handlers_in_flight(mut self, handlers: usize) -> Self {
        assert!(handlers > 0, "at least one handler runs");
        self.config.max_handlers_in_flight = handlers;
        self
    }

    /// The most binary attachments one packet may carry (default 10, Node's `maxAttachments`).
    pub fn max_attachments(mut self, attachments: usize) -> Self {
        self.config.max_attachments = attachments;
        self
    }

    /// Sets how each namespace's adapter is made (default: [`LocalAdapter`], one server). A
    /// cluster adapter (`belfry-redis`, `belfry-postgres`) is plugged in here. The factory runs while the server registers
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
    /// must support it: the Redis adapter's streams protocol does, across servers (as Node's
    /// `@socket.io/redis-streams-adapter`); its classic and sharded protocols and the Postgres
    /// adapter do not (as Node's).
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
