//! The cluster example for real: Debian's nginx with `examples/cluster/nginx.conf` in front of
//! two Belfry nodes (the example's binary) sharing one `redis-server` (through the classic
//! protocol, or the streams one with connection state recovery on), or one PostgreSQL
//! database, and `socket.io-client` through nginx: polling clients stay on their node,
//! WebSocket clients upgrade through nginx, broadcasts cross nodes, and polling without the
//! sticky cookie breaks (the reason for it); and the page each node serves, with the browser
//! bundle it loads, is reached through nginx. On Redis Streams, a client that loses its
//! connection to one node recovers its socket through the other (`recovery.mjs`).
#![allow(clippy::unwrap_used)]

use std::{collections::BTreeSet, sync::Once};

use belfry_tests::{
    http,
    processes::{Nginx, PostgresServer, RedisServer, Spawned, free_port},
    run_node,
};
use serde_json::{Value, json};
use tokio::process::Command;

#[path = "../../npm.rs"]
mod npm;

/// A node of the example, its backend named by `backend` (environment variables).
async fn node(name: &str, port: u16, backend: &[(&str, String)]) -> Spawned {
    // The browser bundle, installed before the nodes start (each would otherwise install it on
    // its first run, within the time the test gives it to start), once for every test.
    static BUNDLE: Once = Once::new();
    BUNDLE.call_once(|| {
        npm::socket_io_client_bundle(std::path::Path::new(env!("CARGO_MANIFEST_DIR")), |_| {})
            .unwrap();
    });
    let mut command = Command::new(env!("CARGO_BIN_EXE_cluster"));
    command
        .env("NODE_NAME", name)
        .env("PORT", port.to_string())
        .envs(backend.iter().cloned())
        .env("RUST_LOG", "warn");
    let node = Spawned::start(command, "the cluster example").await;
    assert_eq!(
        node.first_line,
        format!("node {name} on http://127.0.0.1:{port}")
    );
    node
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_behind_nginx_stay_on_their_node_and_hear_every_node() {
    let redis = RedisServer::start().await;
    behind_nginx(&[("REDIS_URL", redis.url())], "Redis").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_clients_on_postgres() {
    let postgres = PostgresServer::start().await;
    behind_nginx(
        &[
            ("ADAPTER", "postgres".into()),
            ("DATABASE_URL", postgres.url()),
        ],
        "PostgreSQL",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_clients_on_redis_streams() {
    let redis = RedisServer::start().await;
    behind_nginx(
        &[("ADAPTER", "streams".into()), ("REDIS_URL", redis.url())],
        "Redis Streams",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_streams_a_client_recovers_its_socket_through_the_other_node() {
    let redis = RedisServer::start().await;
    let backend = [("ADAPTER", "streams".into()), ("REDIS_URL", redis.url())];
    let (port_a, port_b) = (free_port(), free_port());
    let _a = node("a", port_a, &backend).await;
    let _b = node("b", port_b, &backend).await;
    // The script beside this file, with the example's own socket.io-client.
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/recovery.mjs");
    let (a, b) = (
        format!("http://127.0.0.1:{port_a}"),
        format!("http://127.0.0.1:{port_b}"),
    );
    let result = run_node(script, &[&a, &b]).await;
    assert_eq!(result["error"], Value::Null, "{result:#}");
    assert_eq!(
        result["firstWelcome"],
        json!({ "node": "a", "recovered": false }),
        "{result:#}"
    );
    // Back through node b: the same socket, which node b's welcome says was recovered.
    assert_eq!(
        result["secondWelcome"],
        json!({ "node": "b", "recovered": true }),
        "{result:#}"
    );
    assert_eq!(result["recovered"], true, "{result:#}");
    assert_eq!(result["secondId"], result["firstId"], "{result:#}");
    // Every message once, in order, the one said while it was away included, each with its
    // stream entry id as offset.
    let heard = result["heard"].as_array().unwrap();
    let texts: Vec<&str> = heard.iter().map(|h| h["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["before", "missed", "after"], "{result:#}");
    for h in heard {
        let offset = h["offset"].as_str().unwrap_or_default();
        assert!(
            offset.split_once('-').is_some_and(|(ms, seq)| {
                [ms, seq]
                    .iter()
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            }),
            "{result:#}"
        );
    }
}

/// Two nodes on `backend` (the page says they share `shared`), nginx in front, and the clients.
async fn behind_nginx(backend: &[(&str, String)], shared: &str) {
    let (port_a, port_b, port) = (free_port(), free_port(), free_port());
    let _a = node("a", port_a, backend).await;
    let _b = node("b", port_b, backend).await;
    // The example's own config, on this test's ports.
    let config = include_str!("../nginx.conf")
        .replace("127.0.0.1:3101", &format!("127.0.0.1:{port_a}"))
        .replace("127.0.0.1:3102", &format!("127.0.0.1:{port_b}"))
        .replace("listen 127.0.0.1:3100", &format!("listen 127.0.0.1:{port}"));
    let _nginx = Nginx::start(&config, port).await;

    // The client: the page, from either node, and the script it loads.
    let nginx = ([127, 0, 0, 1], port).into();
    let page = http(nginx, "GET", "/", &[], b"").await;
    assert_eq!(page.status, 200, "{}", page.text());
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html"),
        "{page:?}"
    );
    let page = page.text();
    assert!(
        page.contains("served by node <b id=\"page-node\">a</b>")
            || page.contains("served by node <b id=\"page-node\">b</b>"),
        "{page}"
    );
    assert!(page.contains(&format!("through {shared}.")), "{page}");
    let script = "/socket.io/socket.io.min.js";
    assert!(
        page.contains(&format!("<script src=\"{script}\">")),
        "{page}"
    );
    let bundle = http(nginx, "GET", script, &[], b"").await;
    assert_eq!(bundle.status, 200);
    assert!(
        bundle
            .header("content-type")
            .unwrap()
            .contains("javascript"),
        "{:?}",
        bundle.headers
    );
    assert!(bundle.text().contains("io"), "an empty bundle");

    let result = run_node("cluster_nginx.mjs", &[&format!("http://127.0.0.1:{port}")]).await;
    assert_eq!(result["error"], Value::Null, "{result:#}");
    let clients = &result["clients"];
    let node_of = |name: &str| clients[name]["welcome"].as_str().unwrap().to_owned();

    // Every request of a client reached the node that welcomed it; each kept its transport.
    for (name, transport) in [
        ("p1", "polling"),
        ("p2", "polling"),
        ("p3", "polling"),
        ("p4", "polling"),
        ("u1", "websocket"),
        ("u2", "websocket"),
        ("w1", "websocket"),
    ] {
        let client = &clients[name];
        assert_eq!(client["transport"], transport, "{name}: {result:#}");
        let answers = client["whoami"].as_array().unwrap();
        assert!(!answers.is_empty(), "{name}: {result:#}");
        assert!(
            answers.iter().all(|node| *node == client["welcome"]),
            "{name} left its node: {result:#}"
        );
    }
    // nginx spread the new sessions over both nodes.
    let nodes: BTreeSet<String> = ["p1", "p2", "p3", "p4"].map(node_of).into();
    assert_eq!(nodes, BTreeSet::from(["a".to_owned(), "b".to_owned()]));

    // Without the cookie, a polling session's requests reach the other node, which does not
    // know it: the client fails.
    // (Its second request, the CONNECT, lands on the other node and gets Node's 400.)
    let without = result["withoutCookies"].as_str().unwrap();
    assert!(without.starts_with("connect_error"), "{result:#}");

    // Both broadcasts reached every client once, on both nodes.
    let expected = vec![
        format!("{}:hello", node_of("p1")),
        format!("{}:hi", node_of("w1")),
    ];
    for name in ["p1", "p2", "p3", "p4", "u1", "u2", "w1"] {
        let mut got: Vec<String> =
            serde_json::from_value(result["received"][name].clone()).unwrap();
        got.sort();
        let mut want = expected.clone();
        want.sort();
        assert_eq!(got, want, "{name}: {result:#}");
    }
    // And the cluster counts its seven sockets from any node.
    assert_eq!(result["count"], 7, "{result:#}");
}
