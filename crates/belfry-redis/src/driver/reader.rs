//! The readers of the streams protocol: one task per stream, on a connection of its own,
//! reading new entries (`XREAD BLOCK`) and handing each to the transport of its namespace.
//! It resumes after the last entry read when Redis comes back, so nothing kept by the stream
//! is missed.

use std::{
    collections::HashMap,
    sync::{
        Arc, Weak,
        atomic::{AtomicBool, Ordering},
    },
};

use parking_lot::Mutex;
use redis::{
    AsyncConnectionConfig, Client,
    aio::MultiplexedConnection,
    streams::{StreamRangeReply, StreamReadReply},
};

use super::{Driver, HEALTH_TIMEOUT, Options};
use crate::{streams::entry_message, transport::RedisTransport};

/// The namespaces that read one stream.
#[derive(Default)]
pub(crate) struct StreamReader {
    pub(crate) namespaces: Mutex<HashMap<String, Weak<RedisTransport>>>,
    /// True once the reader knows where it starts: entries written from then on are read.
    pub(crate) started: AtomicBool,
}

/// Reads `stream` for as long as the driver lives.
pub(super) async fn run_reader(
    driver: Weak<Driver>,
    client: Client,
    stream: String,
    reader: Arc<StreamReader>,
    options: Options,
) {
    // Clamped: the options' fields can be set without their builder's bounds.
    let (read_count, block) = match driver.upgrade() {
        Some(driver) => (
            driver.streams.read_count.max(1),
            driver
                .streams
                .block_time
                .max(std::time::Duration::from_millis(1)),
        ),
        None => return,
    };
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(HEALTH_TIMEOUT))
        .set_response_timeout(Some(block + HEALTH_TIMEOUT));
    let mut conn: Option<MultiplexedConnection> = None;
    // The last entry read; unknown until the first read, which starts after the stream's last
    // entry (Node's `$` skips the entries written between two reads before its first one).
    let mut offset: Option<String> = None;
    let mut backoff = options.min_backoff;
    loop {
        if driver.strong_count() == 0 {
            return;
        }
        let result = read_once(
            &client,
            &config,
            &mut conn,
            &stream,
            &mut offset,
            read_count,
            block,
        )
        .await;
        if offset.is_some()
            && !reader.started.swap(true, Ordering::AcqRel)
            && let Some(driver) = driver.upgrade()
        {
            driver.synced_notify.notify_waiters();
        }
        match result {
            Ok(entries) => {
                backoff = options.min_backoff;
                for entry in entries {
                    dispatch(&reader, &entry);
                    offset = Some(entry.id);
                }
            }
            Err(error) => {
                conn = None;
                tracing::debug!(%stream, %error, "stream not read; trying again");
                tokio::time::sleep(backoff).await;
                backoff = options.next_backoff(backoff);
            }
        }
    }
}

/// One `XREAD` (after finding where to start, the first time).
async fn read_once(
    client: &Client,
    config: &AsyncConnectionConfig,
    conn: &mut Option<MultiplexedConnection>,
    stream: &str,
    offset: &mut Option<String>,
    read_count: usize,
    block: std::time::Duration,
) -> redis::RedisResult<Vec<redis::streams::StreamId>> {
    if conn.is_none() {
        *conn = Some(
            client
                .get_multiplexed_async_connection_with_config(config)
                .await?,
        );
    }
    let connection = conn.as_mut().expect("made just above when there was none");
    let from = match offset {
        Some(offset) => offset.clone(),
        None => {
            let last: StreamRangeReply = redis::cmd("XREVRANGE")
                .arg(stream)
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1)
                .query_async(connection)
                .await?;
            let from = last
                .ids
                .first()
                .map_or_else(|| "0-0".to_owned(), |entry| entry.id.clone());
            // Known now: the reader is started (see `Driver::ready`); the next call reads.
            *offset = Some(from);
            return Ok(Vec::new());
        }
    };
    let millis = u64::try_from(block.as_millis()).unwrap_or(u64::MAX);
    let read: Option<StreamReadReply> = redis::cmd("XREAD")
        .arg("COUNT")
        .arg(read_count)
        .arg("BLOCK")
        .arg(millis)
        .arg("STREAMS")
        .arg(stream)
        .arg(&from)
        .query_async(connection)
        .await?;
    Ok(read
        .map(|reply| reply.keys.into_iter().flat_map(|key| key.ids).collect())
        .unwrap_or_default())
}

/// Hands one entry to the transport of its namespace.
fn dispatch(reader: &StreamReader, entry: &redis::streams::StreamId) {
    let message = match entry_message(entry) {
        Ok(Some(message)) => message,
        Ok(None) => return,
        Err(error) => {
            tracing::warn!(id = %entry.id, %error, "invalid stream entry skipped");
            return;
        }
    };
    let transport = reader
        .namespaces
        .lock()
        .get(&message.nsp)
        .and_then(Weak::upgrade);
    if let Some(transport) = transport {
        transport.on_entry(message, &entry.id);
    }
}
