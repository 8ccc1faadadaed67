//! Runs the sessions example.
//!
//! ```text
//! cargo run -p axum-sessions          # 127.0.0.1:3001 (PORT to change)
//! ALLOWED_ORIGINS=http://localhost:5173,http://127.0.0.1:8080 cargo run -p axum-sessions
//! ```
//!
//! Try it with curl and the official client (`npm i socket.io-client`):
//!
//! ```text
//! curl -i -H 'content-type: application/json' -d '{"name":"ada"}' localhost:3001/login
//! # note the `set-cookie: id=...` it answers, then:
//! node -e 'const s = require("socket.io-client").io("http://localhost:3001",
//!   { extraHeaders: { cookie: process.argv[1] } });
//!   s.emit("visit", (answer) => { console.log(answer); process.exit(); })' 'id=<the cookie>'
//! curl -H 'cookie: id=<the cookie>' localhost:3001/me     # {"user":"ada","visits":1}
//! ```
use axum::http::HeaderValue;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "axum_sessions=info,belfry=info".into()),
        )
        .init();

    let origins = std::env::var("ALLOWED_ORIGINS")
        .unwrap_or_else(|_| "http://localhost:5173".to_owned())
        .split(',')
        .filter_map(|origin| HeaderValue::from_str(origin.trim()).ok())
        .collect();
    let (app, io) = axum_sessions::app(origins);

    let port = std::env::var("PORT").unwrap_or_else(|_| "3001".to_owned());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    tracing::info!("listening on http://{}", listener.local_addr()?);
    // Closes idle keep-alive and slow connections as Node does (`axum::serve` keeps them).
    belfry::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = tokio::signal::ctrl_c().await;
            io.close().await;
        })
        .await
}
