//! The `LISTEN` connection: listens on the channel of every namespace, reads the attachments
//! that notifications point to, and hands each message to its namespace; reconnects, listens
//! again and announces this server again when the connection is lost.

use std::{
    collections::HashMap,
    sync::{Weak, atomic::Ordering},
};

use belfry_cluster::ClusterMessage;
use belfry_core::msgpack::{Value, get, read};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Client, Config, NoTls, Notification};

use crate::{ConnectError, HEALTH_TIMEOUT, Shared, jitter};

/// Notifications read off the connection and not handled yet, at most (each under 8000
/// bytes: 32 MB at worst): past that they are dropped with a log, so memory stays bounded
/// while attachments are being read.
const NOTIFICATION_BACKLOG: usize = 4096;

/// The namespaces changed: listen or stop listening.
pub(crate) type ListenCommand = ();

/// A connection that listens, and the notifications it receives.
pub(crate) struct Listening {
    client: Client,
    notifications: mpsc::Receiver<Notification>,
}

/// Connects, the connection driven by a task that forwards notifications until it ends.
pub(crate) async fn connect(config: &Config) -> Result<Listening, ConnectError> {
    let (client, mut connection) = tokio::time::timeout(HEALTH_TIMEOUT, config.connect(NoTls))
        .await
        .map_err(|_| ConnectError::TimedOut)??;
    let (tx, notifications) = mpsc::channel(NOTIFICATION_BACKLOG);
    tokio::spawn(async move {
        // Polling for messages also drives the connection (the client's queries).
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(notification)) => {
                    // Never wait here: the listener may be waiting for a query's answer,
                    // which only this task can read.
                    match tx.try_send(notification) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            tracing::warn!(
                                "postgres notifications arrive faster than handled: one dropped"
                            );
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => return,
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%error, "postgres listen connection lost");
                    return;
                }
            }
        }
    });
    Ok(Listening {
        client,
        notifications,
    })
}

/// Listens for as long as the adapter lives.
pub(crate) async fn run_listener(
    shared: Weak<Shared>,
    config: Config,
    first: Listening,
    mut changes: mpsc::UnboundedReceiver<ListenCommand>,
) {
    let mut current = Some(first);
    loop {
        let mut conn = match current.take() {
            Some(conn) => conn,
            None => {
                let Some((min, max)) = shared
                    .upgrade()
                    .map(|s| (s.options.reconnect_min, s.options.reconnect_max))
                else {
                    return;
                };
                tokio::time::sleep(jitter(min, max)).await;
                match connect(&config).await {
                    Ok(conn) => {
                        tracing::info!("postgres listen connection back");
                        conn
                    }
                    Err(error) => {
                        tracing::debug!(%error, "postgres still unreachable");
                        continue;
                    }
                }
            }
        };
        if let Some(shared) = shared.upgrade() {
            shared.connected.store(true, Ordering::Release);
        }
        // The namespaces listened to on this connection, with the version of their route.
        let mut listened = HashMap::new();
        let Some(interval) = shared.upgrade().map(|s| s.options.health_interval) else {
            return;
        };
        let mut health = tokio::time::interval(interval);
        health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        health.tick().await;
        // The namespaces changed since they were last listened to (a new connection listens
        // to none).
        let mut dirty = true;
        let lost = loop {
            if dirty {
                let Some(strong) = shared.upgrade() else {
                    return;
                };
                match sync(&strong, &conn.client, &mut listened).await {
                    Ok(done) => dirty = !done,
                    Err(error) => {
                        tracing::warn!(%error, "postgres LISTEN failed: connecting again");
                        break true;
                    }
                }
            }
            tokio::select! {
                notification = conn.notifications.recv() => match notification {
                    Some(notification) => {
                        if !handle(&shared, &conn.client, &notification).await {
                            break true;
                        }
                    }
                    None => break true,
                },
                change = changes.recv() => {
                    if change.is_none() {
                        return;
                    }
                    dirty = true;
                }
                _ = health.tick() => {
                    let answered =
                        tokio::time::timeout(HEALTH_TIMEOUT, conn.client.simple_query("SELECT 1"))
                            .await;
                    if !matches!(answered, Ok(Ok(_))) {
                        tracing::warn!("postgres does not answer the health check: connecting again");
                        break true;
                    }
                }
                // Namespaces changed while they were being listened to: again, soon.
                () = tokio::time::sleep(std::time::Duration::from_millis(50)), if dirty => {}
            }
        };
        if lost && let Some(shared) = shared.upgrade() {
            shared.connected.store(false, Ordering::Release);
            shared.synced.store(false, Ordering::Release);
        }
    }
}

/// Runs `sql` on the listening connection within [`HEALTH_TIMEOUT`]: `Ok(false)` when Postgres
/// refused the statement (the connection is fine), an error when the connection is lost or
/// silent.
async fn statement(client: &Client, sql: &str) -> Result<bool, ConnectionLost> {
    match tokio::time::timeout(HEALTH_TIMEOUT, client.batch_execute(sql)).await {
        Ok(Ok(())) => Ok(true),
        Ok(Err(error)) if !error.is_closed() => {
            tracing::warn!(%error, %sql, "postgres refused the statement");
            Ok(false)
        }
        Ok(Err(_)) | Err(_) => Err(ConnectionLost),
    }
}

/// The listening connection is closed or does not answer.
#[derive(Debug, thiserror::Error)]
#[error("the postgres listen connection is lost or silent")]
struct ConnectionLost;

/// Listens on the channel of every namespace not listened to yet (each announced once it
/// is), stops listening on those of namespaces gone. A channel Postgres refuses is logged
/// and left (its namespace cannot be reached; the others can). Returns whether the
/// namespaces were unchanged meanwhile (false: they need it again).
async fn sync(
    shared: &Shared,
    client: &Client,
    listened: &mut HashMap<String, u64>,
) -> Result<bool, ConnectionLost> {
    let version = shared.version.load(Ordering::Acquire);
    let wanted: Vec<(String, belfry_cluster::Receiver, u64)> = shared
        .routes
        .lock()
        .iter()
        .map(|(nsp, (receiver, made))| (nsp.clone(), receiver.clone(), *made))
        .collect();
    for (nsp, receiver, made) in &wanted {
        if listened.get(nsp) == Some(made) {
            continue;
        }
        // A namespace made again is listened to already: only announced again.
        let listening = listened.contains_key(nsp)
            || statement(
                client,
                &format!("LISTEN {}", identifier(&shared.channel(nsp))),
            )
            .await?;
        listened.insert(nsp.clone(), *made);
        if listening {
            // Only now: the other servers' answers to it are heard.
            receiver.announce();
        }
    }
    let gone: Vec<String> = listened
        .keys()
        .filter(|nsp| !wanted.iter().any(|(wanted, _, _)| wanted == *nsp))
        .cloned()
        .collect();
    for nsp in gone {
        statement(
            client,
            &format!("UNLISTEN {}", identifier(&shared.channel(&nsp))),
        )
        .await?;
        listened.remove(&nsp);
    }
    if shared.version.load(Ordering::Acquire) != version {
        return Ok(false);
    }
    if !shared.synced.swap(true, Ordering::AcqRel) {
        shared.synced_notify.notify_waiters();
    }
    Ok(true)
}

/// `name` as a quoted SQL identifier.
pub(crate) fn identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// One notification: a message, or the id of its attachment. False when the connection did
/// not answer for the attachment (it is made again).
async fn handle(shared: &Weak<Shared>, client: &Client, notification: &Notification) -> bool {
    let Some(shared) = shared.upgrade() else {
        return true;
    };
    let Some(channel_nsp) = shared.namespace_of(notification.channel()) else {
        return true;
    };
    let header: Value = match serde_json::from_str(notification.payload()) {
        Ok(header) => header,
        Err(error) => {
            tracing::warn!(%error, channel = notification.channel(), "invalid notification dropped");
            return true;
        }
    };
    if get(&header, "uid").and_then(Value::as_str) == Some(shared.uid.as_str()) {
        return true;
    }
    let value = match get(&header, "attachmentId") {
        None => header,
        Some(id) => {
            let Some(id) = id
                .as_str()
                .and_then(|id| id.parse::<i64>().ok())
                .or_else(|| id.as_i64())
            else {
                tracing::warn!("notification with an invalid attachment id dropped");
                return true;
            };
            let fetched = tokio::time::timeout(
                HEALTH_TIMEOUT,
                fetch(client, &shared.options.table_name, id),
            )
            .await;
            let Ok(fetched) = fetched else {
                tracing::warn!(id, "postgres does not answer for an attachment");
                return false;
            };
            match fetched {
                Ok(Some(value)) => value,
                Ok(None) => {
                    tracing::warn!(
                        id,
                        "attachment gone (deleted by the cleanup before it was read)"
                    );
                    return true;
                }
                Err(error) => {
                    tracing::warn!(id, %error, "attachment not read");
                    return true;
                }
            }
        }
    };
    let mut message = match ClusterMessage::from_value(&value) {
        Ok(message) => message,
        Err(error) => {
            tracing::warn!(%error, "invalid cluster message dropped");
            return true;
        }
    };
    // `@socket.io/postgres-emitter` 0.1.1 names no namespace: the channel's.
    if get(&value, "nsp").is_none() {
        channel_nsp.clone_into(&mut message.nsp);
    }
    let receiver = shared
        .routes
        .lock()
        .get(&message.nsp)
        .map(|(receiver, _)| receiver.clone());
    if let Some(receiver) = receiver {
        receiver.receive_message(message);
    }
    true
}

/// The attachment `id`, decoded.
async fn fetch(
    client: &Client,
    table: &str,
    id: i64,
) -> Result<Option<Value>, Box<dyn std::error::Error + Send + Sync>> {
    let row = client
        .query_opt(
            &format!("SELECT payload FROM {table} WHERE id = $1"),
            &[&id],
        )
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let payload: Vec<u8> = row.try_get(0)?;
    Ok(Some(read(&payload)?))
}

#[cfg(test)]
mod tests {
    use super::identifier;

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(identifier("socket.io#/"), "\"socket.io#/\"");
        assert_eq!(identifier("a\"b"), "\"a\"\"b\"");
    }
}
