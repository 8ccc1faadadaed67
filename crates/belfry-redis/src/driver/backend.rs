//! Where the server's Redis is: one Redis server (with its own subscriber connection, see
//! [`subscriber`](super::subscriber)), or a Redis Cluster (the `redis` crate's cluster client,
//! which routes every command, shard channel included, to the node that owns its slot, and
//! subscribes shard channels there, again after failovers and reconnections).

use redis::{
    Client, Cmd, Pipeline, RedisFuture, Value,
    aio::{ConnectionLike, MultiplexedConnection},
    cluster::ClusterClient,
    cluster_async::ClusterConnection,
};

use super::{HEALTH_TIMEOUT, tls::Tls};

/// One Redis server, or a Redis Cluster.
// One per server, cloned when a connection is made: the size of its variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub(crate) enum Backend {
    /// One server: its client, and how the subscriber opens TLS connections to it.
    Single { client: Client, tls: Tls },
    /// A Redis Cluster (the sharded protocol only): its first nodes (the subscriber makes a
    /// client of its own from them) and a client for commands.
    Cluster {
        nodes: Vec<String>,
        roots: Option<Vec<u8>>,
        client: ClusterClient,
    },
}

/// A connection for commands, to one server or to the cluster.
#[derive(Clone)]
pub(crate) enum Conn {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl Backend {
    /// A new connection for commands, within [`HEALTH_TIMEOUT`].
    pub(crate) async fn connect(&self) -> redis::RedisResult<Conn> {
        let connecting = async {
            Ok(match self {
                Backend::Single { client, .. } => {
                    // The crate's defaults (a 500 ms answer) would drop a command while Redis
                    // forks for a snapshot.
                    let config = redis::AsyncConnectionConfig::new()
                        .set_connection_timeout(Some(HEALTH_TIMEOUT))
                        .set_response_timeout(Some(HEALTH_TIMEOUT));
                    Conn::Single(
                        client
                            .get_multiplexed_async_connection_with_config(&config)
                            .await?,
                    )
                }
                Backend::Cluster { client, .. } => {
                    Conn::Cluster(client.get_async_connection().await?)
                }
            })
        };
        tokio::time::timeout(HEALTH_TIMEOUT, connecting)
            .await
            .unwrap_or_else(|_| Err(super::timed_out()))
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(conn) => conn.req_packed_command(cmd),
            Conn::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(conn) => conn.get_db(),
            Conn::Cluster(conn) => conn.get_db(),
        }
    }
}
