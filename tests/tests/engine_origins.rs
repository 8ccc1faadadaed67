//! `allowed_origins`: engine requests from pages of other origins are refused (403) on both
//! transports, at the handshake, at the upgrade and on an open session; requests without
//! `Origin` pass. On the wire with raw HTTP, then in headless Chromium from pages of two origins.
#![allow(clippy::unwrap_used)]

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use axum::{Router, http::HeaderValue, response::Html, routing::get};
use belfry::{SocketIo, SocketRef};
use belfry_engine::EngineConfig;
use belfry_tests::{Event, RawResponse, TestServer, http, js_dir, raw, upgrade_request};
use serde_json::json;

const ALLOWED: &str = "https://app.example";
const POLLING: &str = "/socket.io/?EIO=4&transport=polling";

async fn guarded() -> TestServer {
    TestServer::start(
        EngineConfig::builder()
            .allowed_origins([ALLOWED, "http://localhost:5173"])
            .build(),
    )
    .await
}

/// A WebSocket handshake (`query` on the engine path) with `origin`, if any.
async fn upgrade(addr: SocketAddr, query: &str, origin: Option<&str>) -> RawResponse {
    let mut request = upgrade_request(addr, query);
    if let Some(origin) = origin {
        request = request.replacen("\r\n\r\n", &format!("\r\norigin: {origin}\r\n\r\n"), 1);
    }
    raw(addr, request.as_bytes()).await
}

fn assert_polling_forbidden(res: &RawResponse) {
    assert_eq!(res.status, 403, "{res:?}");
    assert_eq!(res.header("content-type"), Some("application/json"));
    assert_eq!(res.json(), json!({"code": 4, "message": "Forbidden"}));
}

fn assert_upgrade_forbidden(res: &RawResponse) {
    assert_eq!(res.status, 403, "{res:?}");
    assert_eq!(res.header("connection"), Some("close"));
    assert_eq!(res.header("content-type"), Some("text/html"));
    assert_eq!(res.text(), "Forbidden");
}

#[tokio::test]
async fn listed_origins_open_sessions_on_both_transports() {
    let mut server = guarded().await;
    for origin in [ALLOWED, "HTTPS://App.Example", "https://app.example:443"] {
        let res = http(server.addr, "GET", POLLING, &[("origin", origin)], b"").await;
        assert_eq!(res.status, 200, "{origin}: {res:?}");
        assert!(res.text().starts_with("0{"), "{res:?}");
    }
    let res = upgrade(
        server.addr,
        "EIO=4&transport=websocket",
        Some("http://localhost:5173"),
    )
    .await;
    assert_eq!(res.status, 101, "{res:?}");
    let opened = server
        .drain_events()
        .into_iter()
        .filter(|event| matches!(event, Event::Connect(_)))
        .count();
    assert_eq!(opened, 4);
}

#[tokio::test]
async fn requests_without_origin_pass() {
    let server = guarded().await;
    let (sid, _) = server.polling_handshake().await;
    assert_eq!(server.post(&sid, b"4hello").await.text(), "ok");
    let res = upgrade(server.addr, "EIO=4&transport=websocket", None).await;
    assert_eq!(res.status, 101, "{res:?}");
    let res = upgrade(
        server.addr,
        &format!("EIO=4&transport=websocket&sid={sid}"),
        None,
    )
    .await;
    assert_eq!(res.status, 101, "{res:?}");
}

#[tokio::test]
async fn another_origin_is_refused_at_the_polling_handshake() {
    let mut server = guarded().await;
    for origin in [
        "https://evil.example",
        "http://app.example",
        "https://app.example:8443",
        "https://app.example.evil.example",
        "null",
    ] {
        let res = http(server.addr, "GET", POLLING, &[("origin", origin)], b"").await;
        assert_polling_forbidden(&res);
    }
    // One listed origin and one other: refused.
    let res = http(
        server.addr,
        "GET",
        POLLING,
        &[("origin", ALLOWED), ("origin", "https://evil.example")],
        b"",
    )
    .await;
    assert_polling_forbidden(&res);
    assert_eq!(server.drain_events(), []);
}

#[tokio::test]
async fn another_origin_is_refused_at_the_websocket_handshake() {
    let mut server = guarded().await;
    let res = upgrade(
        server.addr,
        "EIO=4&transport=websocket",
        Some("https://evil.example"),
    )
    .await;
    assert_upgrade_forbidden(&res);
    assert_eq!(server.drain_events(), []);
}

#[tokio::test]
async fn another_origin_cannot_upgrade_or_poll_an_open_session() {
    let mut server = guarded().await;
    let (sid, _) = server.polling_handshake().await;
    let evil = [("origin", "https://evil.example")];

    let res = upgrade(
        server.addr,
        &format!("EIO=4&transport=websocket&sid={sid}"),
        Some("https://evil.example"),
    )
    .await;
    assert_upgrade_forbidden(&res);
    let path = format!("{POLLING}&sid={sid}");
    assert_polling_forbidden(&http(server.addr, "GET", &path, &evil, b"").await);
    let res = http(
        server.addr,
        "POST",
        &path,
        &[("origin", "https://evil.example")],
        b"4stolen",
    )
    .await;
    assert_polling_forbidden(&res);

    // The session is as it was: its own origin still posts to it, and upgrades it.
    let res = http(server.addr, "POST", &path, &[("origin", ALLOWED)], b"4mine").await;
    assert_eq!(res.text(), "ok");
    let res = upgrade(
        server.addr,
        &format!("EIO=4&transport=websocket&sid={sid}"),
        Some(ALLOWED),
    )
    .await;
    assert_eq!(res.status, 101, "{res:?}");
    let messages: Vec<_> = server
        .drain_events()
        .into_iter()
        .filter_map(|event| match event {
            Event::Message(_, text) => Some(text),
            _ => None,
        })
        .collect();
    assert_eq!(messages, ["mine"]);
}

#[tokio::test]
async fn every_origin_passes_by_default() {
    let server = TestServer::start(EngineConfig::default()).await;
    let res = http(
        server.addr,
        "GET",
        POLLING,
        &[("origin", "https://evil.example")],
        b"",
    )
    .await;
    assert_eq!(res.status, 200);
    let res = upgrade(
        server.addr,
        "EIO=4&transport=websocket",
        Some("https://evil.example"),
    )
    .await;
    assert_eq!(res.status, 101);
}

#[tokio::test]
async fn the_socket_io_builder_sets_it() {
    let (layer, _io) = SocketIo::builder().allowed_origins([ALLOWED]).build_layer();
    let addr = belfry_tests::serve(Router::new().layer(layer)).await;
    let res = http(
        addr,
        "GET",
        POLLING,
        &[("origin", "https://evil.example")],
        b"",
    )
    .await;
    assert_polling_forbidden(&res);
    let res = http(addr, "GET", POLLING, &[("origin", ALLOWED)], b"").await;
    assert_eq!(res.status, 200);
}

// In Chromium.

/// A static origin serving the test page and the official client bundle.
async fn page_origin() -> String {
    let page = std::fs::read_to_string(js_dir().join("origins_page.html")).unwrap();
    let bundle =
        std::fs::read(js_dir().join("node_modules/socket.io-client/dist/socket.io.min.js"))
            .unwrap();
    let app = Router::new()
        .route("/", get(move || async move { Html(page) }))
        .route(
            "/socket.io.min.js",
            get(move || async move { ([("content-type", "text/javascript")], bundle) }),
        );
    format!("http://{}", belfry_tests::serve(app).await)
}

/// A Socket.IO server granting CORS to `page` (long-polling needs it), with `allowed_origins`
/// set to `page` when `guarded`; returns its URL and the `Origin` of each socket it connected.
async fn api(page: &str, guarded: bool) -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
    let cors = HeaderValue::from_str(page).unwrap();
    let mut builder = SocketIo::builder().engine(move |engine| {
        engine.headers(move |headers, _| {
            headers.insert("access-control-allow-origin", cors.clone());
        })
    });
    if guarded {
        builder = builder.allowed_origins([page]);
    }
    let (layer, io) = builder.build_layer();
    let connected = Arc::new(Mutex::new(Vec::new()));
    let seen = connected.clone();
    io.ns("/", move |socket: SocketRef| {
        let origin = socket.handshake().headers.get("origin").cloned();
        seen.lock().unwrap().push(origin.unwrap_or_default());
        async {}
    });
    let addr = belfry_tests::serve(Router::new().layer(layer)).await;
    (format!("http://{addr}"), connected)
}

#[tokio::test]
async fn chromium_pages_of_other_origins_are_refused() {
    belfry_tests::browser::require_chromium();
    let allowed = page_origin().await;
    let other = page_origin().await;
    let (guarded_api, guarded_seen) = api(&allowed, true).await;
    let (open_api, open_seen) = api(&allowed, false).await;
    let url = |page: &str, api: &str| format!("{page}/?api={api}");

    let result = belfry_tests::run_node(
        "origins_browser.mjs",
        &[
            "allowed",
            &url(&allowed, &guarded_api),
            "other",
            &url(&other, &guarded_api),
            "unguarded",
            &url(&other, &open_api),
        ],
    )
    .await;
    assert!(result["error"].is_null(), "{result:#}");

    // From the allowed origin: everything connects, and the default client upgrades.
    assert_eq!(
        result["allowed"],
        json!({
            "bare": "open packet",
            "websocket": {"transport": "websocket"},
            "default": {"transport": "websocket"},
        }),
        "{result:#}"
    );
    // The same page from another origin: refused on WebSocket (403, which a page sees as a
    // failed connection) as on long-polling.
    assert_eq!(
        result["other"],
        json!({
            "bare": "error",
            "websocket": {"error": "websocket error"},
            "default": {"error": "xhr poll error"},
        }),
        "{result:#}"
    );
    // The server only ever connected the allowed page's two sockets.
    assert_eq!(
        *guarded_seen.lock().unwrap(),
        [json!(allowed), json!(allowed)]
    );

    // Without the option, CORS still keeps that page off long-polling, but its WebSockets get
    // through: what the option is for.
    assert_eq!(
        result["unguarded"],
        json!({
            "bare": "open packet",
            "websocket": {"transport": "websocket"},
            "default": {"error": "xhr poll error"},
        }),
        "{result:#}"
    );
    assert_eq!(*open_seen.lock().unwrap(), [json!(other)]);
}
