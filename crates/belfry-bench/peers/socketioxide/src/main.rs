//! Benchmark peer: socketioxide 0.18 + axum 0.8, implementing the benchmark contract
//! (`crates/belfry-bench/README.md`, "The servers' contract": events `echo`, `ack`, `join`, `bcast` on namespace `/`),
//! optionally as one node of a cluster over Redis.
//!
//! Written the way a user of socketioxide would write it: default parser (common/JSON),
//! async handlers (socketioxide 0.18 only accepts async handlers; it spawns one task per
//! handled event), default buffer sizes, default transports (long-polling and WebSocket, with
//! upgrade); only `max_payload` is raised to 1 MB (socketioxide's default is 100 kB, the
//! contract and Node's default are 1 MB).
//!
//! Adapter:
//! - `REDIS_URL` unset: socketioxide's default in-memory `LocalAdapter`, exactly as the
//!   reference server.
//! - `REDIS_URL` set (e.g. `redis://127.0.0.1:6379`): `socketioxide-redis`'s `RedisAdapter`
//!   with the `redis` crate driver, so that `socket.to(room).emit(..)` on one node also reaches
//!   the sockets of that room on the other nodes. The driver needs RESP3 (pub/sub pushes on a
//!   multiplexed connection), so `protocol=resp3` is added to the URL unless it names a
//!   protocol. The port is bound only after the namespace's adapter has subscribed to its
//!   Redis channels (see `main`).
//!
//! Environment: `PORT` (default 3000), `REDIS_URL` (optional). Listens on `127.0.0.1:$PORT`
//! with a backlog of 1024. Logs one start-up line on stderr, nothing per connection.

use std::fmt;
use std::time::Duration;

use serde::de::{Deserialize, Deserializer, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeTuple, Serializer};
use serde_json::Value;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{AckSender, Data, SocketRef};
use socketioxide::{SocketIo, SocketIoBuilder};
use socketioxide_redis::{RedisAdapter, RedisAdapterCtr};

/// "Any number of arguments". socketioxide treats tuple-like types as the argument list
/// (and any other type as the first argument only), so this wrapper (de)serialises as a
/// serde *tuple* of dynamic length to keep every argument, exactly like `(...args)` in JS.
struct Args(Vec<Value>);

impl Serialize for Args {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(self.0.len())?;
        for v in &self.0 {
            t.serialize_element(v)?;
        }
        t.end()
    }
}

impl<'de> Deserialize<'de> for Args {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Args;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of arguments")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Args, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(1));
                while let Some(v) = seq.next_element::<Value>()? {
                    out.push(v);
                }
                Ok(Args(out))
            }
        }
        d.deserialize_tuple(usize::MAX, V)
    }
}

/// Namespace `/` connect handler, generic over the adapter (local or Redis).
async fn on_connect<A: Adapter>(s: SocketRef<A>) {
    // echo: emit "echo" back to the sender with the same arguments.
    s.on("echo", async |s: SocketRef<A>, Data::<Args>(args)| {
        s.emit("echo", &args).ok();
    });
    // ack: acknowledge with the same arguments.
    s.on("ack", async |Data::<Args>(args), ack: AckSender<A>| {
        ack.send(&args).ok();
    });
    // join: join the room, then ack (no arguments).
    s.on(
        "join",
        async |s: SocketRef<A>, Data::<String>(room), ack: AckSender<A>| {
            s.join(room);
            ack.send(&Args(Vec::new())).ok();
        },
    );
    // bcast: emit "msg" with payload to every socket in the room except the sender,
    // then ack (no arguments) once the message is queued for every local recipient and,
    // with the Redis adapter, once the broadcast request has been published to Redis
    // (`emit(..).await` returns after the PUBLISH; remote delivery is not awaited).
    s.on(
        "bcast",
        async |s: SocketRef<A>,
               Data::<(String, Value)>((room, payload)),
               ack: AckSender<A>| {
            s.to(room).emit("msg", &payload).await.ok();
            ack.send(&Args(Vec::new())).ok();
        },
    );
}

/// The contract's engine options (the same for both adapters).
fn builder() -> SocketIoBuilder {
    SocketIo::builder()
        .ping_interval(Duration::from_secs(25))
        .ping_timeout(Duration::from_secs(20))
        .max_payload(1_000_000)
}

/// `url` with `protocol=resp3` added unless it already selects a protocol.
fn with_resp3(url: &str) -> String {
    if url.contains("protocol=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&protocol=resp3")
    } else {
        format!("{url}?protocol=resp3")
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let redis_url = std::env::var("REDIS_URL").ok().filter(|u| !u.is_empty());

    let (app, adapter) = match &redis_url {
        None => {
            let (layer, io) = builder().build_layer();
            io.ns("/", on_connect);
            (axum::Router::new().layer(layer), "local adapter".to_owned())
        }
        Some(url) => {
            let client = redis::Client::open(with_resp3(url))?;
            // Opens the multiplexed (RESP3) connection shared by every namespace's adapter.
            let ctr = RedisAdapterCtr::new_with_redis(&client).await?;
            let (layer, io) = builder()
                .with_adapter::<RedisAdapter<_>>(ctr)
                .build_layer();
            // Namespace subscription is asynchronous: `ns` returns the adapter's `InitRes`
            // future, which SUBSCRIBEs to the namespace's three channels (global request,
            // node-specific request, node-specific response), each `subscribe` resolving
            // once Redis has confirmed it, and only then registers the namespace. Awaiting
            // it (instead of letting it be spawned on drop) means the port below is bound
            // only once this node can receive broadcasts from the other nodes.
            io.ns("/", on_connect).await?;
            (
                axum::Router::new().layer(layer),
                format!("redis adapter ({url})"),
            )
        }
    };

    // Listen backlog 1024 (tokio's `TcpListener::bind` uses 128, which overflows during the
    // connect ramp on one core; Node listens with 511).
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    // Nagle's algorithm off, as Node's http server and Belfry's benchmark server have it: with
    // it on, a lone small frame waits for the peer's delayed ack (some 40 ms on loopback), and
    // socketioxide's latencies would measure the kernel's timer rather than the server. Set on
    // the listening socket: Linux's accepted sockets inherit it.
    socket.set_nodelay(true)?;
    socket.bind(std::net::SocketAddr::from(([127, 0, 0, 1], port)))?;
    let listener = socket.listen(1024)?;
    eprintln!(
        "socketioxide bench peer listening on 127.0.0.1:{port} ({adapter}, workers: {})",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    axum::serve(listener, app).await?;
    Ok(())
}
