//! The engine handle, its session table, and each session's life: heartbeat and close.

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use http::request::Parts;
use parking_lot::RwLock;
use tokio::{sync::Notify, time::Instant};
use tracing::Instrument;

use crate::{
    CloseReason, EngineConfig, EngineHandler, EngineLayer, Packet, Sid, Socket, TransportType,
    packet::OpenPacket, sid::SidMap,
};

/// An Engine.IO server: the session table, the handler and the options.
///
/// Cloning is cheap (an `Arc`); every clone is the same server. Mount it with
/// [`Engine::layer`] into an axum `Router`, or with [`Engine::service`] on its own.
///
/// # Examples
///
/// ```no_run
/// # use std::sync::Arc;
/// # use belfry_engine::{CloseReason, EngineHandler, Packet, Socket, Str};
/// # use bytes::Bytes;
/// # struct Echo;
/// # impl EngineHandler for Echo {
/// #     type Data = ();
/// #     fn on_connect(&self, _: Arc<Socket<()>>) {}
/// #     fn on_disconnect(&self, _: Arc<Socket<()>>, _: CloseReason) {}
/// #     fn on_message(&self, s: &Arc<Socket<()>>, t: Str) { let _ = s.send(Packet::Message(t)); }
/// #     fn on_binary(&self, s: &Arc<Socket<()>>, b: Bytes) { let _ = s.send(Packet::Binary(b)); }
/// # }
/// use axum::{Router, routing::get};
/// use belfry_engine::{Engine, EngineConfig};
///
/// # async fn run() -> std::io::Result<()> {
/// let engine = Engine::new(Echo, EngineConfig::default());
/// let app = Router::new()
///     .route("/", get(|| async { "hello" }))
///     .layer(engine.layer());
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
/// axum::serve(listener, app).await
/// # }
/// ```
pub struct Engine<H: EngineHandler> {
    pub(crate) inner: Arc<EngineInner<H>>,
}

pub(crate) struct EngineInner<H: EngineHandler> {
    pub(crate) config: EngineConfig,
    pub(crate) handler: H,
    sessions: RwLock<SidMap<Arc<Socket<H::Data>>>>,
    live: AtomicUsize,
    all_closed: Notify,
}

impl<H: EngineHandler> Clone for Engine<H> {
    fn clone(&self) -> Self {
        Engine {
            inner: self.inner.clone(),
        }
    }
}

impl<H: EngineHandler> fmt::Debug for Engine<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.inner.config)
            .field("clients", &self.clients_count())
            .finish_non_exhaustive()
    }
}

impl<H: EngineHandler> Engine<H> {
    /// A server calling `handler`, configured by `config`.
    pub fn new(handler: H, config: EngineConfig) -> Self {
        Engine {
            inner: Arc::new(EngineInner {
                config,
                handler,
                sessions: RwLock::new(SidMap::default()),
                live: AtomicUsize::new(0),
                all_closed: Notify::new(),
            }),
        }
    }

    /// A tower [`Layer`](tower_layer::Layer) that answers the engine path and passes every other
    /// request to the service it wraps.
    pub fn layer(&self) -> EngineLayer {
        EngineLayer::new(self.clone())
    }

    /// The engine as a service of its own, answering 404 to paths outside the engine path; for
    /// plain hyper.
    pub fn service(&self) -> crate::EngineService<crate::NotFound> {
        tower_layer::Layer::layer(&self.layer(), crate::NotFound)
    }

    /// The options.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// The handler.
    pub fn handler(&self) -> &H {
        &self.inner.handler
    }

    /// How many sessions are in the table (Node's `clientsCount`).
    pub fn clients_count(&self) -> usize {
        self.inner.sessions.read().len()
    }

    /// The session with id `sid`, if it is live.
    pub fn socket(&self, sid: &str) -> Option<Arc<Socket<H::Data>>> {
        self.inner.get(sid)
    }

    /// Every live session.
    pub fn sockets(&self) -> Vec<Arc<Socket<H::Data>>> {
        self.inner.sessions.read().values().cloned().collect()
    }

    /// Closes every session with [`CloseReason::ForcedClose`] and resolves once the handler
    /// has seen every one of them disconnect. Sessions opened meanwhile are closed too.
    pub async fn close(&self) {
        loop {
            let notified = self.inner.all_closed.notified();
            for socket in self.sockets() {
                socket.close();
            }
            if self.inner.live.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl<H: EngineHandler> EngineInner<H> {
    pub(crate) fn get(&self, sid: &str) -> Option<Arc<Socket<H::Data>>> {
        self.sessions.read().get(sid).cloned()
    }

    pub(crate) fn remove(&self, sid: &Sid) {
        self.sessions.write().remove(sid);
    }

    pub(crate) fn at_capacity(&self) -> bool {
        self.config
            .max_sessions
            .is_some_and(|max| self.sessions.read().len() >= max)
    }

    /// Registers a new session and starts its heartbeat. Returns `None` when the id is taken.
    pub(crate) fn open_session(
        self: &Arc<Self>,
        sid: Sid,
        parts: Parts,
        transport: TransportType,
        protocol: u8,
    ) -> Option<(Arc<Socket<H::Data>>, Packet)> {
        let socket = Arc::new(Socket::new(
            sid.clone(),
            parts,
            transport,
            protocol,
            self.config.max_buffered_packets,
            self.config.max_buffered_bytes,
            H::Data::default(),
        ));
        {
            let mut sessions = self.sessions.write();
            if sessions.contains_key(&sid) {
                return None;
            }
            sessions.insert(sid.clone(), socket.clone());
        }
        self.live.fetch_add(1, Ordering::AcqRel);
        let upgrades = match transport {
            TransportType::Polling => self.config.upgrades(),
            TransportType::Websocket => Vec::new(),
        };
        let open = Packet::Open(OpenPacket {
            sid,
            upgrades,
            ping_interval: millis(self.config.ping_interval),
            ping_timeout: millis(self.config.ping_timeout),
            max_payload: self.config.max_payload,
        });
        let span = socket.span().clone();
        tokio::spawn(self.clone().run_session(socket.clone()).instrument(span));
        Some((socket, open))
    }

    /// The life of one session: heartbeat until closed, then the handler's `on_disconnect`, then
    /// removal from the table (for polling, once the close packet reached the client or after a
    /// grace period).
    async fn run_session(self: Arc<Self>, socket: Arc<Socket<H::Data>>) {
        tokio::select! {
            () = socket.closed() => {}
            () = heartbeat(&self.config, &socket) => {}
        }
        let reason = socket
            .close_reason()
            .expect("a closed session has a close reason");
        tracing::debug!(%reason, "session closed");
        self.handler.on_disconnect(socket.clone(), reason);
        if self.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.all_closed.notify_waiters();
        }
        if matches!(
            reason,
            CloseReason::ForcedClose | CloseReason::TransportClose
        ) && socket.transport() == TransportType::Polling
            && self.get(socket.id().as_str()).is_some()
        {
            // A server close keeps the queued packets and the close packet for the next GET;
            // give the client a while to come for them. A client's close (`POST 1`) keeps the
            // session too, briefly: its GET, sent before the POST but maybe served after it,
            // gets the noop Node answers whichever request is served first. Error closes free
            // the session at once.
            let grace = match reason {
                CloseReason::TransportClose => self.config.close_grace.min(CLIENT_CLOSE_GRACE),
                _ => self.config.close_grace,
            };
            let _ = tokio::time::timeout(grace, socket.close_delivered.notified()).await;
        }
        self.remove(socket.id());
    }

    /// Tells the handler a session opened; called by the transport once the open packet is on
    /// its way, so that anything the handler sends follows it.
    pub(crate) fn connected(&self, socket: &Arc<Socket<H::Data>>) {
        let _span = socket.span().enter();
        tracing::debug!("session opened");
        self.handler.on_connect(socket.clone());
    }

    /// Acts on one packet received on the session's current transport.
    pub(crate) fn on_packet(&self, socket: &Arc<Socket<H::Data>>, packet: Packet) {
        if !matches!(packet, Packet::Pong) {
            socket.heard_from_client();
        }
        match packet {
            Packet::Message(text) => self.handler.on_message(socket, text),
            Packet::Binary(data) => self.handler.on_binary(socket, data),
            // v4: the server pings, the client answers; v3: the other way round.
            Packet::Pong if socket.protocol() != 3 => socket.ponged(),
            Packet::Ping if socket.protocol() == 3 => {
                socket.queue_pong();
                socket.pong.notify_one();
            }
            Packet::Ping | Packet::Pong => {
                tracing::debug!("invalid heartbeat direction");
                socket.close_with(CloseReason::TransportError);
            }
            Packet::Close => socket.close_with(CloseReason::TransportClose),
            // Node ignores the rest outside of an upgrade.
            Packet::Open(_)
            | Packet::Encoded(_)
            | Packet::PingProbe
            | Packet::PongProbe
            | Packet::Upgrade
            | Packet::Noop => {}
        }
    }
}

/// How long a session the client closed waits for a GET that raced its close (the GET was
/// sent first; it is served within a moment or not at all).
const CLIENT_CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// Pings every `ping_interval` (the first one an interval after the handshake) and returns after
/// closing the session when a pong is late, or when the send queue has been full for longer than
/// the ping timeout. A v3 client pings instead: it must do so within `ping_interval +
/// ping_timeout` of its previous ping (of the handshake, at first).
async fn heartbeat<D>(config: &EngineConfig, socket: &Socket<D>) {
    if socket.protocol() == 3 {
        let deadline = config.ping_interval + config.ping_timeout;
        while tokio::time::timeout(deadline, socket.pong.notified())
            .await
            .is_ok()
        {}
        socket.close_with(CloseReason::PingTimeout);
        return;
    }
    let mut next_ping = Instant::now() + config.ping_interval;
    loop {
        tokio::time::sleep_until(next_ping).await;
        // Awaiting before the ping goes: its pong can only come after.
        socket
            .heartbeat
            .store(crate::socket::HEARTBEAT_AWAITING, Ordering::Release);
        socket.queue_ping();
        // One deadline from the ping's due time, not a second timer started after the first
        // fired: each timer fires up to a millisecond late, and the pong is due
        // `ping_interval + ping_timeout` after the last one, as in Node. The first other packet
        // that arrives meanwhile moves it to a ping timeout after that packet, once.
        let mut deadline = next_ping + config.ping_timeout;
        let mut extended = false;
        let ponged = loop {
            tokio::select! {
                () = socket.pong.notified() => match socket.heartbeat.load(Ordering::Acquire) {
                    crate::socket::HEARTBEAT_PONGED => break true,
                    crate::socket::HEARTBEAT_REFRESHED if !extended => {
                        extended = true;
                        deadline = Instant::now() + config.ping_timeout;
                    }
                    // A wake-up left from before this ping.
                    _ => {}
                },
                () = tokio::time::sleep_until(deadline) => break false,
            }
        };
        socket
            .heartbeat
            .store(crate::socket::HEARTBEAT_IDLE, Ordering::Release);
        if !ponged {
            socket.close_with(CloseReason::PingTimeout);
            return;
        }
        if socket
            .full_for(Instant::now())
            .is_some_and(|full| full >= config.ping_timeout)
        {
            tracing::debug!("send queue full for longer than the ping timeout");
            socket.close_with(CloseReason::TransportError);
            return;
        }
        next_ping = Instant::now() + config.ping_interval;
    }
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A polling session (ping interval 100 ms, ping timeout 50 ms) with its heartbeat running,
    /// and when it started.
    fn beating() -> (Arc<Socket<()>>, tokio::task::JoinHandle<()>, Instant) {
        let config = EngineConfig::builder()
            .ping_interval(Duration::from_millis(100))
            .ping_timeout(Duration::from_millis(50))
            .build();
        let (parts, ()) = http::Request::new(()).into_parts();
        let socket = Arc::new(Socket::new(
            crate::Sid::random(),
            parts,
            TransportType::Polling,
            4,
            16,
            1 << 16,
            (),
        ));
        let start = Instant::now();
        let beat = tokio::spawn({
            let socket = socket.clone();
            async move { heartbeat(&config, &socket).await }
        });
        (socket, beat, start)
    }

    /// The pong is due `ping_interval + ping_timeout` after the ping was due, however late the
    /// ping's own timer woke the heartbeat (a second timer started then would fire that much
    /// later, and a client polling on time would still find its session open).
    #[tokio::test(start_paused = true)]
    async fn ping_timeout_counts_from_when_the_ping_was_due() {
        let (socket, beat, start) = beating();
        tokio::task::yield_now().await;
        // The ping's timer wakes the heartbeat 0.9 ms late.
        tokio::time::advance(Duration::from_micros(100_900)).await;
        tokio::task::yield_now().await;
        assert!(!socket.is_closed());
        tokio::time::advance(start + Duration::from_millis(150) - Instant::now()).await;
        tokio::task::yield_now().await;
        assert_eq!(socket.close_reason(), Some(CloseReason::PingTimeout));
        beat.await.expect("the heartbeat ends");
    }

    /// As Node's `hasRefreshedPingTimeout`: the first packet other than a pong that arrives
    /// while the pong is awaited gives the client a whole ping timeout from then, once.
    #[tokio::test(start_paused = true)]
    async fn a_packet_while_the_pong_is_awaited_extends_the_wait_once() {
        let (socket, beat, start) = beating();
        let at = |ms| start + Duration::from_millis(ms);
        let advance_to = |when: Instant| tokio::time::advance(when - Instant::now());
        tokio::task::yield_now().await;
        // The ping goes out at 100 ms; a message at 130 ms, another at 160 ms.
        advance_to(at(130)).await;
        tokio::task::yield_now().await;
        socket.heard_from_client();
        tokio::task::yield_now().await;
        advance_to(at(160)).await;
        tokio::task::yield_now().await;
        socket.heard_from_client();
        tokio::task::yield_now().await;
        // Not at 150 ms (the first deadline): at 180 ms, 50 ms after the first message only.
        advance_to(at(179)).await;
        tokio::task::yield_now().await;
        assert!(!socket.is_closed());
        advance_to(at(181)).await;
        tokio::task::yield_now().await;
        assert_eq!(socket.close_reason(), Some(CloseReason::PingTimeout));
        beat.await.expect("the heartbeat ends");
    }
}
