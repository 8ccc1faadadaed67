//! The engine under test: a recording echo handler, served on `127.0.0.1:0` in several ways.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{Router, routing::get};
use belfry_engine::{
    CloseReason, Engine, EngineConfig, EngineHandler, EngineLayer, Packet, Sid, Socket, Str,
};
use bytes::Bytes;
use tokio::sync::mpsc;

use crate::{RawResponse, http};

/// What the recording handler saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A session opened.
    Connect(Sid),
    /// A text message arrived.
    Message(Sid, String),
    /// A binary message arrived.
    Binary(Sid, Bytes),
    /// A session closed.
    Disconnect(Sid, CloseReason),
}

/// An echo handler that records every callback. The text `close-me` makes the server close the
/// session instead of echoing.
#[derive(Debug)]
pub struct Recorder {
    events: mpsc::UnboundedSender<Event>,
}

impl Recorder {
    /// A recorder and the receiving end of its events.
    pub fn channel() -> (Recorder, mpsc::UnboundedReceiver<Event>) {
        let (events, rx) = mpsc::unbounded_channel();
        (Recorder { events }, rx)
    }
}

impl EngineHandler for Recorder {
    type Data = ();

    fn on_connect(&self, socket: Arc<Socket<()>>) {
        let _ = self.events.send(Event::Connect(socket.id().clone()));
    }

    fn on_disconnect(&self, socket: Arc<Socket<()>>, reason: CloseReason) {
        let _ = self
            .events
            .send(Event::Disconnect(socket.id().clone(), reason));
    }

    fn on_message(&self, socket: &Arc<Socket<()>>, text: Str) {
        let _ = self
            .events
            .send(Event::Message(socket.id().clone(), text.to_string()));
        if text == "close-me" {
            socket.close();
        } else {
            let _ = socket.send(Packet::Message(text));
        }
    }

    fn on_binary(&self, socket: &Arc<Socket<()>>, data: Bytes) {
        let _ = self
            .events
            .send(Event::Binary(socket.id().clone(), data.clone()));
        let _ = socket.send(Packet::Binary(data));
    }
}

/// An engine with a [`Recorder`], served by axum next to a plain `/` route.
#[derive(Debug)]
pub struct TestServer {
    /// The engine, to reach sessions directly.
    pub engine: Engine<Recorder>,
    /// Where it listens.
    pub addr: SocketAddr,
    events: mpsc::UnboundedReceiver<Event>,
}

impl TestServer {
    /// Serves an engine configured by `config`.
    pub async fn start(config: EngineConfig) -> TestServer {
        Self::start_with(config, |layer| layer).await
    }

    /// Serves an engine whose layer `wrap` may extend (with `engine_layer`).
    pub async fn start_with(
        config: EngineConfig,
        wrap: impl FnOnce(EngineLayer) -> EngineLayer,
    ) -> TestServer {
        Self::start_on(config, wrap, serve).await
    }

    /// [`TestServer::start`] served by hyper's HTTP/1 connection builder ([`serve_http1`]).
    pub async fn start_http1(config: EngineConfig) -> TestServer {
        Self::start_on(config, |layer| layer, serve_http1).await
    }

    async fn start_on<F: Future<Output = SocketAddr>>(
        config: EngineConfig,
        wrap: impl FnOnce(EngineLayer) -> EngineLayer,
        serve: impl FnOnce(Router) -> F,
    ) -> TestServer {
        let (tx, events) = mpsc::unbounded_channel();
        let engine = Engine::new(Recorder { events: tx }, config);
        let app = Router::new()
            .route("/", get(|| async { "inner router" }))
            .layer(wrap(engine.layer()));
        let addr = serve(app).await;
        TestServer {
            engine,
            addr,
            events,
        }
    }

    /// The engine URL for clients: `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next recorded event; panics after 10 s without one.
    pub async fn next_event(&mut self) -> Event {
        tokio::time::timeout(Duration::from_secs(10), self.events.recv())
            .await
            .expect("an engine event within 10 s")
            .expect("the handler is alive")
    }

    /// Skips events until the disconnect of `sid`, and returns its reason.
    pub async fn disconnect_reason(&mut self, sid: &str) -> CloseReason {
        loop {
            if let Event::Disconnect(id, reason) = self.next_event().await
                && id.as_str() == sid
            {
                return reason;
            }
        }
    }

    /// Every event recorded so far, without waiting.
    pub fn drain_events(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        while let Ok(event) = self.events.try_recv() {
            out.push(event);
        }
        out
    }

    /// Opens a polling session and returns its id and the open packet's JSON.
    pub async fn polling_handshake(&self) -> (String, serde_json::Value) {
        let res = http(
            self.addr,
            "GET",
            "/socket.io/?EIO=4&transport=polling",
            &[],
            b"",
        )
        .await;
        assert_eq!(res.status, 200, "handshake: {res:?}");
        let body = res.text();
        let json: serde_json::Value =
            serde_json::from_str(body.strip_prefix('0').expect("an open packet")).unwrap();
        (json["sid"].as_str().unwrap().to_owned(), json)
    }

    /// A polling GET on session `sid`.
    pub async fn poll(&self, sid: &str) -> RawResponse {
        let path = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
        http(self.addr, "GET", &path, &[], b"").await
    }

    /// A polling POST of `body` on session `sid`.
    pub async fn post(&self, sid: &str, body: &[u8]) -> RawResponse {
        let path = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
        http(
            self.addr,
            "POST",
            &path,
            &[("content-type", "text/plain;charset=UTF-8")],
            body,
        )
        .await
    }
}

/// Serves `app` on `127.0.0.1:0` in the background and returns the address.
pub async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// Like [`serve`], over TLS with the certificate and key of `dir` (`server.crt`,
/// `server.key`, as [`crate::processes::test_certificates`] makes them).
pub async fn serve_tls(app: Router, dir: &std::path::Path) -> SocketAddr {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    let certs = CertificateDer::pem_file_iter(dir.join("server.crt"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    #[allow(deprecated)] // the provider of the tests, whatever its defaults
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = hyper_util::service::TowerToHyperService::new(app);
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (acceptor, service) = (acceptor.clone(), service.clone());
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .with_upgrades()
                        .await;
                }
            });
        }
    });
    addr
}

/// Like [`serve`], with hyper's HTTP/1 connection builder over each accepted `TcpStream`
/// instead of `axum::serve` (whose streams reach an upgrade wrapped in a type of hyper-util's).
pub async fn serve_http1(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = hyper_util::service::TowerToHyperService::new(app);
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tcp), service.clone())
                .with_upgrades();
            tokio::spawn(connection);
        }
    });
    addr
}

/// Like [`serve`], with Nagle's algorithm off on every accepted connection (as the benchmark
/// server and Node's http server have it): a small write goes out at once even while the last
/// one waits for the peer's delayed ACK.
pub async fn serve_nodelay(app: Router) -> SocketAddr {
    use axum::serve::ListenerExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let listener = listener.tap_io(|tcp| tcp.set_nodelay(true).unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// Like [`serve`], with axum's `ConnectInfo<SocketAddr>` in every request's extensions.
pub async fn serve_with_connect_info(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    addr
}
