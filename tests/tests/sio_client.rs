//! The official `socket.io-client` 4.8 (npm) against Belfry: connect over every transport,
//! auth, events and acks both ways, binary, rooms, refusals, ordering, shutdown.
#![allow(clippy::unwrap_used)]

use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicU64, Ordering},
};

use belfry::{
    AckSender, DisconnectReason, SocketIo, SocketRef,
    extract::{Bin, Data},
};
use belfry_tests::{run_node, serve};
use serde_json::{Value, json};
use tokio::sync::mpsc;

#[derive(serde::Deserialize)]
struct Auth {
    #[allow(dead_code)]
    token: String,
}

/// A server with the handlers the scenarios of `sio_client.mjs` use; returns its URL and the
/// disconnect reasons it saw.
async fn start() -> (String, SocketIo, mpsc::UnboundedReceiver<DisconnectReason>) {
    let (layer, io) = SocketIo::new_layer();
    let (tx, reasons) = mpsc::unbounded_channel();
    io.ns("/", move |socket: SocketRef, Data(auth): Data<Value>| {
        let tx = tx.clone();
        async move {
            let _ = socket.emit("welcome", &(socket.id().as_str(), auth));
            socket.on_disconnect(move |reason: DisconnectReason| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(reason);
                }
            });
            socket.on("echo", |socket: SocketRef, Data(value): Data<Value>| async move {
                let _ = socket.emit("echo", &value);
            });
            socket.on("ack", |Data(value): Data<Value>, ack: AckSender| async move {
                let _ = ack.send(&value);
            });
            socket.on("sum", |Data((a, b)): Data<(i64, i64)>, ack: AckSender| async move {
                let _ = ack.send(&(a + b));
            });
            socket.on("bin", |socket: SocketRef, Bin(bins): Bin| async move {
                let _ = socket.emit_binary("bin", &(), bins);
            });
            socket.on("ask", |socket: SocketRef| async move {
                let answer: i64 = socket.emit_with_ack("question", &"meaning?").await.unwrap();
                let _ = socket.emit("answer", &answer);
            });
            socket.on("kick", |socket: SocketRef| async move { socket.disconnect() });
            socket.on("join", |socket: SocketRef, Data(room): Data<String>, ack: AckSender| async move {
                socket.join(room);
                let _ = ack.send(&());
            });
            socket.on(
                "say-to",
                |socket: SocketRef, Data((room, text)): Data<(String, String)>, ack: AckSender| async move {
                    let _ = socket.to(room).emit("said", &text);
                    let _ = ack.send(&());
                },
            );
            socket.on("say-all", |socket: SocketRef, Data(text): Data<String>, ack: AckSender| async move {
                let _ = socket.io().emit("said", &text);
                let _ = ack.send(&());
            });
            // Ordering: every `seq` must be the next number.
            let next = Arc::new(AtomicU64::new(0));
            let in_order = Arc::new(AtomicBool::new(true));
            let (n, ok) = (next.clone(), in_order.clone());
            socket.on("seq", move |Data(i): Data<u64>| {
                let (n, ok) = (n.clone(), ok.clone());
                async move {
                    if n.fetch_add(1, Ordering::SeqCst) != i {
                        ok.store(false, Ordering::SeqCst);
                    }
                }
            });
            socket.on("seq-done", move |ack: AckSender| {
                let ok = in_order.load(Ordering::SeqCst) && next.load(Ordering::SeqCst) == 10_000;
                async move {
                    let _ = ack.send(&ok);
                }
            });
            socket.on("shutdown", |socket: SocketRef| async move {
                tokio::spawn(async move { socket.io().close().await });
            });
        }
    });
    io.ns(
        "/typed",
        |_socket: SocketRef, Data(_auth): Data<Auth>| async move {},
    );
    let app = axum::Router::new().layer(layer);
    let addr = serve(app).await;
    (format!("http://{addr}"), io, reasons)
}

#[tokio::test]
async fn basic_on_every_transport() {
    for transport in ["polling", "websocket", "default"] {
        let (url, _io, mut reasons) = start().await;
        let r = run_node("sio_client.mjs", &[&url, "basic", transport]).await;
        assert!(r.get("error").is_none(), "{transport}: {r}");
        assert_eq!(
            r["welcome"],
            json!({"idMatches": true, "auth": {"token": "abc"}}),
            "{transport}"
        );
        assert_eq!(
            r["echo"],
            json!({"a": [1, "two", {"three": 3}]}),
            "{transport}"
        );
        assert_eq!(r["ack"], json!({"x": "é"}), "{transport}");
        assert_eq!(r["sum"], 42, "{transport}");
        // A failed extractor answers the ack with the reason.
        let refused = r["refused"]["error"].as_str().unwrap();
        assert!(
            refused.contains("invalid event data"),
            "{transport}: {refused}"
        );
        assert_eq!(r["bin"], json!([[1, 2, 3], [255]]), "{transport}");
        assert_eq!(r["answer"], 42, "{transport}");
        assert_eq!(r["disconnectReason"], "io server disconnect", "{transport}");
        let expected = if transport == "polling" {
            "polling"
        } else {
            "websocket"
        };
        if transport != "default" {
            assert_eq!(r["transport"], expected);
        }
        assert_eq!(
            reasons.recv().await,
            Some(DisconnectReason::ServerNamespaceDisconnect)
        );
    }
}

#[tokio::test]
async fn rooms_and_broadcasts() {
    let (url, _io, _reasons) = start().await;
    let r = run_node("sio_client.mjs", &[&url, "rooms", "websocket"]).await;
    assert!(r.get("error").is_none(), "{r}");
    // `socket.to(room)` excludes the sender; `io.emit` reaches everyone, once.
    assert_eq!(r["got"]["a"], json!(["hello r1", "to everyone"]));
    assert_eq!(r["got"]["b"], json!(["hello r1", "from a", "to everyone"]));
    assert_eq!(r["got"]["c"], json!(["to everyone"]));
}

#[tokio::test]
async fn refused_connections() {
    let (url, _io, _reasons) = start().await;
    let r = run_node("sio_client.mjs", &[&url, "refusals", "default"]).await;
    assert!(r.get("error").is_none(), "{r}");
    assert_eq!(r["unknown"], "Invalid namespace");
    assert!(
        r["typed"]
            .as_str()
            .unwrap()
            .contains("missing field `token`"),
        "{r}"
    );
    assert_eq!(r["typedOk"], true);
}

#[tokio::test]
async fn ten_thousand_events_keep_their_order() {
    let (url, _io, _reasons) = start().await;
    let r = run_node("sio_client.mjs", &[&url, "ordering", "websocket"]).await;
    assert!(r.get("error").is_none(), "{r}");
    assert_eq!(r["ordered"], true);
}

#[tokio::test]
async fn close_disconnects_with_server_shutting_down() {
    let (url, _io, mut reasons) = start().await;
    let r = run_node("sio_client.mjs", &[&url, "shutdown", "websocket"]).await;
    assert!(r.get("error").is_none(), "{r}");
    assert_eq!(r["reason"], "transport close");
    assert_eq!(
        reasons.recv().await,
        Some(DisconnectReason::ServerShuttingDown)
    );
}
