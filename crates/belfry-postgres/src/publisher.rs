//! The publishing connection: every message of this server, in order, as a notification or
//! through the attachments table; the table's cleanup. Reconnects when the connection is
//! lost, the messages waiting meanwhile in the queue.

use belfry_cluster::ClusterMessage;
use tokio::sync::mpsc;
use tokio_postgres::{Client, Config, NoTls};

use crate::{ConnectError, HEALTH_TIMEOUT, Options, STATEMENT_TIMEOUT, jitter};

/// A message to publish on a channel.
pub(crate) struct Publish {
    pub(crate) channel: String,
    pub(crate) message: ClusterMessage,
}

/// Connects, the connection driven by a task of its own.
pub(crate) async fn connect(config: &Config) -> Result<Client, ConnectError> {
    let (client, connection) = tokio::time::timeout(HEALTH_TIMEOUT, config.connect(NoTls))
        .await
        .map_err(|_| ConnectError::TimedOut)??;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::warn!(%error, "postgres publish connection lost");
        }
    });
    Ok(client)
}

/// Publishes until every sender is gone (the adapter with it).
pub(crate) async fn run_publisher(
    options: Options,
    config: Config,
    first: Client,
    mut queue: mpsc::Receiver<Publish>,
) {
    let mut client = Some(first);
    let mut cleanup = tokio::time::interval(options.cleanup_interval);
    cleanup.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    cleanup.tick().await;
    loop {
        tokio::select! {
            publish = queue.recv() => {
                let Some(publish) = publish else {
                    return;
                };
                let Some(conn) = connected(&mut client, &config, &options, &queue).await else {
                    return;
                };
                // A message whose command failed may have been published: it is not sent again.
                match tokio::time::timeout(STATEMENT_TIMEOUT, send(conn, &options, publish)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => tracing::warn!(%error, "message not published to postgres"),
                    Err(_) => {
                        tracing::warn!("postgres does not answer: message dropped, connecting again");
                        client = None;
                    }
                }
            }
            _ = cleanup.tick() => {
                let Some(conn) = connected(&mut client, &config, &options, &queue).await else {
                    return;
                };
                let millis = options.cleanup_interval.as_millis();
                let delete = format!(
                    "DELETE FROM {} WHERE created_at < now() - interval '{millis} milliseconds'",
                    options.table_name
                );
                match tokio::time::timeout(STATEMENT_TIMEOUT, conn.batch_execute(&delete)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => tracing::warn!(%error, "postgres attachments not cleaned up"),
                    Err(_) => client = None,
                }
            }
        }
        if client.as_ref().is_some_and(Client::is_closed) {
            client = None;
        }
    }
}

/// The connection, made again (waiting as long as it takes) when it was lost.
/// `None` once every sender is gone (the adapter with it): nobody waits any more.
async fn connected<'a>(
    client: &'a mut Option<Client>,
    config: &Config,
    options: &Options,
    queue: &mpsc::Receiver<Publish>,
) -> Option<&'a Client> {
    if client.as_ref().is_some_and(Client::is_closed) {
        *client = None;
    }
    if client.is_none() {
        loop {
            if queue.is_closed() {
                return None;
            }
            tokio::time::sleep(jitter(options.reconnect_min, options.reconnect_max)).await;
            match connect(config).await {
                Ok(made) => {
                    tracing::info!("postgres publish connection back");
                    *client = Some(made);
                    break;
                }
                Err(error) => tracing::debug!(%error, "postgres still unreachable"),
            }
        }
    }
    client.as_ref()
}

/// Publishes one message: a notification of its JSON, or, with binary or from the
/// threshold on, its msgpack in the attachments table and a notification of its id.
async fn send(
    client: &Client,
    options: &Options,
    Publish { channel, message }: Publish,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    if !message.has_binary() {
        let json = String::from_utf8(message.to_json()?)?;
        // Postgres refuses a notification of 8000 bytes or more (Node 0.5 sends one of
        // exactly the threshold, and fails).
        if json.len() < options.payload_threshold {
            client
                .execute("SELECT pg_notify($1, $2)", &[&channel, &json])
                .await?;
            return Ok(());
        }
    }
    let payload = message.to_msgpack()?;
    let row = client
        .query_one(
            &format!(
                "INSERT INTO {} (payload) VALUES ($1) RETURNING id",
                options.table_name
            ),
            &[&payload],
        )
        .await?;
    let id: i64 = row.try_get(0)?;
    let header = serde_json::json!({
        "uid": message.uid,
        "type": message.kind,
        "attachmentId": id.to_string(),
    })
    .to_string();
    client
        .execute("SELECT pg_notify($1, $2)", &[&channel, &header])
        .await?;
    Ok(())
}
