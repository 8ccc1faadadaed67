//! WebSocket permessage-deflate (Node's `perMessageDeflate`): negotiated with clients that offer
//! it when turned on, each message of 1024 bytes or more compressed on its own, compressed client
//! messages inflated (and bounded). Judged by a raw client that inflates by hand, and by the
//! official socket.io-client, whose `ws` offers the extension (`tests/js/deflate_client.mjs`).
#![allow(clippy::unwrap_used)]

use belfry::{SocketIo, SocketRef, extract::Data};
use belfry_tests::{RawWs, run_node, serve};
use flate2::{Decompress, FlushDecompress};

const OFFER: &str = "sec-websocket-extensions: permessage-deflate; client_max_window_bits\r\n";

async fn server(deflate: Option<usize>) -> std::net::SocketAddr {
    let (layer, io) = SocketIo::builder()
        .engine(|engine| engine.per_message_deflate(deflate).max_payload(100_000))
        .build_layer();
    io.ns("/", |socket: SocketRef| async move {
        socket.on(
            "echo",
            |socket: SocketRef, Data(text): Data<String>| async move {
                socket.emit("echo", &text).unwrap();
            },
        );
    });
    serve(axum::Router::new().layer(layer)).await
}

fn inflate(payload: &[u8]) -> String {
    let data = [payload, &[0, 0, 0xff, 0xff]].concat();
    let mut out = Vec::with_capacity(1 << 20);
    Decompress::new(false)
        .decompress_vec(&data, &mut out, FlushDecompress::Sync)
        .unwrap();
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn large_server_messages_are_compressed_for_clients_that_offer_it() {
    let addr = server(Some(1024)).await;
    let (mut ws, res) = RawWs::connect_with(addr, "EIO=4&transport=websocket", OFFER).await;
    assert_eq!(
        res.header("sec-websocket-extensions"),
        Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
    );
    // Small frames as they are: the open packet, then CONNECT.
    let (first, _) = ws.read_frame_with_flags().await.unwrap();
    assert_eq!(first, 0x81);
    ws.frame(0x81, b"40").await;
    let (first, connect) = ws.read_frame_with_flags().await.unwrap();
    assert_eq!(first, 0x81);
    assert!(connect.starts_with(b"40{"));
    // A large event: RSV1 set, and it inflates to the packet.
    let big = "b".repeat(5000);
    let event = format!(r#"42["echo","{big}"]"#);
    ws.frame(0x81, event.as_bytes()).await;
    let (first, payload) = ws.read_frame_with_flags().await.unwrap();
    assert_eq!(first, 0xc1, "FIN, RSV1, text");
    assert!(payload.len() < 200, "{} bytes", payload.len());
    assert_eq!(inflate(&payload), event);
}

#[tokio::test]
async fn nothing_is_negotiated_when_off_or_not_offered() {
    for (deflate, offer) in [(None, OFFER), (Some(1024), "")] {
        let addr = server(deflate).await;
        let (mut ws, res) = RawWs::connect_with(addr, "EIO=4&transport=websocket", offer).await;
        assert_eq!(res.header("sec-websocket-extensions"), None);
        ws.read_frame().await.unwrap();
        ws.frame(0x81, b"40").await;
        ws.read_frame().await.unwrap();
        let event = format!(r#"42["echo","{}"]"#, "b".repeat(5000));
        ws.frame(0x81, event.as_bytes()).await;
        let (first, payload) = ws.read_frame_with_flags().await.unwrap();
        assert_eq!(first, 0x81);
        assert_eq!(payload, event.as_bytes());
    }
}

#[tokio::test]
async fn a_compressed_message_inflating_past_max_payload_closes_the_connection() {
    let addr = server(Some(1024)).await;
    let (mut ws, _) = RawWs::connect_with(addr, "EIO=4&transport=websocket", OFFER).await;
    ws.read_frame().await.unwrap();
    // 1 MB of zeros compresses to about 1 KB; the server accepts 100 KB.
    let mut compress = flate2::Compress::new(flate2::Compression::default(), false);
    let mut bomb = Vec::with_capacity(10_000);
    let zeros = vec![b'4'; 1_000_000];
    compress
        .compress_vec(&zeros, &mut bomb, flate2::FlushCompress::Sync)
        .unwrap();
    bomb.truncate(bomb.len() - 4);
    ws.frame(0xc1, &bomb).await;
    loop {
        match ws.read_frame().await {
            None | Some((8, _)) => break,
            Some((_, frame)) => assert_eq!(frame, b"2", "only heartbeats before the close"),
        }
    }
}

#[tokio::test]
async fn socket_io_client_negotiates_and_both_sides_compress() {
    let addr = server(Some(1024)).await;
    for transport in ["websocket", "upgrade"] {
        let r = run_node(
            "deflate_client.mjs",
            &[&format!("http://{addr}"), transport],
        )
        .await;
        assert!(r["error"].is_null(), "{transport}: {r:#}");
        assert!(
            r["extensions"]
                .as_str()
                .unwrap()
                .contains("permessage-deflate"),
            "{transport}: {r:#}"
        );
        assert_eq!(r["echoLength"], 20_000, "{transport}");
        assert_eq!(r["echoIntact"], true, "{transport}");
        assert_eq!(r["transport"], "websocket", "{transport}");
    }
}

/// A client that asks for a smaller server window (`server_max_window_bits=10`, which Node's
/// `ws` accepts) gets compression: messages up to 1 KiB compressed within that window, longer
/// ones uncompressed; both arrive intact.
#[tokio::test]
async fn a_client_asking_for_a_smaller_window_gets_compression() {
    let addr = server(Some(256)).await;
    let r = run_node(
        "deflate_client.mjs",
        &[&format!("http://{addr}"), "small-window"],
    )
    .await;
    assert!(r["error"].is_null(), "{r:#}");
    assert_eq!(r["extensions"], "permessage-deflate", "{r:#}");
    assert_eq!(r["echoIntact"], true);
    assert_eq!(r["shortIntact"], true);
    // Raw: a 600-byte message is compressed, a 2,000-byte one is not.
    let (mut ws, res) = RawWs::connect_with(
        addr,
        "EIO=4&transport=websocket",
        "sec-websocket-extensions: permessage-deflate; server_max_window_bits=10\r\n",
    )
    .await;
    assert!(
        res.header("sec-websocket-extensions")
            .unwrap()
            .ends_with("server_max_window_bits=10")
    );
    ws.read_frame_with_flags().await.unwrap();
    ws.frame(0x81, b"40").await;
    ws.read_frame_with_flags().await.unwrap();
    for (len, first) in [(600, 0xc1), (2000, 0x81)] {
        let event = format!(r#"42["echo","{}"]"#, "c".repeat(len));
        ws.frame(0x81, event.as_bytes()).await;
        let (head, _) = ws.read_frame_with_flags().await.unwrap();
        assert_eq!(head, first, "{len}");
    }
}
