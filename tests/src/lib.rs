//! Shared fixtures of Belfry's integration tests: an engine with a recording echo handler served
//! by axum on `127.0.0.1:0`, a raw HTTP/1.1 client for exact-byte checks, and a runner for the
//! official JavaScript clients in `tests/js`.
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)]

pub mod adapter_conformance;
pub mod browser;
pub mod processes;
pub mod scenarios;

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use axum::{Router, routing::get};
use belfry_engine::{
    DisconnectReason, Engine, EngineConfig, EngineHandler, EngineLayer, Packet, Sid, Socket, Str,
};
use bytes::Bytes;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::mpsc,
};

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
    Disconnect(Sid, DisconnectReason),
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

    fn on_disconnect(&self, socket: Arc<Socket<()>>, reason: DisconnectReason) {
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
    pub async fn disconnect_reason(&mut self, sid: &str) -> DisconnectReason {
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

/// A response read off the wire.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// The status code.
    pub status: u16,
    /// Header names lowercased, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {:?}", self.text()))
    }
}

/// Sends one HTTP/1.1 request on a new connection and reads the response.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> RawResponse {
    let mut req = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    raw(addr, &bytes).await
}

/// Opens a long-polling session on the Socket.IO server at `addr` and joins it to `/`;
/// returns the session's path (`/socket.io/?EIO=4&transport=polling&sid=..`).
pub async fn polling_joined(addr: SocketAddr) -> String {
    let open = http(addr, "GET", "/socket.io/?EIO=4&transport=polling", &[], b"").await;
    let sid = serde_json::from_str::<serde_json::Value>(&open.text()[1..]).unwrap()["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    assert_eq!(http(addr, "POST", &path, &[], b"40").await.text(), "ok");
    let connected = http(addr, "GET", &path, &[], b"").await.text();
    assert!(connected.starts_with("40{\"sid\""), "{connected}");
    path
}

/// Writes `request` as is on a new connection and reads one response (until the connection
/// closes or `content-length` bytes of body arrived).
pub async fn raw(addr: SocketAddr, request: &[u8]) -> RawResponse {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let _ = stream.write_all(request).await;
    read_response(&mut stream).await
}

/// Reads one response from `stream`; panics after 10 s.
pub async fn read_response(stream: &mut TcpStream) -> RawResponse {
    tokio::time::timeout(Duration::from_secs(10), read_response_inner(stream))
        .await
        .expect("a response within 10 s")
}

async fn read_response_inner(stream: &mut TcpStream) -> RawResponse {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 16384];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = stream.read(&mut chunk).await.unwrap_or(0);
        assert!(
            n > 0,
            "connection closed before a response: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = buf[head_end + 4..].to_vec();
    let length = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok());
    if status != 101 {
        loop {
            if length.is_some_and(|len| body.len() >= len) {
                break;
            }
            let n = stream.read(&mut chunk).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }
    RawResponse {
        status,
        headers,
        body,
    }
}

/// A WebSocket upgrade request for `query` on the engine path.
pub fn upgrade_request(addr: SocketAddr, query: &str) -> String {
    format!(
        "GET /socket.io/?{query} HTTP/1.1\r\nhost: {addr}\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\
         sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
}

/// The folder of the JavaScript clients.
pub fn js_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("js")
}

/// Runs `node tests/js/<script> <args>` (60 s at most) and parses the last line of its output as
/// JSON.
pub async fn run_node(script: &str, args: &[&str]) -> serde_json::Value {
    let dir = js_dir();
    assert!(
        dir.join("node_modules").exists(),
        "tests/js/node_modules is missing: run the README test command (it runs `npm ci` there)"
    );
    run_client("node", &dir, script, args).await
}

/// Runs `tests/py/.venv/bin/python tests/py/<script> <args>` (60 s at most) and parses the last
/// line of its output as JSON.
pub async fn run_python(script: &str, args: &[&str]) -> serde_json::Value {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("py");
    let python = dir.join(".venv/bin/python");
    assert!(
        python.exists(),
        "tests/py/.venv is missing: run the README test command (it installs python-socketio there)"
    );
    run_client(python.to_str().unwrap(), &dir, script, args).await
}

async fn run_client(
    program: &str,
    dir: &std::path::Path,
    script: &str,
    args: &[&str],
) -> serde_json::Value {
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(program)
            .arg(dir.join(script))
            .args(args)
            .current_dir(dir)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the node client finishes within 60 s")
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| {
        panic!(
            "{script} printed no JSON ({e}); status {:?}\nstdout: {stdout}\nstderr: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// A WebSocket client over a raw TCP stream that writes frames byte by byte, for malformed
/// input that no WebSocket library would send.
#[derive(Debug)]
pub struct RawWs {
    /// The TCP stream, after the handshake.
    pub stream: TcpStream,
    /// Bytes read past the handshake response, not yet consumed.
    buffered: Vec<u8>,
}

impl RawWs {
    /// Connects and completes the upgrade handshake for `query` on the engine path.
    pub async fn connect(addr: SocketAddr, query: &str) -> RawWs {
        RawWs::connect_with(addr, query, "").await.0
    }

    /// [`RawWs::connect`] with more request header lines (each ending in `\r\n`); also
    /// returns the 101 response.
    pub async fn connect_with(
        addr: SocketAddr,
        query: &str,
        headers: &str,
    ) -> (RawWs, RawResponse) {
        let stream = TcpStream::connect(addr).await.unwrap();
        RawWs::handshake_on(stream, addr, query, headers).await
    }

    /// [`RawWs::connect_with`] over a stream connected already (with socket options of the
    /// test's choosing).
    pub async fn handshake_on(
        mut stream: TcpStream,
        addr: SocketAddr,
        query: &str,
        headers: &str,
    ) -> (RawWs, RawResponse) {
        // Small frames written back to back must not wait for the peer's delayed ACK.
        stream.set_nodelay(true).unwrap();
        let request = upgrade_request(addr, query);
        let head = request.strip_suffix("\r\n").unwrap_or(&request);
        let request = format!("{head}{headers}\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut res = read_response(&mut stream).await;
        assert_eq!(res.status, 101, "{res:?}");
        let buffered = std::mem::take(&mut res.body);
        (RawWs { stream, buffered }, res)
    }

    /// Connects a new session over WebSocket and reads its open packet; returns the session id.
    pub async fn open(addr: SocketAddr) -> (RawWs, String) {
        let mut ws = RawWs::connect(addr, "EIO=4&transport=websocket").await;
        let (opcode, payload) = ws.read_frame().await.expect("the open packet");
        assert_eq!(opcode, 1);
        let text = String::from_utf8(payload).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text[1..]).unwrap();
        (ws, json["sid"].as_str().unwrap().to_owned())
    }

    /// Writes one masked frame: `first` is the first header byte (FIN, RSV bits, opcode).
    pub async fn frame(&mut self, first: u8, payload: &[u8]) {
        let bytes = encode_frame(first, payload, true);
        let _ = self.stream.write_all(&bytes).await;
    }

    /// Writes raw bytes.
    pub async fn write(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).await;
    }

    /// Reads one frame: `(opcode, payload)`, or `None` once the connection is closed.
    pub async fn read_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        self.read_frame_with_flags()
            .await
            .map(|(first, payload)| (first & 0x0f, payload))
    }

    /// Reads one frame: `(first header byte: FIN, RSV bits and opcode, payload)`.
    pub async fn read_frame_with_flags(&mut self) -> Option<(u8, Vec<u8>)> {
        tokio::time::timeout(Duration::from_secs(10), async {
            let head = self.read_exact(2).await?;
            let mut len = u64::from(head[1] & 0x7f);
            if len == 126 {
                let ext = self.read_exact(2).await?;
                len = u64::from(u16::from_be_bytes([ext[0], ext[1]]));
            } else if len == 127 {
                let ext = self.read_exact(8).await?;
                len = u64::from_be_bytes(ext.try_into().ok()?);
            }
            let payload = self.read_exact(usize::try_from(len).ok()?).await?;
            Some((head[0], payload))
        })
        .await
        .expect("a frame or a close within 10 s")
    }

    async fn read_exact(&mut self, n: usize) -> Option<Vec<u8>> {
        let mut chunk = [0u8; 4096];
        while self.buffered.len() < n {
            let read = self.stream.read(&mut chunk).await.ok()?;
            if read == 0 {
                return None;
            }
            self.buffered.extend_from_slice(&chunk[..read]);
        }
        let rest = self.buffered.split_off(n);
        Some(std::mem::replace(&mut self.buffered, rest))
    }

    /// True if a byte can be read at once, without waiting: one read past already, or one in
    /// the kernel's receive buffer (asked of the kernel itself, through a duplicate of the
    /// socket, not of tokio's readiness).
    pub fn has_unread_bytes(&self) -> bool {
        use std::os::fd::AsFd;
        if !self.buffered.is_empty() {
            return true;
        }
        let fd = self.stream.as_fd().try_clone_to_owned().unwrap();
        let stream = std::net::TcpStream::from(fd);
        // A duplicate shares the file's flags: non-blocking, as tokio set it.
        match stream.peek(&mut [0u8; 1]) {
            Ok(n) => n > 0,
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => false,
            Err(error) => panic!("peek: {error}"),
        }
    }

    /// Reads frames until a close frame and returns its code (`None` for a close without one);
    /// panics if the connection ends without a close frame.
    pub async fn close_code(&mut self) -> Option<u16> {
        loop {
            match self.read_frame().await {
                Some((8, payload)) => {
                    return (payload.len() >= 2)
                        .then(|| u16::from_be_bytes([payload[0], payload[1]]));
                }
                Some(_) => {}
                None => panic!("the connection ended without a close frame"),
            }
        }
    }
}

/// Encodes a frame with a fixed masking key.
pub fn encode_frame(first: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut out = vec![first];
    let mask_bit = if masked { 0x80 } else { 0 };
    let len = payload.len();
    if len < 126 {
        out.push(mask_bit | u8::try_from(len).unwrap());
    } else if len <= 0xffff {
        out.push(mask_bit | 126);
        out.extend_from_slice(&u16::try_from(len).unwrap().to_be_bytes());
    } else {
        out.push(mask_bit | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    if masked {
        let key = [0x12, 0x34, 0x56, 0x78];
        out.extend_from_slice(&key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}
