//! The official `engine.io-client` (npm) against Belfry's engine: polling only, websocket only,
//! and polling then upgrade; text, binary, a payload near the limit, and a close from each side.
#![allow(clippy::unwrap_used)]

use belfry_engine::{CloseReason, EngineConfig};
use belfry_tests::{Event, TestServer, run_node};

/// Just under the 1 MB default `max_payload`, once the packet type and JSON framing are added.
const NEAR_LIMIT: &str = "999000";

async fn run(mode: &str, closer: &str) -> (serde_json::Value, CloseReason, Vec<Event>) {
    let mut server = TestServer::start(EngineConfig::default()).await;
    let result = run_node(
        "engine_client.mjs",
        &[&server.url(), mode, NEAR_LIMIT, closer],
    )
    .await;
    assert!(result.get("error").is_none(), "{result}");
    let Event::Connect(sid) = server.next_event().await else {
        panic!("the first event is the connect");
    };
    let reason = server.disconnect_reason(sid.as_str()).await;
    let events = server.drain_events();
    (result, reason, events)
}

fn assert_common(result: &serde_json::Value, open: &str, last: &str) {
    assert_eq!(result["openTransport"], open, "{result}");
    assert_eq!(result["finalTransport"], last, "{result}");
    assert_eq!(
        result["binary"],
        serde_json::json!([1, 2, 3, 255]),
        "{result}"
    );
    assert_eq!(result["bigLength"], 999_000, "{result}");
}

#[tokio::test]
async fn polling_only_and_websocket_only() {
    for transport in ["polling", "websocket"] {
        let (result, reason, _) = run(transport, "server").await;
        assert_common(&result, transport, transport);
        assert_eq!(
            result["texts"],
            serde_json::json!(["hello", "héllo wörld ✓"]),
            "{transport}"
        );
        assert_eq!(result["closeReason"], "transport close", "{transport}");
        assert_eq!(reason, CloseReason::ForcedClose, "{transport}");
    }
}

#[tokio::test]
async fn polling_then_upgrade_keeps_order() {
    let (result, reason, _) = run("upgrade", "server").await;
    assert_common(&result, "polling", "websocket");
    let expected: Vec<String> = (0..100).map(|i| format!("n{i}")).collect();
    assert_eq!(
        result["texts"],
        serde_json::json!(expected),
        "order across the upgrade"
    );
    assert_eq!(reason, CloseReason::ForcedClose);
}

#[tokio::test]
async fn client_close_on_each_transport() {
    for mode in ["polling", "websocket", "upgrade"] {
        let (result, reason, _) = run(mode, "client").await;
        assert_eq!(result["closeReason"], "forced close", "{mode}: {result}");
        assert_eq!(reason, CloseReason::TransportClose, "{mode}");
    }
}
