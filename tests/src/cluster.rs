//! The scenario of the mixed-cluster tests (`tests/tests/redis_cluster.rs`,
//! `tests/tests/postgres_cluster.rs`): two Belfry servers and one Node server sharing one
//! backend, `socket.io-client` on every server. What a Belfry server does is here
//! ([`belfry_server`]), what the Node server does in `tests/js/redis_node_server.mjs`, the
//! clients in `tests/js/redis_cluster_clients.mjs`; [`run_clients`] runs them and checks what
//! every adapter must give. The fault tests of the adapters share the raw-client helpers at the
//! end ([`room_server`], [`next_event`], [`broadcast_reaches_both`], ...).

use std::{future::Future, sync::Arc, time::Duration};

use belfry::{
    AckSender, RemoteSocket, ServerSideEvent, SocketIo, SocketIoBuilder, SocketRef,
    core::adapter::{Adapter, AdapterError, LocalSockets},
    extract::Data,
};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::{RawWs, run_node, serve};

#[derive(serde::Deserialize)]
struct Shout {
    room: Option<String>,
    except: Option<String>,
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

/// A Belfry server named `name` behaving as `tests/js/redis_node_server.mjs`, over the
/// adapter `factory` makes; `ready` resolves once the adapter listens to every namespace.
/// Returns its URL and its handle.
pub async fn belfry_server<F>(
    name: &'static str,
    factory: F,
    ready: impl Future<Output = ()>,
) -> (String, SocketIo)
where
    F: Fn(Arc<dyn LocalSockets>) -> Arc<dyn Adapter> + Send + Sync + 'static,
{
    belfry_server_with(name, SocketIo::builder().adapter(factory), ready).await
}

/// [`belfry_server`] from a builder of the caller's (its adapter set, connection state
/// recovery on, ...).
pub async fn belfry_server_with(
    name: &'static str,
    builder: SocketIoBuilder,
    ready: impl Future<Output = ()>,
) -> (String, SocketIo) {
    let (layer, io) = builder.build_layer();
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
                    let mut target = match shout.room {
                        Some(room) => io.to(room),
                        None => io.of("/").unwrap(),
                    };
                    if let Some(except) = shout.except {
                        target = target.except(except);
                    }
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
            socket.on(
                "leave",
                |socket: SocketRef, Data(room): Data<String>, ack: AckSender| async move {
                    let all = socket.io().of("/").unwrap();
                    all.sockets_leave(room).await.unwrap();
                    let _ = ack.send(&"ok");
                },
            );
            socket.on(
                "kick",
                |socket: SocketRef, Data(room): Data<String>, ack: AckSender| async move {
                    // Answered first: the asking socket may be one of those kicked.
                    let _ = ack.send(&"ok");
                    let io = socket.io();
                    io.to(room).disconnect_sockets(false).await.unwrap();
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
    ready.await;
    let url = format!("http://{}", serve(axum::Router::new().layer(layer)).await);
    (url, io)
}

/// Waits until the main namespace of `io` counts `servers` servers (at most 15 s).
pub async fn until_servers(io: &SocketIo, servers: usize) {
    until_count(io, "/", servers, Duration::from_secs(15)).await;
}

/// Runs the clients' script (`tests/js/redis_cluster_clients.mjs`) on a cluster of two Belfry
/// servers (`a`, `b`) and a Node server (`n`) sharing the backend at `backend_url` in
/// `protocol` ("classic", "sharded", "postgres", for the Node scripts), checks what every
/// adapter must give, and returns the script's result for the adapter's own checks.
pub async fn run_clients(a: &str, b: &str, n: &str, backend_url: &str, protocol: &str) -> Value {
    let urls = json!([a, b, n]).to_string();
    let result = run_node("redis_cluster_clients.mjs", &[&urls, backend_url, protocol]).await;
    assert_eq!(result["error"], Value::Null, "{result:#}");

    // a1, b1 and n1 are in r1; b2 and n2 in r2. Every broadcast reaches each target once,
    // whichever server (or the emitter; a Belfry server when sharded) sent it; binary crosses
    // intact both ways.
    let everyone = ["from-belfry"];
    let r1 = ["from-node", "from-emitter", "not-r2"];
    let r2 = ["bin-belfry:1,2,3", "bin-node:4,5", "not-r1"];
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

    // Sockets made to leave a room on every server got nothing sent to it after; sockets
    // disconnected from any server were told so by the server.
    let kicked = json!({
        "b2": "io server disconnect",
        "n2": "io server disconnect",
        "a1": "io server disconnect",
        "b1": "io server disconnect",
        "n1": "io server disconnect",
    });
    assert_eq!(result["disconnects"], kicked, "{result:#}");

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

/// A server from `builder` (its adapter set) whose sockets join room "r", served once `ready`
/// resolved, and a raw WebSocket client connected to its main namespace; with the client's
/// CONNECT reply.
pub async fn room_server(
    builder: SocketIoBuilder,
    ready: impl Future<Output = ()>,
) -> (SocketIo, RawWs, String) {
    let (layer, io) = builder.build_layer();
    io.ns("/", |socket: SocketRef| async move { socket.join("r") });
    ready.await;
    let addr = serve(axum::Router::new().layer(layer)).await;
    let (mut client, _) = RawWs::open(addr).await;
    client.frame(0x81, b"40").await;
    let (_, connect) = client.read_frame().await.unwrap();
    let connect = String::from_utf8(connect).unwrap();
    assert!(connect.starts_with("40{\"sid\""), "{connect}");
    (io, client, connect)
}

/// The next frame other than a ping, or `None` if none comes within `wait`.
pub async fn next_event(client: &mut RawWs, wait: Duration) -> Option<String> {
    loop {
        let (_, frame) = tokio::time::timeout(wait, client.read_frame())
            .await
            .ok()??;
        let frame = String::from_utf8(frame).unwrap();
        if frame != "2" {
            return Some(frame);
        }
    }
}

/// The arguments of the next event, or `None` if none comes within `wait`.
pub async fn next_args(client: &mut RawWs, wait: Duration) -> Option<Vec<Value>> {
    loop {
        let frame = next_event(client, wait).await?;
        if let Some(json) = frame.strip_prefix("42") {
            return Some(serde_json::from_str(json).unwrap());
        }
    }
}

/// Waits until `check` holds, `deadline` at most (panics naming `what`); returns how long.
pub async fn wait_until(what: &str, deadline: Duration, check: impl Fn() -> bool) -> Duration {
    let start = std::time::Instant::now();
    while !check() {
        assert!(start.elapsed() < deadline, "{what} not within {deadline:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

/// While the backend is away: a broadcast from `a`'s server still reaches `a`'s client (local
/// delivery goes on), and, when `b` is given, not `b`'s client yet.
pub async fn local_delivery_goes_on(a_io: &SocketIo, a: &mut RawWs, b: Option<&mut RawWs>) {
    a_io.to("r").emit("news", "during").unwrap();
    assert_eq!(
        next_event(a, Duration::from_secs(5)).await.as_deref(),
        Some(r#"42["news","during"]"#)
    );
    if let Some(b) = b {
        assert_eq!(next_event(b, Duration::from_millis(300)).await, None);
    }
}

/// Once the backend is back: the broadcast [`local_delivery_goes_on`] left waiting reached
/// `b`'s client, and `a`'s not twice; traffic flows both ways, once each; and requests to the
/// other server are answered (its socket, in its own room and "r").
pub async fn flows_again_after_the_outage(
    a_io: &SocketIo,
    a: &mut RawWs,
    b_io: &SocketIo,
    b: &mut RawWs,
) {
    assert_eq!(
        next_event(b, Duration::from_secs(5)).await.as_deref(),
        Some(r#"42["news","during"]"#)
    );
    assert_eq!(next_event(a, Duration::from_millis(300)).await, None);
    broadcast_reaches_both(a_io, a, b, "after").await;
    broadcast_reaches_both(b_io, a, b, "after-b").await;
    let remote = remote_sockets(a_io).await.unwrap();
    assert_eq!(remote.len(), 1);
    assert_eq!(remote[0].rooms().len(), 2);
}
/// Broadcasts `text` to room "r" from `from` and checks each client gets it exactly once.
pub async fn broadcast_reaches_both(from: &SocketIo, a: &mut RawWs, b: &mut RawWs, text: &str) {
    from.to("r").emit("news", text).unwrap();
    let expected = format!(r#"42["news","{text}"]"#);
    for client in [a, b] {
        assert_eq!(
            next_event(client, Duration::from_secs(5)).await.as_deref(),
            Some(expected.as_str())
        );
        assert_eq!(next_event(client, Duration::from_millis(300)).await, None);
    }
}

/// The sockets of the main namespace of `io` on the other servers.
pub async fn remote_sockets(io: &SocketIo) -> Result<Vec<RemoteSocket>, AdapterError> {
    let all = io.of("/").unwrap().fetch_sockets().await?;
    Ok(all
        .into_iter()
        .filter(|socket| socket.as_local().is_none())
        .collect())
}

/// Waits until the namespace `ns` of `io` counts `servers` servers, `within` at most.
pub async fn until_count(io: &SocketIo, ns: &str, servers: usize, within: Duration) {
    let operator = io.of(ns).unwrap();
    let start = std::time::Instant::now();
    loop {
        let counted = operator.server_count().await;
        if counted == servers {
            return;
        }
        assert!(
            start.elapsed() < within,
            "{counted} servers in {ns}, not {servers}, after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
