//! A Belfry server instrumented for the Socket.IO Admin UI (`@socket.io/admin-ui`), which it
//! serves itself at `/admin-ui/`.
//!
//! ```text
//! cargo run -p admin-ui        # http://127.0.0.1:3001/admin-ui/ (PORT and HOST to change)
//! ```
//!
//! Open the address, enter the server URL shown (`http://127.0.0.1:3001`), the username
//! `admin` and the password `changeit` (`ADMIN_USER` and `ADMIN_PASSWORD` to change), then
//! connect a few clients: each joins the room named in its auth (`{ room: "vip" }`), `lobby`
//! by default, and `say` broadcasts to its rooms. The UI lists the sockets, their rooms and
//! events, and can make sockets join, leave, receive an event or disconnect.
//!
//! The UI's files come from the `@socket.io/admin-ui` npm package, installed beside this example
//! by the first run (`npm ci`, with the committed lockfile; Node.js's npm must be installed); they
//! are not committed.

#[path = "../../npm.rs"]
mod npm;

use std::path::{Path, PathBuf};

use axum::{Router, response::Html, routing::get};
use belfry::{
    SocketIo, SocketRef,
    admin::{AdminAuth, AdminOptions},
    extract::Data,
};
use serde_json::Value;
use tower_http::services::ServeDir;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "belfry=info".into()))
        .init();

    let (layer, io) = SocketIo::new_layer();
    io.ns(
        "/",
        |socket: SocketRef, Data(auth): Data<Value>| async move {
            let room = auth["room"].as_str().unwrap_or("lobby").to_owned();
            socket.join(room);
            socket.on(
                "say",
                |socket: SocketRef, Data(text): Data<String>| async move {
                    for room in socket.rooms() {
                        let _ = socket.to(room).emit("said", &text);
                    }
                },
            );
        },
    );

    // Node's `instrument(io, { auth: { type: "basic", username, password: <bcrypt hash> } })`.
    let user = std::env::var("ADMIN_USER").unwrap_or_else(|_| "admin".to_owned());
    let password = std::env::var("ADMIN_PASSWORD").unwrap_or_else(|_| "changeit".to_owned());
    let hash = bcrypt::hash(password, bcrypt::DEFAULT_COST).map_err(std::io::Error::other)?;
    belfry::admin::instrument(&io, AdminOptions::new(AdminAuth::basic(user, hash)))
        .map_err(std::io::Error::other)?;

    let app = Router::new()
        .route(
            "/",
            get(|| async { Html(r#"<a href="/admin-ui/">Socket.IO Admin UI</a>"#) }),
        )
        .nest_service("/admin-ui", ServeDir::new(admin_ui()?))
        .layer(layer);

    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".to_owned());
    let port = std::env::var("PORT").unwrap_or_else(|_| "3001".to_owned());
    let listener = tokio::net::TcpListener::bind(format!("{host}:{port}")).await?;
    announce(&format!(
        "admin-ui on http://{}/admin-ui/",
        listener.local_addr()?
    ));
    // `belfry::serve` gives handlers the peer address (the UI shows it for each socket) and
    // closes idle and slow connections as Node does.
    belfry::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = tokio::signal::ctrl_c().await;
            io.close().await;
        })
        .await
}

/// The `ui/dist` folder of the `@socket.io/admin-ui` npm package, installed beside this example
/// the first time (`npm ci` with the committed lockfile), as the chat example installs its
/// client.
fn admin_ui() -> std::io::Result<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dist = dir.join("node_modules/@socket.io/admin-ui/ui/dist");
    npm::install(
        dir,
        &dist.join("index.html"),
        "the Admin UI's files",
        announce,
    )?;
    Ok(dist)
}

/// One line for the person who started the example, whatever `RUST_LOG` says.
#[expect(clippy::print_stdout, reason = "the example talks to its user")]
fn announce(line: &str) {
    println!("{line}");
}
