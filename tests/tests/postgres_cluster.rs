//! A mixed cluster on one real PostgreSQL: two Belfry servers with `belfry_postgres` and one
//! Node socket.io 4.8 server with `@socket.io/postgres-adapter` 0.5, `socket.io-client` on
//! every server (the scenario of `belfry_tests::cluster`, as on Redis).
#![allow(clippy::unwrap_used)]

use belfry::SocketIo;
use belfry_postgres::PostgresAdapter;
use belfry_tests::{
    cluster::{belfry_server, run_clients, until_servers},
    processes::{NodeProcess, PostgresServer},
};

/// A Belfry server of the scenario over the database at `url`.
async fn postgres_belfry(url: &str, name: &'static str) -> (String, SocketIo) {
    let postgres = PostgresAdapter::builder(url).connect().await.unwrap();
    belfry_server(
        name,
        postgres.factory(),
        async move { postgres.ready().await },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn belfry_and_node_servers_share_one_postgres_cluster() {
    let postgres = PostgresServer::start().await;
    let (a, io_a) = postgres_belfry(&postgres.url(), "belfry-a").await;
    let (b, io_b) = postgres_belfry(&postgres.url(), "belfry-b").await;
    // The Node server waits until it counts the three servers by their heartbeats; so do the
    // Belfry ones.
    let node = NodeProcess::start(
        "redis_node_server.mjs",
        &[&postgres.url(), "node", "postgres", "3"],
    )
    .await;
    let n = format!("http://127.0.0.1:{}", node.hello["port"]);
    until_servers(&io_a, 3).await;
    until_servers(&io_b, 3).await;

    let result = run_clients(&a, &b, &n, &postgres.url(), "postgres").await;
    // Binary crossed through the attachments table, both ways (checked by run_clients); the
    // rows are there until the cleanup.
    assert!(result["error"].is_null(), "{result:#}");
}
