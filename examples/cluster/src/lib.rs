//! One node of a Belfry cluster: Socket.IO over a shared Redis ([`belfry_redis`]), marked with
//! the cookie `belfry_node=<name>` so that a load balancer keeps each client on the node that
//! opened its session (see `nginx.conf` beside this crate).
//!
//! Clients get `welcome` with the node's name when they connect; `whoami` answers it; `say`
//! broadcasts `said {node, text}` to every client of the cluster; `count` answers how many
//! sockets the whole cluster has (`fetch_sockets`).
//!
//! Each node also serves the client: a page at `/` (`static/index.html`: which node served it,
//! which node its socket is on, the cluster's socket count, a form to `say` something to every
//! node's clients) and the official browser bundle it loads, `/socket.io/socket.io.min.js`.

use std::{error::Error, path::Path};

use axum::{Router, response::Html, routing::get};
use belfry::{AckSender, SocketIo, SocketRef, extract::Data};
use belfry_redis::RedisAdapter;
use tower_http::set_header::SetResponseHeaderLayer;

/// The page at `/`; `{{node}}` is replaced by the name of the node serving it.
const PAGE: &str = include_str!("../static/index.html");

/// The node named `name`, its Redis adapter connected to `redis_url`: the app's Router (with
/// the page at `/` and `GET /node` answering the name) and the Socket.IO handle. `client_bundle`
/// is the `dist` folder of the `socket.io-client` npm package, served under `/socket.io/`.
///
/// # Errors
///
/// Redis cannot be reached now (later outages are handled by the adapter), or the bundle
/// cannot be read.
///
/// # Panics
///
/// `name` cannot be a cookie value (it must be a plain token such as `a` or `eu-1`).
pub async fn app(
    name: &str,
    redis_url: &str,
    client_bundle: &Path,
) -> Result<(Router, SocketIo), Box<dyn Error + Send + Sync>> {
    let redis = RedisAdapter::builder(redis_url).connect().await?;
    let (layer, io) = SocketIo::builder()
        .adapter(redis.factory())
        .serve_client(client_bundle)?
        .build_layer();
    // One name per process, for as long as it runs.
    let node: &'static str = Box::leak(name.to_owned().into_boxed_str());
    io.ns("/", move |socket: SocketRef| async move {
        let _ = socket.emit("welcome", &serde_json::json!({ "node": node }));
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
    // Subscribed before serving: nothing published by the other nodes is missed.
    redis.ready().await;
    let cookie = http::HeaderValue::from_str(&format!(
        "belfry_node={name}; Path=/; HttpOnly; SameSite=Lax"
    ))
    .expect("a node name is a plain token");
    let sticky = SetResponseHeaderLayer::appending(http::header::SET_COOKIE, cookie);
    let page: &'static str = Box::leak(
        PAGE.replace("{{node}}", &escape_html(node))
            .into_boxed_str(),
    );
    let router = Router::new()
        .route("/", get(move || async move { Html(page) }))
        .route("/node", get(move || async move { node }))
        .layer(layer.engine_layer(sticky));
    Ok((router, io))
}

/// `text` as HTML text.
fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
