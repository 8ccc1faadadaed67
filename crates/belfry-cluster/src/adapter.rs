//! [`ClusterAdapter`]: one namespace's adapter in a cluster. Rooms and local delivery by an
//! inner [`LocalAdapter`]; the other servers reached through a [`Transport`]; requests,
//! responses and (optionally) heartbeats handled here, the same for every transport.

use std::{
    collections::{HashMap, HashSet},
    fmt,
    sync::{
        Arc, OnceLock, Weak,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use belfry_core::{
    adapter::{
        Adapter, AdapterError, AdapterEvent, AdapterListener, BoxFuture, BroadcastFlags,
        BroadcastOptions, LocalAckSink, LocalAdapter, LocalSockets, RemoteAck, RemoteAckSink,
        ServerSideReply, SocketInfo, push_offset,
    },
    parser::{Packet, PacketData, Payload},
    proto::{SocketId, value::Value},
};
use parking_lot::Mutex;
use tokio::{
    sync::{mpsc, oneshot},
    time::Instant,
};

use crate::message::{Body, ClusterMessage, EMITTER_UID, Incoming, Outgoing, Reply};

/// The longest a server keeps waiting for its clients' answers to another server's broadcast
/// with acks (the requester's timeout, when it is shorter).
const MAX_ACK_WAIT: Duration = Duration::from_secs(60);
/// The pause between two attempts to count the servers while the transport is away.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// How often silent servers are looked for (Node's cluster adapter: every second).
const MEMBERSHIP_CHECK: Duration = Duration::from_secs(1);
/// The longest this server's clients wait for a broadcast whose offset the transport's store
/// has not given (Node's adapters wait for their backend however long it takes): past it,
/// the broadcast is delivered here without an offset.
const OFFSET_WAIT: Duration = Duration::from_secs(1);

/// How a [`ClusterAdapter`] reaches the other servers of its namespace: one per namespace,
/// made by the adapter's factory with the namespace's [`Receiver`], to which it hands what it
/// receives.
///
/// The methods that send never wait: a transport queues what it cannot send at once, or
/// fails.
pub trait Transport: Send + Sync + 'static {
    /// Hands `message` to the other servers of the namespace.
    ///
    /// # Errors
    ///
    /// The message cannot be sent (its queue is full, the transport cannot carry it).
    fn send(&self, message: &Outgoing<'_>) -> Result<(), AdapterError>;

    /// Answers request `request_id` of server `to` (`None`: a request that did not say who
    /// sent it).
    ///
    /// # Errors
    ///
    /// As [`Transport::send`].
    fn reply(
        &self,
        to: Option<&str>,
        request_id: &str,
        reply: &Reply<'_>,
    ) -> Result<(), AdapterError>;

    /// True when the transport keeps broadcasts in a store that gives each an offset (Redis
    /// Streams: the entry id), for connection state recovery across servers. When the server
    /// has recovery on, a broadcast is then sent with [`Transport::send_durable`] and delivered
    /// here once its offset is known, with the offset as its last argument (as Node's cluster
    /// adapters do). False by default.
    fn gives_offsets(&self) -> bool {
        false
    }

    /// Sends `message` (a broadcast); the future resolves to the offset the store gave it.
    /// By default the transport has no offsets: nothing is sent and it fails.
    ///
    /// # Errors
    ///
    /// At once when the message cannot be sent (its queue is full); the future, when the
    /// store refused it.
    #[allow(clippy::type_complexity)]
    fn send_durable(
        &self,
        message: &Outgoing<'_>,
    ) -> Result<BoxFuture<'static, Result<String, AdapterError>>, AdapterError> {
        let _ = message;
        Err(AdapterError::Unsupported("offsets"))
    }

    /// The adapter is made: the transport may hand it messages from now on (a transport that
    /// starts listening later, or announces itself once it listens, starts here).
    fn attached(&self) {}

    /// Counts the servers of the namespace, this one included, when the transport can (Redis:
    /// the subscribers of the namespace's channel). `None` (the default): the adapter counts
    /// them by their heartbeats ([`ClusterOptions::heartbeat`]).
    fn count_servers(&self) -> Option<BoxFuture<'static, Result<usize, AdapterError>>> {
        None
    }

    /// Resolves once the transport is reachable again (counting the servers is worth another
    /// try); at once by default.
    fn ready(&self) -> BoxFuture<'static, ()> {
        Box::pin(std::future::ready(()))
    }

    /// A fresh request id (Node's cluster adapters: 8 random bytes in hex, the default).
    fn new_request_id(&self) -> String {
        crate::random_hex(8)
    }

    /// True when the transport wants [`room_created`](Transport::room_created) and
    /// [`room_deleted`](Transport::room_deleted) (false by default: listening to rooms costs
    /// every join and leave a little).
    fn wants_room_events(&self) -> bool {
        false
    }

    /// Room `room` got its first member here (`is_socket`: it is a socket's own room).
    fn room_created(&self, room: &str, is_socket: bool) {
        let _ = (room, is_socket);
    }

    /// Room `room` lost its last member here.
    fn room_deleted(&self, room: &str) {
        let _ = room;
    }

    /// The adapter closes: release what the namespace holds (subscriptions). `rooms` are the
    /// rooms with members here, each with whether it is a socket's own.
    fn close(&self, rooms: &[(String, bool)]) {
        let _ = rooms;
    }

    /// Keeps the state of a socket that left for a recoverable reason (see
    /// [`Adapter::persist_session`]); ignored by default.
    fn persist_session(&self, session: belfry_core::adapter::Session) {
        let _ = session;
    }

    /// Finds session `pid` again with the events missed after `offset` (see
    /// [`Adapter::restore_session`]); `None` by default.
    fn restore_session(
        &self,
        pid: &str,
        offset: &str,
    ) -> BoxFuture<'static, Result<Option<belfry_core::adapter::RestoredSession>, AdapterError>>
    {
        let _ = (pid, offset);
        Box::pin(async { Ok(None) })
    }
}

/// How servers that count each other by heartbeats do it (Node's
/// `ClusterAdapterWithHeartbeat`, used by its Postgres adapter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Heartbeat {
    /// How often this server says it is alive (Node's `heartbeatInterval`, 5 s).
    pub interval: Duration,
    /// How long a silent server is still counted (Node's `heartbeatTimeout`, 10 s).
    pub timeout: Duration,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Heartbeat {
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
        }
    }
}

impl Heartbeat {
    /// Every `interval` (1 ms at least), counted for `timeout` after the last message.
    pub fn new(interval: Duration, timeout: Duration) -> Heartbeat {
        Heartbeat {
            interval: interval.max(Duration::from_millis(1)),
            timeout,
        }
    }
}

/// What a [`ClusterAdapter`] needs to know besides its transport.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClusterOptions {
    /// This server's uid: its messages carry it, and messages carrying it are ignored.
    pub uid: String,
    /// How long a request to the other servers waits for their answers (Node's
    /// `requestsTimeout`, 5 s).
    pub requests_timeout: Duration,
    /// `Some`: servers are counted by their heartbeats; `None`: by the transport
    /// ([`Transport::count_servers`]).
    pub heartbeat: Option<Heartbeat>,
}

impl ClusterOptions {
    /// Server `uid`, requests waiting 5 s, servers counted by the transport.
    pub fn new(uid: impl Into<String>) -> ClusterOptions {
        ClusterOptions {
            uid: uid.into(),
            requests_timeout: Duration::from_secs(5),
            heartbeat: None,
        }
    }

    /// Sets [`requests_timeout`](ClusterOptions::requests_timeout).
    #[must_use]
    pub fn with_requests_timeout(mut self, timeout: Duration) -> Self {
        self.requests_timeout = timeout;
        self
    }

    /// Sets [`heartbeat`](ClusterOptions::heartbeat).
    #[must_use]
    pub fn with_heartbeat(mut self, heartbeat: Option<Heartbeat>) -> Self {
        self.heartbeat = heartbeat;
        self
    }
}

/// Where a [`Transport`] hands the messages of its namespace. Cheap to clone; does not keep
/// the adapter alive.
#[derive(Clone)]
pub struct Receiver(Weak<Inner>);

impl fmt::Debug for Receiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver").finish_non_exhaustive()
    }
}

impl Receiver {
    /// Acts on a message from another server; this server's own are ignored. False once the
    /// adapter is gone (the transport may forget this receiver).
    pub fn receive(&self, incoming: Incoming) -> bool {
        let Some(inner) = self.0.upgrade() else {
            return false;
        };
        inner.receive(incoming);
        true
    }

    /// Acts on `message` when it belongs to this namespace and comes from another server;
    /// a message whose data does not match its kind is logged and dropped. False once the
    /// adapter is gone.
    pub fn receive_message(&self, message: ClusterMessage) -> bool {
        let Some(inner) = self.0.upgrade() else {
            return false;
        };
        if message.nsp != inner.sockets.namespace() || message.uid == inner.options.uid {
            return true;
        }
        let kind = message.kind;
        match message.into_incoming() {
            Ok(Some(incoming)) => inner.receive(incoming),
            Ok(None) => {}
            Err(error) => tracing::warn!(kind, %error, "invalid cluster message dropped"),
        }
        true
    }

    /// As [`Receiver::receive_message`], for a message kept at `offset` in the transport's
    /// store (a stream entry id): a broadcast gets the offset as its last argument when the
    /// server has connection state recovery on.
    pub fn receive_message_at(&self, message: ClusterMessage, offset: &str) -> bool {
        let Some(inner) = self.0.upgrade() else {
            return false;
        };
        if message.nsp != inner.sockets.namespace() || message.uid == inner.options.uid {
            return true;
        }
        let kind = message.kind;
        match message.into_incoming() {
            Ok(Some(Incoming {
                uid: _,
                body: Body::Broadcast { packet, opts },
            })) => inner.broadcast_here(&packet, &opts, Some(offset)),
            Ok(Some(incoming)) => inner.receive(incoming),
            Ok(None) => {}
            Err(error) => tracing::warn!(kind, %error, "invalid cluster message dropped"),
        }
        true
    }

    /// This server's uid.
    pub fn uid(&self) -> Option<String> {
        self.0.upgrade().map(|inner| inner.options.uid.clone())
    }

    /// The namespace.
    pub fn namespace(&self) -> Option<String> {
        self.0
            .upgrade()
            .map(|inner| inner.sockets.namespace().to_owned())
    }

    /// Says that this server joined (Node's `INITIAL_HEARTBEAT`) when servers are counted by
    /// heartbeats: the others answer with theirs. A transport calls it once it receives the
    /// namespace's messages, and again after it reconnected.
    pub fn announce(&self) {
        if let Some(inner) = self.0.upgrade()
            && inner.options.heartbeat.is_some()
        {
            inner.send_quietly(&Outgoing::Heartbeat { initial: true });
        }
    }
}

/// A namespace's adapter in a cluster of servers: made by an adapter crate (Redis, Postgres,
/// ...) with its [`Transport`].
pub struct ClusterAdapter(Arc<Inner>);

impl fmt::Debug for ClusterAdapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterAdapter")
            .field("uid", &self.0.options.uid)
            .field("namespace", &self.0.sockets.namespace())
            .finish_non_exhaustive()
    }
}

struct Inner {
    me: Weak<Inner>,
    options: ClusterOptions,
    local: LocalAdapter,
    sockets: Arc<dyn LocalSockets>,
    transport: Arc<dyn Transport>,
    /// Requests waiting for other servers' responses, by request id.
    pending: Mutex<HashMap<String, Pending>>,
    /// This server's broadcasts with acks still listening for answers, by request id.
    ack_requests: Mutex<HashMap<String, RemoteAckSink>>,
    /// With heartbeats: the other servers, and when each was last heard from.
    nodes: Mutex<HashMap<String, Instant>>,
    /// What waits to be done here in order (made when first needed; see [`Inner::ordered`]).
    deliveries: OnceLock<mpsc::UnboundedSender<Delivery>>,
    /// The adapter was closed: it sends nothing more, heartbeats included, and hears nothing.
    closed: AtomicBool,
}

/// What this server does here in the order it was asked, when broadcasts wait for their
/// offsets (see [`Inner::ordered`]).
// Queued one at a time, moved once: the size of a variant does not matter.
#[allow(clippy::large_enum_variant)]
enum Delivery {
    /// A broadcast, delivered once its offset is known (`offset: None`: one that takes none,
    /// waiting for those before it).
    Broadcast {
        offset: Option<BoxFuture<'static, Result<String, AdapterError>>>,
        /// When it is delivered here, offset or not.
        deadline: Instant,
        ids: Vec<SocketId>,
        packet: Packet,
        flags: BroadcastFlags,
    },
    /// A rooms operation on this server's sockets.
    Rooms(Box<dyn FnOnce() + Send>),
}

/// Carries out this server's broadcasts and rooms operations here in the order they were
/// asked, each broadcast once its offset is known (without one when the store refused it or
/// is slower than [`OFFSET_WAIT`]: local clients still get it). Ends with the adapter.
async fn deliver(sockets: Arc<dyn LocalSockets>, mut queue: mpsc::UnboundedReceiver<Delivery>) {
    while let Some(delivery) = queue.recv().await {
        match delivery {
            Delivery::Broadcast {
                offset,
                deadline,
                ids,
                packet,
                flags,
            } => {
                let packet = match offset {
                    None => packet,
                    Some(offset) => match tokio::time::timeout_at(deadline, offset).await {
                        Ok(Ok(offset)) => push_offset(&packet, &offset).unwrap_or(packet),
                        Ok(Err(error)) => {
                            tracing::debug!(%error, "broadcast not kept for recovery; delivered here only");
                            packet
                        }
                        Err(_) => {
                            tracing::debug!(
                                "no offset in time; broadcast delivered here without one"
                            );
                            packet
                        }
                    },
                };
                sockets.send(&ids, &packet, &flags);
            }
            Delivery::Rooms(operation) => operation(),
        }
    }
}

/// A request waiting for answers, each handed to `take` (which says whether it was one).
struct Pending {
    /// Servers counted by the transport: how many answers are still awaited.
    remaining: usize,
    /// Servers counted by heartbeats: the servers whose answer is still awaited.
    waiting_for: Option<HashSet<String>>,
    take: Box<dyn FnMut(Body) -> bool + Send>,
    done: Option<oneshot::Sender<()>>,
}

impl Pending {
    /// True once nothing more is awaited.
    fn complete(&self) -> bool {
        match &self.waiting_for {
            Some(servers) => servers.is_empty(),
            None => self.remaining == 0,
        }
    }
}

impl ClusterAdapter {
    /// The adapter of the namespace of `sockets`, reaching the other servers through the
    /// transport `transport` makes with the namespace's [`Receiver`].
    ///
    /// With [`ClusterOptions::heartbeat`], a task checks the other servers' heartbeats and
    /// sends this server's: call it within a Tokio runtime (Belfry makes namespaces' adapters
    /// within the server's runtime).
    pub fn new<T: Transport>(
        sockets: Arc<dyn LocalSockets>,
        options: ClusterOptions,
        transport: impl FnOnce(Receiver) -> Arc<T>,
    ) -> ClusterAdapter {
        let heartbeat = options.heartbeat;
        let inner = Arc::new_cyclic(|me: &Weak<Inner>| {
            let transport: Arc<dyn Transport> = transport(Receiver(me.clone()));
            Inner {
                me: me.clone(),
                options,
                local: LocalAdapter::new(sockets.clone()),
                sockets,
                transport,
                pending: Mutex::new(HashMap::new()),
                ack_requests: Mutex::new(HashMap::new()),
                nodes: Mutex::new(HashMap::new()),
                deliveries: OnceLock::new(),
                closed: AtomicBool::new(false),
            }
        });
        if inner.transport.wants_room_events() {
            let me = inner.me.clone();
            inner.local.on_event(Box::new(move |event| {
                if let Some(inner) = me.upgrade() {
                    inner.on_room_event(event);
                }
            }));
        }
        inner.transport.attached();
        if let Some(heartbeat) = heartbeat {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    runtime.spawn(keep_membership(inner.me.clone(), heartbeat));
                }
                Err(_) => tracing::error!(
                    "a cluster adapter made outside a Tokio runtime sends no heartbeats"
                ),
            }
        }
        ClusterAdapter(inner)
    }

    /// A [`Receiver`] of this adapter.
    pub fn receiver(&self) -> Receiver {
        Receiver(self.0.me.clone())
    }
}

/// Checks the other servers' heartbeats and sends this server's, while the adapter lives.
async fn keep_membership(me: Weak<Inner>, heartbeat: Heartbeat) {
    let period = MEMBERSHIP_CHECK
        .min(heartbeat.interval)
        .max(Duration::from_millis(1));
    let mut check = tokio::time::interval(period);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_beat = Instant::now();
    loop {
        check.tick().await;
        let Some(inner) = me.upgrade() else {
            return;
        };
        if inner.closed.load(Ordering::Acquire) {
            return;
        }
        let silent: Vec<String> = inner
            .nodes
            .lock()
            .iter()
            .filter(|(_, seen)| seen.elapsed() > heartbeat.timeout)
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in silent {
            tracing::debug!(%uid, "server silent for too long, no longer counted");
            inner.forget_node(&uid);
        }
        if last_beat.elapsed() >= heartbeat.interval {
            inner.send_quietly(&Outgoing::Heartbeat { initial: false });
            last_beat = Instant::now();
        }
    }
}

impl Inner {
    fn on_room_event(&self, event: &AdapterEvent) {
        match event {
            AdapterEvent::CreateRoom(room) => {
                self.transport.room_created(room, self.is_socket(room));
            }
            AdapterEvent::DeleteRoom(room) => self.transport.room_deleted(room),
            _ => {}
        }
    }

    /// True when `room` is the own room of a socket here (Node's `sids.has(room)`).
    fn is_socket(&self, room: &str) -> bool {
        !self
            .local
            .socket_rooms(&SocketId::from(room.to_owned()))
            .is_empty()
    }

    fn send(&self, message: &Outgoing<'_>) -> Result<(), AdapterError> {
        self.transport.send(message)
    }

    /// Sends `message`, a failure logged.
    fn send_quietly(&self, message: &Outgoing<'_>) {
        if let Err(error) = self.send(message) {
            tracing::debug!(%error, "cluster message not sent");
        }
    }

    /// Answers request `request_id` of server `to`; a failure is logged (the requester times
    /// out).
    fn reply(&self, to: Option<&str>, request_id: &str, reply: &Reply<'_>) {
        if let Err(error) = self.transport.reply(to, request_id, reply) {
            tracing::warn!(%error, "answer to another server not sent");
        }
    }

    /// A rooms operation: sent to the other servers unless `opts` is local, and done here by
    /// `local_op` on the inner adapter: at once, or, when broadcasts wait for their offsets,
    /// after those asked before it (as Node's cluster adapters act here once the backend took
    /// the message).
    fn rooms_op(
        &self,
        opts: &BroadcastOptions,
        message: &Outgoing<'_>,
        local_op: impl FnOnce(&LocalAdapter) -> BoxFuture<'static, Result<(), AdapterError>>
        + Send
        + 'static,
    ) -> BoxFuture<'static, Result<(), AdapterError>> {
        let remote = (!opts.flags.local).then(|| self.send(message));
        if remote.is_some() && self.ordered() {
            let (done, finished) = oneshot::channel();
            let me = self.me.clone();
            self.enqueue(Delivery::Rooms(Box::new(move || {
                if let Some(inner) = me.upgrade() {
                    drop(local_op(&inner.local));
                }
                let _ = done.send(());
            })));
            return Box::pin(async move {
                let _ = finished.await;
                remote.unwrap_or(Ok(()))
            });
        }
        let local = local_op(&self.local);
        Box::pin(async move {
            local.await?;
            remote.unwrap_or(Ok(()))
        })
    }

    /// The other servers known by their heartbeats.
    fn known_nodes(&self) -> HashSet<String> {
        self.nodes.lock().keys().cloned().collect()
    }

    /// How many servers the namespace has, this one included.
    async fn server_count(&self) -> Result<usize, AdapterError> {
        match self.transport.count_servers() {
            Some(count) => count.await,
            None => Ok(1 + self.nodes.lock().len()),
        }
    }

    /// How many servers the namespace has, asking again while the transport is away; the
    /// caller bounds the wait.
    async fn server_count_when_reachable(&self) -> usize {
        loop {
            match self.server_count().await {
                Ok(count) => return count,
                Err(error) => {
                    tracing::debug!(%error, "server count unknown; asking again");
                    self.transport.ready().await;
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
            }
        }
    }

    /// Sends the request (`send`, given its id) and folds every other server's
    /// answer into `T` with `take` (false: not an answer to this request). All of it,
    /// outages included, within the requests timeout; past it, `AdapterError::Timeout(what)`
    /// with what was gathered by then.
    async fn request<T: Default + Send + 'static>(
        self: Arc<Self>,
        what: &'static str,
        send: impl FnOnce(&Inner, &str) -> Result<(), AdapterError>,
        take: fn(&mut T, Body) -> bool,
    ) -> Result<T, (AdapterError, T)> {
        let deadline = Instant::now() + self.options.requests_timeout;
        let (remaining, waiting_for) = if self.options.heartbeat.is_some() {
            let nodes = self.known_nodes();
            (nodes.len(), Some(nodes))
        } else {
            let counted = tokio::time::timeout_at(deadline, self.server_count_when_reachable());
            let count = counted
                .await
                .map_err(|_| (AdapterError::Timeout(what), T::default()))?;
            (count.saturating_sub(1), None)
        };
        if remaining == 0 {
            return Ok(T::default());
        }
        let request_id = self.transport.new_request_id();
        let gathered = Arc::new(Mutex::new(T::default()));
        let into = gathered.clone();
        let (done, answered) = oneshot::channel();
        self.pending.lock().insert(
            request_id.clone(),
            Pending {
                remaining,
                waiting_for,
                take: Box::new(move |body| take(&mut into.lock(), body)),
                done: Some(done),
            },
        );
        if let Err(error) = send(&self, &request_id) {
            self.pending.lock().remove(&request_id);
            return Err((error, T::default()));
        }
        let answer = tokio::time::timeout_at(deadline, answered).await;
        self.pending.lock().remove(&request_id);
        let gathered = std::mem::take(&mut *gathered.lock());
        match answer {
            Ok(Ok(())) => Ok(gathered),
            _ => Err((AdapterError::Timeout(what), gathered)),
        }
    }

    /// A message from another server (or an emitter).
    fn receive(&self, Incoming { uid, body }: Incoming) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        if uid.as_deref() == Some(self.options.uid.as_str()) {
            // This server already acted on its own messages.
            return;
        }
        if self.options.heartbeat.is_some()
            && let Some(uid) = uid.as_deref()
            && !uid.is_empty()
            && uid != EMITTER_UID
            && !matches!(body, Body::Close)
        {
            self.nodes.lock().insert(uid.to_owned(), Instant::now());
        }
        self.handle(uid, body);
    }

    /// Server `uid` is no longer counted: requests stop waiting for it.
    fn forget_node(&self, uid: &str) {
        self.nodes.lock().remove(uid);
        let mut pending = self.pending.lock();
        let finished: Vec<String> = pending
            .iter_mut()
            .filter_map(|(id, request)| {
                let servers = request.waiting_for.as_mut()?;
                (servers.remove(uid) && servers.is_empty()).then(|| id.clone())
            })
            .collect();
        for id in finished {
            if let Some(request) = pending.remove(&id)
                && let Some(done) = request.done
            {
                let _ = done.send(());
            }
        }
    }

    fn handle(&self, uid: Option<String>, body: Body) {
        let from = uid.as_deref();
        match body {
            Body::Broadcast { packet, opts } => self.broadcast_here(&packet, &opts, None),
            Body::BroadcastWithAck {
                request_id,
                payload,
                opts,
            } => self.on_ack_request(uid, request_id, &payload, &opts),
            Body::Join { opts, rooms } => drop(self.local.add_sockets(&opts, &rooms)),
            Body::Leave { opts, rooms } => drop(self.local.del_sockets(&opts, &rooms)),
            Body::Disconnect { opts, close } => drop(self.local.disconnect_sockets(&opts, close)),
            Body::OneSocket {
                request_id,
                op,
                sid,
            } => {
                let sid = SocketId::from(sid);
                if !self.local.socket_rooms(&sid).contains(&sid.to_string()) {
                    return;
                }
                let ids = [sid];
                match op {
                    crate::message::SocketOp::Join(room) => self.sockets.join(&ids, &[room]),
                    crate::message::SocketOp::Leave(room) => self.sockets.leave(&ids, &[room]),
                    crate::message::SocketOp::Disconnect(close) => {
                        self.sockets.disconnect(&ids, close);
                    }
                }
                self.reply(from, &request_id, &Reply::Done);
            }
            Body::SocketIds { request_id, rooms } => {
                let opts = BroadcastOptions::new().with_rooms(rooms);
                let ids: Vec<String> = self
                    .local
                    .sockets(&opts)
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                self.reply(from, &request_id, &Reply::SocketIds(&ids));
            }
            Body::AllRooms { request_id } => {
                self.reply(from, &request_id, &Reply::Rooms(&self.local.rooms()));
            }
            Body::Fetch { request_id, opts } => {
                let described = self.sockets.describe(&self.local.sockets(&opts));
                self.reply(from, &request_id, &Reply::Sockets(&described));
            }
            Body::ServerSide { request_id, data } => {
                let reply = request_id.map(|request_id| {
                    let me = self.me.clone();
                    Box::new(move |data: serde_json::Value| {
                        if let Some(inner) = me.upgrade() {
                            inner.reply(uid.as_deref(), &request_id, &Reply::ServerSide(&data));
                        }
                    }) as ServerSideReply
                });
                self.sockets.server_side_event(data, reply);
            }
            Body::ClientCount { request_id, count } => {
                self.to_ack_sink(&request_id, RemoteAck::ClientCount(count));
            }
            Body::AckAnswer { request_id, answer } => {
                self.to_ack_sink(&request_id, RemoteAck::Answer(answer));
            }
            Body::Heartbeat { initial } => {
                if initial && self.options.heartbeat.is_some() {
                    self.send_quietly(&Outgoing::Heartbeat { initial: false });
                }
            }
            Body::Close => {
                if let Some(uid) = from {
                    self.forget_node(uid);
                }
            }
            Body::Sockets { ref request_id, .. }
            | Body::Rooms { ref request_id, .. }
            | Body::ServerSideAnswer { ref request_id, .. } => {
                let request_id = request_id.clone();
                self.on_answer(from, &request_id, body);
            }
        }
    }

    /// Another server's broadcast, delivered here; kept at `offset` in the transport's store,
    /// it gets the offset as last argument when recovery is on (Node's
    /// `addOffsetIfNecessary`).
    fn broadcast_here(&self, packet: &Packet, opts: &BroadcastOptions, offset: Option<&str>) {
        if *packet.ns != *self.sockets.namespace() {
            return;
        }
        let with_offset = offset
            .filter(|_| !opts.flags.volatile && self.sockets.recovery().is_some())
            .and_then(|offset| push_offset(packet, offset));
        let _ = self
            .local
            .broadcast(with_offset.as_ref().unwrap_or(packet), opts);
    }

    /// True when broadcasts wait here for the offsets the transport's store gives them (the
    /// transport gives offsets, and the server has connection state recovery on): then every
    /// broadcast and rooms operation of this server is carried out here in the order asked.
    fn ordered(&self) -> bool {
        self.transport.gives_offsets() && self.sockets.recovery().is_some()
    }

    /// A broadcast to the other servers and, here, after what was asked before it: an event
    /// without ack and not volatile once the store gave its offset (Node's
    /// `addOffsetIfNecessary`). Returns how many sockets here it goes to.
    fn ordered_broadcast(
        &self,
        packet: &Packet,
        opts: &BroadcastOptions,
    ) -> Result<usize, AdapterError> {
        let ids = self.local.sockets(opts);
        let count = ids.len();
        let message = Outgoing::Broadcast { packet, opts };
        let takes_offset =
            !opts.flags.volatile && matches!(packet.data, PacketData::Event { ack: None, .. });
        let (offset, sent) = if takes_offset {
            match self.transport.send_durable(&message) {
                Ok(offset) => (Some(offset), Ok(())),
                Err(error) => (None, Err(error)),
            }
        } else {
            (None, self.send(&message))
        };
        self.enqueue(Delivery::Broadcast {
            offset,
            deadline: Instant::now() + OFFSET_WAIT,
            ids,
            packet: packet.clone(),
            flags: opts.flags,
        });
        sent.map(|()| count)
            .map_err(|error| AdapterError::PartialBroadcast {
                delivered: count,
                source: Box::new(error),
            })
    }

    /// Queues `delivery` behind those asked before it.
    fn enqueue(&self, delivery: Delivery) {
        let deliveries = self.deliveries.get_or_init(|| {
            // Unbounded, and bounded in practice: a broadcast waits at most `OFFSET_WAIT`, and
            // the transport's queue refuses what it cannot hold.
            let (tx, rx) = mpsc::unbounded_channel();
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => drop(runtime.spawn(deliver(self.sockets.clone(), rx))),
                Err(_) => tracing::error!(
                    "a cluster adapter used outside a Tokio runtime delivers nothing here"
                ),
            }
            tx
        });
        if deliveries.send(delivery).is_err() {
            tracing::warn!("not carried out here: the delivery task is gone");
        }
    }

    fn to_ack_sink(&self, request_id: &str, ack: RemoteAck) {
        let sink = self.ack_requests.lock().get(request_id).cloned();
        if let Some(sink) = sink {
            sink(ack);
        }
    }

    /// Server `from`'s answer to one of this server's requests.
    fn on_answer(&self, from: Option<&str>, request_id: &str, body: Body) {
        let mut pending = self.pending.lock();
        let Some(request) = pending.get_mut(request_id) else {
            return;
        };
        // Counted by heartbeats: one answer per server awaited, none from the others.
        if let Some(servers) = &request.waiting_for
            && !from.is_some_and(|uid| servers.contains(uid))
        {
            return;
        }
        if !(request.take)(body) {
            return;
        }
        if let (Some(servers), Some(uid)) = (request.waiting_for.as_mut(), from) {
            servers.remove(uid);
        }
        request.remaining = request.remaining.saturating_sub(1);
        if request.complete()
            && let Some(request) = pending.remove(request_id)
            && let Some(done) = request.done
        {
            let _ = done.send(());
        }
    }

    /// A broadcast with acks from another server, sent to the sockets here; the client count
    /// and every answer go back to the requester.
    fn on_ack_request(
        &self,
        requester: Option<String>,
        request_id: String,
        payload: &Payload,
        opts: &BroadcastOptions,
    ) {
        let timeout = opts
            .flags
            .timeout
            .unwrap_or(self.options.requests_timeout)
            .min(MAX_ACK_WAIT);
        let ids = self.local.sockets(opts);
        let me = self.me.clone();
        let (to, id) = (requester.clone(), request_id.clone());
        let on_answer: LocalAckSink = Arc::new(move |answer| {
            if let Some(inner) = me.upgrade() {
                inner.reply(to.as_deref(), &id, &Reply::AckAnswer(&answer));
            }
        });
        let count = self
            .sockets
            .send_with_ack(&ids, payload, timeout, on_answer);
        self.reply(
            requester.as_deref(),
            &request_id,
            &Reply::ClientCount(count),
        );
    }
}

impl Adapter for ClusterAdapter {
    fn add_all(&self, id: &SocketId, rooms: &[String]) {
        self.0.local.add_all(id, rooms);
    }

    fn del(&self, id: &SocketId, room: &str) {
        self.0.local.del(id, room);
    }

    fn del_all(&self, id: &SocketId) {
        self.0.local.del_all(id);
    }

    fn rooms(&self) -> Vec<String> {
        self.0.local.rooms()
    }

    fn socket_rooms(&self, id: &SocketId) -> Vec<String> {
        self.0.local.socket_rooms(id)
    }

    fn sockets(&self, opts: &BroadcastOptions) -> Vec<SocketId> {
        self.0.local.sockets(opts)
    }

    fn broadcast(&self, packet: &Packet, opts: &BroadcastOptions) -> Result<usize, AdapterError> {
        if !opts.flags.local && self.0.ordered() {
            return self.0.ordered_broadcast(packet, opts);
        }
        let delivered = self.0.local.broadcast(packet, opts)?;
        if opts.flags.local {
            return Ok(delivered);
        }
        // Local delivery happened: a failure to reach the other servers comes back with the
        // count of this server's recipients.
        match self.0.send(&Outgoing::Broadcast { packet, opts }) {
            Ok(()) => Ok(delivered),
            Err(error) => Err(AdapterError::PartialBroadcast {
                delivered,
                source: Box::new(error),
            }),
        }
    }

    fn add_sockets(
        &self,
        opts: &BroadcastOptions,
        rooms: &[String],
    ) -> BoxFuture<'static, Result<(), AdapterError>> {
        let (local_opts, local_rooms) = (opts.clone(), rooms.to_vec());
        self.0
            .rooms_op(opts, &Outgoing::Join { opts, rooms }, move |local| {
                local.add_sockets(&local_opts, &local_rooms)
            })
    }

    fn del_sockets(
        &self,
        opts: &BroadcastOptions,
        rooms: &[String],
    ) -> BoxFuture<'static, Result<(), AdapterError>> {
        let (local_opts, local_rooms) = (opts.clone(), rooms.to_vec());
        self.0
            .rooms_op(opts, &Outgoing::Leave { opts, rooms }, move |local| {
                local.del_sockets(&local_opts, &local_rooms)
            })
    }

    fn disconnect_sockets(
        &self,
        opts: &BroadcastOptions,
        close: bool,
    ) -> BoxFuture<'static, Result<(), AdapterError>> {
        let local_opts = opts.clone();
        self.0
            .rooms_op(opts, &Outgoing::Disconnect { opts, close }, move |local| {
                local.disconnect_sockets(&local_opts, close)
            })
    }

    fn fetch_remote_sockets(
        &self,
        opts: &BroadcastOptions,
    ) -> BoxFuture<'static, Result<Vec<SocketInfo>, AdapterError>> {
        let inner = self.0.clone();
        let opts = opts.clone();
        Box::pin(async move {
            if opts.flags.local {
                return Ok(Vec::new());
            }
            inner
                .request(
                    "fetchSockets",
                    |inner, request_id| {
                        inner.send(&Outgoing::Fetch {
                            request_id,
                            opts: &opts,
                        })
                    },
                    |sockets: &mut Vec<SocketInfo>, body| match body {
                        Body::Sockets { sockets: more, .. } => {
                            sockets.extend(more);
                            true
                        }
                        _ => false,
                    },
                )
                .await
                .map_err(|(error, _)| error)
        })
    }

    fn all_rooms(&self) -> BoxFuture<'static, Result<Vec<String>, AdapterError>> {
        let inner = self.0.clone();
        let mine = self.0.local.rooms();
        Box::pin(async move {
            let mut rooms: HashSet<String> = inner
                .request(
                    "allRooms",
                    |inner, request_id| inner.send(&Outgoing::AllRooms { request_id }),
                    |rooms: &mut HashSet<String>, body| match body {
                        Body::Rooms { rooms: more, .. } => {
                            rooms.extend(more);
                            true
                        }
                        _ => false,
                    },
                )
                .await
                .map_err(|(error, _)| error)?;
            rooms.extend(mine);
            Ok(rooms.into_iter().collect())
        })
    }

    fn server_side_emit(
        &self,
        data: &[Value],
        ack: bool,
    ) -> BoxFuture<'static, Result<Vec<serde_json::Value>, AdapterError>> {
        let inner = self.0.clone();
        if !ack {
            let sent = inner.send(&Outgoing::ServerSide {
                request_id: None,
                data,
            });
            return Box::pin(async move { sent.map(|()| Vec::new()) });
        }
        let data = data.to_vec();
        Box::pin(async move {
            inner
                .request(
                    "serverSideEmit",
                    |inner, request_id| {
                        inner.send(&Outgoing::ServerSide {
                            request_id: Some(request_id),
                            data: &data,
                        })
                    },
                    |answers: &mut Vec<serde_json::Value>, body| match body {
                        Body::ServerSideAnswer { data, .. } => {
                            answers.push(data);
                            true
                        }
                        _ => false,
                    },
                )
                .await
                // As Node: the answers that arrived come with the timeout.
                .map_err(|(error, answers)| match error {
                    AdapterError::Timeout(what) => {
                        AdapterError::TimeoutWithAnswers { what, answers }
                    }
                    other => other,
                })
        })
    }

    fn broadcast_with_ack(
        &self,
        payload: &Payload,
        opts: &BroadcastOptions,
        timeout: Duration,
        sink: RemoteAckSink,
    ) -> BoxFuture<'static, Result<usize, AdapterError>> {
        if opts.flags.local {
            return Box::pin(async { Ok(0) });
        }
        let inner = self.0.clone();
        let request_id = inner.transport.new_request_id();
        let mut opts = opts.clone();
        // Node's receivers read how long to keep listening from the flags.
        opts.flags.timeout = Some(timeout);
        inner.ack_requests.lock().insert(request_id.clone(), sink);
        let sent = inner.send(&Outgoing::BroadcastWithAck {
            request_id: &request_id,
            payload,
            opts: &opts,
        });
        if let Err(error) = sent {
            inner.ack_requests.lock().remove(&request_id);
            return Box::pin(async move { Err(error) });
        }
        // Node's rule: the answers are listened to until the timeout, then forgotten.
        let forget = Arc::downgrade(&inner);
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            if let Some(inner) = forget.upgrade() {
                inner.ack_requests.lock().remove(&request_id);
            }
        });
        Box::pin(async move { Ok(inner.server_count().await?.saturating_sub(1)) })
    }

    fn server_count(&self) -> BoxFuture<'static, usize> {
        let inner = self.0.clone();
        Box::pin(async move { inner.server_count().await.unwrap_or(1).max(1) })
    }

    fn on_event(&self, listener: AdapterListener) {
        self.0.local.on_event(listener);
    }

    fn persist_session(&self, session: belfry_core::adapter::Session) {
        self.0.transport.persist_session(session);
    }

    fn restore_session(
        &self,
        pid: &str,
        offset: &str,
    ) -> BoxFuture<'static, Result<Option<belfry_core::adapter::RestoredSession>, AdapterError>>
    {
        self.0.transport.restore_session(pid, offset)
    }

    fn close(&self) {
        let inner = &self.0;
        if inner.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        if inner.options.heartbeat.is_some() {
            inner.send_quietly(&Outgoing::Close);
        }
        let rooms: Vec<(String, bool)> = inner
            .local
            .rooms()
            .into_iter()
            .map(|room| {
                let is_socket = inner.is_socket(&room);
                (room, is_socket)
            })
            .collect();
        inner.transport.close(&rooms);
    }
}
