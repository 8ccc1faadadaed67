//! The subscriber on a Redis Cluster: the shard channels of every route subscribed through
//! the `redis` crate's cluster connection (RESP3), which sends each `SSUBSCRIBE` to the node
//! that owns the channel's slot and subscribes again after reconnections and failovers; the
//! messages handed to their adapters; the cluster checked every health interval.

use std::{
    collections::HashSet,
    sync::{Weak, atomic::Ordering},
    time::Duration,
};

use redis::{PushInfo, PushKind, Value, cluster::ClusterClientBuilder};
use tokio::sync::mpsc;

use super::{Driver, HEALTH_TIMEOUT};

/// Subscribes every route's shard channel on the cluster of `nodes` and hands the messages
/// to their adapters, until the driver is dropped.
pub(super) async fn run_cluster_subscriber(
    driver: Weak<Driver>,
    nodes: Vec<String>,
    roots: Option<Vec<u8>>,
    mut wake: mpsc::UnboundedReceiver<()>,
) {
    let Some(options) = driver.upgrade().map(|d| d.options) else {
        return;
    };
    // Unbounded: the connection's reader hands pushes over without waiting; this task takes
    // them as fast as it dispatches (no await between two).
    let (push_tx, mut pushes) = mpsc::unbounded_channel::<PushInfo>();
    let builder = super::tls::with_roots(
        ClusterClientBuilder::new(nodes)
            .use_protocol(redis::ProtocolVersion::RESP3)
            .push_sender(push_tx)
            .connection_timeout(HEALTH_TIMEOUT)
            .response_timeout(HEALTH_TIMEOUT),
        roots.as_deref(),
    );
    let client = match builder.build() {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "redis cluster subscriber not made");
            return;
        }
    };
    let mut backoff = options.min_backoff;
    let mut conn = loop {
        match client.get_async_connection().await {
            Ok(conn) => break conn,
            Err(error) => {
                let Some(strong) = driver.upgrade() else {
                    return;
                };
                strong.connected.store(false, Ordering::Release);
                strong.synced.store(false, Ordering::Release);
                tracing::debug!(%error, "redis cluster unreachable; trying again");
                drop(strong);
                tokio::time::sleep(backoff).await;
                backoff = options.next_backoff(backoff);
            }
        }
    };
    let mut subscribed: HashSet<String> = HashSet::new();
    let mut health = tokio::time::interval(options.health_interval);
    health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let Some(strong) = driver.upgrade() else {
            return;
        };
        let wanted: HashSet<String> = strong.routes.lock().keys().cloned().collect();
        let mut synced = true;
        for channel in wanted.difference(&subscribed).cloned().collect::<Vec<_>>() {
            match tokio::time::timeout(HEALTH_TIMEOUT, conn.ssubscribe(&channel)).await {
                Ok(Ok(())) => {
                    subscribed.insert(channel);
                }
                _ => {
                    synced = false;
                    break;
                }
            }
        }
        for channel in subscribed.difference(&wanted).cloned().collect::<Vec<_>>() {
            let _ = tokio::time::timeout(HEALTH_TIMEOUT, conn.sunsubscribe(&channel)).await;
            subscribed.remove(&channel);
        }
        // Routes added while subscribing are not covered yet: the next turn takes them.
        synced = synced
            && strong
                .routes
                .lock()
                .keys()
                .all(|channel| subscribed.contains(channel));
        if synced {
            strong.connected.store(true, Ordering::Release);
            if !strong.synced.swap(true, Ordering::AcqRel) {
                strong.synced_notify.notify_waiters();
            }
        }
        drop(strong);
        tokio::select! {
            push = pushes.recv() => match push {
                Some(push) => dispatch(&driver, push),
                None => return,
            },
            change = wake.recv() => {
                if change.is_none() {
                    return;
                }
            }
            _ = health.tick() => {
                let answered = tokio::time::timeout(
                    HEALTH_TIMEOUT,
                    redis::cmd("PING").query_async::<()>(&mut conn),
                )
                .await;
                if let Some(strong) = driver.upgrade() {
                    let up = matches!(answered, Ok(Ok(())));
                    if strong.connected.swap(up, Ordering::AcqRel) != up {
                        tracing::info!(up, "redis cluster health changed");
                        if up {
                            // Back: whoever waits in `ready` looks again.
                            strong.synced_notify.notify_waiters();
                        }
                    }
                }
            }
            // A subscription that failed is tried again soon.
            () = tokio::time::sleep(Duration::from_millis(200)), if !synced => {}
        }
    }
}

/// Hands a shard message to the adapter of its channel.
fn dispatch(driver: &Weak<Driver>, push: PushInfo) {
    if push.kind != PushKind::SMessage {
        return;
    }
    let [Value::BulkString(channel), Value::BulkString(payload), ..] = push.data.as_slice() else {
        return;
    };
    if let Some(driver) = driver.upgrade() {
        driver.dispatch(channel, channel, payload);
    }
}
