//! The command connection one server shares (publishing, counting the servers) and the task
//! that publishes the queued messages on it.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};

use super::{
    HEALTH_TIMEOUT, Options,
    backend::{Backend, Conn},
};

/// One connection for every command of a server (publishing, counting the servers), as Node's
/// adapter uses its one publishing client: made when first needed, and again after a failure
/// or once the subscriber reconnected (Redis went away: the old one is presumed dead).
pub(crate) struct Commands {
    backend: Backend,
    /// The subscriber's reconnections.
    generation: Arc<AtomicU64>,
    connection: Mutex<Option<(u64, Conn)>>,
}

impl Commands {
    /// No connection yet: the first command makes it.
    pub(super) fn new(backend: Backend, generation: Arc<AtomicU64>) -> Commands {
        Commands {
            backend,
            generation,
            connection: Mutex::new(None),
        }
    }

    /// The shared connection (a handle to it: commands on it are multiplexed).
    pub(super) async fn get(&self) -> redis::RedisResult<Conn> {
        let current = self.generation.load(Ordering::Acquire);
        if let Some((made, connection)) = &*self.connection.lock()
            && *made == current
        {
            return Ok(connection.clone());
        }
        let connection = self.backend.connect().await?;
        *self.connection.lock() = Some((current, connection.clone()));
        Ok(connection)
    }

    /// Drops the shared connection after a failure: the next command makes a new one.
    pub(super) fn forget(&self) {
        *self.connection.lock() = None;
    }
}

/// A command of the queue: what servers send each other, in order.
pub(crate) enum Command {
    /// `PUBLISH` (or `SPUBLISH`) `payload` on `channel`.
    Publish { channel: String, payload: Vec<u8> },
    /// `XADD <stream> MAXLEN ~ <max_len> * <fields>`; the entry id goes to `reply`.
    Append {
        stream: String,
        max_len: usize,
        fields: Vec<(&'static str, Vec<u8>)>,
        reply: Option<oneshot::Sender<Result<String, String>>>,
    },
    /// `SET <key> <value> PX <millis>`.
    Store {
        key: String,
        value: String,
        millis: u64,
    },
    /// Answered once every command queued before it was carried out (or dropped).
    Barrier(oneshot::Sender<()>),
}

impl Command {
    /// What the command is about, for the logs.
    fn target(&self) -> &str {
        match self {
            Command::Publish { channel, .. } => channel,
            Command::Append { stream, .. } => stream,
            Command::Store { key, .. } => key,
            Command::Barrier(_) => "",
        }
    }
}

/// Carries out the queued commands in order (`publish`: `PUBLISH` or `SPUBLISH`) on the
/// shared command connection. While no connection can be made (Redis is away), the command at
/// the head waits (the queue behind it fills up to its bound) and is carried out once one is
/// made again, with the reconnection backoff between attempts. A command that failed on a
/// connection (it may have reached Redis) is not sent again, so that nobody gets a message
/// twice: it is dropped with a log, as one Redis refused. Ends when the driver is dropped.
pub(super) async fn run_publisher(
    commands: Arc<Commands>,
    publish: &'static str,
    options: Options,
    mut queue: mpsc::Receiver<Command>,
) {
    while let Some(mut command) = queue.recv().await {
        if let Command::Barrier(done) = command {
            let _ = done.send(());
            continue;
        }
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
            let sent =
                tokio::time::timeout(HEALTH_TIMEOUT, run(&mut conn, publish, &mut command)).await;
            let target = command.target();
            match sent {
                Ok(Ok(())) if waited => {
                    tracing::info!("redis is back: queued messages published");
                }
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    if error.is_io_error() || error.is_connection_dropped() {
                        commands.forget();
                    }
                    tracing::warn!(%target, %error, "redis command failed; message dropped");
                    refuse(command, &error.to_string());
                }
                Err(_) => {
                    commands.forget();
                    tracing::warn!(%target, "redis command timed out; message not sent again");
                    refuse(command, "redis did not answer in time");
                }
            }
            break;
        }
    }
}

/// Carries out `command` on `conn`.
async fn run(
    conn: &mut Conn,
    publish: &'static str,
    command: &mut Command,
) -> redis::RedisResult<()> {
    match command {
        Command::Publish { channel, payload } => {
            redis::cmd(publish)
                .arg(&*channel)
                .arg(&*payload)
                .query_async::<()>(conn)
                .await
        }
        Command::Append {
            stream,
            max_len,
            fields,
            reply,
        } => {
            let mut xadd = redis::cmd("XADD");
            xadd.arg(&*stream)
                .arg("MAXLEN")
                .arg("~")
                .arg(*max_len)
                .arg("*");
            for (name, value) in fields.iter() {
                xadd.arg(*name).arg(value.as_slice());
            }
            let id: String = xadd.query_async(conn).await?;
            if let Some(reply) = reply.take() {
                let _ = reply.send(Ok(id));
            }
            Ok(())
        }
        Command::Store { key, value, millis } => {
            redis::cmd("SET")
                .arg(&*key)
                .arg(&*value)
                .arg("PX")
                .arg(*millis)
                .query_async::<()>(conn)
                .await
        }
        Command::Barrier(_) => Ok(()),
    }
}

/// Tells whoever waits for `command`'s result that it failed.
fn refuse(command: Command, why: &str) {
    if let Command::Append {
        reply: Some(reply), ..
    } = command
    {
        let _ = reply.send(Err(why.to_owned()));
    }
}
