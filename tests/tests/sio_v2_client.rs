//! socket.io-client 2.x (npm `socket.io-client@2`, Engine.IO v3) against a Belfry server with
//! `allow_eio3`, over polling (binary and base64 payloads), WebSocket and the upgrade: the
//! implicit `/`, events and acks both ways, binary both ways, a namespace with query auth, the
//! v4-protocol ERROR packets, client pings, a server disconnect. Without `allow_eio3`, v3 is
//! refused as Node refuses it.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use belfry::{AckSender, ConnectError, SocketIo, SocketRef, extract::Data};
use belfry_tests::{http, run_node, serve};
use bytes::Bytes;
use serde_json::{Value, json};

async fn server() -> String {
    let (layer, io) = SocketIo::builder()
        .allow_eio3(true)
        .ping_interval(Duration::from_millis(200))
        .ping_timeout(Duration::from_millis(200))
        .build_layer();
    io.ns("/", |socket: SocketRef| async move {
        socket.emit("welcome", &socket.ns()).unwrap();
        socket.on(
            "echo",
            |socket: SocketRef, Data(value): Data<Value>| async move {
                socket.emit("echo", &value).unwrap();
            },
        );
        socket.on(
            "sum",
            |Data((a, b)): Data<(i64, i64)>, ack: AckSender| async move {
                ack.send(&(a + b)).unwrap();
            },
        );
        socket.on(
            "bin",
            |socket: SocketRef, Data(bufs): Data<(Bytes, Bytes)>| async move {
                socket.emit("bin", &bufs).unwrap();
            },
        );
        socket.on("ask", |socket: SocketRef| async move {
            let answer: i64 = socket.emit_with_ack("question", &"?").await.unwrap();
            socket.emit("answer", &answer).unwrap();
        });
        socket.on(
            "kick",
            |socket: SocketRef| async move { socket.disconnect() },
        );
    });
    io.ns("/guarded", |socket: SocketRef| async move {
        let auth = socket.handshake().auth;
        socket.emit("welcome", &auth).unwrap();
    })
    .middleware(|Data(auth): Data<Value>| async move {
        if auth["token"] == "ok" {
            Ok(())
        } else {
            Err(ConnectError::new("not authorized").with_data(json!({ "code": 401 })))
        }
    });
    let addr = serve(axum::Router::new().layer(layer)).await;
    format!("http://{addr}")
}

#[tokio::test]
async fn socket_io_2_clients_on_every_transport() {
    for (transport, b64) in [
        ("polling", ""),
        ("polling", "b64"),
        ("websocket", ""),
        ("default", ""),
    ] {
        let url = server().await;
        let r = run_node("sio_v2_client.mjs", &[&url, transport, b64]).await;
        let case = format!("{transport} {b64}");
        assert!(r["error"].is_null(), "{case}: {r:#}");
        assert_eq!(r["idIsEngineId"], true, "{case}");
        assert_eq!(r["welcome"], "/", "{case}");
        assert_eq!(r["echo"], json!({ "a": [1, "two"] }), "{case}");
        assert_eq!(r["sum"], 42, "{case}");
        assert_eq!(r["bin"], json!([[1, 2, 3], [255]]), "{case}");
        assert_eq!(r["answer"], 42, "{case}");
        // `/guarded#<engine id>`, with the query as auth.
        let engine_id = r["guardedEngineId"].as_str().unwrap();
        assert_eq!(r["guardedId"], format!("/guarded#{engine_id}"), "{case}");
        assert_eq!(r["guarded"], json!({ "token": "ok" }), "{case}");
        // The ERROR packet carries the refusal's data (else its message), as Node's.
        assert_eq!(r["refused"], json!({ "code": 401 }), "{case}");
        assert_eq!(
            r["unknown"],
            json!({ "message": "Invalid namespace" }),
            "{case}"
        );
        assert_eq!(r["connectedAfterPings"], true, "{case}");
        let expected = if transport == "polling" {
            "polling"
        } else {
            "websocket"
        };
        assert_eq!(r["transport"], expected, "{case}");
        assert_eq!(r["disconnectReason"], "io server disconnect", "{case}");
    }
}

#[tokio::test]
async fn engine_io_3_is_refused_unless_allowed() {
    let (layer, _io) = SocketIo::new_layer();
    let addr = serve(axum::Router::new().layer(layer)).await;
    for query in ["EIO=3&transport=polling", "transport=polling"] {
        let res = http(addr, "GET", &format!("/socket.io/?{query}"), &[], b"").await;
        assert_eq!(res.status, 400, "{query}");
        assert_eq!(
            res.json(),
            json!({ "code": 5, "message": "Unsupported protocol version" })
        );
    }
}

#[tokio::test]
async fn a_v3_client_that_stops_pinging_is_closed() {
    let url = server().await;
    let addr = url.trim_start_matches("http://").parse().unwrap();
    let open = http(addr, "GET", "/socket.io/?EIO=3&transport=polling", &[], b"").await;
    // `<len>:0{...}` then `2:40`: the open packet, then `/` joined at once.
    let body = open.text();
    let (len, rest) = body.split_once(':').unwrap();
    let open_packet: String = rest.chars().take(len.parse().unwrap()).collect();
    assert!(open_packet.starts_with("0{\"sid\""), "{body}");
    let sid = serde_json::from_str::<Value>(&open_packet[1..]).unwrap()["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/socket.io/?EIO=3&transport=polling&sid={sid}");
    let first = http(addr, "GET", &path, &[], b"").await.text();
    assert!(first.starts_with("2:40"), "{first}");
    // A ping is answered with a pong.
    assert_eq!(http(addr, "POST", &path, &[], b"1:2").await.text(), "ok");
    assert_eq!(http(addr, "GET", &path, &[], b"").await.text(), "1:3");
    // No more pings: after ping interval + timeout (400 ms) the session is gone.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let gone = http(addr, "GET", &path, &[], b"").await;
    assert_eq!(gone.status, 400);
    assert_eq!(gone.json()["code"], 1);
}

#[tokio::test]
async fn a_malformed_v3_payload_closes_its_session_only() {
    let url = server().await;
    let addr = url.trim_start_matches("http://").parse().unwrap();
    let mut paths = Vec::new();
    for _ in 0..2 {
        let body = http(addr, "GET", "/socket.io/?EIO=3&transport=polling", &[], b"")
            .await
            .text();
        let start = body.find('{').unwrap();
        let end = body.find('}').unwrap();
        let sid = serde_json::from_str::<Value>(&body[start..=end]).unwrap()["sid"]
            .as_str()
            .unwrap()
            .to_owned();
        paths.push(format!("/socket.io/?EIO=3&transport=polling&sid={sid}"));
    }
    // A length that does not match its packet.
    assert_eq!(
        http(addr, "POST", &paths[0], &[], b"9:42").await.status,
        400
    );
    assert_eq!(http(addr, "GET", &paths[0], &[], b"").await.status, 400);
    // The other session is untouched: its `/` CONNECT, then a pong for its ping.
    assert!(
        http(addr, "GET", &paths[1], &[], b"")
            .await
            .text()
            .starts_with("2:40")
    );
    assert_eq!(
        http(addr, "POST", &paths[1], &[], b"1:2").await.text(),
        "ok"
    );
    assert_eq!(http(addr, "GET", &paths[1], &[], b"").await.text(), "1:3");
}
