//! How many echo round trips one client core drives against a Belfry server: the client on a
//! single-threaded runtime (one core), the server on a runtime of its own thread, over
//! loopback WebSocket. Each round trip is an emit with an ack that the server answers with the
//! event's argument; `one at a time` waits for each answer before the next emit, `64 in
//! flight` keeps 64 emits waiting for their answers, `4096 in flight` 4096 (the client's
//! bookkeeping of many acks).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use belfry::{AckSender, SocketIo, SocketRef, extract::Data};
use belfry_client::{ClientBuilder, Socket, Transports};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures_util::{StreamExt, stream::FuturesUnordered};

/// Starts an echo server on its own thread and runtime; its address.
fn server() -> std::net::SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let (layer, io) = SocketIo::new_layer();
            io.ns("/", |socket: SocketRef| async move {
                socket.on("echo", |Data(n): Data<u64>, ack: AckSender| async move {
                    let _ = ack.send(&n);
                });
            });
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, axum::Router::new().layer(layer))
                .await
                .unwrap();
        });
    });
    rx.recv().unwrap()
}

/// `count` round trips with `window` of them in flight.
async fn round_trips(socket: &Socket, count: u64, window: usize) -> Duration {
    let ask = |n: u64| async move { socket.emit_with_ack::<u64, _>("echo", &n).await };
    let start = Instant::now();
    let mut in_flight = FuturesUnordered::new();
    for n in 0..count {
        in_flight.push(ask(n));
        if in_flight.len() == window {
            std::hint::black_box(in_flight.next().await.unwrap().unwrap());
        }
    }
    while let Some(answer) = in_flight.next().await {
        std::hint::black_box(answer.unwrap());
    }
    start.elapsed()
}

fn echo(c: &mut Criterion) {
    let addr = server();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let socket = runtime.block_on(async {
        ClientBuilder::new(format!("http://{addr}"))
            .transports(Transports::WebSocket)
            .connect()
            .await
            .unwrap()
    });
    let mut group = c.benchmark_group("client echo round trips");
    group.throughput(Throughput::Elements(1));
    for (name, window) in [
        ("one at a time", 1),
        ("64 in flight", 64),
        ("4096 in flight", 4096),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| runtime.block_on(round_trips(&socket, iters, window)));
        });
    }
    group.finish();
    runtime.block_on(socket.disconnect());
}

criterion_group!(benches, echo);
criterion_main!(benches);
