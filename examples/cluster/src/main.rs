//! A Belfry node for a cluster behind nginx. Run two, plus Redis and nginx:
//!
//! ```sh
//! # On loopback only, and without persistence (no dump.rdb written where it runs).
//! redis-server --port 6379 --bind 127.0.0.1 --save '' --appendonly no &
//! NODE_NAME=a PORT=3101 cargo run -p cluster &
//! NODE_NAME=b PORT=3102 cargo run -p cluster &
//! mkdir -p /tmp/belfry-nginx
//! nginx -p /tmp/belfry-nginx -c "$PWD/examples/cluster/nginx.conf" -g 'daemon off;'
//! ```
//!
//! then open `http://127.0.0.1:3100` (nginx; ports apart from the chat and Admin UI examples')
//! in a few tabs and browsers: each page says which node served it and which node its socket is
//! on, and a message sent from any of them reaches them all, across the nodes. Other Socket.IO
//! clients connect to the same address.
//!
//! With `ADAPTER=streams`, the nodes share the same Redis through the streams protocol (Node's
//! `@socket.io/redis-streams-adapter`), with connection state recovery on:
//!
//! ```sh
//! ADAPTER=streams NODE_NAME=a PORT=3101 cargo run -p cluster &
//! ADAPTER=streams NODE_NAME=b PORT=3102 cargo run -p cluster &
//! ```
//!
//! A page whose connection drops for less than 2 minutes (its network gone for a while) comes
//! back as the same socket and first gets the messages sent meanwhile: it says "back on node …:
//! same socket, nothing missed". Which node it comes back through does not matter, the sessions
//! and the messages being in Redis: the example's test has a client leave one node and come
//! back through the other (`tests/recovery.mjs`).
//!
//! The nodes can share a PostgreSQL database instead of Redis (`belfry-postgres`, Node's
//! `@socket.io/postgres-adapter`): any PostgreSQL they reach over a plain connection (Docker's
//! `postgres` image, for one), with the attachments table created once:
//!
//! ```sh
//! docker run --rm -d --name belfry-pg -p 127.0.0.1:5432:5432 -e POSTGRES_PASSWORD=belfry postgres
//! export DATABASE_URL=postgres://postgres:belfry@127.0.0.1:5432/postgres
//! psql "$DATABASE_URL" -c 'CREATE TABLE IF NOT EXISTS socket_io_attachments (
//!     id bigserial UNIQUE, created_at timestamptz DEFAULT NOW(), payload bytea)'
//! ADAPTER=postgres NODE_NAME=a PORT=3101 cargo run -p cluster &
//! ADAPTER=postgres NODE_NAME=b PORT=3102 cargo run -p cluster &
//! ```
//!
//! and nginx as above. Environment: `NODE_NAME` (default `a`), `PORT` (default 3101), `ADAPTER`
//! (`redis`, the default, `streams` or `postgres`), `REDIS_URL` (default
//! `redis://127.0.0.1:6379`), `DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`).
//!
//! The page loads the official browser client, which the node serves from the
//! `socket.io-client` npm package in this folder; the first run installs it with `npm ci`.

#[path = "../../npm.rs"]
mod npm;

use std::{
    error::Error,
    path::{Path, PathBuf},
};

#[expect(
    clippy::print_stdout,
    reason = "the example talks to its user, and the test reads it"
)]
#[tokio::main]
async fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let name = std::env::var("NODE_NAME").unwrap_or_else(|_| "a".to_owned());
    let port: u16 = std::env::var("PORT").map_or(Ok(3101), |port| port.parse())?;
    let backend = cluster::Backend::from_env()?;
    let (app, io) = cluster::app(&name, &backend, &client_bundle()?).await?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    // The first line: the test waits for it.
    println!("node {name} on http://{}", listener.local_addr()?);
    // Closes idle keep-alive and slow connections as Node does (`axum::serve` keeps them).
    belfry::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = tokio::signal::ctrl_c().await;
            io.close().await;
        })
        .await?;
    Ok(())
}

/// The `dist` folder of the `socket.io-client` npm package, installed beside this example the
/// first time (`npm ci` with the committed lockfile).
fn client_bundle() -> std::io::Result<PathBuf> {
    npm::socket_io_client_bundle(Path::new(env!("CARGO_MANIFEST_DIR")), announce)
}

/// A line for the person who started the example, on stderr: the first line on stdout is the
/// address, which the test waits for.
#[expect(clippy::print_stderr, reason = "the example talks to its user")]
fn announce(line: &str) {
    eprintln!("{line}");
}
