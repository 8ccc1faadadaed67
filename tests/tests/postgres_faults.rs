//! The Postgres adapter when things fail: the database killed and restarted mid-traffic, its
//! connections terminated by the server, hostile notifications on Belfry's channel, a Node
//! server of the cluster killed and started again. Real PostgreSQL, raw WebSocket clients.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use belfry::{SocketIo, SocketRef, core::adapter::AdapterError};
use belfry_postgres::PostgresAdapter;
use belfry_tests::{
    RawWs,
    cluster::{
        broadcast_reaches_both, flows_again_after_the_outage, local_delivery_goes_on, next_event,
        remote_sockets, room_server, until_count, until_servers, wait_until,
    },
    processes::{NodeProcess, PostgresServer},
    serve,
};
use bytes::Bytes;

struct Server {
    io: SocketIo,
    postgres: PostgresAdapter,
    client: RawWs,
}

/// A Belfry server whose sockets join room "r", reconnecting to Postgres after `backoff`, with
/// requests waiting 1 s; and one client connected to it.
async fn server(url: &str, backoff: Duration) -> Server {
    let postgres = PostgresAdapter::builder(url)
        .reconnect_backoff(backoff, backoff)
        .health_interval(Duration::from_millis(500))
        .requests_timeout(Duration::from_secs(1))
        .connect()
        .await
        .unwrap();
    let ready = postgres.clone();
    let builder = SocketIo::builder().adapter(postgres.factory());
    let (io, client, _) = room_server(builder, async move { ready.ready().await }).await;
    Server {
        io,
        postgres,
        client,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_killed_and_restarted_mid_traffic() {
    let mut postgres = PostgresServer::start().await;
    // `a` reconnects after 2 s, `b` after 100 ms: `b` listens again before `a` publishes what
    // waited (a notification reaches only those listening when it is sent).
    let mut a = server(&postgres.url(), Duration::from_secs(2)).await;
    let mut b = server(&postgres.url(), Duration::from_millis(100)).await;
    until_servers(&a.io, 2).await;
    until_servers(&b.io, 2).await;
    broadcast_reaches_both(&a.io, &mut a.client, &mut b.client, "before").await;
    broadcast_reaches_both(&b.io, &mut a.client, &mut b.client, "before-b").await;

    postgres.kill().await;
    wait_until("the outage noticed", Duration::from_secs(10), || {
        !a.postgres.is_connected() && !b.postgres.is_connected()
    })
    .await;
    // Local delivery goes on; the message waits for Postgres to reach the other server.
    local_delivery_goes_on(&a.io, &mut a.client, Some(&mut b.client)).await;
    // Requests to the other server fail with a timeout, within the requests timeout (1 s).
    let started = Instant::now();
    let fetched = remote_sockets(&a.io).await;
    assert!(
        matches!(fetched, Err(AdapterError::Timeout("fetchSockets"))),
        "{fetched:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));

    postgres.restart().await;
    let took = wait_until("both servers listen again", Duration::from_secs(10), || {
        a.postgres.is_connected() && b.postgres.is_connected()
    })
    .await;
    assert!(took < Duration::from_secs(6), "reconnected after {took:?}");
    // What waited reached the other server, once; traffic and requests flow again.
    flows_again_after_the_outage(&a.io, &mut a.client, &b.io, &mut b.client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_closed_by_the_database_are_made_again() {
    let postgres = PostgresServer::start().await;
    let mut a = server(&postgres.url(), Duration::from_millis(100)).await;
    let mut b = server(&postgres.url(), Duration::from_millis(100)).await;
    until_servers(&a.io, 2).await;
    // Both servers' listening and publishing connections.
    assert_eq!(postgres.terminate_connections().await, 4);
    wait_until("the loss noticed", Duration::from_secs(5), || {
        !a.postgres.is_connected() || !b.postgres.is_connected()
    })
    .await;
    wait_until("both listen again", Duration::from_secs(5), || {
        a.postgres.is_connected() && b.postgres.is_connected()
    })
    .await;
    a.postgres.ready().await;
    b.postgres.ready().await;
    // The first message after the loss may go out before the publisher notices it and be
    // lost: what matters is that traffic flows again by itself.
    let start = Instant::now();
    loop {
        a.io.to("r").emit("news", "probe").unwrap();
        let got_a = next_event(&mut a.client, Duration::from_secs(1)).await;
        assert_eq!(got_a.as_deref(), Some(r#"42["news","probe"]"#));
        if next_event(&mut b.client, Duration::from_secs(1))
            .await
            .is_some()
        {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "no traffic");
    }
    broadcast_reaches_both(&a.io, &mut a.client, &mut b.client, "after").await;
    broadcast_reaches_both(&b.io, &mut a.client, &mut b.client, "after-b").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_notifications_are_dropped() {
    let postgres = PostgresServer::start().await;
    let mut a = server(&postgres.url(), Duration::from_millis(100)).await;
    let mut b = server(&postgres.url(), Duration::from_millis(100)).await;
    until_servers(&a.io, 2).await;
    for payload in [
        "",
        "not json",
        "[]",
        "null",
        r#"{"uid":"x"}"#,
        r#"{"type":"three","uid":"x","nsp":"/"}"#,
        r#"{"type":3,"uid":"x","nsp":"/","data":{"packet":17}}"#,
        r#"{"type":3,"uid":"x","nsp":"/","data":{"packet":{"data":"no"},"opts":{}}}"#,
        r#"{"type":7,"uid":"x","nsp":"/","data":{"requestId":5,"opts":{}}}"#,
        r#"{"type":8,"uid":"x","nsp":"/","data":{"requestId":"r","sockets":[{}]}}"#,
        r#"{"type":9,"uid":"x","nsp":"/","data":{"packet":"x"}}"#,
        r#"{"type":3,"uid":"x","attachmentId":"999999"}"#,
        r#"{"type":3,"uid":"x","attachmentId":"'; DROP TABLE socket_io_attachments; --"}"#,
        r#"{"type":3,"uid":"x","attachmentId":[1]}"#,
        r#"{"type":2,"uid":"","nsp":"/"}"#,
    ] {
        postgres.notify("socket.io#/", payload).await;
    }
    // An attachment that is not msgpack.
    let id = postgres
        .query("INSERT INTO socket_io_attachments (payload) VALUES ('\\xc1c1') RETURNING id;")
        .await;
    postgres
        .notify(
            "socket.io#/",
            &format!(r#"{{"type":3,"uid":"x","attachmentId":"{}"}}"#, id.trim()),
        )
        .await;
    // Nothing reached the clients; both servers still work, the table too.
    assert_eq!(
        next_event(&mut a.client, Duration::from_millis(300)).await,
        None
    );
    broadcast_reaches_both(&a.io, &mut a.client, &mut b.client, "still").await;
    a.io.to("r")
        .emit("news", &Bytes::from_static(b"\x01\x02"))
        .unwrap();
    for client in [&mut a.client, &mut b.client] {
        let frame = next_event(client, Duration::from_secs(5)).await.unwrap();
        assert!(
            frame.starts_with(r#"451-["news",{"_placeholder":true"#),
            "{frame}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_server_killed_and_started_again() {
    let postgres = PostgresServer::start().await;
    let a = server(&postgres.url(), Duration::from_millis(100)).await;
    let b = server(&postgres.url(), Duration::from_millis(100)).await;
    let args = [postgres.url(), "node".into(), "postgres".into(), "3".into()];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let node = NodeProcess::start("redis_node_server.mjs", &args).await;
    until_servers(&a.io, 3).await;
    until_servers(&b.io, 3).await;
    // Node answers requests: a fetch waits for both other servers.
    assert_eq!(remote_sockets(&a.io).await.unwrap().len(), 1);

    // Killed: it sends nothing more. After the heartbeat timeout (10 s) it is no longer
    // counted, and requests do not wait for it.
    drop(node);
    until_count(&a.io, "/", 2, Duration::from_secs(15)).await;
    assert_eq!(remote_sockets(&a.io).await.unwrap().len(), 1);

    // Started again: counted again, and it answers.
    let _node = NodeProcess::start("redis_node_server.mjs", &args).await;
    until_servers(&a.io, 3).await;
    until_servers(&b.io, 3).await;
    assert_eq!(remote_sockets(&b.io).await.unwrap().len(), 1);
    drop((a, b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_database_is_noticed_and_left() {
    let postgres = PostgresServer::start().await;
    let mut a = server(&postgres.url(), Duration::from_millis(100)).await;
    let mut b = server(&postgres.url(), Duration::from_millis(100)).await;
    until_servers(&a.io, 2).await;
    // Frozen: connections stay open, nothing answers. The health check notices.
    postgres.pause();
    wait_until("the silence noticed", Duration::from_secs(10), || {
        !a.postgres.is_connected() && !b.postgres.is_connected()
    })
    .await;
    // Local delivery goes on meanwhile.
    local_delivery_goes_on(&a.io, &mut a.client, None).await;
    postgres.resume();
    wait_until("both listen again", Duration::from_secs(15), || {
        a.postgres.is_connected() && b.postgres.is_connected()
    })
    .await;
    a.postgres.ready().await;
    b.postgres.ready().await;
    // Whatever became of the message sent into the silence, traffic flows again by itself.
    let start = Instant::now();
    loop {
        b.io.to("r").emit("news", "probe").unwrap();
        let mut reached_a = false;
        while let Some(frame) = next_event(&mut a.client, Duration::from_millis(500)).await {
            reached_a |= frame == r#"42["news","probe"]"#;
        }
        while next_event(&mut b.client, Duration::from_millis(100))
            .await
            .is_some()
        {}
        if reached_a {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "no traffic");
    }
    broadcast_reaches_both(&a.io, &mut a.client, &mut b.client, "after").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_closes_is_no_longer_counted_at_once() {
    let postgres = PostgresServer::start().await;
    // Heartbeats every 200 ms: a closed server that still sent them would be counted again.
    let beating = |name: &str| {
        PostgresAdapter::builder(name)
            .heartbeat(Duration::from_millis(200), Duration::from_secs(5))
            .requests_timeout(Duration::from_secs(1))
    };
    let a = beating(&postgres.url()).connect().await.unwrap();
    let b = beating(&postgres.url()).connect().await.unwrap();
    let (_, io_a) = SocketIo::builder().adapter(a.factory()).build_layer();
    let (_, io_b) = SocketIo::builder().adapter(b.factory()).build_layer();
    io_a.ns("/", |_: SocketRef| async {});
    io_b.ns("/", |_: SocketRef| async {});
    until_servers(&io_a, 2).await;
    until_servers(&io_b, 2).await;
    // Closed as in a graceful shutdown: the others hear it leave (not 5 s later)...
    io_a.close().await;
    until_count(&io_b, "/", 1, Duration::from_secs(2)).await;
    // ...requests do not wait for it...
    let started = Instant::now();
    assert!(remote_sockets(&io_b).await.unwrap().is_empty());
    assert!(started.elapsed() < Duration::from_millis(500));
    // ...and it stays gone: a closed adapter sends no heartbeat.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(io_b.of("/").unwrap().server_count().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dynamic_namespace_that_empties_leaves_the_cluster() {
    let postgres = PostgresServer::start().await;
    let a = PostgresAdapter::builder(postgres.url())
        .connect()
        .await
        .unwrap();
    let b = PostgresAdapter::builder(postgres.url())
        .connect()
        .await
        .unwrap();
    let (layer, io_a) = SocketIo::builder().adapter(a.factory()).build_layer();
    let (_, io_b) = SocketIo::builder().adapter(b.factory()).build_layer();
    io_a.dynamic_ns(|name| name.starts_with("/dyn-"), |_: SocketRef| async {});
    io_b.ns("/dyn-1", |_: SocketRef| async {});
    b.ready().await;
    let addr = serve(axum::Router::new().layer(layer)).await;
    // A client makes the child on `a`: it joins the namespace's cluster...
    let (mut client, _) = RawWs::open(addr).await;
    client.frame(0x81, b"40/dyn-1,").await;
    let (_, connect) = client.read_frame().await.unwrap();
    assert!(connect.starts_with(b"40/dyn-1,{\"sid\""), "{connect:?}");
    until_count(&io_b, "/dyn-1", 2, Duration::from_secs(10)).await;
    // ...and leaves it when its last socket leaves and it is forgotten.
    client.frame(0x81, b"41/dyn-1,").await;
    until_count(&io_b, "/dyn-1", 1, Duration::from_secs(2)).await;
}

/// `@socket.io/postgres-emitter` 0.1.1 names no namespace in its messages (Node's adapter 0.5
/// drops them): Belfry delivers them to the namespace of their channel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_emitter_reaches_belfry_servers() {
    let postgres = PostgresServer::start().await;
    let mut a = server(&postgres.url(), Duration::from_millis(100)).await;
    let sent = belfry_tests::run_node("pg_emitter.mjs", &[&postgres.url()]).await;
    assert_eq!(sent["sent"], true, "{sent}");
    // The emitter publishes through a pool of connections: its messages may come in any
    // order. Each arrives once; the binary one with its attachment right after it.
    let mut got = Vec::new();
    for _ in 0..2 {
        let frame = next_event(&mut a.client, Duration::from_secs(5))
            .await
            .unwrap();
        if frame.starts_with("451-") {
            let (_, attachment) = a.client.read_frame().await.unwrap();
            assert_eq!(attachment, [1, 2, 3]);
        }
        got.push(frame);
    }
    got.sort();
    assert_eq!(
        got,
        [
            r#"42["news","to-all"]"#,
            r#"451-["news","to-r",{"_placeholder":true,"num":0}]"#,
        ]
    );
    // The socket is in "r": the last one is not for it.
    assert_eq!(
        next_event(&mut a.client, Duration::from_millis(500)).await,
        None
    );
}
