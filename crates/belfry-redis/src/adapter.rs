//! The adapter of one namespace: rooms and local delivery by an inner [`LocalAdapter`], the
//! rest of the cluster reached through Redis with Node's messages.

use std::{
    collections::HashMap,
    sync::{Arc, Weak},
};

use belfry_core::{
    adapter::{
        Adapter, AdapterError, AdapterListener, BoxFuture, BroadcastOptions, LocalAdapter,
        LocalSockets, SocketInfo,
    },
    parser::Packet,
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

/// Node's request types (`RequestType` of `@socket.io/redis-adapter`).
mod request_type {
    pub(super) const REMOTE_JOIN: u64 = 2;
    pub(super) const REMOTE_LEAVE: u64 = 3;
    pub(super) const REMOTE_DISCONNECT: u64 = 4;
    pub(super) const REMOTE_FETCH: u64 = 5;
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
}

/// A `fetch_sockets` waiting for `remaining` responses.
struct Pending {
    remaining: usize,
    sockets: Vec<SocketInfo>,
    done: Option<oneshot::Sender<Vec<SocketInfo>>>,
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

#[derive(Deserialize)]
struct FetchResponse {
    #[serde(rename = "requestId")]
    request_id: String,
    sockets: Vec<SocketInfo>,
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
        self.driver
            .publish(
                self.channels.request.clone(),
                request.to_string().into_bytes(),
            )
            .map_err(|_| AdapterError::Transport("the redis publish queue is full".into()))
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
            // msgpack requests (broadcasts with acks) are not handled yet.
            tracing::debug!("msgpack request ignored");
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
        let opts = request.opts.map(BroadcastOptions::from);
        match (request.kind, opts) {
            (request_type::REMOTE_JOIN, Some(opts)) => {
                drop(self.local.add_sockets(&opts, &request.rooms));
            }
            (request_type::REMOTE_LEAVE, Some(opts)) => {
                drop(self.local.del_sockets(&opts, &request.rooms));
            }
            (request_type::REMOTE_DISCONNECT, Some(opts)) => {
                drop(self.local.disconnect_sockets(&opts, request.close));
            }
            (request_type::REMOTE_FETCH, Some(opts)) => {
                let Some(request_id) = request.request_id else {
                    return;
                };
                let ids: Vec<Sid> = self.local.sockets(&opts);
                let response = json!({
                    "requestId": request_id,
                    "sockets": self.sockets.describe(&ids),
                });
                let _ = self.driver.publish(
                    self.channels.response.clone(),
                    response.to_string().into_bytes(),
                );
            }
            (kind, _) => tracing::debug!(kind, "request type not handled"),
        }
    }

    /// A response to one of this server's requests.
    pub(crate) fn on_response(&self, payload: &[u8]) {
        if payload.first() != Some(&b'{') {
            return;
        }
        let Ok(response) = serde_json::from_slice::<FetchResponse>(payload) else {
            return;
        };
        let mut pending = self.pending.lock();
        let Some(request) = pending.get_mut(&response.request_id) else {
            return;
        };
        request.sockets.extend(response.sockets);
        request.remaining = request.remaining.saturating_sub(1);
        if request.remaining == 0
            && let Some(request) = pending.remove(&response.request_id)
            && let Some(done) = request.done
        {
            let _ = done.send(request.sockets);
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
        let message = wire::encode_broadcast(&self.0.driver.uid, packet, opts)
            .map_err(|error| AdapterError::Transport(Box::new(error)))?;
        self.0
            .driver
            .publish(self.0.channels.for_broadcast(opts), message)
            .map_err(|_| AdapterError::Transport("the redis publish queue is full".into()))?;
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
        let opts = opts.clone();
        Box::pin(async move {
            if opts.flags.local {
                return Ok(Vec::new());
            }
            let servers = server_count(&inner.driver, &inner.channels.request).await?;
            let expected = servers.saturating_sub(1);
            if expected == 0 {
                return Ok(Vec::new());
            }
            let request_id = crate::random_id(6);
            let (done, answered) = oneshot::channel();
            inner.pending.lock().insert(
                request_id.clone(),
                Pending {
                    remaining: expected,
                    sockets: Vec::new(),
                    done: Some(done),
                },
            );
            let sent = inner.publish_request(&json!({
                "uid": inner.driver.uid,
                "requestId": request_id,
                "type": request_type::REMOTE_FETCH,
                "opts": { "rooms": opts.rooms, "except": opts.except },
            }));
            if let Err(error) = sent {
                inner.pending.lock().remove(&request_id);
                return Err(error);
            }
            let answer = tokio::time::timeout(inner.driver.requests_timeout, answered).await;
            inner.pending.lock().remove(&request_id);
            match answer {
                Ok(Ok(sockets)) => Ok(sockets),
                _ => Err(AdapterError::Timeout("fetchSockets")),
            }
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
        ]);
    }
}
