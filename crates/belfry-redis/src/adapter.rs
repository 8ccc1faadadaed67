//! The adapter of one namespace: rooms and local delivery by an inner [`LocalAdapter`], the
//! rest of the cluster reached through Redis with Node's messages.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Weak},
    time::Duration,
};

use belfry_core::{
    adapter::{
        Adapter, AdapterError, AdapterListener, BoxFuture, BroadcastOptions, LocalAckSink,
        LocalAdapter, LocalSockets, RemoteAck, RemoteAckSink, ServerSideReply, SocketInfo,
    },
    parser::{Packet, Payload},
};
use belfry_engine::Sid;
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::oneshot;

use crate::{
    driver::{Driver, Route, RouteKind},
    wire::{self, Channels},
};

/// The longest a server keeps waiting for its clients' answers to another server's broadcast
/// with acks (the requester's timeout, when it is shorter).
const MAX_ACK_WAIT: Duration = Duration::from_secs(60);

/// Node's request types (`RequestType` of `@socket.io/redis-adapter`).
mod request_type {
    pub(super) const SOCKETS: u64 = 0;
    pub(super) const ALL_ROOMS: u64 = 1;
    pub(super) const REMOTE_JOIN: u64 = 2;
    pub(super) const REMOTE_LEAVE: u64 = 3;
    pub(super) const REMOTE_DISCONNECT: u64 = 4;
    pub(super) const REMOTE_FETCH: u64 = 5;
    pub(super) const SERVER_SIDE_EMIT: u64 = 6;
}

/// A namespace's adapter over Redis, made by [`RedisAdapter::factory`](crate::RedisAdapter).
pub(crate) struct RedisNamespaceAdapter(Arc<AdapterInner>);

pub(crate) struct AdapterInner {
    local: LocalAdapter,
    sockets: Arc<dyn LocalSockets>,
    driver: Arc<Driver>,
    channels: Channels,
    /// Requests waiting for other servers' responses, by request id.
    pending: Mutex<HashMap<String, Pending>>,
    /// This server's broadcasts with acks still listening for answers, by request id.
    ack_requests: Mutex<HashMap<String, RemoteAckSink>>,
}

/// A request waiting for `remaining` responses.
struct Pending {
    remaining: usize,
    collected: Collected,
    done: Option<oneshot::Sender<Collected>>,
}

/// What the responses to one request add up to.
enum Collected {
    /// `fetch_sockets`: the sockets described.
    Sockets(Vec<SocketInfo>),
    /// `all_rooms`: the rooms, each once.
    Rooms(HashSet<String>),
    /// `server_side_emit` with an ack: one answer per server.
    Answers(Vec<serde_json::Value>),
}

/// A request from another server, as JSON (the fields of the types Belfry answers).
#[derive(Deserialize)]
struct Request {
    #[serde(rename = "type")]
    kind: u64,
    #[serde(default)]
    uid: Option<String>,
    #[serde(default, rename = "requestId")]
    request_id: Option<String>,
    #[serde(default)]
    opts: Option<RequestOpts>,
    #[serde(default)]
    rooms: Vec<String>,
    #[serde(default)]
    close: bool,
    /// Server-side events: `[event, ...args]`.
    #[serde(default)]
    data: Vec<serde_json::Value>,
    /// The legacy forms of types 2–4: one socket...
    #[serde(default)]
    sid: Option<String>,
    /// ...and one room.
    #[serde(default)]
    room: Option<String>,
}

#[derive(Deserialize)]
struct RequestOpts {
    #[serde(default)]
    rooms: Vec<String>,
    #[serde(default)]
    except: Vec<String>,
}

impl From<RequestOpts> for BroadcastOptions {
    fn from(opts: RequestOpts) -> BroadcastOptions {
        BroadcastOptions {
            rooms: opts.rooms,
            except: opts.except,
            ..BroadcastOptions::default()
        }
    }
}

/// A response to a request, as JSON.
#[derive(Deserialize)]
struct Response {
    #[serde(rename = "requestId")]
    request_id: String,
    #[serde(default, rename = "type")]
    kind: Option<u64>,
    #[serde(default, rename = "clientCount")]
    client_count: Option<usize>,
    #[serde(default)]
    sockets: Option<serde_json::Value>,
    #[serde(default)]
    rooms: Option<Vec<String>>,
    #[serde(default)]
    data: serde_json::Value,
}

impl RedisNamespaceAdapter {
    pub(crate) fn new(driver: Arc<Driver>, sockets: Arc<dyn LocalSockets>) -> Self {
        let channels = Channels::new(&driver.key, sockets.namespace());
        let inner = Arc::new(AdapterInner {
            local: LocalAdapter::new(sockets.clone()),
            sockets,
            driver: driver.clone(),
            channels,
            pending: Mutex::new(HashMap::new()),
            ack_requests: Mutex::new(HashMap::new()),
        });
        let weak = Arc::downgrade(&inner);
        let route = |kind| Route {
            kind,
            adapter: Weak::clone(&weak),
        };
        driver.subscribe(
            inner.channels.broadcast_pattern(),
            route(RouteKind::Broadcast),
        );
        driver.subscribe(inner.channels.request.clone(), route(RouteKind::Request));
        driver.subscribe(inner.channels.response.clone(), route(RouteKind::Response));
        // Node servers with `publishOnSpecificResponseChannel` answer there.
        driver.subscribe(
            inner.channels.response_to(&driver.uid),
            route(RouteKind::Response),
        );
        RedisNamespaceAdapter(inner)
    }
}

impl AdapterInner {
    /// A rooms operation: done here by `local` (the inner adapter, at once), and, unless
    /// `opts` is local, published to the other servers as Node's request `kind`
    /// `{uid, type, opts, <field>}`.
    fn also_remote(
        &self,
        local: BoxFuture<'static, Result<(), AdapterError>>,
        opts: &BroadcastOptions,
        kind: u64,
        (field, value): (&str, serde_json::Value),
    ) -> BoxFuture<'static, Result<(), AdapterError>> {
        let remote = (!opts.flags.local).then(|| {
            let mut request = json!({
                "uid": self.driver.uid,
                "type": kind,
                "opts": { "rooms": opts.rooms, "except": opts.except },
            });
            request[field] = value;
            self.publish_request(&request)
        });
        Box::pin(async move {
            local.await?;
            remote.unwrap_or(Ok(()))
        })
    }

    fn publish_request(&self, request: &serde_json::Value) -> Result<(), AdapterError> {
        self.publish(
            self.channels.request.clone(),
            request.to_string().into_bytes(),
        )
    }

    fn publish_response(&self, response: Vec<u8>) -> Result<(), AdapterError> {
        self.publish(self.channels.response.clone(), response)
    }

    fn publish(&self, channel: String, message: Vec<u8>) -> Result<(), AdapterError> {
        self.driver
            .publish(channel, message)
            .map_err(|_| AdapterError::Transport("the redis publish queue is full".into()))
    }

    /// Publishes a request `{uid, requestId, type, ...fields}` and waits for the answers of
    /// every other server, at most the requests timeout; `what` names it in the timeout error.
    async fn request(
        self: Arc<Self>,
        kind: u64,
        fields: serde_json::Value,
        collected: Collected,
        what: &'static str,
    ) -> Result<Collected, AdapterError> {
        let servers = server_count(&self.driver, &self.channels.request).await?;
        let expected = servers.saturating_sub(1);
        if expected == 0 {
            return Ok(collected);
        }
        let request_id = crate::random_id(6);
        let (done, answered) = oneshot::channel();
        self.pending.lock().insert(
            request_id.clone(),
            Pending {
                remaining: expected,
                collected,
                done: Some(done),
            },
        );
        let mut request = json!({
            "uid": self.driver.uid,
            "requestId": request_id,
            "type": kind,
        });
        if let (Some(request), serde_json::Value::Object(fields)) =
            (request.as_object_mut(), fields)
        {
            request.extend(fields);
        }
        if let Err(error) = self.publish_request(&request) {
            self.pending.lock().remove(&request_id);
            return Err(error);
        }
        let answer = tokio::time::timeout(self.driver.requests_timeout, answered).await;
        self.pending.lock().remove(&request_id);
        match answer {
            Ok(Ok(collected)) => Ok(collected),
            _ => Err(AdapterError::Timeout(what)),
        }
    }

    /// A broadcast from another server (or an emitter): delivered to this server's sockets.
    pub(crate) fn on_broadcast(&self, channel: &str, payload: &[u8]) {
        if self.channels.room_of(channel).is_none() {
            return;
        }
        match wire::decode_broadcast(payload) {
            Ok(broadcast) => {
                if broadcast.uid == self.driver.uid
                    || *broadcast.packet.ns != *self.sockets.namespace()
                {
                    return;
                }
                let _ = self.local.broadcast(&broadcast.packet, &broadcast.opts);
            }
            Err(error) => tracing::warn!(%channel, %error, "invalid broadcast dropped"),
        }
    }

    /// A request from another server: acted on, and answered when it asks for an answer.
    pub(crate) fn on_request(&self, payload: &[u8]) {
        if payload.first() != Some(&b'{') {
            self.on_msgpack_request(payload);
            return;
        }
        let request: Request = match serde_json::from_slice(payload) {
            Ok(request) => request,
            Err(error) => {
                tracing::warn!(%error, "invalid request dropped");
                return;
            }
        };
        // This server already acted on its own requests.
        if request.uid.as_deref() == Some(self.driver.uid.as_str()) {
            return;
        }
        let Request {
            kind,
            request_id,
            opts,
            rooms,
            close,
            data,
            sid,
            room,
            ..
        } = request;
        let answer = |response: serde_json::Value| {
            let _ = self.publish_response(response.to_string().into_bytes());
        };
        match (kind, opts.map(BroadcastOptions::from), request_id) {
            (request_type::REMOTE_JOIN, Some(opts), _) => {
                drop(self.local.add_sockets(&opts, &rooms));
            }
            (request_type::REMOTE_LEAVE, Some(opts), _) => {
                drop(self.local.del_sockets(&opts, &rooms));
            }
            (request_type::REMOTE_DISCONNECT, Some(opts), _) => {
                drop(self.local.disconnect_sockets(&opts, close));
            }
            // The legacy forms: one socket, answered when it is here.
            (
                request_type::REMOTE_JOIN
                | request_type::REMOTE_LEAVE
                | request_type::REMOTE_DISCONNECT,
                None,
                Some(request_id),
            ) => {
                let Some(sid) = sid.map(Sid::from) else {
                    return;
                };
                if !self.local.socket_rooms(&sid).contains(&sid.to_string()) {
                    return;
                }
                let ids = [sid];
                match (kind, room) {
                    (request_type::REMOTE_JOIN, Some(room)) => self.sockets.join(&ids, &[room]),
                    (request_type::REMOTE_LEAVE, Some(room)) => self.sockets.leave(&ids, &[room]),
                    (request_type::REMOTE_DISCONNECT, _) => self.sockets.disconnect(&ids, close),
                    _ => return,
                }
                answer(json!({ "requestId": request_id }));
            }
            (request_type::SOCKETS, _, Some(request_id)) => {
                let opts = BroadcastOptions {
                    rooms,
                    ..BroadcastOptions::default()
                };
                let ids: Vec<String> = self
                    .local
                    .sockets(&opts)
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                answer(json!({ "requestId": request_id, "sockets": ids }));
            }
            (request_type::ALL_ROOMS, _, Some(request_id)) => {
                answer(json!({ "requestId": request_id, "rooms": self.local.rooms() }));
            }
            (request_type::REMOTE_FETCH, Some(opts), Some(request_id)) => {
                let ids: Vec<Sid> = self.local.sockets(&opts);
                answer(json!({
                    "requestId": request_id,
                    "sockets": self.sockets.describe(&ids),
                }));
            }
            (request_type::SERVER_SIDE_EMIT, _, request_id) => {
                let reply = request_id.map(|request_id| {
                    let inner = self.driver.clone();
                    let channel = self.channels.response.clone();
                    Box::new(move |data: serde_json::Value| {
                        let response = json!({
                            "type": request_type::SERVER_SIDE_EMIT,
                            "requestId": request_id,
                            "data": data,
                        });
                        if inner
                            .publish(channel, response.to_string().into_bytes())
                            .is_err()
                        {
                            tracing::warn!("server-side answer not published: queue full");
                        }
                    }) as ServerSideReply
                });
                self.sockets.server_side_event(data, reply);
            }
            (kind, _, _) => tracing::debug!(kind, "request not handled"),
        }
    }

    /// A msgpack request: a broadcast with acks from another server, sent to the sockets here;
    /// the client count and every answer go back on the response channel.
    fn on_msgpack_request(&self, payload: &[u8]) {
        let request = match wire::decode_ack_request(payload) {
            Ok(Some(request)) => request,
            Ok(None) => {
                tracing::debug!("msgpack request of another type ignored");
                return;
            }
            Err(error) => {
                tracing::warn!(%error, "invalid request dropped");
                return;
            }
        };
        if request.uid == self.driver.uid {
            return;
        }
        let timeout = request
            .opts
            .flags
            .timeout
            .unwrap_or(self.driver.requests_timeout)
            .min(MAX_ACK_WAIT);
        let ids = self.local.sockets(&request.opts);
        let driver = self.driver.clone();
        let channel = self.channels.response.clone();
        let request_id = request.request_id.clone();
        let on_answer: LocalAckSink =
            Arc::new(
                move |answer| match wire::encode_ack_answer(&request_id, &answer) {
                    Ok(message) => {
                        if driver.publish(channel.clone(), message).is_err() {
                            tracing::warn!("ack answer not published: queue full");
                        }
                    }
                    Err(error) => tracing::warn!(%error, "ack answer not encodable"),
                },
            );
        let count = self
            .sockets
            .send_with_ack(&ids, &request.payload, timeout, on_answer);
        let _ = self.publish_response(
            json!({
                "type": wire::BROADCAST_CLIENT_COUNT,
                "requestId": request.request_id,
                "clientCount": count,
            })
            .to_string()
            .into_bytes(),
        );
    }

    /// A response to one of this server's requests.
    pub(crate) fn on_response(&self, payload: &[u8]) {
        if payload.first() != Some(&b'{') {
            match wire::decode_ack_answer(payload) {
                Ok(Some((request_id, answer))) => {
                    let sink = self.ack_requests.lock().get(&request_id).cloned();
                    if let Some(sink) = sink {
                        sink(RemoteAck::Answer(answer));
                    }
                }
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, "invalid response dropped"),
            }
            return;
        }
        let Ok(response) = serde_json::from_slice::<Response>(payload) else {
            return;
        };
        if response.kind == Some(wire::BROADCAST_CLIENT_COUNT) {
            let sink = self.ack_requests.lock().get(&response.request_id).cloned();
            if let (Some(sink), Some(count)) = (sink, response.client_count) {
                sink(RemoteAck::ClientCount(count));
            }
            return;
        }
        let mut pending = self.pending.lock();
        let Some(request) = pending.get_mut(&response.request_id) else {
            return;
        };
        let added = match &mut request.collected {
            Collected::Sockets(sockets) => response
                .sockets
                .and_then(|list| serde_json::from_value::<Vec<SocketInfo>>(list).ok())
                .map(|list| sockets.extend(list))
                .is_some(),
            Collected::Rooms(rooms) => response.rooms.map(|list| rooms.extend(list)).is_some(),
            Collected::Answers(answers) => {
                let is_answer = response.kind == Some(request_type::SERVER_SIDE_EMIT);
                if is_answer {
                    answers.push(response.data);
                }
                is_answer
            }
        };
        if !added {
            return;
        }
        request.remaining = request.remaining.saturating_sub(1);
        if request.remaining == 0
            && let Some(request) = pending.remove(&response.request_id)
            && let Some(done) = request.done
        {
            let _ = done.send(request.collected);
        }
    }
}

async fn server_count(driver: &Driver, channel: &str) -> Result<usize, AdapterError> {
    let mut conn = driver
        .command_connection()
        .await
        .map_err(|error| AdapterError::Transport(Box::new(error)))?;
    let counts: Vec<(String, usize)> = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query_async(&mut conn)
        .await
        .map_err(|error| AdapterError::Transport(Box::new(error)))?;
    Ok(counts.first().map_or(0, |(_, count)| *count))
}

impl Adapter for RedisNamespaceAdapter {
    fn add_all(&self, id: &Sid, rooms: &[String]) {
        self.0.local.add_all(id, rooms);
    }

    fn del(&self, id: &Sid, room: &str) {
        self.0.local.del(id, room);
    }

    fn del_all(&self, id: &Sid) {
        self.0.local.del_all(id);
    }

    fn rooms(&self) -> Vec<String> {
        self.0.local.rooms()
    }

    fn socket_rooms(&self, id: &Sid) -> Vec<String> {
        self.0.local.socket_rooms(id)
    }

    fn sockets(&self, opts: &BroadcastOptions) -> Vec<Sid> {
        self.0.local.sockets(opts)
    }

    fn broadcast(&self, packet: &Packet, opts: &BroadcastOptions) -> Result<usize, AdapterError> {
        let delivered = self.0.local.broadcast(packet, opts)?;
        if opts.flags.local {
            return Ok(delivered);
        }
        // Local delivery happened: a failure to reach the other servers is logged, and the
        // count of this server's recipients still returned.
        match wire::encode_broadcast(&self.0.driver.uid, packet, opts) {
            Ok(message) => {
                if self
                    .0
                    .driver
                    .publish(self.0.channels.for_broadcast(opts), message)
                    .is_err()
                {
                    tracing::warn!("broadcast not published: the redis publish queue is full");
                }
            }
            Err(error) => tracing::warn!(%error, "broadcast not encodable for other servers"),
        }
        Ok(delivered)
    }

    fn add_sockets(
        &self,
        opts: &BroadcastOptions,
        rooms: &[String],
    ) -> BoxFuture<'static, Result<(), AdapterError>> {
        let local = self.0.local.add_sockets(opts, rooms);
        self.0.also_remote(
            local,
            opts,
            request_type::REMOTE_JOIN,
            ("rooms", json!(rooms)),
        )
    }

    fn del_sockets(
        &self,
        opts: &BroadcastOptions,
        rooms: &[String],
    ) -> BoxFuture<'static, Result<(), AdapterError>> {
        let local = self.0.local.del_sockets(opts, rooms);
        self.0.also_remote(
            local,
            opts,
            request_type::REMOTE_LEAVE,
            ("rooms", json!(rooms)),
        )
    }

    fn disconnect_sockets(
        &self,
        opts: &BroadcastOptions,
        close: bool,
    ) -> BoxFuture<'static, Result<(), AdapterError>> {
        let local = self.0.local.disconnect_sockets(opts, close);
        self.0.also_remote(
            local,
            opts,
            request_type::REMOTE_DISCONNECT,
            ("close", json!(close)),
        )
    }

    fn fetch_remote_sockets(
        &self,
        opts: &BroadcastOptions,
    ) -> BoxFuture<'static, Result<Vec<SocketInfo>, AdapterError>> {
        let inner = self.0.clone();
        let local = opts.flags.local;
        let fields = json!({ "opts": { "rooms": opts.rooms, "except": opts.except } });
        Box::pin(async move {
            if local {
                return Ok(Vec::new());
            }
            let collected = inner
                .request(
                    request_type::REMOTE_FETCH,
                    fields,
                    Collected::Sockets(Vec::new()),
                    "fetchSockets",
                )
                .await?;
            Ok(match collected {
                Collected::Sockets(sockets) => sockets,
                _ => Vec::new(),
            })
        })
    }

    fn all_rooms(&self) -> BoxFuture<'static, Result<Vec<String>, AdapterError>> {
        let inner = self.0.clone();
        let mine: HashSet<String> = self.0.local.rooms().into_iter().collect();
        Box::pin(async move {
            let collected = inner
                .request(
                    request_type::ALL_ROOMS,
                    json!({}),
                    Collected::Rooms(mine),
                    "allRooms",
                )
                .await?;
            Ok(match collected {
                Collected::Rooms(rooms) => rooms.into_iter().collect(),
                _ => Vec::new(),
            })
        })
    }

    fn server_side_emit(
        &self,
        data: &[serde_json::Value],
        ack: bool,
    ) -> BoxFuture<'static, Result<Vec<serde_json::Value>, AdapterError>> {
        let inner = self.0.clone();
        if !ack {
            let sent = inner.publish_request(&json!({
                "uid": inner.driver.uid,
                "type": request_type::SERVER_SIDE_EMIT,
                "data": data,
            }));
            return Box::pin(async move { sent.map(|()| Vec::new()) });
        }
        let fields = json!({ "data": data });
        Box::pin(async move {
            let collected = inner
                .request(
                    request_type::SERVER_SIDE_EMIT,
                    fields,
                    Collected::Answers(Vec::new()),
                    "serverSideEmit",
                )
                .await?;
            Ok(match collected {
                Collected::Answers(answers) => answers,
                _ => Vec::new(),
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
        let request_id = crate::random_id(6);
        let mut opts = opts.clone();
        // Node's receivers read how long to keep listening from the flags.
        opts.flags.timeout = Some(timeout);
        let sent = wire::encode_ack_request(
            &inner.driver.uid,
            &request_id,
            inner.sockets.namespace(),
            payload,
            &opts,
        )
        .map_err(|error| AdapterError::Transport(Box::new(error)))
        .and_then(|message| {
            inner.ack_requests.lock().insert(request_id.clone(), sink);
            inner.publish(inner.channels.request.clone(), message)
        });
        if let Err(error) = sent {
            inner.ack_requests.lock().remove(&request_id);
            return Box::pin(async move { Err(error) });
        }
        // Node's rule: the answers are listened to until the timeout, then forgotten.
        let forget = Arc::downgrade(&inner);
        let id = request_id;
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            if let Some(inner) = forget.upgrade() {
                inner.ack_requests.lock().remove(&id);
            }
        });
        Box::pin(async move {
            let servers = server_count(&inner.driver, &inner.channels.request).await?;
            Ok(servers.saturating_sub(1))
        })
    }

    fn server_count(&self) -> BoxFuture<'static, usize> {
        let inner = self.0.clone();
        Box::pin(async move {
            server_count(&inner.driver, &inner.channels.request)
                .await
                .unwrap_or(1)
                .max(1)
        })
    }

    fn on_event(&self, listener: AdapterListener) {
        self.0.local.on_event(listener);
    }

    fn close(&self) {
        let channels = &self.0.channels;
        self.0.driver.unsubscribe(&[
            channels.broadcast_pattern(),
            channels.request.clone(),
            channels.response.clone(),
            channels.response_to(&self.0.driver.uid),
        ]);
    }
}
