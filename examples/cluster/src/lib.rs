//! One node of a Belfry cluster: Socket.IO over a shared Redis ([`belfry_redis`], through its
//! classic protocol, or its streams protocol with connection state recovery on) or PostgreSQL
//! database ([`belfry_postgres`]), marked with the cookie `belfry_node=<name>` so that a load
//! balancer keeps each client on the node that opened its session (see `nginx.conf` beside this
//! crate).
//!
//! Clients get `welcome {node, recovered}` with the node's name when they connect (`recovered`:
//! on Redis Streams, a client that lost its connection came back, through this node or the
//! other, as the same socket, after the messages it missed); `whoami` answers the node's name;
//! `say` broadcasts `said {node, text}` to every client of the cluster; `count` answers how
//! many sockets the whole cluster has (`fetch_sockets`).
//!
//! Each node also serves the client: a page at `/` (`static/index.html`: which node served it,
//! which node its socket is on, the cluster's socket count, a form to `say` something to every
//! node's clients) and the official browser bundle it loads, `/socket.io/socket.io.min.js`.

use std::{error::Error, fmt, path::Path};

use axum::{Router, response::Html, routing::get};
use belfry::{
    AckSender, SocketIo, SocketRef, core::adapter::ConnectionStateRecovery, extract::Data,
};
use belfry_postgres::PostgresAdapter;
use belfry_redis::{RedisAdapter, streams::StreamsOptions};
use tower_http::set_header::SetResponseHeaderLayer;

/// The page at `/`; `{{node}}` is replaced by the name of the node serving it, `{{backend}}` by
/// what the nodes share.
const PAGE: &str = include_str!("../static/index.html");

/// What the nodes of the cluster share, and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// A Redis server (`redis://host:port`), through `belfry-redis` (Node's
    /// `@socket.io/redis-adapter`).
    Redis(String),
    /// A Redis server (`redis://host:port`), through `belfry-redis`'s streams protocol (Node's
    /// `@socket.io/redis-streams-adapter`), with connection state recovery on: a client that
    /// loses its connection recovers its socket through either node.
    RedisStreams(String),
    /// A PostgreSQL database (`postgres://user@host/database`) with the attachments table,
    /// through `belfry-postgres` (Node's `@socket.io/postgres-adapter`).
    Postgres(String),
}

impl Backend {
    /// From the environment: `ADAPTER` (`redis`, the default, `streams` or `postgres`), then
    /// `REDIS_URL` (default `redis://127.0.0.1:6379`) or `DATABASE_URL` (default
    /// `postgres://postgres@127.0.0.1:5432/postgres`).
    ///
    /// # Errors
    ///
    /// `ADAPTER` names neither.
    pub fn from_env() -> Result<Backend, String> {
        let var =
            |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
        match var("ADAPTER", "redis").as_str() {
            "redis" => Ok(Backend::Redis(var("REDIS_URL", "redis://127.0.0.1:6379"))),
            "streams" => Ok(Backend::RedisStreams(var(
                "REDIS_URL",
                "redis://127.0.0.1:6379",
            ))),
            "postgres" => Ok(Backend::Postgres(var(
                "DATABASE_URL",
                "postgres://postgres@127.0.0.1:5432/postgres",
            ))),
            other => Err(format!(
                "ADAPTER={other}: the cluster example runs on `redis`, `streams` or `postgres`"
            )),
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Redis(_) => "Redis",
            Backend::RedisStreams(_) => "Redis Streams",
            Backend::Postgres(_) => "PostgreSQL",
        })
    }
}

/// The node named `name`, its adapter connected to `backend`: the app's Router (with the page
/// at `/` and `GET /node` answering the name) and the Socket.IO handle. `client_bundle` is the
/// `dist` folder of the `socket.io-client` npm package, served under `/socket.io/`.
///
/// # Errors
///
/// The backend cannot be reached now (later outages are handled by the adapter), or the bundle
/// cannot be read.
///
/// # Panics
///
/// `name` cannot be a cookie value (it must be a plain token such as `a` or `eu-1`).
pub async fn app(
    name: &str,
    backend: &Backend,
    client_bundle: &Path,
) -> Result<(Router, SocketIo), Box<dyn Error + Send + Sync>> {
    let builder = SocketIo::builder().serve_client(client_bundle)?;
    let (layer, io, ready) = match backend {
        Backend::Redis(url) => {
            let redis = RedisAdapter::builder(url).connect().await?;
            let (layer, io) = builder.adapter(redis.factory()).build_layer();
            (layer, io, Ready::Redis(redis))
        }
        Backend::RedisStreams(url) => {
            let redis = RedisAdapter::builder(url)
                .streams(StreamsOptions::new())
                .connect()
                .await?;
            // Sessions of clients that lost their connection are kept in Redis for 2 minutes
            // (Node's default), and restored by whichever node the client comes back to.
            let (layer, io) = builder
                .adapter(redis.factory())
                .connection_state_recovery(ConnectionStateRecovery::default())
                .build_layer();
            (layer, io, Ready::Redis(redis))
        }
        Backend::Postgres(url) => {
            let postgres = PostgresAdapter::builder(url).connect().await?;
            let (layer, io) = builder.adapter(postgres.factory()).build_layer();
            (layer, io, Ready::Postgres(postgres))
        }
    };
    // One name per process, for as long as it runs.
    let node: &'static str = Box::leak(name.to_owned().into_boxed_str());
    io.ns("/", move |socket: SocketRef| async move {
        // A recovered socket has its rooms and data back, and got the events it missed; its
        // handlers are registered again below, as for a new one.
        let welcome = serde_json::json!({ "node": node, "recovered": socket.recovered() });
        let _ = socket.emit("welcome", &welcome);
        socket.on("whoami", move |ack: AckSender| async move {
            let _ = ack.send(&node);
        });
        socket.on(
            "say",
            move |socket: SocketRef, Data(text): Data<String>| async move {
                let said = serde_json::json!({ "node": node, "text": text });
                let _ = socket.io().emit("said", &said);
            },
        );
        socket.on("count", |socket: SocketRef, ack: AckSender| async move {
            let all = socket.io().of("/").expect("the main namespace exists");
            let count = all.fetch_sockets().await.map_or(0, |sockets| sockets.len());
            let _ = ack.send(&count);
        });
    });
    // Subscribed (Redis) or listening (Postgres) before serving: nothing published by the other
    // nodes is missed.
    ready.wait().await;
    let cookie = http::HeaderValue::from_str(&format!(
        "belfry_node={name}; Path=/; HttpOnly; SameSite=Lax"
    ))
    .expect("a node name is a plain token");
    let sticky = SetResponseHeaderLayer::appending(http::header::SET_COOKIE, cookie);
    let page: &'static str = Box::leak(
        PAGE.replace("{{node}}", &escape_html(node))
            .replace("{{backend}}", &backend.to_string())
            .into_boxed_str(),
    );
    let router = Router::new()
        .route("/", get(move || async move { Html(page) }))
        .route("/node", get(move || async move { node }))
        .layer(layer.engine_layer(sticky));
    Ok((router, io))
}

/// The connected adapter, to wait until it receives what the other nodes publish.
enum Ready {
    Redis(RedisAdapter),
    Postgres(PostgresAdapter),
}

impl Ready {
    async fn wait(&self) {
        match self {
            Ready::Redis(redis) => redis.ready().await,
            Ready::Postgres(postgres) => postgres.ready().await,
        }
    }
}

/// `text` as HTML text.
fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
