//! The msgpack parser facing bad input, as raw WebSocket frames: every malformed packet closes
//! its connection only, no handler runs, and a well-formed client next to it is served.
#![allow(clippy::unwrap_used)]

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use belfry::{
    AckSender, SocketIo, SocketRef,
    core::{
        msgpack::{Value, get, read, write},
        parser::Parser,
    },
};
use belfry_tests::{RawWs, serve};

const FIN_TEXT: u8 = 0x81;
const FIN_BINARY: u8 = 0x82;

fn packet(entries: Vec<(&str, Value)>) -> Vec<u8> {
    write(&Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (Value::from(k), v))
            .collect(),
    ))
    .unwrap()
}

fn connect() -> Vec<u8> {
    packet(vec![("type", 0.into()), ("nsp", "/".into())])
}

fn event(name: &str, id: Option<u64>) -> Vec<u8> {
    let mut entries = vec![
        ("type", 2.into()),
        ("nsp", "/".into()),
        (
            "data",
            Value::Array(vec![name.into(), Value::Binary(vec![1])]),
        ),
    ];
    if let Some(id) = id {
        entries.push(("id", id.into()));
    }
    packet(entries)
}

/// Reads until the server ends the connection (a close frame, or the stream ending).
async fn assert_closed(ws: &mut RawWs) {
    loop {
        match ws.read_frame().await {
            None | Some((8, _)) => return,
            // Heartbeats may come first; anything else means the server answered instead.
            Some((_, frame)) => assert_eq!(frame, b"2", "expected the connection to close"),
        }
    }
}

async fn joined(addr: std::net::SocketAddr) -> RawWs {
    let (mut ws, _) = RawWs::open(addr).await;
    ws.frame(FIN_BINARY, &connect()).await;
    let (opcode, reply) = ws.read_frame().await.unwrap();
    assert_eq!(opcode, 2, "a binary CONNECT reply");
    let reply = read(&reply).unwrap();
    assert_eq!(get(&reply, "type"), Some(&Value::from(0)));
    assert!(get(get(&reply, "data").unwrap(), "sid").unwrap().is_str());
    ws
}

#[tokio::test]
async fn malformed_msgpack_packets_close_only_their_connection() {
    let (layer, io) = SocketIo::builder().parser(Parser::Msgpack).build_layer();
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    io.ns("/", move |socket: SocketRef| {
        let counter = counter.clone();
        async move {
            socket.on("x", move |ack: AckSender| {
                counter.fetch_add(1, Ordering::SeqCst);
                async move {
                    let _ = ack.send(&"done");
                }
            });
        }
    });
    let addr = serve(axum::Router::new().layer(layer)).await;
    let mut good = joined(addr).await;

    let deep = [vec![0x91; 100_000], vec![0xc0]].concat();
    let bad: Vec<(&str, u8, Vec<u8>)> = vec![
        ("a text message", FIN_TEXT, b"42[\"x\"]".to_vec()),
        ("not msgpack", FIN_BINARY, vec![0xc1, 0x00]),
        ("nested 100,000 deep", FIN_BINARY, deep),
        ("a reserved event", FIN_BINARY, event("connect", None)),
        (
            "an unknown type",
            FIN_BINARY,
            packet(vec![("type", 6.into()), ("nsp", "/".into())]),
        ),
        ("a CONNECT twice", FIN_BINARY, connect()),
        (
            "an event without arguments array",
            FIN_BINARY,
            packet(vec![
                ("type", 2.into()),
                ("nsp", "/".into()),
                ("data", "x".into()),
            ]),
        ),
    ];
    for (what, opcode, message) in bad {
        let mut ws = joined(addr).await;
        ws.frame(opcode, &message).await;
        assert_closed(&mut ws).await;
        assert_eq!(calls.load(Ordering::SeqCst), 0, "{what}");
    }
    // An event before CONNECT.
    let (mut ws, _) = RawWs::open(addr).await;
    ws.frame(FIN_BINARY, &event("x", None)).await;
    assert_closed(&mut ws).await;

    // The well-formed client was not disturbed: its acked event is answered, in msgpack.
    good.frame(FIN_BINARY, &event("x", Some(4))).await;
    let (opcode, reply) = good.read_frame().await.unwrap();
    assert_eq!(opcode, 2);
    let reply = read(&reply).unwrap();
    assert_eq!(get(&reply, "type"), Some(&Value::from(3)));
    assert_eq!(get(&reply, "id"), Some(&Value::from(4)));
    assert_eq!(
        get(&reply, "data"),
        Some(&Value::Array(vec!["done".into()]))
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// An `Args` echo of binary arguments goes out with the msgpack parser, the binary in its place
/// (`Args` keeps the event's attachments), and `emit` says it was sent.
#[tokio::test]
async fn a_binary_args_echo_goes_out_with_msgpack() {
    let (layer, io) = SocketIo::builder().parser(Parser::Msgpack).build_layer();
    io.ns("/", |socket: SocketRef| async move {
        socket.on(
            "x",
            |socket: SocketRef, args: belfry::extract::Args, ack: AckSender| async move {
                let sent = socket.emit("echo", &args);
                let _ = ack.send(&sent.is_ok());
            },
        );
    });
    let addr = serve(axum::Router::new().layer(layer)).await;
    let mut ws = joined(addr).await;
    ws.frame(FIN_BINARY, &event("x", Some(1))).await;
    let (opcode, echo) = ws.read_frame().await.unwrap();
    assert_eq!(opcode, 2);
    let echo = read(&echo).unwrap();
    assert_eq!(get(&echo, "type"), Some(&Value::from(2)));
    assert_eq!(
        get(&echo, "data"),
        Some(&Value::Array(vec!["echo".into(), Value::Binary(vec![1])]))
    );
    let (_, reply) = ws.read_frame().await.unwrap();
    let reply = read(&reply).unwrap();
    assert_eq!(get(&reply, "type"), Some(&Value::from(3)));
    assert_eq!(get(&reply, "data"), Some(&Value::Array(vec![true.into()])));
}
