//! `belfry::admin` speaks the Admin UI's protocol: socket.io-client 4.8 (as `@socket.io/admin-ui`
//! uses it) logs in with basic auth, gets its session id before CONNECT, the config, every
//! socket, live reports of sockets, rooms and events, and `server_stats`; its commands make
//! sockets join, leave, receive an event and disconnect (`tests/js/admin_client.mjs`). The UI
//! itself runs in Chromium in `examples/admin-ui/tests/browser.rs`.
#![allow(clippy::unwrap_used)]

use belfry::{
    AckSender, SocketIo, SocketRef,
    admin::{AdminAuth, AdminOptions},
    extract::Data,
};
use belfry_tests::{run_node, serve_with_connect_info};
use serde_json::{Value, json};

/// bcrypt of "changeit".
const HASH: &str = "$2b$10$iY.XPxgARsemH1.30mM5MeOuBRmC8xu0DmM9dg8KlwYzO4plFv/Ka";

#[tokio::test]
async fn the_admin_ui_protocol() {
    let (layer, io) = SocketIo::new_layer();
    io.ns(
        "/",
        |socket: SocketRef, Data(auth): Data<Value>| async move {
            socket.join(auth["room"].as_str().unwrap().to_owned());
            socket.on(
                "say",
                |socket: SocketRef, Data(text): Data<String>| async move {
                    socket.emit("said", &text).unwrap();
                },
            );
            socket.on("set-data", |socket: SocketRef, ack: AckSender| async move {
                socket.set_data(&json!({ "score": 1 })).unwrap();
                ack.send(&()).unwrap();
            });
        },
    );
    belfry::admin::instrument(&io, AdminOptions::new(AdminAuth::basic("admin", HASH))).unwrap();
    let addr = serve_with_connect_info(axum::Router::new().layer(layer)).await;
    let r = run_node("admin_client.mjs", &[&format!("http://{addr}")]).await;
    assert!(r["error"].is_null(), "{r:#}");

    assert_eq!(r["refused"], "invalid credentials");
    assert_eq!(r["order"], json!(["session", "connect"]));
    let session = r["sessionId"].as_str().unwrap();
    assert!(session.len() == 16 && session.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(
        r["features"],
        json!([
            "EMIT",
            "JOIN",
            "LEAVE",
            "DISCONNECT",
            "MJOIN",
            "MLEAVE",
            "MDISCONNECT",
            "AGGREGATED_EVENTS",
            "ALL_EVENTS"
        ])
    );

    // all_sockets: u1 as Node serializes a socket.
    let (u1, u2) = (r["u1"].as_str().unwrap(), r["u2"].as_str().unwrap());
    let all = r["allSockets"].as_array().unwrap();
    let s1 = all.iter().find(|s| s["id"] == u1).unwrap();
    assert_eq!(s1["nsp"], "/");
    assert_eq!(s1["clientId"].as_str().unwrap().len(), 12);
    assert!(["polling", "websocket"].contains(&s1["transport"].as_str().unwrap()));
    assert_eq!(s1["handshake"]["address"], "127.0.0.1");
    assert_eq!(s1["handshake"]["query"]["EIO"], "4");
    assert_eq!(s1["data"], json!({}));
    let mut rooms: Vec<&str> = s1["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    rooms.sort_unstable();
    let mut expected = vec!["lobby", u1];
    expected.sort_unstable();
    assert_eq!(rooms, expected);

    // Live reports, each with an ISO date last.
    let live = r["live"].as_array().unwrap();
    let find = |event: &str, check: &dyn Fn(&[Value]) -> bool| {
        live.iter()
            .map(|entry| entry.as_array().unwrap())
            .find(|entry| entry[0] == event && check(&entry[1..]))
            .unwrap_or_else(|| panic!("no {event} in {live:#?}"))
            .last()
            .unwrap()
            .as_str()
            .unwrap()
            .ends_with('Z')
    };
    assert!(find("socket_connected", &|a| a[0]["id"] == u2
        && a[0]["nsp"] == "/"));
    assert!(find("room_joined", &|a| a[..3]
        == [json!("/"), json!("vip"), json!(u2)]));
    assert!(find("event_received", &|a| a[..3]
        == [json!("/"), json!(u2), json!(["say", "hi"])]));
    assert!(find("event_sent", &|a| a[..3]
        == [json!("/"), json!(u2), json!(["said", "hi"])]));
    assert!(find("room_joined", &|a| a[..3]
        == [json!("/"), json!("extra"), json!(u1)]));
    assert!(find("room_left", &|a| a[..3]
        == [json!("/"), json!("extra"), json!(u1)]));
    assert!(find("socket_disconnected", &|a| {
        a[..3] == [json!("/"), json!(u2), json!("server namespace disconnect")]
    }));
    // The data update (a transport upgrade is reported as `socket_updated` too).
    let updated = live
        .iter()
        .find(|entry| entry[0] == "socket_updated" && entry[1].get("data").is_some())
        .unwrap();
    assert_eq!(
        updated[1],
        json!({ "id": u2, "nsp": "/", "data": { "score": 1 } })
    );

    // The commands.
    assert_eq!(r["hello"], json!([1, "two"]));
    assert_eq!(r["u2Reason"], "io server disconnect");

    // server_stats.
    let stats = &r["stats"];
    for key in [
        "serverId",
        "hostname",
        "pid",
        "uptime",
        "clientsCount",
        "pollingClientsCount",
    ] {
        assert!(!stats[key].is_null(), "{key} in {stats}");
    }
    assert_eq!(stats["pid"], std::process::id());
    let namespaces = stats["namespaces"].as_array().unwrap();
    assert!(
        namespaces.contains(&json!({ "name": "/", "socketsCount": 1 })),
        "{stats}"
    );
    assert!(namespaces.iter().any(|ns| ns["name"] == "/admin"));
    let kinds: Vec<&str> = stats["aggregatedEvents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    for kind in [
        "rawConnection",
        "packetsIn",
        "bytesIn",
        "packetsOut",
        "bytesOut",
    ] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }

    assert_eq!(r["sessionReused"], true);
}

/// The same conversation on Node's socket.io instrumented by `@socket.io/admin-ui` and on
/// Belfry (`tests/js/admin_diff.mjs`): the packets counted out (every Engine.IO packet with
/// data once the connection is open: CONNECT, acks, attachments), the upgrade's
/// `socket_updated`, binary arguments in `event_received`/`event_sent`.
#[tokio::test]
async fn the_admin_ui_counts_and_reports_as_node_does() {
    let (layer, io) = SocketIo::new_layer();
    io.ns("/", |socket: SocketRef| async move {
        socket.on("ping2", |ack: AckSender| async move {
            ack.send(&"pong").unwrap();
        });
        socket.on(
            "bin",
            |socket: SocketRef, Data(value): Data<Tagged>| async move {
                socket.emit("bin", &value).unwrap();
            },
        );
    });
    belfry::admin::instrument(&io, AdminOptions::new(AdminAuth::basic("admin", HASH))).unwrap();
    let addr = serve_with_connect_info(axum::Router::new().layer(layer)).await;
    let r = run_node("admin_diff.mjs", &[&format!("http://{addr}")]).await;
    assert!(r["error"].is_null(), "{r:#}");
    let (node, belfry) = (&r["node"], &r["belfry"]);
    for key in [
        "pong",
        "echo",
        "userPackets",
        "adminEvents",
        "live",
        "packetsOutLessStats",
    ] {
        assert_eq!(node[key], belfry[key], "{key}: node | belfry\n{r:#}");
    }
}

/// `{tag, data}` with `data` binary.
#[derive(serde::Serialize, serde::Deserialize)]
struct Tagged {
    tag: String,
    data: bytes::Bytes,
}
