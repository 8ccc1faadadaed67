//! The streams protocol (Node's `@socket.io/redis-streams-adapter` 0.3) on one real
//! `redis-server`: a mixed cluster of two Belfry servers and one Node server (the scenario of
//! `belfry_tests::cluster`; npm publishes no emitter of this protocol), and connection
//! state recovery across servers, checked with `socket.io-client`: from Node to Belfry, from
//! Belfry to Node, from Belfry to Belfry.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use belfry::{SocketIo, core::adapter::ConnectionStateRecovery};
use belfry_redis::{RedisAdapter, streams::StreamsOptions};
use belfry_tests::{
    RawWs,
    cluster::{belfry_server_with, next_args, room_server, run_clients},
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
    assert!(
        got.iter().all(|args| args.as_array().unwrap().len() == 2),
        "{result:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_recovers_across_node_and_belfry_servers() {
    let redis = RedisServer::start().await;
    let (a, b, n, _node) = cluster(&redis).await;
    recovers(&n, &a, &b).await;
    recovers(&a, &n, &b).await;
    recovers(&a, &b, &n).await;
}

/// A Belfry server (streams, recovery on, 100 ms reconnection) whose sockets join "r", and a
/// raw WebSocket client of it.
async fn raw_server(redis_url: &str) -> (SocketIo, RedisAdapter, RawWs) {
    let redis = RedisAdapter::builder(redis_url)
        .streams(StreamsOptions::new().with_block_time(Duration::from_millis(500)))
        .reconnect_backoff(Duration::from_millis(100), Duration::from_millis(100))
        .requests_timeout(Duration::from_secs(1))
        .connect()
        .await
        .unwrap();
    let ready = redis.clone();
    let builder = SocketIo::builder()
        .adapter(redis.factory())
        .connection_state_recovery(ConnectionStateRecovery::default());
    let (io, client, connect) = room_server(builder, async move { ready.ready().await }).await;
    assert!(connect.contains("\"pid\":"), "{connect}");
    (io, redis, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_under_recovery() {
    let mut redis = RedisServer::start().await;
    let (a, a_redis, mut a_client) = raw_server(&redis.url()).await;
    let (_b, b_redis, mut b_client) = raw_server(&redis.url()).await;
    // Through the stream: both clients get it, with the entry id as offset.
    a.to("r").emit("news", "before").unwrap();
    for client in [&mut a_client, &mut b_client] {
        let args = next_args(client, Duration::from_secs(5)).await.unwrap();
        assert_eq!(args[..2], [json!("news"), json!("before")]);
        assert!(args[2].as_str().unwrap().contains('-'), "{args:?}");
    }

    redis.kill().await;
    let start = Instant::now();
    while a_redis.is_connected() || b_redis.is_connected() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "outage not noticed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Redis is away: the local client still gets the broadcast, about a second later and
    // without an offset (it cannot be kept for recovery).
    let sent = Instant::now();
    a.to("r").emit("news", "during").unwrap();
    let args = next_args(&mut a_client, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(args, [json!("news"), json!("during")]);
    assert!(
        sent.elapsed() < Duration::from_secs(3),
        "{:?}",
        sent.elapsed()
    );

    redis.restart().await;
    let start = Instant::now();
    while !(a_redis.is_connected() && b_redis.is_connected()) {
        assert!(start.elapsed() < Duration::from_secs(10), "not back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // What waited was written to the stream once Redis came back: the other server reads it
    // (its reader resumes by itself), and traffic flows with offsets again.
    let args = next_args(&mut b_client, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(args[..2], [json!("news"), json!("during")]);
    a.to("r").emit("news", "after").unwrap();
    for client in [&mut a_client, &mut b_client] {
        let args = next_args(client, Duration::from_secs(5)).await.unwrap();
        assert_eq!(args[..2], [json!("news"), json!("after")], "{args:?}");
        assert_eq!(args.len(), 3, "{args:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_recovery_a_broadcast_then_a_disconnect_arrive_in_that_order() {
    let redis = RedisServer::start().await;
    let (io, _redis, mut client) = raw_server(&redis.url()).await;
    // As Node's cluster adapters do once the backend took the message: the broadcast (which
    // waits for its offset) first, then the disconnection.
    io.emit("bye", "now").unwrap();
    io.of("/").unwrap().disconnect_sockets(false).await.unwrap();
    let args = next_args(&mut client, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(args[..2], [json!("bye"), json!("now")]);
    let (_, frame) = client.read_frame().await.unwrap();
    assert_eq!(frame, b"41");
}
