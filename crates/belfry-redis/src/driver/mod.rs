//! The Redis connections one server shares between its namespaces: the [`Driver`] (what the
//! adapters call: routes, the publish queue, readiness), its subscriber ([`subscriber`]: a
//! connection that reconnects and resubscribes by itself) and its command connection
//! ([`commands`]: publishing, counting the servers).

mod backend;
mod cluster_subscriber;
mod commands;
mod reader;
mod subscriber;
mod tls;

pub(crate) use self::backend::{Backend, Conn};
pub(crate) use self::commands::Command;
pub(crate) use self::tls::{client, cluster};

use std::{
    collections::HashMap,
    sync::{
        Arc, Weak,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use belfry_cluster::PublishQueue;
use belfry_core::adapter::AdapterError;
use parking_lot::Mutex;
use tokio::sync::mpsc;

use self::{
    commands::{Commands, run_publisher},
    reader::{StreamReader, run_reader},
    subscriber::{Subscriber, run_subscriber},
};
use crate::{Protocol, streams::StreamsOptions, transport::RedisTransport};

/// How long Redis may take to answer a health check, a write or a connection attempt.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(3);

/// How the connections to Redis behave when it goes away (see [`RedisAdapterBuilder`]).
///
/// [`RedisAdapterBuilder`]: crate::RedisAdapterBuilder
#[derive(Debug, Clone, Copy)]
pub(crate) struct Options {
    /// First wait before reconnecting; doubled after each failure up to `max_backoff`.
    pub(crate) min_backoff: Duration,
    /// Longest wait between two reconnection attempts.
    pub(crate) max_backoff: Duration,
    /// How often the subscriber checks that Redis still answers.
    pub(crate) health_interval: Duration,
    /// Messages waiting for the publisher at most (kept while Redis is away, published when
    /// it is back); past that, a broadcast fails at once.
    pub(crate) publish_queue: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            min_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(100),
            health_interval: Duration::from_secs(3),
            publish_queue: 4096,
        }
    }
}

impl Options {
    fn next_backoff(&self, backoff: Duration) -> Duration {
        (backoff * 2).min(self.max_backoff).max(self.min_backoff)
    }
}

/// How a channel is subscribed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `PSUBSCRIBE`: a pattern.
    Pattern,
    /// `SUBSCRIBE`: one channel.
    Channel,
    /// `SSUBSCRIBE`: one shard channel (Redis 7).
    Shard,
}

impl Kind {
    fn subscribe(self) -> &'static [u8] {
        match self {
            Kind::Pattern => b"PSUBSCRIBE",
            Kind::Channel => b"SUBSCRIBE",
            Kind::Shard => b"SSUBSCRIBE",
        }
    }

    fn unsubscribe(self) -> &'static [u8] {
        match self {
            Kind::Pattern => b"PUNSUBSCRIBE",
            Kind::Channel => b"UNSUBSCRIBE",
            Kind::Shard => b"SUNSUBSCRIBE",
        }
    }
}

/// What a subscription delivers to.
#[derive(Clone)]
pub(crate) struct Route {
    pub(crate) kind: Kind,
    pub(crate) transport: Weak<RedisTransport>,
}

/// The shared state of one server's Redis connections.
pub(crate) struct Driver {
    pub(crate) uid: String,
    pub(crate) key: String,
    pub(crate) protocol: Protocol,
    pub(crate) requests_timeout: Duration,
    /// The options of the streams protocol (when it is the one spoken).
    pub(crate) streams: StreamsOptions,
    options: Options,
    /// Where Redis is.
    backend: Backend,
    /// The streams read, and the namespaces reading each.
    readers: Mutex<HashMap<String, Arc<StreamReader>>>,
    /// The connection for commands (publishing, counting servers), shared.
    commands: Arc<Commands>,
    /// Channels (or patterns) subscribed, and where their messages go.
    routes: Mutex<HashMap<String, Route>>,
    wake_tx: mpsc::UnboundedSender<()>,
    publish_queue: PublishQueue<Command>,
    connected: AtomicBool,
    /// Counts the subscriber's reconnections: a publisher connection made before the last one
    /// is presumed dead (Redis went away) and replaced before it loses a message.
    generation: Arc<AtomicU64>,
    /// True once every route is subscribed on the current connection.
    synced: AtomicBool,
    synced_notify: tokio::sync::Notify,
}

impl Driver {
    /// Connects both sides (failing if Redis cannot be reached now) and starts their tasks.
    pub(crate) async fn start(
        backend: Backend,
        key: String,
        protocol: Protocol,
        requests_timeout: Duration,
        streams: StreamsOptions,
        options: Options,
    ) -> redis::RedisResult<Arc<Driver>> {
        let generation = Arc::new(AtomicU64::new(0));
        let commands = Arc::new(Commands::new(backend.clone(), generation.clone()));
        commands.get().await?;
        let subscriber = match &backend {
            Backend::Single { client, tls } => Some(Subscriber::open(client, tls).await?),
            Backend::Cluster { .. } => None,
        };
        let (wake_tx, wake_rx) = mpsc::unbounded_channel();
        let (publish_queue, publish_rx) = PublishQueue::new(options.publish_queue, "redis");
        let uid = match protocol {
            // Node's classic adapter: 6 alphanumerics; its cluster adapter: 8 random bytes in hex.
            Protocol::Classic => crate::random_id(6),
            Protocol::Sharded(_) | Protocol::Streams => belfry_cluster::random_hex(8),
        };
        let driver = Arc::new(Driver {
            uid,
            key,
            protocol,
            requests_timeout,
            streams,
            options,
            backend: backend.clone(),
            readers: Mutex::new(HashMap::new()),
            commands: commands.clone(),
            routes: Mutex::new(HashMap::new()),
            wake_tx,
            publish_queue,
            connected: AtomicBool::new(true),
            generation: generation.clone(),
            synced: AtomicBool::new(true),
            synced_notify: tokio::sync::Notify::new(),
        });
        match (subscriber, backend) {
            (Some(subscriber), _) => {
                tokio::spawn(run_subscriber(
                    Arc::downgrade(&driver),
                    Some(subscriber),
                    wake_rx,
                ));
            }
            (None, Backend::Cluster { nodes, roots, .. }) => {
                tokio::spawn(cluster_subscriber::run_cluster_subscriber(
                    Arc::downgrade(&driver),
                    nodes,
                    roots,
                    wake_rx,
                ));
            }
            (None, Backend::Single { .. }) => {
                unreachable!("a single server's subscriber is opened above")
            }
        }
        tokio::spawn(run_publisher(
            commands,
            protocol.publish_command(),
            options,
            publish_rx,
        ));
        Ok(driver)
    }

    /// Routes `channel` (or pattern) to `route.transport` and subscribes to it.
    pub(crate) fn subscribe(&self, channel: String, route: Route) {
        self.routes.lock().insert(channel, route);
        self.synced.store(false, Ordering::Release);
        // The subscriber picks up every route it does not have yet; a closed channel means the
        // subscriber is gone with the driver.
        let _ = self.wake_tx.send(());
    }

    /// Hands the entries of `stream` about namespace `nsp` to `transport` (streams protocol),
    /// starting the stream's reader when it is the first namespace to read it.
    pub(crate) fn read_stream(
        self: &Arc<Self>,
        stream: &str,
        nsp: &str,
        transport: Weak<RedisTransport>,
    ) {
        let Backend::Single { client, .. } = &self.backend else {
            tracing::error!("the streams protocol needs a single Redis server");
            return;
        };
        let mut readers = self.readers.lock();
        let reader = readers.entry(stream.to_owned()).or_insert_with(|| {
            let reader = Arc::new(StreamReader::default());
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                tracing::error!("a stream is read only within a Tokio runtime");
                return reader;
            };
            runtime.spawn(run_reader(
                Arc::downgrade(self),
                client.clone(),
                stream.to_owned(),
                reader.clone(),
                self.options,
            ));
            reader
        });
        reader.namespaces.lock().insert(nsp.to_owned(), transport);
    }

    /// Stops handing the entries of `stream` about `nsp` to `owner` (not to a transport of
    /// a namespace made again since).
    pub(crate) fn stop_reading(&self, stream: &str, nsp: &str, owner: &Weak<RedisTransport>) {
        if let Some(reader) = self.readers.lock().get(stream) {
            let mut namespaces = reader.namespaces.lock();
            if namespaces
                .get(nsp)
                .is_some_and(|transport| transport.ptr_eq(owner))
            {
                namespaces.remove(nsp);
            }
        }
    }

    /// The shared command connection.
    pub(crate) async fn connection(&self) -> redis::RedisResult<Conn> {
        self.commands.get().await
    }

    /// Forgets `channels` routed to `owner` (not those a namespace made again routes to its
    /// own transport since) and unsubscribes from them.
    pub(crate) fn unsubscribe(&self, channels: &[String], owner: &Weak<RedisTransport>) {
        let mut routes = self.routes.lock();
        for channel in channels {
            if routes
                .get(channel)
                .is_some_and(|route| route.transport.ptr_eq(owner))
            {
                routes.remove(channel);
            }
        }
        drop(routes);
        let _ = self.wake_tx.send(());
    }

    /// Queues `payload` for publication on `channel`. While Redis is away, messages wait in
    /// the queue (up to its bound) and are published once it is back, as Node's Redis client
    /// queues its commands offline.
    pub(crate) fn publish(&self, channel: String, payload: Vec<u8>) -> Result<(), AdapterError> {
        self.queue(Command::Publish { channel, payload })
    }

    /// Queues `command` behind the messages waiting to be published (see
    /// [`Driver::publish`]).
    pub(crate) fn queue(&self, command: Command) -> Result<(), AdapterError> {
        self.publish_queue.push(command)
    }

    /// True while the subscriber is connected (the last health check passed).
    pub(crate) fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// Resolves once the subscriber is connected and subscribed to every route, and every
    /// stream reader knows where it starts.
    pub(crate) async fn ready(&self) {
        loop {
            let notified = self.synced_notify.notified();
            let readers_started = self
                .readers
                .lock()
                .values()
                .all(|reader| reader.started.load(Ordering::Acquire));
            if self.is_connected() && self.synced.load(Ordering::Acquire) && readers_started {
                return;
            }
            notified.await;
        }
    }

    /// How many servers subscribe `channel` (`PUBSUB NUMSUB`, or `SHARDNUMSUB` for the sharded
    /// protocol).
    pub(crate) async fn subscribers(&self, channel: &str) -> redis::RedisResult<usize> {
        let mut conn = self.commands.get().await?;
        let counted = tokio::time::timeout(
            HEALTH_TIMEOUT,
            redis::cmd("PUBSUB")
                .arg(self.protocol.numsub_command())
                .arg(channel)
                .query_async::<redis::Value>(&mut conn),
        )
        .await
        .unwrap_or_else(|_| Err(timed_out()));
        match counted {
            Ok(counts) => Ok(count_of(&counts)),
            Err(error) => {
                self.commands.forget();
                Err(error)
            }
        }
    }

    /// Hands a message to the namespace transport of its route (`key`: the channel, or the pattern that
    /// matched it).
    fn dispatch(&self, key: &[u8], channel: &[u8], payload: &[u8]) {
        let (Ok(key), Ok(channel)) = (std::str::from_utf8(key), std::str::from_utf8(channel))
        else {
            return;
        };
        let transport = self
            .routes
            .lock()
            .get(key)
            .and_then(|route| route.transport.upgrade());
        if let Some(transport) = transport {
            transport.on_message(channel, payload);
        }
    }
}

/// The count of the first channel of a `PUBSUB NUMSUB` answer: `[channel, count, ...]` from a
/// server, a map `{channel: count}` from the cluster client (which adds up every node's).
fn count_of(answer: &redis::Value) -> usize {
    let count = match answer {
        redis::Value::Array(items) => items.get(1),
        redis::Value::Map(entries) => entries.first().map(|(_, count)| count),
        _ => None,
    };
    match count {
        Some(redis::Value::Int(count)) => usize::try_from(*count).unwrap_or(0),
        _ => 0,
    }
}

fn timed_out() -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::Io, "redis did not answer in time"))
}
