//! An Engine.IO session: its bounded send queue, its transport and how it closes.

mod queue;

use std::{
    fmt,
    sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicUsize, Ordering},
    task::Waker,
    time::Duration,
};

use http::{HeaderMap, HeaderName, HeaderValue, Uri, request::Parts};
use parking_lot::Mutex;
use tokio::{sync::Notify, time::Instant};

use crate::{CloseReason, Packet, SendError, Sid, TransportType};

pub(crate) use queue::Packets;
pub use queue::SharedPackets;

/// What a session calls, once, when it closes.
pub(crate) type SessionEnd<D> = std::sync::Arc<dyn Fn(std::sync::Arc<Socket<D>>) + Send + Sync>;

/// One Engine.IO session (a client connection), shared by the transports and the handler.
///
/// Packets sent with [`Socket::send`] go to a queue bounded in packets and bytes, which the
/// current transport drains: the pending long-poll GET, or the WebSocket writer. Heartbeat pings
/// bypass the caps, so a full queue never starves the heartbeat.
pub struct Socket<D> {
    id: Sid,
    parts: Parts,
    /// The Engine.IO protocol revision: 4, or 3 (socket.io 2.x clients).
    protocol: u8,
    /// A v3 client that asked for base64 (`b64` in its query): no binary polling payloads.
    base64: bool,
    transport: AtomicU8,
    state: Mutex<Outbox>,
    /// A pending long-poll GET waits on this for packets (the WebSocket writer keeps its waker
    /// in the send queue's state instead).
    pub(crate) wake_polling: Notify,
    /// A v3 client's heartbeat waits on this for the client's pings.
    pub(crate) pong: Notify,
    /// Where the heartbeat is: [`heartbeat::IDLE`](crate::heartbeat::IDLE),
    /// [`heartbeat::AWAITING`](crate::heartbeat::AWAITING) a pong, or
    /// [`heartbeat::REFRESHED`](crate::heartbeat::REFRESHED) (a packet came meanwhile: the wait
    /// was extended once).
    pub(crate) heartbeat: AtomicU8,
    /// The session's slot in the engine's heartbeats (v4).
    pub(crate) beat_slot: AtomicU32,
    pub(crate) close_delivered: Notify,
    /// Wakes [`closed`](Socket::closed)'s waiters, once `is_closed` is set.
    closed: Notify,
    /// Called once, when the session closes: the engine's end of the session, on a task made
    /// then, rather than a task for each session that waits for the close all its life.
    /// Called with the session itself (its own weak reference, upgraded: whoever closes it
    /// holds it, whether or not the engine's table still does).
    on_close: Option<(SessionEnd<D>, std::sync::Weak<Socket<D>>)>,
    /// The session is closed or closing: read on every turn of a transport.
    is_closed: AtomicBool,
    pub(crate) polling_get: AtomicBool,
    pub(crate) polling_post: AtomicBool,
    pub(crate) upgrade_claimed: AtomicBool,
    /// The WebSocket writer waits for packets, with nothing left to write: set under the
    /// queue's lock as it parks, cleared when its task runs again. Only then does a sender wake
    /// it; woken, it writes at once (see [`crate::inline::Fence`]).
    pub(crate) writer_idle: AtomicBool,
    /// The send queue is at its caps: the session's reader reads no more until a transport
    /// takes the queue (see [`Socket::backlogged`]).
    backlog: AtomicBool,
    /// How many of the layer above's parts paused reading (see [`Socket::pause_reading`]).
    reads_paused: AtomicUsize,
    /// Notified when a transport takes a queue that was at its caps, and when reading resumes.
    pub(crate) unblocked: Notify,
    max_packets: usize,
    max_bytes: usize,
    span: tracing::Span,
    data: D,
}

struct Outbox {
    queue: Packets,
    bytes: usize,
    ping: bool,
    /// A v3 client pinged: the answer is due.
    pong: bool,
    /// A packet queued since the last drain may be compressed (Node's `compress` option: a
    /// polling response is compressed if any of its packets may be).
    compress: bool,
    noop: bool,
    full_since: Option<Instant>,
    close: Option<CloseReason>,
    ws_close_code: Option<u16>,
    /// How many own packets and shared groups the writer took last time: the capacity each
    /// new queue buffer starts with (a fan-out sends bursts of about the same size).
    last_batch: [u32; 2],
    /// A connection whose reader queued packets here waits for the writer to take them.
    claim: Option<crate::inline::Claim>,
    /// The WebSocket writer's waker while it waits for something to write (`writer_idle`).
    writer: Option<Waker>,
}

impl Outbox {
    /// The WebSocket writer's waker, if it waits for packets: taken, so that it is woken once.
    fn wake_idle_writer(&mut self, idle: &AtomicBool) -> Option<Waker> {
        if idle.load(Ordering::Acquire) {
            self.writer.take()
        } else {
            None
        }
    }
}

/// The request head with allocations of its own. hyper hands out the URI and header values as
/// slices of the connection's read buffer (8 KiB or more): a session that kept them would keep
/// that whole buffer alive as long as it lives, the larger part of an idle connection's memory.
/// The extensions are kept as they are (what the layers above put there; hyper's own
/// `HeaderCaseMap`, with `preserve_header_case`, would still hold slices of the buffer).
pub(crate) fn detached(mut parts: Parts) -> Parts {
    // Every value in one allocation, each header a slice of it.
    let mut values =
        bytes::BytesMut::with_capacity(parts.headers.values().map(|value| value.len()).sum());
    for value in parts.headers.values() {
        values.extend_from_slice(value.as_bytes());
    }
    let values = values.freeze();
    let mut start = 0;
    let mut headers = HeaderMap::with_capacity(parts.headers.len());
    for (name, value) in &parts.headers {
        let end = start + value.len();
        let name = HeaderName::from_bytes(name.as_str().as_bytes()).unwrap_or(name.clone());
        let mut copy =
            HeaderValue::from_maybe_shared(values.slice(start..end)).unwrap_or(value.clone());
        copy.set_sensitive(value.is_sensitive());
        headers.append(name, copy);
        start = end;
    }
    parts.headers = headers;
    if let Ok(uri) = Uri::try_from(parts.uri.to_string()) {
        parts.uri = uri;
    }
    parts
}

/// The length of `packets` on the wire.
fn wire_len(packets: &[Packet]) -> usize {
    packets.iter().map(Packet::wire_len).sum()
}

/// What a transport takes from the queue in one go.
#[derive(Debug, Default)]
pub(crate) struct Drained {
    pub(crate) packets: Vec<Packet>,
    /// Set once the session is closed: the transport sends what is in `packets`, then closes.
    pub(crate) close: Option<CloseReason>,
    /// Some packet may be compressed.
    pub(crate) compress: bool,
}

impl<D> Socket<D> {
    /// The most entries a queue buffer kept while idle holds: the usual reply goes out without
    /// an allocation, and an idle connection keeps two such sets of buffers (the queue's and
    /// the WebSocket writer's, swapped at each drain) of one entry each.
    pub(crate) const SMALL_QUEUE: usize = 1;

    /// The session, told `end` when it closes (see `on_close`); `me` is the session's own
    /// reference (`Arc::new_cyclic`).
    pub(crate) fn with_on_close(mut self, end: SessionEnd<D>, me: std::sync::Weak<Self>) -> Self {
        self.on_close = Some((end, me));
        self
    }

    pub(crate) fn new(
        id: Sid,
        parts: Parts,
        transport: TransportType,
        protocol: u8,
        max_packets: usize,
        max_bytes: usize,
        data: D,
    ) -> Self {
        let span = tracing::debug_span!("engine", sid = %id, transport = transport.as_str());
        let base64 = protocol == 3 && crate::request::asks_base64(parts.uri.query());
        Socket {
            id,
            parts: detached(parts),
            protocol,
            base64,
            transport: AtomicU8::new(transport as u8),
            state: Mutex::new(Outbox {
                queue: Packets::default(),
                bytes: 0,
                ping: false,
                pong: false,
                compress: false,
                noop: false,
                full_since: None,
                close: None,
                ws_close_code: None,
                last_batch: [0; 2],
                claim: None,
                writer: None,
            }),
            wake_polling: Notify::new(),
            pong: Notify::new(),
            heartbeat: AtomicU8::new(crate::heartbeat::IDLE),
            beat_slot: AtomicU32::new(u32::MAX),
            close_delivered: Notify::new(),
            closed: Notify::new(),
            on_close: None,
            is_closed: AtomicBool::new(false),
            polling_get: AtomicBool::new(false),
            polling_post: AtomicBool::new(false),
            upgrade_claimed: AtomicBool::new(false),
            writer_idle: AtomicBool::new(false),
            backlog: AtomicBool::new(false),
            reads_paused: AtomicUsize::new(0),
            unblocked: Notify::new(),
            max_packets,
            max_bytes,
            span,
            data,
        }
    }

    /// The session's tracing span (`engine{sid, transport}`, at debug level): everything the
    /// engine does for the session happens in it. Spans of the layers above (a Socket.IO
    /// socket's) take it as their parent, so `RUST_LOG=belfry=debug` reads as one story per
    /// connection.
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// The session id.
    pub fn id(&self) -> &Sid {
        &self.id
    }

    /// The Engine.IO protocol revision the client speaks: 4, or 3 for socket.io 2.x clients
    /// (see [`EngineConfigBuilder::allow_eio3`](crate::EngineConfigBuilder::allow_eio3)).
    pub fn protocol(&self) -> u8 {
        self.protocol
    }

    /// For a v3 client: whether its polling payloads may use the binary framing.
    pub(crate) fn v3_binary(&self) -> bool {
        !self.base64
    }

    /// The handshake request (method, URI, headers, and the extensions that engine layers such as
    /// a session middleware added), without its body.
    pub fn req_parts(&self) -> &Parts {
        &self.parts
    }

    /// The per-session data of the [`EngineHandler`](crate::EngineHandler).
    pub fn data(&self) -> &D {
        &self.data
    }

    /// The transport in use: polling until an upgrade completes.
    pub fn transport(&self) -> TransportType {
        if self.transport.load(Ordering::Acquire) == TransportType::Websocket as u8 {
            TransportType::Websocket
        } else {
            TransportType::Polling
        }
    }

    pub(crate) fn set_transport(&self, transport: TransportType) {
        self.transport.store(transport as u8, Ordering::Release);
    }

    /// Queues one packet.
    ///
    /// # Errors
    ///
    /// [`SendError::Full`] when the queue is at its cap, [`SendError::Closed`] once the session
    /// closed.
    pub fn send(&self, packet: Packet) -> Result<(), SendError> {
        self.send_all_with([packet], true)
    }

    /// Queues several packets at once: all of them, next to each other, or none.
    ///
    /// A Socket.IO binary event (a text header and its attachments) uses this so that packets of
    /// concurrent sends never interleave.
    ///
    /// # Errors
    ///
    /// As [`Socket::send`]; on error nothing was queued.
    pub fn send_many(&self, packets: &[Packet]) -> Result<(), SendError> {
        self.send_many_with(packets, true)
    }

    /// [`Socket::send_many`], saying whether these packets may be compressed (Node's
    /// `compress` option; see
    /// [`EngineConfigBuilder::http_compression`](crate::EngineConfigBuilder::http_compression)).
    ///
    /// # Errors
    ///
    /// As [`Socket::send_many`].
    pub fn send_many_with(&self, packets: &[Packet], compress: bool) -> Result<(), SendError> {
        self.enqueue(
            wire_len(packets),
            packets.len(),
            compress,
            |queue, [wanted, _]| {
                queue.reserve_own(wanted);
                for packet in packets {
                    queue.push_back(packet.clone());
                }
            },
        )
    }

    /// Queues packets shared with other sessions, such as a broadcast's: the queue holds a
    /// reference to them, not a copy of each (see [`SharedPackets`]). Otherwise as
    /// [`Socket::send_many_with`].
    ///
    /// ```
    /// # use belfry_engine::{Packet, Socket, SharedPackets};
    /// fn broadcast(sessions: &[&Socket<()>], text: String) {
    ///     let shared = SharedPackets::one(Packet::Message(text.into()));
    ///     for session in sessions {
    ///         let _ = session.send_shared_with(&shared, true);
    ///     }
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Socket::send_many`].
    pub fn send_shared_with(
        &self,
        packets: &SharedPackets,
        compress: bool,
    ) -> Result<(), SendError> {
        self.enqueue(
            packets.wire_len(),
            packets.len(),
            compress,
            |queue, [_, wanted]| {
                queue.reserve_shared(wanted);
                queue.push_shared(packets);
            },
        )
    }

    /// [`Socket::send_many_with`] for packets the queue may keep as they are. Queuing a copy
    /// of a packet takes a reference to its buffer, which for a `Bytes` made from a `Vec`
    /// (`Str::from(String)`) allocates: packets sent to one session only are best given away.
    ///
    /// ```
    /// # use belfry_engine::{Packet, Socket, SendError};
    /// fn reply(session: &Socket<()>, text: String) -> Result<(), SendError> {
    ///     session.send_all_with([Packet::Message(text.into())], true)
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Socket::send_many`].
    pub fn send_all_with<P>(&self, packets: P, compress: bool) -> Result<(), SendError>
    where
        P: AsRef<[Packet]> + IntoIterator<Item = Packet>,
        P::IntoIter: ExactSizeIterator,
    {
        let bytes = wire_len(packets.as_ref());
        let packets = packets.into_iter();
        self.enqueue(bytes, packets.len(), compress, |queue, [wanted, _]| {
            queue.reserve_own(wanted);
            for packet in packets {
                queue.push_back(packet);
            }
        })
    }

    /// Queues `count` packets, `bytes` long on the wire, if they fit: `push` puts them in the
    /// queue, given how many own packets and how many shared groups to make room for (each
    /// sized by the writer's last batch of its kind).
    fn enqueue(
        &self,
        bytes: usize,
        count: usize,
        compress: bool,
        push: impl FnOnce(&mut Packets, [usize; 2]),
    ) -> Result<(), SendError> {
        let was_empty;
        let writer;
        {
            let mut state = self.state.lock();
            if state.close.is_some() {
                return Err(SendError::Closed);
            }
            // A batch larger than the caps on its own is still accepted into an empty queue, so
            // that one large message within `max_payload` can always be sent.
            let (len, total) = (state.queue.len() + count, state.bytes + bytes);
            let within_caps = len <= self.max_packets && total <= self.max_bytes;
            // Only looked at once the caps are reached: off the usual path.
            let own = !within_caps && crate::inline::is_own_reader(self);
            let fits = state.queue.is_empty()
                || within_caps
                // The session's own work (a handler answering the client's events) may go past
                // the caps, up to twice them: the queue is full because our writer has not run
                // yet, not because the client does not read, and the reader pauses until it
                // has (TCP then holds the client back). Nothing is dropped.
                || (own
                    && len <= self.max_packets.saturating_mul(2)
                    && total <= self.max_bytes.saturating_mul(2));
            if !fits {
                state.full_since.get_or_insert_with(Instant::now);
                return Err(SendError::Full);
            }
            was_empty = state.queue.is_empty();
            // Each buffer sized for the writer's last batch (`Packets::reserve_own`). One packet
            // at a time fits the one-entry buffers kept between batches.
            let [own_hint, shared_hint] = state.last_batch.map(|hint| {
                usize::try_from(hint).map_or(self.max_packets, |hint| hint.min(self.max_packets))
            });
            let wanted = [count.max(own_hint).max(1), shared_hint.max(1)];
            push(&mut state.queue, wanted);
            state.bytes += bytes;
            // The session's own work reached the caps: it pauses until a transport took the
            // queue. Others' sends (a broadcast) never pause this session's reader.
            if (state.queue.len() >= self.max_packets || state.bytes >= self.max_bytes)
                && (own || crate::inline::is_own_reader(self))
            {
                self.backlog.store(true, Ordering::Release);
            }
            state.compress |= compress;
            if state.claim.is_none() && self.writer_idle.load(Ordering::Acquire) {
                state.claim = crate::inline::claim(self);
            }
            writer = state.wake_idle_writer(&self.writer_idle);
        }
        // A queue that held packets already was signalled when it got its first: its writer has
        // not drained it since (draining empties it), and takes these too. A waker taken is
        // always used.
        if was_empty || writer.is_some() {
            self.wake(writer);
        }
        crate::inline::queued_for(self);
        Ok(())
    }

    /// Closes the session: the queued packets are still written, then the client is told the
    /// session ended. The handler's `on_disconnect` runs with [`CloseReason::ForcedClose`].
    pub fn close(&self) {
        self.close_with(CloseReason::ForcedClose);
    }

    /// True if a packet sent now goes out at once: nothing is queued, and the transport can
    /// take it (a WebSocket, or a pending long-poll GET). Node drops `volatile` packets when
    /// this is false.
    pub fn is_writable(&self) -> bool {
        let state = self.state.lock();
        state.close.is_none()
            && state.queue.is_empty()
            && (self.transport() == TransportType::Websocket
                || self.polling_get.load(Ordering::Acquire))
    }

    /// True while the session's own work (see [`Socket::as_own_work`]) has filled the send
    /// queue to its caps and no transport has taken it since: the session's reader stops
    /// reading (a WebSocket) or waits before the next packet of a POST, so that the answers of
    /// a client's burst wait for the writer instead of failing with [`SendError::Full`].
    ///
    /// The layer above checks it before it resumes a handler that waited: one that would send
    /// more first waits for the writer ([`Socket::until_unblocked`]).
    pub fn backlogged(&self) -> bool {
        self.backlog.load(Ordering::Acquire)
    }

    /// Pauses reading the session's packets (`true`), or takes one pause back (`false`): for
    /// the layer above, whose work for this session is at a bound. Pauses count: several parts
    /// of the layer (the sockets of several namespaces on one connection) may each pause, and
    /// reading resumes once each took its pause back. While paused, the WebSocket reader reads
    /// no more frames (TCP then holds the client back) and a polling POST waits before its next
    /// packet (at most the ping timeout once; then it goes on). Heartbeats are not read either: a
    /// pause longer than the ping timeout ends the session.
    pub fn pause_reading(&self, paused: bool) {
        if paused {
            self.reads_paused.fetch_add(1, Ordering::AcqRel);
            return;
        }
        let resumed = self
            .reads_paused
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            == Ok(1);
        if resumed {
            self.unblocked.notify_waiters();
            // A WebSocket task parked with nothing to write reads again.
            self.signal(|_| {});
        }
    }

    /// Whether the layer above paused reading ([`Socket::pause_reading`]).
    pub(crate) fn reads_paused(&self) -> bool {
        self.reads_paused.load(Ordering::Acquire) > 0
    }

    /// Runs `f` as this session's own work, as the engine runs the handler of a packet it read
    /// from the session: what `f` queues for this session may go past the caps, up to twice
    /// them (then the session's work waits for the writer, see [`Socket::until_unblocked`]).
    /// For the layer above, which runs a session's handlers that waited on a task of their own.
    pub fn as_own_work<T>(&self, f: impl FnOnce() -> T) -> T {
        crate::inline::as_own_work(self, f)
    }

    /// Resolves once the session's own work no longer holds the send queue at its caps: a
    /// transport took it, or the session closed. Resolves at once when it does not.
    pub async fn until_unblocked(&self) {
        self.until(|socket| !socket.backlogged()).await;
    }

    /// Resolves once the session may be read again: its send queue is not held at its caps by
    /// its own work, and the layer above did not pause reading; or the session closed.
    pub(crate) async fn until_readable(&self) {
        self.until(|socket| !socket.backlogged() && !socket.reads_paused())
            .await;
    }

    /// Resolves once `ready` holds (checked again each time `unblocked` is notified) or the
    /// session closed.
    async fn until(&self, ready: impl Fn(&Self) -> bool) {
        loop {
            let unblocked = self.unblocked.notified();
            tokio::pin!(unblocked);
            unblocked.as_mut().enable();
            if ready(self) || self.is_closed() {
                return;
            }
            tokio::select! {
                () = unblocked => {}
                () = self.closed() => return,
            }
        }
    }

    /// Whether the session's writer holds a claim on some reader's fence (see
    /// [`crate::inline`]).
    #[cfg(test)]
    pub(crate) fn has_claim(&self) -> bool {
        self.state.lock().claim.is_some()
    }

    /// True once the session is closed or closing.
    pub fn is_closed(&self) -> bool {
        self.is_closed.load(Ordering::Acquire)
    }

    /// Resolves when the session closes.
    pub async fn closed(&self) {
        let closed = self.closed.notified();
        tokio::pin!(closed);
        // Listening before looking: `close_with` sets the flag, then wakes who listens.
        closed.as_mut().enable();
        if self.is_closed() {
            return;
        }
        closed.await;
    }

    /// The reason the session closed, if it did.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.state.lock().close
    }

    /// Closes with `reason`; the first reason wins. Queued packets are kept for a
    /// [`CloseReason::ForcedClose`] and dropped otherwise.
    pub(crate) fn close_with(&self, reason: CloseReason) {
        let writer = {
            let mut state = self.state.lock();
            if state.close.is_some() {
                return;
            }
            state.close = Some(reason);
            if reason != CloseReason::ForcedClose {
                state.queue.clear();
                state.bytes = 0;
            }
            state.wake_idle_writer(&self.writer_idle)
        };
        let _span = self.span.enter();
        tracing::debug!(%reason, "closing session");
        self.is_closed.store(true, Ordering::Release);
        self.closed.notify_waiters();
        self.wake(writer);
        if let Some((end, me)) = &self.on_close
            && let Some(me) = me.upgrade()
        {
            end(me);
        }
    }

    /// Closes with `reason` and asks the WebSocket writer to send close `code`.
    pub(crate) fn close_ws_with(&self, reason: CloseReason, code: u16) {
        self.state.lock().ws_close_code.get_or_insert(code);
        self.close_with(reason);
    }

    pub(crate) fn ws_close_code(&self) -> Option<u16> {
        self.state.lock().ws_close_code
    }

    pub(crate) fn queue_ping(&self) {
        self.signal(|state| state.ping = true);
    }

    /// Answers a v3 client's ping.
    pub(crate) fn queue_pong(&self) {
        self.signal(|state| state.pong = true);
    }

    pub(crate) fn queue_noop(&self) {
        self.signal(|state| state.noop = true);
    }

    /// Sets a flag of the queue's state for the writer, and wakes it.
    fn signal(&self, set: impl FnOnce(&mut Outbox)) {
        let writer = {
            let mut state = self.state.lock();
            set(&mut state);
            state.wake_idle_writer(&self.writer_idle)
        };
        self.wake(writer);
    }

    /// Wakes whoever writes the session's packets: the WebSocket writer, given its waker if it
    /// waited for packets ([`Outbox::wake_idle_writer`]), or a pending long-poll GET.
    fn wake(&self, writer: Option<Waker>) {
        match writer {
            Some(writer) => writer.wake(),
            // A WebSocket writer that kept no waker is at work: it looks at the queue before
            // it waits again.
            None if self.transport() == TransportType::Polling => {
                self.wake_polling.notify_one();
            }
            None => {}
        }
    }

    /// How long sends have been failing because the queue is full.
    pub(crate) fn full_for(&self, now: Instant) -> Option<Duration> {
        self.state.lock().full_since.map(|t| now - t)
    }

    /// Takes every queued packet, the heartbeat ping first. `polling` also takes a pending noop.
    pub(crate) fn drain(&self, polling: bool) -> Drained {
        let mut packets = Packets::default();
        let (close, compress) = self.drain_into(&mut packets, polling);
        let packets = packets.into_vec();
        // Engine packets (heartbeats, noops, close) may be compressed, as Node's.
        let compress = compress
            || packets.iter().any(|p| {
                !matches!(
                    p,
                    Packet::Message(_) | Packet::Encoded(_) | Packet::Binary(_)
                )
            });
        Drained {
            packets,
            close,
            compress,
        }
    }

    /// [`Socket::drain`] into `out`; returns the close reason once the session is closed (the
    /// transport sends the packets, then closes), and whether a packet taken may be compressed.
    pub(crate) fn drain_into(
        &self,
        out: &mut Packets,
        polling: bool,
    ) -> (Option<CloseReason>, bool) {
        // Released once the lock is: the reader that waits for this writer may go on (the
        // writer writes what it takes before it polls anything else).
        let _claim;
        let mut state = self.state.lock();
        _claim = state.claim.take();
        let mut beat = None;
        let taken = Self::take_queued(&mut state, out, polling, &mut beat);
        drop(state);
        if let Some(beat) = beat {
            out.push_front(beat);
        }
        self.unblock();
        taken
    }

    /// After a transport took the queue: a reader paused by [`Socket::backlogged`] goes on.
    fn unblock(&self) {
        if self.backlog.load(Ordering::Acquire) && self.backlog.swap(false, Ordering::AcqRel) {
            self.unblocked.notify_waiters();
        }
    }

    /// [`Socket::drain_for_writer`] with the heartbeat put first among the packets.
    #[cfg(test)]
    pub(crate) fn drain_or_wait(
        &self,
        out: &mut Packets,
        waker: &Waker,
    ) -> Option<Option<CloseReason>> {
        let mut beat = None;
        let taken = self.drain_for_writer(out, &mut beat, waker);
        if let Some(beat) = beat {
            out.push_front(beat);
        }
        taken
    }

    /// For the WebSocket writer: [`Socket::drain_into`] (without the noop and the compress
    /// flag) if there is anything to take; otherwise the writer waits, its waker kept until a
    /// packet, a heartbeat or the close comes, and `None` is returned. A heartbeat packet (ping,
    /// or a v3 client's pong) goes to `beat`, not to `out`: it goes first, and a ping to an idle
    /// connection touches no buffer of the queue's.
    pub(crate) fn drain_for_writer(
        &self,
        out: &mut Packets,
        beat: &mut Option<Packet>,
        waker: &Waker,
    ) -> Option<Option<CloseReason>> {
        let _claim;
        let mut state = self.state.lock();
        if state.queue.is_empty() && !state.ping && !state.pong && state.close.is_none() {
            if !state.writer.as_ref().is_some_and(|w| w.will_wake(waker)) {
                state.writer = Some(waker.clone());
            }
            self.writer_idle.store(true, Ordering::Release);
            return None;
        }
        _claim = state.claim.take();
        let (close, _) = Self::take_queued(&mut state, out, false, beat);
        drop(state);
        self.unblock();
        Some(close)
    }

    /// Moves the queue to `out`; the heartbeat that goes first, if any, to `beat`.
    fn take_queued(
        state: &mut Outbox,
        out: &mut Packets,
        polling: bool,
        beat: &mut Option<Packet>,
    ) -> (Option<CloseReason>, bool) {
        if out.is_empty() {
            // The queue's buffer moves to the writer, the writer's (small, if any) to the queue.
            std::mem::swap(out, &mut state.queue);
            state.last_batch = out.entries().map(|n| u32::try_from(n).unwrap_or(u32::MAX));
        } else {
            // Behind what the writer holds; the queue keeps no buffer (it may be a burst's).
            out.append(std::mem::take(&mut state.queue));
        }
        // One heartbeat at a time (a v4 session is pinged, a v3 client pings: never both).
        if state.close.is_some() {
            state.ping = false;
            state.pong = false;
        } else if std::mem::take(&mut state.ping) {
            *beat = Some(Packet::Ping);
        } else if std::mem::take(&mut state.pong) {
            *beat = Some(Packet::Pong);
        }
        state.bytes = 0;
        let compress = std::mem::take(&mut state.compress);
        state.full_since = None;
        if polling && std::mem::take(&mut state.noop) {
            out.push_back(Packet::Noop);
        }
        (state.close, compress)
    }
}

impl<D> fmt::Debug for Socket<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Socket")
            .field("id", &self.id)
            .field("transport", &self.transport())
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
