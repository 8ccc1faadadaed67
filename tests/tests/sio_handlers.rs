//! How a socket's event handlers run: concurrently by default (an awaiting handler does not
//! hold back the socket's next event), one at a time with serial handlers, and at most
//! `max_handlers_in_flight` waiting at once, the connection not read meanwhile.
#![allow(clippy::unwrap_used)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use belfry::{
    AckSender, SocketIo, SocketRef,
    extract::{Data, State},
};
use belfry_tests::{run_node, serve};
use tokio::sync::Semaphore;

/// What the handlers saw; `gate` holds them until the test lets them go.
#[derive(Clone)]
struct Seen(Arc<SeenInner>);

struct SeenInner {
    started: AtomicUsize,
    running: AtomicUsize,
    most_running: AtomicUsize,
    gate: Semaphore,
}

/// A server whose `hold` handlers wait at the gate before they answer; at most `max` waiting
/// handlers per socket, serial handlers on `/serial`, and `/other` answering `probe` at once.
/// A polling POST paused by the bound waits at most `ping_timeout`.
async fn server(max: usize, ping_timeout: Duration) -> (String, Seen) {
    let seen = Seen(Arc::new(SeenInner {
        started: AtomicUsize::new(0),
        running: AtomicUsize::new(0),
        most_running: AtomicUsize::new(0),
        gate: Semaphore::new(0),
    }));
    let (layer, io) = SocketIo::builder()
        .ping_timeout(ping_timeout)
        .max_handlers_in_flight(max)
        .with_state(seen.clone())
        .build_layer();
    let handlers = |socket: SocketRef| async move {
        socket.on(
            "hold",
            |Data(i): Data<u64>, ack: AckSender, State(Seen(seen)): State<Seen>| async move {
                seen.started.fetch_add(1, Ordering::SeqCst);
                let running = seen.running.fetch_add(1, Ordering::SeqCst) + 1;
                seen.most_running.fetch_max(running, Ordering::SeqCst);
                let _permit = seen.gate.acquire().await.unwrap();
                seen.running.fetch_sub(1, Ordering::SeqCst);
                let _ = ack.send(&i);
            },
        );
    };
    io.ns("/", handlers);
    io.ns("/serial", handlers).serial_handlers();
    io.ns("/other", |socket: SocketRef| async move {
        socket.on("probe", |ack: AckSender| async move {
            let _ = ack.send(&());
        });
    });
    let addr = serve(axum::Router::new().layer(layer)).await;
    (format!("http://{addr}"), seen)
}

/// Floods `count` `hold` events from one client, checks what started while the handlers are
/// held, lets them go, and returns the client's report.
async fn flood(
    url: &str,
    ns: &str,
    transport: &str,
    count: usize,
    seen: &Seen,
    started_while_held: usize,
    held_for: Duration,
) -> serde_json::Value {
    let args = [url, ns, transport, "hold", &count.to_string()].map(str::to_owned);
    let client = tokio::spawn(async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_node("sio_flood.mjs", &args).await
    });
    // Every event the server reads is started or waits; give them time to arrive.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while seen.0.started.load(Ordering::SeqCst) < started_while_held {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{transport}: {} handlers started in 10 s, not {started_while_held}",
            seen.0.started.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(held_for).await;
    assert_eq!(
        seen.0.started.load(Ordering::SeqCst),
        started_while_held,
        "{transport}: the handlers started while the first ones wait"
    );
    seen.0.gate.add_permits(Semaphore::MAX_PERMITS / 2);
    let report = client.await.unwrap();
    assert!(report.get("error").is_none(), "{report}");
    report
}

#[tokio::test]
async fn handlers_that_wait_do_not_hold_back_the_next_events_up_to_the_bound() {
    for transport in ["websocket", "polling"] {
        let (url, seen) = server(4, Duration::from_secs(20)).await;
        let report = flood(
            &url,
            "/",
            transport,
            200,
            &seen,
            4,
            Duration::from_millis(500),
        )
        .await;
        assert_eq!(report["acks"], 200, "{transport}: every event answered");
        assert_eq!(seen.0.started.load(Ordering::SeqCst), 200);
        assert_eq!(
            seen.0.most_running.load(Ordering::SeqCst),
            4,
            "{transport}: never more than the bound in flight"
        );
        // At the bound the connection was not read: the probe behind the flood, for another
        // namespace, was answered only once handlers had finished.
        assert!(
            report["acksBeforeProbe"].as_u64().unwrap() >= 4,
            "{transport}: {report}"
        );
    }
}

#[tokio::test]
async fn the_bound_holds_when_a_paused_poll_goes_on() {
    // A polling POST paused at the bound goes on after the ping timeout: the events it brings
    // wait in the socket's queue, and no more handlers start.
    let (url, seen) = server(4, Duration::from_secs(1)).await;
    let report = flood(
        &url,
        "/",
        "polling",
        50,
        &seen,
        4,
        Duration::from_millis(2500),
    )
    .await;
    assert_eq!(report["acks"], 50);
    assert_eq!(seen.0.most_running.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn serial_handlers_wait_for_the_one_before() {
    for transport in ["websocket", "polling"] {
        let (url, seen) = server(4, Duration::from_secs(20)).await;
        let report = flood(
            &url,
            "/serial",
            transport,
            20,
            &seen,
            1,
            Duration::from_millis(500),
        )
        .await;
        assert_eq!(report["acks"], 20, "{transport}");
        assert_eq!(report["inOrder"], true, "{transport}");
        assert_eq!(seen.0.most_running.load(Ordering::SeqCst), 1, "{transport}");
    }
}
