//! A broadcaster's ack follows its deliveries: what a handler queued for other connections is
//! written to them before the handler's own packets go out, as on Node, where `emit` writes to
//! every recipient's socket before the next statement runs.
#![allow(clippy::unwrap_used)]

use belfry::{AckSender, SocketIo, SocketRef};
use belfry_tests::{RawWs, serve_nodelay};

/// More recipients than tokio's per-worker run queue holds (256): the writers woken past that
/// wait in the runtime's shared queue, which the worker looks at only now and then.
const RECIPIENTS: usize = 400;

async fn connected(addr: std::net::SocketAddr) -> RawWs {
    let (mut ws, _) = RawWs::open(addr).await;
    ws.frame(0x81, b"40").await;
    let (_, connected) = ws.read_frame().await.unwrap();
    assert!(connected.starts_with(b"40{"), "{connected:?}");
    ws
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_broadcasters_ack_is_written_after_its_deliveries() {
    let (layer, io) = SocketIo::new_layer();
    io.ns("/", async |socket: SocketRef| {
        socket.on("bcast", |socket: SocketRef, ack: AckSender| async move {
            let _ = socket.broadcast().emit("msg", &());
            let _ = ack.send(&());
        });
    });
    // Nagle's algorithm off, or a recipient that just had its connect answered would have its
    // message held back by the kernel until the client's delayed ACK.
    let addr = serve_nodelay(axum::Router::new().layer(layer)).await;
    let mut recipients = Vec::with_capacity(RECIPIENTS);
    for _ in 0..RECIPIENTS {
        recipients.push(connected(addr).await);
    }
    let mut sender = connected(addr).await;

    for round in 0..3 {
        sender
            .frame(0x81, format!(r#"42{round}["bcast"]"#).as_bytes())
            .await;
        assert_eq!(
            sender.read_frame().await.unwrap().1,
            format!("43{round}[]").as_bytes()
        );
        // The ack is in: every recipient has its message already (loopback TCP hands written
        // bytes to the receiving socket within the write).
        let waiting = recipients
            .iter()
            .filter(|ws| !ws.has_unread_bytes())
            .count();
        assert_eq!(
            waiting, 0,
            "round {round}: recipients without their message"
        );
        for ws in &mut recipients {
            assert_eq!(ws.read_frame().await.unwrap().1, br#"42["msg"]"#);
        }
    }
}
