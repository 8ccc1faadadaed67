//! Connection state recovery, judged by the official socket.io-client 4.8 (`tests/js/recovery.mjs`):
//! a client whose transport is closed comes back with its id, rooms and data, and gets the events
//! broadcast meanwhile, before its CONNECT; one that comes back too late gets a fresh socket.
#![allow(clippy::unwrap_used)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use belfry::{
    AckSender, SocketIo, SocketRef,
    core::{adapter::ConnectionStateRecovery, parser::Parser},
    extract::{Data, State},
};
use belfry_tests::{run_node, serve};
use serde_json::{Value, json};

#[derive(Clone, Default)]
struct Middlewares(Arc<AtomicUsize>);

async fn server(recovery: ConnectionStateRecovery, parser: Parser) -> (String, Middlewares) {
    let runs = Middlewares::default();
    let (layer, io) = SocketIo::builder()
        .connection_state_recovery(recovery)
        .parser(parser)
        .with_state(runs.clone())
        .build_layer();
    io.ns("/", |socket: SocketRef| async move {
        let data: Value = socket.data().unwrap();
        let mut rooms = socket.rooms();
        rooms.sort();
        let welcome = (socket.id().as_str(), socket.recovered(), data, rooms);
        socket.emit("welcome", &welcome).unwrap();
        socket.on(
            "join",
            |socket: SocketRef, Data(room): Data<String>, ack: AckSender| async move {
                socket.join(room.clone());
                socket.set_data(&json!({ "room": room })).unwrap();
                ack.send(&()).unwrap();
            },
        );
        socket.on(
            "broadcast",
            |socket: SocketRef, ack: AckSender| async move {
                let io = socket.io();
                io.to("r").emit("missed", &1).unwrap();
                io.emit("missed", &2).unwrap();
                // Not for the absent client: outside its rooms, or volatile.
                io.except("r").emit("not-missed", &3).unwrap();
                io.to("elsewhere").emit("not-missed", &4).unwrap();
                io.volatile().emit("not-missed", &5).unwrap();
                ack.send(&()).unwrap();
            },
        );
    })
    .middleware(|State(runs): State<Middlewares>| async move {
        runs.0.fetch_add(1, Ordering::SeqCst);
        Ok::<(), belfry::ConnectError>(())
    });
    let addr = serve(axum::Router::new().layer(layer)).await;
    (format!("http://{addr}"), runs)
}

/// The event names and first arguments the client saw after its transport was lost.
fn events(result: &Value) -> Vec<(String, Value)> {
    result["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| (event[0].as_str().unwrap().to_owned(), event[1].clone()))
        .collect()
}

async fn recovers_over(transport: &str, parser: Parser) {
    let (url, middlewares) = server(ConnectionStateRecovery::default(), parser).await;
    let name = if parser == Parser::Msgpack {
        "msgpack"
    } else {
        "default"
    };
    let result = run_node("recovery.mjs", &[&url, transport, "300", name]).await;
    assert!(result["error"].is_null(), "{result}");

    // Every event carries an offset, a string, as its last argument.
    let first = &result["first"];
    let welcome = first["args"].as_array().unwrap();
    assert_eq!(welcome.len(), 5, "{first}");
    assert_eq!(welcome[0], first["id"]);
    assert_eq!(welcome[1], false);
    assert!(welcome[4].is_string());
    assert_eq!(first["recovered"], false);

    // The client closed its own transport.
    assert_eq!(result["disconnectReason"], "forced close");
    let second = &result["second"];
    assert_eq!(second["recovered"], true, "{result}");
    assert_eq!(second["id"], first["id"]);

    // The missed events (with their offsets), before the connect handler's welcome: the
    // socket is back in its rooms, with its data, and the middleware did not run again.
    let events = events(&result);
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["missed", "missed", "welcome"], "{result}");
    assert_eq!(events[0].1, 1);
    assert_eq!(events[1].1, 2);
    assert!(result["events"][0][2].is_string());
    let welcome = result["events"][2].as_array().unwrap();
    assert_eq!(welcome[1], first["id"]);
    assert_eq!(welcome[2], true);
    assert_eq!(welcome[3], json!({ "room": "r" }));
    let mut rooms = vec![json!("r"), first["id"].clone()];
    rooms.sort_by_key(|room| room.as_str().unwrap().to_owned());
    assert_eq!(welcome[4], Value::Array(rooms));
    // Once for a, once for b: the recovered socket skipped the middleware.
    assert_eq!(middlewares.0.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_client_recovers_its_socket_over_websocket() {
    recovers_over("websocket", Parser::Default).await;
}

#[tokio::test]
async fn a_client_recovers_its_socket_over_polling() {
    recovers_over("polling", Parser::Default).await;
}

#[tokio::test]
async fn recovery_works_with_the_msgpack_parser() {
    recovers_over("websocket", Parser::Msgpack).await;
}

#[tokio::test]
async fn a_client_back_too_late_gets_a_fresh_socket() {
    let recovery =
        ConnectionStateRecovery::default().max_disconnection_duration(Duration::from_millis(100));
    let (url, middlewares) = server(recovery, Parser::Default).await;
    // The client waits 1 s before reconnecting: ten times the window.
    let result = run_node("recovery.mjs", &[&url, "websocket", "1000"]).await;
    assert!(result["error"].is_null(), "{result}");
    let second = &result["second"];
    assert_eq!(second["recovered"], false, "{result}");
    assert_ne!(second["id"], result["first"]["id"]);
    let events = events(&result);
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["welcome"], "{result}");
    assert_eq!(result["events"][0][2], false);
    assert_eq!(result["events"][0][3], Value::Null);
    assert_eq!(middlewares.0.load(Ordering::SeqCst), 3);
}
