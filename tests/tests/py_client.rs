//! The official `python-socketio` client (PyPI) against Belfry, over WebSocket and polling:
//! auth, events and acks both ways, binary, a server disconnect.
#![allow(clippy::unwrap_used)]

use belfry::{DisconnectReason, core::parser::Parser};
use belfry_tests::{run_python, scenarios::start_with};
use serde_json::json;

#[tokio::test]
async fn python_client_on_both_transports() {
    on_both_transports(Parser::Default, "default").await;
}

/// python-socketio's `serializer="msgpack"` speaks the msgpack parser's format.
#[tokio::test]
async fn python_client_with_the_msgpack_parser() {
    on_both_transports(Parser::Msgpack, "msgpack").await;
}

async fn on_both_transports(parser: Parser, serializer: &str) {
    for transport in ["websocket", "polling"] {
        let mut server = start_with(parser).await;
        let (url, reasons) = (server.url.clone(), &mut server.reasons);
        let r = run_python("sio_client.py", &[&url, transport, serializer]).await;
        assert!(r.get("error").is_none(), "{transport}: {r}");
        assert_eq!(r["transport"], transport);
        assert_eq!(
            r["welcome"],
            json!({"idMatches": true, "auth": {"token": "py"}}),
            "{transport}"
        );
        assert_eq!(r["echo"], json!({"a": [1, "two"]}), "{transport}");
        assert_eq!(r["sum"], 42, "{transport}");
        assert_eq!(r["bin"], json!([[1, 2, 3], [255]]), "{transport}");
        assert_eq!(r["answer"], 42, "{transport}");
        // python-socketio's name for Node's "io server disconnect".
        assert_eq!(r["disconnectReason"], "server disconnect", "{transport}");
        assert_eq!(
            reasons.recv().await,
            Some(DisconnectReason::ServerNamespaceDisconnect)
        );
    }
}
