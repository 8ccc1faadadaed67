//! The official `socket.io-client` 4.8 (npm) against Belfry: connect over every transport,
//! auth, events and acks both ways, binary, rooms, refusals, ordering, shutdown.
#![allow(clippy::unwrap_used)]

use belfry::DisconnectReason;
use belfry_tests::{run_node, scenarios::start};
use serde_json::json;

#[tokio::test]
async fn basic_on_every_transport() {
    for transport in ["polling", "websocket", "default"] {
        let mut server = start().await;
        let (url, reasons) = (server.url.clone(), &mut server.reasons);
        let r = run_node("sio_client.mjs", &[&url, "basic", transport]).await;
        assert!(r.get("error").is_none(), "{transport}: {r}");
        assert_eq!(
            r["welcome"],
            json!({"idMatches": true, "auth": {"token": "abc"}}),
            "{transport}"
        );
        assert_eq!(
            r["echo"],
            json!({"a": [1, "two", {"three": 3}]}),
            "{transport}"
        );
        assert_eq!(r["ack"], json!({"x": "é"}), "{transport}");
        assert_eq!(r["sum"], 42, "{transport}");
        // A failed extractor answers the ack with the reason.
        let refused = r["refused"]["error"].as_str().unwrap();
        assert!(
            refused.contains("invalid event data"),
            "{transport}: {refused}"
        );
        assert_eq!(r["bin"], json!([[1, 2, 3], [255]]), "{transport}");
        assert_eq!(r["answer"], 42, "{transport}");
        assert_eq!(r["disconnectReason"], "io server disconnect", "{transport}");
        let expected = if transport == "polling" {
            "polling"
        } else {
            "websocket"
        };
        if transport != "default" {
            assert_eq!(r["transport"], expected);
        }
        assert_eq!(
            reasons.recv().await,
            Some(DisconnectReason::ServerNamespaceDisconnect)
        );
    }
}

#[tokio::test]
async fn rooms_and_broadcasts() {
    let server = start().await;
    let url = server.url.clone();
    let r = run_node("sio_client.mjs", &[&url, "rooms", "websocket"]).await;
    assert!(r.get("error").is_none(), "{r}");
    // `socket.to(room)` excludes the sender; `io.emit` reaches everyone, once.
    assert_eq!(r["got"]["a"], json!(["hello r1", "to everyone"]));
    assert_eq!(r["got"]["b"], json!(["hello r1", "from a", "to everyone"]));
    assert_eq!(r["got"]["c"], json!(["to everyone"]));
}

#[tokio::test]
async fn refused_connections() {
    let server = start().await;
    let url = server.url.clone();
    let r = run_node("sio_client.mjs", &[&url, "refusals", "default"]).await;
    assert!(r.get("error").is_none(), "{r}");
    assert_eq!(r["unknown"], "Invalid namespace");
    assert!(
        r["typed"]
            .as_str()
            .unwrap()
            .contains("missing field `token`"),
        "{r}"
    );
    assert_eq!(r["typedOk"], true);
    assert_eq!(
        r["guarded"],
        json!({"message": "not authorized", "data": {"code": 401}})
    );
    assert_eq!(r["early"], "from the first middleware");
    assert_eq!(r["guardedOk"], true);
}

#[tokio::test]
async fn ten_thousand_events_keep_their_order() {
    let server = start().await;
    let url = server.url.clone();
    let r = run_node("sio_client.mjs", &[&url, "ordering", "websocket"]).await;
    assert!(r.get("error").is_none(), "{r}");
    assert_eq!(r["ordered"], true);
}

#[tokio::test]
async fn close_disconnects_with_server_shutting_down() {
    let mut server = start().await;
    let (url, reasons) = (server.url.clone(), &mut server.reasons);
    let r = run_node("sio_client.mjs", &[&url, "shutdown", "websocket"]).await;
    assert!(r.get("error").is_none(), "{r}");
    assert_eq!(r["reason"], "transport close");
    assert_eq!(
        reasons.recv().await,
        Some(DisconnectReason::ServerShuttingDown)
    );
}

#[tokio::test]
async fn broadcast_acks_on_any_extensions_and_disconnecting() {
    let mut server = start().await;
    let r = run_node("sio_client.mjs", &[&server.url, "extras", "websocket"]).await;
    assert!(r.get("error").is_none(), "{r}");
    // Three voters: one yes, one no, one silent until the 500 ms timeout.
    assert_eq!(r["poll"], json!({"answers": 3, "yes": 1, "timeouts": 1}));
    // on_any saw every event of socket `a`, in order, before their own handlers ran.
    assert_eq!(r["seen"], json!(["join", "join", "poll", "seen"]));
    // `disconnecting` still saw the rooms of `a`.
    assert_eq!(
        server.disconnecting_rooms.recv().await,
        Some(vec!["other".to_owned(), "voters".to_owned()])
    );
    assert_eq!(
        server.reasons.recv().await,
        Some(DisconnectReason::ClientNamespaceDisconnect)
    );
}

#[tokio::test]
async fn handshake_and_fetch_sockets() {
    let server = start().await;
    let r = run_node("sio_client.mjs", &[&server.url, "handshake", "polling"]).await;
    assert!(r.get("error").is_none(), "{r}");
    let h = &r["handshake"];
    assert_eq!(h["auth"], json!({"user": "ann"}));
    assert_eq!(h["query"]["room"], "x");
    assert_eq!(h["query"]["EIO"], "4");
    assert_eq!(h["query"]["transport"], "polling");
    assert_eq!(h["headers"]["x-test"], "yes");
    assert_eq!(h["address"], "127.0.0.1");
    assert_eq!(h["xdomain"], false);
    assert_eq!(h["secure"], false);
    assert!(h["url"].as_str().unwrap().starts_with("/socket.io/?"));
    assert!(h["issued"].as_u64().unwrap() > 1_700_000_000_000);
    assert!(
        h["time"]
            .as_str()
            .unwrap()
            .ends_with("GMT+0000 (Coordinated Universal Time)")
    );
    // Both sockets of the room, each with its own room and "pair".
    let ids: Vec<&str> = r["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(r["fetched"], json!([[ids[0], 2], [ids[1], 2]]));
}

#[tokio::test]
async fn listeners_once_packet_middleware_and_outgoing() {
    let server = start().await;
    let r = run_node("sio_client.mjs", &[&server.url, "listeners", "websocket"]).await;
    assert!(r.get("error").is_none(), "{r}");
    // The packet middleware refused the event: its listener never ran, the ack got the error.
    assert_eq!(r["forbidden"], json!({"error": "forbidden"}));
    assert_eq!(
        r["log"],
        json!(["multi:a:1", "multi:b:1", "once", "out:pong-out"])
    );
}

#[tokio::test]
async fn a_slow_handler_delays_only_its_own_socket() {
    let server = start().await;
    let r = run_node("sio_client.mjs", &[&server.url, "slow", "websocket"]).await;
    assert!(r.get("error").is_none(), "{r}");
    // b is answered while a's slow handler runs; a's next event waits for it (order kept).
    assert_eq!(
        r["order"],
        json!(["b:fast done", "a:slow done", "a:fast done"])
    );
}

#[tokio::test]
async fn buffers_anywhere_fill_bytes_fields() {
    let server = start().await;
    for transport in ["websocket", "polling"] {
        let r = run_node("sio_client.mjs", &[&server.url, "binary", transport]).await;
        assert!(r.get("error").is_none(), "{transport}: {r}");
        assert_eq!(
            r["upload"],
            json!(["a.png", [9, 8, 7], [1, 2]]),
            "{transport}"
        );
        assert_eq!(r["given"], json!([4, 5]), "{transport}");
        // `Bytes` nested in emitted data reach the client as Buffers, in place.
        assert_eq!(
            r["file"],
            json!({"name": "b.bin", "isBuffer": true, "data": [1, 2, 3], "extra": [9]}),
            "{transport}"
        );
    }
}
