//! The builders: [`ClientBuilder`] configures a connection (a [`Manager`]) and its first
//! socket; [`SocketBuilder`] configures more sockets over the same connection.

use std::{future::Future, sync::Arc, time::Duration};

use belfry_core::{parser::Parser, proto::value::Value};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::{
    ConnectError, DisconnectReason, Event, ReconnectEvent, Socket, Transports, data,
    engine::{Cookies, Target},
    listeners::{Listeners, ToTask, run_listeners},
    manager::{Join, Options},
    socket::{Command, Manager, ManagerInner, SocketInner, State},
    tls::Security,
};

/// What one namespace's socket is given: its namespace, `auth` and listeners.
struct NamespaceOptions {
    namespace: String,
    auth: Auth,
    listeners: Listeners,
}

/// The `auth` of a socket's `CONNECT`: none, an object, or a function called before each.
#[derive(Clone, Default)]
pub(crate) enum Auth {
    #[default]
    None,
    Value(Value),
    Fn(Arc<dyn Fn() -> Result<Value, serde_json::Error> + Send + Sync>),
}

impl Auth {
    /// The object to send now (a function's that fails is logged, and none is sent).
    pub(crate) fn current(&self) -> Option<Value> {
        match self {
            Auth::None => None,
            Auth::Value(value) => Some(value.clone()),
            // A function that panics sends no auth, rather than ending the manager's task.
            Auth::Fn(auth) => {
                match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| auth())) {
                    Ok(Ok(value)) => Some(value),
                    Ok(Err(error)) => {
                        tracing::warn!(%error, "the auth function's value is not an object");
                        None
                    }
                    Err(_) => {
                        tracing::error!("the auth function panicked");
                        None
                    }
                }
            }
        }
    }
}

/// A namespace as socket.io-client writes it: with a leading `/`.
fn namespace_name(namespace: String) -> String {
    if namespace.starts_with('/') {
        namespace
    } else {
        format!("/{namespace}")
    }
}

/// The methods that configure a socket, the same on [`ClientBuilder`] (its first socket) and
/// [`SocketBuilder`].
macro_rules! namespace_methods {
    () => {
        /// The `auth` object sent with every namespace connection (socket.io-client's `auth`).
        ///
        /// # Errors
        ///
        /// `auth` cannot be serialized, or is not an object (servers refuse anything else).
        pub fn auth<T: Serialize + ?Sized>(mut self, auth: &T) -> Result<Self, serde_json::Error> {
            self.ns.auth = Auth::Value(object(auth)?);
            Ok(self)
        }

        /// The `auth` object computed before every namespace connection, reconnections
        /// included (socket.io-client's `auth` as a function): a fresh token each time. One
        /// that is not an object is not sent (and logged).
        #[must_use]
        pub fn auth_with<F, T>(mut self, auth: F) -> Self
        where
            F: Fn() -> T + Send + Sync + 'static,
            T: Serialize,
        {
            self.ns.auth = Auth::Fn(Arc::new(move || object(&auth())));
            self
        }

        /// Calls `listener` with every event named `event`, in the order they come, one at a time.
        #[must_use]
        pub fn on<F, Fut>(self, event: impl Into<String>, listener: F) -> Self
        where
            F: Fn(Event) -> Fut + Send + Sync + 'static,
            Fut: Future<Output = ()> + Send + 'static,
        {
            let entry = self.ns.listeners.entry(false, listener);
            self.ns.listeners.add(Some(event.into()), entry);
            self
        }

        /// Calls `listener` with every event (socket.io-client's `onAny`), before the event's own
        /// listeners. When the server waits for an answer, only the last listener of the event
        /// gets the means to answer ([`Event::ack`]); the others see [`Event::wants_ack`] false.
        #[must_use]
        pub fn on_any<F, Fut>(self, listener: F) -> Self
        where
            F: Fn(Event) -> Fut + Send + Sync + 'static,
            Fut: Future<Output = ()> + Send + 'static,
        {
            let entry = self.ns.listeners.entry(false, listener);
            self.ns.listeners.add(None, entry);
            self
        }

        /// Calls `listener` on every connection of the namespace (reconnections included).
        #[must_use]
        pub fn on_connect<F, Fut>(self, listener: F) -> Self
        where
            F: Fn() -> Fut + Send + Sync + 'static,
            Fut: Future<Output = ()> + Send + 'static,
        {
            self.ns
                .listeners
                .connect
                .write()
                .push(Arc::new(move || Box::pin(listener())));
            self
        }

        /// Calls `listener` with the reason of every disconnection.
        #[must_use]
        pub fn on_disconnect<F, Fut>(self, listener: F) -> Self
        where
            F: Fn(DisconnectReason) -> Fut + Send + Sync + 'static,
            Fut: Future<Output = ()> + Send + 'static,
        {
            self.ns
                .listeners
                .disconnect
                .write()
                .push(Arc::new(move |reason| Box::pin(listener(reason))));
            self
        }

        /// Calls `listener` each time connecting fails (socket.io-client's `connect_error`): the
        /// server refused the namespace ([`ConnectError::Refused`], after which the socket stops),
        /// or it could not be reached ([`ConnectError::Unreachable`], after which it tries again
        /// if reconnection is on).
        #[must_use]
        pub fn on_connect_error<F, Fut>(self, listener: F) -> Self
        where
            F: Fn(ConnectError) -> Fut + Send + Sync + 'static,
            Fut: Future<Output = ()> + Send + 'static,
        {
            self.ns
                .listeners
                .connect_error
                .write()
                .push(Arc::new(move |error| Box::pin(listener(error))));
            self
        }
    };
}

/// Configures a client: the connection (socket.io-client's `Manager` options) and its first
/// socket; [`ClientBuilder::connect`] makes that [`Socket`], [`ClientBuilder::manager`] the
/// connection alone.
///
/// ```no_run
/// use belfry_client::ClientBuilder;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let socket = ClientBuilder::new("http://127.0.0.1:3000")
///     .on("chat", |event| async move {
///         let text: String = event.data().unwrap_or_default();
///         println!("{text}");
///     })
///     .connect()
///     .await?;
/// socket.emit("chat", "hello")?;
/// # Ok(()) }
/// ```
pub struct ClientBuilder {
    url: String,
    path: String,
    query: Vec<(String, String)>,
    headers: http::HeaderMap,
    reconnection: bool,
    reconnection_attempts: Option<u32>,
    reconnection_delay: Duration,
    reconnection_delay_max: Duration,
    randomization_factor: f64,
    timeout: Duration,
    ack_timeout: Option<Duration>,
    retries: u32,
    root_certificates: Option<Vec<u8>>,
    transports: Transports,
    parser: Parser,
    manager_listeners: Listeners,
    ns: NamespaceOptions,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("url", &self.url)
            .field("namespace", &self.ns.namespace)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// A client of the server at `url` (`http://host:port`, `https://` for TLS, or `ws://`
    /// and `wss://`; a path in it names the namespace, as in socket.io-client), with socket.io-client's
    /// defaults: path `/socket.io/`, reconnection on (1 s doubling to 5 s, ±50 %, forever), a
    /// 20 s handshake timeout.
    pub fn new(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            url: url.into(),
            path: "/socket.io/".to_owned(),
            query: Vec::new(),
            headers: http::HeaderMap::new(),
            reconnection: true,
            reconnection_attempts: None,
            reconnection_delay: Duration::from_secs(1),
            reconnection_delay_max: Duration::from_secs(5),
            randomization_factor: 0.5,
            timeout: Duration::from_secs(20),
            ack_timeout: None,
            retries: 0,
            root_certificates: None,
            transports: Transports::PollingThenWebSocket,
            parser: Parser::Default,
            manager_listeners: Listeners::default(),
            ns: NamespaceOptions {
                namespace: String::new(),
                auth: Auth::None,
                listeners: Listeners::default(),
            },
        }
    }

    /// The namespace of the first socket (`/` unless the URL has a path).
    #[must_use]
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.ns.namespace = namespace_name(namespace.into());
        self
    }

    /// The server's HTTP path (socket.io-client's `path`, default `/socket.io`).
    #[must_use]
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = belfry_core::proto::engine_path(path);
        self
    }

    /// Adds `key=value` to the query of every request.
    #[must_use]
    pub fn query(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.push((key.into(), value.into()));
        self
    }

    /// Adds a header to the connection's request (socket.io-client's `extraHeaders`).
    ///
    /// # Panics
    ///
    /// `name` or `value` is not a valid header name or value.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        let name = http::HeaderName::try_from(name).expect("a valid header name");
        let value = http::HeaderValue::try_from(value).expect("a valid header value");
        self.headers.append(name, value);
        self
    }

    /// Whether to reconnect after a lost connection (default true).
    #[must_use]
    pub fn reconnection(mut self, reconnect: bool) -> Self {
        self.reconnection = reconnect;
        self
    }

    /// How many reconnection attempts, at most (default: no limit).
    #[must_use]
    pub fn reconnection_attempts(mut self, attempts: u32) -> Self {
        self.reconnection_attempts = Some(attempts);
        self
    }

    /// The first delay between attempts, doubled each time up to `max` (default 1 s and 5 s).
    #[must_use]
    pub fn reconnection_delay(mut self, first: Duration, max: Duration) -> Self {
        // Never zero: attempts would follow each other without a pause.
        let first = first.max(Duration::from_millis(1));
        self.reconnection_delay = first;
        self.reconnection_delay_max = max.max(first);
        self
    }

    /// How much each delay varies, 0 to 1 (default 0.5).
    #[must_use]
    pub fn randomization_factor(mut self, factor: f64) -> Self {
        self.randomization_factor = factor;
        self
    }

    /// How long the server may take to open the session (default 20 s).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The timeout of [`Socket::emit_with_ack`] (socket.io-client's `ackTimeout`; default:
    /// none, an answer is awaited until the connection is lost after the event was sent).
    #[must_use]
    pub fn ack_timeout(mut self, timeout: Duration) -> Self {
        self.ack_timeout = Some(timeout);
        self
    }

    /// Delivers every emit at least once (socket.io-client 4.6's `retries`): the emits of a
    /// socket are sent one at a time, in order, each with an ack the server must call (a
    /// handler gets it as its last argument even for a plain [`Socket::emit`]); a try whose
    /// ack does not come within the emit's timeout (or [`ClientBuilder::ack_timeout`]), or
    /// that the connection loses, is made again, `retries` times at most, then the emit fails
    /// with [`AckError::Timeout`](crate::AckError::Timeout) (or
    /// [`AckError::Disconnected`](crate::AckError::Disconnected)). Each try has a new ack id,
    /// so a late ack is ignored; the server may see an event more than once. Volatile emits
    /// are not retried. Default 0: no retries.
    ///
    /// Unlike socket.io-client, which takes the first argument of an ack for an error under
    /// retries, the answer is the ack's arguments, as without retries; without a timeout, a try
    /// is made again only when the connection is lost.
    #[must_use]
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// The certificates (PEM) to trust for `https://` and `wss://` URLs, instead of the
    /// system's root certificates (a server with a certificate of a private CA).
    #[must_use]
    pub fn root_certificates(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_certificates = Some(pem.into());
        self
    }

    /// The transports (default: HTTP long-polling, then the upgrade to WebSocket, as
    /// socket.io-client does; [`Transports::WebSocket`] skips polling).
    #[must_use]
    pub fn transports(mut self, transports: Transports) -> Self {
        self.transports = transports;
        self
    }

    /// The parser (socket.io-client's `parser` option): [`Parser::Msgpack`] for a server that
    /// uses `socket.io-msgpack-parser` (default: [`Parser::Default`]). Client and server must
    /// agree.
    #[must_use]
    pub fn parser(mut self, parser: Parser) -> Self {
        self.parser = parser;
        self
    }

    /// Calls `listener` with what happens while the client reconnects: each attempt, its
    /// errors, the success, or the end of the attempts (socket.io-client's Manager events
    /// `reconnect_attempt`, `reconnect_error`, `reconnect`, `reconnect_failed`).
    #[must_use]
    pub fn on_reconnect<F, Fut>(self, listener: F) -> Self
    where
        F: Fn(ReconnectEvent) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.manager_listeners
            .reconnect
            .write()
            .push(Arc::new(move |event| Box::pin(listener(event))));
        self
    }

    namespace_methods!();

    /// Makes the connection's [`Manager`] alone: it connects once a socket joins
    /// ([`Manager::socket`]), and closes when its last socket leaves. The namespace, `auth`
    /// and listeners given to this builder are not used.
    ///
    /// # Errors
    ///
    /// The URL is invalid.
    pub fn manager(self) -> Result<Manager, ConnectError> {
        self.start().map(|(manager, _)| manager)
    }

    /// Connects, and resolves once the namespace is joined.
    ///
    /// # Errors
    ///
    /// The URL is invalid; the server refused the namespace connection; the server cannot be
    /// reached and reconnection is off or exhausted.
    pub async fn connect(self) -> Result<Socket, ConnectError> {
        let (manager, ns) = self.start()?;
        SocketBuilder { manager, ns }.connect().await
    }

    /// Starts the manager; the first socket's options, with its namespace from the URL
    /// unless one was given.
    fn start(self) -> Result<(Manager, NamespaceOptions), ConnectError> {
        let parsed = parse_url(&self.url, &self.query)?;
        let mut ns = self.ns;
        if ns.namespace.is_empty() {
            ns.namespace = parsed.namespace.unwrap_or_else(|| "/".to_owned());
        }
        let security = if parsed.tls {
            Security::tls(&parsed.host, self.root_certificates.as_deref())
                .map_err(ConnectError::Tls)?
        } else {
            Security::Plain
        };
        let options = Options {
            target: Target {
                authority: parsed.authority,
                security,
                path: self.path,
                query: parsed.query,
                headers: self.headers,
                cookies: Cookies::default(),
                transports: self.transports,
                timeout: self.timeout,
                on_websocket: Arc::default(),
            },
            reconnection: self.reconnection,
            reconnection_attempts: self.reconnection_attempts,
            reconnection_delay: self.reconnection_delay,
            reconnection_delay_max: self.reconnection_delay_max,
            randomization_factor: self.randomization_factor,
            ack_timeout: self.ack_timeout,
            retries: self.retries,
            parser: self.parser,
        };
        let options = Arc::new(options);
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let (events, events_rx) = ToTask::channel();
        tokio::spawn(run_listeners(Arc::new(self.manager_listeners), events_rx));
        crate::manager::spawn(options.clone(), commands_rx, events);
        let manager = Manager {
            inner: Arc::new(ManagerInner { commands, options }),
        };
        Ok((manager, ns))
    }
}

/// Configures a socket of another namespace over a [`Manager`]'s connection
/// ([`Manager::socket`]); [`SocketBuilder::connect`] joins it.
pub struct SocketBuilder {
    manager: Manager,
    ns: NamespaceOptions,
}

impl std::fmt::Debug for SocketBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketBuilder")
            .field("namespace", &self.ns.namespace)
            .finish_non_exhaustive()
    }
}

impl SocketBuilder {
    pub(crate) fn new(manager: Manager, namespace: String) -> SocketBuilder {
        SocketBuilder {
            manager,
            ns: NamespaceOptions {
                namespace: namespace_name(namespace),
                auth: Auth::None,
                listeners: Listeners::default(),
            },
        }
    }

    namespace_methods!();

    /// Joins the namespace (opening the connection if it is not open), and resolves once it
    /// is joined.
    ///
    /// # Errors
    ///
    /// The server refused the namespace connection; the server cannot be reached and
    /// reconnection is off or exhausted; the manager has a socket in this namespace already.
    pub async fn connect(self) -> Result<Socket, ConnectError> {
        let state = Arc::new(State::default());
        let listeners = Arc::new(self.ns.listeners);
        let auth = Arc::new(parking_lot::Mutex::new(self.ns.auth));
        let ns = belfry_core::proto::Str::from(self.ns.namespace.as_str());
        let (events, events_rx) = ToTask::channel();
        tokio::spawn(run_listeners(listeners.clone(), events_rx));
        static KEYS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let key = KEYS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let socket = Socket {
            inner: Arc::new(SocketInner {
                ns: ns.clone(),
                key,
                manager: self.manager,
                state: state.clone(),
                auth: auth.clone(),
                listeners,
            }),
        };
        let (first, joined) = oneshot::channel();
        let join = Join {
            ns,
            key,
            state,
            auth,
            events,
            socket: Arc::downgrade(&socket.inner),
            first,
        };
        socket
            .inner
            .manager
            .inner
            .commands
            .send(Command::Join(Box::new(join)))
            .map_err(|_| ConnectError::Unreachable("the client stopped".to_owned()))?;
        joined
            .await
            .unwrap_or_else(|_| Err(ConnectError::Unreachable("the client stopped".to_owned())))?;
        Ok(socket)
    }
}

/// `auth` as a [`Value`], which must be an object.
pub(crate) fn object<T: Serialize + ?Sized>(auth: &T) -> Result<Value, serde_json::Error> {
    let value = data::to_value(auth)?;
    if matches!(value, Value::Object(_)) {
        Ok(value)
    } else {
        Err(serde::de::Error::custom("auth must be an object"))
    }
}

/// What a URL names: where the server is, and whether over TLS.
struct Parsed {
    /// `host:port`.
    authority: String,
    host: String,
    tls: bool,
    /// The namespace its path names, if any.
    namespace: Option<String>,
    /// The URL's query and `query`, encoded.
    query: String,
}

/// The parts of `url` (`http://`, `ws://`, `https://` or `wss://`), with `query` added.
fn parse_url(url: &str, query: &[(String, String)]) -> Result<Parsed, ConnectError> {
    let uri: http::Uri = url.parse().map_err(|_| ConnectError::Url(url.to_owned()))?;
    let (tls, default_port) = match uri.scheme_str() {
        Some("http" | "ws") => (false, 80),
        Some("https" | "wss") => (true, 443),
        _ => return Err(ConnectError::Url(url.to_owned())),
    };
    let authority = uri
        .authority()
        .ok_or_else(|| ConnectError::Url(url.to_owned()))?;
    let host = authority.host().to_owned();
    let authority = format!("{host}:{}", authority.port_u16().unwrap_or(default_port));
    let namespace = Some(uri.path())
        .filter(|path| !path.is_empty() && *path != "/")
        .map(str::to_owned);
    let mut pairs: Vec<String> = uri
        .query()
        .map(|q| q.split('&').map(str::to_owned).collect())
        .unwrap_or_default();
    pairs.extend(
        query
            .iter()
            .map(|(key, value)| format!("{}={}", encode(key), encode(value))),
    );
    Ok(Parsed {
        authority,
        // An IPv6 address is written in brackets in a URL, not in a server name.
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        tls,
        namespace,
        query: pairs.join("&"),
    })
}

/// `text` percent-encoded for a query.
pub(crate) fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
