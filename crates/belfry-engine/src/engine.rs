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
        let end = self.session_end();
        let socket = Arc::new_cyclic(|me| {
            Socket::new(
                sid.clone(),
                parts,
                transport,
                protocol,
                self.config.max_buffered_packets,
                self.config.max_buffered_bytes,
                H::Data::default(),
            )
            .with_on_close(end, me.clone())
        });
        // Counted and beating before anything can find the session, and so close it: its end
        // undoes both.
        self.live.fetch_add(1, Ordering::AcqRel);
        if protocol != 3 {
            self.heartbeats.start(&socket);
        }
        {
            let mut sessions = self.sessions.write();
            if sessions.contains_key(&sid) {
                drop(sessions);
                // Never seen by anyone, never closed: undone here.
                self.heartbeats.stop(&socket);
                self.ended_one();
                return None;
            }
            sessions.insert(sid.clone(), socket.clone());
        }
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
            // The client pings: a task waits for its pings until the session closes.
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
        }
        Some((socket, open))
    }

    /// What a session of this engine calls when it closes: its heartbeat stopped at once, then
    /// the engine's end of the session ([`after_close`](Self::after_close)) on a task made
    /// then, on the runtime the engine's first session opened on (a close may come from
    /// outside any runtime, or from one without timers). It holds the engine weakly: the
    /// engine holds its sessions.
    fn session_end(self: &Arc<Self>) -> SessionEnd<H::Data> {
        self.session_end
            .get_or_init(|| {
                let engine = Arc::downgrade(self);
                let heartbeats = self.heartbeats.clone();
                let runtime = Handle::current();
                Arc::new(move |socket: Arc<Socket<H::Data>>| {
                    heartbeats.stop(&socket);
                    let Some(engine) = engine.upgrade() else {
                        return;
                    };
                    let span = socket.span().clone();
                    crate::traced::spawn_on(&runtime, engine.after_close(socket), span);
                })
            })
            .clone()
    }

    /// One session fewer alive; the last wakes [`Engine::close`].
    fn ended_one(&self) {
        if self.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.all_closed.notify_waiters();
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
        self.ended_one();
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
    use std::{sync::atomic::AtomicUsize, time::Duration};

    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
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

    fn counting() -> Engine<Counting> {
        Engine::new(Counting::default(), EngineConfig::default())
    }

    fn disconnected(engine: &Engine<Counting>) -> usize {
        engine.handler().disconnected.load(Ordering::SeqCst)
    }

    /// A request to the engine, answered: status and body.
    async fn request(
        engine: &Engine<Counting>,
        method: &str,
        query: &str,
        body: &str,
    ) -> (u16, String) {
        let req = http::Request::builder()
            .method(method)
            .uri(format!("/socket.io/?{query}"))
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap();
        let res = engine.service().oneshot(req).await.unwrap();
        let status = res.status().as_u16();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    /// Opens a polling session; its id.
    async fn open(engine: &Engine<Counting>, eio: u8) -> String {
        let (status, body) =
            request(engine, "GET", &format!("EIO={eio}&transport=polling"), "").await;
        assert_eq!(status, 200, "{body}");
        let start = body.find("\"sid\":\"").unwrap() + 7;
        body[start..start + 20].to_owned()
    }

    async fn eventually(what: &str, done: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !done() {
            assert!(tokio::time::Instant::now() < deadline, "{what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// An open session costs no task (the heartbeats' driver is shared by all); its end runs
    /// on a task made when it closes, once, however often it is closed.
    #[tokio::test]
    async fn an_open_session_has_no_task_and_ends_once() {
        let engine = counting();
        let metrics = Handle::current().metrics();
        let before = metrics.num_alive_tasks();
        for _ in 0..20 {
            open(&engine, 4).await;
        }
        assert_eq!(engine.clients_count(), 20);
        let tasks = metrics.num_alive_tasks();
        assert!(tasks <= before + 1, "{tasks} tasks for 20 sessions");

        engine.close().await;
        assert_eq!(disconnected(&engine), 20);
        for socket in engine.sockets() {
            socket.close();
        }
        tokio::task::yield_now().await;
        assert_eq!(disconnected(&engine), 20);
    }

    /// A client's close (`POST 1`) while its GET waits: the GET, woken, answers and frees the
    /// session in the table, maybe on another worker before the session's end is started.
    /// The end runs all the same, once, and the engine's close does not wait for it forever.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_close_with_a_waiting_get_ends_the_session_once() {
        let engine = counting();
        for round in 1..=200 {
            let sid = open(&engine, 4).await;
            let query = format!("EIO=4&transport=polling&sid={sid}");
            let get = tokio::spawn({
                let engine = engine.clone();
                let query = query.clone();
                async move { request(&engine, "GET", &query, "").await }
            });
            eventually("the GET waits", || {
                engine
                    .socket(&sid)
                    .is_some_and(|socket| socket.polling_get.load(Ordering::Acquire))
            })
            .await;
            let (status, body) = request(&engine, "POST", &query, "1").await;
            assert_eq!((status, body.as_str()), (200, "ok"));
            let (status, _) = get.await.unwrap();
            assert_eq!(status, 200);
            eventually("on_disconnect", || disconnected(&engine) == round).await;
        }
        eventually("every session freed", || engine.clients_count() == 0).await;
        tokio::time::timeout(Duration::from_secs(5), engine.close())
            .await
            .expect("no session is left alive");
        assert_eq!(disconnected(&engine), 200);
    }

    /// A v3 session keeps a task for the heartbeat its client drives, until it closes; it ends
    /// once, like any other.
    #[tokio::test]
    async fn a_v3_session_ends_once_and_its_heartbeat_task_with_it() {
        let mut config = EngineConfig::builder().allow_eio3(true).build();
        // The end of a polling session closed by the server waits this long for the close
        // packet to be fetched.
        config.close_grace = Duration::from_millis(10);
        let engine = Engine::new(Counting::default(), config);
        let metrics = Handle::current().metrics();
        let before = metrics.num_alive_tasks();
        open(&engine, 3).await;
        assert_eq!(metrics.num_alive_tasks(), before + 1);
        engine.close().await;
        assert_eq!(disconnected(&engine), 1);
        eventually("the v3 heartbeat's task and the end's task ended", || {
            metrics.num_alive_tasks() == before
        })
        .await;
    }

    /// A session closed from a thread outside any runtime ends on the engine's runtime.
    #[tokio::test]
    async fn a_close_from_outside_the_runtime_ends_the_session() {
        let engine = counting();
        let sid = open(&engine, 4).await;
        let socket = engine.socket(&sid).unwrap();
        std::thread::spawn(move || socket.close()).join().unwrap();
        eventually("on_disconnect", || disconnected(&engine) == 1).await;
    }
}
