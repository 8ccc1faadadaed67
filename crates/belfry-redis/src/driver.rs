//! The Redis connections one server shares between its namespaces: a subscriber that
//! reconnects and resubscribes by itself, and a publisher.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Weak,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::BytesMut;
use parking_lot::Mutex;
use redis::{Client, ConnectionAddr, aio::MultiplexedConnection};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    sync::mpsc,
};

use crate::{
    Protocol,
    adapter::AdapterInner,
    resp::{self, Frame},
};

/// First wait before reconnecting; doubled after each failure up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between two reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How often the subscriber checks that Redis still answers.
const HEALTH_INTERVAL: Duration = Duration::from_secs(3);
/// How long Redis may take to answer a health check, a write or a connection attempt.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(3);
/// Messages waiting for the publisher at most; past that, a broadcast fails at once.
const PUBLISH_QUEUE: usize = 4096;

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
    pub(crate) adapter: Weak<AdapterInner>,
}

/// The shared state of one server's Redis connections.
pub(crate) struct Driver {
    pub(crate) uid: String,
    pub(crate) key: String,
    pub(crate) protocol: Protocol,
    pub(crate) requests_timeout: Duration,
    client: Client,
    /// Channels (or patterns) subscribed, and where their messages go.
    routes: Mutex<HashMap<String, Route>>,
    wake_tx: mpsc::UnboundedSender<()>,
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
        protocol: Protocol,
        requests_timeout: Duration,
    ) -> redis::RedisResult<Arc<Driver>> {
        let publisher = connect(&client).await?;
        let subscriber = Subscriber::open(&client).await?;
        let (wake_tx, wake_rx) = mpsc::unbounded_channel();
        let (publish_tx, publish_rx) = mpsc::channel(PUBLISH_QUEUE);
        let generation = Arc::new(AtomicU64::new(0));
        let uid = match protocol {
            // Node's classic adapter: 6 alphanumerics; its cluster adapter: 8 random bytes in hex.
            Protocol::Classic => crate::random_id(6),
            Protocol::Sharded(_) => crate::random_hex(8),
        };
        let driver = Arc::new(Driver {
            uid,
            key,
            protocol,
            requests_timeout,
            client,
            routes: Mutex::new(HashMap::new()),
            wake_tx,
            publish_tx,
            connected: AtomicBool::new(true),
            generation: generation.clone(),
            synced: AtomicBool::new(true),
            synced_notify: tokio::sync::Notify::new(),
        });
        tokio::spawn(run_subscriber(
            Arc::downgrade(&driver),
            Some(subscriber),
            wake_rx,
        ));
        tokio::spawn(run_publisher(
            driver.client.clone(),
            protocol.publish_command(),
            Some(publisher),
            generation,
            publish_rx,
        ));
        Ok(driver)
    }

    /// Routes `channel` (or pattern) to `route.adapter` and subscribes to it.
    pub(crate) fn subscribe(&self, channel: String, route: Route) {
        self.routes.lock().insert(channel, route);
        self.synced.store(false, Ordering::Release);
        // The subscriber picks up every route it does not have yet; a closed channel means the
        // subscriber is gone with the driver.
        let _ = self.wake_tx.send(());
    }

    /// Forgets `channels` and unsubscribes from them.
    pub(crate) fn unsubscribe(&self, channels: &[String]) {
        let mut routes = self.routes.lock();
        for channel in channels {
            routes.remove(channel);
        }
        drop(routes);
        let _ = self.wake_tx.send(());
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

    /// How many servers subscribe `channel` (`PUBSUB NUMSUB`, or `SHARDNUMSUB` for the sharded
    /// protocol).
    pub(crate) async fn subscribers(&self, channel: &str) -> redis::RedisResult<usize> {
        let mut conn = connect(&self.client).await?;
        let counts: Vec<(String, usize)> = redis::cmd("PUBSUB")
            .arg(self.protocol.numsub_command())
            .arg(channel)
            .query_async(&mut conn)
            .await?;
        Ok(counts.first().map_or(0, |(_, count)| *count))
    }

    /// Hands a message to the adapter of its route (`key`: the channel, or the pattern that
    /// matched it).
    fn dispatch(&self, key: &[u8], channel: &[u8], payload: &[u8]) {
        let (Ok(key), Ok(channel)) = (std::str::from_utf8(key), std::str::from_utf8(channel))
        else {
            return;
        };
        let adapter = self
            .routes
            .lock()
            .get(key)
            .and_then(|route| route.adapter.upgrade());
        if let Some(adapter) = adapter {
            adapter.on_message(channel, payload);
        }
    }
}

/// The publisher's queue is full (Redis is slower than the broadcasts, or away).
#[derive(Debug)]
pub(crate) struct PublishError;

fn timed_out() -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::Io, "redis did not answer in time"))
}

async fn connect(client: &Client) -> redis::RedisResult<MultiplexedConnection> {
    tokio::time::timeout(HEALTH_TIMEOUT, client.get_multiplexed_async_connection())
        .await
        .unwrap_or_else(|_| Err(timed_out()))
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A connection in subscriber mode, speaking RESP2 itself.
struct Subscriber {
    reader: tokio::io::ReadHalf<Box<dyn Io>>,
    writer: tokio::io::WriteHalf<Box<dyn Io>>,
    buf: BytesMut,
}

impl Subscriber {
    /// Connects to the client's address and authenticates, within [`HEALTH_TIMEOUT`].
    async fn open(client: &Client) -> redis::RedisResult<Subscriber> {
        tokio::time::timeout(HEALTH_TIMEOUT, Subscriber::open_now(client))
            .await
            .unwrap_or_else(|_| Err(timed_out()))
    }

    async fn open_now(client: &Client) -> redis::RedisResult<Subscriber> {
        let info = client.get_connection_info();
        let stream: Box<dyn Io> = match info.addr() {
            ConnectionAddr::Tcp(host, port) => {
                let stream = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
                stream.set_nodelay(true)?;
                Box::new(stream)
            }
            ConnectionAddr::Unix(path) => Box::new(tokio::net::UnixStream::connect(path).await?),
            _ => {
                return Err(redis::RedisError::from((
                    redis::ErrorKind::InvalidClientConfig,
                    "the subscriber connects over TCP or a Unix socket only (no TLS)",
                )));
            }
        };
        let (reader, writer) = tokio::io::split(stream);
        let mut subscriber = Subscriber {
            reader,
            writer,
            buf: BytesMut::with_capacity(16 * 1024),
        };
        let settings = info.redis_settings();
        if let Some(password) = settings.password() {
            let mut args: Vec<&[u8]> = vec![b"AUTH"];
            if let Some(username) = settings.username() {
                args.push(username.as_bytes());
            }
            args.push(password.as_bytes());
            subscriber.send(&args).await?;
            match subscriber.next_frame().await? {
                Frame::Simple(_) => {}
                other => {
                    return Err(redis::RedisError::from((
                        redis::ErrorKind::AuthenticationFailed,
                        "redis refused the credentials",
                        format!("{other:?}"),
                    )));
                }
            }
        }
        Ok(subscriber)
    }

    async fn send(&mut self, args: &[&[u8]]) -> std::io::Result<()> {
        let mut out = Vec::with_capacity(64);
        resp::write_command(&mut out, args);
        self.write(&out).await
    }

    async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match tokio::time::timeout(HEALTH_TIMEOUT, self.writer.write_all(bytes)).await {
            Ok(result) => result,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "redis does not take what is written",
            )),
        }
    }

    /// The next frame, reading as needed. Cancel-safe: a frame is only taken off the buffer
    /// once whole.
    async fn next_frame(&mut self) -> std::io::Result<Frame> {
        loop {
            if let Some(frame) = resp::parse(&mut self.buf).map_err(std::io::Error::other)? {
                return Ok(frame);
            }
            if self.reader.read_buf(&mut self.buf).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
    }
}

/// Keeps a subscription connection up: subscribes every route, unsubscribes what was
/// forgotten, hands messages to their adapters, checks health, and on any failure reconnects
/// (with backoff) and subscribes everything again. Ends when the driver is dropped.
async fn run_subscriber(
    driver: Weak<Driver>,
    mut first: Option<Subscriber>,
    mut wake: mpsc::UnboundedReceiver<()>,
) {
    let mut backoff = MIN_BACKOFF;
    loop {
        let Some(client) = driver.upgrade().map(|d| d.client.clone()) else {
            return;
        };
        let connection = match first.take() {
            Some(subscriber) => Ok(subscriber),
            None => Subscriber::open(&client).await,
        };
        drop(client);
        match connection {
            Ok(subscriber) => {
                let reason = serve(&driver, subscriber, &mut wake, &mut backoff).await;
                let Some(reason) = reason else { return };
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

/// Runs one subscriber connection until it fails (`Some(why)`) or the driver is gone (`None`).
async fn serve(
    driver: &Weak<Driver>,
    mut subscriber: Subscriber,
    wake: &mut mpsc::UnboundedReceiver<()>,
    backoff: &mut Duration,
) -> Option<String> {
    // Channels asked for on this connection, and those Redis confirmed.
    let mut asked: HashMap<String, Kind> = HashMap::new();
    let mut confirmed: HashSet<String> = HashSet::new();
    let mut awaiting_pong = false;
    let mut health = tokio::time::interval(HEALTH_INTERVAL);
    health.tick().await;
    // Routes changed, or Redis confirmed a subscription: compare routes and subscriptions
    // again. Not on every message: a namespace may have thousands of room channels.
    let mut dirty = true;
    loop {
        if dirty {
            dirty = false;
            let strong = driver.upgrade()?;
            if let Err(error) = sync(&strong, &mut subscriber, &mut asked, &confirmed).await {
                return Some(error.to_string());
            }
        }
        *backoff = MIN_BACKOFF;
        tokio::select! {
            frame = subscriber.next_frame() => match frame {
                Ok(frame) => {
                    let strong = driver.upgrade()?;
                    match on_frame(&strong, frame, &mut confirmed) {
                        Heard::Pong => awaiting_pong = false,
                        Heard::Confirmation => dirty = true,
                        Heard::Other => {}
                    }
                }
                Err(error) => return Some(error.to_string()),
            },
            woke = wake.recv() => {
                woke?;
                dirty = true;
            }
            _ = health.tick() => {
                if awaiting_pong {
                    return Some("no answer to a health check".to_owned());
                }
                if let Err(error) = subscriber.send(&[b"PING"]).await {
                    return Some(error.to_string());
                }
                awaiting_pong = true;
            }
        }
    }
}

/// Subscribes what is new in the routes (everything after a reconnect), unsubscribes what is
/// gone, and tells who waits once Redis confirmed every route.
async fn sync(
    driver: &Driver,
    subscriber: &mut Subscriber,
    asked: &mut HashMap<String, Kind>,
    confirmed: &HashSet<String>,
) -> std::io::Result<()> {
    let (missing, gone) = {
        let routes = driver.routes.lock();
        let missing: Vec<(String, Kind)> = routes
            .iter()
            .filter(|(channel, _)| !asked.contains_key(*channel))
            .map(|(channel, route)| (channel.clone(), route.kind))
            .collect();
        let gone: Vec<(String, Kind)> = asked
            .iter()
            .filter(|(channel, _)| !routes.contains_key(*channel))
            .map(|(channel, kind)| (channel.clone(), *kind))
            .collect();
        (missing, gone)
    };
    let mut out = Vec::new();
    for (channel, kind) in &missing {
        resp::write_command(&mut out, &[kind.subscribe(), channel.as_bytes()]);
    }
    for (channel, kind) in &gone {
        resp::write_command(&mut out, &[kind.unsubscribe(), channel.as_bytes()]);
    }
    if !out.is_empty() {
        subscriber.write(&out).await?;
        for (channel, _) in gone {
            asked.remove(&channel);
        }
        asked.extend(missing);
    }
    if !driver.connected.load(Ordering::Acquire) {
        // Publishers renew their connection before anyone sees "connected".
        driver.generation.fetch_add(1, Ordering::AcqRel);
        driver.connected.store(true, Ordering::Release);
        tracing::info!("redis subscription restored");
    }
    let all_confirmed = driver
        .routes
        .lock()
        .keys()
        .all(|channel| confirmed.contains(channel));
    if all_confirmed && !driver.synced.swap(true, Ordering::AcqRel) {
        driver.synced_notify.notify_waiters();
    }
    Ok(())
}

enum Heard {
    Pong,
    /// Redis confirmed a subscription.
    Confirmation,
    Other,
}

/// Acts on one frame of a subscriber connection.
fn on_frame(driver: &Driver, frame: Frame, confirmed: &mut HashSet<String>) -> Heard {
    let items = match frame {
        Frame::Array(Some(items)) => items,
        Frame::Simple(status) if status.eq_ignore_ascii_case("pong") => return Heard::Pong,
        Frame::Error(error) => {
            // A Redis older than 7 answers SSUBSCRIBE so: the sharded protocol needs 7.
            tracing::error!(%error, "redis refused a subscription command");
            return Heard::Other;
        }
        _ => return Heard::Other,
    };
    let part = |i: usize| items.get(i).and_then(Frame::bytes);
    let Some(kind) = part(0) else {
        return Heard::Other;
    };
    match kind.to_ascii_lowercase().as_slice() {
        b"message" | b"smessage" => {
            if let (Some(channel), Some(payload)) = (part(1), part(2)) {
                driver.dispatch(channel, channel, payload);
            }
        }
        b"pmessage" => {
            if let (Some(pattern), Some(channel), Some(payload)) = (part(1), part(2), part(3)) {
                driver.dispatch(pattern, channel, payload);
            }
        }
        b"subscribe" | b"psubscribe" | b"ssubscribe" => {
            if let Some(channel) = part(1) {
                confirmed.insert(String::from_utf8_lossy(channel).into_owned());
                return Heard::Confirmation;
            }
        }
        b"unsubscribe" | b"punsubscribe" | b"sunsubscribe" => {
            if let Some(channel) = part(1) {
                confirmed.remove(String::from_utf8_lossy(channel).as_ref());
            }
        }
        b"pong" => return Heard::Pong,
        _ => {}
    }
    Heard::Other
}

/// Publishes queued messages in order (`command`: `PUBLISH` or `SPUBLISH`), reconnecting when
/// the connection fails. A message that cannot be published (Redis away) is dropped with a
/// log: other servers miss it, nobody gets it twice. Ends when the driver is dropped.
async fn run_publisher(
    client: Client,
    command: &'static str,
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
            redis::cmd(command)
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
