//! The subscriber: a connection in subscriber mode speaking RESP2 itself, and the task that
//! keeps it up (subscribing every route, handing messages to their adapters, checking health,
//! reconnecting).

use std::{
    collections::{HashMap, HashSet},
    sync::{Weak, atomic::Ordering},
    time::Duration,
};

use bytes::BytesMut;
use redis::Client;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    sync::mpsc,
};

use super::{Driver, HEALTH_TIMEOUT, Kind, timed_out, tls::Tls};
use crate::resp::{self, Frame};

pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A connection in subscriber mode, speaking RESP2 itself.
pub(super) struct Subscriber {
    reader: tokio::io::ReadHalf<Box<dyn Io>>,
    writer: tokio::io::WriteHalf<Box<dyn Io>>,
    buf: BytesMut,
}

impl Subscriber {
    /// Connects to the client's address and authenticates, within [`HEALTH_TIMEOUT`].
    pub(super) async fn open(client: &Client, tls: &Tls) -> redis::RedisResult<Subscriber> {
        tokio::time::timeout(HEALTH_TIMEOUT, Subscriber::open_now(client, tls))
            .await
            .unwrap_or_else(|_| Err(timed_out()))
    }

    async fn open_now(client: &Client, tls: &Tls) -> redis::RedisResult<Subscriber> {
        let info = client.get_connection_info();
        let stream = super::tls::connect(info.addr(), tls).await?;
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
pub(super) async fn run_subscriber(
    driver: Weak<Driver>,
    mut first: Option<Subscriber>,
    mut wake: mpsc::UnboundedReceiver<()>,
) {
    let Some(options) = driver.upgrade().map(|d| d.options) else {
        return;
    };
    let mut backoff = options.min_backoff;
    loop {
        let Some((client, tls)) = driver.upgrade().and_then(|d| match &d.backend {
            super::Backend::Single { client, tls } => Some((client.clone(), tls.clone())),
            super::Backend::Cluster { .. } => None,
        }) else {
            return;
        };
        let connection = match first.take() {
            Some(subscriber) => Ok(subscriber),
            None => Subscriber::open(&client, &tls).await,
        };
        drop(client);
        match connection {
            Ok(subscriber) => {
                let reason = serve(&driver, subscriber, &mut wake, &mut backoff).await;
                let Some(reason) = reason else { return };
                if let Some(strong) = driver.upgrade() {
                    strong.connected.store(false, Ordering::Release);
                    // Nothing is subscribed on the next connection yet: `ready` waits for it,
                    // and is woken when it is.
                    strong.synced.store(false, Ordering::Release);
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
