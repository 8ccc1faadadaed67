//! Whole-server benchmarks without a network: 10,000 long-polling sessions joined to `/`,
//! driven through the engine's tower service in-process. A broadcast to all of them (encoded
//! once, queued for each), and 10,000 sockets joining and leaving a room (one by one, and with
//! `sockets_join`/`sockets_leave`).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::{
    hint::black_box,
    time::{Duration, Instant},
};

use belfry::{SocketIo, SocketIoLayer, engine::NotFound};
use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use http_body_util::{BodyExt, Full};
use tower::{Layer, Service, ServiceExt};

const SOCKETS: usize = 10_000;

type Svc = belfry::engine::EngineService<NotFound>;

/// Sends one request to the engine and returns the response body.
async fn call(svc: &mut Svc, method: &str, uri: &str, body: &'static [u8]) -> Bytes {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .body(Full::new(Bytes::from_static(body)))
        .unwrap();
    let ready = ServiceExt::<Request<Full<Bytes>>>::ready(svc)
        .await
        .unwrap();
    let res = ready.call(req).await.unwrap();
    res.into_body().collect().await.unwrap().to_bytes()
}

/// The server, its service, and the polling path of each of its `SOCKETS` sessions.
async fn server(layer: SocketIoLayer) -> (Svc, Vec<String>) {
    let mut svc = layer.layer(NotFound);
    let mut paths = Vec::with_capacity(SOCKETS);
    for _ in 0..SOCKETS {
        let open = call(&mut svc, "GET", "/socket.io/?EIO=4&transport=polling", b"").await;
        let open: serde_json::Value = serde_json::from_slice(&open[1..]).unwrap();
        let path = format!(
            "/socket.io/?EIO=4&transport=polling&sid={}",
            open["sid"].as_str().unwrap()
        );
        call(&mut svc, "POST", &path, b"40").await;
        paths.push(path);
    }
    drain(&mut svc, &paths).await;
    (svc, paths)
}

/// Empties every session's queue with one GET each.
async fn drain(svc: &mut Svc, paths: &[String]) {
    for path in paths {
        call(svc, "GET", path, b"").await;
    }
}

fn broadcast(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (layer, io) = SocketIo::new_layer();
    let (mut svc, paths) = rt.block_on(server(layer));
    let message = serde_json::json!({ "room": "lobby", "text": "hello everyone", "n": 42 });

    let mut group = c.benchmark_group("broadcast");
    group.sample_size(20);
    group.bench_function("emit_to_10k_local_sockets", |b| {
        // At most 100 broadcasts between two drains: the send queues hold 128 packets.
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let batch = left.min(100);
                let start = Instant::now();
                for _ in 0..batch {
                    let sent = io.emit("news", black_box(&message)).unwrap();
                    assert_eq!(sent, SOCKETS);
                }
                total += start.elapsed();
                rt.block_on(drain(&mut svc, &paths));
                left -= batch;
            }
            total
        });
    });
    group.finish();

    let sockets = io.of("/").unwrap().sockets();
    let mut group = c.benchmark_group("rooms");
    group.sample_size(20);
    group.bench_function("join_and_leave_10k_one_by_one", |b| {
        b.iter(|| {
            for socket in &sockets {
                socket.join("room");
            }
            for socket in &sockets {
                socket.leave("room");
            }
        });
    });
    group.bench_function("sockets_join_and_leave_10k", |b| {
        let operator = io.of("/").unwrap();
        b.iter(|| {
            rt.block_on(async {
                operator.sockets_join("room").await.unwrap();
                operator.sockets_leave("room").await.unwrap();
            });
        });
    });
    group.finish();
}

criterion_group!(benches, broadcast);
criterion_main!(benches);
