//! The Rust client (`belfry-client`) against Node's socket.io 4.8 (`tests/js/client_node_server.mjs`)
//! and against Belfry (the same server, below), the same scenarios on both: events with any
//! arguments and binary, acks both ways, auth, a refused namespace, a server disconnect, and a
//! lost connection: reconnection, connection state recovery, emits made while disconnected.
#![allow(clippy::unwrap_used)]

use std::{collections::HashMap, future::Future, sync::Arc, time::Duration};

use belfry::{
    AckSender, ConnectError as ServerConnectError, SocketIo, SocketRef,
    core::adapter::ConnectionStateRecovery,
    extract::{Args, Data},
};
use belfry_client::{
    ClientBuilder, ConnectError, DisconnectReason, Event, Parser, ReconnectEvent, Socket,
    SocketBuilder, Transport, Transports, Value,
};
use belfry_tests::{processes::NodeProcess, serve};
use bytes::Bytes;
use parking_lot::Mutex;
use serde_json::json;
use tokio::sync::mpsc;

/// How long the tests wait for an answer: a server that never answers fails the test rather
/// than hangs it.
const ACK_WAIT: Duration = Duration::from_secs(10);

/// Every choice of transports: socket.io-client's default (polling, then the upgrade), polling
/// only, WebSocket only.
const TRANSPORTS: [Transports; 3] = [
    Transports::PollingThenWebSocket,
    Transports::Polling,
    Transports::WebSocket,
];

/// A Belfry server behaving as `tests/js/client_node_server.mjs`.
async fn belfry_server() -> String {
    format!("http://{}", serve(belfry_app(Parser::Default)).await)
}

/// The app of [`belfry_server`], with `parser`.
fn belfry_app(parser: Parser) -> axum::Router {
    let (layer, io) = SocketIo::builder()
        .connection_state_recovery(ConnectionStateRecovery::default())
        .parser(parser)
        .build_layer();
    io.ns("/refused", |_: SocketRef| async {})
        .middleware(|| async move {
            Err::<(), _>(ServerConnectError::new("not authorized").with_data(json!({ "code": 42 })))
        });
    io.ns("/admin", |socket: SocketRef| async move {
        socket.on("conn?", |socket: SocketRef, ack: AckSender| async move {
            let _ = ack.send(socket.engine_id().as_str());
        });
        socket.on("query?", |socket: SocketRef, ack: AckSender| async move {
            let _ = ack.send(&socket.handshake().query);
        });
        socket.on("auth?", |socket: SocketRef, ack: AckSender| async move {
            let _ = ack.send(&socket.handshake().auth);
        });
        socket.on("echo", |socket: SocketRef, args: Args| async move {
            let _ = socket.emit("echo", &args);
        });
    });
    // For retries, as the Node server.
    let log = Arc::new(Mutex::new(Vec::<serde_json::Value>::new()));
    let deliveries = Arc::new(Mutex::new(HashMap::<String, u32>::new()));
    io.ns("/", move |socket: SocketRef| {
        let (log, deliveries) = (log.clone(), deliveries.clone());
        async move {
            for event in ["flaky", "fine", "never", "dropme"] {
                let (log, deliveries) = (log.clone(), deliveries.clone());
                socket.on(
                    event,
                    move |socket: SocketRef, Data(arg): Data<String>, ack: AckSender| {
                        let (log, deliveries) = (log.clone(), deliveries.clone());
                        async move {
                            log.lock().push(json!([event, arg, ack.expected()]));
                            let n = {
                                let mut deliveries = deliveries.lock();
                                let n = deliveries.entry(arg.clone()).or_default();
                                *n += 1;
                                *n
                            };
                            let answer = format!("{arg}-ok");
                            match (event, n) {
                                ("flaky", n) if n % 2 == 0 => drop(ack.send(&answer)),
                                ("fine", _) => drop(ack.send(&answer)),
                                ("dropme", 1) => {
                                    tokio::time::sleep(Duration::from_millis(50)).await;
                                    socket.close_transport();
                                }
                                ("dropme", _) => drop(ack.send(&answer)),
                                _ => {}
                            }
                        }
                    },
                );
            }
            let log = log.clone();
            socket.on("log?", move |ack: AckSender| {
                let log = log.lock().clone();
                async move {
                    let _ = ack.send(&log);
                }
            });
            root_handlers(socket);
        }
    });
    axum::Router::new().layer(layer)
}

/// The handlers of `/` but those for retries.
fn root_handlers(socket: SocketRef) {
    {
        let _ = socket.emit("welcome", &socket.id().to_string());
        socket.on("echo", |socket: SocketRef, args: Args| async move {
            let _ = socket.emit("echo", &args);
        });
        socket.on("ack", |args: Args, ack: AckSender| async move {
            let _ = ack.send(&args);
        });
        socket.on("ask", |socket: SocketRef| async move {
            let answer = socket
                .timeout(Duration::from_secs(5))
                .emit_with_ack::<String, _>("question", &"q?")
                .await;
            let _ = socket.emit("answer", &answer.unwrap_or_else(|_| "no answer".to_owned()));
        });
        socket.on("auth?", |socket: SocketRef, ack: AckSender| async move {
            let _ = ack.send(&socket.handshake().auth);
        });
        socket.on(
            "transport?",
            |socket: SocketRef, ack: AckSender| async move {
                let _ = ack.send(socket.transport().as_str());
            },
        );
        socket.on("conn?", |socket: SocketRef, ack: AckSender| async move {
            let _ = ack.send(socket.engine_id().as_str());
        });
        socket.on("query?", |socket: SocketRef, ack: AckSender| async move {
            let _ = ack.send(&socket.handshake().query);
        });
        socket.on("silent", || async {});
        socket.on("bye", |socket: SocketRef| async move {
            socket.disconnect();
        });
        socket.on("drop", |socket: SocketRef| async move {
            let io = socket.io();
            // As the Node server: after the request that brought "drop" is answered.
            tokio::time::sleep(Duration::from_millis(50)).await;
            socket.close_transport();
            tokio::time::sleep(Duration::from_millis(100)).await;
            let _ = io.emit("news", "missed");
        });
        socket.on(
            "news",
            |socket: SocketRef, Data(text): Data<String>| async move {
                let _ = socket.io().emit("news", &text);
            },
        );
    }
}

async fn node_server() -> (String, NodeProcess) {
    let node = NodeProcess::start("client_node_server.mjs", &[]).await;
    (format!("http://127.0.0.1:{}", node.hello["port"]), node)
}

/// The events a socket heard, as `(name, args)`.
type Recorded = mpsc::UnboundedReceiver<(String, Vec<Value>)>;

/// A listener of every event, and where it sends them.
fn recording() -> (
    impl Fn(Event) -> std::future::Ready<()> + Send + Sync + 'static,
    Recorded,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let listener = move |event: Event| {
        let _ = tx.send((event.name().to_owned(), event.args().to_vec()));
        std::future::ready(())
    };
    (listener, rx)
}

/// Every event of the client, as `(name, args)`.
fn recorder(builder: ClientBuilder) -> (ClientBuilder, Recorded) {
    let (listener, rx) = recording();
    (builder.on_any(listener), rx)
}

/// [`recorder`] for a socket of another namespace.
fn recorder_on(builder: SocketBuilder) -> (SocketBuilder, Recorded) {
    let (listener, rx) = recording();
    (builder.on_any(listener), rx)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<(String, Vec<Value>)>, name: &str) -> Vec<Value> {
    loop {
        let (got, args) = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no {name} in 5 s"))
            .unwrap();
        if got == name {
            return args;
        }
    }
}

/// Waits until the client is on the transport `transports` ends on, and checks that the server
/// sees the same.
async fn on_final_transport(socket: &Socket, transports: Transports) {
    let expected = match transports {
        Transports::Polling => Transport::Polling,
        _ => Transport::WebSocket,
    };
    let start = std::time::Instant::now();
    while socket.transport() != expected {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "still on {:?}",
            socket.transport()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let seen: String = socket
        .emit_with_timeout(Duration::from_secs(5), "transport?", &())
        .await
        .unwrap();
    assert_eq!(seen, expected.as_str());
}

async fn events_acks_binary_auth(url: &str, transports: Transports, parser: Parser) {
    let builder = ClientBuilder::new(url)
        .transports(transports)
        .parser(parser)
        .auth(&json!({ "token": "abc" }))
        .unwrap()
        .on("question", |mut event: Event| async move {
            let question: String = event.data().unwrap();
            event.ack(&format!("answer to {question}")).unwrap();
        });
    let (builder, mut events) = recorder(builder);
    let socket = builder.connect().await.unwrap();
    // The server's welcome names the socket's id.
    let welcome = next(&mut events, "welcome").await;
    assert_eq!(welcome[0].as_str(), socket.id().as_deref());
    assert!(socket.connected());
    assert!(!socket.recovered());
    on_final_transport(&socket, transports).await;
    // Several arguments, binary among them, and back.
    socket
        .emit(
            "echo",
            &(
                "text",
                42,
                Bytes::from_static(&[1, 2, 3]),
                json!({ "a": [1, null] }),
            ),
        )
        .unwrap();
    let echo = next(&mut events, "echo").await;
    assert_eq!(echo[0], Value::from("text"));
    assert_eq!(echo[1].as_i64(), Some(42));
    assert_eq!(echo[2].as_bytes().map(|b| b.to_vec()), Some(vec![1, 2, 3]));
    assert_eq!(
        echo[3].get("a").and_then(Value::as_array).map(Vec::len),
        Some(2)
    );
    // An ack, with binary in the answer.
    let (text, bytes): (String, Bytes) = socket
        .emit_with_timeout(ACK_WAIT, "ack", &("hi", Bytes::from_static(&[9])))
        .await
        .unwrap();
    assert_eq!((text.as_str(), &bytes[..]), ("hi", &[9][..]));
    // The server asks the client (an emit with ack): the listener answers.
    socket.emit("ask", &()).unwrap();
    let answer = next(&mut events, "answer").await;
    assert_eq!(answer[0], Value::from("answer to q?"));
    // The auth object reached the server.
    let auth: serde_json::Value = socket
        .emit_with_timeout(ACK_WAIT, "auth?", &())
        .await
        .unwrap();
    assert_eq!(auth, json!({ "token": "abc" }));
    // Reserved names are refused.
    assert!(matches!(
        socket.emit("disconnect", &()),
        Err(belfry_client::EmitError::Reserved(_))
    ));
    socket.disconnect().await;
    assert!(!socket.connected());
    assert!(!socket.active());
}

async fn refused_namespace(url: &str) {
    let refused = ClientBuilder::new(url)
        .namespace("/refused")
        .reconnection(false)
        .connect()
        .await;
    match refused {
        Err(ConnectError::Refused { message, data }) => {
            assert_eq!(message, "not authorized");
            assert_eq!(data.get("code").and_then(Value::as_i64), Some(42));
        }
        other => panic!("{other:?}"),
    }
    // An unknown namespace is refused too.
    let unknown = ClientBuilder::new(format!("{url}/nowhere"))
        .reconnection(false)
        .connect()
        .await;
    assert!(
        matches!(&unknown, Err(ConnectError::Refused { message, .. }) if message == "Invalid namespace"),
        "{unknown:?}"
    );
}

async fn server_disconnect(url: &str) {
    let (noting, reasons) = disconnect_reasons();
    let socket = ClientBuilder::new(url)
        .on_disconnect(noting)
        .connect()
        .await
        .unwrap();
    socket.emit("bye", &()).unwrap();
    let start = std::time::Instant::now();
    while reasons.lock().is_empty() {
        assert!(start.elapsed() < Duration::from_secs(5), "no disconnect");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(*reasons.lock(), [DisconnectReason::IoServerDisconnect]);
    assert!(
        !socket.active(),
        "no reconnection after a server disconnect"
    );
}

async fn reconnects_and_recovers(url: &str, transports: Transports, parser: Parser) {
    let (noting, reasons) = disconnect_reasons();
    let builder = ClientBuilder::new(url)
        .transports(transports)
        .parser(parser)
        .reconnection_delay(Duration::from_millis(300), Duration::from_millis(300))
        .randomization_factor(0.0)
        .on_disconnect(noting);
    let (builder, mut events) = recorder(builder);
    let socket = builder.connect().await.unwrap();
    on_final_transport(&socket, transports).await;
    let id = socket.id().unwrap();
    // An event with an offset (recovery is on at the server).
    socket.emit("news", "first").unwrap();
    let first = next(&mut events, "news").await;
    assert_eq!(first[0], Value::from("first"));
    assert_eq!(first.len(), 2, "the offset follows: {first:?}");
    // The server closes the connection, and broadcasts while the client is away.
    // An event the server never answers: its ack fails when the connection is lost.
    // Polled once here, so that it is sent before "drop".
    let mut silent = Box::pin(socket.emit_with_timeout::<Value, _>(ACK_WAIT, "silent", &()));
    std::future::poll_fn(|cx| {
        assert!(silent.as_mut().poll(cx).is_pending());
        std::task::Poll::Ready(())
    })
    .await;
    socket.emit("drop", &()).unwrap();
    until("the disconnect", || !reasons.lock().is_empty()).await;
    assert_eq!(*reasons.lock(), [DisconnectReason::TransportClose]);
    assert!(socket.active());
    assert!(!socket.connected());
    assert!(matches!(
        silent.await,
        Err(belfry_client::AckError::Disconnected)
    ));
    // Emitted while disconnected: sent once connected again.
    socket.emit("echo", "buffered").unwrap();
    // The missed broadcast comes back first, then the answer to the buffered emit.
    let missed = next(&mut events, "news").await;
    assert_eq!(missed[0], Value::from("missed"));
    let echo = next(&mut events, "echo").await;
    // (Under recovery, an emit carries an offset too.)
    assert_eq!(echo[0], Value::from("buffered"));
    assert!(socket.recovered(), "the session came back");
    assert_eq!(socket.id().as_deref(), Some(id.as_str()));
    on_final_transport(&socket, transports).await;
    socket.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_node() {
    let (url, _node) = node_server().await;
    for transports in TRANSPORTS {
        events_acks_binary_auth(&url, transports, Parser::Default).await;
        reconnects_and_recovers(&url, transports, Parser::Default).await;
    }
    refused_namespace(&url).await;
    server_disconnect(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_belfry() {
    let url = belfry_server().await;
    for transports in TRANSPORTS {
        events_acks_binary_auth(&url, transports, Parser::Default).await;
        reconnects_and_recovers(&url, transports, Parser::Default).await;
    }
    refused_namespace(&url).await;
    server_disconnect(&url).await;
}

/// Several namespaces over one connection (socket.io-client's Manager): one Engine.IO
/// connection for all, each socket with its own `auth` and listeners; one namespace joined
/// once; a refused namespace or one that leaves does not touch the others; all of them come
/// back after a lost connection; the connection closes with its last socket and opens again
/// for the next.
async fn namespaces_share_one_connection(url: &str) {
    let losses = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let lost = |losses: &Arc<std::sync::atomic::AtomicU32>| {
        let losses = losses.clone();
        move |_| {
            losses.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            std::future::ready(())
        }
    };
    let root = ClientBuilder::new(url)
        .reconnection_delay(Duration::from_millis(100), Duration::from_millis(100))
        .on_disconnect(lost(&losses))
        .connect()
        .await
        .unwrap();
    let (admin, mut admin_events) = recorder_on(
        root.io()
            .socket("admin")
            .auth(&json!({ "role": "admin" }))
            .unwrap()
            .on_disconnect(lost(&losses)),
    );
    let admin = admin.connect().await.unwrap();
    assert_eq!(admin.namespace(), "/admin");
    let conn: String = root
        .emit_with_timeout(ACK_WAIT, "conn?", &())
        .await
        .unwrap();
    let admin_conn: String = admin
        .emit_with_timeout(ACK_WAIT, "conn?", &())
        .await
        .unwrap();
    assert_eq!(conn, admin_conn, "one connection");
    let auth: serde_json::Value = admin
        .emit_with_timeout(ACK_WAIT, "auth?", &())
        .await
        .unwrap();
    assert_eq!(auth, json!({ "role": "admin" }));
    let root_auth: serde_json::Value = root
        .emit_with_timeout(ACK_WAIT, "auth?", &())
        .await
        .unwrap();
    assert_eq!(root_auth, json!({}));
    // Only the admin socket's listeners hear its events.
    admin.emit("echo", "to admin").unwrap();
    assert_eq!(
        next(&mut admin_events, "echo").await[0],
        Value::from("to admin")
    );
    // One socket per namespace.
    let again = root.io().socket("/admin").connect().await;
    assert!(
        matches!(&again, Err(ConnectError::AlreadyJoined(ns)) if ns == "/admin"),
        "{again:?}"
    );
    assert!(admin.connected());
    // A refused namespace leaves the others connected.
    let refused = root.io().socket("/refused").connect().await;
    assert!(
        matches!(refused, Err(ConnectError::Refused { .. })),
        "{refused:?}"
    );
    assert!(root.connected() && admin.connected());
    // A lost connection: both sockets come back.
    root.emit("drop", &()).unwrap();
    until("both lost", || {
        losses.load(std::sync::atomic::Ordering::SeqCst) == 2
    })
    .await;
    until("both back", || root.connected() && admin.connected()).await;
    let after: String = admin
        .emit_with_timeout(ACK_WAIT, "conn?", &())
        .await
        .unwrap();
    assert_ne!(after, conn, "a new connection");
    // One leaves: the other stays.
    admin.disconnect().await;
    assert!(!admin.active());
    let still: String = root
        .emit_with_timeout(ACK_WAIT, "conn?", &())
        .await
        .unwrap();
    assert_eq!(still, after);
    // The last leaves: the connection closes; a new socket opens another.
    let manager = root.io();
    root.disconnect().await;
    let fresh = manager.socket("/").connect().await.unwrap();
    let reopened: String = fresh
        .emit_with_timeout(ACK_WAIT, "conn?", &())
        .await
        .unwrap();
    assert_ne!(reopened, after);
    fresh.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_over_one_connection_against_node_and_belfry() {
    let (node_url, _node) = node_server().await;
    namespaces_share_one_connection(&node_url).await;
    namespaces_share_one_connection(&belfry_server().await).await;
}

/// The msgpack parser (`socket.io-msgpack-parser` at the Node server), binary in place: over
/// polling (base64 in the payloads) and over WebSocket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn msgpack_against_node_and_belfry() {
    let node = NodeProcess::start("client_node_server.mjs", &["msgpack"]).await;
    let node_url = format!("http://127.0.0.1:{}", node.hello["port"]);
    let belfry_url = format!("http://{}", serve(belfry_app(Parser::Msgpack)).await);
    for url in [node_url, belfry_url] {
        for transports in [Transports::PollingThenWebSocket, Transports::Polling] {
            events_acks_binary_auth(&url, transports, Parser::Msgpack).await;
            reconnects_and_recovers(&url, transports, Parser::Msgpack).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_without_reconnection_is_an_error() {
    let port = belfry_tests::processes::free_port();
    let result = ClientBuilder::new(format!("http://127.0.0.1:{port}"))
        .reconnection(false)
        .connect()
        .await;
    assert!(
        matches!(result, Err(ConnectError::Unreachable(_))),
        "{result:?}"
    );
    let result = ClientBuilder::new(format!("http://127.0.0.1:{port}"))
        .reconnection_attempts(2)
        .reconnection_delay(Duration::from_millis(10), Duration::from_millis(10))
        .connect()
        .await;
    assert!(
        matches!(result, Err(ConnectError::Unreachable(_))),
        "{result:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_every_handle_closes_the_connection() {
    let (layer, io) = SocketIo::new_layer();
    io.ns("/", |_: SocketRef| async {});
    let url = format!("http://{}", serve(axum::Router::new().layer(layer)).await);
    let socket = ClientBuilder::new(&url)
        .on("anything", |_: Event| async {})
        .connect()
        .await
        .unwrap();
    assert_eq!(io.fetch_sockets().await.unwrap().len(), 1);
    drop(socket);
    let start = std::time::Instant::now();
    while !io.fetch_sockets().await.unwrap().is_empty() {
        assert!(start.elapsed() < Duration::from_secs(5), "still connected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ack_timeout_while_disconnected_takes_the_emit_back() {
    let (layer, io) = SocketIo::new_layer();
    let late = Arc::new(Mutex::new(0));
    let counted = late.clone();
    io.ns("/", move |socket: SocketRef| {
        let counted = counted.clone();
        async move {
            socket.on("late", move |ack: AckSender| {
                let counted = counted.clone();
                async move {
                    *counted.lock() += 1;
                    let _ = ack.send(&());
                }
            });
            socket.on("drop", |socket: SocketRef| async move {
                socket.close_transport();
            });
        }
    });
    let url = format!("http://{}", serve(axum::Router::new().layer(layer)).await);
    let (down_tx, mut down) = mpsc::unbounded_channel();
    let socket = ClientBuilder::new(&url)
        .reconnection_delay(Duration::from_millis(1500), Duration::from_millis(1500))
        .randomization_factor(0.0)
        .on_disconnect(move |_| {
            let down_tx = down_tx.clone();
            async move {
                let _ = down_tx.send(());
            }
        })
        .connect()
        .await
        .unwrap();
    socket.emit("drop", &()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), down.recv())
        .await
        .unwrap()
        .unwrap();
    // Offline: the ack times out on time, not when the connection is back...
    let asked = std::time::Instant::now();
    let answer = socket
        .emit_with_timeout::<Value, _>(Duration::from_millis(200), "late", &())
        .await;
    assert!(
        matches!(answer, Err(belfry_client::AckError::Timeout)),
        "{answer:?}"
    );
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "{:?}",
        asked.elapsed()
    );
    // ...and the emit is not sent once it is: the server never hears of it.
    let start = std::time::Instant::now();
    while !socket.connected() {
        assert!(start.elapsed() < Duration::from_secs(5), "not back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Answered, so that the server has handled it (and what came before) when it returns.
    let _: Value = socket
        .emit_with_timeout(ACK_WAIT, "late", &())
        .await
        .unwrap();
    assert_eq!(*late.lock(), 1, "only the emit made once connected");
}

/// Two Node servers behind nginx, which routes by a cookie it sets itself (`node=<the server's
/// address>`; a request without it goes to either, round robin): a polling session works only
/// when every request of it carries the cookie back, and the upgrade's WebSocket reaches the
/// session's server only with it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_cookies_behind_nginx() {
    let node_a = NodeProcess::start("client_node_server.mjs", &[]).await;
    let node_b = NodeProcess::start("client_node_server.mjs", &[]).await;
    let (a, b) = (node_a.hello["port"].clone(), node_b.hello["port"].clone());
    let port = belfry_tests::processes::free_port();
    let config = format!(
        r#"
worker_processes 1;
pid nginx.pid;
error_log stderr warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path client_body;
    proxy_temp_path proxy;
    fastcgi_temp_path fastcgi;
    uwsgi_temp_path uwsgi;
    scgi_temp_path scgi;
    upstream node_a {{ server 127.0.0.1:{a}; }}
    upstream node_b {{ server 127.0.0.1:{b}; }}
    upstream any_node {{ server 127.0.0.1:{a}; server 127.0.0.1:{b}; }}
    map $cookie_node $node {{
        "127.0.0.1:{a}" node_a;
        "127.0.0.1:{b}" node_b;
        default any_node;
    }}
    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://$node;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            add_header Set-Cookie "node=$upstream_addr; Path=/" always;
        }}
    }}
}}
"#
    );
    let _nginx = belfry_tests::processes::Nginx::start(&config, port).await;
    let url = format!("http://127.0.0.1:{port}");
    for transports in [Transports::Polling, Transports::PollingThenWebSocket] {
        // Several clients: the first requests are spread over both servers.
        for _ in 0..4 {
            let (builder, mut events) = recorder(
                ClientBuilder::new(&url)
                    .transports(transports)
                    .reconnection(false),
            );
            let socket = builder.connect().await.unwrap();
            on_final_transport(&socket, transports).await;
            for i in 0..5 {
                socket.emit("echo", &i).unwrap();
                assert_eq!(next(&mut events, "echo").await[0].as_i64(), Some(i));
            }
            socket.disconnect().await;
        }
    }
}

/// What a client was told, in order.
type Noted<T> = Arc<Mutex<Vec<T>>>;

/// A disconnect listener, and the reasons it notes.
fn disconnect_reasons() -> (
    impl Fn(DisconnectReason) -> std::future::Ready<()> + Send + Sync + 'static,
    Noted<DisconnectReason>,
) {
    let reasons: Noted<DisconnectReason> = Arc::default();
    let noted = reasons.clone();
    let listener = move |reason| {
        noted.lock().push(reason);
        std::future::ready(())
    };
    (listener, reasons)
}

/// Records every reconnection event and connection error of a client.
fn reconnect_recorder(
    builder: ClientBuilder,
) -> (ClientBuilder, Noted<ReconnectEvent>, Noted<ConnectError>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let errors = Arc::new(Mutex::new(Vec::new()));
    let (noted_events, noted_errors) = (events.clone(), errors.clone());
    let builder = builder
        .reconnection_delay(Duration::from_millis(100), Duration::from_millis(200))
        .randomization_factor(0.0)
        .on_reconnect(move |event| {
            let noted = noted_events.clone();
            async move { noted.lock().push(event) }
        })
        .on_connect_error(move |error| {
            let noted = noted_errors.clone();
            async move { noted.lock().push(error) }
        });
    (builder, events, errors)
}

/// Waits until `check` holds, 10 s at most.
async fn until(what: &str, check: impl Fn() -> bool) {
    let start = std::time::Instant::now();
    while !check() {
        assert!(start.elapsed() < Duration::from_secs(10), "never: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until a reconnection attempt failed.
async fn a_failed_attempt(reconnects: &Noted<ReconnectEvent>) {
    until("a failed attempt", || {
        reconnects
            .lock()
            .iter()
            .any(|event| matches!(event, ReconnectEvent::Error(_)))
    })
    .await;
}

/// Waits until the manager's listeners heard of the reconnection.
async fn reconnected(reconnects: &Noted<ReconnectEvent>) {
    until("reconnected", || {
        matches!(
            reconnects.lock().last(),
            Some(ReconnectEvent::Reconnected(_))
        )
    })
    .await;
}

/// Attempts numbered 1, 2, ..., each failed one followed by an error, and, when the last
/// succeeded, `Reconnected` with their count: socket.io-client's Manager events.
fn check_attempts(events: &[ReconnectEvent], reconnected: bool) {
    let mut attempts = 0;
    let mut rest = events;
    while let [ReconnectEvent::Attempt(n), tail @ ..] = rest {
        attempts += 1;
        assert_eq!(*n, attempts, "{events:?}");
        rest = match tail {
            [ReconnectEvent::Error(_), tail @ ..] => tail,
            tail => tail,
        };
    }
    assert!(attempts >= 1, "{events:?}");
    if reconnected {
        assert_eq!(rest, [ReconnectEvent::Reconnected(attempts)], "{events:?}");
    } else {
        assert_eq!(rest, [ReconnectEvent::Failed], "{events:?}");
    }
}

/// socket.io-client's `socket.on`, `once` and `off` on a connected socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_added_once_and_removed_on_a_socket() {
    let url = belfry_server().await;
    let (builder, mut events) = recorder(ClientBuilder::new(&url));
    let socket = builder.connect().await.unwrap();
    let counts = Arc::new(Mutex::new([0; 3]));
    let counter = |slot: usize| {
        let counts = counts.clone();
        move |_: Event| {
            let counts = counts.clone();
            async move { counts.lock()[slot] += 1 }
        }
    };
    socket.on("echo", counter(0));
    socket.once("echo", counter(1));
    let removed = socket.on("echo", counter(2));
    socket.emit("echo", &1).unwrap();
    next(&mut events, "echo").await;
    assert!(socket.off(removed));
    assert!(!socket.off(removed), "removed already");
    for i in 2..4 {
        socket.emit("echo", &i).unwrap();
        next(&mut events, "echo").await;
    }
    // The recorder runs first (added on the builder); the socket's listeners after it, in order.
    until("the listeners ran", || counts.lock()[0] == 3).await;
    assert_eq!(*counts.lock(), [3, 1, 1]);
    socket.disconnect().await;
}

/// `client_node_server.mjs` on `port`, once the port is free (a server stopped just before
/// may still hold it for a moment).
async fn node_on(port: u16) -> NodeProcess {
    until("the port is free", || {
        std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
    })
    .await;
    NodeProcess::start("client_node_server.mjs", &[&port.to_string()]).await
}

/// The Node server stops and starts again on the same port, on every transport: the client's
/// Manager events, the connection errors, and an emit made while the server was down,
/// delivered once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_server_restart_during_traffic() {
    let port = belfry_tests::processes::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut node = Some(node_on(port).await);
    for transports in TRANSPORTS {
        let (builder, reconnects, errors) =
            reconnect_recorder(ClientBuilder::new(&url).transports(transports));
        let (builder, mut events) = recorder(builder);
        let socket = builder.connect().await.unwrap();
        on_final_transport(&socket, transports).await;
        let first_id = socket.id().unwrap();
        socket.emit("echo", &1).unwrap();
        assert_eq!(next(&mut events, "echo").await[0].as_i64(), Some(1));
        // The server stops (killed).
        drop(node.take());
        until("disconnected", || !socket.connected()).await;
        socket.emit("echo", "while down").unwrap();
        a_failed_attempt(&reconnects).await;
        assert!(socket.active());
        // It starts again: the client reconnects, and what was emitted meanwhile arrives.
        node = Some(node_on(port).await);
        let echo = next(&mut events, "echo").await;
        assert_eq!(echo[0], Value::from("while down"));
        assert!(socket.connected());
        // A new server knows nothing of the old session.
        assert!(!socket.recovered());
        assert_ne!(socket.id().unwrap(), first_id);
        // The manager's listeners run on a task of their own.
        reconnected(&reconnects).await;
        check_attempts(&reconnects.lock(), true);
        let errors = errors.lock().clone();
        assert!(!errors.is_empty());
        assert!(
            errors
                .iter()
                .all(|error| matches!(error, ConnectError::Unreachable(_))),
            "{errors:?}"
        );
        socket.disconnect().await;
    }
}

/// The first connection to a server that is not up yet: attempts until it is (Belfry), or
/// until the attempts are exhausted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_connection_retries_until_the_server_is_up_or_gives_up() {
    let port = belfry_tests::processes::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let (builder, reconnects, errors) = reconnect_recorder(ClientBuilder::new(&url));
    let connecting = tokio::spawn(builder.connect());
    a_failed_attempt(&reconnects).await;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::spawn(async move { axum::serve(listener, belfry_app(Parser::Default)).await });
    let socket = tokio::time::timeout(Duration::from_secs(10), connecting)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(socket.connected());
    reconnected(&reconnects).await;
    check_attempts(&reconnects.lock(), true);
    // The first failure too is a connection error (before any attempt).
    let failed_attempts = reconnects
        .lock()
        .iter()
        .filter(|event| matches!(event, ReconnectEvent::Error(_)))
        .count();
    until("every connection error told", || {
        errors.lock().len() == failed_attempts + 1
    })
    .await;
    socket.disconnect().await;

    // Two attempts at most, to a port nobody listens on.
    let port = belfry_tests::processes::free_port();
    let (builder, reconnects, errors) = reconnect_recorder(
        ClientBuilder::new(format!("http://127.0.0.1:{port}")).reconnection_attempts(2),
    );
    let refused = builder.connect().await;
    assert!(
        matches!(&refused, Err(ConnectError::Unreachable(_))),
        "{refused:?}"
    );
    until("reconnect_failed", || {
        reconnects.lock().last() == Some(&ReconnectEvent::Failed)
    })
    .await;
    check_attempts(&reconnects.lock(), false);
    assert_eq!(reconnects.lock().len(), 5, "{:?}", reconnects.lock());
    until("three connection errors", || errors.lock().len() == 3).await;
}

/// Belfry's app of these tests behind a middleware that records every POST body, and answers
/// the POSTs that carry "slow" 300 ms late.
fn recording_posts() -> (axum::Router, Noted<String>) {
    let bodies: Noted<String> = Arc::new(Mutex::new(Vec::new()));
    let noted = bodies.clone();
    // Every POST body is recorded; the one carrying "slow" is answered 300 ms late.
    let app = belfry_app(Parser::Default).layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            let noted = noted.clone();
            async move {
                let (parts, body) = request.into_parts();
                let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
                if parts.method == http::Method::POST {
                    let text = String::from_utf8_lossy(&bytes).into_owned();
                    if text.contains("slow") {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                    }
                    noted.lock().push(text);
                }
                let request = http::Request::from_parts(parts, axum::body::Body::from(bytes));
                next.run(request).await
            }
        },
    ));
    (app, bodies)
}

/// A client closed while a polling POST is in flight sends, once that POST is answered, what
/// was left and one close packet: `41` (leaving the namespace) and `1`, in one last POST. (The
/// engine once read its closed channel again and again meanwhile, piling up close packets.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_during_a_post_sends_one_close_packet() {
    let (app, bodies) = recording_posts();
    let url = format!("http://{}", serve(app).await);
    let socket = ClientBuilder::new(&url)
        .transports(Transports::Polling)
        .connect()
        .await
        .unwrap();
    socket.emit("echo", "slow").unwrap();
    // The slow POST is on its way (answered at 300 ms).
    tokio::time::sleep(Duration::from_millis(100)).await;
    socket.disconnect().await;
    until("the last POST", || {
        bodies.lock().iter().any(|body| body.starts_with("41"))
    })
    .await;
    let bodies = bodies.lock();
    assert_eq!(
        bodies.last().map(String::as_str),
        Some("41\u{1e}1"),
        "{bodies:?}"
    );
}

/// The server's log of deliveries (`[event, arg, with an ack]`) whose argument starts with
/// `tag`.
async fn deliveries(socket: &Socket, tag: &str) -> Vec<serde_json::Value> {
    let log: Vec<serde_json::Value> = socket
        .emit_with_timeout(Duration::from_secs(5), "log?", &())
        .await
        .unwrap();
    log.into_iter()
        .filter(|entry| entry[1].as_str().is_some_and(|arg| arg.starts_with(tag)))
        .collect()
}

/// socket.io-client's `retries`, as observed with socket.io-client 4.8: one emit at a time, in
/// order, each with an ack (a plain emit too); a try not acknowledged in time is made again (a
/// new ack id each time), up to `retries` more times; one lost with the connection counts as
/// a try and is made again after reconnection.
async fn retries(url: &str, tag: &str) {
    let socket = ClientBuilder::new(url)
        .transports(Transports::WebSocket)
        .retries(3)
        .ack_timeout(Duration::from_millis(700))
        .reconnection_delay(Duration::from_millis(100), Duration::from_millis(100))
        .connect()
        .await
        .unwrap();
    let (a, b, c) = (format!("{tag}a"), format!("{tag}b"), format!("{tag}c"));
    // "a" is acknowledged on its second try only: "b" and "c" wait for it.
    let (a_answer, c_answer) =
        tokio::join!(socket.emit_with_ack::<String, _>("flaky", &a), async {
            socket.emit("fine", &b).unwrap();
            socket.emit_with_ack::<String, _>("fine", &c).await
        });
    assert_eq!(a_answer.unwrap(), format!("{a}-ok"));
    assert_eq!(c_answer.unwrap(), format!("{c}-ok"));
    assert_eq!(
        deliveries(&socket, tag).await,
        [
            json!(["flaky", a, true]),
            json!(["flaky", a, true]),
            json!(["fine", b, true]),
            json!(["fine", c, true]),
        ]
    );
    // Never acknowledged: four tries, then a timeout.
    let never = format!("{tag}never");
    let started = std::time::Instant::now();
    let result = socket.emit_with_ack::<String, _>("never", &never).await;
    assert!(
        matches!(result, Err(belfry_client::AckError::Timeout)),
        "{result:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(2800));
    assert_eq!(deliveries(&socket, &never).await.len(), 4);
    // The server closes the connection on the first try: the second goes after reconnection.
    let dropped = format!("{tag}dropme");
    let answer: String = socket.emit_with_ack("dropme", &dropped).await.unwrap();
    assert_eq!(answer, format!("{dropped}-ok"));
    assert_eq!(deliveries(&socket, &dropped).await.len(), 2);
    socket.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_against_node_and_belfry() {
    let (node_url, _node) = node_server().await;
    retries(&node_url, "node-").await;
    retries(&belfry_server().await, "belfry-").await;
}

/// `https://` URLs, over every transport (polling and WebSocket through TLS), against Node's
/// `https` server and Belfry behind rustls, with a certificate of a private CA: trusted when
/// given to the client, refused otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_against_node_and_belfry() {
    let dir = belfry_tests::processes::test_certificates().await;
    let ca = std::fs::read(dir.join("ca.crt")).unwrap();
    let tls_arg = format!("tls={}", dir.display());
    let node = NodeProcess::start("client_node_server.mjs", &[&tls_arg]).await;
    let node_url = format!("https://127.0.0.1:{}", node.hello["port"]);
    let belfry = belfry_tests::serve_tls(belfry_app(Parser::Default), &dir).await;
    let belfry_url = format!("https://{belfry}");
    for url in [node_url, belfry_url] {
        for transports in TRANSPORTS {
            let (builder, mut events) = recorder(
                ClientBuilder::new(&url)
                    .transports(transports)
                    .root_certificates(ca.clone()),
            );
            let socket = builder.connect().await.unwrap();
            on_final_transport(&socket, transports).await;
            socket
                .emit("echo", &("tls", Bytes::from_static(&[1, 2, 3])))
                .unwrap();
            let echo = next(&mut events, "echo").await;
            assert_eq!(echo[0], Value::from("tls"));
            assert_eq!(echo[1].as_bytes().map(|b| b.to_vec()), Some(vec![1, 2, 3]));
            socket.disconnect().await;
        }
        // The private CA is not among the system's roots.
        let untrusted = ClientBuilder::new(&url).reconnection(false).connect().await;
        assert!(
            matches!(&untrusted, Err(ConnectError::Unreachable(_))),
            "{untrusted:?}"
        );
    }
    // Roots that are not PEM.
    let bad = ClientBuilder::new("https://127.0.0.1:1")
        .root_certificates(b"not a certificate".to_vec())
        .connect()
        .await;
    assert!(matches!(&bad, Err(ConnectError::Tls(_))), "{bad:?}");
}

/// socket.io-client's `auth` as a function: called before every connection, reconnections
/// included, so the server sees a fresh object each time; and `onAnyOutgoing`.
async fn auth_function_and_outgoing_listeners(url: &str) {
    let calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counted = calls.clone();
    let socket = ClientBuilder::new(url)
        .reconnection_delay(Duration::from_millis(100), Duration::from_millis(100))
        .auth_with(
            move || json!({ "n": counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst) }),
        )
        .connect()
        .await
        .unwrap();
    let auth: serde_json::Value = socket
        .emit_with_timeout(ACK_WAIT, "auth?", &())
        .await
        .unwrap();
    assert_eq!(auth, json!({ "n": 0 }));
    // A lost connection: the function is called again.
    socket.emit("drop", &()).unwrap();
    until("reconnected", || {
        calls.load(std::sync::atomic::Ordering::SeqCst) >= 2 && socket.connected()
    })
    .await;
    let auth: serde_json::Value = socket
        .emit_with_timeout(ACK_WAIT, "auth?", &())
        .await
        .unwrap();
    // The value of the last call (a failed attempt may have made one too).
    assert_eq!(
        auth["n"],
        calls.load(std::sync::atomic::Ordering::SeqCst) - 1
    );
    // The private id and offset of the recovered session go with the auth, and Node's
    // `socket.handshake.auth` shows them.
    assert!(
        auth["pid"].is_string() && auth["offset"].is_string(),
        "{auth}"
    );
    // Each emit, as it is made.
    let sent = Arc::new(Mutex::new(Vec::new()));
    let noted = sent.clone();
    let listener = socket.on_any_outgoing(move |name, args| {
        noted.lock().push((name.to_owned(), args.to_vec()));
    });
    socket
        .emit("echo", &("x", Bytes::from_static(&[7])))
        .unwrap();
    assert!(socket.off(listener));
    socket.emit("echo", "not seen").unwrap();
    let sent = sent.lock().clone();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].0, "echo");
    assert_eq!(sent[0].1[0], Value::from("x"));
    assert_eq!(sent[0].1[1].as_bytes().map(|b| b.to_vec()), Some(vec![7]));
    socket.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_function_and_outgoing_listeners_against_node_and_belfry() {
    let (node_url, _node) = node_server().await;
    auth_function_and_outgoing_listeners(&node_url).await;
    auth_function_and_outgoing_listeners(&belfry_server().await).await;
}

/// A TCP proxy to `upstream` that can go silent: once `silent` is set, what comes from either
/// side is dropped, closes included, as from a server that stopped answering.
async fn silent_proxy(
    upstream: std::net::SocketAddr,
) -> (String, Arc<std::sync::atomic::AtomicBool>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let silent = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let switch = silent.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                continue;
            };
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            for (mut from, mut to) in [(client_read, server_write), (server_read, client_write)] {
                let silent = switch.clone();
                tokio::spawn(async move {
                    let mut buffer = vec![0; 16 * 1024];
                    while let Ok(n @ 1..) = from.read(&mut buffer).await {
                        if !silent.load(std::sync::atomic::Ordering::SeqCst)
                            && to.write_all(&buffer[..n]).await.is_err()
                        {
                            break;
                        }
                    }
                    // A silent proxy passes no close on either: the other side stays open.
                    if silent.load(std::sync::atomic::Ordering::SeqCst) {
                        std::future::pending::<()>().await;
                    }
                    drop(to);
                });
            }
        }
    });
    (format!("http://{addr}"), silent)
}

/// The heartbeat, with a server pinging every 500 ms and waiting 500 ms for the pong: the
/// client answers on every transport (the connection lives on), and a server gone silent is
/// noticed after `pingInterval + pingTimeout` ("ping timeout").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_and_a_silent_server() {
    let node = NodeProcess::start("client_node_server.mjs", &["ping=500"]).await;
    let node_addr: std::net::SocketAddr =
        format!("127.0.0.1:{}", node.hello["port"]).parse().unwrap();
    let (layer, io) = SocketIo::builder()
        .ping_interval(Duration::from_millis(500))
        .ping_timeout(Duration::from_millis(500))
        .build_layer();
    io.ns("/", |socket: SocketRef| async move {
        socket.on("echo", |socket: SocketRef, args: Args| async move {
            let _ = socket.emit("echo", &args);
        });
        socket.on(
            "transport?",
            |socket: SocketRef, ack: AckSender| async move {
                let _ = ack.send(socket.transport().as_str());
            },
        );
    });
    let belfry_addr = serve(axum::Router::new().layer(layer)).await;
    for upstream in [node_addr, belfry_addr] {
        for transports in TRANSPORTS {
            let (url, silent) = silent_proxy(upstream).await;
            let (noting, reasons) = disconnect_reasons();
            let (builder, mut events) = recorder(
                ClientBuilder::new(&url)
                    .transports(transports)
                    .reconnection(false)
                    .on_disconnect(noting),
            );
            let socket = builder.connect().await.unwrap();
            on_final_transport(&socket, transports).await;
            // Three ping intervals: every ping answered.
            tokio::time::sleep(Duration::from_millis(1500)).await;
            assert!(socket.connected(), "{transports:?}: {:?}", reasons.lock());
            socket.emit("echo", "alive").unwrap();
            assert_eq!(next(&mut events, "echo").await[0], Value::from("alive"));
            // Silence: noticed after a second or so.
            silent.store(true, std::sync::atomic::Ordering::SeqCst);
            let started = std::time::Instant::now();
            until("the ping timeout", || !reasons.lock().is_empty()).await;
            assert_eq!(
                *reasons.lock(),
                [DisconnectReason::PingTimeout],
                "{transports:?}"
            );
            assert!(started.elapsed() < Duration::from_secs(5));
            assert!(!socket.active());
        }
    }
}

/// Over polling, what piles up behind a POST in flight goes in POSTs within the server's
/// `maxPayload` (1 MB by default, on Belfry as on Node), as socket.io-client cuts them: one
/// POST of 1.5 MB would be refused (413) and the session closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_posts_stay_within_max_payload() {
    let (app, bodies) = recording_posts();
    let url = format!("http://{}", serve(app).await);
    let (noting, reasons) = disconnect_reasons();
    let (builder, mut events) = recorder(
        ClientBuilder::new(&url)
            .transports(Transports::Polling)
            .on_disconnect(noting),
    );
    let socket = builder.connect().await.unwrap();
    // 1.5 MB waits behind the slow POST.
    socket.emit("echo", "slow").unwrap();
    let text = "x".repeat(5_000);
    for i in 0..300 {
        socket.emit("echo", &(i, &text)).unwrap();
    }
    assert_eq!(next(&mut events, "echo").await[0], Value::from("slow"));
    for i in 0..300 {
        assert_eq!(next(&mut events, "echo").await[0].as_i64(), Some(i));
    }
    assert!(reasons.lock().is_empty(), "{:?}", reasons.lock());
    let largest = bodies.lock().iter().map(String::len).max().unwrap();
    assert!(largest <= 1_000_000, "{largest}");
    socket.disconnect().await;
}

/// A socket's handles act on that socket only: a handle of a socket that left does not
/// disconnect the one that joined the namespace after it; an ack waited for without a timeout
/// ends when its socket disconnects; `disconnect()` during the reconnection attempts stops
/// them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handles_disconnects_and_pending_acks() {
    let url = belfry_server().await;
    let first = ClientBuilder::new(&url).connect().await.unwrap();
    let manager = first.io();
    first.disconnect().await;
    let second = manager.socket("/").connect().await.unwrap();
    first.disconnect().await;
    let alive: String = second
        .emit_with_timeout(ACK_WAIT, "conn?", &())
        .await
        .unwrap();
    assert!(!alive.is_empty());
    assert!(second.connected() && second.active());
    // An ack without a timeout, never answered: the disconnect ends it.
    // Polled once here, so that it is sent before the disconnect.
    let mut waiting = Box::pin(second.emit_with_ack::<Value, _>("silent", &()));
    std::future::poll_fn(|cx| {
        assert!(waiting.as_mut().poll(cx).is_pending());
        std::task::Poll::Ready(())
    })
    .await;
    second.disconnect().await;
    let ended = tokio::time::timeout(Duration::from_secs(2), waiting)
        .await
        .unwrap();
    assert!(
        matches!(ended, Err(belfry_client::AckError::Disconnected)),
        "{ended:?}"
    );

    // The server goes away: `disconnect()` while the manager tries to reconnect stops it.
    let port = belfry_tests::processes::free_port();
    let mut node = Some(node_on(port).await);
    let (builder, reconnects, _) =
        reconnect_recorder(ClientBuilder::new(format!("http://127.0.0.1:{port}")));
    let socket = builder.connect().await.unwrap();
    drop(node.take());
    until("an attempt", || {
        reconnects
            .lock()
            .iter()
            .any(|event| matches!(event, ReconnectEvent::Attempt(_)))
    })
    .await;
    socket.disconnect().await;
    assert!(!socket.active());
    let attempts = reconnects.lock().len();
    tokio::time::sleep(Duration::from_millis(800)).await;
    // At most the attempt already under way finishes.
    assert!(
        reconnects.lock().len() <= attempts + 1,
        "{:?}",
        reconnects.lock()
    );
    assert!(
        !reconnects.lock()[attempts..]
            .iter()
            .any(|event| matches!(event, ReconnectEvent::Attempt(_)))
    );
}

/// Retries while disconnected: the queue is neither sent nor timed until the connection is
/// back, then each emit goes once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_wait_for_the_connection() {
    let url = belfry_server().await;
    let socket = ClientBuilder::new(&url)
        .transports(Transports::WebSocket)
        .retries(3)
        .ack_timeout(Duration::from_millis(500))
        .reconnection_delay(Duration::from_millis(2500), Duration::from_millis(2500))
        .randomization_factor(0.0)
        .connect()
        .await
        .unwrap();
    // Volatile: not retried (the server never answers "drop").
    socket.emit_volatile("drop", &()).unwrap();
    until("disconnected", || !socket.connected()).await;
    // Longer offline than all the tries would take.
    let answer: String = socket.emit_with_ack("fine", "offline-1").await.unwrap();
    assert_eq!(answer, "offline-1-ok");
    assert_eq!(deliveries(&socket, "offline-").await.len(), 1);
    socket.disconnect().await;
}

/// A server that accepts connections and never answers: each attempt ends at the client's
/// `timeout`, and the attempts end as configured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_the_handshake() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            held.push(tcp);
        }
    });
    for transports in TRANSPORTS {
        let (builder, reconnects, errors) = reconnect_recorder(
            ClientBuilder::new(format!("http://{addr}"))
                .transports(transports)
                .timeout(Duration::from_millis(200))
                .reconnection_attempts(2),
        );
        let started = std::time::Instant::now();
        let result = builder.connect().await;
        assert!(
            matches!(&result, Err(ConnectError::Unreachable(_))),
            "{result:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        until("reconnect_failed", || {
            reconnects.lock().last() == Some(&ReconnectEvent::Failed)
        })
        .await;
        check_attempts(&reconnects.lock(), false);
        until("three connection errors", || errors.lock().len() == 3).await;
    }
}

/// The query: the URL's and [`ClientBuilder::query`]'s, encoded and decoded, on every
/// transport and in another namespace, next to the engine's own (`EIO`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_query_reaches_the_server() {
    let (node_url, _node) = node_server().await;
    for url in [node_url, belfry_server().await] {
        for transports in TRANSPORTS {
            let socket = ClientBuilder::new(format!("{url}/?c=d"))
                .transports(transports)
                .query("e", "f g")
                .query("&a", "&=?a")
                .connect()
                .await
                .unwrap();
            on_final_transport(&socket, transports).await;
            let admin = socket.io().socket("/admin").connect().await.unwrap();
            for socket in [&socket, &admin] {
                let query: serde_json::Value = socket
                    .emit_with_timeout(ACK_WAIT, "query?", &())
                    .await
                    .unwrap();
                assert_eq!(query["c"], "d", "{query}");
                assert_eq!(query["e"], "f g", "{query}");
                assert_eq!(query["&a"], "&=?a", "{query}");
                assert_eq!(query["EIO"], "4", "{query}");
            }
            socket.disconnect().await;
            admin.disconnect().await;
        }
    }
}

/// Over polling, the POST connection idles between emits, and Node closes idle HTTP
/// connections (its `keepAliveTimeout`, here 200 ms): each emit after a pause well past it
/// still goes, on a new connection, without a reconnection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_after_the_servers_keep_alive_timeout() {
    let node = NodeProcess::start("client_node_server.mjs", &["keepalive=200"]).await;
    let url = format!("http://127.0.0.1:{}", node.hello["port"]);
    let (noting, reasons) = disconnect_reasons();
    let (builder, mut events) = recorder(
        ClientBuilder::new(&url)
            .transports(Transports::Polling)
            .on_disconnect(noting),
    );
    let socket = builder.connect().await.unwrap();
    for i in 0..4 {
        tokio::time::sleep(Duration::from_millis(400 + 50 * i)).await;
        socket.emit("echo", &i).unwrap();
        assert_eq!(next(&mut events, "echo").await[0].as_i64(), Some(i as i64));
    }
    assert!(reasons.lock().is_empty(), "{:?}", reasons.lock());
    socket.disconnect().await;
}
