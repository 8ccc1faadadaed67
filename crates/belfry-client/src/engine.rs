//! The Engine.IO v4 side of the client: the handshake (the open packet), over HTTP long-polling
//! or WebSocket; the upgrade from polling to WebSocket (probe, pause, flush); the heartbeat
//! (answering pings, closing when the server has been silent for `pingInterval +
//! pingTimeout`); and the messages, text and binary, both ways.
//!
//! Each open connection is a task; the client talks to it through two channels ([`Engine`]).

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use belfry_core::proto::{Packet, Str, payload};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use serde::Deserialize;
use tokio::{sync::mpsc, time::Instant};
use tokio_tungstenite::tungstenite::{self, Message, client::IntoClientRequest};

use crate::DisconnectReason;

/// The largest message (and polling response) the client takes.
const MAX_MESSAGE: usize = 16 << 20;
/// The longest silence a server may ask for (its `pingInterval + pingTimeout`).
const MAX_SILENCE: Duration = Duration::from_secs(3600);
/// How long closing may take once the client closes.
const CLOSE_WAIT: Duration = Duration::from_secs(1);
/// The cookies kept, at most (a server that sets more has the oldest forgotten).
const MAX_COOKIES: usize = 64;

/// The transports a client may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Transports {
    /// HTTP long-polling first, then an upgrade to WebSocket when the server offers it
    /// (socket.io-client's default).
    PollingThenWebSocket,
    /// HTTP long-polling only (socket.io-client's `transports: ["polling"]`).
    Polling,
    /// WebSocket only (socket.io-client's `transports: ["websocket"]`).
    WebSocket,
}

/// The transport a connection uses now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Transport {
    /// HTTP long-polling.
    Polling,
    /// WebSocket.
    WebSocket,
}

impl Transport {
    /// The name socket.io-client gives it (`"polling"`, `"websocket"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Polling => "polling",
            Transport::WebSocket => "websocket",
        }
    }
}

/// What the server's open packet says.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Handshake {
    /// The session id.
    sid: String,
    #[serde(default)]
    upgrades: Vec<String>,
    ping_interval: u64,
    ping_timeout: u64,
    /// The largest payload the server takes (a POST over it is refused, and the session
    /// closed), as the server wrote it: Node writes `null` for `Infinity`.
    #[serde(default = "engine_io_max_payload")]
    max_payload: serde_json::Value,
}

/// engine.io's `maxPayload` when the server does not say.
fn engine_io_max_payload() -> serde_json::Value {
    serde_json::Value::from(1_000_000)
}

impl Handshake {
    /// The server's `maxPayload`: no limit for `null`, 0 or what is not a count (as
    /// engine.io-client), engine.io's default when the server does not say.
    fn max_payload(&self) -> usize {
        self.max_payload
            .as_u64()
            .filter(|max| *max > 0)
            .map_or(usize::MAX, |max| usize::try_from(max).unwrap_or(usize::MAX))
    }
}

impl Handshake {
    /// How long the server may be silent: `pingInterval + pingTimeout`, saturated and capped
    /// (the numbers are the server's).
    fn silence(&self) -> Duration {
        Duration::from_millis(self.ping_interval.saturating_add(self.ping_timeout)).min(MAX_SILENCE)
    }
}

/// What the engine hands the client.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// A text message (a Socket.IO packet).
    Text(Str),
    /// A binary message (an attachment).
    Binary(Bytes),
    /// The connection is gone.
    Closed(DisconnectReason),
}

/// What the client hands the engine.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// A text message: an engine packet already (`4…`).
    Text(String),
    /// A binary message.
    Binary(Bytes),
    /// Close the connection.
    Close,
}

/// An open Engine.IO connection: its messages, and where to write.
pub(crate) struct Engine {
    pub(crate) incoming: mpsc::Receiver<Incoming>,
    pub(crate) outgoing: mpsc::UnboundedSender<Outgoing>,
}

/// Why the engine could not open.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OpenError {
    #[error("websocket error: {0}")]
    WebSocket(#[from] tungstenite::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("http error: {0}")]
    Http(#[from] HttpError),
    #[error("the server did not open the session in time")]
    Timeout,
    #[error("the server's open packet is invalid")]
    Handshake,
}

/// Why an HTTP request of the polling transport failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HttpError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Hyper(#[from] hyper::Error),
    #[error("the response is too large or broken")]
    Body,
    #[error("status {0}")]
    Status(http::StatusCode),
    #[error("invalid request")]
    Request,
}

/// The cookies the server set, sent back with every request of the client (so that a load
/// balancer's sticky-session cookie keeps a client on one server, reconnections included).
#[derive(Debug, Clone, Default)]
pub(crate) struct Cookies(Arc<Mutex<Vec<(String, String)>>>);

impl Cookies {
    /// Keeps the cookies of `Set-Cookie` headers: the name and value; a past `Expires` or a
    /// `Max-Age` of zero or less removes it.
    fn store(&self, headers: &http::HeaderMap) {
        let mut cookies = self.0.lock();
        for header in headers.get_all(http::header::SET_COOKIE) {
            let Ok(header) = header.to_str() else {
                continue;
            };
            let mut parts = header.split(';');
            let Some((name, value)) = parts.next().and_then(|pair| pair.split_once('=')) else {
                continue;
            };
            let (name, value) = (name.trim(), value.trim());
            if name.is_empty() {
                continue;
            }
            let removed = parts.any(|attribute| {
                let (key, value) = attribute.split_once('=').unwrap_or((attribute, ""));
                let (key, value) = (key.trim(), value.trim());
                (key.eq_ignore_ascii_case("max-age")
                    && value.parse::<i64>().is_ok_and(|age| age <= 0))
                    || (key.eq_ignore_ascii_case("expires")
                        && httpdate::parse_http_date(value)
                            .is_ok_and(|expires| expires <= std::time::SystemTime::now()))
            });
            cookies.retain(|(kept, _)| kept != name);
            if !removed {
                if cookies.len() == MAX_COOKIES {
                    cookies.remove(0);
                }
                cookies.push((name.to_owned(), value.to_owned()));
            }
        }
    }

    /// The `Cookie` header, if there are cookies.
    fn header(&self) -> Option<http::HeaderValue> {
        let cookies = self.0.lock();
        if cookies.is_empty() {
            return None;
        }
        let line = cookies
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ");
        http::HeaderValue::try_from(line).ok()
    }
}

/// Where and how to open a connection.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// `host:port`.
    pub(crate) authority: String,
    /// TCP, or TLS.
    pub(crate) security: crate::tls::Security,
    /// The HTTP path, `/socket.io/` by default.
    pub(crate) path: String,
    /// The query the user gave (without `EIO`/`transport`), encoded.
    pub(crate) query: String,
    pub(crate) headers: http::HeaderMap,
    pub(crate) cookies: Cookies,
    pub(crate) transports: Transports,
    /// How long opening may take.
    pub(crate) timeout: Duration,
    /// True while the connection is on WebSocket (set by the engine).
    pub(crate) on_websocket: Arc<AtomicBool>,
}

impl Target {
    /// The path and query of a request of `transport`, in session `sid` if there is one.
    fn path_and_query(&self, transport: &str, sid: Option<&str>) -> String {
        let mut url = format!("{}?EIO=4&transport={transport}", self.path);
        if transport == "polling" {
            // socket.io-client's `timestampRequests`: no cache may answer a poll.
            url.push_str("&t=");
            url.push_str(&cache_buster());
        }
        if let Some(sid) = sid {
            url.push_str("&sid=");
            url.push_str(&crate::builder::encode(sid));
        }
        if !self.query.is_empty() {
            url.push('&');
            url.push_str(&self.query);
        }
        url
    }

    /// Connects a WebSocket of session `sid` (a new session without one).
    async fn websocket(&self, sid: Option<&str>) -> Result<Ws, OpenError> {
        let scheme = if self.security.is_tls() { "wss" } else { "ws" };
        let url = format!(
            "{scheme}://{}{}",
            self.authority,
            self.path_and_query("websocket", sid)
        );
        let mut request = url.into_client_request()?;
        request
            .headers_mut()
            .extend(self.headers.iter().map(|(k, v)| (k.clone(), v.clone())));
        if let Some(cookie) = self.cookies.header() {
            request.headers_mut().insert(http::header::COOKIE, cookie);
        }
        // Messages up to 16 MiB (socket.io-client's servers default to 1 MB); small writes
        // (acks, pongs, attachments after their packet) go out at once, as Node's `ws` does.
        let config = tungstenite::protocol::WebSocketConfig::default()
            .max_message_size(Some(MAX_MESSAGE))
            .max_frame_size(Some(MAX_MESSAGE));
        let io = self.security.connect(&self.authority).await?;
        let (ws, response) =
            tokio_tungstenite::client_async_with_config(request, io, Some(config)).await?;
        self.cookies.store(response.headers());
        Ok(ws)
    }
}

/// Opens a session on `target` within its timeout; a task then runs the connection until
/// either side closes it.
pub(crate) async fn open(target: &Target) -> Result<Engine, OpenError> {
    let (incoming_tx, incoming) = mpsc::channel(256);
    let (outgoing, outgoing_rx) = mpsc::unbounded_channel();
    let opening = async {
        if target.transports == Transports::WebSocket {
            let mut ws = target.websocket(None).await?;
            let handshake = loop {
                match ws.next().await {
                    Some(Ok(Message::Text(text))) => break handshake(text.as_str())?,
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(_)) | None => return Err(OpenError::Handshake),
                    Some(Err(error)) => return Err(error.into()),
                }
            };
            let deadline = Instant::now() + handshake.silence();
            target.on_websocket.store(true, Ordering::Release);
            let run = run_websocket(
                ws,
                handshake.silence(),
                deadline,
                Vec::new(),
                incoming_tx,
                outgoing_rx,
            );
            Ok::<_, OpenError>(Box::pin(run) as Pin<Box<dyn Future<Output = ()> + Send>>)
        } else {
            let mut http = Http::new(target.clone());
            let uri = target.path_and_query("polling", None);
            let body = http.request(http::Method::GET, &uri, None).await?;
            let body = Str::try_from(body).map_err(|_| OpenError::Handshake)?;
            // The open packet, and any packets after it in the same payload.
            let (open, rest) = match body.find('\u{1e}') {
                Some(end) => (body.slice(0..end), Some(body.slice(end + 1..body.len()))),
                None => (body.clone(), None),
            };
            let handshake = handshake(&open)?;
            let polling = Polling {
                sid: handshake.sid.clone(),
                upgrade: target.transports == Transports::PollingThenWebSocket
                    && handshake.upgrades.iter().any(|name| name == "websocket"),
                silence: handshake.silence(),
                max_payload: handshake.max_payload(),
                target: target.clone(),
            };
            let first = rest.map(|rest| rest.into_bytes());
            target.on_websocket.store(false, Ordering::Release);
            let run = polling.run(http, first, incoming_tx, outgoing_rx);
            Ok(Box::pin(run) as Pin<Box<dyn Future<Output = ()> + Send>>)
        }
    };
    let run = tokio::time::timeout(target.timeout, opening)
        .await
        .map_err(|_| OpenError::Timeout)??;
    tokio::spawn(run);
    Ok(Engine { incoming, outgoing })
}

/// A value that makes each poll's URL unique.
fn cache_buster() -> String {
    let mut bytes = [0u8; 8];
    // Without randomness the URL is still valid; the value only defeats caches.
    let _ = getrandom::fill(&mut bytes);
    format!("{:x}", u64::from_le_bytes(bytes))
}

/// The open packet's data.
fn handshake(text: &str) -> Result<Handshake, OpenError> {
    let json = text.strip_prefix('0').ok_or(OpenError::Handshake)?;
    serde_json::from_str(json).map_err(|_| OpenError::Handshake)
}

type Ws = tokio_tungstenite::WebSocketStream<Box<dyn crate::tls::Io>>;

/// Runs a WebSocket connection: reads (answering pings), writes (`pending` first), and
/// watches the heartbeat (`deadline`, pushed `silence` ahead by every message).
async fn run_websocket(
    mut ws: Ws,
    silence: Duration,
    mut deadline: Instant,
    pending: Vec<Outgoing>,
    incoming: mpsc::Sender<Incoming>,
    mut outgoing: mpsc::UnboundedReceiver<Outgoing>,
) {
    // What waited during the upgrade goes first, in order.
    for out in pending {
        let result = match ws_message(out) {
            Some(message) => write(&mut ws, message, deadline).await,
            None => Err(close_websocket(&mut ws).await),
        };
        if let Err(reason) = result {
            let _ = incoming.send(Incoming::Closed(reason)).await;
            return;
        }
    }
    let reason = loop {
        tokio::select! {
            frame = ws.next() => {
                match frame {
                    Some(Ok(Message::Text(text))) => {
                        deadline = Instant::now() + silence;
                        let text = Str::from(text.as_str());
                        match Packet::decode_text(text) {
                            Ok(Packet::Ping) => {
                                if let Err(reason) = write(&mut ws, Message::text("3"), deadline).await {
                                    break reason;
                                }
                            }
                            Ok(Packet::Message(text)) => {
                                if incoming.send(Incoming::Text(text)).await.is_err() {
                                    break DisconnectReason::ForcedClose;
                                }
                            }
                            Ok(Packet::Close) => break DisconnectReason::TransportClose,
                            Ok(_) => {}
                            // An engine packet that cannot be decoded: engine.io-client's
                            // "transport error".
                            Err(_) => break DisconnectReason::TransportError,
                        }
                    }
                    Some(Ok(Message::Binary(data))) => {
                        deadline = Instant::now() + silence;
                        if incoming.send(Incoming::Binary(data)).await.is_err() {
                            break DisconnectReason::ForcedClose;
                        }
                    }
                    Some(Ok(Message::Close(_))) | None => break DisconnectReason::TransportClose,
                    Some(Ok(_)) => {}
                    // The server gone without a close frame is a closed transport too.
                    Some(Err(tungstenite::Error::Protocol(
                        tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
                    ))) => break DisconnectReason::TransportClose,
                    Some(Err(_)) => break DisconnectReason::TransportError,
                }
            }
            out = outgoing.recv() => {
                let Some(message) = out.and_then(ws_message) else {
                    break close_websocket(&mut ws).await;
                };
                if let Err(reason) = write(&mut ws, message, deadline).await {
                    break reason;
                }
            }
            () = tokio::time::sleep_until(deadline) => break DisconnectReason::PingTimeout,
        }
    };
    let _ = incoming.send(Incoming::Closed(reason)).await;
}

/// The WebSocket message of `out`; `None` for [`Outgoing::Close`].
fn ws_message(out: Outgoing) -> Option<Message> {
    match out {
        Outgoing::Text(text) => Some(Message::text(text)),
        Outgoing::Binary(data) => Some(Message::Binary(data)),
        Outgoing::Close => None,
    }
}

/// The client closes: the engine's close packet, then the WebSocket, briefly (a server that
/// does not read is not waited for).
async fn close_websocket(ws: &mut Ws) -> DisconnectReason {
    let closing = async {
        let _ = ws.send(Message::text("1")).await;
        let _ = ws.close(None).await;
    };
    let _ = tokio::time::timeout(CLOSE_WAIT, closing).await;
    DisconnectReason::ForcedClose
}

/// Writes `message`; a server that does not take it before `deadline` (the heartbeat's) has
/// gone silent.
async fn write(ws: &mut Ws, message: Message, deadline: Instant) -> Result<(), DisconnectReason> {
    match tokio::time::timeout_at(deadline, ws.send(message)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(DisconnectReason::TransportError),
        Err(_) => Err(DisconnectReason::PingTimeout),
    }
}

/// One HTTP/1.1 connection of the polling transport, made again when the server closed it.
struct Http {
    target: Target,
    sender: Option<http1::SendRequest<Full<Bytes>>>,
}

impl Http {
    fn new(target: Target) -> Http {
        Http {
            target,
            sender: None,
        }
    }

    /// A new connection to the server, ready for a request.
    async fn connect(&self) -> Result<http1::SendRequest<Full<Bytes>>, HttpError> {
        let io = self.target.security.connect(&self.target.authority).await?;
        let (mut sender, connection) = http1::handshake(TokioIo::new(io)).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        sender.ready().await?;
        Ok(sender)
    }

    /// Sends a request for `path_and_query` (a POST of `body`, or a GET) and reads the whole
    /// response, which must be a 200.
    async fn request(
        &mut self,
        method: http::Method,
        path_and_query: &str,
        body: Option<Bytes>,
    ) -> Result<Bytes, HttpError> {
        let mut kept = self.sender.take();
        let alive = match kept.as_mut() {
            Some(sender) => sender.ready().await.is_ok(),
            None => false,
        };
        let reused = alive;
        let mut sender = match kept {
            Some(sender) if alive => sender,
            _ => self.connect().await?,
        };
        let mut request = http::Request::builder()
            .method(method)
            .uri(path_and_query)
            .header(http::header::HOST, &self.target.authority);
        if let Some(headers) = request.headers_mut() {
            headers.extend(
                self.target
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone())),
            );
            if let Some(cookie) = self.target.cookies.header() {
                headers.insert(http::header::COOKIE, cookie);
            }
            if body.is_some() {
                headers.insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("text/plain;charset=UTF-8"),
                );
            }
        }
        let request = request
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|_| HttpError::Request)?;
        let response = match sender.try_send_request(request).await {
            Ok(response) => response,
            // A kept connection the server closed just before (its keep-alive timeout) before
            // the request was written: once more, on a new connection.
            Err(mut error) if reused => match error.take_message() {
                Some(request) => {
                    sender = self.connect().await?;
                    sender.send_request(request).await?
                }
                None => return Err(error.into_error().into()),
            },
            Err(error) => return Err(error.into_error().into()),
        };
        self.target.cookies.store(response.headers());
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_MESSAGE)
            .collect()
            .await
            .map_err(|_| HttpError::Body)?
            .to_bytes();
        // Kept for the next request (HTTP keep-alive).
        self.sender = Some(sender);
        if status != http::StatusCode::OK {
            return Err(HttpError::Status(status));
        }
        Ok(body)
    }
}

type Pending<T> = Option<Pin<Box<dyn Future<Output = T> + Send>>>;

/// Resolves `pending`, or never when there is none.
async fn next<T>(pending: &mut Pending<T>) -> T {
    match pending {
        Some(future) => future.await,
        None => std::future::pending().await,
    }
}

/// A polling session.
struct Polling {
    sid: String,
    /// Whether to try the upgrade to WebSocket.
    upgrade: bool,
    silence: Duration,
    /// The server's `maxPayload`: no POST is larger (unless one packet alone is).
    max_payload: usize,
    target: Target,
}

impl Polling {
    /// Runs the session: one long-poll at a time (GET), writes gathered into one POST at a
    /// time, the heartbeat; and the upgrade: a probe on a new WebSocket, then polling paused
    /// (the poll the server ends with a noop, the POST in flight) before `5` on the WebSocket,
    /// which carries the session from there on.
    async fn run(
        self,
        http: Http,
        first: Option<Bytes>,
        incoming: mpsc::Sender<Incoming>,
        mut outgoing: mpsc::UnboundedReceiver<Outgoing>,
    ) {
        let mut deadline = Instant::now() + self.silence;
        let poll_uri = |this: &Polling| this.target.path_and_query("polling", Some(&this.sid));
        let mut poll: Pending<(Http, Result<Bytes, HttpError>)> = None;
        let mut post: Pending<(Http, Result<Bytes, HttpError>)> = None;
        let mut post_http = Some(Http::new(self.target.clone()));
        let mut poll_http = Some(http);
        let mut probe: Pending<Result<Ws, OpenError>> = None;
        if self.upgrade {
            let target = self.target.clone();
            let sid = self.sid.clone();
            let timeout = self.target.timeout;
            probe = Some(Box::pin(async move {
                tokio::time::timeout(timeout, probe_websocket(&target, &sid))
                    .await
                    .map_err(|_| OpenError::Timeout)?
            }));
        }
        // The WebSocket once the probe succeeded: polling is paused until the poll and the
        // POST in flight are done.
        let mut upgraded: Option<Ws> = None;
        let mut writes: Vec<Outgoing> = Vec::new();
        let mut closing = false;
        // The client closes (or is gone): no upgrade any more, the close packet after what
        // is left to write, and a brief wait for the POST in flight at most.
        let close = |closing: &mut bool,
                     writes: &mut Vec<Outgoing>,
                     probe: &mut Pending<Result<Ws, OpenError>>,
                     upgraded: &mut Option<Ws>,
                     deadline: &mut Instant| {
            if !*closing {
                *closing = true;
                *probe = None;
                *upgraded = None;
                writes.push(Outgoing::Close);
                *deadline = (*deadline).min(Instant::now() + CLOSE_WAIT);
            }
        };
        if let Some(first) = first
            && let Err(reason) = self
                .read(first, &incoming, &mut writes, &mut deadline, false)
                .await
        {
            let _ = incoming.send(Incoming::Closed(reason)).await;
            return;
        }
        let reason = loop {
            if let Some(mut ws) = upgraded.take() {
                if poll.is_none() && post.is_none() {
                    if let Err(reason) = write(&mut ws, Message::text("5"), deadline).await {
                        break reason;
                    }
                    tracing::debug!(sid = %self.sid, "upgraded to websocket");
                    self.target.on_websocket.store(true, Ordering::Release);
                    return run_websocket(ws, self.silence, deadline, writes, incoming, outgoing)
                        .await;
                }
                upgraded = Some(ws);
            } else {
                if poll.is_none() && !closing {
                    let mut http = poll_http.take().expect("the poll's connection is back");
                    let uri = poll_uri(&self);
                    poll = Some(Box::pin(async move {
                        let result = http.request(http::Method::GET, &uri, None).await;
                        (http, result)
                    }));
                }
                if post.is_none() && !writes.is_empty() {
                    let (body, with_close) = take_payload(&mut writes, self.max_payload);
                    let mut http = post_http.take().expect("the post's connection is back");
                    let uri = poll_uri(&self);
                    post = Some(Box::pin(async move {
                        let result = http
                            .request(http::Method::POST, &uri, Some(Bytes::from(body)))
                            .await;
                        (http, result)
                    }));
                    if with_close {
                        // The close packet is on its way: what it takes is waited for only
                        // briefly.
                        let done = tokio::time::timeout(CLOSE_WAIT, next(&mut post)).await;
                        drop(done);
                        break DisconnectReason::ForcedClose;
                    }
                }
            }
            tokio::select! {
                (http, result) = next(&mut poll) => {
                    poll = None;
                    poll_http = Some(http);
                    let body = match result {
                        Ok(body) => body,
                        Err(error) => {
                            tracing::debug!(%error, "poll failed");
                            break DisconnectReason::TransportError;
                        }
                    };
                    match self.read(body, &incoming, &mut writes, &mut deadline, closing).await {
                        Ok(()) => {}
                        // The client is gone (it closed, and what it sent last may still be
                        // waiting for the POST in flight): the close goes after it.
                        Err(DisconnectReason::ForcedClose) => {
                            close(&mut closing, &mut writes, &mut probe, &mut upgraded, &mut deadline);
                        }
                        Err(reason) => break reason,
                    }
                }
                (http, result) = next(&mut post) => {
                    post = None;
                    post_http = Some(http);
                    if let Err(error) = result {
                        tracing::debug!(%error, "post failed");
                        break DisconnectReason::TransportError;
                    }
                }
                result = next(&mut probe) => {
                    probe = None;
                    match result {
                        Ok(ws) => upgraded = Some(ws),
                        // The upgrade failed: polling goes on.
                        Err(error) => tracing::debug!(%error, "upgrade failed"),
                    }
                }
                // Nothing is read after the close (a closed channel would answer at once,
                // forever).
                out = outgoing.recv(), if !closing => match out {
                    Some(Outgoing::Close) | None => {
                        close(&mut closing, &mut writes, &mut probe, &mut upgraded, &mut deadline);
                    }
                    Some(out) => writes.push(out),
                },
                () = tokio::time::sleep_until(deadline) => {
                    break if closing {
                        DisconnectReason::ForcedClose
                    } else {
                        DisconnectReason::PingTimeout
                    };
                }
            }
        };
        let _ = incoming.send(Incoming::Closed(reason)).await;
    }

    /// Hands the packets of a poll's response to the client; a ping is answered with a pong
    /// (in `writes`). `Err` when the session ends. While `closing`, the close packet is the
    /// last write and the deadline is the close's: neither changes.
    async fn read(
        &self,
        body: Bytes,
        incoming: &mpsc::Sender<Incoming>,
        writes: &mut Vec<Outgoing>,
        deadline: &mut Instant,
        closing: bool,
    ) -> Result<(), DisconnectReason> {
        for packet in payload::decode(body) {
            if !closing {
                *deadline = Instant::now() + self.silence;
            }
            let delivered = match packet {
                Ok(Packet::Message(text)) => incoming.send(Incoming::Text(text)).await,
                Ok(Packet::Binary(data)) => incoming.send(Incoming::Binary(data)).await,
                Ok(Packet::Ping) => {
                    if !closing {
                        writes.push(Outgoing::Text("3".to_owned()));
                    }
                    Ok(())
                }
                Ok(Packet::Close) => return Err(DisconnectReason::TransportClose),
                Ok(_) => Ok(()),
                Err(_) => return Err(DisconnectReason::TransportError),
            };
            if delivered.is_err() {
                return Err(DisconnectReason::ForcedClose);
            }
        }
        Ok(())
    }
}

/// The polling payload of the first of `writes` (a close packet for [`Outgoing::Close`]), as
/// many as fit in `max` bytes (at least one), taken out; and whether the close was among them.
fn take_payload(writes: &mut Vec<Outgoing>, max: usize) -> (String, bool) {
    let mut out = String::new();
    let mut taken = 0;
    let mut with_close = false;
    for write in writes.iter() {
        let before = out.len();
        if taken > 0 {
            out.push('\u{1e}');
        }
        match write {
            // Already encoded, type digit included.
            Outgoing::Text(text) => out.push_str(text),
            Outgoing::Binary(data) => Packet::Binary(data.clone()).encode_polling(&mut out),
            Outgoing::Close => out.push('1'),
        }
        if taken > 0 && out.len() > max {
            out.truncate(before);
            break;
        }
        with_close |= matches!(write, Outgoing::Close);
        taken += 1;
    }
    writes.drain(..taken);
    (out, with_close)
}

/// The upgrade's probe: a WebSocket of session `sid`, `2probe` sent, `3probe` answered.
async fn probe_websocket(target: &Target, sid: &str) -> Result<Ws, OpenError> {
    let mut ws = target.websocket(Some(sid)).await?;
    ws.send(Message::text("2probe")).await?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) if text.as_str() == "3probe" => return Ok(ws),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Ok(_)) | None => return Err(OpenError::Handshake),
            Some(Err(error)) => return Err(error.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cookies after a response with `set_cookies`.
    fn store(cookies: &Cookies, set_cookies: &[&str]) {
        let mut headers = http::HeaderMap::new();
        for line in set_cookies {
            headers.append(
                http::header::SET_COOKIE,
                http::HeaderValue::try_from(*line).unwrap(),
            );
        }
        cookies.store(&headers);
    }

    #[test]
    fn cookies_are_kept_replaced_and_removed() {
        let cookies = Cookies::default();
        store(&cookies, &["srv=a; Path=/; HttpOnly", "io=x"]);
        assert_eq!(cookies.header().unwrap(), "srv=a; io=x");
        store(&cookies, &["srv=b", "io=; Max-Age=0"]);
        assert_eq!(cookies.header().unwrap(), "srv=b");
        // Express's `clearCookie`: an expiry in the past; a future one keeps it.
        store(&cookies, &["keep=1; Expires=Fri, 01 Jan 2100 00:00:00 GMT"]);
        store(
            &cookies,
            &["srv=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT"],
        );
        assert_eq!(cookies.header().unwrap(), "keep=1");
        for i in 0..100 {
            store(&cookies, &[&format!("c{i}=v")]);
        }
        assert_eq!(cookies.0.lock().len(), MAX_COOKIES);
    }

    #[test]
    fn max_payload_as_servers_write_it() {
        let parse = |json: &str| {
            serde_json::from_str::<Handshake>(json)
                .unwrap()
                .max_payload()
        };
        let open = r#"{"sid":"s","upgrades":[],"pingInterval":1,"pingTimeout":1"#;
        assert_eq!(parse(&format!("{open}}}")), 1_000_000);
        assert_eq!(parse(&format!(r#"{open},"maxPayload":5}}"#)), 5);
        // Node writes `Infinity` as null; 0 and what is not a count mean no limit.
        for value in ["null", "0", "1e+21", "\"x\""] {
            assert_eq!(
                parse(&format!(r#"{open},"maxPayload":{value}}}"#)),
                usize::MAX
            );
        }
    }

    #[test]
    fn writes_become_payloads_within_max_payload() {
        let mut writes = vec![
            Outgoing::Text("42[\"a\"]".to_owned()),
            Outgoing::Binary(Bytes::from_static(&[1, 2])),
            Outgoing::Text("3".to_owned()),
            Outgoing::Close,
        ];
        assert_eq!(
            take_payload(&mut writes, 1000),
            ("42[\"a\"]\u{1e}bAQI=\u{1e}3\u{1e}1".to_owned(), true)
        );
        // 13 bytes at most: the first two (7 + 1 + 5), then the rest.
        writes = vec![
            Outgoing::Text("42[\"a\"]".to_owned()),
            Outgoing::Binary(Bytes::from_static(&[1, 2])),
            Outgoing::Text("3".to_owned()),
            Outgoing::Close,
        ];
        assert_eq!(
            take_payload(&mut writes, 13),
            ("42[\"a\"]\u{1e}bAQI=".to_owned(), false)
        );
        assert_eq!(take_payload(&mut writes, 13), ("3\u{1e}1".to_owned(), true));
        assert!(writes.is_empty());
        // One packet larger than the limit still goes (alone).
        let mut big = vec![Outgoing::Text("4".repeat(20)), Outgoing::Close];
        assert_eq!(take_payload(&mut big, 10), ("4".repeat(20), false));
        assert_eq!(big.len(), 1);
    }
}
