//! The Admin UI example in headless Chromium (Debian's `chromium`, driven by `playwright-core`
//! from npm): the official `@socket.io/admin-ui` page, served by the example, refuses a wrong
//! password, logs in, and lists the connected sockets and their rooms. Screenshots land in
//! `tests/output/admin-ui/`.
#![allow(clippy::unwrap_used)]

use belfry_tests::run_node;
use serde_json::Value;

#[tokio::test]
async fn the_admin_ui_lists_the_sockets_and_rooms_of_a_running_server() {
    belfry_tests::browser::require_chromium();
    let port = belfry_tests::processes::free_port();
    let out = belfry_tests::browser::output_dir("admin-ui");
    let result = run_node(
        "admin_browser.mjs",
        &[
            env!("CARGO_BIN_EXE_admin-ui"),
            &port.to_string(),
            out.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(result["error"], Value::Null, "{result:#}");
    assert_eq!(result["refused"], "Invalid credentials", "{result:#}");
    let ids: Vec<&str> = result["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap())
        .collect();
    let listed = |key: &str| -> Vec<String> {
        result[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|cell| cell.as_str().unwrap().trim().to_owned())
            .collect()
    };
    // Every client socket is listed (the page's own admin socket is in another namespace).
    let mut sockets = listed("sockets");
    sockets.sort();
    let mut expected: Vec<String> = ids.iter().map(|id| (*id).to_owned()).collect();
    expected.sort();
    assert_eq!(sockets, expected);
    // The public rooms (the page hides each socket's own room by default).
    let mut rooms = listed("rooms");
    rooms.sort();
    assert_eq!(rooms, ["lobby", "vip"]);
    // The room page: its details, and its two members (not the third socket).
    let lobby = listed("lobby");
    assert!(lobby.iter().any(|cell| cell == "Namespace"), "{lobby:?}");
    for (id, member) in ids.iter().zip([true, true, false]) {
        assert_eq!(
            lobby.iter().any(|cell| cell == id),
            member,
            "{id} in {lobby:?}"
        );
    }
    // This server, from its server_stats: healthy, with 4 clients (3 sockets and the page).
    let servers = result["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 1, "{result:#}");
    let row = &servers[0];
    assert_eq!(row[2], result["pid"].to_string().as_str(), "{row}");
    assert_eq!(row[4], "4", "{row}");
    assert_eq!(row[6], "Healthy", "{row}");
    for shot in ["dashboard", "sockets", "rooms", "lobby", "servers"] {
        assert!(out.join(format!("{shot}.png")).exists(), "{shot}.png");
    }
}
