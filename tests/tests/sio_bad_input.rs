//! The Socket.IO rows (27–39) of the bad-input table in `shared/reference/reliability.md` §5,
//! sent as raw WebSocket frames: each violation closes the offending connection only, no
//! handler runs for it, and memory stays bounded.
#![allow(clippy::unwrap_used)]

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use belfry::{AckSender, SocketIo, SocketRef};
use belfry_tests::{RawWs, serve};

const FIN_TEXT: u8 = 0x81;
const FIN_BINARY: u8 = 0x82;

struct Server {
    addr: std::net::SocketAddr,
    io: SocketIo,
    calls: Arc<AtomicUsize>,
}

/// `/` and `/admin`; the `x` event counts its calls, `echo` acks its arguments.
async fn start() -> Server {
    let (layer, io) = SocketIo::new_layer();
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let handler = move |socket: SocketRef| {
        let counter = counter.clone();
        async move {
            socket.on("x", move || {
                let counter = counter.clone();
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
            });
            socket.on("echo", |ack: AckSender| async move {
                let _ = ack.send(&"echo");
            });
        }
    };
    io.ns("/", handler.clone());
    io.ns("/admin", handler);
    let addr = serve(axum::Router::new().layer(layer)).await;
    Server { addr, io, calls }
}

/// A WebSocket session, joined to `/` unless `join` is false.
async fn client(server: &Server, join: bool) -> RawWs {
    let (mut ws, _) = RawWs::open(server.addr).await;
    if join {
        ws.frame(FIN_TEXT, b"40").await;
        let (_, reply) = ws.read_frame().await.unwrap();
        assert!(
            reply.starts_with(b"40{\"sid\":\""),
            "{}",
            String::from_utf8_lossy(&reply)
        );
    }
    ws
}

/// Reads until the server ends the connection (a close frame, or the stream ending).
async fn assert_closed(ws: &mut RawWs) {
    loop {
        match ws.read_frame().await {
            None | Some((8, _)) => return,
            Some((_, frame)) => {
                // Heartbeats may come first; anything else means the server answered instead.
                assert_eq!(frame, b"2", "expected the connection to close");
            }
        }
    }
}

/// The connection still works: an acked event gets its answer.
async fn assert_alive(ws: &mut RawWs) {
    ws.frame(FIN_TEXT, b"421[\"echo\"]").await;
    let (_, reply) = ws.read_frame().await.unwrap();
    assert_eq!(String::from_utf8_lossy(&reply), "431[\"echo\"]");
}

#[tokio::test]
async fn row27_packets_before_connect() {
    let server = start().await;
    let mut ws = client(&server, false).await;
    ws.frame(FIN_TEXT, b"42[\"x\"]").await;
    assert_closed(&mut ws).await;
    let mut ws = client(&server, true).await;
    ws.frame(FIN_TEXT, b"42/admin,[\"x\"]").await;
    assert_closed(&mut ws).await;
    assert_eq!(server.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn row28_connect_twice() {
    let server = start().await;
    let mut ws = client(&server, true).await;
    ws.frame(FIN_TEXT, b"40").await;
    assert_closed(&mut ws).await;
}

#[tokio::test]
async fn row29_unknown_namespaces() {
    let server = start().await;
    let mut ws = client(&server, true).await;
    for i in 0..10_000 {
        let connect = format!("40/nope{i},");
        ws.frame(FIN_TEXT, connect.as_bytes()).await;
        let (_, reply) = ws.read_frame().await.unwrap();
        assert_eq!(
            String::from_utf8_lossy(&reply),
            format!("44/nope{i},{{\"message\":\"Invalid namespace\"}}")
        );
    }
    // Nothing was created for them, and the connection still works.
    assert_eq!(server.io.namespace_count(), 2);
    assert_alive(&mut ws).await;
}

#[tokio::test]
async fn row31_wrong_payload_shapes() {
    let server = start().await;
    for packet in [
        &b"40\"s\""[..],
        b"40[]",
        b"40null",
        b"41{\"a\":1}",
        b"42{}",
        b"42[]",
        b"43{\"a\":1}",
        b"42abc[\"x\"]",
        b"4abc",
    ] {
        let mut ws = client(&server, !packet.starts_with(b"40")).await;
        ws.frame(FIN_TEXT, packet).await;
        assert_closed(&mut ws).await;
    }
    assert_eq!(server.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn row32_bad_event_names() {
    let server = start().await;
    for packet in [
        &b"42[{\"toString\":\"foo\"}]"[..],
        b"42[true,\"x\"]",
        b"42[null]",
        b"42[\"connect\"]",
        b"42[\"disconnect\",\"x\"]",
        b"42[\"disconnecting\"]",
    ] {
        let mut ws = client(&server, true).await;
        ws.frame(FIN_TEXT, packet).await;
        assert_closed(&mut ws).await;
    }
}

#[tokio::test]
async fn row33_events_without_handler_are_ignored() {
    let server = start().await;
    let mut ws = client(&server, true).await;
    ws.frame(FIN_TEXT, b"42[\"error\",\"x\"]").await;
    ws.frame(FIN_TEXT, b"42[\"nobody-listens\"]").await;
    ws.frame(FIN_TEXT, b"425[\"nobody-listens\"]").await;
    assert_alive(&mut ws).await;
}

#[tokio::test]
async fn rows34_to_36_attachment_abuse() {
    let server = start().await;
    for packet in [
        &b"45"[..],
        b"451",
        b"45a-",
        b"451.23-",
        b"45-1-",
        b"451000000000-[\"x\"]",
        b"4511-[\"x\"]",
        b"451-[\"x\",{\"_placeholder\":true,\"num\":\"splice\"}]",
        b"451-[\"x\",{\"_placeholder\":true,\"num\":1}]",
        b"451-[\"x\",{\"_placeholder\":\"true\",\"num\":0}]",
    ] {
        let mut ws = client(&server, true).await;
        ws.frame(FIN_TEXT, packet).await;
        assert_closed(&mut ws).await;
    }
    let long = format!("45{}-[\"x\"]", "9".repeat(10_000));
    let mut ws = client(&server, true).await;
    ws.frame(FIN_TEXT, long.as_bytes()).await;
    assert_closed(&mut ws).await;
    // A binary frame with no packet waiting for it.
    let mut ws = client(&server, true).await;
    ws.frame(FIN_BINARY, b"\x01").await;
    assert_closed(&mut ws).await;
    // A text frame while attachments are awaited.
    let mut ws = client(&server, true).await;
    ws.frame(FIN_TEXT, b"451-[\"x\",{\"_placeholder\":true,\"num\":0}]")
        .await;
    ws.frame(FIN_TEXT, b"42[\"x\"]").await;
    assert_closed(&mut ws).await;
    // `450-` is complete at once; the binary frames that follow are strays.
    let mut ws = client(&server, true).await;
    ws.frame(FIN_TEXT, b"450-[\"x\"]").await;
    ws.frame(FIN_BINARY, b"\x01").await;
    assert_closed(&mut ws).await;
}

#[tokio::test]
async fn row37_ack_ids() {
    let server = start().await;
    let mut ws = client(&server, true).await;
    // Unknown and repeated acks are ignored.
    ws.frame(FIN_TEXT, b"43999[]").await;
    ws.frame(FIN_TEXT, b"43999[]").await;
    assert_alive(&mut ws).await;
    ws.frame(FIN_TEXT, b"4318446744073709551616[]").await;
    assert_closed(&mut ws).await;
}

#[tokio::test]
async fn row38_deep_json() {
    let server = start().await;
    let mut ws = client(&server, true).await;
    let deep = format!("42[\"x\",{}{}]", "[".repeat(100_000), "]".repeat(100_000));
    ws.frame(FIN_TEXT, deep.as_bytes()).await;
    assert_closed(&mut ws).await;
    assert_eq!(server.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn row39_rooms_are_deleted_with_their_last_member() {
    let (layer, io) = SocketIo::new_layer();
    io.ns("/", |socket: SocketRef| async move {
        socket.join("big");
        socket.on(
            "bye",
            |socket: SocketRef| async move { socket.disconnect() },
        );
    });
    let addr = serve(axum::Router::new().layer(layer)).await;
    let server = Server {
        addr,
        io: io.clone(),
        calls: Arc::default(),
    };
    for _wave in 0..3 {
        let mut clients = Vec::new();
        for _ in 0..200 {
            clients.push(client(&server, true).await);
        }
        let rooms = io.rooms("/").unwrap();
        assert!(rooms.contains(&"big".to_owned()));
        assert_eq!(rooms.len(), 201, "each socket's own room, and `big`");
        for ws in &mut clients {
            ws.frame(FIN_TEXT, b"41").await;
        }
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while !io.rooms("/").unwrap().is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(io.rooms("/").unwrap(), Vec::<String>::new());
    }
}

#[tokio::test]
async fn row15_a_client_that_never_joins_is_closed_at_the_connect_timeout() {
    let (layer, io) = SocketIo::builder()
        .connect_timeout(std::time::Duration::from_millis(300))
        .build_layer();
    io.ns("/", |socket: SocketRef| async move {
        socket.on("echo", |ack: AckSender| async move {
            let _ = ack.send(&"echo");
        });
    });
    let addr = serve(axum::Router::new().layer(layer)).await;
    let server = Server {
        addr,
        io: io.clone(),
        calls: Arc::default(),
    };
    let started = std::time::Instant::now();
    let mut idle = client(&server, false).await;
    let mut joined = client(&server, true).await;
    assert_closed(&mut idle).await;
    assert!(started.elapsed() >= std::time::Duration::from_millis(250));
    // A client that joined in time is kept.
    assert_alive(&mut joined).await;
    assert_eq!(io.clients_count(), 1);
    // Later clients are watched too (the timer starts again once it had nothing to watch).
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let mut late = client(&server, false).await;
    assert_closed(&mut late).await;
    assert_alive(&mut joined).await;
}
