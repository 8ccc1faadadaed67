//! A Redis adapter for Belfry that speaks the wire protocols of Node's
//! `@socket.io/redis-adapter` 8.x, the classic pub/sub one (`createAdapter`) and the sharded
//! one (`createShardedAdapter`, see [`RedisAdapterBuilder::sharded`], also on a Redis Cluster:
//! [`RedisAdapter::cluster_builder`]), and the protocol of `@socket.io/redis-streams-adapter`
//! 0.3, with connection state recovery across servers ([`streams`]), so Belfry and Node
//! servers share one cluster and `@socket.io/redis-emitter` publishes to Belfry servers. The
//! `tls` feature adds `rediss://`.
//!
//! ```no_run
//! use belfry_redis::RedisAdapter;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let redis = RedisAdapter::builder("redis://127.0.0.1:6379").connect().await?;
//! // Hand it to the server: `SocketIo::builder().adapter(factory).build_layer()` (the
//! // many-nodes guide of `belfry-io`). Broadcasts, rooms operations and
//! // `fetch_sockets` then reach every server.
//! let factory = redis.factory();
//! # drop(factory);
//! # Ok(()) }
//! ```
//!
//! Every cluster-wide operation of Node's adapter: broadcasts (to all, to rooms, with
//! `except`, `volatile` and `local`; binary intact), broadcasts with acks (each server's client
//! count, then every client's answer), `sockets_join`, `sockets_leave`, `disconnect_sockets`,
//! `fetch_sockets` (with each socket's data), `server_side_emit` with and without acks,
//! `all_rooms`, the server count (`PUBSUB NUMSUB`), Node's legacy request forms, messages from
//! the Redis emitter, reconnection with resubscription and a health check.
//!
//! # When Redis goes away
//!
//! Local delivery goes on. Messages for the other servers wait in the publish queue
//! ([`RedisAdapterBuilder::publish_queue`], 4096 by default) and are published once Redis is
//! back, as Node's Redis client queues its commands offline. They reach the servers that have
//! subscribed again by then: as with Node, a server that reconnects later than this one misses
//! them. Past the bound, a broadcast is delivered on this server only and fails at once with
//! `AdapterError::PartialBroadcast` (Belfry's `BroadcastOperator::emit` returns it in
//! `EmitError::Adapter`). A message whose command failed on a connection (it may have reached
//! Redis) is not sent again: nobody gets it twice.
//! Requests that wait for other servers (`fetch_sockets`, `server_side_emit_with_ack`,
//! `all_rooms`) wait for Redis to come back and fail with `AdapterError::Timeout` when the
//! requests timeout passes first, as they do when some server does not answer (see
//! [`belfry_core::adapter::AdapterError`]; a server-side emit keeps the answers that came).
//! The subscription checks Redis every 3 s ([`RedisAdapterBuilder::health_interval`]) and
//! reconnects after 50 ms, then 100 ms ([`RedisAdapterBuilder::reconnect_backoff`]),
//! subscribing every namespace again. One connection carries every command (publishing,
//! counting the servers), as Node's publishing client does; one more subscribes.
#![forbid(unsafe_code)]

mod codec;
mod driver;
mod resp;
pub mod sharded;
pub mod streams;
mod transport;
pub mod wire;

/// Entry points for the fuzz targets (`crates/belfry-redis/fuzz`), built only with
/// `--cfg fuzzing` (tests/fuzz.sh): not part of the API.
#[cfg(fuzzing)]
pub mod fuzzing {
    /// Reads a stream entry whose fields are `fields` (as any client of Redis could write it)
    /// and a stored session `session` as the streams protocol does: never panics; an entry
    /// read and written reads back, and is written again the same.
    pub fn stream_entry(fields: &[(String, Vec<u8>)], session: &str) {
        let map = fields
            .iter()
            .map(|(key, value)| (key.clone(), redis::Value::BulkString(value.clone())))
            .collect();
        let entry = redis::streams::StreamId {
            id: "1-0".to_owned(),
            map,
            milliseconds_elapsed_from_delivery: None,
            delivered_count: None,
        };
        if let Ok(Some(message)) = crate::streams::entry_message(&entry) {
            if let Ok(written) = crate::streams::entry_fields(&message) {
                let again = redis::streams::StreamId {
                    id: "1-0".to_owned(),
                    map: written
                        .iter()
                        .cloned()
                        .map(|(key, value)| (key.to_owned(), redis::Value::BulkString(value)))
                        .collect(),
                    milliseconds_elapsed_from_delivery: None,
                    delivered_count: None,
                };
                let back = crate::streams::entry_message(&again)
                    .expect("an entry written by Belfry reads")
                    .expect("with its namespace");
                // JSON may widen a number (f32 to f64) or normalize a float, so
                // what is compared is the entry written again.
                let rewritten = crate::streams::entry_fields(&back)
                    .expect("a message read from Belfry's entry writes");
                assert_eq!(rewritten, written);
            }
            let session = belfry_core::adapter::Session::new(
                "s".into(),
                "p".into(),
                vec!["r".to_owned()],
                belfry_core::proto::value::Value::Null,
            );
            let _ = crate::streams::missed_payload(&entry, &message.nsp, &session);
        }
        let _ = crate::streams::decode_session(session);
    }

    /// Reads RESP frames from `input` as the subscriber reads Redis's answers, split into reads
    /// at `splits`: never panics; what parses whole parses the same split anywhere; returns how
    /// many frames were read before the input ended or an error.
    pub fn read_frames(input: &[u8], splits: &[usize]) -> usize {
        let whole = frames(&[input]);
        let mut parts = Vec::new();
        let mut start = 0;
        for &at in splits {
            let at = at.min(input.len()).max(start);
            parts.push(&input[start..at]);
            start = at;
        }
        parts.push(&input[start..]);
        assert_eq!(frames(&parts), whole, "the same frames whatever the reads");
        whole.len()
    }

    /// The frames (as text) read from `parts` arriving one after another, up to an error.
    fn frames(parts: &[&[u8]]) -> Vec<String> {
        let mut buf = bytes::BytesMut::new();
        let mut out = Vec::new();
        for part in parts {
            buf.extend_from_slice(part);
            loop {
                match crate::resp::parse(&mut buf) {
                    Ok(Some(frame)) => out.push(format!("{frame:?}")),
                    Ok(None) => break,
                    Err(error) => {
                        out.push(format!("error {error:?}"));
                        return out;
                    }
                }
            }
        }
        out
    }
}

use std::{fmt, sync::Arc, time::Duration};

use belfry_cluster::{ClusterAdapter, ClusterOptions};
use belfry_core::adapter::{Adapter, LocalSockets};

pub use crate::sharded::SubscriptionMode;
use crate::streams::StreamsOptions;
use crate::{driver::Driver, transport::RedisTransport};

/// Which of Node's two Redis adapter protocols the servers of a cluster speak; they must all
/// speak the same.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Protocol {
    /// `createAdapter`: Redis pub/sub (`PUBLISH`, `PSUBSCRIBE`), any Redis version; what
    /// `@socket.io/redis-emitter` publishes to.
    #[default]
    Classic,
    /// `createShardedAdapter`: Redis 7 sharded pub/sub (`SPUBLISH`, `SSUBSCRIBE`), with rooms
    /// subscribed as the mode says.
    Sharded(SubscriptionMode),
    /// `@socket.io/redis-streams-adapter`: broadcasts in a Redis stream, requests over pub/sub,
    /// connection state recovery across servers (see [`streams`] and
    /// [`RedisAdapterBuilder::streams`]). Redis 5 or later.
    Streams,
}

impl Protocol {
    pub(crate) fn publish_command(self) -> &'static str {
        match self {
            Protocol::Classic | Protocol::Streams => "PUBLISH",
            Protocol::Sharded(_) => "SPUBLISH",
        }
    }

    pub(crate) fn numsub_command(self) -> &'static str {
        match self {
            Protocol::Classic | Protocol::Streams => "NUMSUB",
            Protocol::Sharded(_) => "SHARDNUMSUB",
        }
    }
}

/// A server's connection to the cluster's Redis, shared by its namespaces. Cheap to clone.
///
/// Plug it into Belfry with [`RedisAdapter::factory`].
#[derive(Clone)]
pub struct RedisAdapter {
    driver: Arc<Driver>,
}

impl fmt::Debug for RedisAdapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisAdapter")
            .field("uid", &self.driver.uid)
            .field("key", &self.driver.key)
            .finish_non_exhaustive()
    }
}

impl RedisAdapter {
    /// Starts configuring an adapter for the Redis server at `url`
    /// (`redis://[[user]:password@]host:port[/db]`, or `rediss://` with the `tls` feature).
    pub fn builder(url: impl Into<String>) -> RedisAdapterBuilder {
        RedisAdapterBuilder {
            url: url.into(),
            key: "socket.io".to_owned(),
            protocol: Protocol::Classic,
            requests_timeout: Duration::from_secs(5),
            streams: StreamsOptions::default(),
            root_certificates: None,
            cluster_nodes: None,
            options: driver::Options::default(),
        }
    }

    /// Starts configuring an adapter for the Redis Cluster whose nodes (some of them: the
    /// others are found from these) are at `nodes` (`redis://[user:password@]host:port`, or
    /// `rediss://`). The cluster speaks the sharded protocol only (as Node's
    /// `createShardedAdapter` on a cluster client): set it with
    /// [`RedisAdapterBuilder::sharded`]. Every shard channel is subscribed on the node that
    /// owns its slot, and again after failovers and reconnections.
    ///
    /// ```no_run
    /// use belfry_redis::{RedisAdapter, SubscriptionMode};
    /// # async fn run() -> Result<(), belfry_redis::RedisConnectError> {
    /// let redis = RedisAdapter::cluster_builder(["redis://10.0.0.1:6379", "redis://10.0.0.2:6379"])
    ///     .sharded(SubscriptionMode::Dynamic)
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn cluster_builder<N: Into<String>>(
        nodes: impl IntoIterator<Item = N>,
    ) -> RedisAdapterBuilder {
        let nodes: Vec<String> = nodes.into_iter().map(Into::into).collect();
        let mut builder = RedisAdapter::builder(nodes.first().cloned().unwrap_or_default());
        builder.cluster_nodes = Some(nodes);
        builder
    }

    /// What [`SocketIoBuilder::adapter`](https://docs.rs/belfry) takes: makes each namespace's
    /// adapter over this connection.
    pub fn factory(
        &self,
    ) -> impl Fn(Arc<dyn LocalSockets>) -> Arc<dyn Adapter> + Send + Sync + 'static {
        let driver = self.driver.clone();
        move |sockets| {
            let options = ClusterOptions::new(driver.uid.clone())
                .with_requests_timeout(driver.requests_timeout);
            let nsp = sockets.namespace().to_owned();
            let recovery = sockets
                .recovery()
                .map(|recovery| recovery.get_max_disconnection_duration());
            let driver = driver.clone();
            Arc::new(ClusterAdapter::new(sockets, options, move |receiver| {
                RedisTransport::new(driver, &nsp, recovery, receiver)
            }))
        }
    }

    /// This server's id in the cluster, of the form Node's adapter of the protocol uses: 6
    /// random alphanumerics (classic), 8 random bytes in hex (sharded, streams).
    pub fn uid(&self) -> &str {
        &self.driver.uid
    }

    /// True while the subscription to Redis is up (as of its last health check).
    pub fn is_connected(&self) -> bool {
        self.driver.is_connected()
    }

    /// Resolves once the subscription is up and covers every namespace created so far.
    ///
    /// Subscribing is asynchronous: a broadcast another server publishes before this server's
    /// namespace is subscribed does not reach it. Await this after registering namespaces
    /// when that matters (a server that must not miss anything before serving, a test).
    pub async fn ready(&self) {
        self.driver.ready().await;
    }
}

/// Configures a [`RedisAdapter`]; made by [`RedisAdapter::builder`].
#[derive(Debug, Clone)]
pub struct RedisAdapterBuilder {
    url: String,
    key: String,
    protocol: Protocol,
    requests_timeout: Duration,
    streams: StreamsOptions,
    root_certificates: Option<Vec<u8>>,
    /// A Redis Cluster: its first nodes.
    cluster_nodes: Option<Vec<String>>,
    options: driver::Options,
}

impl RedisAdapterBuilder {
    /// The prefix of every channel (Node's `key`, or `channelPrefix` of the sharded adapter and
    /// of the streams adapter; default `socket.io`): servers of one cluster must agree on it.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = key.into();
        self
    }

    /// Speaks the sharded protocol (Node's `createShardedAdapter(pub, sub, { subscriptionMode
    /// })`) instead of the classic one. Needs Redis 7 or later: one server, or a Redis Cluster
    /// ([`RedisAdapter::cluster_builder`]).
    ///
    /// ```no_run
    /// use belfry_redis::{RedisAdapter, SubscriptionMode};
    /// # async fn run() -> Result<(), belfry_redis::RedisConnectError> {
    /// let redis = RedisAdapter::builder("redis://127.0.0.1:6379")
    ///     .sharded(SubscriptionMode::Dynamic)
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn sharded(mut self, mode: SubscriptionMode) -> Self {
        self.protocol = Protocol::Sharded(mode);
        self
    }

    /// Speaks the protocol of Node's `@socket.io/redis-streams-adapter` 0.3 (`createAdapter`
    /// of that package) with `options`: broadcasts kept in a stream, and connection state
    /// recovery across servers when the server has it on (see [`streams`]).
    ///
    /// ```no_run
    /// use belfry_redis::{RedisAdapter, streams::StreamsOptions};
    /// # async fn run() -> Result<(), belfry_redis::RedisConnectError> {
    /// let redis = RedisAdapter::builder("redis://127.0.0.1:6379")
    ///     .streams(StreamsOptions::new().with_max_len(50_000))
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn streams(mut self, options: StreamsOptions) -> Self {
        self.protocol = Protocol::Streams;
        self.streams = options;
        self
    }

    /// Trusts these root certificates (PEM, one or several) for `rediss://` instead of the
    /// system's: a Redis whose certificate a private CA signed. Needs the `tls` feature
    /// (`connect` fails without it).
    pub fn root_certificates(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_certificates = Some(pem.into());
        self
    }

    /// Which protocol to speak ([`Protocol::Classic`] unless told).
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = protocol;
        self
    }

    /// How long a request to the other servers (`fetch_sockets`) waits for their
    /// answers (Node's `requestsTimeout`, default 5 s).
    pub fn requests_timeout(mut self, timeout: Duration) -> Self {
        self.requests_timeout = timeout;
        self
    }

    /// How long to wait before reconnecting to Redis after a failure: `min` first, doubled
    /// after each failed attempt up to `max` (default 50 ms to 100 ms: broadcasts flow again
    /// within a few hundred milliseconds of Redis coming back; Node's client waits 50 ms more
    /// after each attempt, up to 500 ms).
    pub fn reconnect_backoff(mut self, min: Duration, max: Duration) -> Self {
        // Never zero: a loop of connection attempts would spin while Redis refuses them.
        self.options.min_backoff = min.max(Duration::from_millis(1));
        self.options.max_backoff = max.max(self.options.min_backoff);
        self
    }

    /// How often the subscriber checks that Redis still answers (`PING`; default 3 s): a Redis
    /// that hangs without closing the connection is noticed after one or two intervals.
    pub fn health_interval(mut self, interval: Duration) -> Self {
        self.options.health_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// How many messages may wait to be published (default 4096). While Redis is away they
    /// wait, and are published once it is back (as Node's client queues its commands); past
    /// the bound a broadcast fails at once (delivered on this server only, it returns
    /// `AdapterError::PartialBroadcast`).
    pub fn publish_queue(mut self, messages: usize) -> Self {
        self.options.publish_queue = messages.max(1);
        self
    }

    /// Connects to Redis (a subscriber and a command connection) and starts their tasks.
    ///
    /// # Errors
    ///
    /// The URL is invalid or Redis cannot be reached now. Later outages are handled by
    /// reconnecting.
    pub async fn connect(self) -> Result<RedisAdapter, RedisConnectError> {
        let roots = self.root_certificates.as_deref();
        let backend = match &self.cluster_nodes {
            None => driver::client(&self.url, roots),
            Some(_) if !matches!(self.protocol, Protocol::Sharded(_)) => {
                Err(redis::RedisError::from((
                    redis::ErrorKind::InvalidClientConfig,
                    "on a Redis Cluster, the sharded protocol only (RedisAdapterBuilder::sharded)",
                )))
            }
            Some(nodes) => driver::cluster(nodes, roots),
        }
        .map_err(RedisConnectError)?;
        let driver = Driver::start(
            backend,
            self.key,
            self.protocol,
            self.requests_timeout,
            self.streams,
            self.options,
        )
        .await
        .map_err(RedisConnectError)?;
        Ok(RedisAdapter { driver })
    }
}

/// Redis could not be reached (or the URL is invalid) when connecting.
#[derive(Debug, thiserror::Error)]
#[error("cannot connect to redis")]
pub struct RedisConnectError(#[source] redis::RedisError);

/// A message from Redis that is not what the protocol says; dropped with a log.
pub use belfry_core::msgpack::WireError;

/// `len` random alphanumeric characters (Node's `uid2`), from the OS CSPRNG.
pub(crate) fn random_id(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = vec![0u8; len];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect()
}
