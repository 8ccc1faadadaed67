//! The engine rows (1–26) of the bad-input table in `shared/reference/reliability.md` §5: each
//! input gets Node's answer, closes only the offending session, and never panics the server.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use belfry_engine::{CloseReason, EngineConfig, Packet, SendError, Str};
use belfry_tests::{RawWs, TestServer, http, raw, read_response, upgrade_request};
use bytes::Bytes;
use tokio::{io::AsyncWriteExt, net::TcpStream};

const FIN_TEXT: u8 = 0x81;
const FIN_BINARY: u8 = 0x82;

fn json_error(code: u8, message: &str) -> serde_json::Value {
    serde_json::json!({ "code": code, "message": message })
}

/// Opens a connection and writes the head of a polling POST on `sid` (plus `rest`, raw: more
/// headers, the blank line, maybe the start of a body).
async fn post_head(addr: std::net::SocketAddr, sid: &str, rest: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\nhost: {addr}\r\n{rest}"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

/// After each bad input the server still opens and serves a fresh session.
async fn assert_still_serving(server: &TestServer) {
    let (sid, _) = server.polling_handshake().await;
    assert_eq!(server.post(&sid, b"4ping?").await.status, 200);
    assert_eq!(server.poll(&sid).await.text(), "4ping?");
}

#[tokio::test]
async fn row01_unknown_sid() {
    let server = TestServer::start(EngineConfig::default()).await;
    for method in ["GET", "POST"] {
        let res = http(
            server.addr,
            method,
            "/socket.io/?EIO=4&transport=polling&sid=nope",
            &[],
            b"4x",
        )
        .await;
        assert_eq!(res.status, 400);
        assert_eq!(res.header("content-type"), Some("application/json"));
        assert_eq!(res.json(), json_error(1, "Session ID unknown"));
    }
    let res = raw(
        server.addr,
        upgrade_request(server.addr, "EIO=4&transport=websocket&sid=nope").as_bytes(),
    )
    .await;
    assert_eq!(res.status, 400);
    assert_eq!(res.text(), "Session ID unknown");
    assert_eq!(res.header("connection"), Some("close"));
    assert_still_serving(&server).await;
}

#[tokio::test]
async fn row02_bad_protocol_version() {
    let server = TestServer::start(EngineConfig::default()).await;
    for query in [
        "transport=polling",
        "EIO=abc&transport=polling",
        "EIO=5&transport=polling",
        "EIO=3&transport=polling",
        // Given twice, the last `EIO` counts, as in Node.
        "EIO=4&EIO=3&transport=polling",
    ] {
        let res = http(
            server.addr,
            "GET",
            &format!("/socket.io/?{query}"),
            &[],
            b"",
        )
        .await;
        assert_eq!(res.status, 400, "{query}");
        assert_eq!(
            res.json(),
            json_error(5, "Unsupported protocol version"),
            "{query}"
        );
    }
    assert_eq!(server.engine.clients_count(), 0);
    // The last one is "4": a session opens, as in Node.
    let res = http(
        server.addr,
        "GET",
        "/socket.io/?EIO=3&EIO=4&transport=polling",
        &[],
        b"",
    )
    .await;
    assert_eq!(res.status, 200);
    assert!(res.text().starts_with("0{\"sid\""), "{}", res.text());
}

#[tokio::test]
async fn row03_unknown_transport() {
    let server = TestServer::start(EngineConfig::default()).await;
    for query in [
        "EIO=4",
        "EIO=4&transport=abc",
        "EIO=4&transport=__proto__",
        "EIO=4&transport=constructor",
        "EIO=4&transport=webtransport",
        "EIO=4&transport=polling&transport=abc",
    ] {
        let res = http(
            server.addr,
            "GET",
            &format!("/socket.io/?{query}"),
            &[],
            b"",
        )
        .await;
        assert_eq!(res.status, 400, "{query}");
        assert_eq!(res.json(), json_error(0, "Transport unknown"), "{query}");
    }
    let res = raw(
        server.addr,
        upgrade_request(server.addr, "EIO=4&transport=__proto__").as_bytes(),
    )
    .await;
    assert_eq!(res.status, 400);
    assert_eq!(res.text(), "Transport unknown");
}

#[tokio::test]
async fn row04_bad_handshake_method() {
    let server = TestServer::start(EngineConfig::default()).await;
    for method in ["POST", "PUT"] {
        let res = http(
            server.addr,
            method,
            "/socket.io/?EIO=4&transport=polling",
            &[],
            b"4x",
        )
        .await;
        assert_eq!(res.status, 400, "{method}");
        assert_eq!(
            res.json(),
            json_error(2, "Bad handshake method"),
            "{method}"
        );
    }
    // With a sid, a method other than GET or POST is a 500, as in Node.
    let (sid, _) = server.polling_handshake().await;
    let res = http(
        server.addr,
        "PUT",
        &format!("/socket.io/?EIO=4&transport=polling&sid={sid}"),
        &[],
        b"",
    )
    .await;
    assert_eq!(res.status, 500);
}

#[tokio::test]
async fn row05_transport_mismatch() {
    let server = TestServer::start(EngineConfig::default()).await;
    // websocket without upgrade headers
    let res = http(
        server.addr,
        "GET",
        "/socket.io/?EIO=4&transport=websocket",
        &[],
        b"",
    )
    .await;
    assert_eq!(res.status, 400);
    assert_eq!(res.json(), json_error(3, "Bad request"));
    // a WebSocket session's sid on polling
    let (mut ws, sid) = RawWs::open(server.addr).await;
    let res = server.poll(&sid).await;
    assert_eq!(res.status, 400);
    assert_eq!(res.json(), json_error(3, "Bad request"));
    // the WebSocket session is unaffected
    ws.frame(FIN_TEXT, b"4still").await;
    assert_eq!(ws.read_frame().await, Some((1, b"4still".to_vec())));
    // a polling sid with transport=websocket but no upgrade
    let (sid, _) = server.polling_handshake().await;
    let res = http(
        server.addr,
        "GET",
        &format!("/socket.io/?EIO=4&transport=websocket&sid={sid}"),
        &[],
        b"",
    )
    .await;
    assert_eq!(res.json(), json_error(3, "Bad request"));
}

#[tokio::test]
async fn row06_origin_with_control_characters() {
    let server = TestServer::start(EngineConfig::default()).await;
    let req = format!(
        "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nhost: {}\r\norigin: http://a\x01b\r\nconnection: close\r\n\r\n",
        server.addr
    );
    let res = raw(server.addr, req.as_bytes()).await;
    assert_eq!(res.status, 400);
    assert_eq!(server.engine.clients_count(), 0);
    assert_still_serving(&server).await;
}

#[tokio::test]
async fn row07_bad_upgrade_headers() {
    let server = TestServer::start(EngineConfig::default()).await;
    let addr = server.addr;
    let base = |extra: &str| {
        format!(
            "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nhost: {addr}\r\nconnection: Upgrade\r\nupgrade: websocket\r\n{extra}\r\n"
        )
    };
    // missing key, malformed key
    for extra in [
        "sec-websocket-version: 13\r\n",
        "sec-websocket-version: 13\r\nsec-websocket-key: short\r\n",
        "sec-websocket-version: 13\r\nsec-websocket-key: !!!!!!!!!!!!!!!!!!!!!!==\r\n",
    ] {
        let res = raw(addr, base(extra).as_bytes()).await;
        assert_eq!(res.status, 400, "{extra}");
    }
    // a version other than 13 is answered with the version we speak
    let res = raw(
        addr,
        base("sec-websocket-version: 12\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n")
            .as_bytes(),
    )
    .await;
    assert_eq!(res.status, 400);
    assert_eq!(res.header("sec-websocket-version"), Some("13"));
    // `Upgrade: h2c` is not a WebSocket upgrade; then the client resets the connection.
    let stream = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nhost: {addr}\r\nconnection: Upgrade\r\nupgrade: h2c\r\n\r\n"
    );
    let mut stream = stream;
    stream.write_all(req.as_bytes()).await.unwrap();
    let res = read_response(&mut stream).await;
    assert_eq!(res.status, 400);
    stream.set_zero_linger().unwrap();
    drop(stream);
    assert_eq!(server.engine.clients_count(), 0);
    assert_still_serving(&server).await;
}

#[tokio::test]
async fn row08_oversized_headers_and_uri() {
    let server = TestServer::start(EngineConfig::default()).await;
    let addr = server.addr;
    let mut many = format!("GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nhost: {addr}\r\n");
    for i in 0..101 {
        many.push_str(&format!("x-h{i}: v\r\n"));
    }
    many.push_str("\r\n");
    assert_eq!(raw(addr, many.as_bytes()).await.status, 431);
    let big = format!(
        "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nhost: {addr}\r\nx-big: {}\r\n\r\n",
        "a".repeat(500 * 1024)
    );
    assert_eq!(raw(addr, big.as_bytes()).await.status, 431);
    let uri = format!(
        "GET /socket.io/?EIO=4&transport=polling&pad={} HTTP/1.1\r\nhost: {addr}\r\n\r\n",
        "a".repeat(70 * 1024)
    );
    let status = raw(addr, uri.as_bytes()).await.status;
    assert!(status == 414 || status == 431, "{status}");
    assert_still_serving(&server).await;
}

#[tokio::test]
async fn row10_oversized_post_is_refused_before_buffering() {
    let mut server = TestServer::start(EngineConfig::default()).await;
    // (a) with Content-Length: the 413 comes before any body byte is sent.
    let (sid, _) = server.polling_handshake().await;
    let mut stream = post_head(server.addr, &sid, "content-length: 50000000\r\n\r\n").await;
    let res = read_response(&mut stream).await;
    assert_eq!(res.status, 413);
    assert_eq!(
        server.disconnect_reason(&sid).await,
        CloseReason::TransportError
    );

    // (b) chunked: refused once the body passes 1 MB, without reading the rest.
    let (sid, _) = server.polling_handshake().await;
    let mut stream = post_head(server.addr, &sid, "transfer-encoding: chunked\r\n\r\n").await;
    let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, "4".repeat(64 * 1024));
    let writer = tokio::spawn(async move {
        // 50 MB offered; the server stops reading after about 1 MB.
        for _ in 0..800 {
            if stream.write_all(chunk.as_bytes()).await.is_err() {
                break;
            }
        }
        stream
    });
    assert_eq!(
        server.disconnect_reason(&sid).await,
        CloseReason::TransportError
    );
    writer.abort();
    assert_still_serving(&server).await;
}

#[tokio::test]
async fn row11_slow_post_body_hits_the_deadline() {
    let mut server = TestServer::start(
        EngineConfig::builder()
            .body_timeout(Duration::from_millis(300))
            .build(),
    )
    .await;
    let (sid, _) = server.polling_handshake().await;
    let mut stream = post_head(server.addr, &sid, "content-length: 100\r\n\r\n4").await;
    let res = read_response(&mut stream).await;
    assert_eq!(res.status, 408);
    assert_eq!(
        server.disconnect_reason(&sid).await,
        CloseReason::TransportError
    );
}

#[tokio::test]
async fn row12_binary_content_type_on_eio4() {
    let mut server = TestServer::start(EngineConfig::default()).await;
    let (sid, _) = server.polling_handshake().await;
    let res = http(
        server.addr,
        "POST",
        &format!("/socket.io/?EIO=4&transport=polling&sid={sid}"),
        &[("content-type", "application/octet-stream")],
        b"4x",
    )
    .await;
    assert_eq!(res.status, 400);
    assert_eq!(
        server.disconnect_reason(&sid).await,
        CloseReason::TransportError
    );
}

#[tokio::test]
async fn row13_overlapping_gets_and_posts() {
    let mut server = TestServer::start(EngineConfig::default()).await;
    let (sid, _) = server.polling_handshake().await;
    let addr = server.addr;
    let path = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    let first = tokio::spawn({
        let path = path.clone();
        async move { http(addr, "GET", &path, &[], b"").await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = server.poll(&sid).await;
    assert_eq!(second.status, 400);
    let first = first.await.unwrap();
    assert_eq!((first.status, first.text().as_str()), (200, "1"));
    assert_eq!(
        server.poll(&sid).await.json(),
        json_error(1, "Session ID unknown")
    );
    assert_eq!(
        server.disconnect_reason(&sid).await,
        CloseReason::TransportError
    );

    // Two POSTs: the first one's body is still arriving when the second comes.
    let (sid, _) = server.polling_handshake().await;
    let _slow = post_head(addr, &sid, "content-length: 10\r\n\r\n4").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(server.post(&sid, b"4x").await.status, 400);
    assert_eq!(
        server.disconnect_reason(&sid).await,
        CloseReason::TransportError
    );
}

#[tokio::test]
async fn row14_abandoned_handshakes_are_reclaimed() {
    use tower::ServiceExt;
    let server = TestServer::start(
        EngineConfig::builder()
            .ping_interval(Duration::from_millis(200))
            .ping_timeout(Duration::from_millis(200))
            .build(),
    )
    .await;
    let service = server.engine.service();
    for _ in 0..10_000 {
        let req = http::Request::get("/socket.io/?EIO=4&transport=polling")
            .body(axum::body::Body::empty())
            .unwrap();
        let res = service.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), 200);
    }
    assert_eq!(server.engine.clients_count(), 10_000);
    // Reclaimed after pingInterval + pingTimeout.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while server.engine.clients_count() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(server.engine.clients_count(), 0);
}

#[tokio::test]
async fn row16_second_websocket_for_one_session() {
    let server = TestServer::start(EngineConfig::default()).await;
    let (sid, _) = server.polling_handshake().await;
    let query = format!("EIO=4&transport=websocket&sid={sid}");
    let mut first = RawWs::connect(server.addr, &query).await;
    // As Node: the second handshake succeeds (a `ws` client without an error listener would
    // throw on a refusal) and the connection is closed at once, without a close code.
    let mut second = RawWs::connect(server.addr, &query).await;
    assert_eq!(second.close_code().await, None);
    // The first upgrade goes on.
    first.frame(FIN_TEXT, b"2probe").await;
    assert_eq!(first.read_frame().await, Some((1, b"3probe".to_vec())));
    first.frame(FIN_TEXT, b"5").await;
    first.frame(FIN_TEXT, b"4after").await;
    assert_eq!(first.read_frame().await, Some((1, b"4after".to_vec())));
    // A WebSocket for the session that upgraded: the same.
    let mut third = RawWs::connect(server.addr, &query).await;
    assert_eq!(third.close_code().await, None);
    first.frame(FIN_TEXT, b"4still").await;
    assert_eq!(first.read_frame().await, Some((1, b"4still".to_vec())));
    // An upgrade request for the polling transport, with or without a session: the same, and
    // no session opens.
    for query in [
        "EIO=4&transport=polling",
        &format!("EIO=4&transport=polling&sid={sid}"),
    ] {
        let mut ws = RawWs::connect(server.addr, query).await;
        assert_eq!(ws.close_code().await, None, "{query}");
    }
    assert_eq!(server.engine.clients_count(), 1);
    first.frame(FIN_TEXT, b"4last").await;
    assert_eq!(first.read_frame().await, Some((1, b"4last".to_vec())));
}

#[tokio::test]
async fn row17_undecodable_packets() {
    let mut server = TestServer::start(EngineConfig::default()).await;
    for body in [&b"abc"[..], b"9", b"", b"b!!!", b"4ok\x1e\xff"] {
        let (sid, _) = server.polling_handshake().await;
        let res = server.post(&sid, body).await;
        assert_eq!(res.status, 400, "{body:?}");
        assert_eq!(
            server.disconnect_reason(&sid).await,
            CloseReason::ParseError,
            "{body:?}"
        );
    }
    let (mut ws, sid) = RawWs::open(server.addr).await;
    ws.frame(FIN_TEXT, b"abc").await;
    assert_eq!(
        server.disconnect_reason(&sid).await,
        CloseReason::ParseError
    );
    assert_still_serving(&server).await;
}

#[tokio::test]
async fn row18_many_tiny_packets_in_one_payload() {
    let server = TestServer::start(EngineConfig::default()).await;
    let (sid, _) = server.polling_handshake().await;
    let mut body = b"6\x1e".repeat(499_997);
    body.extend_from_slice(b"4end");
    assert!(body.len() <= 1_000_000);
    let res = server.post(&sid, &body).await;
    assert_eq!(res.status, 200);
    assert_eq!(server.poll(&sid).await.text(), "4end");
}

#[tokio::test]
async fn row20_slow_reader_hits_the_queue_cap_and_is_closed() {
    let mut server = TestServer::start(
        EngineConfig::builder()
            .ping_interval(Duration::from_millis(200))
            .ping_timeout(Duration::from_millis(400))
            .build(),
    )
    .await;
    // A client that never reads, with a small receive buffer, but keeps sending pongs.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(server.addr).await.unwrap();
    stream
        .write_all(upgrade_request(server.addr, "EIO=4&transport=websocket").as_bytes())
        .await
        .unwrap();
    let res = read_response(&mut stream).await;
    assert_eq!(res.status, 101);
    let sid = loop {
        if let Some(socket) = server.engine.sockets().into_iter().next() {
            break socket.id().clone();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let session = server.engine.socket(sid.as_str()).unwrap();
    let pongs = tokio::spawn(async move {
        let pong = belfry_tests::encode_frame(FIN_TEXT, b"3", true);
        while stream.write_all(&pong).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let payload = Str::from("x".repeat(1024));
    let mut full = false;
    for _ in 0..100_000 {
        match session.send(Packet::Message(payload.clone())) {
            Ok(()) => tokio::time::sleep(Duration::from_micros(200)).await,
            Err(SendError::Full) => {
                full = true;
                break;
            }
            Err(_) => break,
        }
    }
    assert!(full, "the bounded queue reports Full to the sender");
    // Keep the queue full; the slow-consumer policy closes the session.
    let keep_full = tokio::spawn(async move {
        while session.send(Packet::Message(payload.clone())) != Err(SendError::Closed) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    assert_eq!(
        server.disconnect_reason(sid.as_str()).await,
        CloseReason::TransportError
    );
    keep_full.await.unwrap();
    pongs.abort();
}

#[tokio::test]
async fn row21_invalid_utf8_closes_1007_but_split_chars_are_fine() {
    let server = TestServer::start(EngineConfig::default()).await;
    for bad in [&[b'4', 0xc0, 0xaf][..], &[b'4', 0xed, 0xa0, 0x80]] {
        let (mut ws, _) = RawWs::open(server.addr).await;
        ws.frame(FIN_TEXT, bad).await;
        assert_eq!(ws.close_code().await, Some(1007));
    }
    // Fragments that are invalid only once joined.
    let (mut ws, _) = RawWs::open(server.addr).await;
    ws.frame(0x01, &[b'4', 0xc0]).await;
    ws.frame(0x80, &[0x20]).await;
    assert_eq!(ws.close_code().await, Some(1007));
    // "é" split across two fragments is legal.
    let (mut ws, _) = RawWs::open(server.addr).await;
    ws.frame(0x01, &[b'4', 0xc3]).await;
    ws.frame(0x80, &[0xa9]).await;
    assert_eq!(ws.read_frame().await, Some((1, "4é".as_bytes().to_vec())));
}

#[tokio::test]
async fn row22_framing_violations_close_1002() {
    let server = TestServer::start(EngineConfig::default()).await;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "unmasked",
            belfry_tests::encode_frame(FIN_TEXT, b"4x", false),
        ),
        ("rsv1", belfry_tests::encode_frame(0xc1, b"4x", true)),
        ("rsv2", belfry_tests::encode_frame(0xa1, b"4x", true)),
        ("rsv3", belfry_tests::encode_frame(0x91, b"4x", true)),
        ("opcode 3", belfry_tests::encode_frame(0x83, b"x", true)),
        ("opcode 0xb", belfry_tests::encode_frame(0x8b, b"x", true)),
        (
            "continuation first",
            belfry_tests::encode_frame(0x80, b"x", true),
        ),
        ("data inside fragments", {
            let mut v = belfry_tests::encode_frame(0x01, b"4a", true);
            v.extend(belfry_tests::encode_frame(FIN_TEXT, b"4b", true));
            v
        }),
    ];
    for (name, bytes) in cases {
        let (mut ws, sid) = RawWs::open(server.addr).await;
        ws.write(&bytes).await;
        assert_eq!(ws.close_code().await, Some(1002), "{name}");
        assert!(
            server.engine.socket(&sid).is_none() || server.engine.socket(&sid).unwrap().is_closed(),
            "{name}"
        );
    }
    assert_still_serving(&server).await;
}

#[tokio::test]
async fn row23_oversized_frames_close_1009_without_allocating() {
    let server = TestServer::start(EngineConfig::builder().max_payload(1000).build()).await;
    // A header declaring 2^63 - 1 bytes.
    let (mut ws, sid) = RawWs::open(server.addr).await;
    let mut header = vec![FIN_BINARY, 0x80 | 127];
    header.extend_from_slice(&(i64::MAX as u64).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    ws.write(&header).await;
    assert_eq!(ws.close_code().await, Some(1009));
    let _ = sid;
    // One byte over the cap, in one frame and in fragments.
    let (mut ws, _) = RawWs::open(server.addr).await;
    ws.frame(FIN_BINARY, &[0u8; 1001]).await;
    assert_eq!(ws.close_code().await, Some(1009));
    let (mut ws, _) = RawWs::open(server.addr).await;
    ws.frame(0x02, &[0u8; 600]).await;
    ws.frame(0x80, &[0u8; 401]).await;
    assert_eq!(ws.close_code().await, Some(1009));
    // Exactly at the cap is fine.
    let (mut ws, _) = RawWs::open(server.addr).await;
    ws.frame(FIN_BINARY, &[7u8; 1000]).await;
    assert_eq!(ws.read_frame().await, Some((2, vec![7u8; 1000])));
}

#[tokio::test]
async fn row24_control_frame_rules() {
    let server = TestServer::start(EngineConfig::default()).await;
    let (mut ws, _) = RawWs::open(server.addr).await;
    ws.frame(0x89, &[0u8; 126]).await;
    assert_eq!(ws.close_code().await, Some(1002), "ping of 126 bytes");
    let (mut ws, _) = RawWs::open(server.addr).await;
    ws.frame(0x09, b"frag").await;
    assert_eq!(ws.close_code().await, Some(1002), "fragmented ping");
    let (mut ws, _) = RawWs::open(server.addr).await;
    let payload: Vec<u8> = (0..125).collect();
    ws.frame(0x89, &payload).await;
    assert_eq!(
        ws.read_frame().await,
        Some((0xa, payload)),
        "pong echoes the ping"
    );
}

#[tokio::test]
async fn row25_endless_empty_continuations_end_at_the_heartbeat() {
    let mut server = TestServer::start(
        EngineConfig::builder()
            .ping_interval(Duration::from_millis(200))
            .ping_timeout(Duration::from_millis(200))
            .build(),
    )
    .await;
    let (mut ws, sid) = RawWs::open(server.addr).await;
    ws.frame(0x01, b"4").await;
    let empty = belfry_tests::encode_frame(0x00, b"", true);
    let burst: Vec<u8> = empty.repeat(10_000);
    let writer = tokio::spawn(async move {
        for _ in 0..100 {
            ws.write(&burst).await;
        }
        ws
    });
    assert_eq!(
        server.disconnect_reason(&sid).await,
        CloseReason::PingTimeout
    );
    writer.abort();
    assert_still_serving(&server).await;
}

#[tokio::test]
async fn row26_close_frames() {
    let mut server = TestServer::start(EngineConfig::default()).await;
    // A one-byte close body, and codes that may not be sent.
    let (mut ws, _) = RawWs::open(server.addr).await;
    ws.frame(0x88, &[0x03]).await;
    assert_eq!(ws.close_code().await, Some(1002), "1-byte close body");
    for code in [999u16, 1005, 1006, 5000] {
        let (mut ws, _) = RawWs::open(server.addr).await;
        ws.frame(0x88, &code.to_be_bytes()).await;
        assert_eq!(ws.close_code().await, Some(1002), "code {code}");
    }
    // An invalid UTF-8 reason.
    let (mut ws, _) = RawWs::open(server.addr).await;
    ws.frame(0x88, &[0x03, 0xe8, 0xc0, 0xaf]).await;
    let code = ws.close_code().await;
    assert!(matches!(code, Some(1002 | 1007)), "{code:?}");
    // A valid close is echoed and ends the session with "transport close".
    server.drain_events();
    let (mut ws, sid) = RawWs::open(server.addr).await;
    ws.frame(0x88, &[0x03, 0xe8, b'b', b'y', b'e']).await;
    assert_eq!(ws.close_code().await, Some(1000));
    assert_eq!(
        server.disconnect_reason(&sid).await,
        CloseReason::TransportClose
    );
}

#[tokio::test]
async fn binary_send_limits_follow_the_caps() {
    // One message larger than the byte cap still goes through an empty queue (it is within
    // max_payload); a second one is refused until the first is written.
    let server = TestServer::start(
        EngineConfig::builder()
            .max_buffered_bytes(1000)
            .max_buffered_packets(4)
            .build(),
    )
    .await;
    let (sid, _) = server.polling_handshake().await;
    let socket = server.engine.socket(&sid).unwrap();
    socket
        .send(Packet::Binary(Bytes::from(vec![0u8; 5000])))
        .unwrap();
    assert_eq!(
        socket.send(Packet::Binary(Bytes::from_static(b"x"))),
        Err(SendError::Full)
    );
    assert!(server.poll(&sid).await.text().starts_with('b'));
    for _ in 0..4 {
        socket.send(Packet::Message(Str::from("m"))).unwrap();
    }
    assert_eq!(
        socket.send(Packet::Message(Str::from("m"))),
        Err(SendError::Full)
    );
    // send_many is all or nothing.
    assert_eq!(server.poll(&sid).await.text(), "4m\x1e4m\x1e4m\x1e4m");
    let batch = vec![Packet::Message(Str::from("a")); 5];
    socket.send_many(&batch[..3]).unwrap();
    assert_eq!(socket.send_many(&batch[..2]), Err(SendError::Full));
    assert_eq!(server.poll(&sid).await.text(), "4a\x1e4a\x1e4a");
}
