//! Dynamic namespaces with the official `socket.io-client`: children created by matching
//! CONNECTs, the parent's middlewares, a parent broadcast reaching every child, and children
//! removed once empty.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use belfry::{ConnectError, SocketIo, SocketRef, core::parser::Parser, extract::Data};
use belfry_tests::{run_node, serve};
use serde_json::{Value, json};

#[tokio::test]
async fn dynamic_namespaces() {
    dynamic_namespaces_with(Parser::Default).await;
}

#[tokio::test]
async fn dynamic_namespaces_with_the_msgpack_parser() {
    dynamic_namespaces_with(Parser::Msgpack).await;
}

async fn dynamic_namespaces_with(parser: Parser) {
    let (layer, io) = SocketIo::builder().parser(parser).build_layer();
    let rooms = io
        .dynamic_ns(
            |name| name.starts_with("/room-"),
            |socket: SocketRef| async move {
                let _ = socket.emit("joined", socket.ns());
            },
        )
        .middleware(|Data(auth): Data<Value>| async move {
            if auth["ok"] == true {
                Ok(())
            } else {
                Err(ConnectError::new("no"))
            }
        });
    let addr = serve(axum::Router::new().layer(layer)).await;
    let url = format!("http://{addr}");
    let name = belfry_tests::scenarios::parser_name(parser);
    let client = tokio::spawn(async move {
        run_node("sio_client.mjs", &[&url, "dynamic", "websocket", name]).await
    });

    // Once both children exist (the refused one is removed at once), broadcast on the parent.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut children = rooms.children();
        children.sort();
        if children == ["/room-1", "/room-2"] {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "children: {children:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(rooms.emit("all", &"to every child").unwrap(), 2);

    let r = client.await.unwrap();
    assert!(r.get("error").is_none(), "{r}");
    assert_eq!(r["joined"], json!(["/room-1", "/room-2"]));
    assert_eq!(r["refused"], "no");
    assert_eq!(r["other"], "Invalid namespace");
    assert_eq!(r["all"], json!(["to every child", "to every child"]));
    // Every child is gone with its last socket; only `/` is left.
    assert_eq!(rooms.children(), Vec::<String>::new());
    assert_eq!(io.namespace_count(), 1);
}

/// Row 30 of the bad-input table: many distinct dynamic names, each joined then left, leave no
/// namespace behind.
#[tokio::test]
async fn row30_dynamic_children_do_not_pile_up() {
    let (layer, io) = SocketIo::new_layer();
    let parent = io.dynamic_ns(
        |name| name.starts_with("/d-"),
        |_socket: SocketRef| async {},
    );
    let addr = serve(axum::Router::new().layer(layer)).await;
    let (mut ws, _) = belfry_tests::RawWs::open(addr).await;
    for i in 0..5_000 {
        ws.frame(0x81, format!("40/d-{i},").as_bytes()).await;
        let reply = loop {
            let (_, frame) = ws.read_frame().await.unwrap();
            if frame != b"2" {
                break frame;
            }
        };
        assert!(reply.starts_with(format!("40/d-{i},{{\"sid\":").as_bytes()));
        ws.frame(0x81, format!("41/d-{i},").as_bytes()).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !parent.children().is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(parent.children(), Vec::<String>::new());
    assert_eq!(io.namespace_count(), 1);
}

/// Registering a namespace again replaces its connect handler only: its live sockets still get
/// its broadcasts, and new sockets run the new handler.
#[tokio::test]
async fn registering_a_namespace_again_keeps_it() {
    let (layer, io) = SocketIo::new_layer();
    io.ns("/x", |socket: SocketRef| async move {
        let _ = socket.emit("hello", &"first");
    });
    let addr = serve(axum::Router::new().layer(layer)).await;
    let open = |addr| async move {
        let open =
            belfry_tests::http(addr, "GET", "/socket.io/?EIO=4&transport=polling", &[], b"").await;
        let sid = serde_json::from_str::<Value>(&open.text()[1..]).unwrap()["sid"]
            .as_str()
            .unwrap()
            .to_owned();
        let path = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
        let posted = belfry_tests::http(addr, "POST", &path, &[], b"40/x,").await;
        assert_eq!(posted.text(), "ok");
        let mut got = String::new();
        while !got.contains("hello") {
            got.push_str(
                &belfry_tests::http(addr, "GET", &path, &[], b"")
                    .await
                    .text(),
            );
        }
        (path, got)
    };
    let (first, got) = open(addr).await;
    assert!(got.contains(r#"42/x,["hello","first"]"#), "{got}");
    io.ns("/x", |socket: SocketRef| async move {
        let _ = socket.emit("hello", &"second");
    });
    let (_, got) = open(addr).await;
    assert!(got.contains(r#"42/x,["hello","second"]"#), "{got}");
    // Both sockets are in the namespace the handles reach.
    assert_eq!(io.of("/x").unwrap().emit("all", &1).unwrap(), 2);
    let got = belfry_tests::http(addr, "GET", &first, &[], b"")
        .await
        .text();
    assert_eq!(got, r#"42/x,["all",1]"#);
}

/// One client in many namespaces at once, past the few a connection keeps in a short list:
/// every packet still reaches the socket of its own namespace; a namespace left, from the
/// short list or from the map, is left on the server (the child namespace goes with its last
/// socket) while the others go on answering; joined again, it answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_in_many_namespaces() {
    use belfry::AckSender;
    use belfry_client::ClientBuilder;

    const ACK_WAIT: Duration = Duration::from_secs(5);
    let (layer, io) = SocketIo::new_layer();
    io.ns("/", |_socket: SocketRef| async {});
    let children = io.dynamic_ns(
        |name| name.starts_with("/n-"),
        |socket: SocketRef| async move {
            socket.on("ns?", |socket: SocketRef, ack: AckSender| async move {
                let _ = ack.send(socket.ns());
            });
        },
    );
    let addr = serve(axum::Router::new().layer(layer)).await;
    let root = ClientBuilder::new(format!("http://{addr}"))
        .connect()
        .await
        .unwrap();
    let join = |i: usize| {
        let manager = root.io();
        async move {
            manager
                .socket(format!("/n-{i}").as_str())
                .connect()
                .await
                .unwrap()
        }
    };
    let asked = |socket: &belfry_client::Socket| {
        let socket = socket.clone();
        async move {
            socket
                .emit_with_timeout::<String, _>(ACK_WAIT, "ns?", &())
                .await
                .unwrap()
        }
    };
    let children_become = |n: usize| {
        let children = children.clone();
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            while children.children().len() != n {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{:?}",
                    children.children()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let answering = |sockets: &[Option<belfry_client::Socket>]| {
        let sockets = sockets.to_vec();
        async move {
            for (i, socket) in sockets.iter().enumerate() {
                if let Some(socket) = socket {
                    assert_eq!(asked(socket).await, format!("/n-{i}"));
                }
            }
        }
    };

    // In the short list: five joined, one left.
    let mut sockets = Vec::new();
    for i in 0..5 {
        sockets.push(Some(join(i).await));
    }
    answering(&sockets).await;
    sockets[1].take().unwrap().disconnect().await;
    children_become(4).await;
    answering(&sockets).await;

    // Past the short list: twelve joined (the left one again), two left from the map.
    sockets[1] = Some(join(1).await);
    for i in 5..12 {
        sockets.push(Some(join(i).await));
    }
    children_become(12).await;
    answering(&sockets).await;
    for i in [3, 10] {
        sockets[i].take().unwrap().disconnect().await;
    }
    children_become(10).await;
    answering(&sockets).await;

    sockets[3] = Some(join(3).await);
    children_become(11).await;
    answering(&sockets).await;
    root.disconnect().await;
}
