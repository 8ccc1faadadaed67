//! The chat example in headless Chromium (Debian's `chromium`, driven by `playwright-core` from
//! npm): two people join a room and chat, see each other typing, send an image; the server is
//! killed and restarted and both pages reconnect and rejoin by themselves. Screenshots land in
//! `tests/output/chat/`.
#![allow(clippy::unwrap_used)]

use belfry_tests::run_node;
use serde_json::json;

#[tokio::test]
async fn two_pages_chat_and_survive_a_server_restart() {
    belfry_tests::browser::require_chromium();
    let port = belfry_tests::processes::free_port();
    let out = belfry_tests::browser::output_dir("chat");
    let result = run_node(
        "chat_browser.mjs",
        &[
            env!("CARGO_BIN_EXE_chat"),
            &port.to_string(),
            out.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(result["error"], serde_json::Value::Null, "{result:#}");

    // The official bundle, served by Belfry with its ETag.
    assert_eq!(result["bundle"]["status"], 200);
    assert!(result["bundle"]["etag"].as_str().unwrap().starts_with('"'));
    // Everyone lands in #general, then both open #rust and see each other there.
    assert_eq!(result["firstRoom"], "general");
    assert_eq!(result["aliceMembers"], json!(["alice (you)", "bob"]));
    assert_eq!(result["bobMembers"], json!(["alice", "bob (you)"]));
    // Volatile "is typing", messages both ways, the delivery tick from the ack.
    assert_eq!(result["bobTyping"], "alice is typing…");
    assert_eq!(result["bobSawAlice"], "message");
    assert_eq!(result["aliceTick"], "✓");
    assert_eq!(result["aliceSawBob"], "message");
    assert_eq!(result["generalOnAlice"], json!([]));
    // The image crossed as a binary attachment and decodes to the same picture.
    assert_eq!(
        result["bobImage"],
        json!({"width": 48, "height": 32, "alt": "square.png"})
    );
    // Server killed: the banner, and no typing into the void.
    assert_eq!(result["bannerWhileDown"], "Connection lost, reconnecting…");
    assert_eq!(result["composerDisabledWhileDown"], true);
    // Restarted: the pages reconnected, rejoined #rust, and chat goes on.
    assert_eq!(result["aliceMembersAfter"], json!(["alice (you)", "bob"]));
    assert_eq!(result["aliceSawAfterRestart"], "message");
    assert_eq!(
        result["aliceMessages"],
        json!(["hello bob", "hi alice!", "back again"])
    );
    for shot in ["screenshot", "screenshotAfterRestart"] {
        let path = result[shot].as_str().unwrap();
        let png = std::fs::read(path).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "{path}");
    }
}
