//! A Rust client of the chat example: it joins a room, says hello, and prints what the room
//! says until Ctrl-C.
//!
//! ```text
//! cargo run -p chat                                  # the chat, on http://127.0.0.1:3000
//! cargo run -p chat-client                           # as "rustbot", in #rust
//! URL=http://127.0.0.1:3000 NICK=ferris ROOM=general cargo run -p chat-client
//! ```

use belfry_client::{ClientBuilder, Event};
use serde::Deserialize;

/// A message of the room, as the chat sends it.
#[derive(Debug, Deserialize)]
struct Message {
    from: String,
    text: String,
}

#[expect(clippy::print_stdout, reason = "the example prints the room")]
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let var =
        |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
    let (url, nick, room) = (
        var("URL", "http://127.0.0.1:3000"),
        var("NICK", "rustbot"),
        var("ROOM", "rust"),
    );

    let socket = ClientBuilder::new(url)
        .auth(&serde_json::json!({ "nick": nick }))?
        .on("message", |event: Event| async move {
            if let Ok(message) = event.data::<Message>() {
                println!("{}: {}", message.from, message.text);
            }
        })
        .connect()
        .await?;
    let joined: serde_json::Value = socket.emit_with_ack("join", &room).await?;
    println!(
        "joined #{room} ({} earlier messages)",
        joined["history"].as_array().map_or(0, Vec::len)
    );
    let tick: serde_json::Value = socket
        .emit_with_ack(
            "message",
            &serde_json::json!({ "room": room, "text": "hello from Rust" }),
        )
        .await?;
    println!("delivered: message {}", tick["id"]);

    tokio::signal::ctrl_c().await?;
    socket.disconnect().await;
    Ok(())
}
