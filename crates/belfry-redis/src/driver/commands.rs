//! The command connection one server shares (publishing, counting the servers) and the task
//! that publishes the queued messages on it.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use parking_lot::Mutex;
use redis::{Client, aio::MultiplexedConnection};
use tokio::sync::mpsc;

use super::{HEALTH_TIMEOUT, Options, timed_out};

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
    /// No connection yet: the first command makes it.
    pub(super) fn new(client: Client, generation: Arc<AtomicU64>) -> Commands {
        Commands {
            client,
            generation,
            connection: Mutex::new(None),
        }
    }

    /// The shared connection (a handle to it: commands on it are multiplexed).
    pub(super) async fn get(&self) -> redis::RedisResult<MultiplexedConnection> {
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
    pub(super) fn forget(&self) {
        *self.connection.lock() = None;
    }
}

/// Publishes queued messages in order (`command`: `PUBLISH` or `SPUBLISH`) on the shared
/// command connection. While no connection can be made (Redis is away), the message at the
/// head waits (the queue behind it fills up to its bound) and is published once one is made
/// again, with the reconnection backoff between attempts. A message whose command failed on a
/// connection (it may have reached Redis) is not sent again, so that nobody gets it twice: it
/// is dropped with a log, as one Redis refused. Ends when the driver is dropped.
pub(super) async fn run_publisher(
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
