//! Node's `httpCompression`: polling responses of 1024 bytes or more are gzip- or
//! deflate-compressed as the request's `Accept-Encoding` allows, unless every packet in them was
//! sent with `compress(false)`; smaller ones, and servers with compression off, send them as
//! they are. Headless Chromium (which asks for gzip and inflates) reads them through the
//! official browser client.
//! WebSocket permessage-deflate is tested in `ws_deflate.rs`.
#![allow(clippy::unwrap_used)]

use std::io::Read as _;

use belfry::SocketIo;
use belfry_tests::{RawResponse, http, polling_joined, serve};

/// A polling session joined to `/`: the address and the session's path.
async fn joined(io_layer: belfry::SocketIoLayer) -> (std::net::SocketAddr, String) {
    let addr = serve(axum::Router::new().layer(io_layer)).await;
    (addr, polling_joined(addr).await)
}

fn decoded(res: &RawResponse) -> String {
    let mut out = String::new();
    match res.header("content-encoding") {
        Some("gzip") => flate2::read::GzDecoder::new(&res.body[..])
            .read_to_string(&mut out)
            .unwrap(),
        Some("deflate") => flate2::read::ZlibDecoder::new(&res.body[..])
            .read_to_string(&mut out)
            .unwrap(),
        None => return res.text(),
        Some(other) => panic!("unexpected encoding {other}"),
    };
    out
}

#[tokio::test]
async fn polling_responses_are_compressed_as_node_compresses_them() {
    let (layer, io) = SocketIo::new_layer();
    let (addr, path) = joined(layer).await;
    let big = "a".repeat(2000);
    let expected = format!(r#"42["big","{big}"]"#);
    // Request headers, the compress flag of the broadcast, the encoding expected.
    type Case<'a> = (&'a [(&'a str, &'a str)], bool, Option<&'a str>);
    let cases: [Case<'_>; 5] = [
        (&[("accept-encoding", "gzip, deflate")], true, Some("gzip")),
        (&[("accept-encoding", "deflate")], true, Some("deflate")),
        (&[("accept-encoding", "br")], true, None),
        (&[], true, None),
        // Every packet sent with compress(false).
        (&[("accept-encoding", "gzip")], false, None),
    ];
    for (headers, compress, encoding) in cases {
        assert_eq!(io.compress(compress).emit("big", &big).unwrap(), 1);
        let res = http(addr, "GET", &path, headers, b"").await;
        assert_eq!(res.header("content-encoding"), encoding, "{headers:?}");
        assert_eq!(
            res.header("content-length").unwrap(),
            res.body.len().to_string()
        );
        if encoding.is_some() {
            assert!(res.body.len() < 200, "{} bytes", res.body.len());
        }
        assert_eq!(decoded(&res), expected, "{headers:?}");
    }
    // Below the threshold: as it is.
    io.emit("small", &"a").unwrap();
    let res = http(addr, "GET", &path, &[("accept-encoding", "gzip")], b"").await;
    assert_eq!(res.header("content-encoding"), None);
    assert_eq!(res.text(), r#"42["small","a"]"#);
}

#[tokio::test]
async fn compression_can_be_turned_off() {
    let (layer, io) = SocketIo::builder()
        .engine(|engine| engine.http_compression(None))
        .build_layer();
    let (addr, path) = joined(layer).await;
    io.emit("big", &"a".repeat(2000)).unwrap();
    let res = http(addr, "GET", &path, &[("accept-encoding", "gzip")], b"").await;
    assert_eq!(res.header("content-encoding"), None);
    assert!(res.text().starts_with(r#"42["big""#));
}

/// The page: the official client, polling only, keeping what the server sends.
const PAGE: &str = r#"<!doctype html>
<script src="/socket.io/socket.io.min.js"></script>
<script>
  const socket = io({ transports: ["polling"] });
  socket.on("big", (text) => { window.received = { length: text.length, transport: socket.io.engine.transport.name }; });
</script>"#;

#[tokio::test]
async fn chromium_reads_compressed_polling_responses() {
    belfry_tests::browser::require_chromium();
    let dist = belfry_tests::js_dir().join("node_modules/socket.io-client/dist");
    let (layer, io) = SocketIo::builder()
        .serve_client(dist)
        .unwrap()
        .build_layer();
    io.ns("/", |socket: belfry::SocketRef| async move {
        socket.emit("big", &"é".repeat(3000)).unwrap();
    });
    let app = axum::Router::new()
        .route(
            "/",
            axum::routing::get(|| async { axum::response::Html(PAGE) }),
        )
        .layer(layer);
    let addr = serve(app).await;
    let r = belfry_tests::run_node("compression_browser.mjs", &[&format!("http://{addr}/")]).await;
    assert!(r["error"].is_null(), "{r:#}");
    assert_eq!(
        r["received"],
        serde_json::json!({ "length": 3000, "transport": "polling" })
    );
    // Chromium asks for gzip (among others): the large response came gzipped, the small ones
    // (the handshake, the CONNECT) as they are.
    let encodings = r["encodings"].as_array().unwrap();
    assert!(encodings.contains(&serde_json::json!("gzip")), "{r:#}");
    assert!(encodings.contains(&serde_json::Value::Null), "{r:#}");
}
