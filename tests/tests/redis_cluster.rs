//! A mixed cluster on one real `redis-server`: two Belfry servers with `belfry_redis` and one
//! Node socket.io 4.8 server with `@socket.io/redis-adapter` 8.3, `socket.io-client` on every
//! server, and `@socket.io/redis-emitter` publishing.
#![allow(clippy::unwrap_used)]

use belfry::{AckSender, SocketIo, SocketRef, extract::Data};
use belfry_redis::RedisAdapter;
use belfry_tests::{
    processes::{NodeProcess, RedisServer},
    run_node, serve,
};
use bytes::Bytes;
use serde_json::json;

#[derive(serde::Deserialize)]
struct Shout {
    room: Option<String>,
    text: String,
    bin: Option<Vec<u8>>,
}

#[derive(serde::Deserialize)]
struct Auth {
    room: Option<String>,
}

/// A Belfry server behaving as `tests/js/redis_node_server.mjs`.
async fn belfry_server(redis_url: &str) -> String {
    let redis = RedisAdapter::builder(redis_url).connect().await.unwrap();
    let (layer, io) = SocketIo::builder().adapter(redis.factory()).build_layer();
    io.ns(
        "/",
        |socket: SocketRef, Data(auth): Data<Auth>| async move {
            if let Some(room) = auth.room {
                socket.join(room);
            }
            socket.on(
                "shout",
                |socket: SocketRef, Data(shout): Data<Shout>, ack: AckSender| async move {
                    let io = socket.io();
                    let target = match shout.room {
                        Some(room) => io.to(room),
                        None => io.of("/").unwrap(),
                    };
                    let _ = match shout.bin {
                        Some(bin) => target.emit("shout", &(shout.text, Bytes::from(bin))),
                        None => target.emit("shout", &shout.text),
                    };
                    let _ = ack.send(&"ok");
                },
            );
            socket.on("fetch", |socket: SocketRef, ack: AckSender| async move {
                let all = socket.io().of("/").unwrap();
                let mut ids: Vec<String> = all
                    .fetch_sockets()
                    .await
                    .iter()
                    .map(|s| s.id().to_string())
                    .collect();
                ids.extend(
                    all.fetch_remote_sockets()
                        .await
                        .unwrap()
                        .into_iter()
                        .map(|s| s.id),
                );
                ids.sort();
                let _ = ack.send(&ids);
            });
            socket.on(
                "join",
                |socket: SocketRef, Data(room): Data<String>, ack: AckSender| async move {
                    socket
                        .io()
                        .of("/")
                        .unwrap()
                        .sockets_join(room)
                        .await
                        .unwrap();
                    let _ = ack.send(&"ok");
                },
            );
        },
    );
    redis.ready().await;
    format!("http://{}", serve(axum::Router::new().layer(layer)).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn belfry_and_node_servers_share_one_cluster() {
    let redis = RedisServer::start().await;
    let a = belfry_server(&redis.url()).await;
    let b = belfry_server(&redis.url()).await;
    let node = NodeProcess::start("redis_node_server.mjs", &[&redis.url()]).await;
    let n = format!("http://127.0.0.1:{}", node.hello["port"]);

    let urls = json!([a, b, n]).to_string();
    let result = run_node("redis_cluster_clients.mjs", &[&urls, &redis.url()]).await;
    assert_eq!(result["error"], serde_json::Value::Null, "{result:#}");

    // a1, b1 and n1 are in r1; b2 and n2 in r2. Every broadcast reaches each target once,
    // whichever server (or the emitter) sent it; binary crosses intact both ways.
    let everyone = ["from-belfry"];
    let r1 = ["from-node", "from-emitter"];
    let r2 = ["bin-belfry:1,2,3", "bin-node:4,5"];
    let after_joins = ["r3", "r4"];
    let expected = |rooms: &[&[&'static str]]| -> Vec<String> {
        let mut all: Vec<&str> = everyone.to_vec();
        for room in rooms {
            all.extend_from_slice(room);
        }
        all.extend_from_slice(&after_joins);
        all.into_iter().map(str::to_owned).collect()
    };
    let received = &result["received"];
    for (client, rooms) in [
        ("a1", vec![&r1[..]]),
        ("b1", vec![&r1[..]]),
        ("n1", vec![&r1[..]]),
        ("b2", vec![&r2[..]]),
        ("n2", vec![&r2[..]]),
    ] {
        let mut got: Vec<String> = serde_json::from_value(received[client].clone()).unwrap();
        got.sort();
        let mut want = expected(&rooms);
        want.sort();
        assert_eq!(got, want, "{client}: {result:#}");
    }

    // fetchSockets from either kind of server sees all five sockets of the cluster.
    assert_eq!(result["fetchFromBelfry"], result["ids"], "{result:#}");
    assert_eq!(result["fetchFromNode"], result["ids"], "{result:#}");
}
