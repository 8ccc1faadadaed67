//! A mixed cluster on one real `redis-server`: two Belfry servers with `belfry_redis` and one
//! Node socket.io 4.8 server with `@socket.io/redis-adapter` 8.3, `socket.io-client` on every
//! server, and `@socket.io/redis-emitter` publishing; once in the classic protocol, once in the
//! sharded one (`createShardedAdapter`).
#![allow(clippy::unwrap_used)]

use std::{sync::Arc, time::Duration};

use belfry::{AckSender, ServerSideEvent, SocketIo, SocketRef, extract::Data};
use belfry_redis::{Protocol, RedisAdapter, SubscriptionMode};
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
    name: String,
}

#[derive(serde::Deserialize)]
struct Vote {
    name: String,
    bin: Bytes,
}

/// A Belfry server named `name` behaving as `tests/js/redis_node_server.mjs`.
async fn belfry_server(redis_url: &str, name: &'static str, protocol: Protocol) -> String {
    let redis = RedisAdapter::builder(redis_url)
        .protocol(protocol)
        .connect()
        .await
        .unwrap();
    let (layer, io) = SocketIo::builder().adapter(redis.factory()).build_layer();
    let notes = Arc::new(parking_lot::Mutex::new(Vec::<String>::new()));
    let noted = notes.clone();
    io.ns("/", move |socket: SocketRef, Data(auth): Data<Auth>| {
        let noted = noted.clone();
        async move {
            if let Some(room) = auth.room {
                socket.join(room);
            }
            socket.on("notes", move |ack: AckSender| {
                let mut notes = noted.lock().clone();
                notes.sort();
                async move {
                    let _ = ack.send(&notes);
                }
            });
            socket.set_data(&json!({ "name": auth.name })).unwrap();
            socket.on("poll", |socket: SocketRef, ack: AckSender| async move {
                let votes = socket
                    .io()
                    .timeout(Duration::from_secs(5))
                    .emit_with_ack::<Vote, _>("vote?", &"poll")
                    .unwrap()
                    .await;
                let mut votes: Vec<String> = votes
                    .into_iter()
                    .map(|(_, vote)| match vote {
                        Ok(vote) => format!("{}:{}", vote.name, vote.bin[0]),
                        Err(error) => error.to_string(),
                    })
                    .collect();
                votes.sort();
                let _ = ack.send(&votes);
            });
            socket.on(
                "whoami",
                move |socket: SocketRef, ack: AckSender| async move {
                    let io = socket.io();
                    io.server_side_emit("note", &format!("note from {name}"))
                        .await
                        .unwrap();
                    let mut answers: Vec<String> =
                        io.server_side_emit_with_ack("whoami", &name).await.unwrap();
                    answers.sort();
                    let _ = ack.send(&answers);
                },
            );
            socket.on("rooms", |socket: SocketRef, ack: AckSender| async move {
                let all = socket.io().of("/").unwrap().all_rooms().await.unwrap();
                let mut rooms: Vec<String> = all
                    .into_iter()
                    .filter(|room| room.len() == 2 && room.starts_with('r'))
                    .collect();
                rooms.sort();
                let _ = ack.send(&rooms);
            });
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
                // This server's sockets and the others', one type for both.
                let (mut ids, mut names): (Vec<String>, Vec<String>) = all
                    .fetch_sockets()
                    .await
                    .unwrap()
                    .iter()
                    .map(|s| {
                        let data: serde_json::Value = s.data().unwrap();
                        (
                            s.id().to_string(),
                            data["name"].as_str().unwrap().to_owned(),
                        )
                    })
                    .unzip();
                ids.sort();
                names.sort();
                let _ = ack.send(&json!({ "ids": ids, "names": names }));
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
        }
    });
    let received = notes.clone();
    io.on_server_side("note", move |event: ServerSideEvent| {
        let received = received.clone();
        async move { received.lock().push(event.data().unwrap()) }
    });
    io.on_server_side("whoami", move |event: ServerSideEvent| async move {
        let from: String = event.data().unwrap();
        event.ack(&format!("{name} (asked by {from})")).unwrap();
    });
    redis.ready().await;
    format!("http://{}", serve(axum::Router::new().layer(layer)).await)
}

/// Runs the clients' script on a cluster of two Belfry servers and a Node server speaking
/// `protocol` (`name`: "classic" or "sharded", for the Node scripts), checks what every
/// protocol must give, and returns the script's result for the protocol's own checks.
async fn run_cluster(protocol: Protocol, name: &str) -> serde_json::Value {
    let redis = RedisServer::start().await;
    let a = belfry_server(&redis.url(), "belfry-a", protocol).await;
    let b = belfry_server(&redis.url(), "belfry-b", protocol).await;
    let node = NodeProcess::start("redis_node_server.mjs", &[&redis.url(), "node", name]).await;
    let n = format!("http://127.0.0.1:{}", node.hello["port"]);

    let urls = json!([a, b, n]).to_string();
    let result = run_node("redis_cluster_clients.mjs", &[&urls, &redis.url(), name]).await;
    assert_eq!(result["error"], serde_json::Value::Null, "{result:#}");

    // a1, b1 and n1 are in r1; b2 and n2 in r2. Every broadcast reaches each target once,
    // whichever server (or the emitter; a Belfry server when sharded) sent it; binary crosses
    // intact both ways.
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

    // fetchSockets from either kind of server sees all five sockets of the cluster, with the
    // data each server set.
    let names = json!(["a1", "b1", "b2", "n1", "n2"]);
    for fetch in ["fetchFromBelfry", "fetchFromNode"] {
        assert_eq!(result[fetch]["ids"], result["ids"], "{fetch}: {result:#}");
        assert_eq!(result[fetch]["names"], names, "{fetch}: {result:#}");
    }

    // A broadcast with acks gathers every client's answer (binary included) from every server.
    let votes = json!(["a1:0", "b1:1", "b2:2", "n1:3", "n2:4"]);
    assert_eq!(result["pollFromBelfry"], votes, "{result:#}");
    assert_eq!(result["pollFromNode"], votes, "{result:#}");

    // serverSideEmit with an ack: one answer from each other server, whichever asks...
    let whoami = &result["whoami"];
    assert_eq!(
        whoami["a1"],
        json!(["belfry-b (asked by belfry-a)", "node (asked by belfry-a)"]),
        "{result:#}"
    );
    assert_eq!(
        whoami["b1"],
        json!(["belfry-a (asked by belfry-b)", "node (asked by belfry-b)"]),
        "{result:#}"
    );
    assert_eq!(
        whoami["n1"],
        json!(["belfry-a (asked by node)", "belfry-b (asked by node)"]),
        "{result:#}"
    );
    // ...and without: each server got the other two's notes, not its own.
    let notes = &result["notes"];
    assert_eq!(notes["a1"], json!(["note from belfry-b", "note from node"]));
    assert_eq!(notes["b1"], json!(["note from belfry-a", "note from node"]));
    assert_eq!(
        notes["n1"],
        json!(["note from belfry-a", "note from belfry-b"])
    );

    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn belfry_and_node_servers_share_one_cluster() {
    let result = run_cluster(Protocol::Classic, "classic").await;
    // allRooms sees the rooms of every server.
    let rooms = json!(["r1", "r2", "r3", "r4"]);
    assert_eq!(result["roomsFromBelfry"], rooms, "{result:#}");
    assert_eq!(result["roomsFromNode"], rooms, "{result:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn belfry_and_node_servers_share_one_sharded_cluster() {
    let result = run_cluster(Protocol::Sharded(SubscriptionMode::Dynamic), "sharded").await;
    // Each room has its own shard channel, subscribed by the servers where the room exists:
    // r1 on all three, r2 on belfry-b and node, r3 and r4 (joined by every socket) on all...
    assert_eq!(
        result["roomSubscribers"],
        json!({ "r1": 3, "r2": 2, "r3": 3, "r4": 3 }),
        "{result:#}"
    );
    // ...and unsubscribed when the last socket of the room on that server left.
    assert_eq!(
        result["roomSubscribersAfter"],
        json!({ "r1": 0, "r2": 0, "r3": 0, "r4": 0 }),
        "{result:#}"
    );
}
