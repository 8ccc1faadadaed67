//! Engine options, with Node's engine.io 6.6 defaults.

use std::{fmt, future::Future, pin::Pin, sync::Arc, time::Duration};

use http::{HeaderMap, request::Parts};

use crate::{Sid, TransportType, origin::AllowedOrigins};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;
pub(crate) type AllowRequestFn = Arc<dyn Fn(&Parts) -> BoxFuture<Result<(), String>> + Send + Sync>;
pub(crate) type HeadersFn = Arc<dyn Fn(&mut HeaderMap, &Parts) + Send + Sync>;
pub(crate) type SidFn = Arc<dyn Fn(&Parts) -> Result<Sid, String> + Send + Sync>;

/// The options of an Engine.IO server. Build one with [`EngineConfig::builder`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use belfry_engine::EngineConfig;
///
/// let config = EngineConfig::builder()
///     .ping_interval(Duration::from_secs(10))
///     .max_payload(64 * 1024)
///     .build();
/// assert_eq!(config.ping_interval(), Duration::from_secs(10));
/// assert_eq!(config.path(), "/socket.io/");
/// ```
#[derive(Clone)]
pub struct EngineConfig {
    pub(crate) path: String,
    pub(crate) ping_interval: Duration,
    pub(crate) ping_timeout: Duration,
    pub(crate) upgrade_timeout: Duration,
    pub(crate) max_payload: u64,
    pub(crate) polling: bool,
    pub(crate) websocket: bool,
    pub(crate) allow_upgrades: bool,
    pub(crate) allow_eio3: bool,
    pub(crate) http_compression: Option<usize>,
    pub(crate) per_message_deflate: Option<usize>,
    pub(crate) cookie: Option<Cookie>,
    pub(crate) allow_request: Option<AllowRequestFn>,
    pub(crate) allowed_origins: Option<AllowedOrigins>,
    pub(crate) initial_headers: Option<HeadersFn>,
    pub(crate) headers: Option<HeadersFn>,
    pub(crate) session_id_generator: Option<SidFn>,
    pub(crate) max_buffered_packets: usize,
    pub(crate) max_buffered_bytes: usize,
    pub(crate) max_sessions: Option<usize>,
    pub(crate) body_timeout: Option<Duration>,
    pub(crate) close_grace: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            path: "/socket.io/".to_owned(),
            ping_interval: Duration::from_millis(25_000),
            ping_timeout: Duration::from_millis(20_000),
            upgrade_timeout: Duration::from_millis(10_000),
            max_payload: 1_000_000,
            polling: true,
            websocket: true,
            allow_upgrades: true,
            allow_eio3: false,
            http_compression: Some(1024),
            per_message_deflate: None,
            cookie: None,
            allow_request: None,
            allowed_origins: None,
            initial_headers: None,
            headers: None,
            session_id_generator: None,
            max_buffered_packets: 128,
            max_buffered_bytes: 1 << 20,
            max_sessions: None,
            body_timeout: None,
            close_grace: Duration::from_secs(30),
        }
    }
}

impl EngineConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> EngineConfigBuilder {
        EngineConfigBuilder {
            config: EngineConfig::default(),
        }
    }

    /// The path the engine answers, always with a trailing slash (default `/socket.io/`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Time between two server pings (default 25 s).
    pub fn ping_interval(&self) -> Duration {
        self.ping_interval
    }

    /// Time to wait for a pong after a ping (default 20 s).
    pub fn ping_timeout(&self) -> Duration {
        self.ping_timeout
    }

    /// Time an upgrade to WebSocket may take (default 10 s).
    pub fn upgrade_timeout(&self) -> Duration {
        self.upgrade_timeout
    }

    /// The largest payload accepted, in bytes, on both transports (default 1 MB).
    pub fn max_payload(&self) -> u64 {
        self.max_payload
    }

    /// Whether `transport` is enabled.
    pub fn allows_transport(&self, transport: TransportType) -> bool {
        match transport {
            TransportType::Polling => self.polling,
            TransportType::Websocket => self.websocket,
        }
    }

    /// How long a polling POST body may take to arrive (default: the ping timeout).
    pub fn body_timeout(&self) -> Duration {
        self.body_timeout.unwrap_or(self.ping_timeout)
    }

    pub(crate) fn upgrades(&self) -> Vec<&'static str> {
        if self.allow_upgrades && self.websocket {
            vec!["websocket"]
        } else {
            Vec::new()
        }
    }
}

impl fmt::Debug for EngineConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineConfig")
            .field("path", &self.path)
            .field("ping_interval", &self.ping_interval)
            .field("ping_timeout", &self.ping_timeout)
            .field("upgrade_timeout", &self.upgrade_timeout)
            .field("max_payload", &self.max_payload)
            .field("polling", &self.polling)
            .field("websocket", &self.websocket)
            .field("allow_upgrades", &self.allow_upgrades)
            .field("allow_eio3", &self.allow_eio3)
            .field("http_compression", &self.http_compression)
            .field("per_message_deflate", &self.per_message_deflate)
            .field("cookie", &self.cookie)
            .field("allow_request", &self.allow_request.is_some())
            .field("allowed_origins", &self.allowed_origins)
            .field("initial_headers", &self.initial_headers.is_some())
            .field("headers", &self.headers.is_some())
            .field("session_id_generator", &self.session_id_generator.is_some())
            .field("max_buffered_packets", &self.max_buffered_packets)
            .field("max_buffered_bytes", &self.max_buffered_bytes)
            .field("max_sessions", &self.max_sessions)
            .field("body_timeout", &self.body_timeout)
            .finish_non_exhaustive()
    }
}

/// Builds an [`EngineConfig`].
#[derive(Debug, Clone)]
pub struct EngineConfigBuilder {
    config: EngineConfig,
}

impl EngineConfigBuilder {
    /// The path to answer (default `/socket.io/`). A leading and a trailing slash are added if
    /// missing; every request whose path starts with it goes to the engine.
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.config.path = belfry_proto::engine_path(path);
        self
    }

    /// Time between two server pings (default 25 s). The first ping goes one interval after the
    /// handshake.
    pub fn ping_interval(mut self, interval: Duration) -> Self {
        self.config.ping_interval = interval;
        self
    }

    /// Time to wait for a pong before closing with "ping timeout" (default 20 s).
    pub fn ping_timeout(mut self, timeout: Duration) -> Self {
        self.config.ping_timeout = timeout;
        self
    }

    /// Time allowed between the WebSocket probe and the `5` upgrade packet (default 10 s).
    pub fn upgrade_timeout(mut self, timeout: Duration) -> Self {
        self.config.upgrade_timeout = timeout;
        self
    }

    /// The largest payload accepted, in bytes (default 1,000,000, Node's `maxHttpBufferSize`).
    ///
    /// A polling POST above it is answered 413 before its body is read; a WebSocket message
    /// above it closes the connection with code 1009. Both close the session.
    pub fn max_payload(mut self, bytes: u64) -> Self {
        self.config.max_payload = bytes;
        self
    }

    /// The transports to accept (default: both). At least one must be given.
    ///
    /// # Panics
    ///
    /// Panics if `transports` is empty.
    pub fn transports(mut self, transports: impl IntoIterator<Item = TransportType>) -> Self {
        self.config.polling = false;
        self.config.websocket = false;
        for transport in transports {
            match transport {
                TransportType::Polling => self.config.polling = true,
                TransportType::Websocket => self.config.websocket = true,
            }
        }
        assert!(
            self.config.polling || self.config.websocket,
            "at least one transport must be enabled"
        );
        self
    }

    /// Accepts Engine.IO v3 clients (socket.io 2.x), as Node's `allowEIO3` (default false): a
    /// request whose `EIO` is not `4` speaks v3 (the client pings, length-prefixed polling
    /// payloads, a type byte in front of binary WebSocket frames). Otherwise they are refused
    /// with code 5, "Unsupported protocol version".
    pub fn allow_eio3(mut self, allow: bool) -> Self {
        self.config.allow_eio3 = allow;
        self
    }

    /// Compresses polling responses of at least `threshold` bytes with gzip or deflate, as the
    /// request's `Accept-Encoding` allows (Node's `httpCompression`, on by default with a
    /// threshold of 1024 bytes); `None` turns it off. A response is compressed unless every
    /// packet in it was sent with compression off (`BroadcastOperator::compress(false)`).
    pub fn http_compression(mut self, threshold: Option<usize>) -> Self {
        self.config.http_compression = threshold;
        self
    }

    /// WebSocket permessage-deflate (Node's `perMessageDeflate`, off by default as in Node):
    /// with `Some(threshold)` (Node's is 1024), a client that offers the extension gets its
    /// messages of at least `threshold` bytes compressed, and may compress its own. Each message
    /// is compressed on its own (no context takeover either way), so a connection holds no
    /// compression window; inflated messages are bounded by [`EngineConfigBuilder::max_payload`].
    pub fn per_message_deflate(mut self, threshold: Option<usize>) -> Self {
        self.config.per_message_deflate = threshold;
        self
    }

    /// Whether polling sessions may upgrade to WebSocket (default true).
    pub fn allow_upgrades(mut self, allow: bool) -> Self {
        self.config.allow_upgrades = allow;
        self
    }

    /// Sends a cookie holding the session id on the handshake response, for cookie-based sticky
    /// sessions (default: no cookie).
    pub fn cookie(mut self, cookie: Cookie) -> Self {
        self.config.cookie = Some(cookie);
        self
    }

    /// A check run on every handshake request (Node's `allowRequest`). `Err(message)` refuses the
    /// handshake with 403 `{"code":4,"message":message}`.
    ///
    /// # Examples
    ///
    /// ```
    /// use belfry_engine::EngineConfig;
    ///
    /// let config = EngineConfig::builder()
    ///     .allow_request(|parts| {
    ///         let ok = parts.headers.contains_key("x-token");
    ///         async move { if ok { Ok(()) } else { Err("no token".to_owned()) } }
    ///     })
    ///     .build();
    /// # let _ = config;
    /// ```
    pub fn allow_request<F, Fut>(mut self, check: F) -> Self
    where
        F: Fn(&Parts) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.config.allow_request = Some(Arc::new(move |parts| Box::pin(check(parts))));
        self
    }

    /// Refuses engine requests whose `Origin` header is not one of `origins` (default: every
    /// origin is accepted, as in Node, which leaves this to `allowRequest`).
    ///
    /// Browsers apply CORS to long-polling requests but not to a WebSocket handshake: any page
    /// may open a WebSocket to the engine, and the browser sends the user's cookies with it. An
    /// application that authenticates sockets by a cookie session is then open to cross-site
    /// WebSocket hijacking unless the server checks the `Origin` header, as RFC 6455 §10.2
    /// asks. This option does.
    ///
    /// - An origin is `scheme://host[:port]`, as browsers send it (`https://app.example`,
    ///   `http://127.0.0.1:3000`); it matches exactly, scheme and host case-insensitively, and a
    ///   default port (`:80`, `:443`) or a trailing slash in `origins` is ignored. There are no
    ///   wildcards; the `null` origin of sandboxed pages and `file:` URLs is refused unless
    ///   `"null"` is listed (do not). An internationalised domain name is written as browsers
    ///   send it, in punycode (`https://xn--bcher-kva.example`).
    /// - **Every** engine request is checked: the handshake, on both transports, the WebSocket
    ///   upgrade of a polling session, and the polling requests of an open session (browsers
    ///   send `Origin` on cross-origin ones).
    /// - A request **without** an `Origin` header is accepted: browsers always send it on a
    ///   WebSocket handshake and on cross-origin requests, and other clients (Node, Python,
    ///   native apps) usually send none. What they present is for
    ///   [`EngineConfigBuilder::allow_request`] or a connect middleware to check.
    /// - A refused request gets what a refused `allow_request` gets: polling, `403`
    ///   `{"code":4,"message":"Forbidden"}`; a WebSocket handshake or upgrade, `403` with
    ///   `Forbidden` as a `text/html` body and `Connection: close` (a refused `allow_request`
    ///   answers an upgrade `400`, as Node; RFC 6455 §10.2 names `403` for a refused origin).
    ///   No session is opened, and an open session is left as it was.
    ///
    /// The check runs before [`EngineConfigBuilder::allow_request`]. Calling this again
    /// replaces the list; an empty list refuses every request that carries an `Origin`.
    ///
    /// # Examples
    ///
    /// ```
    /// use belfry_engine::EngineConfig;
    ///
    /// let config = EngineConfig::builder()
    ///     .allowed_origins(["https://app.example", "http://localhost:5173"])
    ///     .build();
    /// # let _ = config;
    /// ```
    pub fn allowed_origins<I, S>(mut self, origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.config.allowed_origins = Some(AllowedOrigins::new(origins));
        self
    }

    /// Edits the response headers of the handshake request (Node's `initial_headers` event).
    pub fn initial_headers<F>(mut self, edit: F) -> Self
    where
        F: Fn(&mut HeaderMap, &Parts) + Send + Sync + 'static,
    {
        self.config.initial_headers = Some(Arc::new(edit));
        self
    }

    /// Edits the response headers of every engine response, the handshake included (Node's
    /// `headers` event): polling responses and the WebSocket `101`.
    pub fn headers<F>(mut self, edit: F) -> Self
    where
        F: Fn(&mut HeaderMap, &Parts) + Send + Sync + 'static,
    {
        self.config.headers = Some(Arc::new(edit));
        self
    }

    /// Replaces the session id generator (Node's `generateId`). `Err(_)` refuses the handshake with
    /// 400 `{"code":3,"message":"Bad request"}`. Ids must be unique among live sessions; a clash is
    /// refused the same way.
    pub fn session_id_generator<F>(mut self, generate: F) -> Self
    where
        F: Fn(&Parts) -> Result<Sid, String> + Send + Sync + 'static,
    {
        self.config.session_id_generator = Some(Arc::new(generate));
        self
    }

    /// The most packets queued for one session before sends fail with
    /// [`SendError::Full`](crate::SendError::Full) (default 128). What the session's own work
    /// sends it ([`Socket::as_own_work`](crate::Socket::as_own_work): the handlers of its
    /// packets) may go to twice that, and then waits for the writer.
    pub fn max_buffered_packets(mut self, packets: usize) -> Self {
        self.config.max_buffered_packets = packets.max(1);
        self
    }

    /// The most bytes queued for one session before sends fail with
    /// [`SendError::Full`](crate::SendError::Full) (default 1 MiB); twice that for the
    /// session's own work, as [`EngineConfigBuilder::max_buffered_packets`].
    pub fn max_buffered_bytes(mut self, bytes: usize) -> Self {
        self.config.max_buffered_bytes = bytes.max(1);
        self
    }

    /// The most live sessions; further handshakes get `503 Service Unavailable` (default: no cap).
    pub fn max_sessions(mut self, sessions: usize) -> Self {
        self.config.max_sessions = Some(sessions);
        self
    }

    /// How long a polling POST body may take to arrive before the session is closed (default:
    /// the ping timeout). Guards against bodies trickled one byte at a time.
    pub fn body_timeout(mut self, timeout: Duration) -> Self {
        self.config.body_timeout = Some(timeout);
        self
    }

    /// The finished configuration.
    pub fn build(self) -> EngineConfig {
        self.config
    }
}

/// The cookie sent on the handshake when [`EngineConfigBuilder::cookie`] is set. The defaults are
/// Node's: `io`, path `/`, `HttpOnly`, `SameSite=Lax`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Cookie {
    /// The cookie name (default `io`).
    pub name: String,
    /// The cookie path (default `/`).
    pub path: String,
    /// Whether the cookie is `HttpOnly` (default true).
    pub http_only: bool,
    /// The `SameSite` attribute (default `Lax`); `None` omits it.
    pub same_site: Option<String>,
}

impl Default for Cookie {
    fn default() -> Self {
        Cookie {
            name: "io".to_owned(),
            path: "/".to_owned(),
            http_only: true,
            same_site: Some("Lax".to_owned()),
        }
    }
}

impl Cookie {
    /// A cookie with the given name and Node's other defaults.
    pub fn named(name: impl Into<String>) -> Self {
        Cookie {
            name: name.into(),
            ..Cookie::default()
        }
    }

    pub(crate) fn header_value(&self, sid: &Sid) -> String {
        let mut value = format!("{}={}; Path={}", self.name, sid, self.path);
        if self.http_only {
            value.push_str("; HttpOnly");
        }
        if let Some(same_site) = &self.same_site {
            value.push_str("; SameSite=");
            value.push_str(same_site);
        }
        value
    }
}
