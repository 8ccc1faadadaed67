//! Every disconnect reason a client can cause, as the socket's disconnect handler sees it.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use belfry::{DisconnectReason, SocketIo, SocketRef};
use belfry_tests::{RawWs, serve};
use tokio::sync::mpsc;

const FIN_TEXT: u8 = 0x81;

async fn server() -> (
    std::net::SocketAddr,
    mpsc::UnboundedReceiver<DisconnectReason>,
) {
    let (layer, io) = SocketIo::builder()
        .ping_interval(Duration::from_millis(200))
        .ping_timeout(Duration::from_millis(200))
        .build_layer();
    let (tx, rx) = mpsc::unbounded_channel();
    io.ns("/", move |socket: SocketRef| {
        let tx = tx.clone();
        async move {
            socket.on_disconnect(move |reason: DisconnectReason| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(reason);
                }
            });
        }
    });
    let addr = serve(axum::Router::new().layer(layer)).await;
    (addr, rx)
}

/// A WebSocket client joined to `/`.
async fn joined(addr: std::net::SocketAddr) -> RawWs {
    let (mut ws, _) = RawWs::open(addr).await;
    ws.frame(FIN_TEXT, b"40").await;
    let (_, reply) = ws.read_frame().await.unwrap();
    assert!(reply.starts_with(b"40{\"sid\""));
    ws
}

async fn reason(rx: &mut mpsc::UnboundedReceiver<DisconnectReason>) -> DisconnectReason {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("a disconnect within 5 s")
        .unwrap()
}

#[tokio::test]
async fn each_reason_a_client_can_cause() {
    let (addr, mut rx) = server().await;
    let cases: Vec<(&str, Vec<u8>, DisconnectReason)> = vec![
        // The client leaves the namespace; its connection stays.
        (
            "41",
            b"41".to_vec(),
            DisconnectReason::ClientNamespaceDisconnect,
        ),
        // The client closes the Engine.IO session.
        ("1", b"1".to_vec(), DisconnectReason::TransportClose),
        // An Engine.IO packet that cannot be decoded.
        ("abc", b"abc".to_vec(), DisconnectReason::ParseError),
        // A client ping is invalid in Engine.IO v4.
        ("2", b"2".to_vec(), DisconnectReason::TransportError),
        // A Socket.IO protocol violation: a second CONNECT.
        ("40", b"40".to_vec(), DisconnectReason::ForcedServerClose),
        // An undecodable Socket.IO packet.
        (
            "42{}",
            b"42{}".to_vec(),
            DisconnectReason::ForcedServerClose,
        ),
    ];
    for (name, frame, expected) in cases {
        let mut ws = joined(addr).await;
        ws.frame(FIN_TEXT, &frame).await;
        assert_eq!(reason(&mut rx).await, expected, "{name}");
    }

    // The TCP connection drops without a close frame.
    let ws = joined(addr).await;
    drop(ws);
    assert_eq!(reason(&mut rx).await, DisconnectReason::TransportClose);

    // The client stops answering pings.
    let _silent = joined(addr).await;
    assert_eq!(reason(&mut rx).await, DisconnectReason::PingTimeout);
}
