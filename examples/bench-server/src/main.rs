//! Belfry as the benchmarks (`crates/belfry-bench`'s README, "The servers' contract"; the
//! yardstick `shared/bench` asks the same) expect a server: `echo`,
//! `ack`, `join` and `bcast` on `/`, listening on `127.0.0.1:$PORT` with a backlog of 1024.
//!
//! ```text
//! cargo build --release -p bench-server
//! SERVERS="socketioxide node rawws belfry" SERVER_CMD_belfry=target/release/bench-server \
//!     shared/bench/run.sh
//! ```
//!
//! Written as a user would: default options but `max_payload` (1 MB, the contract's), handlers
//! as plain async functions of extractors (`belfry_bench::on_connect`, which the load
//! generator's tests serve too).
//!
//! With `REDIS_URL` set, the server is a node of a cluster over that Redis (`belfry-redis`, the
//! protocol of Node's `@socket.io/redis-adapter`): `crates/belfry-bench`'s cluster scenario
//! runs two. It listens only once its subscription is up, so that a broadcast another node
//! sends as soon as this one accepts connections reaches it.
use belfry::SocketIo;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    // The accept loop runs on a worker, not on the main thread that `#[tokio::main]` blocks on:
    // with one core, a connection accepted on the main thread is handed to the worker through
    // the runtime's shared queue and a wake-up of the worker's thread.
    //
    // A multi-thread runtime, not a current-thread one: the latter does less work per echo and
    // per connection (no `mprotect` growing a worker's malloc arena), but writes a fan-out
    // burst in smaller batches, which costs more CPU per delivery (docs/PERFORMANCE.md, "Tried
    // and left out").
    tokio::spawn(serve()).await.map_err(std::io::Error::other)?
}

async fn serve() -> std::io::Result<()> {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let builder = SocketIo::builder().max_payload(1_000_000);
    let (layer, io, redis) = match std::env::var("REDIS_URL") {
        Ok(url) => {
            let redis = belfry_redis::RedisAdapter::builder(url)
                .connect()
                .await
                .map_err(std::io::Error::other)?;
            let (layer, io) = builder.adapter(redis.factory()).build_layer();
            (layer, io, Some(redis))
        }
        Err(_) => {
            let (layer, io) = builder.build_layer();
            (layer, io, None)
        }
    };
    io.ns("/", belfry_bench::on_connect);
    if let Some(redis) = redis {
        redis.ready().await;
    }
    // The layer wraps the router from outside (`Router::layer` would put it inside the
    // router's fallback route): an Engine.IO request never goes through axum's routing, its
    // boxed and cloned route services.
    let app = tower_layer::Layer::layer(&layer, axum::Router::new());
    // tokio's `TcpListener::bind` listens with a backlog of 128; the contract asks for ≥ 511.
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    // Small frames go out at once rather than waiting for the peer's ack (Nagle's algorithm is
    // off: Node's http server does the same by default). Set on the listening socket, which
    // Linux's accepted sockets inherit: no system call per connection.
    socket.set_nodelay(true)?;
    socket.bind(std::net::SocketAddr::from(([127, 0, 0, 1], port)))?;
    let listener = socket.listen(1024)?;
    // Served by hyper's HTTP/1 connection builder over the TCP stream itself (`axum::serve`
    // would do as well): the upgraded WebSocket then reads and writes that stream directly
    // rather than through hyper's type-erased `Upgraded` and the wrapper that `axum::serve`'s
    // HTTP-version detection puts around every stream (and no read of the first 24 bytes alone
    // for that detection).
    let service = hyper_util::service::TowerToHyperService::new(app);
    let http = hyper::server::conn::http1::Builder::new();
    let accept = async {
        loop {
            // Out of descriptors, say: the connection waits in the backlog until one frees.
            let Ok((tcp, _)) = listener.accept().await else {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            };
            let connection = http
                .serve_connection(hyper_util::rt::TokioIo::new(tcp), service.clone())
                .with_upgrades();
            tokio::spawn(connection);
        }
    };
    // Ctrl-C ends the process normally (so that profilers such as heaptrack can write their
    // data); the harness stops it with SIGTERM.
    tokio::select! {
        () = accept => Ok(()),
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}
