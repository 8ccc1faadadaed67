//! The engine handle, its session table, and each session's life until it closes (the v4
//! heartbeat runs in the `heartbeat` module).

use std::{
    fmt,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
};

use http::request::Parts;
use parking_lot::RwLock;
use tokio::{runtime::Handle, sync::Notify};

use crate::{
    CloseReason, EngineConfig, EngineHandler, EngineLayer, Packet, Sid, Socket, TransportType,
    heartbeat::Heartbeats, packet::OpenPacket, sid::SidMap, socket::SessionEnd,
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
    heartbeats: Arc<Heartbeats<H::Data>>,
    live: AtomicUsize,
    all_closed: Notify,
    /// What every session of this engine calls when it closes, made with the first session.
    session_end: OnceLock<SessionEnd<H::Data>>,
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
        let heartbeats = Arc::new(Heartbeats::new(config.ping_interval, config.ping_timeout));
        Engine {
            inner: Arc::new(EngineInner {
                config,
                handler,
                heartbeats,
                sessions: RwLock::new(SidMap::default()),
                live: AtomicUsize::new(0),
                all_closed: Notify::new(),
                session_end: OnceLock::new(),
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
        let socket = Arc::new(
            Socket::new(
                sid.clone(),
                parts,
                transport,
                protocol,
                self.config.max_buffered_packets,
                self.config.max_buffered_bytes,
                H::Data::default(),
            )
            .with_on_close(self.session_end()),
        );
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
        if protocol == 3 {
            let deadline = self.config.ping_interval + self.config.ping_timeout;
            let beating = socket.clone();
            crate::traced::spawn(
                async move {
                    tokio::select! {
                        () = beating.closed() => {}
                        () = crate::heartbeat::v3_heartbeat(deadline, &beating) => {}
                    }
                },
                socket.span().clone(),
            );
        } else {
            self.heartbeats.start(&socket);
        }
        Some((socket, open))
    }

    /// What a session of this engine calls when it closes: the engine's end of the session on
    /// a task of its own, made then (the runtime's handle is the one the first session opened
    /// on, for a close from outside any runtime). It holds the engine weakly: the engine holds
    /// its sessions.
    fn session_end(self: &Arc<Self>) -> SessionEnd<H::Data> {
        self.session_end
            .get_or_init(|| {
                let engine = Arc::downgrade(self);
                let runtime = tokio::runtime::Handle::current();
                Arc::new(move |socket: &Socket<H::Data>| {
                    if let Some(engine) = engine.upgrade() {
                        engine.session_closed(socket, &runtime);
                    }
                })
            })
            .clone()
    }

    /// Runs [`after_close`](Self::after_close) for `socket`, just closed, if it is this engine's
    /// session: it is in the table until `after_close` removes it.
    fn session_closed(self: Arc<Self>, socket: &Socket<H::Data>, runtime: &Handle) {
        let Some(socket) = self
            .get(socket.id().as_str())
            .filter(|found| std::ptr::eq(Arc::as_ptr(found), socket))
        else {
            return;
        };
        let span = socket.span().clone();
        let end = async move {
            if socket.protocol() != 3 {
                self.heartbeats.stop(&socket);
            }
            self.after_close(socket).await;
        };
        match Handle::try_current() {
            Ok(current) => crate::traced::spawn_on(&current, end, span),
            Err(_) => crate::traced::spawn_on(runtime, end, span),
        }
    }

    /// The end of a session, once it closed: the handler's `on_disconnect`, then removal from
    /// the table (for polling, once the close packet reached the client or after a grace
    /// period).
    async fn after_close(self: Arc<Self>, socket: Arc<Socket<H::Data>>) {
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
            self.heartbeats.heard_from(socket);
        }
        match packet {
            Packet::Message(text) => self.handler.on_message(socket, text),
            Packet::Binary(data) => self.handler.on_binary(socket, data),
            // v4: the server pings, the client answers; v3: the other way round.
            Packet::Pong if socket.protocol() != 3 => self.heartbeats.ponged(socket),
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

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use bytes::Bytes;
    use tower::ServiceExt;

    use super::*;
    use crate::Str;

    #[derive(Default)]
    struct Counting {
        disconnected: AtomicUsize,
    }

    impl EngineHandler for Counting {
        type Data = ();
        fn on_connect(&self, _: Arc<Socket<()>>) {}
        fn on_disconnect(&self, _: Arc<Socket<()>>, _: CloseReason) {
            self.disconnected.fetch_add(1, Ordering::SeqCst);
        }
        fn on_message(&self, _: &Arc<Socket<()>>, _: Str) {}
        fn on_binary(&self, _: &Arc<Socket<()>>, _: Bytes) {}
    }

    /// An open session costs no task (the heartbeats' driver is shared by all); its end runs
    /// on a task made when it closes, once, however often it is closed.
    #[tokio::test]
    async fn an_open_session_has_no_task_and_ends_once() {
        let engine = Engine::new(Counting::default(), EngineConfig::default());
        let metrics = Handle::current().metrics();
        let before = metrics.num_alive_tasks();
        for _ in 0..20 {
            let req = http::Request::get("/socket.io/?EIO=4&transport=polling")
                .body(http_body_util::Empty::<Bytes>::new())
                .unwrap();
            let res = engine.service().oneshot(req).await.unwrap();
            assert_eq!(res.status(), http::StatusCode::OK);
        }
        assert_eq!(engine.clients_count(), 20);
        let tasks = metrics.num_alive_tasks();
        assert!(tasks <= before + 1, "{tasks} tasks for 20 sessions");

        engine.close().await;
        assert_eq!(engine.handler().disconnected.load(Ordering::SeqCst), 20);
        for socket in engine.sockets() {
            socket.close();
        }
        tokio::task::yield_now().await;
        assert_eq!(engine.handler().disconnected.load(Ordering::SeqCst), 20);
    }
}
