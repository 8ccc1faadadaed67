//! The chat example with the Rust client (`belfry-client`): two people join #rust and chat,
//! the delivery tick comes back as the ack, a nickname the chat refuses is a connect error.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use belfry_client::{ClientBuilder, ConnectError, Event};
use serde_json::{Value, json};
use tokio::sync::mpsc;

async fn chat_server() -> (String, tokio::process::Child) {
    let port = belfry_tests::processes::free_port();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_chat"))
        .env("PORT", port.to_string())
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return (url, child);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the chat did not start");
}

#[tokio::test]
async fn two_rust_clients_chat() {
    let (url, _chat) = chat_server().await;
    let (tx, mut messages) = mpsc::unbounded_channel();
    let bob = ClientBuilder::new(&url)
        .auth(&json!({ "nick": "bob" }))
        .unwrap()
        .on("message", move |event: Event| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(event.data::<Value>().unwrap_or_default());
            }
        })
        .connect()
        .await
        .unwrap();
    let alice = ClientBuilder::new(&url)
        .auth(&json!({ "nick": "alice" }))
        .unwrap()
        .connect()
        .await
        .unwrap();
    for socket in [&bob, &alice] {
        let joined: Value = socket.emit_with_ack("join", "rust").await.unwrap();
        assert_eq!(joined["room"], "rust");
    }
    let tick: Value = alice
        .emit_with_ack("message", &json!({ "room": "rust", "text": "hello bob" }))
        .await
        .unwrap();
    assert!(tick["id"].is_u64(), "{tick}");
    let message = tokio::time::timeout(Duration::from_secs(5), messages.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(message["from"], "alice");
    assert_eq!(message["text"], "hello bob");
    assert_eq!(message["room"], "rust");

    let refused = ClientBuilder::new(&url)
        .auth(&json!({ "nick": "" }))
        .unwrap()
        .reconnection(false)
        .connect()
        .await;
    assert!(
        matches!(&refused, Err(ConnectError::Refused { message, .. }) if message.contains("nickname")),
        "{refused:?}"
    );
}
