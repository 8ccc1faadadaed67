//! The adapter of one namespace: rooms and local delivery by an inner [`LocalAdapter`], the
//! rest of the cluster reached through Redis, in the protocol its [`Codec`] speaks.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Weak},
    time::Duration,
};

use belfry_core::proto::SocketId;
use belfry_core::{
    adapter::{
        Adapter, AdapterError, AdapterEvent, AdapterListener, BoxFuture, BroadcastOptions,
        LocalAckSink, LocalAdapter, LocalSockets, RemoteAck, RemoteAckSink, ServerSideReply,
        SocketInfo,
    },
    parser::{Packet, Payload},
};
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::{
    codec::{Body, Codec, EncodeError, Incoming, Outgoing, Reply, SocketOp},
    driver::{Driver, Kind, Route},
};

/// The longest a server keeps waiting for its clients' answers to another server's broadcast
/// with acks (the requester's timeout, when it is shorter).
const MAX_ACK_WAIT: Duration = Duration::from_secs(60);
/// The pause between two attempts to count the servers while Redis is away.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// A namespace's adapter over Redis, made by [`RedisAdapter::factory`](crate::RedisAdapter).
pub(crate) struct RedisNamespaceAdapter(Arc<AdapterInner>);

pub(crate) struct AdapterInner {
    me: Weak<AdapterInner>,
    local: LocalAdapter,
    sockets: Arc<dyn LocalSockets>,
    driver: Arc<Driver>,
    codec: Codec,
    /// Requests waiting for other servers' responses, by request id.
    pending: Mutex<HashMap<String, Pending>>,
    /// This server's broadcasts with acks still listening for answers, by request id.
    ack_requests: Mutex<HashMap<String, RemoteAckSink>>,
}

/// A request waiting for `remaining` responses, each handed to `take` (which says whether it
/// was one).
struct Pending {
    remaining: usize,
    take: Box<dyn FnMut(Body) -> bool + Send>,
    done: Option<oneshot::Sender<()>>,
}

impl RedisNamespaceAdapter {
    pub(crate) fn new(driver: Arc<Driver>, sockets: Arc<dyn LocalSockets>) -> Self {
        let codec = Codec::new(
            driver.protocol,
            &driver.key,
            &driver.uid,
            sockets.namespace(),
        );
        let inner = Arc::new_cyclic(|me| AdapterInner {
            me: me.clone(),
            local: LocalAdapter::new(sockets.clone()),
            sockets,
            driver: driver.clone(),
            codec,
            pending: Mutex::new(HashMap::new()),
            ack_requests: Mutex::new(HashMap::new()),
        });
        for (channel, kind) in inner.codec.subscriptions() {
            inner.subscribe(channel, kind);
        }
        if inner.codec.has_room_channels() {
            let me = inner.me.clone();
            inner.local.on_event(Box::new(move |event| {
                if let Some(inner) = me.upgrade() {
                    inner.on_room_event(event);
                }
            }));
        }
        RedisNamespaceAdapter(inner)
    }
}

impl AdapterInner {
    fn subscribe(&self, channel: String, kind: Kind) {
        let route = Route {
            kind,
            adapter: self.me.clone(),
        };
        self.driver.subscribe(channel, route);
    }

    /// The sharded protocol's dynamic modes: a room gets its channel while it exists here.
    fn on_room_event(&self, event: &AdapterEvent) {
        match event {
            AdapterEvent::CreateRoom(room) => {
                if let Some(channel) = self.codec.room_channel(room, self.is_socket(room)) {
                    self.subscribe(channel, Kind::Shard);
                }
            }
            AdapterEvent::DeleteRoom(room) => {
                // A socket's own room is deleted after the socket: whether it was one is no
                // longer known, and unsubscribing a channel never subscribed does nothing.
                if let Some(channel) = self.codec.room_channel(room, false) {
                    self.driver.unsubscribe(&[channel]);
                }
            }
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

    fn publish(&self, encoded: Result<(String, Vec<u8>), EncodeError>) -> Result<(), AdapterError> {
        match encoded {
            Ok((channel, bytes)) => self
                .driver
                .publish(channel, bytes)
                .map_err(|_| AdapterError::Transport("the redis publish queue is full".into())),
            Err(EncodeError::Unsupported(_)) => Err(AdapterError::Unsupported(
                "this request in the sharded protocol",
            )),
            Err(error) => Err(AdapterError::Transport(Box::new(error))),
        }
    }

    fn send(&self, message: &Outgoing<'_>) -> Result<(), AdapterError> {
        self.publish(self.codec.encode(message))
    }

    /// Answers request `request_id` of server `to`; a failure is logged (the requester times
    /// out).
    fn reply(&self, to: Option<&str>, request_id: &str, reply: &Reply<'_>) {
        if let Err(error) = self.publish(self.codec.encode_reply(to, request_id, reply)) {
            tracing::warn!(%error, "answer to another server not published");
        }
    }

    /// A rooms operation: done here by `local` (the inner adapter, at once), and, unless
    /// `opts` is local, published to the other servers.
    fn also_remote(
        &self,
        local: BoxFuture<'static, Result<(), AdapterError>>,
        opts: &BroadcastOptions,
        message: &Outgoing<'_>,
    ) -> BoxFuture<'static, Result<(), AdapterError>> {
        let remote = (!opts.flags.local).then(|| self.send(message));
        Box::pin(async move {
            local.await?;
            remote.unwrap_or(Ok(()))
        })
    }

    /// How many servers the namespace has, this one included.
    async fn server_count(&self) -> Result<usize, AdapterError> {
        self.driver
            .subscribers(self.codec.count_channel())
            .await
            .map_err(|error| AdapterError::Transport(Box::new(error)))
    }

    /// How many servers the namespace has, asking again while Redis is away (as Node's
    /// client queues its commands until it is back); the caller bounds the wait.
    async fn server_count_when_reachable(&self) -> usize {
        loop {
            match self.server_count().await {
                Ok(count) => return count,
                Err(error) => {
                    tracing::debug!(%error, "server count unknown; asking again");
                    self.driver.ready().await;
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
            }
        }
    }

    /// Publishes the request `encode` makes (given its id) and folds every other server's
    /// answer into `T` with `take` (false: not an answer to this request). All of it, Redis
    /// outages included, within the requests timeout; past it, `AdapterError::Timeout(what)`
    /// with what was gathered by then.
    async fn request<T: Default + Send + 'static>(
        self: Arc<Self>,
        what: &'static str,
        encode: impl FnOnce(&Codec, &str) -> Result<(String, Vec<u8>), EncodeError>,
        take: fn(&mut T, Body) -> bool,
    ) -> Result<T, (AdapterError, T)> {
        let deadline = tokio::time::Instant::now() + self.driver.requests_timeout;
        let counted = tokio::time::timeout_at(deadline, self.server_count_when_reachable()).await;
        let expected = counted
            .map_err(|_| (AdapterError::Timeout(what), T::default()))?
            .saturating_sub(1);
        if expected == 0 {
            return Ok(T::default());
        }
        let request_id = self.codec.new_request_id();
        let gathered = Arc::new(Mutex::new(T::default()));
        let into = gathered.clone();
        let (done, answered) = oneshot::channel();
        self.pending.lock().insert(
            request_id.clone(),
            Pending {
                remaining: expected,
                take: Box::new(move |body| take(&mut into.lock(), body)),
                done: Some(done),
            },
        );
        if let Err(error) = self.publish(encode(&self.codec, &request_id)) {
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

    /// A message on one of the namespace's channels.
    pub(crate) fn on_message(&self, channel: &str, payload: &[u8]) {
        match self.codec.decode(channel, payload) {
            // This server already acted on its own messages.
            Ok(Some(incoming)) if incoming.uid.as_deref() == Some(self.driver.uid.as_str()) => {}
            Ok(Some(incoming)) => self.handle(incoming),
            Ok(None) => {}
            Err(error) => tracing::warn!(%channel, %error, "invalid message dropped"),
        }
    }

    fn handle(&self, Incoming { uid, body }: Incoming) {
        let from = uid.as_deref();
        match body {
            Body::Broadcast { packet, opts } => {
                if *packet.ns == *self.sockets.namespace() {
                    let _ = self.local.broadcast(&packet, &opts);
                }
            }
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
                    SocketOp::Join(room) => self.sockets.join(&ids, &[room]),
                    SocketOp::Leave(room) => self.sockets.leave(&ids, &[room]),
                    SocketOp::Disconnect(close) => self.sockets.disconnect(&ids, close),
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
            Body::Sockets { ref request_id, .. }
            | Body::Rooms { ref request_id, .. }
            | Body::ServerSideAnswer { ref request_id, .. } => {
                let request_id = request_id.clone();
                self.on_answer(&request_id, body);
            }
        }
    }

    fn to_ack_sink(&self, request_id: &str, ack: RemoteAck) {
        let sink = self.ack_requests.lock().get(request_id).cloned();
        if let Some(sink) = sink {
            sink(ack);
        }
    }

    /// One server's answer to one of this server's requests.
    fn on_answer(&self, request_id: &str, body: Body) {
        let mut pending = self.pending.lock();
        let Some(request) = pending.get_mut(request_id) else {
            return;
        };
        if !(request.take)(body) {
            return;
        }
        request.remaining = request.remaining.saturating_sub(1);
        if request.remaining == 0
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
            .unwrap_or(self.driver.requests_timeout)
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

impl Adapter for RedisNamespaceAdapter {
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
        let local = self.0.local.add_sockets(opts, rooms);
        self.0
            .also_remote(local, opts, &Outgoing::Join { opts, rooms })
    }

    fn del_sockets(
        &self,
        opts: &BroadcastOptions,
        rooms: &[String],
    ) -> BoxFuture<'static, Result<(), AdapterError>> {
        let local = self.0.local.del_sockets(opts, rooms);
        self.0
            .also_remote(local, opts, &Outgoing::Leave { opts, rooms })
    }

    fn disconnect_sockets(
        &self,
        opts: &BroadcastOptions,
        close: bool,
    ) -> BoxFuture<'static, Result<(), AdapterError>> {
        let local = self.0.local.disconnect_sockets(opts, close);
        self.0
            .also_remote(local, opts, &Outgoing::Disconnect { opts, close })
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
                    |codec, request_id| {
                        codec.encode(&Outgoing::Fetch {
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
                    |codec, request_id| codec.encode(&Outgoing::AllRooms { request_id }),
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
        data: &[belfry_core::proto::value::Value],
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
                    |codec, request_id| {
                        codec.encode(&Outgoing::ServerSide {
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
        let request_id = inner.codec.new_request_id();
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

    fn close(&self) {
        let inner = &self.0;
        let mut channels: Vec<String> = inner
            .codec
            .subscriptions()
            .into_iter()
            .map(|(channel, _)| channel)
            .collect();
        channels.extend(
            inner
                .local
                .rooms()
                .iter()
                .filter_map(|room| inner.codec.room_channel(room, inner.is_socket(room))),
        );
        inner.driver.unsubscribe(&channels);
    }
}
