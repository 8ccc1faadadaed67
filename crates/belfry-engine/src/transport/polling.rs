//! HTTP long-polling: the handshake GET, the held GET that carries server packets, and the POST
//! that carries client packets.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header, request::Parts};
use http_body_util::BodyExt;

use crate::{
    CloseReason, EngineHandler, Packet, Sid, Socket, TransportType,
    dispatch::Dispatched,
    engine::EngineInner,
    errors::RequestError,
    payload, payload_v3,
    request::{EngineResponse, empty, polling_error, response},
    service::RequestBody,
};

/// Answers a handshake over polling with the open packet.
pub(crate) fn handshake<H: EngineHandler>(
    inner: &Arc<EngineInner<H>>,
    sid: Sid,
    parts: Parts,
    protocol: u8,
) -> EngineResponse {
    let Some((socket, open)) = inner.open_session(sid, parts, TransportType::Polling, protocol)
    else {
        return polling_error(&RequestError::BadRequest);
    };
    let res = payload_response(
        inner,
        &socket,
        socket.req_parts(),
        &[open],
        true,
        Some(socket.id()),
    );
    inner.connected(&socket);
    res
}

/// Serves a GET or POST on a live polling session.
///
/// Each is its own future, boxed as the request is held with it: a held GET keeps only what it
/// needs (see [`Dispatched`]).
pub(crate) fn serve<H: EngineHandler>(
    inner: Arc<EngineInner<H>>,
    socket: Arc<Socket<H::Data>>,
    req: Request<RequestBody>,
) -> Dispatched {
    let (parts, body) = req.into_parts();
    let span = socket.span().clone();
    match parts.method {
        Method::GET => {
            let head = Head::kept(&inner, parts);
            Dispatched::Later(crate::traced::boxed(poll(inner, socket, head), span))
        }
        Method::POST => Dispatched::Later(crate::traced::boxed(
            receive(inner, socket, parts, body),
            span,
        )),
        _ => empty(StatusCode::INTERNAL_SERVER_ERROR).into(),
    }
}

/// Holds the GET until packets are queued, the session closes, or an upgrade ends polling.
///
/// A function returning an `async move` block rather than an `async fn`: the block uses what it
/// captured in place, where an `async fn` would hold its arguments twice while it waits.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn would hold its arguments twice"
)]
fn poll<H: EngineHandler>(
    inner: Arc<EngineInner<H>>,
    socket: Arc<Socket<H::Data>>,
    head: Head,
) -> impl Future<Output = EngineResponse> + Send {
    async move {
        let Some(_guard) = Exclusive::acquire(&socket.polling_get) else {
            tracing::debug!("overlapping GET requests");
            socket.close_with(CloseReason::TransportError);
            return empty(StatusCode::BAD_REQUEST);
        };
        // Whether this GET was already waiting when the session closed.
        let mut waited = false;
        loop {
            // Listening before looking: an upgrade wakes every waiting GET at once
            // (`notify_waiters`, which keeps no permit for a waiter that comes after it).
            let wake = socket.wake_polling.notified();
            tokio::pin!(wake);
            wake.as_mut().enable();
            if socket.transport() == TransportType::Websocket {
                let parts = head.into_parts();
                return payload_response(&inner, &socket, &parts, &[Packet::Noop], true, None);
            }
            let drained = socket.drain(true);
            if let Some(reason) = drained.close {
                // As Node: the packets queued before a server close go out on their own, the
                // close packet in the answer to the next GET. A client reads the packets of a
                // payload on its next tick but acts on a close at once: in one payload the
                // close would win, and a Socket.IO DISCONNECT would read as "transport close".
                let deliver_first =
                    reason == CloseReason::ForcedClose && !drained.packets.is_empty();
                if !deliver_first {
                    let parts = head.into_parts();
                    return close_response(&inner, &socket, &parts, reason, waited);
                }
            }
            if !drained.packets.is_empty() {
                let parts = head.into_parts();
                return payload_response(
                    &inner,
                    &socket,
                    &parts,
                    &drained.packets,
                    drained.compress,
                    None,
                );
            }
            wake.await;
            waited = true;
        }
    }
}

/// What a GET keeps of its request head, taken before it starts: the URI and header values
/// are slices of hyper's read buffer, and a GET that waited with them would keep that buffer
/// (8 KiB) while hyper, reading on for the connection's end, allocates another.
enum Head {
    /// The whole head, copied, for the `headers` hook, which reads it all.
    Whole(Box<Parts>),
    /// Only the headers the answer reads: the `User-Agent` of Internet Explorer ([`no_store`])
    /// and, with compression on, `Accept-Encoding` ([`compress`]). Most requests have neither
    /// of these to keep, and most GETs wait: nothing but a null pointer waits with them.
    Few(Option<Box<HeaderMap>>),
}

impl Head {
    fn kept<H: EngineHandler>(inner: &EngineInner<H>, parts: Parts) -> Head {
        if inner.config.headers.is_some() {
            return Head::Whole(Box::new(crate::socket::detached(parts)));
        }
        let mut kept = HeaderMap::new();
        let mut copy = |name: header::HeaderName| {
            for value in parts.headers.get_all(&name) {
                let mut copied =
                    HeaderValue::from_bytes(value.as_bytes()).unwrap_or_else(|_| value.clone());
                copied.set_sensitive(value.is_sensitive());
                kept.append(name.clone(), copied);
            }
        };
        if is_internet_explorer(&parts.headers) {
            copy(header::USER_AGENT);
        }
        if inner.config.http_compression.is_some() {
            copy(header::ACCEPT_ENCODING);
        }
        Head::Few((!kept.is_empty()).then(|| Box::new(kept)))
    }

    /// The head the answer is made from.
    fn into_parts(self) -> Parts {
        match self {
            Head::Whole(parts) => *parts,
            Head::Few(headers) => {
                let (mut parts, ()) = Request::new(()).into_parts();
                if let Some(headers) = headers {
                    parts.headers = *headers;
                }
                parts
            }
        }
    }
}

/// The answer that ends a closed session's polling: a noop for a client that closed (Node
/// answers so), the close packet for a GET that was waiting, otherwise a noop and the close
/// (Node's `shouldClose`, appended by the next GET).
fn close_response<H: EngineHandler>(
    inner: &Arc<EngineInner<H>>,
    socket: &Arc<Socket<H::Data>>,
    parts: &Parts,
    reason: CloseReason,
    waited: bool,
) -> EngineResponse {
    let packets: &[Packet] = if reason == CloseReason::TransportClose {
        &[Packet::Noop]
    } else if waited {
        &[Packet::Close]
    } else {
        &[Packet::Noop, Packet::Close]
    };
    inner.remove(socket.id());
    socket.close_delivered.notify_one();
    payload_response(inner, socket, parts, packets, true, None)
}

/// Reads a POST body, bounded in size and time, and acts on its packets (a function returning
/// an `async move` block, as [`poll`]).
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn would hold its arguments twice"
)]
fn receive<H: EngineHandler>(
    inner: Arc<EngineInner<H>>,
    socket: Arc<Socket<H::Data>>,
    parts: Parts,
    body: RequestBody,
) -> impl Future<Output = EngineResponse> + Send {
    async move {
        let (inner, parts) = (&inner, &parts);
        let Some(_guard) = Exclusive::acquire(&socket.polling_post) else {
            tracing::debug!("overlapping POST requests");
            socket.close_with(CloseReason::TransportError);
            return empty(StatusCode::BAD_REQUEST);
        };
        let fail = |status| {
            socket.close_with(CloseReason::TransportError);
            empty(status)
        };
        let binary = parts.headers.get(header::CONTENT_TYPE).is_some_and(|ct| {
            ct.as_bytes()
                .eq_ignore_ascii_case(b"application/octet-stream")
        });
        if binary && socket.protocol() != 3 {
            tracing::debug!("binary content type on an EIO 4 session");
            return fail(StatusCode::BAD_REQUEST);
        }
        let max = inner.config.max_payload;
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|len| len > max) {
            return fail(StatusCode::PAYLOAD_TOO_LARGE);
        }
        let limit = usize::try_from(max).unwrap_or(usize::MAX);
        let read = tokio::time::timeout(inner.config.body_timeout(), read_body(body, limit)).await;
        let body = match read {
            Ok(Ok(body)) => body,
            Ok(Err(BodyError::TooLarge)) => return fail(StatusCode::PAYLOAD_TOO_LARGE),
            Ok(Err(BodyError::Read)) => return fail(StatusCode::BAD_REQUEST),
            Err(_) => {
                tracing::debug!("POST body too slow");
                return fail(StatusCode::REQUEST_TIMEOUT);
            }
        };
        if !handle_payload(inner, &socket, body, binary).await {
            return empty(StatusCode::BAD_REQUEST);
        }
        let mut res = response(StatusCode::OK, "text/html", Bytes::from_static(b"ok"));
        no_store(parts, &mut res);
        edit_headers(inner, parts, &mut res, None);
        res
    }
}

/// The headers Node's polling transport adds to every answer of a live session, GET and POST:
/// `cache-control: no-store`, and `x-xss-protection: 0` for Internet Explorer.
fn no_store<B>(parts: &Parts, res: &mut http::Response<B>) {
    let headers = res.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if is_internet_explorer(&parts.headers) {
        headers.insert("x-xss-protection", HeaderValue::from_static("0"));
    }
}

/// A `User-Agent` of Internet Explorer, as Node's polling transport tells it.
fn is_internet_explorer(headers: &http::HeaderMap) -> bool {
    headers
        .get(header::USER_AGENT)
        .and_then(|ua| ua.to_str().ok())
        .is_some_and(|ua| ua.contains(";MSIE") || ua.contains("Trident/"))
}

enum BodyError {
    TooLarge,
    Read,
}

/// Reads a body of at most `limit` bytes, stopping at the first chunk past it. A body of one
/// chunk is returned without a copy.
async fn read_body(mut body: RequestBody, limit: usize) -> Result<Bytes, BodyError> {
    let mut first: Option<Bytes> = None;
    let mut rest = BytesMut::new();
    let mut len = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(|_| BodyError::Read)?.into_data() else {
            continue;
        };
        len = len.saturating_add(data.len());
        if len > limit {
            return Err(BodyError::TooLarge);
        }
        match &first {
            None if rest.is_empty() => first = Some(data),
            _ => {
                if let Some(first) = first.take() {
                    rest.extend_from_slice(&first);
                }
                rest.extend_from_slice(&data);
            }
        }
    }
    Ok(first.unwrap_or_else(|| rest.freeze()))
}

/// Acts on every packet of a payload, in order. Returns false, having closed the session with
/// "parse error", if a packet cannot be decoded.
///
/// What the packets' handlers queue may fill the send queue before a GET takes it: then the
/// next packet waits until one has (the POST is answered later), so that a burst's answers are
/// all delivered instead of failing with a full queue. Not during an upgrade (the client sends
/// no GET then, and upgrades only once its POST is answered), and not for longer than the ping
/// timeout: past that, the answers that do not fit fail as for a client that does not read.
async fn handle_payload<H: EngineHandler>(
    inner: &EngineInner<H>,
    socket: &Arc<Socket<H::Data>>,
    body: Bytes,
    binary: bool,
) -> bool {
    let packets: Box<dyn Iterator<Item = Result<Packet, _>> + Send> = if socket.protocol() == 3 {
        match payload_v3::decode(body, binary) {
            Ok(packets) => Box::new(packets.into_iter().map(Ok)),
            Err(error) => Box::new(std::iter::once(Err(error))),
        }
    } else {
        Box::new(payload::decode(body))
    };
    // A pause of the layer above holds this POST once, for at most the ping timeout.
    let mut pause_waited_out = false;
    for packet in packets {
        if socket.is_closed() {
            break;
        }
        if (socket.backlogged() && !socket.upgrade_claimed.load(Ordering::Acquire))
            || (socket.reads_paused() && !pause_waited_out)
        {
            let wait = inner.config.ping_timeout;
            if pause_waited_out {
                let _ = tokio::time::timeout(wait, socket.until_unblocked()).await;
            } else {
                let waited = tokio::time::timeout(wait, socket.until_readable()).await;
                pause_waited_out = waited.is_err() && socket.reads_paused();
            }
            if socket.is_closed() {
                break;
            }
        }
        match packet {
            // As the session's own work: its handlers' answers may go past the caps.
            Ok(packet) => socket.as_own_work(|| inner.on_packet(socket, packet)),
            Err(error) => {
                tracing::debug!(%error, "invalid polling payload");
                socket.close_with(CloseReason::ParseError);
                return false;
            }
        }
    }
    true
}

/// A response carrying `packets` in the session's protocol, compressed when allowed (see
/// [`compress`]).
fn payload_response<H: EngineHandler, D>(
    inner: &EngineInner<H>,
    socket: &Socket<D>,
    parts: &Parts,
    packets: &[Packet],
    compressible: bool,
    handshake: Option<&Sid>,
) -> EngineResponse {
    let (body, content_type) = if socket.protocol() == 3 {
        payload_v3::encode(packets, socket.v3_binary())
    } else {
        (
            Bytes::from(payload::encode(packets)),
            "text/plain; charset=UTF-8",
        )
    };
    let (body, encoding) = match inner.config.http_compression {
        Some(threshold) if compressible && body.len() >= threshold => compress(parts, body),
        _ => (body, None),
    };
    let length = body.len();
    let mut res = response(StatusCode::OK, content_type, body);
    let headers = res.headers_mut();
    if let Some(encoding) = encoding {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
    }
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    no_store(parts, &mut res);
    edit_headers(inner, parts, &mut res, handshake);
    res
}

/// `body` compressed as the request's `Accept-Encoding` prefers, gzip or deflate (Node's
/// `accepts(req).encodings(["gzip", "deflate"])`), with the encoding's name; as it is otherwise.
fn compress(parts: &Parts, body: Bytes) -> (Bytes, Option<&'static str>) {
    use std::io::Write as _;
    let accept = parts
        .headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    let Some(encoding) = preferred_encoding(&accept) else {
        return (body, None);
    };
    let level = flate2::Compression::default();
    let compressed = if encoding == "gzip" {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), level);
        encoder.write_all(&body).and_then(|()| encoder.finish())
    } else {
        let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), level);
        encoder.write_all(&body).and_then(|()| encoder.finish())
    };
    match compressed {
        Ok(compressed) => (Bytes::from(compressed), Some(encoding)),
        Err(_) => (body, None),
    }
}

/// `gzip` or `deflate`, as Node's `accepts(req).encodings(["gzip", "deflate"])` picks from
/// `accept` (an `Accept-Encoding` value; `*` stands for both): the higher quality, then an exact
/// name over `*`, then the one the client lists first, then gzip; neither if both are refused.
fn preferred_encoding(accept: &str) -> Option<&'static str> {
    let gzip = EncodingRank::of("gzip", accept);
    let deflate = EncodingRank::of("deflate", accept);
    match (gzip, deflate) {
        (Some(g), Some(d)) if d.beats(&g) => Some("deflate"),
        (Some(_), _) => Some("gzip"),
        (None, Some(_)) => Some("deflate"),
        (None, None) => None,
    }
}

/// How an `Accept-Encoding` value rates one encoding.
struct EncodingRank {
    quality: f32,
    /// Named, rather than matched by `*`.
    exact: bool,
    /// Where the client lists it.
    index: usize,
}

impl EncodingRank {
    /// The rating of `name` in `accept`; `None` if it is not accepted (absent, or `q=0`).
    fn of(name: &str, accept: &str) -> Option<EncodingRank> {
        accept
            .split(',')
            .enumerate()
            .filter_map(|(index, item)| {
                let mut parts = item.split(';');
                let coding = parts.next()?.trim();
                let quality = parts
                    .find_map(|p| p.trim().strip_prefix("q="))
                    .map_or(Some(1.0), |q| q.trim().parse::<f32>().ok())?;
                let exact = coding.eq_ignore_ascii_case(name);
                (exact || coding == "*").then_some(EncodingRank {
                    quality,
                    exact,
                    index,
                })
            })
            // An exact match outranks `*`, whatever their qualities.
            .min_by_key(|rank| (!rank.exact, rank.index))
            .filter(|rank| rank.quality > 0.0)
    }

    /// Preferred to `other`: a higher quality, then exact over `*`, then listed first.
    fn beats(&self, other: &EncodingRank) -> bool {
        if self.quality != other.quality {
            return self.quality > other.quality;
        }
        (!self.exact, self.index) < (!other.exact, other.index)
    }
}

/// Runs the user's header hooks (Node's `initial_headers` and `headers`) with the request being
/// answered; on a handshake (`handshake` is the new session's id) also adds the cookie.
pub(crate) fn edit_headers<H: EngineHandler, B>(
    inner: &EngineInner<H>,
    parts: &Parts,
    res: &mut http::Response<B>,
    handshake: Option<&Sid>,
) {
    let config = &inner.config;
    let headers = res.headers_mut();
    if let Some(sid) = handshake {
        if let Some(cookie) = &config.cookie
            && let Ok(value) = HeaderValue::try_from(cookie.header_value(sid))
        {
            headers.insert(header::SET_COOKIE, value);
        }
        if let Some(edit) = &config.initial_headers {
            edit(headers, parts);
        }
    }
    if let Some(edit) = &config.headers {
        edit(headers, parts);
    }
}

/// A flag held for the life of a request, so that a second concurrent GET (or POST) is seen.
struct Exclusive<'a>(&'a AtomicBool);

impl<'a> Exclusive<'a> {
    fn acquire(flag: &'a AtomicBool) -> Option<Self> {
        (!flag.swap(true, Ordering::AcqRel)).then_some(Exclusive(flag))
    }
}

impl Drop for Exclusive<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Nothing;

    impl EngineHandler for Nothing {
        type Data = ();
        fn on_connect(&self, _: Arc<Socket<()>>) {}
        fn on_disconnect(&self, _: Arc<Socket<()>>, _: CloseReason) {}
        fn on_message(&self, _: &Arc<Socket<()>>, _: crate::Str) {}
        fn on_binary(&self, _: &Arc<Socket<()>>, _: Bytes) {}
    }

    fn size_of_output<A, B, C, R>(_: fn(A, B, C) -> R) -> usize {
        std::mem::size_of::<R>()
    }

    /// Every long-poll a client holds open is held with this future: the headers it kept (a
    /// pointer), the session, the engine and the wake-up it waits for, and nothing twice. As an
    /// `async fn`, or awaited inside the routing's future, it was 2 KiB; holding the whole head,
    /// 368 bytes; now 160.
    #[test]
    fn a_held_get_keeps_only_its_own_state() {
        let size = size_of_output(poll::<Nothing>);
        assert!(size <= 176, "the held GET's future is {size} bytes");
    }

    #[test]
    fn accept_encoding_picks_gzip_then_deflate() {
        let cases = [
            ("gzip, deflate, br", Some("gzip")),
            ("deflate", Some("deflate")),
            ("gzip;q=0.5, deflate", Some("deflate")),
            ("gzip;q=0, deflate;q=0", None),
            ("*", Some("gzip")),
            ("*;q=0.1, gzip;q=0", Some("deflate")),
            ("br, identity", None),
            ("", None),
            ("gzip;q=abc", None),
            // Equal qualities: the client's first choice, as Node's `accepts`.
            ("deflate, gzip", Some("deflate")),
            ("deflate;q=0.8, gzip;q=0.8", Some("deflate")),
            ("*, deflate", Some("deflate")),
            ("*;q=0.5, deflate;q=0.5", Some("deflate")),
        ];
        for (accept, expected) in cases {
            assert_eq!(preferred_encoding(accept), expected, "{accept}");
        }
    }
}
