//! The streams protocol (Node's `@socket.io/redis-streams-adapter` 0.3) on one real
//! `redis-server`: a mixed cluster of two Belfry servers and one Node server (the scenario of
//! `belfry_tests::cluster`, with `@socket.io/redis-streams-emitter` publishing), and connection
//! state recovery across servers, checked with `socket.io-client`: from Node to Belfry, from
//! Belfry to Node, from Belfry to Belfry.
#![allow(clippy::unwrap_used)]

use belfry::{SocketIo, core::adapter::ConnectionStateRecovery};
use belfry_redis::{RedisAdapter, streams::StreamsOptions};
use belfry_tests::{
    cluster::{belfry_server_with, run_clients},
    processes::{NodeProcess, RedisServer},
    run_node,
};
use serde_json::{Value, json};

/// A Belfry server of the scenario over Redis streams, with connection state recovery on.
async fn streams_belfry(redis_url: &str, name: &'static str) -> (String, SocketIo) {
    let redis = RedisAdapter::builder(redis_url)
        .streams(StreamsOptions::new())
        .connect()
        .await
        .unwrap();
    let builder = SocketIo::builder()
        .adapter(redis.factory())
        .connection_state_recovery(ConnectionStateRecovery::default());
    belfry_server_with(name, builder, async move { redis.ready().await }).await
}

/// Two Belfry servers and a Node one on `redis`.
async fn cluster(redis: &RedisServer) -> (String, String, String, NodeProcess) {
    let (a, _) = streams_belfry(&redis.url(), "belfry-a").await;
    let (b, _) = streams_belfry(&redis.url(), "belfry-b").await;
    let node =
        NodeProcess::start("redis_node_server.mjs", &[&redis.url(), "node", "streams"]).await;
    let n = format!("http://127.0.0.1:{}", node.hello["port"]);
    (a, b, n, node)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn belfry_and_node_servers_share_one_streams_cluster() {
    let redis = RedisServer::start().await;
    let (a, b, n, _node) = cluster(&redis).await;
    run_clients(&a, &b, &n, &redis.url(), "streams").await;
}

/// Runs the recovery script from `first` to `second` (broadcasts shouted through `shouting`)
/// and checks the client got its socket back with every broadcast once, in order.
async fn recovers(first: &str, second: &str, shouting: &str) {
    let result = run_node("streams_recovery.mjs", &[first, second, shouting]).await;
    assert_eq!(result["error"], Value::Null, "{result:#}");
    // The client closed its own transport (as when a network drops it): the server sees a
    // transport close, a reason it recovers from.
    assert_eq!(result["disconnectReason"], "forced close", "{result:#}");
    assert_eq!(result["firstRecovered"], false, "{result:#}");
    assert_eq!(result["recovered"], true, "{result:#}");
    assert_eq!(result["secondId"], result["firstId"], "{result:#}");
    let got = result["got"].as_array().unwrap();
    let texts: Vec<&str> = got.iter().map(|args| args[0].as_str().unwrap()).collect();
    assert_eq!(
        texts,
        ["before", "missed-1", "missed-2", "after"],
        "{result:#}"
    );
    // Each came with the stream entry id as offset (its last argument), increasing.
    let offsets: Vec<&str> = got.iter().map(|args| args[1].as_str().unwrap()).collect();
    for pair in offsets.windows(2) {
        let id = |offset: &str| -> (u64, u64) {
            let (ms, seq) = offset.split_once('-').unwrap();
            (ms.parse().unwrap(), seq.parse().unwrap())
        };
        assert!(id(pair[0]) < id(pair[1]), "{offsets:?}");
    }
    assert_eq!(got[0], json!(["before", offsets[0]]), "{result:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_recovers_across_node_and_belfry_servers() {
    let redis = RedisServer::start().await;
    let (a, b, n, _node) = cluster(&redis).await;
    recovers(&n, &a, &b).await;
    recovers(&a, &n, &b).await;
    recovers(&a, &b, &n).await;
}
