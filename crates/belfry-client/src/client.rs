//! The client: a [`ClientBuilder`] makes a [`Socket`], whose driver task owns the connection
//! (connecting, reconnecting with backoff, sending `CONNECT`, reading packets, keeping acks and
//! the send buffer) and hands events to a handler task that runs the listeners one after
//! another, in the order the events came.

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use belfry_core::{
    parser::{Decoder, Packet, PacketData, ParseError, Parser, Payload},
    proto::{Str, value::Value},
};
use parking_lot::{Mutex, RwLock};
use serde::{Serialize, de::DeserializeOwned};
use tokio::{
    sync::{mpsc, oneshot},
    time::Instant,
};

use crate::{
    Transport, Transports,
    backoff::Backoff,
    data,
    engine::{self, Cookies, Engine, Incoming, Outgoing, Target},
};

type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Events (and connects, disconnects) waiting for the listeners, at most: past it the
/// connection is dropped rather than memory growing while listeners fall behind.
const EVENT_BACKLOG: usize = 4096;
type Listener = Arc<dyn Fn(Event) -> BoxFuture + Send + Sync>;
type Reasons = Arc<dyn Fn(DisconnectReason) -> BoxFuture + Send + Sync>;
type Callback<T> = Arc<dyn Fn(T) -> BoxFuture + Send + Sync>;

/// Why a socket was disconnected (socket.io-client's reasons).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The server disconnected the socket (`socket.disconnect()` there): no reconnection.
    IoServerDisconnect,
    /// [`Socket::disconnect`] was called: no reconnection.
    IoClientDisconnect,
    /// The server was silent longer than `pingInterval + pingTimeout`.
    PingTimeout,
    /// The connection was closed.
    TransportClose,
    /// The connection failed.
    TransportError,
    /// The server sent what cannot be decoded.
    ParseError,
    /// The client closed the connection.
    ForcedClose,
}

impl DisconnectReason {
    /// The reason as socket.io-client names it (`"io server disconnect"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            DisconnectReason::IoServerDisconnect => "io server disconnect",
            DisconnectReason::IoClientDisconnect => "io client disconnect",
            DisconnectReason::PingTimeout => "ping timeout",
            DisconnectReason::TransportClose => "transport close",
            DisconnectReason::TransportError => "transport error",
            DisconnectReason::ParseError => "parse error",
            DisconnectReason::ForcedClose => "forced close",
        }
    }

    /// True when the client reconnects by itself after it.
    pub fn reconnects(self) -> bool {
        !matches!(
            self,
            DisconnectReason::IoServerDisconnect | DisconnectReason::IoClientDisconnect
        )
    }
}

/// Why connecting failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The URL is not an `http://` or `ws://` one (TLS is not supported yet).
    #[error("invalid url: {0}")]
    Url(String),
    /// The server refused the namespace connection (a middleware's error, or an unknown
    /// namespace): its message and data, as socket.io-client's `connect_error`.
    #[error("connection refused: {message}")]
    Refused {
        /// The error's message (`"Invalid namespace"`, a middleware's message).
        message: String,
        /// The error's data, `null` when it sent none.
        data: Value,
    },
    /// The connection could not be opened, and reconnection is off or gave up.
    #[error("cannot connect: {0}")]
    Unreachable(String),
}

/// Why an emit could not be sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmitError {
    /// The event name is one socket.io reserves (`connect`, `disconnect`, ...).
    #[error("reserved event name: {0}")]
    Reserved(String),
    /// The data cannot be serialized.
    #[error("the data cannot be serialized")]
    Serialize(#[from] serde_json::Error),
    /// The client is closed ([`Socket::disconnect`], or gone).
    #[error("the client is closed")]
    Closed,
}

/// Why an acknowledgement did not come.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AckError {
    /// The emit failed.
    #[error(transparent)]
    Emit(#[from] EmitError),
    /// The answer did not come within the timeout.
    #[error("operation has timed out")]
    Timeout,
    /// The client was closed before the answer came.
    #[error("the client is closed")]
    Closed,
    /// The connection was lost after the event was sent, before the answer came.
    #[error("socket has been disconnected")]
    Disconnected,
    /// The answer is not what was asked for.
    #[error("unexpected answer")]
    Deserialize(#[source] serde_json::Error),
}

/// An event from the server, with its arguments (binary as [`Value::Binary`]) and, when the
/// server waits for an answer, the way to send it.
#[derive(Debug)]
pub struct Event {
    name: String,
    args: Vec<Value>,
    ack: Option<Acker>,
    socket: std::sync::Weak<SocketInner>,
}

#[derive(Debug)]
struct Acker {
    id: u64,
    /// The driver's own channel for answers: it does not keep the driver alive when every
    /// [`Socket`] is dropped.
    answers: mpsc::UnboundedSender<(u64, Payload)>,
}

impl Event {
    /// The event's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The arguments (with connection state recovery on, the last is the event's offset, as
    /// socket.io-client shows it too).
    pub fn args(&self) -> &[Value] {
        &self.args
    }

    /// The arguments as `T`: a tuple (or a list) for all of them, or one type for the first
    /// (with connection state recovery on, an offset follows the arguments).
    ///
    /// # Errors
    ///
    /// The arguments are not a `T`.
    pub fn data<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        data::from_args(&self.args)
    }

    /// The socket it came to, while some [`Socket`] handle of it lives (an event does not
    /// keep the client alive).
    pub fn socket(&self) -> Option<Socket> {
        self.socket.upgrade().map(|inner| Socket { inner })
    }

    /// True when the server waits for an answer.
    pub fn wants_ack(&self) -> bool {
        self.ack.is_some()
    }

    /// Answers the server (its callback gets `data`, spread as for an emit). Does nothing when
    /// it asked for none, or was already answered.
    ///
    /// # Errors
    ///
    /// The data cannot be serialized.
    pub fn ack<T: Serialize + ?Sized>(&mut self, data: &T) -> Result<(), EmitError> {
        let Some(acker) = self.ack.take() else {
            return Ok(());
        };
        let payload = data::args_payload(data)?;
        acker
            .answers
            .send((acker.id, payload))
            .map_err(|_| EmitError::Closed)
    }
}

/// What a socket does while it runs.
struct Options {
    target: Target,
    namespace: String,
    auth: Mutex<Option<Value>>,
    reconnection: bool,
    reconnection_attempts: Option<u32>,
    reconnection_delay: Duration,
    reconnection_delay_max: Duration,
    randomization_factor: f64,
    ack_timeout: Option<Duration>,
    parser: Parser,
}

/// Names a listener added with [`Socket::on`], [`Socket::once`] or [`Socket::on_any`], to
/// remove it with [`Socket::off`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenerId(u64);

/// A listener of events, and how long it listens.
#[derive(Clone)]
struct Entry {
    id: u64,
    /// Removed after its first event.
    once: bool,
    listener: Listener,
}

/// The listeners.
#[derive(Default)]
struct Listeners {
    next_id: std::sync::atomic::AtomicU64,
    events: RwLock<HashMap<String, Vec<Entry>>>,
    any: RwLock<Vec<Entry>>,
    connect: RwLock<Vec<Arc<dyn Fn() -> BoxFuture + Send + Sync>>>,
    disconnect: RwLock<Vec<Reasons>>,
    connect_error: RwLock<Vec<Callback<ConnectError>>>,
    reconnect: RwLock<Vec<Callback<ReconnectEvent>>>,
}

impl Listeners {
    fn entry<F, Fut>(&self, once: bool, listener: F) -> Entry
    where
        F: Fn(Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Entry {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            once,
            listener: Arc::new(move |event| Box::pin(listener(event))),
        }
    }

    /// Adds a listener of `event` (of every event for `None`).
    fn add(&self, event: Option<String>, entry: Entry) -> ListenerId {
        let id = ListenerId(entry.id);
        match event {
            Some(event) => self.events.write().entry(event).or_default().push(entry),
            None => self.any.write().push(entry),
        }
        id
    }

    /// Removes the listener `id`; false when there is none.
    fn remove(&self, id: ListenerId) -> bool {
        let mut removed = false;
        let mut drop_id = |entries: &mut Vec<Entry>| {
            let before = entries.len();
            entries.retain(|entry| entry.id != id.0);
            removed |= entries.len() != before;
        };
        drop_id(&mut self.any.write());
        let mut events = self.events.write();
        for entries in events.values_mut() {
            drop_id(entries);
        }
        events.retain(|_, entries| !entries.is_empty());
        removed
    }

    /// The listeners of `name` (the catch-all ones first); those added with `once` are
    /// removed.
    fn take_for(&self, name: &str) -> Vec<Listener> {
        let mut taken = Vec::new();
        let mut collect = |entries: &mut Vec<Entry>| {
            taken.extend(entries.iter().map(|entry| entry.listener.clone()));
            entries.retain(|entry| !entry.once);
        };
        collect(&mut self.any.write());
        let mut events = self.events.write();
        if let Some(entries) = events.get_mut(name) {
            collect(entries);
            if entries.is_empty() {
                events.remove(name);
            }
        }
        taken
    }
}

/// What happens to the connection while it reconnects (socket.io-client's Manager events).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReconnectEvent {
    /// An attempt begins (`reconnect_attempt`), with its number, from 1.
    Attempt(u32),
    /// The connection is open again (`reconnect`), after that many attempts.
    Reconnected(u32),
    /// An attempt failed (`reconnect_error`): why.
    Error(String),
    /// The attempts are exhausted (`reconnect_failed`): no more follow.
    Failed,
}

/// Configures a client; [`ClientBuilder::connect`] makes its [`Socket`].
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
    namespace: String,
    query: Vec<(String, String)>,
    headers: http::HeaderMap,
    auth: Option<Value>,
    reconnection: bool,
    reconnection_attempts: Option<u32>,
    reconnection_delay: Duration,
    reconnection_delay_max: Duration,
    randomization_factor: f64,
    timeout: Duration,
    ack_timeout: Option<Duration>,
    transports: Transports,
    parser: Parser,
    listeners: Listeners,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("url", &self.url)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// A client of the server at `url` (`http://host:port` or `ws://`; a path in it names the
    /// namespace, as in socket.io-client), with socket.io-client's
    /// defaults: path `/socket.io/`, reconnection on (1 s doubling to 5 s, ±50 %, forever), a
    /// 20 s handshake timeout.
    pub fn new(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            url: url.into(),
            path: "/socket.io/".to_owned(),
            namespace: String::new(),
            query: Vec::new(),
            headers: http::HeaderMap::new(),
            auth: None,
            reconnection: true,
            reconnection_attempts: None,
            reconnection_delay: Duration::from_secs(1),
            reconnection_delay_max: Duration::from_secs(5),
            randomization_factor: 0.5,
            timeout: Duration::from_secs(20),
            ack_timeout: None,
            transports: Transports::PollingThenWebSocket,
            parser: Parser::Default,
            listeners: Listeners::default(),
        }
    }

    /// The namespace (`/` unless the URL has a path).
    #[must_use]
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        let mut namespace = namespace.into();
        if !namespace.starts_with('/') {
            namespace.insert(0, '/');
        }
        self.namespace = namespace;
        self
    }

    /// The server's HTTP path (socket.io-client's `path`, default `/socket.io`).
    #[must_use]
    pub fn path(mut self, path: impl Into<String>) -> Self {
        let mut path = path.into();
        if !path.starts_with('/') {
            path.insert(0, '/');
        }
        if !path.ends_with('/') {
            path.push('/');
        }
        self.path = path;
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

    /// The `auth` object sent with every namespace connection (socket.io-client's `auth`).
    ///
    /// # Errors
    ///
    /// `auth` cannot be serialized, or is not an object (servers refuse anything else).
    pub fn auth<T: Serialize + ?Sized>(mut self, auth: &T) -> Result<Self, serde_json::Error> {
        self.auth = Some(object(auth)?);
        Ok(self)
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

    /// Calls `listener` with every event named `event`, in the order they come, one at a time.
    #[must_use]
    pub fn on<F, Fut>(self, event: impl Into<String>, listener: F) -> Self
    where
        F: Fn(Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let entry = self.listeners.entry(false, listener);
        self.listeners.add(Some(event.into()), entry);
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
        let entry = self.listeners.entry(false, listener);
        self.listeners.add(None, entry);
        self
    }

    /// Calls `listener` on every connection of the namespace (reconnections included).
    #[must_use]
    pub fn on_connect<F, Fut>(self, listener: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.listeners
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
        self.listeners
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
        self.listeners
            .connect_error
            .write()
            .push(Arc::new(move |error| Box::pin(listener(error))));
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
        self.listeners
            .reconnect
            .write()
            .push(Arc::new(move |event| Box::pin(listener(event))));
        self
    }

    /// Connects, and resolves once the namespace is joined.
    ///
    /// # Errors
    ///
    /// The URL is invalid; the server refused the namespace connection; the server cannot be
    /// reached and reconnection is off or exhausted.
    pub async fn connect(self) -> Result<Socket, ConnectError> {
        let (authority, url_namespace, query) = parse_url(&self.url, &self.query)?;
        let namespace = match (self.namespace.as_str(), url_namespace) {
            ("", Some(namespace)) => namespace,
            ("", None) => "/".to_owned(),
            (namespace, _) => namespace.to_owned(),
        };
        let options = Arc::new(Options {
            target: Target {
                authority,
                path: self.path,
                query,
                headers: self.headers,
                cookies: Cookies::default(),
                transports: self.transports,
                timeout: self.timeout,
                on_websocket: Arc::default(),
            },
            namespace,
            auth: Mutex::new(self.auth),
            reconnection: self.reconnection,
            reconnection_attempts: self.reconnection_attempts,
            reconnection_delay: self.reconnection_delay,
            reconnection_delay_max: self.reconnection_delay_max,
            randomization_factor: self.randomization_factor,
            ack_timeout: self.ack_timeout,
            parser: self.parser,
        });
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let state = Arc::new(State::default());
        let listeners = Arc::new(self.listeners);
        let socket = Socket {
            inner: Arc::new(SocketInner {
                commands,
                state: state.clone(),
                options: options.clone(),
                listeners: listeners.clone(),
            }),
        };
        let (events, events_rx) = mpsc::channel(EVENT_BACKLOG);
        tokio::spawn(run_listeners(listeners.clone(), events_rx));
        let (connected_tx, connected_rx) = oneshot::channel();
        let (answers_tx, answers) = mpsc::unbounded_channel();
        let driver = Driver {
            options,
            state,
            commands: commands_rx,
            answers,
            answers_tx,
            socket: Arc::downgrade(&socket.inner),
            events,
            acks: HashMap::new(),
            next_ack: 0,
            buffer: Vec::new(),
            last_offset: None,
            first: Some(connected_tx),
        };
        tokio::spawn(driver.run());
        connected_rx
            .await
            .unwrap_or_else(|_| Err(ConnectError::Unreachable("the client stopped".to_owned())))?;
        Ok(socket)
    }
}

/// `auth` as a [`Value`], which must be an object.
fn object<T: Serialize + ?Sized>(auth: &T) -> Result<Value, serde_json::Error> {
    let value = data::to_value(auth)?;
    if matches!(value, Value::Object(_)) {
        Ok(value)
    } else {
        Err(serde::de::Error::custom("auth must be an object"))
    }
}

/// The URL's authority (`host:port`), the namespace its path names, if any, and the query
/// (the URL's and `query`).
fn parse_url(
    url: &str,
    query: &[(String, String)],
) -> Result<(String, Option<String>, String), ConnectError> {
    let uri: http::Uri = url.parse().map_err(|_| ConnectError::Url(url.to_owned()))?;
    // TLS (`https://`, `wss://`) is not supported yet.
    let default_port = match uri.scheme_str() {
        Some("http" | "ws") => 80,
        _ => return Err(ConnectError::Url(url.to_owned())),
    };
    let authority = uri
        .authority()
        .ok_or_else(|| ConnectError::Url(url.to_owned()))?;
    let authority = format!(
        "{}:{}",
        authority.host(),
        authority.port_u16().unwrap_or(default_port)
    );
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
    Ok((authority, namespace, pairs.join("&")))
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

/// What the socket's handles can read.
#[derive(Default)]
struct State {
    id: Mutex<Option<String>>,
    connected: AtomicBool,
    recovered: AtomicBool,
    closed: AtomicBool,
}

struct SocketInner {
    commands: mpsc::UnboundedSender<Command>,
    state: Arc<State>,
    options: Arc<Options>,
    listeners: Arc<Listeners>,
}

/// A connected namespace: emit to the server, read its state, disconnect. Cheap to clone; the
/// connection closes when the last clone is dropped (or with [`Socket::disconnect`]).
#[derive(Clone)]
pub struct Socket {
    inner: Arc<SocketInner>,
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket")
            .field("namespace", &self.inner.options.namespace)
            .field("id", &self.id())
            .field("connected", &self.connected())
            .finish_non_exhaustive()
    }
}

impl Socket {
    /// The socket's id, while connected.
    pub fn id(&self) -> Option<String> {
        self.inner.state.id.lock().clone()
    }

    /// True while the namespace is joined.
    pub fn connected(&self) -> bool {
        self.inner.state.connected.load(Ordering::Acquire)
    }

    /// True when the last connection recovered the previous session (connection state
    /// recovery: same id, missed events received).
    pub fn recovered(&self) -> bool {
        self.inner.state.recovered.load(Ordering::Acquire)
    }

    /// True until the socket is disconnected for good (by the server, or
    /// [`Socket::disconnect`]), or gave up reconnecting.
    pub fn active(&self) -> bool {
        !self.inner.state.closed.load(Ordering::Acquire)
    }

    /// The transport of the connection (socket.io-client's `socket.io.engine.transport.name`):
    /// polling until the upgrade to WebSocket, if any, is done.
    pub fn transport(&self) -> Transport {
        if self
            .inner
            .options
            .target
            .on_websocket
            .load(Ordering::Acquire)
        {
            Transport::WebSocket
        } else {
            Transport::Polling
        }
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.inner.options.namespace
    }

    /// Replaces the `auth` object sent with the next connections.
    ///
    /// # Errors
    ///
    /// `auth` cannot be serialized, or is not an object.
    pub fn set_auth<T: Serialize + ?Sized>(&self, auth: &T) -> Result<(), serde_json::Error> {
        *self.inner.options.auth.lock() = Some(object(auth)?);
        Ok(())
    }

    /// Calls `listener` with every event named `event` from now on, after the listeners added
    /// before (socket.io-client's `socket.on`).
    pub fn on<F, Fut>(&self, event: impl Into<String>, listener: F) -> ListenerId
    where
        F: Fn(Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listeners = &self.inner.listeners;
        listeners.add(Some(event.into()), listeners.entry(false, listener))
    }

    /// Calls `listener` with the next event named `event` only (socket.io-client's
    /// `socket.once`).
    pub fn once<F, Fut>(&self, event: impl Into<String>, listener: F) -> ListenerId
    where
        F: Fn(Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listeners = &self.inner.listeners;
        listeners.add(Some(event.into()), listeners.entry(true, listener))
    }

    /// Calls `listener` with every event from now on (socket.io-client's `socket.onAny`).
    pub fn on_any<F, Fut>(&self, listener: F) -> ListenerId
    where
        F: Fn(Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listeners = &self.inner.listeners;
        listeners.add(None, listeners.entry(false, listener))
    }

    /// Removes the listener `id` (socket.io-client's `socket.off` and `offAny`); false when it
    /// was removed already (or was a `once` listener that ran).
    pub fn off(&self, id: ListenerId) -> bool {
        self.inner.listeners.remove(id)
    }

    /// Sends `event` with `data` (a tuple for several arguments, `()` for none; bytes become
    /// binary). While disconnected, it waits in a buffer and is sent on reconnection.
    ///
    /// # Errors
    ///
    /// A reserved name, data that cannot be serialized, a closed client.
    pub fn emit<T: Serialize + ?Sized>(&self, event: &str, data: &T) -> Result<(), EmitError> {
        self.send(event, data, None, false)
    }

    /// [`Socket::emit`], dropped rather than buffered when the socket is not connected
    /// (socket.io-client's `volatile`).
    ///
    /// # Errors
    ///
    /// As [`Socket::emit`].
    pub fn emit_volatile<T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
    ) -> Result<(), EmitError> {
        self.send(event, data, None, true)
    }

    /// Sends `event` and waits for the server's answer (its arguments as `R`: a tuple for
    /// several, one type for the first), within the client's `ack_timeout` if it has one.
    ///
    /// # Errors
    ///
    /// [`AckError::Timeout`], an emit error, a closed client, an answer that is not an `R`.
    pub async fn emit_with_ack<R: DeserializeOwned, T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
    ) -> Result<R, AckError> {
        self.ack_within(event, data, self.inner.options.ack_timeout)
            .await
    }

    /// [`Socket::emit_with_ack`] with its own timeout (socket.io-client's
    /// `socket.timeout(ms).emitWithAck`).
    ///
    /// # Errors
    ///
    /// As [`Socket::emit_with_ack`].
    pub async fn emit_with_timeout<R: DeserializeOwned, T: Serialize + ?Sized>(
        &self,
        timeout: Duration,
        event: &str,
        data: &T,
    ) -> Result<R, AckError> {
        self.ack_within(event, data, Some(timeout)).await
    }

    async fn ack_within<R: DeserializeOwned, T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
        timeout: Option<Duration>,
    ) -> Result<R, AckError> {
        let (tx, rx) = oneshot::channel();
        self.send(event, data, Some((tx, timeout)), false)?;
        let payload = rx.await.map_err(|_| AckError::Closed)??;
        let values = data::values(&payload).map_err(AckError::Deserialize)?;
        data::from_args(&values).map_err(AckError::Deserialize)
    }

    fn send<T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
        ack: Option<AckWaiter>,
        volatile: bool,
    ) -> Result<(), EmitError> {
        // socket.io-client throws on them; Node's parser refuses them.
        if belfry_core::parser::is_reserved_event(event) {
            return Err(EmitError::Reserved(event.to_owned()));
        }
        let payload = data::event_payload(event, data)?;
        self.inner
            .commands
            .send(Command::Emit {
                payload,
                ack,
                volatile,
            })
            .map_err(|_| EmitError::Closed)
    }

    /// Leaves the namespace and closes the connection; no reconnection follows. Resolves once
    /// done.
    pub async fn disconnect(&self) {
        let (tx, rx) = oneshot::channel();
        if self.inner.commands.send(Command::Disconnect(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

type AckWaiter = (oneshot::Sender<Result<Payload, AckError>>, Option<Duration>);

/// What the handles ask of the driver.
enum Command {
    Emit {
        payload: Payload,
        ack: Option<AckWaiter>,
        volatile: bool,
    },
    Disconnect(oneshot::Sender<()>),
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::Emit { .. } => "Emit",
            Command::Disconnect(_) => "Disconnect",
        })
    }
}

/// An ack this client waits for.
struct PendingAck {
    answer: oneshot::Sender<Result<Payload, AckError>>,
    deadline: Option<Instant>,
}

/// What the listener task is handed.
enum ToListeners {
    Event(Event),
    Connect,
    Disconnect(DisconnectReason),
    ConnectError(ConnectError),
    Reconnect(ReconnectEvent),
}

/// Runs the listeners, one event at a time, in order.
async fn run_listeners(listeners: Arc<Listeners>, mut events: mpsc::Receiver<ToListeners>) {
    while let Some(event) = events.recv().await {
        match event {
            ToListeners::Event(event) => {
                let all = listeners.take_for(&event.name);
                let mut event = Some(event);
                let total = all.len();
                for (i, listener) in all.iter().enumerate() {
                    // The last listener gets the event (and its ack); the others, copies
                    // without the ack.
                    let this = if i + 1 == total {
                        event.take()
                    } else {
                        event.as_ref().map(Event::copy_without_ack)
                    };
                    if let Some(this) = this {
                        run_caught(listener(this)).await;
                    }
                }
            }
            ToListeners::Connect => {
                let connect = listeners.connect.read().clone();
                for listener in connect {
                    run_caught(listener()).await;
                }
            }
            ToListeners::Disconnect(reason) => {
                let disconnect = listeners.disconnect.read().clone();
                for listener in disconnect {
                    run_caught(listener(reason)).await;
                }
            }
            ToListeners::ConnectError(error) => {
                let connect_error = listeners.connect_error.read().clone();
                for listener in connect_error {
                    run_caught(listener(error.clone())).await;
                }
            }
            ToListeners::Reconnect(event) => {
                let reconnect = listeners.reconnect.read().clone();
                for listener in reconnect {
                    run_caught(listener(event.clone())).await;
                }
            }
        }
    }
}

/// Runs a listener; one that panics is logged and the next ones still run.
async fn run_caught(listener: BoxFuture) {
    use futures_util::FutureExt;
    if std::panic::AssertUnwindSafe(listener)
        .catch_unwind()
        .await
        .is_err()
    {
        tracing::error!("a listener panicked");
    }
}

impl Event {
    fn copy_without_ack(&self) -> Event {
        Event {
            name: self.name.clone(),
            args: self.args.clone(),
            ack: None,
            socket: self.socket.clone(),
        }
    }
}

/// The task that owns the connection.
struct Driver {
    options: Arc<Options>,
    state: Arc<State>,
    commands: mpsc::UnboundedReceiver<Command>,
    /// Answers to the server's events, from the listeners.
    answers: mpsc::UnboundedReceiver<(u64, Payload)>,
    answers_tx: mpsc::UnboundedSender<(u64, Payload)>,
    socket: std::sync::Weak<SocketInner>,
    events: mpsc::Sender<ToListeners>,
    acks: HashMap<u64, PendingAck>,
    next_ack: u64,
    /// Emits waiting for a connection (socket.io-client's `sendBuffer`).
    buffer: Vec<Packet>,
    /// The last offset received (connection state recovery).
    last_offset: Option<String>,
    /// Told how the first connection went.
    first: Option<oneshot::Sender<Result<(), ConnectError>>>,
}

/// How one connection ended.
enum Ended {
    /// Reconnect (unless reconnection is off).
    Lost(DisconnectReason),
    /// Stop: disconnected for good, refused, or every handle is gone.
    Stop,
}

/// The private id and whether it was given back, after a `CONNECT` reply.
struct Session {
    pid: Option<String>,
}

impl Driver {
    async fn run(mut self) {
        let mut backoff = Backoff::new(
            self.options.reconnection_delay,
            self.options.reconnection_delay_max,
            self.options.randomization_factor,
        );
        let mut session = Session { pid: None };
        loop {
            // An attempt after a delay, of a first connection or after a lost one, is a
            // reconnection attempt (as in socket.io-client).
            let reconnecting = backoff.attempts() > 0;
            let options = self.options.clone();
            let opening = engine::open(&options.target);
            let Some(opened) = self.offline_until(opening).await else {
                return self.finish();
            };
            match opened {
                Ok(engine) => {
                    if reconnecting {
                        self.tell(ToListeners::Reconnect(ReconnectEvent::Reconnected(
                            backoff.attempts(),
                        )));
                    }
                    backoff.reset();
                    match self.session(engine, &mut session).await {
                        Ended::Stop => break,
                        Ended::Lost(reason) => self.lost(reason),
                    }
                }
                Err(error) => {
                    tracing::debug!(%error, "cannot connect");
                    if !self.state.connected.load(Ordering::Acquire) {
                        self.tell(ToListeners::ConnectError(ConnectError::Unreachable(
                            error.to_string(),
                        )));
                    }
                    if reconnecting {
                        self.tell(ToListeners::Reconnect(ReconnectEvent::Error(
                            error.to_string(),
                        )));
                    }
                    if !self.options.reconnection {
                        self.fail(ConnectError::Unreachable(error.to_string()));
                        break;
                    }
                }
            }
            if !self.options.reconnection {
                break;
            }
            if self
                .options
                .reconnection_attempts
                .is_some_and(|max| backoff.attempts() >= max)
            {
                self.tell(ToListeners::Reconnect(ReconnectEvent::Failed));
                self.fail(ConnectError::Unreachable(
                    "reconnection attempts exhausted".to_owned(),
                ));
                break;
            }
            // Wait, still taking commands (emits are buffered) and expiring acks.
            let delay = backoff.next_delay();
            if self
                .offline_until(tokio::time::sleep(delay))
                .await
                .is_none()
            {
                return self.finish();
            }
            self.tell(ToListeners::Reconnect(ReconnectEvent::Attempt(
                backoff.attempts(),
            )));
        }
        self.finish();
    }

    /// Hands `what` to the listeners; dropped when they are too far behind (only events
    /// count toward dropping the connection).
    fn tell(&self, what: ToListeners) {
        let _ = self.events.try_send(what);
    }

    /// Runs `future` while there is no connection: emits are buffered, acks expire,
    /// [`Socket::disconnect`] (or the last handle dropped) ends it: `None`.
    async fn offline_until<T>(&mut self, future: impl Future<Output = T>) -> Option<T> {
        tokio::pin!(future);
        loop {
            let next_deadline = self.next_deadline();
            tokio::select! {
                done = &mut future => return Some(done),
                command = self.commands.recv() => match command {
                    None => return None,
                    Some(Command::Disconnect(done)) => {
                        self.state.closed.store(true, Ordering::Release);
                        let _ = done.send(());
                        return None;
                    }
                    Some(command) => self.offline(command),
                },
                () = sleep_until(next_deadline) => self.expire_acks(),
            }
        }
    }

    /// The earliest deadline of the acks waited for.
    fn next_deadline(&self) -> Option<Instant> {
        self.acks.values().filter_map(|ack| ack.deadline).min()
    }

    /// Fails the acks whose deadline passed; a buffered emit whose ack timed out is not sent
    /// any more (as socket.io-client takes it out of its send buffer).
    fn expire_acks(&mut self) {
        let now = Instant::now();
        let expired: Vec<u64> = self
            .acks
            .iter()
            .filter(|(_, ack)| ack.deadline.is_some_and(|d| d <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(ack) = self.acks.remove(&id) {
                let _ = ack.answer.send(Err(AckError::Timeout));
            }
            self.buffer.retain(|packet| {
                !matches!(packet.data, PacketData::Event { ack: Some(ack), .. } if ack == id)
            });
        }
    }

    /// Marks the socket closed, fails what waits.
    fn finish(&mut self) {
        self.state.closed.store(true, Ordering::Release);
        self.state.connected.store(false, Ordering::Release);
        for (_, pending) in self.acks.drain() {
            let _ = pending.answer.send(Err(AckError::Closed));
        }
        if let Some(first) = self.first.take() {
            let _ = first.send(Err(ConnectError::Unreachable(
                "the client stopped".to_owned(),
            )));
        }
    }

    fn fail(&mut self, error: ConnectError) {
        if let Some(first) = self.first.take() {
            let _ = first.send(Err(error));
        }
    }

    /// The connection was lost: the acks of what was sent fail (socket.io-client 4.7.5: "socket
    /// has been disconnected"), those of buffered emits still wait.
    fn lost(&mut self, reason: DisconnectReason) {
        let buffered: Vec<u64> = self
            .buffer
            .iter()
            .filter_map(|packet| match packet.data {
                PacketData::Event { ack, .. } => ack,
                _ => None,
            })
            .collect();
        let sent: Vec<u64> = self
            .acks
            .keys()
            .filter(|id| !buffered.contains(id))
            .copied()
            .collect();
        for id in sent {
            if let Some(ack) = self.acks.remove(&id) {
                let _ = ack.answer.send(Err(AckError::Disconnected));
            }
        }
        if !reason.reconnects() || !self.options.reconnection {
            // Told before the listeners run: `active()` is false in them.
            self.state.closed.store(true, Ordering::Release);
        }
        if self.state.connected.swap(false, Ordering::AcqRel) {
            *self.state.id.lock() = None;
            let _ = self.events.try_send(ToListeners::Disconnect(reason));
        }
    }

    /// A command while there is no connection.
    fn offline(&mut self, command: Command) {
        match command {
            Command::Emit {
                payload,
                ack,
                volatile,
            } => {
                if volatile {
                    return;
                }
                let packet = self.event_packet(payload, ack);
                self.buffer.push(packet);
            }
            Command::Disconnect(_) => {}
        }
    }

    /// The event packet of `payload`, registering its ack.
    fn event_packet(&mut self, payload: Payload, ack: Option<AckWaiter>) -> Packet {
        // Waiters given up on (a future dropped) are forgotten.
        self.acks.retain(|_, ack| !ack.answer.is_closed());
        let id = ack.map(|(answer, timeout)| {
            let id = self.next_ack;
            self.next_ack += 1;
            let deadline = timeout.and_then(|timeout| Instant::now().checked_add(timeout));
            self.acks.insert(id, PendingAck { answer, deadline });
            id
        });
        Packet::event(Str::from(self.options.namespace.as_str()), payload, id)
    }

    /// Runs one connection: `CONNECT`, then packets both ways until it ends.
    async fn session(&mut self, mut engine: Engine, session: &mut Session) -> Ended {
        // Answers to a server session that is gone are not sent to the new one.
        while self.answers.try_recv().is_ok() {}
        let connect = self.connect_packet(session);
        if send(&engine, self.options.parser, connect).is_err() {
            return Ended::Lost(DisconnectReason::TransportError);
        }
        let mut decoder = Decoder::default();
        loop {
            let next_deadline = self.next_deadline();
            tokio::select! {
                incoming = engine.incoming.recv() => {
                    let packet = match incoming {
                        Some(Incoming::Text(text)) if self.options.parser == Parser::Default => {
                            decoder.decode_text(text)
                        }
                        Some(Incoming::Binary(data)) if self.options.parser == Parser::Default => {
                            decoder.decode_binary(data)
                        }
                        // The msgpack parser: one binary message per packet, never text.
                        Some(Incoming::Binary(data)) => {
                            belfry_core::parser::msgpack::decode(&data).map(Some)
                        }
                        Some(Incoming::Text(_)) => Err(ParseError::InvalidPayload),
                        Some(Incoming::Closed(reason)) => return Ended::Lost(reason),
                        None => return Ended::Lost(DisconnectReason::TransportClose),
                    };
                    match packet {
                        Ok(Some(packet)) => {
                            if let Some(ended) = self.on_packet(&engine, packet, session) {
                                let _ = engine.outgoing.send(Outgoing::Close);
                                return ended;
                            }
                        }
                        Ok(None) => {}
                        Err(error) => {
                            tracing::warn!(%error, "undecodable packet from the server");
                            let _ = engine.outgoing.send(Outgoing::Close);
                            return Ended::Lost(DisconnectReason::ParseError);
                        }
                    }
                }
                command = self.commands.recv() => match command {
                    None => {
                        let _ = send(&engine, self.options.parser, Packet::disconnect(self.namespace()));
                        let _ = engine.outgoing.send(Outgoing::Close);
                        return Ended::Stop;
                    }
                    Some(Command::Disconnect(done)) => {
                        if self.state.connected.load(Ordering::Acquire) {
                            let _ = send(&engine, self.options.parser, Packet::disconnect(self.namespace()));
                        }
                        let _ = engine.outgoing.send(Outgoing::Close);
                        self.lost(DisconnectReason::IoClientDisconnect);
                        self.finish();
                        let _ = done.send(());
                        return Ended::Stop;
                    }
                    Some(Command::Emit { payload, ack, volatile }) => {
                        if !self.state.connected.load(Ordering::Acquire) {
                            self.offline(Command::Emit { payload, ack, volatile });
                            continue;
                        }
                        let packet = self.event_packet(payload, ack);
                        if send(&engine, self.options.parser, packet).is_err() {
                            return Ended::Lost(DisconnectReason::TransportError);
                        }
                    }
                },
                Some((id, payload)) = self.answers.recv() => {
                    let packet = Packet::ack(self.namespace(), payload, id);
                    let _ = send(&engine, self.options.parser, packet);
                }
                () = sleep_until(next_deadline) => self.expire_acks(),
            }
        }
    }

    fn namespace(&self) -> Str {
        Str::from(self.options.namespace.as_str())
    }

    /// `CONNECT` with the auth object, and the private id and offset of the last session
    /// (connection state recovery): `{pid, offset, ...auth}`.
    fn connect_packet(&self, session: &Session) -> Packet {
        let auth = self.options.auth.lock().clone();
        let mut fields = serde_json::Map::new();
        if let Some(pid) = &session.pid {
            fields.insert("pid".to_owned(), serde_json::Value::from(pid.as_str()));
            if let Some(offset) = &self.last_offset {
                fields.insert(
                    "offset".to_owned(),
                    serde_json::Value::from(offset.as_str()),
                );
            }
        }
        if let Some(auth) = auth
            .as_ref()
            .and_then(|auth| serde_json::to_value(auth).ok())
        {
            match auth {
                serde_json::Value::Object(auth) => fields.extend(auth),
                other if fields.is_empty() => {
                    return Packet {
                        ns: self.namespace(),
                        data: PacketData::Connect(Some(Str::from(other.to_string()))),
                    };
                }
                _ => {}
            }
        }
        let data =
            (!fields.is_empty()).then(|| Str::from(serde_json::Value::Object(fields).to_string()));
        Packet {
            ns: self.namespace(),
            data: PacketData::Connect(data),
        }
    }

    /// A packet from the server; `Some` when the connection ends.
    fn on_packet(
        &mut self,
        engine: &Engine,
        packet: Packet,
        session: &mut Session,
    ) -> Option<Ended> {
        if *packet.ns != *self.options.namespace {
            return None;
        }
        match packet.data {
            PacketData::Connect(data) => {
                let reply: serde_json::Value = data
                    .as_deref()
                    .and_then(|data| serde_json::from_str(data).ok())
                    .unwrap_or_default();
                let Some(sid) = reply.get("sid").and_then(serde_json::Value::as_str) else {
                    self.fail(ConnectError::Refused {
                        message: "It seems you are trying to reach a Socket.IO server in v2.x"
                            .to_owned(),
                        data: Value::Null,
                    });
                    return Some(Ended::Stop);
                };
                let pid = reply
                    .get("pid")
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_owned);
                let recovered = pid.is_some() && pid == session.pid;
                session.pid = pid;
                *self.state.id.lock() = Some(sid.to_owned());
                self.state.recovered.store(recovered, Ordering::Release);
                self.state.connected.store(true, Ordering::Release);
                // What waited while disconnected, in order.
                for packet in std::mem::take(&mut self.buffer) {
                    if send(engine, self.options.parser, packet).is_err() {
                        return Some(Ended::Lost(DisconnectReason::TransportError));
                    }
                }
                let _ = self.events.try_send(ToListeners::Connect);
                if let Some(first) = self.first.take() {
                    let _ = first.send(Ok(()));
                }
                None
            }
            PacketData::ConnectError(data) => {
                let error: serde_json::Value = serde_json::from_str(&data)
                    .unwrap_or_else(|_| serde_json::Value::String(data.to_string()));
                let message = match &error {
                    serde_json::Value::String(message) => message.clone(),
                    other => other
                        .get("message")
                        .and_then(serde_json::Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                };
                let data = error
                    .get("data")
                    .map(|data| data::to_value(data).unwrap_or_default())
                    .unwrap_or_default();
                let error = ConnectError::Refused { message, data };
                self.tell(ToListeners::ConnectError(error.clone()));
                self.fail(error);
                self.finish();
                Some(Ended::Stop)
            }
            PacketData::Disconnect => {
                self.lost(DisconnectReason::IoServerDisconnect);
                self.finish();
                Some(Ended::Stop)
            }
            PacketData::Event { payload, ack } => {
                let values = match data::values(&payload) {
                    Ok(values) => values,
                    Err(error) => {
                        tracing::warn!(%error, "undecodable event from the server");
                        return None;
                    }
                };
                let mut values = values.into_iter();
                let Some(Value::String(name)) = values.next() else {
                    return None;
                };
                let args: Vec<Value> = values.collect();
                if session.pid.is_some()
                    && ack.is_none()
                    && let Some(Value::String(offset)) = args.last()
                {
                    self.last_offset = Some(offset.clone());
                }
                if self.socket.strong_count() == 0 {
                    return Some(Ended::Stop);
                }
                let event = Event {
                    name,
                    args,
                    ack: ack.map(|id| Acker {
                        id,
                        answers: self.answers_tx.clone(),
                    }),
                    socket: self.socket.clone(),
                };
                match self.events.try_send(ToListeners::Event(event)) {
                    Ok(()) => None,
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        // The listeners are far behind: rather than queue without bound, the
                        // connection is dropped (recovery, when on, replays what was missed).
                        tracing::warn!(
                            backlog = EVENT_BACKLOG,
                            "listeners too slow for the server's events: reconnecting"
                        );
                        Some(Ended::Lost(DisconnectReason::TransportError))
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => Some(Ended::Stop),
                }
            }
            PacketData::Ack { payload, ack } => {
                if let Some(pending) = self.acks.remove(&ack) {
                    let _ = pending.answer.send(Ok(payload));
                }
                None
            }
        }
    }
}

/// Writes `packet` on `engine`: with the default parser, its text then its attachments; with
/// msgpack, one binary message.
fn send(engine: &Engine, parser: Parser, packet: Packet) -> Result<(), ()> {
    if parser == Parser::Msgpack {
        // Packets the client builds always encode (their JSON is its own).
        let message = belfry_core::parser::msgpack::encode(&packet).map_err(|_| ())?;
        return engine
            .outgoing
            .send(Outgoing::Binary(message))
            .map_err(|_| ());
    }
    let (text, attachments) = packet.into_shared("4");
    engine
        .outgoing
        .send(Outgoing::Text(text.to_string()))
        .map_err(|_| ())?;
    for attachment in attachments {
        engine
            .outgoing
            .send(Outgoing::Binary(attachment))
            .map_err(|_| ())?;
    }
    Ok(())
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
