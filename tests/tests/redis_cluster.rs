//! A mixed cluster on one real `redis-server`: two Belfry servers with `belfry_redis` and one
//! Node socket.io 4.8 server with `@socket.io/redis-adapter` 8.3, `socket.io-client` on every
//! server, and `@socket.io/redis-emitter` publishing; once in the classic protocol, once in the
//! sharded one (`createShardedAdapter`).
#![allow(clippy::unwrap_used)]

use belfry_redis::{Protocol, RedisAdapter, SubscriptionMode};
use belfry_tests::{
    cluster::{belfry_server, run_clients},
    processes::{NodeProcess, RedisCluster, RedisServer},
};
use serde_json::json;

/// A Belfry server of the scenario over Redis in `protocol`.
async fn redis_belfry(redis_url: &str, name: &'static str, protocol: Protocol) -> String {
    let redis = RedisAdapter::builder(redis_url)
        .protocol(protocol)
        .connect()
        .await
        .unwrap();
    belfry_server(name, redis.factory(), async move { redis.ready().await })
        .await
        .0
}

/// Runs the scenario on a cluster of two Belfry servers and a Node server speaking `protocol`
/// (`name`: "classic" or "sharded", for the Node scripts).
async fn run_cluster(protocol: Protocol, name: &str) -> serde_json::Value {
    let redis = RedisServer::start().await;
    let a = redis_belfry(&redis.url(), "belfry-a", protocol).await;
    let b = redis_belfry(&redis.url(), "belfry-b", protocol).await;
    let node = NodeProcess::start("redis_node_server.mjs", &[&redis.url(), "node", name]).await;
    let n = format!("http://127.0.0.1:{}", node.hello["port"]);
    run_clients(&a, &b, &n, &redis.url(), name).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn belfry_and_node_servers_share_one_cluster() {
    let result = run_cluster(Protocol::Classic, "classic").await;
    // allRooms sees the rooms of every server.
    // r3 was left by every socket (socketsLeave).
    let rooms = json!(["r1", "r2", "r4"]);
    assert_eq!(result["roomsFromBelfry"], rooms, "{result:#}");
    assert_eq!(result["roomsFromNode"], rooms, "{result:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn belfry_and_node_servers_share_one_sharded_cluster() {
    let result = run_cluster(Protocol::Sharded(SubscriptionMode::Dynamic), "sharded").await;
    rooms_have_their_channels(&result);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn belfry_and_node_servers_share_one_sharded_cluster_on_a_redis_cluster() {
    let cluster = RedisCluster::start(3).await;
    let nodes = cluster.urls();
    let mut urls = Vec::new();
    for name in ["belfry-a", "belfry-b"] {
        let redis = RedisAdapter::cluster_builder(nodes.clone())
            .sharded(SubscriptionMode::Dynamic)
            .connect()
            .await
            .unwrap();
        let ready = redis.clone();
        let (url, _) =
            belfry_server(name, redis.factory(), async move { ready.ready().await }).await;
        urls.push(url);
    }
    let joined = nodes.join(",");
    let node = NodeProcess::start(
        "redis_node_server.mjs",
        &[&joined, "node", "sharded-cluster"],
    )
    .await;
    let n = format!("http://127.0.0.1:{}", node.hello["port"]);
    let result = run_clients(&urls[0], &urls[1], &n, &joined, "sharded-cluster").await;
    // On a Redis Cluster, each channel on the node that owns its slot.
    rooms_have_their_channels(&result);
}

/// The sharded protocol's dynamic subscriptions, as the clients' script counted them: each
/// room has its own shard channel, subscribed by the servers where the room exists (r1 on all
/// three, r2 on belfry-b and node, r4, joined by every socket, on all, r3, joined then left by
/// every socket, on none), and unsubscribed when the last socket of the room on that server
/// left.
fn rooms_have_their_channels(result: &serde_json::Value) {
    assert_eq!(
        result["roomSubscribers"],
        json!({ "r1": 3, "r2": 2, "r3": 0, "r4": 3 }),
        "{result:#}"
    );
    assert_eq!(
        result["roomSubscribersAfter"],
        json!({ "r1": 0, "r2": 0, "r3": 0, "r4": 0 }),
        "{result:#}"
    );
}
