//! Tracing: one `engine{sid}` span per engine session and one `socket{ns, id}` span inside it per
//! socket, so `RUST_LOG=belfry=debug` reads as one story per connection.
#![allow(clippy::unwrap_used)]

use std::{io::Write, sync::Arc};

use belfry::{SocketIo, SocketRef};
use belfry_tests::{RawWs, serve};
use parking_lot::Mutex;

/// Collects what the fmt subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn socket_spans_nest_in_their_engine_session_span() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("belfry=debug")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let (layer, io) = SocketIo::new_layer();
    io.ns("/", |socket: SocketRef| async move {
        socket.on("hello", |socket: SocketRef| async move {
            socket.join("lobby");
            let _ = socket.emit("done", &());
        });
    });
    let addr = serve(axum::Router::new().layer(layer)).await;
    let (mut ws, sid) = RawWs::open(addr).await;
    ws.frame(0x81, b"40").await;
    let (_, connect) = ws.read_frame().await.unwrap();
    let connect = String::from_utf8(connect).unwrap();
    let id = connect
        .strip_prefix("40{\"sid\":\"")
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    ws.frame(0x81, br#"42["hello"]"#).await;
    let (_, done) = ws.read_frame().await.unwrap();
    assert_eq!(done, br#"42["done"]"#);
    ws.frame(0x81, b"41").await;
    ws.frame(0x81, b"1").await;
    // The close is logged once the server read it.
    for _ in 0..100 {
        if String::from_utf8_lossy(&captured.0.lock()).contains("session closed") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    let log = String::from_utf8(captured.0.lock().clone()).unwrap();
    let engine = format!("engine{{sid={sid} transport=\"websocket\"}}");
    let socket = format!("{engine}:socket{{ns=/ id={id}}}");
    for (scope, message) in [
        (&engine, "session opened"),
        (&socket, "socket connected"),
        (&socket, "event event=hello ack=false"),
        (&socket, "joined rooms rooms=[\"lobby\"]"),
        (
            &socket,
            "socket disconnected reason=client namespace disconnect",
        ),
        (&engine, "session closed reason=transport close"),
    ] {
        assert!(
            log.lines()
                .any(|line| line.contains(&format!("{scope}: ")) && line.ends_with(message)),
            "no `{message}` in {scope}:\n{log}"
        );
    }
}
