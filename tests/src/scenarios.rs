//! The server the client scenarios (`tests/js/sio_client.mjs`, `tests/py/sio_client.py`) talk
//! to: one handler per step of the scenarios.

use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicU64, Ordering},
};

use belfry::{
    AckSender, ConnectError, DisconnectReason, SocketIo, SocketRef,
    extract::{Bin, Data},
};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::serve;

#[derive(serde::Deserialize)]
struct Auth {
    #[allow(dead_code)]
    token: String,
}

/// Serves the handlers the scenarios of `sio_client.mjs` use; returns its URL and the
/// disconnect reasons it saw.
pub async fn start() -> (String, SocketIo, mpsc::UnboundedReceiver<DisconnectReason>) {
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
    // Two middlewares, in order: the first greets (before CONNECT), the second checks a token.
    io.ns("/guarded", |_socket: SocketRef| async move {})
        .middleware(|socket: SocketRef| async move {
            let _ = socket.emit("early", &"from the first middleware");
            Ok(())
        })
        .middleware(|Data(auth): Data<Value>| async move {
            if auth["token"] == "let-me-in" {
                Ok(())
            } else {
                Err(ConnectError::new("not authorized").with_data(serde_json::json!({"code": 401})))
            }
        });
    let app = axum::Router::new().layer(layer);
    let addr = serve(app).await;
    (format!("http://{addr}"), io, reasons)
}
