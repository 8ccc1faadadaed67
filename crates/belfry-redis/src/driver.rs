//! The Redis connections one server shares between its namespaces: a subscriber that
//! reconnects and resubscribes by itself, and a publisher.

use std::{
    collections::HashMap,
    sync::{
        Arc, Weak,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use futures_util::StreamExt;
use parking_lot::Mutex;
use redis::{Client, Msg, aio::MultiplexedConnection};
use tokio::sync::mpsc;

use crate::adapter::AdapterInner;

/// First wait before reconnecting; doubled after each failure up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between two reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How often the subscriber checks that Redis still answers.
const HEALTH_INTERVAL: Duration = Duration::from_secs(3);
/// How long Redis may take to answer a health check or a connection attempt.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(3);
/// Messages waiting for the publisher at most; past that, a broadcast fails at once.
const PUBLISH_QUEUE: usize = 4096;

/// What a subscription delivers to.
#[derive(Clone)]
pub(crate) struct Route {
    pub(crate) kind: RouteKind,
    pub(crate) adapter: Weak<AdapterInner>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RouteKind {
    /// A pattern over a namespace's broadcast channels.
    Broadcast,
    /// A namespace's request channel.
    Request,
    /// A namespace's response channel.
    Response,
}

/// The shared state of one server's Redis connections.
pub(crate) struct Driver {
    pub(crate) uid: String,
    pub(crate) key: String,
    pub(crate) requests_timeout: Duration,
    client: Client,
    /// Channels (or patterns) subscribed, and where their messages go.
    routes: Mutex<HashMap<String, Route>>,
    subscribe_tx: mpsc::UnboundedSender<()>,
    publish_tx: mpsc::Sender<(String, Vec<u8>)>,
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
        client: Client,
        key: String,
        requests_timeout: Duration,
    ) -> redis::RedisResult<Arc<Driver>> {
        let publisher = connect(&client).await?;
        let pubsub = client.get_async_pubsub().await?;
        let (subscribe_tx, subscribe_rx) = mpsc::unbounded_channel();
        let (publish_tx, publish_rx) = mpsc::channel(PUBLISH_QUEUE);
        let generation = Arc::new(AtomicU64::new(0));
        let driver = Arc::new(Driver {
            uid: crate::random_id(6),
            key,
            requests_timeout,
            client,
            routes: Mutex::new(HashMap::new()),
            subscribe_tx,
            publish_tx,
            connected: AtomicBool::new(true),
            generation: generation.clone(),
            synced: AtomicBool::new(true),
            synced_notify: tokio::sync::Notify::new(),
        });
        tokio::spawn(run_subscriber(
            Arc::downgrade(&driver),
            Some(pubsub),
            subscribe_rx,
        ));
        tokio::spawn(run_publisher(
            driver.client.clone(),
            Some(publisher),
            generation,
            publish_rx,
        ));
        Ok(driver)
    }

    /// Routes `channel` (a pattern for broadcasts) to `adapter` and subscribes to it.
    pub(crate) fn subscribe(&self, channel: String, route: Route) {
        self.routes.lock().insert(channel, route);
        self.synced.store(false, Ordering::Release);
        // The subscriber picks up every route it does not have yet; a closed channel means the
        // subscriber is gone with the driver.
        let _ = self.subscribe_tx.send(());
    }

    /// Forgets the routes of an adapter that closed.
    pub(crate) fn unsubscribe(&self, channels: &[String]) {
        let mut routes = self.routes.lock();
        for channel in channels {
            routes.remove(channel);
        }
    }

    /// Queues `payload` for publication on `channel`.
    pub(crate) fn publish(&self, channel: String, payload: Vec<u8>) -> Result<(), PublishError> {
        self.publish_tx
            .try_send((channel, payload))
            .map_err(|_| PublishError)
    }

    /// True while the subscriber is connected (the last health check passed).
    pub(crate) fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// Resolves once the subscriber is connected and subscribed to every route.
    pub(crate) async fn ready(&self) {
        loop {
            let notified = self.synced_notify.notified();
            if self.is_connected() && self.synced.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }

    /// A connection for a one-off command (`PUBSUB NUMSUB`).
    pub(crate) async fn command_connection(&self) -> redis::RedisResult<MultiplexedConnection> {
        connect(&self.client).await
    }

    fn dispatch(&self, msg: &Msg) {
        let key = if msg.from_pattern() {
            msg.get_pattern::<String>().ok()
        } else {
            Some(msg.get_channel_name().to_owned())
        };
        let route = key.and_then(|key| self.routes.lock().get(&key).cloned());
        let Some(route) = route else { return };
        let Some(adapter) = route.adapter.upgrade() else {
            return;
        };
        let payload = msg.get_payload_bytes();
        match route.kind {
            RouteKind::Broadcast => adapter.on_broadcast(msg.get_channel_name(), payload),
            RouteKind::Request => adapter.on_request(payload),
            RouteKind::Response => adapter.on_response(payload),
        }
    }
}

/// The publisher's queue is full (Redis is slower than the broadcasts, or away).
#[derive(Debug)]
pub(crate) struct PublishError;

async fn connect(client: &Client) -> redis::RedisResult<MultiplexedConnection> {
    match tokio::time::timeout(HEALTH_TIMEOUT, client.get_multiplexed_async_connection()).await {
        Ok(result) => result,
        Err(_) => Err(redis::RedisError::from((
            redis::ErrorKind::Io,
            "connection attempt timed out",
        ))),
    }
}

/// Keeps a subscription connection up: subscribes every route, hands messages to their
/// adapters, checks health, and on any failure reconnects (with backoff) and subscribes
/// everything again. Ends when the driver is dropped.
async fn run_subscriber(
    driver: Weak<Driver>,
    mut first: Option<redis::aio::PubSub>,
    mut wake: mpsc::UnboundedReceiver<()>,
) {
    let mut backoff = MIN_BACKOFF;
    loop {
        let Some(client) = driver.upgrade().map(|d| d.client.clone()) else {
            return;
        };
        let pubsub = match first.take() {
            Some(pubsub) => Ok(pubsub),
            None => match tokio::time::timeout(HEALTH_TIMEOUT, client.get_async_pubsub()).await {
                Ok(result) => result,
                Err(_) => Err(redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "connection attempt timed out",
                ))),
            },
        };
        match pubsub {
            Ok(pubsub) => {
                let (mut sink, mut stream) = pubsub.split();
                let mut subscribed: Vec<String> = Vec::new();
                let mut health = tokio::time::interval(HEALTH_INTERVAL);
                health.tick().await;
                let reason = loop {
                    // Subscribe whatever route is new (all of them after a reconnect).
                    let Some(strong) = driver.upgrade() else {
                        return;
                    };
                    let missing: Vec<(String, RouteKind)> = strong
                        .routes
                        .lock()
                        .iter()
                        .filter(|(channel, _)| !subscribed.contains(channel))
                        .map(|(channel, route)| (channel.clone(), route.kind))
                        .collect();
                    let mut failed = None;
                    for (channel, kind) in missing {
                        let result = match kind {
                            RouteKind::Broadcast => sink.psubscribe(&channel).await,
                            RouteKind::Request | RouteKind::Response => {
                                sink.subscribe(&channel).await
                            }
                        };
                        match result {
                            Ok(()) => subscribed.push(channel),
                            Err(error) => {
                                failed = Some(error.to_string());
                                break;
                            }
                        }
                    }
                    if let Some(error) = failed {
                        break error;
                    }
                    if !strong.connected.load(Ordering::Acquire) {
                        // Publishers renew their connection before anyone sees "connected".
                        strong.generation.fetch_add(1, Ordering::AcqRel);
                        strong.connected.store(true, Ordering::Release);
                        tracing::info!("redis subscription restored");
                    }
                    let all_subscribed = strong
                        .routes
                        .lock()
                        .keys()
                        .all(|channel| subscribed.contains(channel));
                    if all_subscribed && !strong.synced.swap(true, Ordering::AcqRel) {
                        strong.synced_notify.notify_waiters();
                    }
                    backoff = MIN_BACKOFF;
                    drop(strong);
                    tokio::select! {
                        msg = stream.next() => match msg {
                            Some(msg) => match driver.upgrade() {
                                Some(strong) => strong.dispatch(&msg),
                                None => return,
                            },
                            None => break "connection closed".to_owned(),
                        },
                        woke = wake.recv() => if woke.is_none() { return },
                        _ = health.tick() => {
                            match tokio::time::timeout(HEALTH_TIMEOUT, sink.ping::<()>()).await {
                                Ok(Ok(())) => {}
                                Ok(Err(error)) => break error.to_string(),
                                Err(_) => break "no answer to a health check".to_owned(),
                            }
                        }
                    }
                };
                if let Some(strong) = driver.upgrade() {
                    strong.connected.store(false, Ordering::Release);
                }
                tracing::warn!(%reason, "redis subscription lost; reconnecting");
            }
            Err(error) => tracing::debug!(%error, "redis unreachable"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Publishes queued messages in order, reconnecting when the connection fails. A message that
/// cannot be published (Redis away) is dropped with a log: other servers miss it, nobody gets
/// it twice. Ends when the driver is dropped.
async fn run_publisher(
    client: Client,
    mut connection: Option<MultiplexedConnection>,
    generation: Arc<AtomicU64>,
    mut queue: mpsc::Receiver<(String, Vec<u8>)>,
) {
    let mut connected_at = generation.load(Ordering::Acquire);
    while let Some((channel, payload)) = queue.recv().await {
        let current = generation.load(Ordering::Acquire);
        if connection.is_none() || connected_at != current {
            connection = connect(&client).await.ok();
            connected_at = current;
        }
        let Some(conn) = connection.as_mut() else {
            tracing::warn!(%channel, "redis unreachable; message not published");
            continue;
        };
        let sent = tokio::time::timeout(
            HEALTH_TIMEOUT,
            redis::cmd("PUBLISH")
                .arg(&channel)
                .arg(payload)
                .query_async::<()>(conn),
        )
        .await;
        match sent {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(%channel, %error, "publish failed");
                connection = None;
            }
            Err(_) => {
                tracing::warn!(%channel, "publish timed out");
                connection = None;
            }
        }
    }
}
