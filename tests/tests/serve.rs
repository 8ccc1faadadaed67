//! `belfry::serve`: connections left idle by vanished polling clients and connections whose
//! request head never ends (slowloris) are closed after the keep-alive timeout, as Node's HTTP
//! server closes them; held long-poll requests and WebSockets are not.
#![allow(clippy::unwrap_used)]

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use belfry::{SocketIo, SocketRef};
use belfry_tests::{RawWs, read_response};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

const TIMEOUT: Duration = Duration::from_millis(300);

/// A Socket.IO server served by `belfry::serve` with a 300 ms keep-alive timeout; its address
/// and the sender that stops it.
async fn start(
    ping_interval: Duration,
) -> (SocketAddr, tokio::sync::oneshot::Sender<()>, SocketIo) {
    let (layer, io) = SocketIo::builder()
        .ping_interval(ping_interval)
        .build_layer();
    io.ns("/", |socket: SocketRef| async move {
        let _ = socket.emit("address", &socket.handshake().address);
    });
    let app = axum::Router::new().layer(layer);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let closing = io.clone();
    tokio::spawn(async move {
        belfry::serve(listener, app)
            .keep_alive_timeout(TIMEOUT)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
                closing.close().await;
            })
            .await
            .unwrap();
    });
    (addr, stop, io)
}

/// Waits until the server closes `stream` (a read returns 0 or fails); how long that took.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Duration {
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(limit, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return start.elapsed(),
            Ok(Ok(_)) => {}
            Err(_) => panic!("still open after {limit:?}"),
        }
    }
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nhost: localhost\r\n\r\n")
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let (addr, _stop, _io) = start(Duration::from_secs(25)).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(get("/socket.io/?EIO=4&transport=polling").as_bytes())
        .await
        .unwrap();
    let res = read_response(&mut stream).await;
    assert_eq!(res.status, 200);
    // The client vanished: nothing more comes on the connection.
    let took = closed_within(&mut stream, Duration::from_secs(5)).await;
    assert!(took >= TIMEOUT - Duration::from_millis(50), "{took:?}");
}

#[tokio::test]
async fn slowloris_connections_are_closed() {
    let (addr, _stop, _io) = start(Duration::from_secs(25)).await;
    let mut streams = Vec::new();
    for _ in 0..300 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /socket.io/?EIO=4&trans")
            .await
            .unwrap();
        streams.push(stream);
    }
    // One byte at a time, never finishing the head.
    let dribble = tokio::spawn(async move {
        for _ in 0..20 {
            for stream in &mut streams {
                let _ = stream.write_all(b"p").await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        streams
    });
    let mut streams = dribble.await.unwrap();
    for stream in &mut streams {
        closed_within(stream, Duration::from_secs(5)).await;
    }
}

#[tokio::test]
async fn a_long_poll_held_past_the_timeout_is_answered() {
    // The GET is held for a whole ping interval, longer than the keep-alive timeout.
    let (addr, _stop, _io) = start(Duration::from_millis(1000)).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(get("/socket.io/?EIO=4&transport=polling").as_bytes())
        .await
        .unwrap();
    let open = read_response(&mut stream).await;
    let sid = serde_json::from_str::<serde_json::Value>(&open.text()[1..]).unwrap()["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    let started = Instant::now();
    stream.write_all(get(&path).as_bytes()).await.unwrap();
    let ping = read_response(&mut stream).await;
    assert_eq!((ping.status, ping.text().as_str()), (200, "2"));
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[tokio::test]
async fn websockets_outlive_the_timeout_and_the_address_is_known() {
    let (addr, stop, io) = start(Duration::from_millis(200)).await;
    let (mut ws, _sid) = RawWs::open(addr).await;
    ws.frame(0x81, b"40").await;
    let mut seen = Vec::new();
    // Past the keep-alive timeout, answering pings: the connection stays.
    let until = Instant::now() + TIMEOUT * 3;
    while Instant::now() < until {
        let (_, frame) = ws.read_frame().await.expect("open");
        if frame == b"2" {
            ws.frame(0x81, b"3").await;
        }
        seen.push(String::from_utf8(frame).unwrap());
    }
    assert!(
        seen.iter().any(|f| f == r#"42["address","127.0.0.1"]"#),
        "{seen:?}"
    );
    assert_eq!(io.clients_count(), 1);
    // Graceful shutdown closes the session: the client is told.
    stop.send(()).unwrap();
    loop {
        match ws.read_frame().await {
            Some((8, _)) | None => break,
            Some(_) => {}
        }
    }
}

/// Any tower service can be served, those that must be polled ready first included
/// (`ConcurrencyLimit` panics when called unready).
#[tokio::test]
async fn services_are_polled_ready_before_they_are_called() {
    let (layer, _io) = SocketIo::new_layer();
    let app = tower::ServiceBuilder::new()
        .concurrency_limit(2)
        .service(axum::Router::new().layer(layer));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { belfry::serve(listener, app).await });
    for _ in 0..5 {
        let res =
            belfry_tests::http(addr, "GET", "/socket.io/?EIO=4&transport=polling", &[], b"").await;
        assert_eq!(res.status, 200);
    }
}
