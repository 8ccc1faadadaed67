//! An Engine.IO echo server mounted in an axum `Router` next to a plain route.
//!
//! ```text
//! cargo run -p engine-echo            # listens on 127.0.0.1:3000 (PORT to change)
//! RUST_LOG=belfry_engine=debug cargo run -p engine-echo
//! ```
//!
//! Any Engine.IO v4 client (`engine.io-client` from npm) connected to it gets every message back.
use std::sync::Arc;

use axum::{Router, routing::get};
use belfry_engine::{CloseReason, Engine, EngineConfig, EngineHandler, Packet, Socket, Str};
use bytes::Bytes;
use tracing_subscriber::EnvFilter;

/// Sends every message back to its sender.
struct Echo;

impl EngineHandler for Echo {
    type Data = ();

    fn on_connect(&self, socket: Arc<Socket<()>>) {
        tracing::info!(sid = %socket.id(), transport = %socket.transport(), "connected");
    }

    fn on_disconnect(&self, socket: Arc<Socket<()>>, reason: CloseReason) {
        tracing::info!(sid = %socket.id(), %reason, "disconnected");
    }

    fn on_message(&self, socket: &Arc<Socket<()>>, text: Str) {
        let _ = socket.send(Packet::Message(text));
    }

    fn on_binary(&self, socket: &Arc<Socket<()>>, data: Bytes) {
        let _ = socket.send(Packet::Binary(data));
    }
}

const PAGE: &str =
    "Belfry engine echo: connect an Engine.IO v4 client to this address, path /socket.io/.\n";

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();

    let engine = Engine::new(Echo, EngineConfig::default());
    let app = Router::new()
        .route("/", get(|| async { PAGE }))
        .layer(engine.layer());

    let port = std::env::var("PORT").unwrap_or_else(|_| "3000".to_owned());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    tracing::info!("listening on http://{}", listener.local_addr()?);
    let shutdown = engine.clone();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = tokio::signal::ctrl_c().await;
            shutdown.close().await;
        })
        .await
}
