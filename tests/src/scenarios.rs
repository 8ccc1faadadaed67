//! The server the client scenarios (`tests/js/sio_client.mjs`, `tests/py/sio_client.py`) talk
//! to: one handler per step of the scenarios.

use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicU64, Ordering},
};

use std::time::Duration;

use bytes::Bytes;

use belfry::{
    AckError, AckSender, ConnectError, DisconnectReason, SocketIo, SocketRef, Spread,
    core::parser::Parser,
    extract::{Bin, Data, Event, Extension},
};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::serve_with_connect_info;

/// What the scenario server exposes to the tests.
#[derive(Debug)]
pub struct ScenarioServer {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// The server.
    pub io: SocketIo,
    /// Every socket's disconnect reason, as its disconnect handler saw it.
    pub reasons: mpsc::UnboundedReceiver<DisconnectReason>,
    /// The rooms (own room aside) each socket was in when its `disconnecting` handler ran.
    pub disconnecting_rooms: mpsc::UnboundedReceiver<Vec<String>>,
    /// The parser the server (and the clients of [`ScenarioServer::run`]) use.
    pub parser: Parser,
}

impl ScenarioServer {
    /// Runs `scenario` of `sio_client.mjs` over `transport` (`default`, `websocket` or
    /// `polling`), with the server's parser.
    pub async fn run(&self, scenario: &str, transport: &str) -> Value {
        let parser = parser_name(self.parser);
        crate::run_node("sio_client.mjs", &[&self.url, scenario, transport, parser]).await
    }
}

/// The parser's name as the client scripts take it: `default` or `msgpack`.
pub fn parser_name(parser: Parser) -> &'static str {
    match parser {
        Parser::Msgpack => "msgpack",
        _ => "default",
    }
}

/// The event names a socket received, recorded by its `on_any` handler.
#[derive(Debug, Clone, Default)]
struct Seen(Arc<Mutex<Vec<String>>>);

/// What the listener scenario records.
#[derive(Debug, Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn push(&self, entry: String) {
        self.0.lock().push(entry);
    }
}

#[derive(serde::Serialize)]
struct FileOut {
    name: &'static str,
    data: Bytes,
}

#[derive(serde::Deserialize)]
struct Upload {
    name: String,
    file: Bytes,
    thumbs: Vec<Bytes>,
}

#[derive(serde::Deserialize)]
struct Auth {
    #[allow(dead_code)]
    token: String,
}

/// Serves the handlers the scenarios of `sio_client.mjs` use; returns its URL and the
/// disconnect reasons it saw.
pub async fn start() -> ScenarioServer {
    start_with(Parser::Default).await
}

/// [`start`] with the given parser.
pub async fn start_with(parser: Parser) -> ScenarioServer {
    let (layer, io) = SocketIo::builder().parser(parser).build_layer();
    let (tx, reasons) = mpsc::unbounded_channel();
    let (rooms_tx, disconnecting_rooms) = mpsc::unbounded_channel();
    io.ns("/", move |socket: SocketRef, Data(auth): Data<Value>| {
        let (tx, rooms_tx) = (tx.clone(), rooms_tx.clone());
        async move {
            let _ = socket.emit("welcome", &(socket.id().as_str(), auth));
            socket.insert_extension(Seen::default());
            socket.on_any(|Event(name): Event, Extension(seen): Extension<Seen>| async move {
                seen.0.lock().push(name);
            });
            // Listeners, once, a packet middleware and the outgoing listener, logged in order.
            let log = Log::default();
            socket.insert_extension(log.clone());
            socket.on_any_outgoing(move |event, _args| log.push(format!("out:{event}")));
            socket.packet_middleware(|Event(name): Event| async move {
                if name.starts_with("forbidden:") {
                    Err("forbidden")
                } else {
                    Ok(())
                }
            });
            // A refusal with data: the ack gets both.
            socket.packet_middleware(|Event(name): Event| async move {
                if name.starts_with("limited:") {
                    Err(ConnectError::new("slow down").with_data(serde_json::json!({"retry": 5})))
                } else {
                    Ok(())
                }
            });
            socket.on("multi", |Data(n): Data<u32>, Extension(log): Extension<Log>| async move {
                log.push(format!("multi:a:{n}"));
            });
            socket.on("multi", |Data(n): Data<u32>, Extension(log): Extension<Log>| async move {
                log.push(format!("multi:b:{n}"));
            });
            socket.once("first-only", |Extension(log): Extension<Log>| async move {
                log.push("once".to_owned());
            });
            socket.on("removable", |Extension(log): Extension<Log>| async move {
                log.push("removable".to_owned());
            });
            socket.on("remove", |socket: SocketRef| async move {
                socket.off("removable");
            });
            socket.on("forbidden:x", |Extension(log): Extension<Log>| async move {
                log.push("forbidden ran".to_owned());
            });
            socket.on("ping-out", |socket: SocketRef| async move {
                let _ = socket.emit("pong-out", &());
            });
            socket.on("log", |Extension(log): Extension<Log>, ack: AckSender| async move {
                let entries = log.0.lock().clone();
                let _ = ack.send(&entries);
            });
            // Buffers anywhere in the arguments fill `Bytes` fields.
            socket.on("upload", |Data(upload): Data<Upload>, ack: AckSender| async move {
                let thumbs: Vec<usize> = upload.thumbs.iter().map(Bytes::len).collect();
                // One argument (a JSON array), not a tuple, which would spread into three.
                let _ = ack.send(&json!([upload.name, upload.file.to_vec(), thumbs]));
            });
            socket.on("send-file", |socket: SocketRef| async move {
                let file = FileOut {
                    name: "b.bin",
                    data: Bytes::from_static(&[1, 2, 3]),
                };
                let _ = socket.emit("file", &(file, Bytes::from_static(&[9])));
            });
            socket.on("want-bytes", |socket: SocketRef, ack: AckSender| async move {
                let answer: Bytes = socket.emit_with_ack("give-bytes", &()).await.unwrap();
                let _ = ack.send(&answer.to_vec());
            });
            socket.on("slow", |ack: AckSender| async move {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let _ = ack.send(&"slow done");
            });
            socket.on("fast", |ack: AckSender| async move {
                let _ = ack.send(&"fast done");
            });
            socket.on("whoami", |socket: SocketRef, ack: AckSender| async move {
                let _ = ack.send(&socket.handshake());
            });
            socket.on("fetch", |socket: SocketRef, Data(room): Data<String>, ack: AckSender| async move {
                let mut found: Vec<(String, usize)> = socket
                    .io()
                    .to(room)
                    .fetch_sockets()
                    .await
                    .unwrap()
                    .iter()
                    .map(|s| (s.id().to_string(), s.rooms().len()))
                    .collect();
                found.sort();
                let _ = ack.send(&found);
            });
            socket.on("seen", |Extension(seen): Extension<Seen>, ack: AckSender| async move {
                let names = seen.0.lock().clone();
                let _ = ack.send(&names);
            });
            socket.on("poll", |socket: SocketRef, ack: AckSender| async move {
                let answers = socket
                    .io()
                    .to("voters")
                    .timeout(Duration::from_millis(500))
                    .emit_with_ack::<bool, _>("vote?", &())
                    .unwrap()
                    .await;
                let yes = answers.iter().filter(|(_, a)| matches!(a, Ok(true))).count();
                let timeouts = answers
                    .iter()
                    .filter(|(_, a)| matches!(a, Err(AckError::Timeout)))
                    .count();
                let _ = ack.send(&json!({"answers": answers.len(), "yes": yes, "timeouts": timeouts}));
            });
            socket.on_disconnecting(move |socket: SocketRef| {
                let rooms_tx = rooms_tx.clone();
                async move {
                    let mut rooms = socket.rooms();
                    rooms.retain(|room| room != socket.id().as_str());
                    rooms.sort();
                    let _ = rooms_tx.send(rooms);
                }
            });
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
            socket.on("ack-later", |Data(value): Data<Value>, ack: AckSender| async move {
                tokio::task::yield_now().await;
                let _ = ack.send(&value);
            });
            socket.on("sum", |Data((a, b)): Data<(i64, i64)>, ack: AckSender| async move {
                let _ = ack.send(&(a + b));
            });
            socket.on("bin", |socket: SocketRef, Bin(bins): Bin| async move {
                let _ = socket.emit("bin", &Spread(&bins));
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
    // The same slow, fast and waiting handlers with serial handlers: each event's handler
    // waits for the one before.
    io.ns("/serial", |socket: SocketRef| async move {
        let _ = socket.emit("welcome", &socket.id());
        socket.on("slow", |ack: AckSender| async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let _ = ack.send(&"slow done");
        });
        socket.on("fast", |ack: AckSender| async move {
            let _ = ack.send(&"fast done");
        });
        socket.on(
            "ack-later",
            |Data(value): Data<Value>, ack: AckSender| async move {
                tokio::task::yield_now().await;
                let _ = ack.send(&value);
            },
        );
    })
    .serial_handlers();
    io.ns(
        "/typed",
        |_socket: SocketRef, Data(_auth): Data<Auth>| async move {},
    );
    // Two middlewares, in order: the first greets (before CONNECT), the second checks a token.
    io.ns("/guarded", |_socket: SocketRef| async move {})
        .middleware(|socket: SocketRef| async move {
            let _ = socket.emit("early", &"from the first middleware");
            Ok::<_, ConnectError>(())
        })
        .middleware(|Data(auth): Data<Value>| async move {
            if auth["token"] == "let-me-in" {
                Ok(())
            } else {
                Err(ConnectError::new("not authorized").with_data(serde_json::json!({"code": 401})))
            }
        });
    // A middleware refusing with any error (here `std::io::Error`): its message is sent.
    io.ns("/io-error", |_socket: SocketRef| async move {})
        .middleware(|| async { Err::<(), _>(std::io::Error::other("disk on fire")) });
    let app = axum::Router::new().layer(layer);
    let addr = serve_with_connect_info(app).await;
    ScenarioServer {
        url: format!("http://{addr}"),
        io,
        reasons,
        disconnecting_rooms,
        parser,
    }
}
