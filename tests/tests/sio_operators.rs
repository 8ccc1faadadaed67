//! The per-socket operators, as Node's: `socket.timeout(ms).emitWithAck` (answered, and timed
//! out), `socket.volatile.emit` (dropped for a transport that cannot take it now),
//! `socket.compress(false).emit` (a polling response left uncompressed); rooms one or many
//! (`join`, `leave`, `to`, `except` with arrays); `off` removing every listener of an event or
//! one. The official `socket.io-client` drives the first ones (`tests/js/sio_operators.mjs`);
//! raw polling requests show what volatile and compress do on the wire.
#![allow(clippy::unwrap_used)]

use std::{
    io::Read as _,
    time::{Duration, Instant},
};

use belfry::{AckError, AckSender, SocketIo, SocketRef, extract::Data};
use belfry_tests::{RawResponse, http, polling_joined, run_node, serve};
use serde_json::{Value, json};

/// A server whose `/` answers the scenarios of `sio_operators.mjs`.
async fn start() -> String {
    let (layer, io) = SocketIo::new_layer();
    io.ns("/", |socket: SocketRef| async move {
        socket.join(["lobby", "hall"]);

        // timeout: two questions with their own timeouts, the first never answered.
        socket.on("ask", |socket: SocketRef, ack: AckSender| async move {
            let started = Instant::now();
            let ignored = socket
                .timeout(Duration::from_millis(300))
                .emit_with_ack::<String, _>("ignored?", &())
                .await;
            let waited = started.elapsed().as_millis();
            let answered = socket
                .timeout(Duration::from_secs(3))
                .emit_with_ack::<String, _>("answered?", &())
                .await;
            let _ = ack.send(&json!({
                "ignoredTimedOut": matches!(ignored, Err(AckError::Timeout)),
                "waitedMs": waited,
                "answered": answered.ok(),
            }));
        });

        // rooms: arrays both ways.
        let own_rooms = |socket: &SocketRef| {
            let mut rooms = socket.rooms();
            rooms.retain(|room| room != socket.id().as_str());
            rooms.sort();
            rooms
        };
        socket.on(
            "join",
            move |socket: SocketRef, Data(rooms): Data<Vec<String>>, ack: AckSender| async move {
                socket.join(rooms);
                let _ = ack.send(&own_rooms(&socket));
            },
        );
        socket.on(
            "leave",
            move |socket: SocketRef, Data(rooms): Data<Vec<String>>, ack: AckSender| async move {
                socket.leave(&rooms);
                let _ = ack.send(&own_rooms(&socket));
            },
        );
        socket.on(
            "say-to",
            |socket: SocketRef,
             Data((rooms, text)): Data<(Vec<String>, String)>,
             ack: AckSender| async move {
                let _ = ack.send(&socket.to(&rooms[..]).emit("said", &text).unwrap());
            },
        );
        socket.on(
            "io-to-except",
            |socket: SocketRef,
             Data((rooms, except, text)): Data<(Vec<String>, Vec<String>, String)>,
             ack: AckSender| async move {
                let sent = socket.io().to(rooms).except(except).emit("said", &text);
                let _ = ack.send(&sent.unwrap());
            },
        );

        // off: two listeners of "knock", one removable by its id.
        let first = socket.on("knock", |socket: SocketRef| async move {
            let _ = socket.emit("heard", "first");
        });
        socket.on("knock", |socket: SocketRef| async move {
            let _ = socket.emit("heard", "second");
        });
        socket.on(
            "off-one",
            move |socket: SocketRef, ack: AckSender| async move {
                let _ = ack.send(&socket.off_listener(first));
            },
        );
        socket.on("off-all", |socket: SocketRef, ack: AckSender| async move {
            socket.off("knock");
            let _ = ack.send(&());
        });
    });
    let addr = serve(axum::Router::new().layer(layer)).await;
    format!("http://{addr}")
}

async fn run(scenario: &str, transport: &str) -> Value {
    let url = start().await;
    let r = run_node("sio_operators.mjs", &[&url, scenario, transport]).await;
    assert!(
        r.get("error").is_none(),
        "{scenario} over {transport}: {r:#}"
    );
    r
}

#[tokio::test]
async fn timeout_emit_with_ack_answered_and_timed_out() {
    for transport in ["websocket", "polling"] {
        let r = run("timeout", transport).await;
        let answers = &r["answers"];
        assert_eq!(answers["ignoredTimedOut"], true, "{transport}: {r:#}");
        assert_eq!(answers["answered"], "yes", "{transport}: {r:#}");
        // The operator's 300 ms, not the server's 5 s.
        let waited = answers["waitedMs"].as_u64().unwrap();
        assert!((300..2000).contains(&waited), "{transport}: {waited} ms");
    }
}

#[tokio::test]
async fn rooms_one_or_many() {
    for transport in ["websocket", "polling"] {
        let r = run("rooms", transport).await;
        assert_eq!(
            r["rooms"],
            json!({
                "a": ["hall", "lobby", "r1", "r2"],
                "b": ["hall", "lobby", "r2", "r3"],
                "c": ["hall", "lobby", "r3"],
            }),
            "{transport}"
        );
        assert_eq!(r["afterLeave"], json!(["hall", "lobby"]), "{transport}");
        // a, in both rooms, gets "first" once; "second" leaves out r1 (a); after a left,
        // "third" reaches b alone.
        assert_eq!(
            r["got"],
            json!({
                "a": ["first"],
                "b": ["first", "second", "third"],
                "c": ["second"],
            }),
            "{transport}"
        );
    }
}

#[tokio::test]
async fn off_removes_every_listener_or_one() {
    let r = run("off", "websocket").await;
    assert_eq!(r["both"], json!(["first", "second"]), "{r:#}");
    assert_eq!(r["removed"], true, "{r:#}");
    assert_eq!(r["one"], json!(["second"]), "{r:#}");
    assert_eq!(r["removedAgain"], false, "{r:#}");
    assert_eq!(r["none"], json!([]), "{r:#}");
}

/// A polling client joined to `/` of a new server: the server handle, the client's socket on
/// the server, the address and the session's path.
async fn polling_socket() -> (SocketIo, SocketRef, std::net::SocketAddr, String) {
    let (layer, io) = SocketIo::new_layer();
    let addr = serve(axum::Router::new().layer(layer)).await;
    let path = polling_joined(addr).await;
    let socket = io.of("/").unwrap().sockets().pop().unwrap();
    (io, socket, addr, path)
}

#[tokio::test]
async fn volatile_emits_to_one_socket_skip_it_when_not_writable() {
    let (_io, socket, addr, path) = polling_socket().await;

    // No GET pending: the volatile event is dropped without an error; one asking for an ack
    // is never answered, and times out (as Node's); a normal one waits for the next GET.
    socket.volatile().emit("typing", &()).unwrap();
    let started = Instant::now();
    let answer = socket
        .volatile()
        .timeout(Duration::from_millis(200))
        .emit_with_ack::<(), _>("sure?", &())
        .await;
    assert!(matches!(answer, Err(AckError::Timeout)), "{answer:?}");
    assert!(started.elapsed() >= Duration::from_millis(200));
    socket.emit("kept", &()).unwrap();
    // Packets queued: not writable either.
    socket.volatile().emit("typing", &()).unwrap();
    assert_eq!(
        http(addr, "GET", &path, &[], b"").await.text(),
        r#"42["kept"]"#
    );

    // A GET pending: the volatile event goes out.
    let pending = tokio::spawn({
        let path = path.clone();
        async move { http(addr, "GET", &path, &[], b"").await }
    });
    // Sent again until the GET is there to take it (each one dropped before that).
    while !pending.is_finished() {
        socket.volatile().emit("typing", &1).unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(pending.await.unwrap().text(), r#"42["typing",1]"#);

    // The options carry over to a broadcast from the socket.
    let flags = *socket.volatile().compress(false).to(["a", "b"]).flags();
    assert!(flags.volatile);
    assert_eq!(flags.compress, Some(false));
}

fn decoded(res: &RawResponse) -> String {
    match res.header("content-encoding") {
        Some("gzip") => {
            let mut out = String::new();
            flate2::read::GzDecoder::new(&res.body[..])
                .read_to_string(&mut out)
                .unwrap();
            out
        }
        None => res.text(),
        Some(other) => panic!("unexpected encoding {other}"),
    }
}

#[tokio::test]
async fn compress_false_leaves_one_sockets_polling_response_uncompressed() {
    let (_io, socket, addr, path) = polling_socket().await;
    let big = "a".repeat(2000);
    let gzip = [("accept-encoding", "gzip")];
    for (compress, encoding) in [
        (None, Some("gzip")),
        (Some(true), Some("gzip")),
        (Some(false), None),
    ] {
        match compress {
            None => socket.emit("big", &big).unwrap(),
            Some(compress) => socket.compress(compress).emit("big", &big).unwrap(),
        }
        let res = http(addr, "GET", &path, &gzip, b"").await;
        assert_eq!(res.header("content-encoding"), encoding, "{compress:?}");
        assert_eq!(decoded(&res), format!(r#"42["big","{big}"]"#));
    }

    // With an ack and a timeout too: sent uncompressed, answered.
    let asking = tokio::spawn({
        let socket = socket.clone();
        let big = big.clone();
        async move {
            socket
                .compress(false)
                .timeout(Duration::from_secs(5))
                .emit_with_ack::<u32, _>("big?", &big)
                .await
        }
    });
    let res = http(addr, "GET", &path, &gzip, b"").await;
    assert_eq!(res.header("content-encoding"), None);
    let text = res.text();
    let id = text
        .strip_prefix("42")
        .and_then(|rest| rest.split_once('['))
        .map(|(id, _)| id.to_owned())
        .unwrap();
    assert!(text.ends_with(&format!(r#"["big?","{big}"]"#)), "{text}");
    let answer = format!("43{id}[7]");
    assert_eq!(
        http(addr, "POST", &path, &[], answer.as_bytes())
            .await
            .text(),
        "ok"
    );
    assert_eq!(asking.await.unwrap().unwrap(), 7);
}
