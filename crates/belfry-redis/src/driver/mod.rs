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
    pub(crate) adapter: Weak<AdapterInner>,
}

/// The shared state of one server's Redis connections.
pub(crate) struct Driver {
    pub(crate) uid: String,
    pub(crate) key: String,
    pub(crate) protocol: Protocol,
    pub(crate) requests_timeout: Duration,
    options: Options,
    client: Client,
    /// The connection for commands (publishing, counting servers), shared.
    commands: Arc<Commands>,
    /// Channels (or patterns) subscribed, and where their messages go.
    routes: Mutex<HashMap<String, Route>>,
    wake_tx: mpsc::UnboundedSender<()>,
    publish_tx: mpsc::Sender<(String, Vec<u8>)>,
    /// A message was refused because the publish queue was full, and none was since.
    dropping: AtomicBool,
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
        options: Options,
    ) -> redis::RedisResult<Arc<Driver>> {
        let generation = Arc::new(AtomicU64::new(0));
        let commands = Arc::new(Commands {
            client: client.clone(),
            generation: generation.clone(),
            connection: Mutex::new(None),
        });
        commands.get().await?;
        let subscriber = Subscriber::open(&client).await?;
        let (wake_tx, wake_rx) = mpsc::unbounded_channel();
        let (publish_tx, publish_rx) = mpsc::channel(options.publish_queue.max(1));
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
            options,
            client,
            commands: commands.clone(),
            routes: Mutex::new(HashMap::new()),
            wake_tx,
            publish_tx,
            dropping: AtomicBool::new(false),
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
            commands,
            protocol.publish_command(),
            options,
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

    /// Queues `payload` for publication on `channel`. While Redis is away, messages wait in
    /// the queue (up to its bound) and are published once it is back, as Node's Redis client
    /// queues its commands offline.
    pub(crate) fn publish(&self, channel: String, payload: Vec<u8>) -> Result<(), PublishError> {
        match self.publish_tx.try_send((channel, payload)) {
            Ok(()) => {
                if self.dropping.load(Ordering::Relaxed) {
                    self.dropping.store(false, Ordering::Relaxed);
                }
                Ok(())
            }
            Err(error) => {
                if !self.dropping.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        bound = self.options.publish_queue,
                        "redis publish queue full (redis away or too slow): messages are dropped"
                    );
                }
                let (channel, _) = error.into_inner();
                tracing::debug!(%channel, "message not queued for redis");
                Err(PublishError)
            }
        }
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
        let mut conn = self.commands.get().await?;
        let counted = tokio::time::timeout(
            HEALTH_TIMEOUT,
            redis::cmd("PUBSUB")
                .arg(self.protocol.numsub_command())
                .arg(channel)
                .query_async::<Vec<(String, usize)>>(&mut conn),
        )
        .await
        .unwrap_or_else(|_| Err(timed_out()));
        match counted {
            Ok(counts) => Ok(counts.first().map_or(0, |(_, count)| *count)),
            Err(error) => {
                self.commands.forget();
                Err(error)
            }
        }
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

/// One connection for every command of a server (publishing, counting the servers), as Node's
/// adapter uses its one publishing client: made when first needed, and again after a failure
/// or once the subscriber reconnected (Redis went away: the old one is presumed dead).
pub(crate) struct Commands {
    client: Client,
    /// The subscriber's reconnections.
    generation: Arc<AtomicU64>,
    connection: Mutex<Option<(u64, MultiplexedConnection)>>,
}

impl Commands {
    /// The shared connection (a handle to it: commands on it are multiplexed).
    async fn get(&self) -> redis::RedisResult<MultiplexedConnection> {
        let current = self.generation.load(Ordering::Acquire);
        if let Some((made, connection)) = &*self.connection.lock()
            && *made == current
        {
            return Ok(connection.clone());
        }
        let connection = connect(&self.client).await?;
        *self.connection.lock() = Some((current, connection.clone()));
        Ok(connection)
    }

    /// Drops the shared connection after a failure: the next command makes a new one.
    fn forget(&self) {
        *self.connection.lock() = None;
    }
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
    let Some(options) = driver.upgrade().map(|d| d.options) else {
        return;
    };
    let mut backoff = options.min_backoff;
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
                    // The command connection went with Redis, presumably: the next command
                    // connects again (and waits while it cannot) rather than fail on it.
                    strong.commands.forget();
                }
                tracing::warn!(%reason, "redis subscription lost; reconnecting");
            }
            Err(error) => tracing::debug!(%error, "redis unreachable"),
        }
        tokio::time::sleep(backoff).await;
        backoff = options.next_backoff(backoff);
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
    let options = driver.upgrade()?.options;
    let mut health = tokio::time::interval(options.health_interval);
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
        *backoff = options.min_backoff;
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

/// Publishes queued messages in order (`command`: `PUBLISH` or `SPUBLISH`) on the shared
/// command connection. While no connection can be made (Redis is away), the message at the
/// head waits (the queue behind it fills up to its bound) and is published once one is made
/// again, with the reconnection backoff between attempts. A message whose command failed on a
/// connection (it may have reached Redis) is not sent again, so that nobody gets it twice: it
/// is dropped with a log, as one Redis refused. Ends when the driver is dropped.
async fn run_publisher(
    commands: Arc<Commands>,
    command: &'static str,
    options: Options,
    mut queue: mpsc::Receiver<(String, Vec<u8>)>,
) {
    while let Some((channel, payload)) = queue.recv().await {
        let mut backoff = options.min_backoff;
        let mut waited = false;
        loop {
            let mut conn = match commands.get().await {
                Ok(conn) => conn,
                Err(error) => {
                    if !waited {
                        tracing::warn!(%error, "redis unreachable; messages wait to be published");
                        waited = true;
                    }
                    if queue.is_closed() {
                        return;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = options.next_backoff(backoff);
                    continue;
                }
            };
            let sent = tokio::time::timeout(
                HEALTH_TIMEOUT,
                redis::cmd(command)
                    .arg(&channel)
                    .arg(&payload)
                    .query_async::<()>(&mut conn),
            )
            .await;
            match sent {
                Ok(Ok(())) if waited => {
                    tracing::info!("redis is back: queued messages published");
                }
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    if error.is_io_error() || error.is_connection_dropped() {
                        commands.forget();
                    }
                    tracing::warn!(%channel, %error, "publish failed; message dropped");
                }
                Err(_) => {
                    commands.forget();
                    tracing::warn!(%channel, "publish timed out; message not sent again");
                }
            }
            break;
        }
    }
}
