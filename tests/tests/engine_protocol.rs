//! Engine.IO v4 on the wire, byte for byte: handshakes, long-polling, WebSocket, the upgrade,
//! heartbeats, closing from either side, and every engine option.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use belfry_engine::{
    CloseReason, Cookie, EngineConfig, Packet, SendError, Sid, Str, TransportType,
};
use belfry_tests::{Event, RawWs, TestServer, encode_frame, http, read_response, upgrade_request};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::{connect_async, tungstenite::Message};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect_ws(server: &TestServer, query: &str) -> Ws {
    let url = format!("ws://{}/socket.io/?{query}", server.addr);
    connect_async(url).await.unwrap().0
}

async fn next_text(ws: &mut Ws) -> String {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => return text.to_string(),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// Waits (5 s at most) until the server ends the WebSocket.
async fn assert_ws_closed(ws: &mut Ws) {
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                _ => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the server closes the websocket");
}

/// The session id in an open packet (`0{...}`).
fn open_sid(open: &str) -> String {
    let json: serde_json::Value = serde_json::from_str(&open[1..]).unwrap();
    json["sid"].as_str().unwrap().to_owned()
}

fn fast_heartbeat() -> EngineConfig {
    EngineConfig::builder()
        .ping_interval(Duration::from_millis(300))
        .ping_timeout(Duration::from_millis(300))
        .build()
}

#[tokio::test]
async fn polling_handshake_matches_node() {
    let server = TestServer::start(EngineConfig::default()).await;
    let res = http(
        server.addr,
        "GET",
        "/socket.io/?EIO=4&transport=polling&t=abc",
        &[],
        b"",
    )
    .await;
    assert_eq!(res.status, 200);
    assert_eq!(
        res.header("content-type"),
        Some("text/plain; charset=UTF-8")
    );
    assert_eq!(res.header("cache-control"), Some("no-store"));
    assert_eq!(
        res.header("content-length"),
        Some(res.body.len().to_string().as_str())
    );
    let body = res.text();
    let json = body.strip_prefix('0').expect("open packet");
    let open: serde_json::Value = serde_json::from_str(json).unwrap();
    let sid = open["sid"].as_str().unwrap();
    assert_eq!(sid.len(), 20);
    assert!(
        sid.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    // Exactly Node's keys, in Node's order.
    assert_eq!(
        json,
        format!(
            r#"{{"sid":"{sid}","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}}"#
        )
    );
    assert_eq!(server.engine.clients_count(), 1);
}

#[tokio::test]
async fn websocket_handshake_sends_open_first() {
    let server = TestServer::start(EngineConfig::default()).await;
    let mut ws = connect_ws(&server, "EIO=4&transport=websocket").await;
    let open = next_text(&mut ws).await;
    let open: serde_json::Value = serde_json::from_str(open.strip_prefix('0').unwrap()).unwrap();
    assert_eq!(open["upgrades"], serde_json::json!([]));
    assert_eq!(open["maxPayload"], 1_000_000);
    echoes_text_and_binary(&mut ws).await;
}

/// A text and a binary message come back from the echoing test engine.
async fn echoes_text_and_binary(ws: &mut Ws) {
    ws.send(Message::text("4hi")).await.unwrap();
    assert_eq!(next_text(ws).await, "4hi");
    ws.send(Message::binary(vec![0u8, 1, 2])).await.unwrap();
    match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
        Ok(Some(Ok(Message::Binary(data)))) => assert_eq!(&data[..], &[0, 1, 2]),
        other => panic!("{other:?}"),
    }
}

/// Served by hyper's own HTTP/1 builder, the WebSocket runs on the TCP stream itself (not
/// through hyper's `Upgraded`): the same exchange, text and binary.
#[tokio::test]
async fn websocket_over_hyper_http1_works_the_same() {
    let server = TestServer::start_http1(EngineConfig::default()).await;
    let mut ws = connect_ws(&server, "EIO=4&transport=websocket").await;
    assert!(next_text(&mut ws).await.starts_with("0{"));
    echoes_text_and_binary(&mut ws).await;
}

/// A WebSocket session over a client socket with a 4 KiB receive buffer, its open packet read.
async fn open_slow_reader(server: &TestServer) -> RawWs {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(server.addr).await.unwrap();
    let (mut ws, _) =
        RawWs::handshake_on(stream, server.addr, "EIO=4&transport=websocket", "").await;
    assert_eq!(ws.read_frame().await.map(|(opcode, _)| opcode), Some(1));
    ws
}

/// A large message goes out in one vectored write from its own buffer; to a client that reads
/// slowly, the socket takes part of it (messages larger than the kernel's largest send buffer,
/// 4 MiB here) and the rest follows, whole and in order, before the next.
#[tokio::test]
async fn large_messages_reach_a_slow_reader_whole() {
    let config = || {
        EngineConfig::builder()
            .max_payload(6 << 20)
            .max_buffered_bytes(64 << 20)
            .build()
    };
    for server in [
        TestServer::start(config()).await,
        TestServer::start_http1(config()).await,
    ] {
        let mut ws = open_slow_reader(&server).await;
        let message = |i: u8| {
            let letters =
                (0..5_000_000u32).map(|n| char::from(b'a' + ((n + u32::from(i)) % 26) as u8));
            std::iter::once('4').chain(letters).collect::<String>()
        };
        for i in 0..2u8 {
            ws.frame(0x81, message(i).as_bytes()).await;
            // One message at a time: the server writes each alone, from its buffer.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for i in 0..2u8 {
            let (opcode, payload) = ws.read_frame().await.expect("the echo");
            assert_eq!(opcode, 1);
            assert!(payload == message(i).as_bytes(), "echo {i} arrived altered");
        }
    }
}

/// A frame written in the same segment as the upgrade request is read by hyper with the request;
/// the WebSocket gets it first, whichever way the connection is served.
#[tokio::test]
async fn a_frame_sent_with_the_upgrade_request_is_read() {
    for server in [
        TestServer::start(EngineConfig::default()).await,
        TestServer::start_http1(EngineConfig::default()).await,
    ] {
        let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let mut request = upgrade_request(server.addr, "EIO=4&transport=websocket").into_bytes();
        request.extend(encode_frame(0x81, b"4early", true));
        stream.write_all(&request).await.unwrap();
        let response = read_response(&mut stream).await;
        assert_eq!(response.status, 101, "{response:?}");
        let mut rest = response.body;
        let mut frames = Vec::new();
        while frames.len() < 2 {
            // Unmasked server frames of under 126 bytes: two header bytes, then the payload.
            if rest.len() >= 2 && rest.len() >= 2 + usize::from(rest[1]) {
                let len = usize::from(rest[1]);
                frames.push(String::from_utf8(rest[2..2 + len].to_vec()).unwrap());
                rest.drain(..2 + len);
                continue;
            }
            let mut chunk = [0u8; 1024];
            let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
                .await
                .expect("the server answers within 5 s")
                .unwrap();
            assert!(n > 0, "the connection stays open");
            rest.extend_from_slice(&chunk[..n]);
        }
        assert!(frames[0].starts_with("0{"), "{frames:?}");
        assert_eq!(frames[1], "4early");
    }
}

#[tokio::test]
async fn get_is_held_until_packets_exist() {
    let server = TestServer::start(EngineConfig::default()).await;
    let (sid, _) = server.polling_handshake().await;
    let socket = server.engine.socket(&sid).unwrap();
    let addr = server.addr;
    let path = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    let get = tokio::spawn(async move { http(addr, "GET", &path, &[], b"").await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!get.is_finished(), "the GET waits for packets");
    socket.send(Packet::Message(Str::from("one"))).unwrap();
    socket
        .send(Packet::Binary(Bytes::from_static(&[1, 2, 3, 4])))
        .unwrap();
    let res = get.await.unwrap();
    assert_eq!(res.status, 200);
    // Both packets queued before the GET woke, or only the first: both are valid batches.
    let body = res.text();
    assert!(body == "4one\x1ebAQIDBA==" || body == "4one", "{body:?}");
    if body == "4one" {
        assert_eq!(server.poll(&sid).await.text(), "bAQIDBA==");
    }
}

#[tokio::test]
async fn post_carries_several_packets_and_binary() {
    let mut server = TestServer::start(EngineConfig::default()).await;
    let (sid, _) = server.polling_handshake().await;
    assert!(matches!(server.next_event().await, Event::Connect(_)));
    let res = server
        .post(&sid, b"4hello\x1ebAQIDBA==\x1e4w\xc3\xb6rld")
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(res.header("content-type"), Some("text/html"));
    assert_eq!(res.text(), "ok");
    let sid = Sid::from(sid.as_str());
    assert_eq!(
        server.next_event().await,
        Event::Message(sid.clone(), "hello".into())
    );
    assert_eq!(
        server.next_event().await,
        Event::Binary(sid.clone(), Bytes::from_static(&[1, 2, 3, 4]))
    );
    assert_eq!(
        server.next_event().await,
        Event::Message(sid.clone(), "wörld".into())
    );
    // The echoes come back joined in one payload.
    assert_eq!(
        server.poll(sid.as_str()).await.text(),
        "4hello\x1ebAQIDBA==\x1e4wörld"
    );
}

#[tokio::test]
async fn first_ping_comes_one_interval_after_handshake() {
    let server = TestServer::start(
        EngineConfig::builder()
            .ping_interval(Duration::from_millis(400))
            .build(),
    )
    .await;
    let (sid, _) = server.polling_handshake().await;
    let start = Instant::now();
    let res = server.poll(&sid).await;
    assert_eq!(res.text(), "2");
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "the first ping waits one interval, got it after {:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn pongs_keep_the_session_and_silence_times_out() {
    let mut server = TestServer::start(fast_heartbeat()).await;
    let (sid, _) = server.polling_handshake().await;
    for _ in 0..3 {
        assert_eq!(server.poll(&sid).await.text(), "2");
        assert_eq!(server.post(&sid, b"3").await.status, 200);
    }
    assert!(
        server.engine.socket(&sid).is_some(),
        "alive after three pongs"
    );
    assert_eq!(server.poll(&sid).await.text(), "2");
    assert_eq!(
        server.disconnect_reason(&sid).await,
        CloseReason::PingTimeout
    );
}

#[tokio::test]
async fn websocket_ping_timeout() {
    let mut server = TestServer::start(fast_heartbeat()).await;
    let mut ws = connect_ws(&server, "EIO=4&transport=websocket").await;
    let open = next_text(&mut ws).await;
    let sid = open_sid(&open);
    assert_eq!(next_text(&mut ws).await, "2");
    ws.send(Message::text("3")).await.unwrap();
    assert_eq!(next_text(&mut ws).await, "2");
    assert_eq!(
        server.disconnect_reason(&sid).await,
        CloseReason::PingTimeout
    );
    // The server closes the WebSocket.
    assert_ws_closed(&mut ws).await;
}

#[tokio::test]
async fn client_ping_is_a_protocol_error_in_v4() {
    let mut server = TestServer::start(EngineConfig::default()).await;
    let (sid, _) = server.polling_handshake().await;
    server.post(&sid, b"2").await;
    assert_eq!(
        server.disconnect_reason(&sid).await,
        CloseReason::TransportError
    );

    let mut ws = connect_ws(&server, "EIO=4&transport=websocket").await;
    let open = next_text(&mut ws).await;
    let sid = open_sid(&open);
    ws.send(Message::text("2")).await.unwrap();
    assert_eq!(
        server.disconnect_reason(&sid).await,
        CloseReason::TransportError
    );
}

#[tokio::test]
async fn raw_upgrade_noop_then_switch_without_loss() {
    let mut server = TestServer::start(EngineConfig::default()).await;
    let (sid, _) = server.polling_handshake().await;
    let socket = server.engine.socket(&sid).unwrap();
    let addr = server.addr;
    let path = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    let pending = tokio::spawn(async move { http(addr, "GET", &path, &[], b"").await });
    tokio::time::sleep(Duration::from_millis(50)).await;

    let mut ws = connect_ws(&server, &format!("EIO=4&transport=websocket&sid={sid}")).await;
    ws.send(Message::text("2probe")).await.unwrap();
    assert_eq!(next_text(&mut ws).await, "3probe");
    // The pending GET is ended with a noop.
    assert_eq!(pending.await.unwrap().text(), "6");
    // Packets queued during the upgrade wait for the new transport.
    socket.send(Packet::Message(Str::from("during"))).unwrap();
    assert_eq!(socket.transport(), TransportType::Polling);
    ws.send(Message::text("5")).await.unwrap();
    assert_eq!(next_text(&mut ws).await, "4during");
    assert_eq!(socket.transport(), TransportType::Websocket);
    ws.send(Message::text("4after")).await.unwrap();
    assert_eq!(next_text(&mut ws).await, "4after");
    // Polling on an upgraded session is a transport mismatch.
    let res = server.poll(&sid).await;
    assert_eq!(res.status, 400);
    assert_eq!(
        res.json(),
        serde_json::json!({"code": 3, "message": "Bad request"})
    );
    server.drain_events();
    ws.send(Message::text("1")).await.unwrap();
    assert_eq!(
        server.disconnect_reason(&sid).await,
        CloseReason::TransportClose
    );
}

/// A session closed by the server during the upgrade, with a packet queued and no GET to take
/// it: the client that completes the upgrade gets the packet, then the close, over the new
/// WebSocket (which was dropped with both).
#[tokio::test]
async fn a_close_during_the_upgrade_reaches_the_client_over_the_websocket() {
    let mut server = TestServer::start(EngineConfig::default()).await;
    let (sid, _) = server.polling_handshake().await;
    let socket = server.engine.socket(&sid).unwrap();
    let mut ws = connect_ws(&server, &format!("EIO=4&transport=websocket&sid={sid}")).await;
    ws.send(Message::text("2probe")).await.unwrap();
    assert_eq!(next_text(&mut ws).await, "3probe");
    socket.send(Packet::Message(Str::from("bye"))).unwrap();
    socket.close();
    assert_eq!(
        server.disconnect_reason(&sid).await,
        CloseReason::ForcedClose
    );
    ws.send(Message::text("5")).await.unwrap();
    assert_eq!(next_text(&mut ws).await, "4bye");
    assert_ws_closed(&mut ws).await;
}

/// During an upgrade the client sends no GET and upgrades only once its POST is answered: a
/// POST whose answers fill the send queue is answered at once (answers past twice the caps
/// are refused), not held for a GET that never comes.
#[tokio::test]
async fn a_post_during_the_upgrade_is_not_held() {
    let server = TestServer::start(EngineConfig::builder().max_buffered_packets(4).build()).await;
    let (sid, _) = server.polling_handshake().await;
    let mut ws = connect_ws(&server, &format!("EIO=4&transport=websocket&sid={sid}")).await;
    ws.send(Message::text("2probe")).await.unwrap();
    assert_eq!(next_text(&mut ws).await, "3probe");
    let burst: Vec<String> = (0..20).map(|i| format!("4m{i}")).collect();
    let posted = tokio::time::timeout(
        Duration::from_secs(5),
        server.post(&sid, burst.join("\x1e").as_bytes()),
    )
    .await
    .expect("the POST is answered during the upgrade");
    assert_eq!(posted.text(), "ok");
    ws.send(Message::text("5")).await.unwrap();
    // The echoes that fitted (twice the cap of 4) come over the WebSocket, in order.
    for i in 0..8 {
        assert_eq!(next_text(&mut ws).await, format!("4m{i}"));
    }
}

#[tokio::test]
async fn upgrade_timeout_closes_the_new_transport_only() {
    let server = TestServer::start(
        EngineConfig::builder()
            .upgrade_timeout(Duration::from_millis(200))
            .build(),
    )
    .await;
    let (sid, _) = server.polling_handshake().await;
    let mut ws = connect_ws(&server, &format!("EIO=4&transport=websocket&sid={sid}")).await;
    ws.send(Message::text("2probe")).await.unwrap();
    assert_eq!(next_text(&mut ws).await, "3probe");
    // No `5`: the WebSocket is closed at the upgrade timeout...
    assert_ws_closed(&mut ws).await;
    // ...and polling goes on.
    let socket = server.engine.socket(&sid).expect("the session survives");
    assert_eq!(socket.transport(), TransportType::Polling);
    socket
        .send(Packet::Message(Str::from("still here")))
        .unwrap();
    let body = server.poll(&sid).await.text();
    assert!(body.ends_with("4still here"), "{body:?}");
    // A new upgrade may be tried afterwards.
    let mut ws = connect_ws(&server, &format!("EIO=4&transport=websocket&sid={sid}")).await;
    ws.send(Message::text("2probe")).await.unwrap();
    assert_eq!(next_text(&mut ws).await, "3probe");
}

#[tokio::test]
async fn other_packet_during_upgrade_closes_the_new_transport() {
    let server = TestServer::start(EngineConfig::default()).await;
    let (sid, _) = server.polling_handshake().await;
    let mut ws = connect_ws(&server, &format!("EIO=4&transport=websocket&sid={sid}")).await;
    ws.send(Message::text("4not a probe")).await.unwrap();
    assert_ws_closed(&mut ws).await;
    assert_eq!(
        server.engine.socket(&sid).unwrap().transport(),
        TransportType::Polling
    );
}

#[tokio::test]
async fn server_close_on_polling_sends_queued_packets_then_close() {
    let mut server = TestServer::start(EngineConfig::default()).await;
    let (sid, _) = server.polling_handshake().await;
    let socket = server.engine.socket(&sid).unwrap();
    socket
        .send(Packet::Message(Str::from("last words")))
        .unwrap();
    socket.close();
    assert_eq!(
        server.disconnect_reason(&sid).await,
        CloseReason::ForcedClose
    );
    // As Node: the queued packets on their own, the close with a noop in the next answer (in
    // one payload, socket.io-client would act on the close before it read the packets).
    assert_eq!(server.poll(&sid).await.text(), "4last words");
    assert_eq!(server.poll(&sid).await.text(), "6\x1e1");
    assert_eq!(server.poll(&sid).await.status, 400, "the session is gone");
    assert_eq!(socket.send(Packet::Noop), Err(SendError::Closed));
}

#[tokio::test]
async fn server_close_answers_a_pending_get_with_the_packets_then_the_close() {
    let mut server = TestServer::start(EngineConfig::default()).await;
    for queued in [true, false] {
        let (sid, _) = server.polling_handshake().await;
        let socket = server.engine.socket(&sid).unwrap();
        let addr = server.addr;
        let path = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
        let pending = tokio::spawn(async move { http(addr, "GET", &path, &[], b"").await });
        while !socket.is_writable() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if queued {
            // Queued and closed at once, as Socket.IO's `disconnect(true)` does.
            socket.send(Packet::Message(Str::from("bye"))).unwrap();
            socket.close();
            assert_eq!(pending.await.unwrap().text(), "4bye");
            assert_eq!(server.poll(&sid).await.text(), "6\x1e1");
        } else {
            // Nothing queued: the waiting GET takes the close alone.
            socket.close();
            assert_eq!(pending.await.unwrap().text(), "1");
        }
        assert_eq!(
            server.disconnect_reason(&sid).await,
            CloseReason::ForcedClose
        );
        assert_eq!(server.poll(&sid).await.status, 400, "the session is gone");
    }
}

/// A client's close and its GET race on a multi-thread runtime: the GET, sent first, may be
/// served after the close. Its answer is the same either way.
#[tokio::test]
async fn a_get_served_after_the_clients_close_gets_a_noop() {
    let mut server = TestServer::start(EngineConfig::default()).await;
    let (sid, _) = server.polling_handshake().await;
    assert_eq!(server.post(&sid, b"1").await.status, 200);
    assert_eq!(
        server.disconnect_reason(&sid).await,
        CloseReason::TransportClose
    );
    let res = server.poll(&sid).await;
    assert_eq!((res.status, res.text().as_str()), (200, "6"));
    assert_eq!(server.poll(&sid).await.status, 400, "the session is gone");
}

#[tokio::test]
async fn client_close_on_polling_answers_pending_get_with_noop() {
    let mut server = TestServer::start(EngineConfig::default()).await;
    let (sid, _) = server.polling_handshake().await;
    let addr = server.addr;
    let path = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    let pending = tokio::spawn(async move { http(addr, "GET", &path, &[], b"").await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(server.post(&sid, b"1").await.status, 200);
    assert_eq!(pending.await.unwrap().text(), "6");
    assert_eq!(
        server.disconnect_reason(&sid).await,
        CloseReason::TransportClose
    );
    assert_eq!(server.engine.clients_count(), 0);
}

#[tokio::test]
async fn engine_close_disconnects_everyone() {
    let mut server = TestServer::start(EngineConfig::default()).await;
    let (a, _) = server.polling_handshake().await;
    let mut ws = connect_ws(&server, "EIO=4&transport=websocket").await;
    let _open = next_text(&mut ws).await;
    tokio::time::timeout(Duration::from_secs(5), server.engine.close())
        .await
        .expect("close resolves");
    assert_eq!(server.disconnect_reason(&a).await, CloseReason::ForcedClose);
    assert_ws_closed(&mut ws).await;
}

#[tokio::test]
async fn options_are_honoured() {
    // path, transports, allow_upgrades, cookie, headers hooks, session id generator.
    let config = EngineConfig::builder()
        .path("/rt")
        .allow_upgrades(false)
        .cookie(Cookie::default())
        .initial_headers(|headers, _| {
            headers.insert("x-initial", "yes".parse().unwrap());
        })
        .headers(|headers, parts| {
            let agent = parts.headers.get("user-agent").cloned();
            headers.insert("x-every", agent.unwrap_or_else(|| "none".parse().unwrap()));
        })
        .session_id_generator(|parts| Ok(Sid::from(format!("custom-{}", parts.uri.path().len()))))
        .build();
    let server = TestServer::start(config).await;
    let res = http(
        server.addr,
        "GET",
        "/rt/?EIO=4&transport=polling",
        &[("user-agent", "ua1")],
        b"",
    )
    .await;
    assert_eq!(res.status, 200, "{res:?}");
    assert!(
        res.text()
            .starts_with(r#"0{"sid":"custom-4","upgrades":[],"#),
        "{}",
        res.text()
    );
    assert_eq!(
        res.header("set-cookie"),
        Some("io=custom-4; Path=/; HttpOnly; SameSite=Lax")
    );
    assert_eq!(res.header("x-initial"), Some("yes"));
    assert_eq!(res.header("x-every"), Some("ua1"));
    // Later responses run `headers` but not `initial_headers`, and set no cookie.
    let res = http(
        server.addr,
        "POST",
        "/rt/?EIO=4&transport=polling&sid=custom-4",
        &[("user-agent", "ua2")],
        b"4x",
    )
    .await;
    assert_eq!(res.header("x-every"), Some("ua2"));
    assert_eq!(res.header("x-initial"), None);
    assert_eq!(res.header("set-cookie"), None);
    // The echo of `4x` is waiting: this GET is answered at once.
    let path = "/rt/?EIO=4&transport=polling&sid=custom-4";
    let res = http(server.addr, "GET", path, &[("user-agent", "ua3")], b"").await;
    assert_eq!(
        (res.text(), res.header("x-every")),
        ("4x".into(), Some("ua3"))
    );
    // A GET that waited: `headers` still sees its whole head.
    let addr = server.addr;
    let held =
        tokio::spawn(async move { http(addr, "GET", path, &[("user-agent", "ua4")], b"").await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!held.is_finished(), "the GET waits for packets");
    let socket = server.engine.socket("custom-4").unwrap();
    socket.send(Packet::Message(Str::from("y"))).unwrap();
    let res = held.await.unwrap();
    assert_eq!(
        (res.text(), res.header("x-every")),
        ("4y".into(), Some("ua4"))
    );
    // A generated id already in use is refused.
    let res = http(server.addr, "GET", "/rt/?EIO=4&transport=polling", &[], b"").await;
    assert_eq!(res.status, 400);
    assert_eq!(
        res.json(),
        serde_json::json!({"code": 3, "message": "Bad request"})
    );
    // The default path is not served any more; the inner router answers it.
    let res = http(
        server.addr,
        "GET",
        "/socket.io/?EIO=4&transport=polling",
        &[],
        b"",
    )
    .await;
    assert_eq!(res.status, 404);

    let server = TestServer::start(
        EngineConfig::builder()
            .transports([TransportType::Websocket])
            .build(),
    )
    .await;
    let res = http(
        server.addr,
        "GET",
        "/socket.io/?EIO=4&transport=polling",
        &[],
        b"",
    )
    .await;
    assert_eq!(
        res.json(),
        serde_json::json!({"code": 0, "message": "Transport unknown"})
    );
}

#[tokio::test]
async fn allow_request_refuses_with_403_and_message() {
    let config = EngineConfig::builder()
        .allow_request(|parts| {
            let ok = parts.headers.contains_key("x-token");
            async move {
                if ok {
                    Ok(())
                } else {
                    Err("no token".to_owned())
                }
            }
        })
        .build();
    let server = TestServer::start(config).await;
    let res = http(
        server.addr,
        "GET",
        "/socket.io/?EIO=4&transport=polling",
        &[],
        b"",
    )
    .await;
    assert_eq!(res.status, 403);
    assert_eq!(res.header("content-type"), Some("application/json"));
    assert_eq!(
        res.json(),
        serde_json::json!({"code": 4, "message": "no token"})
    );
    let res = http(
        server.addr,
        "GET",
        "/socket.io/?EIO=4&transport=polling",
        &[("x-token", "1")],
        b"",
    )
    .await;
    assert_eq!(res.status, 200);
}

#[tokio::test]
async fn max_sessions_answers_503() {
    let server = TestServer::start(EngineConfig::builder().max_sessions(2).build()).await;
    server.polling_handshake().await;
    server.polling_handshake().await;
    let res = http(
        server.addr,
        "GET",
        "/socket.io/?EIO=4&transport=polling",
        &[],
        b"",
    )
    .await;
    assert_eq!(res.status, 503);
    assert_eq!(server.engine.clients_count(), 2);
}

#[tokio::test]
async fn other_paths_reach_the_inner_router() {
    let server = TestServer::start(EngineConfig::default()).await;
    let res = http(server.addr, "GET", "/", &[], b"").await;
    assert_eq!(res.status, 200);
    assert_eq!(res.text(), "inner router");
    // Without the trailing slash the path is not the engine's (Node's `addTrailingSlash`).
    let res = http(
        server.addr,
        "GET",
        "/socket.io?EIO=4&transport=polling",
        &[],
        b"",
    )
    .await;
    assert_eq!(res.status, 404);
}

#[tokio::test]
async fn ie_user_agents_get_x_xss_protection() {
    let server = TestServer::start(EngineConfig::default()).await;
    let res = http(
        server.addr,
        "GET",
        "/socket.io/?EIO=4&transport=polling",
        &[(
            "user-agent",
            "Mozilla/5.0 (Windows NT 10.0; Trident/7.0; rv:11.0)",
        )],
        b"",
    )
    .await;
    assert_eq!(res.header("x-xss-protection"), Some("0"));
}

/// A GET that waited for its packets is answered as its head asked: the header for Internet
/// Explorer, compressed as its `Accept-Encoding` allows (a waiting GET keeps only what its
/// answer reads of its head).
#[tokio::test]
async fn a_held_get_is_answered_as_its_head_asked() {
    let server = TestServer::start(EngineConfig::default()).await;
    let (sid, _) = server.polling_handshake().await;
    let path = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    let addr = server.addr;
    let held = tokio::spawn(async move {
        let headers = [
            (
                "user-agent",
                "Mozilla/4.0 (compatible;MSIE 7.0; Windows NT 6.0)",
            ),
            ("accept-encoding", "deflate"),
        ];
        http(addr, "GET", &path, &headers, b"").await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!held.is_finished(), "the GET waits for packets");
    let big = "a".repeat(2000);
    let socket = server.engine.socket(&sid).unwrap();
    socket
        .send(Packet::Message(Str::from(big.clone())))
        .unwrap();
    let res = held.await.unwrap();
    assert_eq!(res.header("x-xss-protection"), Some("0"));
    assert_eq!(res.header("content-encoding"), Some("deflate"));
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::ZlibDecoder::new(&res.body[..]),
        &mut text,
    )
    .unwrap();
    assert_eq!(text, format!("4{big}"));
}

#[tokio::test]
async fn a_full_queue_never_starves_the_heartbeat() {
    let server = TestServer::start(
        EngineConfig::builder()
            .ping_interval(Duration::from_millis(200))
            .ping_timeout(Duration::from_secs(5))
            .max_buffered_packets(3)
            .build(),
    )
    .await;
    let (sid, _) = server.polling_handshake().await;
    let socket = server.engine.socket(&sid).unwrap();
    for _ in 0..3 {
        socket.send(Packet::Message(Str::from("data"))).unwrap();
    }
    assert_eq!(
        socket.send(Packet::Message(Str::from("data"))),
        Err(SendError::Full)
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The ping was queued past the cap, and goes first.
    assert_eq!(
        server.poll(&sid).await.text(),
        "2\x1e4data\x1e4data\x1e4data"
    );
}

#[tokio::test]
async fn upgrades_can_be_disabled() {
    let server = TestServer::start(EngineConfig::builder().allow_upgrades(false).build()).await;
    let (sid, open) = server.polling_handshake().await;
    assert_eq!(open["upgrades"], serde_json::json!([]));
    let res = belfry_tests::raw(
        server.addr,
        belfry_tests::upgrade_request(server.addr, &format!("EIO=4&transport=websocket&sid={sid}"))
            .as_bytes(),
    )
    .await;
    assert_eq!(res.status, 400);
    assert_eq!(res.text(), "Bad request");
}

/// With writes stopped part way (a client that does not read, behind a small receive buffer)
/// while pings come in, every data frame and every pong still arrives whole and in order. Pongs
/// for pings that came while frames waited are folded into one for the latest (RFC 6455
/// §5.5.3), so a client that pings without reading grows nothing on the server.
#[tokio::test]
async fn pongs_never_split_data_frames_of_a_slow_reader() {
    let server = TestServer::start(
        EngineConfig::builder()
            .max_buffered_bytes(64 << 20)
            .max_buffered_packets(100_000)
            .build(),
    )
    .await;
    let mut ws = open_slow_reader(&server).await;
    let message = |i: u8| format!("4{}", char::from(b'a' + i % 26)).repeat(32 * 1024);
    let mut burst = Vec::new();
    for i in 0..100u8 {
        burst.extend(encode_frame(0x81, message(i).as_bytes(), true));
    }
    ws.write(&burst).await;
    // The echoes fill the connection; the pings come while the server is part way through.
    for i in 0..100u8 {
        tokio::time::sleep(Duration::from_millis(1)).await;
        ws.frame(0x89, &[i]).await;
    }
    let (mut texts, mut last_pong) = (0u8, None);
    while texts < 100 || last_pong != Some(99) {
        match ws.read_frame().await {
            Some((1, payload)) => {
                // The echo: "4" and the text after the client's own "4".
                let expected = format!("4{}", &message(texts)[1..]);
                assert!(
                    payload == expected.as_bytes(),
                    "echo {texts} arrived altered"
                );
                texts += 1;
            }
            Some((0xa, payload)) => {
                let [ping] = payload[..] else {
                    panic!("pong of {} bytes", payload.len());
                };
                assert!(last_pong.is_none_or(|last| ping > last), "pongs in order");
                last_pong = Some(ping);
            }
            other => {
                panic!("unexpected frame after {texts} echoes, last pong {last_pong:?}: {other:?}")
            }
        }
    }
}

/// A v3 session's polling payloads carry binary as binary unless the handshake's query asked for
/// base64, read as Node reads it (`!req._query.b64`): the last `b64` decides, an empty one asks
/// for nothing, and the key is percent-decoded. The expectations are what Node's engine.io 6.6
/// (with `allowEIO3`) answers to the same queries, a message of bytes 1, 2, 3 sent to the client.
#[tokio::test]
async fn a_v3_client_asks_for_base64_as_node_reads_the_query() {
    let server = TestServer::start(EngineConfig::builder().allow_eio3(true).build()).await;
    for (query, base64) in [
        ("", false),
        ("&b64=1", true),
        ("&b64=", false),
        ("&b64", false),
        ("&b64=1&b64=", false),
        ("&b64=&b64=1", true),
        ("&%62%36%34=1", true),
        ("&b64=0", true),
    ] {
        let path = format!("/socket.io/?EIO=3&transport=polling{query}");
        let open = http(server.addr, "GET", &path, &[], b"").await;
        assert_eq!(open.status, 200, "{query}: {open:?}");
        let text = open.text();
        let json = &text[text.find('{').unwrap()..=text.rfind('}').unwrap()];
        let sid: serde_json::Value = serde_json::from_str(json).unwrap();
        let sid = sid["sid"].as_str().unwrap().to_owned();
        // The client sends bytes 1, 2, 3 as a base64 message; the server echoes them.
        let path = format!("/socket.io/?EIO=3&transport=polling&sid={sid}{query}");
        let posted = http(server.addr, "POST", &path, &[], b"6:b4AQID").await;
        assert_eq!(posted.status, 200, "{query}: {posted:?}");
        let echoed = http(server.addr, "GET", &path, &[], b"").await;
        let framing = (echoed.header("content-type"), echoed.body.as_slice());
        if base64 {
            assert_eq!(
                framing,
                (Some("text/plain; charset=UTF-8"), &b"6:b4AQID"[..]),
                "{query}"
            );
        } else {
            assert_eq!(
                framing,
                (
                    Some("application/octet-stream"),
                    &[1, 4, 255, 4, 1, 2, 3][..]
                ),
                "{query}"
            );
        }
    }
}
