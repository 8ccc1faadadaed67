//! The engine as tower middleware: mounted in an axum `Router`, wrapped by engine-only layers
//! (tower-sessions, Node's `io.engine.use(session)`), and served by plain hyper.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use axum::{Router, routing::get};
use belfry_engine::{BoxError, Engine, EngineConfig, TransportType};
use belfry_tests::{Recorder, TestServer, http, serve};
use futures_util::StreamExt;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use tokio::io::AsyncWriteExt;
use tower_sessions::{MemoryStore, Session, SessionManagerLayer};

#[tokio::test]
async fn session_middleware_reaches_the_handler() {
    let store = MemoryStore::default();
    let sessions = SessionManagerLayer::new(store).with_secure(false);
    let (recorder, _events) = Recorder::channel();
    let engine = Engine::new(recorder, EngineConfig::default());
    let app = Router::new()
        .route(
            "/login",
            get(|session: Session| async move {
                session.insert("user", "alice").await.unwrap();
                "logged in"
            }),
        )
        .route(
            "/seen",
            get(|session: Session| async move {
                session
                    .get::<bool>("seen_by_socket")
                    .await
                    .unwrap()
                    .unwrap_or(false)
                    .to_string()
            }),
        )
        .layer(sessions.clone())
        .layer(engine.layer().engine_layer(sessions));
    let addr = serve(app).await;

    let login = http(addr, "GET", "/login", &[], b"").await;
    assert_eq!(login.text(), "logged in");
    let cookie = login
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();

    let res = http(
        addr,
        "GET",
        "/socket.io/?EIO=4&transport=polling",
        &[("cookie", &cookie)],
        b"",
    )
    .await;
    assert_eq!(res.status, 200);
    let open: serde_json::Value = serde_json::from_str(&res.text()[1..]).unwrap();
    let socket = engine.socket(open["sid"].as_str().unwrap()).unwrap();

    // What the middleware put in the extensions is kept with the session...
    let session = socket
        .req_parts()
        .extensions
        .get::<Session>()
        .expect("the engine layer's Session extension")
        .clone();
    assert_eq!(
        session.get::<String>("user").await.unwrap().as_deref(),
        Some("alice")
    );
    // ...and an update made on the socket side, once saved, is seen by plain HTTP routes.
    session.insert("seen_by_socket", true).await.unwrap();
    session.save().await.unwrap();
    assert_eq!(
        http(addr, "GET", "/seen", &[("cookie", &cookie)], b"")
            .await
            .text(),
        "true"
    );
}

#[tokio::test]
async fn a_failing_engine_layer_is_answered_like_node() {
    let failing = tower::layer::layer_fn(|_inner| {
        tower::service_fn(|_req: http::Request<belfry_engine::RequestBody>| async {
            Err::<http::Response<axum::body::Body>, BoxError>("middleware said no".into())
        })
    });
    let server =
        TestServer::start_with(EngineConfig::default(), |layer| layer.engine_layer(failing)).await;
    let res = http(
        server.addr,
        "GET",
        "/socket.io/?EIO=4&transport=polling",
        &[],
        b"",
    )
    .await;
    assert_eq!(res.status, 400);
    assert_eq!(
        res.json(),
        serde_json::json!({"code": 3, "message": "Bad request"})
    );
    // Only engine requests pass through engine layers.
    assert_eq!(
        http(server.addr, "GET", "/", &[], b"").await.text(),
        "inner router"
    );
}

/// Serves `engine.service()` with hyper alone, with a header read timeout (hyper's guard against
/// slowloris, row 9 of the bad-input table).
async fn serve_with_hyper(engine: &Engine<Recorder>) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = engine.service();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let mut builder = hyper::server::conn::http1::Builder::new();
                builder
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_millis(500));
                let _ = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn plain_hyper_serves_both_transports() {
    let (recorder, _events) = Recorder::channel();
    let engine = Engine::new(recorder, EngineConfig::default());
    let addr = serve_with_hyper(&engine).await;
    let res = http(addr, "GET", "/socket.io/?EIO=4&transport=polling", &[], b"").await;
    assert_eq!(res.status, 200);
    assert!(res.text().starts_with("0{\"sid\":"));
    assert_eq!(http(addr, "GET", "/elsewhere", &[], b"").await.status, 404);
    let (mut ws, _) = tokio_tungstenite::connect_async(format!(
        "ws://{addr}/socket.io/?EIO=4&transport=websocket"
    ))
    .await
    .unwrap();
    let open = ws.next().await.unwrap().unwrap();
    assert!(open.to_text().unwrap().starts_with("0{"));
    let sockets = engine.sockets();
    assert!(
        sockets
            .iter()
            .any(|s| s.transport() == TransportType::Websocket)
    );
}

#[tokio::test]
async fn row09_trickled_headers_are_cut_and_others_still_served() {
    let (recorder, _events) = Recorder::channel();
    let engine = Engine::new(recorder, EngineConfig::default());
    let addr = serve_with_hyper(&engine).await;
    let mut slow = Vec::new();
    for _ in 0..50 {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\n")
            .await
            .unwrap();
        slow.push(tokio::spawn(async move {
            // One byte every 100 ms: the header never completes before the timeout.
            let start = std::time::Instant::now();
            for _ in 0..100 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if stream.write_all(b"x").await.is_err() {
                    return start.elapsed();
                }
            }
            start.elapsed()
        }));
    }
    // A legitimate handshake goes through meanwhile.
    let res = http(addr, "GET", "/socket.io/?EIO=4&transport=polling", &[], b"").await;
    assert_eq!(res.status, 200);
    for handle in slow {
        let elapsed = handle.await.unwrap();
        assert!(
            elapsed < Duration::from_secs(5),
            "a trickling connection was cut, after {elapsed:?}"
        );
    }
}
