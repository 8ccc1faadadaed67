//! The sessions example in headless Chromium, from a page on another origin: credentialed CORS
//! through tower-http's `CorsLayer`, the session cookie reaching the engine, socket handlers
//! reading and saving the session, and a page from an origin not allowed being stopped.
#![allow(clippy::unwrap_used)]

use axum::{Router, http::HeaderValue, response::Html, routing::get};
use belfry_tests::{js_dir, run_node};
use serde_json::json;

/// A static origin serving the test page and the official client bundle.
async fn page_origin() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    (listener, origin)
}

fn page_app() -> Router {
    let page = std::fs::read_to_string(js_dir().join("sessions_page.html")).unwrap();
    let bundle =
        std::fs::read(js_dir().join("node_modules/socket.io-client/dist/socket.io.min.js"))
            .unwrap();
    Router::new()
        .route("/", get(move || async move { Html(page) }))
        .route(
            "/socket.io.min.js",
            get(move || async move { ([("content-type", "text/javascript")], bundle) }),
        )
}

#[tokio::test]
async fn a_page_on_an_allowed_origin_logs_in_and_its_sockets_share_the_session() {
    let (allowed_listener, allowed) = page_origin().await;
    let (other_listener, other) = page_origin().await;
    for listener in [allowed_listener, other_listener] {
        tokio::spawn(async move { axum::serve(listener, page_app()).await });
    }
    let (app, _io) = axum_sessions::app(vec![HeaderValue::from_str(&allowed).unwrap()]);
    let api = format!("http://{}", belfry_tests::serve(app).await);

    let result = run_node("sessions_browser.mjs", &[&api, &allowed, &other]).await;
    assert_eq!(result["error"], serde_json::Value::Null, "{result:#}");

    let page = &result["allowed"];
    // No session yet: the connect middleware refuses, with its message.
    assert_eq!(page["beforeLogin"], "log in first", "{page:#}");
    // The credentialed, preflighted login passed CORS and set the cookie.
    assert_eq!(page["login"], json!({"user": "carol"}), "{page:#}");
    // Long-polling (CORS applies to its XHRs) and WebSocket both carry the session; each
    // `visit` saved it, and the next connection saw the count.
    assert_eq!(
        page["polling"],
        json!({"visit": {"visits": 1}, "whoami": {"user": "carol", "visits": 1}}),
        "{page:#}"
    );
    assert_eq!(
        page["websocket"],
        json!({"visit": {"visits": 2}, "whoami": {"user": "carol", "visits": 2}}),
        "{page:#}"
    );
    // What the socket handlers saved, read by a plain HTTP route.
    assert_eq!(page["me"], json!({"user": "carol", "visits": 2}));

    // Another origin: the browser refuses the login (no CORS grant for it), and long-polling
    // cannot read the engine's answers; WebSocket is not subject to CORS, but without a session
    // the middleware refuses it.
    let page = &result["other"];
    assert_eq!(page["beforeLogin"], "log in first", "{page:#}");
    assert_eq!(page["loginError"], "TypeError", "{page:#}");
    assert_eq!(
        page["polling"],
        json!({"error": "xhr poll error"}),
        "{page:#}"
    );
    assert_eq!(
        page["websocket"],
        json!({"error": "log in first"}),
        "{page:#}"
    );
    assert_eq!(page["me"], serde_json::Value::Null);
}
