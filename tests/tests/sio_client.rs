//! The official `socket.io-client` 4.8 (npm) against Belfry: connect over every transport,
//! auth, events and acks both ways, binary, rooms, refusals, ordering, shutdown. Every test runs
//! twice: with the default parser, and with `socket.io-msgpack-parser` on both sides.
#![allow(clippy::unwrap_used)]

/// Runs each test with each parser: `default::<test>` and `msgpack::<test>`.
macro_rules! with_each_parser {
    ($($test:ident),* $(,)?) => {
        mod default {
            use super::Parser;
            $(#[tokio::test] async fn $test() { super::$test(Parser::Default).await })*
        }
        mod msgpack {
            use super::Parser;
            $(#[tokio::test] async fn $test() { super::$test(Parser::Msgpack).await })*
        }
    };
}

with_each_parser!(
    basic_on_every_transport,
    rooms_and_broadcasts,
    refused_connections,
    ten_thousand_events_keep_their_order,
    close_disconnects_with_server_shutting_down,
    broadcast_acks_on_any_extensions_and_disconnecting,
    handshake_and_fetch_sockets,
    listeners_once_packet_middleware_and_outgoing,
    a_slow_handler_delays_only_its_own_socket,
    buffers_anywhere_fill_bytes_fields,
    a_burst_of_events_gets_every_ack,
);

use belfry::DisconnectReason;
use belfry::core::parser::Parser;
use belfry_tests::scenarios::start_with;
use serde_json::json;

async fn basic_on_every_transport(parser: Parser) {
    for transport in ["polling", "websocket", "default"] {
        let mut server = start_with(parser).await;
        let r = server.run("basic", transport).await;
        let reasons = &mut server.reasons;
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
        // The msgpack parser sends every packet as one binary message.
        let kinds = match parser {
            Parser::Msgpack => json!(["binary"]),
            _ => json!(["binary", "text"]),
        };
        assert_eq!(r["messageKinds"], kinds, "{transport}");
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

async fn rooms_and_broadcasts(parser: Parser) {
    let server = start_with(parser).await;
    let r = server.run("rooms", "websocket").await;
    assert!(r.get("error").is_none(), "{r}");
    // `socket.to(room)` excludes the sender; `io.emit` reaches everyone, once.
    assert_eq!(r["got"]["a"], json!(["hello r1", "to everyone"]));
    assert_eq!(r["got"]["b"], json!(["hello r1", "from a", "to everyone"]));
    assert_eq!(r["got"]["c"], json!(["to everyone"]));
}

async fn refused_connections(parser: Parser) {
    let server = start_with(parser).await;
    let r = server.run("refusals", "default").await;
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
    // Any error refuses with its message (no data).
    assert_eq!(
        r["ioError"],
        json!({"message": "disk on fire", "data": null})
    );
}

async fn ten_thousand_events_keep_their_order(parser: Parser) {
    let server = start_with(parser).await;
    let r = server.run("ordering", "websocket").await;
    assert!(r.get("error").is_none(), "{r}");
    assert_eq!(r["ordered"], true);
}

async fn close_disconnects_with_server_shutting_down(parser: Parser) {
    let mut server = start_with(parser).await;
    let r = server.run("shutdown", "websocket").await;
    let reasons = &mut server.reasons;
    assert!(r.get("error").is_none(), "{r}");
    assert_eq!(r["reason"], "transport close");
    assert_eq!(
        reasons.recv().await,
        Some(DisconnectReason::ServerShuttingDown)
    );
}

async fn broadcast_acks_on_any_extensions_and_disconnecting(parser: Parser) {
    let mut server = start_with(parser).await;
    let r = server.run("extras", "websocket").await;
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

async fn handshake_and_fetch_sockets(parser: Parser) {
    let server = start_with(parser).await;
    let r = server.run("handshake", "polling").await;
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

async fn listeners_once_packet_middleware_and_outgoing(parser: Parser) {
    let server = start_with(parser).await;
    let r = server.run("listeners", "websocket").await;
    assert!(r.get("error").is_none(), "{r}");
    // The packet middleware refused the event: its listener never ran, the ack got the error.
    assert_eq!(r["forbidden"], json!({"error": "forbidden"}));
    // A refusal with data answers with both.
    assert_eq!(
        r["limited"],
        json!({"error": "slow down", "data": {"retry": 5}})
    );
    assert_eq!(
        r["log"],
        json!([
            "multi:a:1",
            "multi:b:1",
            "once",
            "removable",
            "out:pong-out"
        ])
    );
}

async fn a_slow_handler_delays_only_its_own_socket(parser: Parser) {
    let server = start_with(parser).await;
    for transport in ["websocket", "polling"] {
        // As in Node: a's next event does not wait for its slow handler.
        let r = server.run("slow", transport).await;
        assert!(r.get("error").is_none(), "{r}");
        let order: Vec<&str> = r["order"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(order.len(), 3, "{r}");
        assert_eq!(order[2], "a:slow done", "{transport}: {r}");
        // With serial handlers, b is answered while a's slow handler runs, and a's next event
        // waits for it.
        let r = server.run("slowSerial", transport).await;
        assert!(r.get("error").is_none(), "{r}");
        assert_eq!(
            r["order"],
            json!(["b:fast done", "a:slow done", "a:fast done"]),
            "{transport}"
        );
    }
}

async fn buffers_anywhere_fill_bytes_fields(parser: Parser) {
    let server = start_with(parser).await;
    for transport in ["websocket", "polling"] {
        let r = server.run("binary", transport).await;
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

/// A client that writes 500 events at once (socket.io-client flushing its buffer after a
/// connect) gets 500 acks: answers that fill the send queue before the writer runs wait for it,
/// they are not dropped.
async fn a_burst_of_events_gets_every_ack(parser: Parser) {
    let server = start_with(parser).await;
    for transport in ["websocket", "polling"] {
        // Handlers that answer at once (on the reader's task), and handlers that wait first
        // (the rest of the burst then runs on the socket's own task).
        // Handlers that wait answer in the order they finish (as in Node); serial handlers,
        // in the order of the events.
        for scenario in ["ackBurst", "ackBurstLater", "ackBurstLaterSerial"] {
            let r = server.run(scenario, transport).await;
            assert!(r.get("error").is_none(), "{scenario} {transport}: {r}");
            assert_eq!(r["acks"], 500, "{scenario} {transport}");
            if scenario != "ackBurstLater" {
                assert_eq!(r["inOrder"], true, "{scenario} {transport}");
            }
        }
    }
}
