//! A Postgres adapter for Belfry that speaks the wire protocol of Node's
//! `@socket.io/postgres-adapter` 0.5, so Belfry and Node servers share one cluster over the
//! database they already have, with no Redis to run.
//!
//! ```no_run
//! use belfry_postgres::PostgresAdapter;
//!
//! # async fn run() -> Result<(), belfry_postgres::PostgresConnectError> {
//! let postgres = PostgresAdapter::builder("postgres://app@127.0.0.1/app")
//!     .connect()
//!     .await?;
//! // Hand it to the server: `SocketIo::builder().adapter(factory).build_layer()` (the
//! // many-nodes guide of `belfry-io`).
//! let factory = postgres.factory();
//! # drop(factory);
//! # Ok(()) }
//! ```
//!
//! # How it talks
//!
//! Each namespace listens on the channel `<prefix>#<nsp>` (`socket.io#/` by default) and
//! publishes there with `pg_notify`, every message a JSON `{type, data, uid, nsp}` (the cluster
//! protocol of `belfry-cluster`). A message carrying binary, or whose JSON is too long for a
//! notification ([`PostgresAdapterBuilder::payload_threshold`]), is written to the
//! attachments table as msgpack and announced by its id; the receivers read it from there.
//! Every server deletes the table's rows older than
//! [`PostgresAdapterBuilder::cleanup_interval`]. Servers count each other by heartbeats
//! (every 5 s, dropped after 10 s of silence; an orderly close is seen at once).
//!
//! The table is the one Node's adapter documents; create it once:
//!
//! ```sql
//! CREATE TABLE socket_io_attachments (
//!     id          bigserial UNIQUE,
//!     created_at  timestamptz DEFAULT NOW(),
//!     payload     bytea
//! );
//! ```
//!
//! # Where it differs from Node's adapter
//!
//! On the wire it is the same; it behaves better where Node's has known flaws:
//! - losing the `LISTEN` connection never takes the process down: it reconnects (after 1 to
//!   3 s, as Node's tries to), listens again and announces itself again;
//! - it announces itself (`INITIAL_HEARTBEAT`) only once it listens, so the other servers'
//!   answers are not missed;
//! - messages are published in order, one after another, on one connection; notifications
//!   with attachments are read in the order they came;
//! - a message of exactly the threshold goes to the table (Node 0.5 fails on a payload of
//!   8,000 bytes), and a `fetchSockets` answer with binary in a socket's data too (Node sends
//!   it as JSON, the bytes turned into `{"type":"Buffer","data":[…]}`);
//! - channel names are quoted as identifiers (a namespace with a `"` in its name works);
//! - messages of `@socket.io/postgres-emitter` 0.1.1, which carry no `nsp` and which Node's
//!   adapter 0.5 drops, are delivered to the namespace of their channel.
#![forbid(unsafe_code)]

mod listener;
mod publisher;

use std::{
    collections::HashMap,
    fmt,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use belfry_cluster::{
    ClusterAdapter, ClusterMessage, ClusterOptions, Heartbeat, PublishQueue, Receiver, Transport,
    message::{EncodeError, Outgoing, Reply},
};
use belfry_core::adapter::{Adapter, AdapterError, BoxFuture, LocalSockets};
use parking_lot::Mutex;
use tokio::sync::{Notify, mpsc};

use crate::{
    listener::{ListenCommand, run_listener},
    publisher::{Publish, run_publisher},
};

/// The longest channel name Postgres takes (`NAMEDATALEN - 1`).
const MAX_CHANNEL: usize = 63;

/// How long Postgres may take to answer a health check, a connection attempt, or a statement
/// of the listening connection.
pub(crate) const HEALTH_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one statement of the publisher may take.
pub(crate) const STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);

/// A server's connections to the cluster's Postgres, shared by its namespaces. Cheap to
/// clone.
///
/// Plug it into Belfry with [`PostgresAdapter::factory`].
#[derive(Clone)]
pub struct PostgresAdapter {
    shared: Arc<Shared>,
}

impl fmt::Debug for PostgresAdapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresAdapter")
            .field("uid", &self.shared.uid)
            .field("channel_prefix", &self.shared.options.channel_prefix)
            .finish_non_exhaustive()
    }
}

/// Configures a [`PostgresAdapter`]; made by [`PostgresAdapter::builder`].
#[derive(Debug, Clone)]
pub struct PostgresAdapterBuilder {
    url: String,
    options: Options,
}

/// What the builder sets.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) channel_prefix: String,
    pub(crate) table_name: String,
    pub(crate) payload_threshold: usize,
    pub(crate) cleanup_interval: Duration,
    pub(crate) heartbeat: Heartbeat,
    pub(crate) requests_timeout: Duration,
    pub(crate) reconnect_min: Duration,
    pub(crate) reconnect_max: Duration,
    pub(crate) publish_queue: usize,
    pub(crate) health_interval: Duration,
}

impl PostgresAdapter {
    /// Starts configuring an adapter for the database at `url`
    /// (`postgres://user[:password]@host[:port]/database`, or the `key=value` form of
    /// libpq).
    pub fn builder(url: impl Into<String>) -> PostgresAdapterBuilder {
        PostgresAdapterBuilder {
            url: url.into(),
            options: Options {
                channel_prefix: "socket.io".to_owned(),
                table_name: "socket_io_attachments".to_owned(),
                payload_threshold: 8000,
                cleanup_interval: Duration::from_secs(30),
                heartbeat: Heartbeat::default(),
                requests_timeout: Duration::from_secs(5),
                reconnect_min: Duration::from_secs(1),
                reconnect_max: Duration::from_secs(3),
                publish_queue: 4096,
                health_interval: Duration::from_secs(3),
            },
        }
    }

    /// What [`SocketIoBuilder::adapter`](https://docs.rs/belfry) takes: makes each namespace's
    /// adapter over these connections.
    pub fn factory(
        &self,
    ) -> impl Fn(Arc<dyn LocalSockets>) -> Arc<dyn Adapter> + Send + Sync + 'static {
        let shared = self.shared.clone();
        move |sockets| {
            let channel = shared.channel(sockets.namespace());
            if channel.len() > MAX_CHANNEL {
                tracing::warn!(
                    %channel,
                    "a Postgres channel name is at most 63 bytes: this namespace's messages cannot be sent"
                );
            }
            let options = ClusterOptions::new(shared.uid.clone())
                .with_requests_timeout(shared.options.requests_timeout)
                .with_heartbeat(Some(shared.options.heartbeat));
            let nsp = sockets.namespace().to_owned();
            let shared = shared.clone();
            Arc::new(ClusterAdapter::new(sockets, options, move |receiver| {
                Arc::new(PostgresTransport {
                    channel: shared.channel(&nsp),
                    nsp,
                    shared,
                    receiver,
                    route: AtomicU64::new(0),
                })
            }))
        }
    }

    /// This server's id in the cluster (8 random bytes in hex, as Node's).
    pub fn uid(&self) -> &str {
        &self.shared.uid
    }

    /// True while the `LISTEN` connection is up.
    pub fn is_connected(&self) -> bool {
        self.shared.connected.load(Ordering::Acquire)
    }

    /// Resolves once the `LISTEN` connection is up and listens on the channel of every
    /// namespace created so far.
    ///
    /// Listening is asynchronous: a message another server sends before this server's
    /// namespace listens does not reach it. Await this after registering namespaces when
    /// that matters (a test, a server that must not miss anything before serving). The other
    /// servers learn of this one from its first heartbeat, sent once it listens.
    pub async fn ready(&self) {
        loop {
            let notified = self.shared.synced_notify.notified();
            if self.shared.is_synced() {
                return;
            }
            notified.await;
        }
    }
}

impl PostgresAdapterBuilder {
    /// The prefix of every channel (Node's `channelPrefix`, default `socket.io`): a
    /// namespace's channel is `<prefix>#<nsp>`. Servers of one cluster must agree on it.
    pub fn channel_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.options.channel_prefix = prefix.into();
        self
    }

    /// The attachments table (Node's `tableName`, default `socket_io_attachments`), written
    /// into the SQL as given (it may name a schema: `app.socket_io_attachments`).
    pub fn table_name(mut self, table: impl Into<String>) -> Self {
        self.options.table_name = table.into();
        self
    }

    /// From how many bytes of JSON a message goes through the attachments table (Node's
    /// `payloadThreshold`, default and most 8000: Postgres refuses notifications of 8000 bytes
    /// or more).
    pub fn payload_threshold(mut self, bytes: usize) -> Self {
        // Postgres refuses a notification of 8000 bytes or more.
        self.options.payload_threshold = bytes.min(8000);
        self
    }

    /// How often the attachments older than this are deleted (Node's `cleanupInterval`,
    /// default 30 s): a server that reads an attachment later than that misses the message.
    pub fn cleanup_interval(mut self, interval: Duration) -> Self {
        self.options.cleanup_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// How often this server sends its heartbeat, and how long a silent server is still
    /// counted (Node's `heartbeatInterval` and `heartbeatTimeout`, default 5 s and 10 s).
    pub fn heartbeat(mut self, interval: Duration, timeout: Duration) -> Self {
        self.options.heartbeat = Heartbeat::new(interval.max(Duration::from_millis(1)), timeout);
        self
    }

    /// How long a request to the other servers (`fetch_sockets`, server-side events with
    /// acks) waits for their answers (default 5 s).
    pub fn requests_timeout(mut self, timeout: Duration) -> Self {
        self.options.requests_timeout = timeout;
        self
    }

    /// How long to wait before reconnecting after a lost connection: a random time between
    /// `min` and `max` (default 1 s to 3 s, as Node's adapter).
    pub fn reconnect_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.options.reconnect_min = min.max(Duration::from_millis(1));
        self.options.reconnect_max = max.max(self.options.reconnect_min);
        self
    }

    /// How often the `LISTEN` connection checks that Postgres still answers (`SELECT 1`;
    /// default 3 s): a Postgres that hangs, or a network that drops packets without closing
    /// the connection, is noticed after one or two intervals, and the connection made again.
    /// Every statement of the publishing connection is bounded too (10 s).
    pub fn health_interval(mut self, interval: Duration) -> Self {
        self.options.health_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// How many messages may wait to be published (default 4096): while Postgres is away
    /// they wait and are published once it is back; past the bound a broadcast is delivered
    /// on this server only and fails with `AdapterError::PartialBroadcast`.
    pub fn publish_queue(mut self, messages: usize) -> Self {
        self.options.publish_queue = messages.max(1);
        self
    }

    /// Connects (one connection listens, one publishes) and starts their tasks.
    ///
    /// # Errors
    ///
    /// The URL is invalid or Postgres cannot be reached now. Later outages are handled by
    /// reconnecting.
    pub async fn connect(self) -> Result<PostgresAdapter, PostgresConnectError> {
        let config: tokio_postgres::Config = self
            .url
            .parse()
            .map_err(|error| PostgresConnectError(ConnectError::Postgres(error)))?;
        let listening = listener::connect(&config)
            .await
            .map_err(PostgresConnectError)?;
        let publishing = publisher::connect(&config)
            .await
            .map_err(PostgresConnectError)?;
        let (listen_tx, listen_rx) = mpsc::unbounded_channel();
        let (publish_queue, publish_rx) = PublishQueue::new(self.options.publish_queue, "postgres");
        let shared = Arc::new(Shared {
            uid: belfry_cluster::random_hex(8),
            options: self.options,
            routes: Mutex::new(HashMap::new()),
            version: AtomicU64::new(0),
            listen_tx,
            publish_queue,
            connected: AtomicBool::new(true),
            synced: AtomicBool::new(true),
            synced_notify: Notify::new(),
        });
        tokio::spawn(run_listener(
            Arc::downgrade(&shared),
            config.clone(),
            listening,
            listen_rx,
        ));
        tokio::spawn(run_publisher(
            shared.options.clone(),
            config,
            publishing,
            publish_rx,
        ));
        Ok(PostgresAdapter { shared })
    }
}

/// Postgres could not be reached (or the URL is invalid) when connecting.
#[derive(Debug, thiserror::Error)]
#[error("cannot connect to postgres")]
pub struct PostgresConnectError(#[source] ConnectError);

/// Why a connection could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// Postgres refused it, or the URL is invalid.
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
    /// Postgres did not answer in time (3 s).
    #[error("postgres did not answer in time")]
    TimedOut,
}

/// What one server's namespaces share.
pub(crate) struct Shared {
    pub(crate) uid: String,
    pub(crate) options: Options,
    /// The namespaces, by name: where their messages go, and the `version` that made the
    /// route (a namespace made again is announced again).
    pub(crate) routes: Mutex<HashMap<String, (Receiver, u64)>>,
    /// Counts the changes of `routes`: the listener knows whether they changed while it
    /// listened to them.
    pub(crate) version: AtomicU64,
    listen_tx: mpsc::UnboundedSender<ListenCommand>,
    publish_queue: PublishQueue<Publish>,
    pub(crate) connected: AtomicBool,
    /// True once every namespace's channel is listened to on the current connection.
    pub(crate) synced: AtomicBool,
    pub(crate) synced_notify: Notify,
}

impl Shared {
    /// The channel of namespace `nsp`.
    pub(crate) fn channel(&self, nsp: &str) -> String {
        format!("{}#{nsp}", self.options.channel_prefix)
    }

    /// The namespace of `channel`, when it is one of this prefix's.
    pub(crate) fn namespace_of<'a>(&self, channel: &'a str) -> Option<&'a str> {
        channel
            .strip_prefix(self.options.channel_prefix.as_str())
            .and_then(|rest| rest.strip_prefix('#'))
    }

    fn is_synced(&self) -> bool {
        self.connected.load(Ordering::Acquire) && self.synced.load(Ordering::Acquire)
    }

    /// Routes namespace `nsp` to `receiver` and listens on its channel; returns the version
    /// of the route.
    fn listen(&self, nsp: &str, receiver: Receiver) -> u64 {
        let mut routes = self.routes.lock();
        let version = self.version.fetch_add(1, Ordering::AcqRel) + 1;
        routes.insert(nsp.to_owned(), (receiver, version));
        drop(routes);
        self.synced.store(false, Ordering::Release);
        // A closed channel means the listener is gone with the adapter.
        let _ = self.listen_tx.send(());
        version
    }

    /// Forgets the route of namespace `nsp` made at `version` (not one made again since) and
    /// stops listening on its channel.
    fn unlisten(&self, nsp: &str, version: u64) {
        let mut routes = self.routes.lock();
        if routes.get(nsp).is_some_and(|(_, made)| *made == version) {
            routes.remove(nsp);
            self.version.fetch_add(1, Ordering::AcqRel);
            drop(routes);
            let _ = self.listen_tx.send(());
        }
    }

    /// Queues `message` for publication on `channel`.
    fn publish(&self, channel: &str, message: ClusterMessage) -> Result<(), AdapterError> {
        self.publish_queue.push(Publish {
            channel: channel.to_owned(),
            message,
        })
    }
}

/// The transport of one namespace.
struct PostgresTransport {
    shared: Arc<Shared>,
    nsp: String,
    channel: String,
    receiver: Receiver,
    /// The version of its route, once attached.
    route: AtomicU64,
}

impl PostgresTransport {
    fn publish(&self, message: Result<ClusterMessage, EncodeError>) -> Result<(), AdapterError> {
        let message = message
            .map_err(|error| error.into_adapter_error("this request in the cluster protocol"))?;
        self.shared.publish(&self.channel, message)
    }
}

impl Transport for PostgresTransport {
    fn send(&self, message: &Outgoing<'_>) -> Result<(), AdapterError> {
        self.publish(ClusterMessage::from_outgoing(
            &self.shared.uid,
            &self.nsp,
            message,
        ))
    }

    fn reply(
        &self,
        _to: Option<&str>,
        request_id: &str,
        reply: &Reply<'_>,
    ) -> Result<(), AdapterError> {
        // Answers go on the namespace's channel: every server reads them and keeps those to
        // its own requests.
        self.publish(ClusterMessage::from_reply(
            &self.shared.uid,
            &self.nsp,
            request_id,
            reply,
        ))
    }

    fn ready(&self) -> BoxFuture<'static, ()> {
        let shared = self.shared.clone();
        Box::pin(async move { PostgresAdapter { shared }.ready().await })
    }

    /// Listens once the adapter exists: it is announced once its channel is listened to.
    fn attached(&self) {
        let version = self.shared.listen(&self.nsp, self.receiver.clone());
        self.route.store(version, Ordering::Release);
    }

    fn close(&self, _rooms: &[(String, bool)]) {
        self.shared
            .unlisten(&self.nsp, self.route.load(Ordering::Acquire));
    }
}

/// A random duration between `min` and `max`.
pub(crate) fn jitter(min: Duration, max: Duration) -> Duration {
    let mut byte = [0u8; 2];
    getrandom::fill(&mut byte).expect("the OS random source is available");
    let spread = max.saturating_sub(min);
    min + spread.mul_f64(f64::from(u16::from_le_bytes(byte)) / f64::from(u16::MAX))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn jitter_stays_within_bounds() {
        for _ in 0..100 {
            let wait = jitter(Duration::from_secs(1), Duration::from_secs(3));
            assert!(wait >= Duration::from_secs(1) && wait <= Duration::from_secs(3));
        }
        assert_eq!(
            jitter(Duration::from_secs(2), Duration::from_secs(2)),
            Duration::from_secs(2)
        );
    }
}
