//! The echo example with the official clients: `socket.io-client` (Node) and `python-socketio`
//! send 0, 1 and 3 arguments, `null`, binary nested anywhere and objects whose keys must keep
//! their order; what comes back as the `echo` event and as the ack is what was sent.
#![allow(clippy::unwrap_used)]

use belfry_tests::{processes::Spawned, run_node, run_python};
use serde_json::Value;
use tokio::process::Command;

async fn start() -> (Spawned, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_echo"));
    command.env("PORT", "0");
    let server = Spawned::start(command, "the echo example").await;
    let url = server
        .first_line
        .strip_prefix("echo on ")
        .unwrap()
        .to_owned();
    (server, url)
}

fn check(client: &str, report: &Value) {
    assert!(report.get("error").is_none(), "{client}: {report}");
    let cases = report["cases"].as_object().unwrap();
    assert_eq!(cases.len(), 7, "{client}: {report}");
    for (name, case) in cases {
        assert_eq!(case["event"], case["sent"], "{client} {name}: the event");
        assert_eq!(case["ack"], case["sent"], "{client} {name}: the ack");
    }
}

#[tokio::test]
async fn socket_io_client_gets_its_arguments_back() {
    let (_server, url) = start().await;
    for transport in ["websocket", "polling"] {
        let report = run_node("echo_client.mjs", &[&url, transport]).await;
        check(&format!("socket.io-client {transport}"), &report);
    }
}

#[tokio::test]
async fn python_socketio_gets_its_arguments_back() {
    let (_server, url) = start().await;
    for transport in ["websocket", "polling"] {
        let report = run_python("echo_client.py", &[&url, transport]).await;
        check(&format!("python-socketio {transport}"), &report);
    }
}
