//! `serve_client`: the official browser bundle served under the engine path, as Node's
//! `serveClient` does (ETag, 304, the engine untouched).
#![allow(clippy::unwrap_used)]

use axum::Router;
use belfry::SocketIo;
use belfry_tests::{http, js_dir, serve};

fn dist() -> std::path::PathBuf {
    js_dir().join("node_modules/socket.io-client/dist")
}

#[tokio::test]
async fn bundle_is_served_with_an_etag_and_304_when_fresh() {
    let (layer, _io) = SocketIo::builder()
        .serve_client(dist())
        .unwrap()
        .build_layer();
    let addr = serve(Router::new().layer(layer)).await;

    let min = std::fs::read(dist().join("socket.io.min.js")).unwrap();
    let res = http(addr, "GET", "/socket.io/socket.io.min.js", &[], b"").await;
    assert_eq!(res.status, 200);
    assert_eq!(res.body, min);
    assert_eq!(
        res.header("content-type"),
        Some("application/javascript; charset=utf-8")
    );
    assert_eq!(res.header("cache-control"), Some("public, max-age=0"));
    let etag = res.header("etag").unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");

    // The tag the browser holds, strong or weak, among others: 304 and no body.
    for held in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"other\", {etag}"),
    ] {
        let res = http(
            addr,
            "GET",
            "/socket.io/socket.io.min.js",
            &[("if-none-match", &held)],
            b"",
        )
        .await;
        assert_eq!(res.status, 304, "{held}");
        assert!(res.body.is_empty());
        assert_eq!(res.header("etag"), Some(etag.as_str()));
    }
    // A stale tag: the file again.
    let res = http(
        addr,
        "GET",
        "/socket.io/socket.io.min.js",
        &[("if-none-match", "\"stale\"")],
        b"",
    )
    .await;
    assert_eq!(res.status, 200);
    assert_eq!(res.body.len(), min.len());

    // Each file has its own tag; maps are JSON; HEAD has the headers and no body.
    let full = http(addr, "GET", "/socket.io/socket.io.js", &[], b"").await;
    assert_eq!(
        full.body,
        std::fs::read(dist().join("socket.io.js")).unwrap()
    );
    assert_ne!(full.header("etag"), Some(etag.as_str()));
    let map = http(addr, "GET", "/socket.io/socket.io.min.js.map", &[], b"").await;
    assert_eq!(
        map.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    let head = http(addr, "HEAD", "/socket.io/socket.io.esm.min.js", &[], b"").await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    let esm_len = std::fs::metadata(dist().join("socket.io.esm.min.js"))
        .unwrap()
        .len();
    assert_eq!(
        head.header("content-length"),
        Some(esm_len.to_string().as_str())
    );
}

#[tokio::test]
async fn other_paths_still_reach_the_engine() {
    let (layer, _io) = SocketIo::builder()
        .serve_client(dist())
        .unwrap()
        .build_layer();
    let addr = serve(Router::new().layer(layer)).await;

    // Not a client file: the engine answers as Node does.
    let res = http(addr, "GET", "/socket.io/other.js", &[], b"").await;
    assert_eq!(res.status, 400);
    assert_eq!(
        res.json(),
        serde_json::json!({"code": 0, "message": "Transport unknown"})
    );
    // A POST to a file name is not a download either.
    let res = http(addr, "POST", "/socket.io/socket.io.min.js", &[], b"").await;
    assert_eq!(res.status, 400);
    // The engine works beside the files.
    let res = http(addr, "GET", "/socket.io/?EIO=4&transport=polling", &[], b"").await;
    assert_eq!(res.status, 200);
    assert!(res.text().starts_with("0{\"sid\":"), "{}", res.text());
}

#[tokio::test]
async fn without_serve_client_the_bundle_path_is_an_engine_request() {
    let (layer, _io) = SocketIo::new_layer();
    let addr = serve(Router::new().layer(layer)).await;
    let res = http(addr, "GET", "/socket.io/socket.io.min.js", &[], b"").await;
    assert_eq!(res.status, 400);
}

#[test]
fn a_folder_without_the_bundle_is_an_error() {
    let error = SocketIo::builder()
        .serve_client(js_dir())
        .map(|_| ())
        .unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::NotFound);
}
