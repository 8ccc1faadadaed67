//! WebSocket: the handshake through hyper's upgrade, the probe that upgrades a polling session,
//! and the reader and writer of an established connection.

use std::{
    sync::{Arc, atomic::Ordering},
    task::{Context, Poll},
    time::Duration,
};

use bytes::{BufMut, Bytes};
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use hyper::upgrade::OnUpgrade;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use crate::{
    CloseReason, EngineHandler, Packet, Sid, Socket, TransportType,
    engine::EngineInner,
    errors::RequestError,
    inline,
    request::{EngineResponse, upgrade_error},
    socket::Packets,
    transport::{
        conn::WsConn,
        deflate,
        frame::{Incoming, ReadEnd, put_header},
        io::UpgradedIo,
        polling::edit_headers,
    },
};

type WsStream = WsConn<UpgradedIo>;

/// Why a WebSocket handshake request is refused.
#[derive(Debug, Clone, Copy)]
pub(crate) enum HandshakeError {
    /// `Sec-WebSocket-Version` is missing or not 13.
    Version,
    /// `Sec-WebSocket-Key` is missing or malformed.
    Key,
}

impl HandshakeError {
    /// The 400 answer; a bad version also names the version we speak, as `ws` does.
    pub(crate) fn response(self) -> EngineResponse {
        let mut res = upgrade_error(&RequestError::BadRequest);
        if let HandshakeError::Version = self {
            res.headers_mut().insert(
                header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static("13"),
            );
        }
        res
    }
}

/// Checks the WebSocket handshake headers and returns the `Sec-WebSocket-Accept` value.
pub(crate) fn accept_key(headers: &HeaderMap) -> Result<String, HandshakeError> {
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() != b"13")
    {
        return Err(HandshakeError::Version);
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .map(HeaderValue::as_bytes)
        .filter(|key| is_valid_key(key))
        .ok_or(HandshakeError::Key)?;
    Ok(derive_accept_key(key))
}

/// A key is the base64 form of 16 bytes: 22 characters and `==`.
fn is_valid_key(key: &[u8]) -> bool {
    key.len() == 24
        && key.ends_with(b"==")
        && key[..22]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// The 101 answer; with permessage-deflate when `deflate`.
fn switching_protocols(accept: &str, deflate: Option<deflate::Agreed>) -> EngineResponse {
    let mut res = Response::new(Full::new(Bytes::new()));
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = res.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(accept) = HeaderValue::from_str(accept) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    if let Some(agreed) = deflate
        && let Ok(value) = HeaderValue::from_str(&agreed.response())
    {
        headers.insert(header::SEC_WEBSOCKET_EXTENSIONS, value);
    }
    res
}

/// Whether this connection uses permessage-deflate, and as agreed: on in the options, offered
/// by the client.
fn negotiate_deflate<H: EngineHandler>(
    inner: &EngineInner<H>,
    headers: &HeaderMap,
) -> Option<deflate::Agreed> {
    inner.config.per_message_deflate?;
    deflate::offered(headers)
}

async fn accept<H: EngineHandler>(
    inner: &EngineInner<H>,
    on_upgrade: OnUpgrade,
    deflate: Option<deflate::Agreed>,
) -> Option<WsStream> {
    match on_upgrade.await {
        Ok(upgraded) => {
            let compress = deflate.and_then(|agreed| {
                let threshold = inner.config.per_message_deflate?;
                Some((threshold, agreed.max_compressed()))
            });
            let max = usize::try_from(inner.config.max_payload).unwrap_or(usize::MAX);
            Some(WsConn::new(UpgradedIo::new(upgraded), compress, max))
        }
        Err(error) => {
            tracing::debug!(%error, "websocket upgrade failed");
            None
        }
    }
}

/// Opens a session directly over WebSocket: the open packet is the first frame.
pub(crate) fn handshake<H: EngineHandler>(
    inner: &Arc<EngineInner<H>>,
    sid: Sid,
    parts: http::request::Parts,
    protocol: u8,
    on_upgrade: OnUpgrade,
    accept_key: &str,
) -> EngineResponse {
    let deflate = negotiate_deflate(inner, &parts.headers);
    let Some((socket, open)) = inner.open_session(sid, parts, TransportType::Websocket, protocol)
    else {
        return upgrade_error(&RequestError::BadRequest);
    };
    // The queue is empty, so the open packet always fits.
    let _ = socket.send(open);
    inner.connected(&socket);
    let mut res = switching_protocols(accept_key, deflate);
    edit_headers(inner, socket.req_parts(), &mut res, Some(socket.id()));
    let inner = inner.clone();
    let span = socket.span().clone();
    crate::traced::spawn(
        async move {
            match accept(&inner, on_upgrade, deflate).await {
                Some(ws) => run(inner, socket, ws).await,
                None => socket.close_with(CloseReason::TransportError),
            }
        },
        span,
    );
    res
}

/// Upgrades a polling session: answers the WebSocket handshake, then runs the probe.
pub(crate) fn upgrade<H: EngineHandler>(
    inner: &Arc<EngineInner<H>>,
    socket: Arc<Socket<H::Data>>,
    parts: &http::request::Parts,
    on_upgrade: OnUpgrade,
    accept_key: &str,
) -> EngineResponse {
    if socket
        .upgrade_claimed
        .swap(true, std::sync::atomic::Ordering::AcqRel)
    {
        tracing::debug!(sid = %socket.id(), "second websocket for one session");
        return accept_and_close(inner, parts, on_upgrade, accept_key);
    }
    let deflate = negotiate_deflate(inner, &parts.headers);
    let mut res = switching_protocols(accept_key, deflate);
    edit_headers(inner, parts, &mut res, None);
    let inner = inner.clone();
    let span = tracing::debug_span!(parent: socket.span(), "upgrade");
    crate::traced::spawn(
        async move {
            match accept(&inner, on_upgrade, deflate).await {
                Some(ws) => probe(inner, socket, ws).await,
                None => socket
                    .upgrade_claimed
                    .store(false, std::sync::atomic::Ordering::Release),
            }
        },
        span,
    );
    res
}

/// Answers a WebSocket for a session that upgrades, or has upgraded, on another one: as Node,
/// the handshake succeeds (101) and the new connection is closed at once (a close frame without
/// a code). A client without an error handler would throw on a refusal.
pub(crate) fn accept_and_close<H: EngineHandler>(
    inner: &Arc<EngineInner<H>>,
    parts: &http::request::Parts,
    on_upgrade: OnUpgrade,
    accept_key: &str,
) -> EngineResponse {
    let deflate = negotiate_deflate(inner, &parts.headers);
    let mut res = switching_protocols(accept_key, deflate);
    edit_headers(inner, parts, &mut res, None);
    let inner = inner.clone();
    tokio::spawn(async move {
        if let Some(mut ws) = accept(&inner, on_upgrade, deflate).await {
            ws.close(None).await;
        }
    });
    res
}

/// The upgrade dance on the new WebSocket: `2probe` → `3probe`, noops to the pending GET every
/// 100 ms, then `5` switches the session over. Anything else, or the upgrade timeout, closes the
/// new WebSocket and leaves the polling session as it was.
async fn probe<H: EngineHandler>(
    inner: Arc<EngineInner<H>>,
    socket: Arc<Socket<H::Data>>,
    mut ws: WsStream,
) {
    let deadline = Instant::now() + inner.config.upgrade_timeout;
    let mut noop = tokio::time::interval(Duration::from_millis(100));
    noop.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut probed = false;
    // The session closed during the upgrade. As in Node, the probe goes on until the close
    // reaches the client over polling: a client that completes the upgrade meanwhile gets what
    // is still queued (a Socket.IO DISCONNECT) and the close over the new WebSocket, instead of
    // losing both with it.
    let mut closing = false;
    let upgraded = loop {
        let message = tokio::select! {
            () = tokio::time::sleep_until(deadline) => {
                tracing::debug!("upgrade timed out");
                break false;
            }
            () = socket.closed(), if !closing => {
                closing = true;
                continue;
            }
            _ = noop.tick(), if probed || closing => {
                if closing && inner.get(socket.id().as_str()).is_none() {
                    // The close packet went out over polling (or its grace ran out).
                    break false;
                }
                if probed && socket.polling_get.load(std::sync::atomic::Ordering::Acquire) {
                    socket.queue_noop();
                }
                continue;
            }
            message = ws.next_message() => message,
        };
        match message {
            Ok(Incoming::Text(text)) if !probed && text == "2probe" => {
                if ws.send_text("3probe").await.is_err() {
                    break false;
                }
                probed = true;
                // As Node's check interval: the first noop to a pending GET 100 ms after the
                // probe's answer, not at once.
                noop.reset();
            }
            Ok(Incoming::Text(text)) if probed && text == "5" => break true,
            _ => break false,
        }
    };
    if !upgraded {
        socket
            .upgrade_claimed
            .store(false, std::sync::atomic::Ordering::Release);
        ws.close(None).await;
        return;
    }
    tracing::debug!("upgraded to websocket");
    socket.set_transport(TransportType::Websocket);
    inner.handler.on_upgrade(&socket);
    // Wake a GET still pending (a client that did not pause polling) so it ends with a noop.
    socket.wake_polling.notify_waiters();
    run(inner, socket.clone(), ws).await;
    if socket.is_closed() {
        // A session closed during the upgrade waits for its close to be delivered.
        socket.close_delivered.notify_one();
    }
}

/// Runs an established WebSocket on one task, without splitting it: each poll reads what
/// arrived and writes what the send queue holds. A write in flight does not stop reads, so a
/// client that reads slowly still has its pongs read (and is closed by the slow-consumer rule).
///
/// Fairness: when what was read queued packets for other connections (a broadcast), the task
/// writes its own only after the recipients whose writers were idle have written theirs (it
/// waits on a [`inline::Fence`]; for the others it steps back to the end of the run queue). A
/// broadcaster's acks then follow its deliveries, as on Node, instead of letting it pile
/// broadcasts up faster than they are delivered; what it sends in one burst is still read at
/// once, so that recipients write it in one batch.
async fn run<H: EngineHandler>(
    inner: Arc<EngineInner<H>>,
    socket: Arc<Socket<H::Data>>,
    mut ws: WsStream,
) {
    let mut out = Outbound::default();
    let mut fence: Option<Arc<inline::Fence>> = None;
    let mut waiting = false;
    std::future::poll_fn(|cx| {
        // Busy: no reader waits for this writer until it is idle again.
        socket.writer_idle.store(false, Ordering::Release);
        // While it waits for the writers it claimed, the reader goes on reading (a burst of
        // broadcasts still reaches each recipient as one batch) but claims no more, so that
        // input that keeps coming never holds its own packets back for long.
        if waiting {
            waiting = fence
                .as_ref()
                .is_some_and(|fence| fence.poll_open(cx).is_pending());
        }
        // Everything that arrived is read first, unless the send queue is at its caps and the
        // writer has not had its turn: then the reader waits for the writer (TCP holds the
        // client back), so that a burst's answers are written rather than refused. A writer
        // held up by a peer that does not read does not stop the reader (its pongs are still
        // read, and the slow-consumer rule applies).
        // The layer above may pause reading too (its handlers in flight at their bound).
        let mut yielding = false;
        let may_pause = !ws.has_unwritten();
        let mut paused = socket.reads_paused() || (may_pause && socket.backlogged());
        if !socket.is_closed() && !paused {
            let read = ws.poll_read(cx, |message| {
                let claims = if waiting { None } else { Some(&mut fence) };
                yielding |= inline::queues_for_others(&*socket, claims, || {
                    on_message(&inner, &socket, message);
                });
                paused = socket.reads_paused() || (may_pause && socket.backlogged());
                !socket.is_closed() && !paused
            });
            if let Poll::Ready(Err(end)) = read {
                match end {
                    ReadEnd::Closed | ReadEnd::Gone => {
                        socket.close_with(CloseReason::TransportClose);
                    }
                    ReadEnd::Violation(code) => {
                        tracing::debug!(code, "websocket protocol violation");
                        socket.close_ws_with(CloseReason::TransportError, code);
                    }
                }
            }
        }
        if let Some(fence) = &fence
            && fence.poll_open(cx).is_pending()
        {
            waiting = true;
            return Poll::Pending;
        }
        if yielding {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let written = out.write(cx, &socket, &mut ws);
        if written.is_pending()
            && paused
            && !socket.backlogged()
            && !socket.reads_paused()
            && !socket.is_closed()
        {
            // The writer took the queue that paused the reader (or reading resumed): read what
            // waits (no readiness event comes for bytes read already).
            cx.waker().wake_by_ref();
        }
        written
    })
    .await;
}

/// The writing half of [`run`]: packets taken from the send queue and not written yet.
#[derive(Default)]
struct Outbound {
    packets: Packets,
    /// A heartbeat taken from the queue, to go before `packets`.
    beat: Option<Packet>,
    /// The session closed: after the packets, the close frame.
    close: Option<CloseReason>,
}

impl Outbound {
    /// Writes what there is to write; ready when the connection is done.
    ///
    /// The packets go out as frames encoded in one buffer and written at once
    /// ([`WsConn::write_frames`]); answers to the client's control frames, queued by the reader,
    /// go first.
    fn write<D>(
        &mut self,
        cx: &mut Context<'_>,
        socket: &Socket<D>,
        ws: &mut WsStream,
    ) -> Poll<()> {
        loop {
            if ws.has_unwritten() {
                match ws.poll_flush(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(_)) => return self.failed(socket),
                }
            }
            if self.packets.is_empty() && self.beat.is_none() && self.close.is_none() {
                match socket.drain_for_writer(&mut self.packets, &mut self.beat, cx.waker()) {
                    Some(close) => self.close = close,
                    None => return Poll::Pending,
                }
            }
            if let Some(beat) = self.beat.take() {
                if self.packets.is_empty() && self.close.is_none() {
                    // Alone, as to an idle connection: written without the packets' buffer.
                    let protocol = socket.protocol();
                    let written = ws.write_frames(cx, |out| put_frame(out, &beat, protocol));
                    match written {
                        Ok(true) => continue,
                        Ok(false) => return Poll::Pending,
                        Err(_) => return self.failed(socket),
                    }
                }
                self.packets.push_front(beat);
            }
            if !self.packets.is_empty() {
                if self
                    .close
                    .is_some_and(|reason| reason != CloseReason::ForcedClose)
                {
                    // The peer or the transport ended the connection: nothing more to write
                    // but the close frame, if the socket takes it at once.
                    if !ws.is_gone() {
                        ws.queue_close(socket.ws_close_code());
                        let _ = ws.poll_shutdown(cx);
                    }
                    return Poll::Ready(());
                }
                let protocol = socket.protocol();
                if self.packets.len() == 1
                    && let Some((opcode, parts)) =
                        self.packets.front().and_then(|p| direct_frame(p, protocol))
                    && ws.writes_direct(parts[0].len() + parts[1].len())
                {
                    let written = ws.write_direct(cx, opcode, parts);
                    self.packets.clear();
                    self.packets.release_large(Socket::<D>::SMALL_QUEUE);
                    match written {
                        Ok(true) => continue,
                        Ok(false) => return Poll::Pending,
                        Err(_) => return self.failed(socket),
                    }
                }
                let packets = &mut self.packets;
                let written = ws.write_frames(cx, |out| {
                    packets.take_each(|packet| {
                        put_frame(out, packet, protocol);
                        out.len() < WRITE_CHUNK
                    });
                });
                // All taken: an idle connection keeps no large buffer.
                self.packets.release_large(Socket::<D>::SMALL_QUEUE);
                match written {
                    Ok(true) => continue,
                    Ok(false) => return Poll::Pending,
                    Err(_) => return self.failed(socket),
                }
            }
            if self.close.is_some() {
                return self.close(cx, socket, ws);
            }
        }
    }

    /// After the last packet: our close frame (with the session's close code, if any, unless
    /// the reader answered the client's already), written with what waits before it, then the
    /// socket's sending side shut; nothing when the stream is gone. Errors here are the peer's
    /// business.
    fn close<D>(
        &mut self,
        cx: &mut Context<'_>,
        socket: &Socket<D>,
        ws: &mut WsStream,
    ) -> Poll<()> {
        if ws.is_gone() {
            return Poll::Ready(());
        }
        ws.queue_close(socket.ws_close_code());
        ws.poll_shutdown(cx).map(|_| ())
    }

    fn failed<D>(&mut self, socket: &Socket<D>) -> Poll<()> {
        socket.close_with(CloseReason::TransportError);
        Poll::Ready(())
    }
}

/// Acts on one message from the client.
fn on_message<H: EngineHandler>(
    inner: &EngineInner<H>,
    socket: &Arc<Socket<H::Data>>,
    message: Incoming,
) {
    match message {
        Incoming::Text(text) => match Packet::decode_text(text) {
            Ok(packet) => inner.on_packet(socket, packet),
            Err(error) => {
                tracing::debug!(%error, "invalid packet");
                socket.close_with(CloseReason::ParseError);
            }
        },
        // v3 puts the message type in front of binary data.
        Incoming::Binary(data) if socket.protocol() == 3 => match data.first() {
            Some(4) => inner.on_packet(socket, Packet::Binary(data.slice(1..))),
            _ => {
                tracing::debug!("v3 binary frame without the message type");
                socket.close_with(CloseReason::ParseError);
            }
        },
        Incoming::Binary(data) => inner.on_packet(socket, Packet::Binary(data)),
    }
}

/// How much the writer appends before it writes (a larger batch goes out in several writes).
const WRITE_CHUNK: usize = 64 * 1024;

/// The opcode and payload of a packet's frame when the payload is in the packet's own
/// buffers (a large one is written from there: [`WsConn::write_direct`]).
fn direct_frame(packet: &Packet, protocol: u8) -> Option<(u8, [&[u8]; 2])> {
    match packet {
        Packet::Encoded(text) => Some((1, [text.as_bytes(), &[]])),
        Packet::Message(text) => Some((1, [b"4", text.as_bytes()])),
        Packet::Binary(data) if protocol != 3 => Some((2, [data, &[]])),
        _ => None,
    }
}

/// Appends `packet` as a frame from the server (unmasked): text, or binary (behind the message
/// type in v3). An encoded event, shared with the other recipients of a broadcast, is copied
/// once, into the buffer.
fn put_frame(out: &mut Vec<u8>, packet: &Packet, protocol: u8) {
    match packet {
        Packet::Binary(data) if protocol == 3 => {
            put_header(out, false, 2, data.len() + 1);
            out.put_u8(4);
            out.extend_from_slice(data);
        }
        Packet::Binary(data) => {
            put_header(out, false, 2, data.len());
            out.extend_from_slice(data);
        }
        Packet::Encoded(text) => {
            put_header(out, false, 1, text.len());
            out.extend_from_slice(text.as_bytes());
        }
        other => {
            let text = other
                .encode_text()
                .expect("only binary packets lack a text form");
            put_header(out, false, 1, text.len());
            out.extend_from_slice(text.as_bytes());
        }
    }
}
