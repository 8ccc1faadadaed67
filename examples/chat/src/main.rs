//! Belfry's main example: a chat page and its Socket.IO server on one axum `Router`.
//!
//! ```text
//! cargo run -p chat                          # http://127.0.0.1:3000 (PORT and HOST to change)
//! RUST_LOG=belfry=debug cargo run -p chat    # every engine session and socket, as spans
//! ```
//!
//! Open the address in two tabs: pick nicknames, join a room, chat. The page shows a delivery
//! tick when the server acknowledges a message, "is typing" from volatile emits, the members of
//! the room, a banner while the connection is down, and images sent as binary attachments.
//!
//! The page loads the official browser client from `/socket.io/socket.io.min.js`, which Belfry
//! serves ([`SocketIoBuilder::serve_client`](belfry::SocketIoBuilder::serve_client)) from the
//! `socket.io-client` npm package in this folder; the first run installs it with `npm ci`.
mod chat;

#[path = "../../npm.rs"]
mod npm;

use std::path::{Path, PathBuf};

use axum::{Router, response::Html, routing::get};
use belfry::SocketIo;
use tracing_subscriber::EnvFilter;

const PAGE: &str = include_str!("../static/index.html");
const SCRIPT: &str = include_str!("../static/chat.js");
const STYLE: &str = include_str!("../static/chat.css");

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| "chat=info,belfry=info".into()),
        )
        .init();

    let (layer, io) = SocketIo::builder()
        .with_state(chat::Chat::default())
        .serve_client(client_bundle()?)?
        .build_layer();
    chat::register(&io);

    let app = Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route(
            "/chat.js",
            get(|| async { ([("content-type", "text/javascript")], SCRIPT) }),
        )
        .route(
            "/chat.css",
            get(|| async { ([("content-type", "text/css")], STYLE) }),
        )
        .layer(layer);

    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".to_owned());
    let port = std::env::var("PORT").unwrap_or_else(|_| "3000".to_owned());
    let listener = tokio::net::TcpListener::bind(format!("{host}:{port}")).await?;
    announce(&format!("chat on http://{}", listener.local_addr()?));
    // Closes idle keep-alive and slow connections as Node does (`axum::serve` keeps them).
    belfry::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = tokio::signal::ctrl_c().await;
            io.close().await;
        })
        .await
}

/// The `dist` folder of the `socket.io-client` npm package, installed beside this example the
/// first time (`npm ci` with the committed lockfile).
fn client_bundle() -> std::io::Result<PathBuf> {
    npm::socket_io_client_bundle(Path::new(env!("CARGO_MANIFEST_DIR")), announce)
}

/// One line for the person who started the example, whatever `RUST_LOG` says.
#[expect(clippy::print_stdout, reason = "the example talks to its user")]
fn announce(line: &str) {
    println!("{line}");
}
