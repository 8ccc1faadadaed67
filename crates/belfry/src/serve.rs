//! Serving an app over HTTP/1.1 with the connection limits Node's HTTP server has.
//!
//! `axum::serve` keeps every TCP connection for as long as its peer does: the connections that
//! long-polling clients leave behind when they vanish, and connections whose request head never
//! ends (slowloris). Node's server closes an idle keep-alive connection after 5 s
//! (`keepAliveTimeout`) and a request head still incomplete after 60 s (`headersTimeout`).
//! [`serve`] does the same with hyper's HTTP/1 connection: a connection is closed when no
//! complete request head arrives within [`Serve::keep_alive_timeout`] of the connection's start
//! or of the end of its last response. A request being answered (a long-poll GET held for a
//! ping interval) and an upgraded WebSocket are never cut by it: the Engine.IO heartbeat looks
//! after those.

use std::{
    convert::Infallible,
    fmt,
    future::{Future, IntoFuture},
    io,
    pin::Pin,
    time::Duration,
};

use axum::{body::Body, extract::ConnectInfo};
use http::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{net::TcpListener, sync::watch};
use tower_service::Service;

/// Serves `app` on `listener` over HTTP/1.1 (WebSocket upgrades included), closing connections
/// that stay idle, or send their request head too slowly, for longer than the keep-alive
/// timeout (5 s by default, Node's `keepAliveTimeout`). Each request carries the peer's
/// address as axum's [`ConnectInfo<SocketAddr>`], so `socket.handshake().address` is filled.
///
/// Await it to run it; [`Serve::with_graceful_shutdown`] stops it.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use axum::{Router, routing::get};
/// use belfry::SocketIo;
///
/// # async fn run() -> std::io::Result<()> {
/// let (layer, io) = SocketIo::new_layer();
/// let app = Router::new().route("/", get(|| async { "hello" })).layer(layer);
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
/// belfry::serve(listener, app)
///     .keep_alive_timeout(Duration::from_secs(5))
///     .with_graceful_shutdown(async move {
///         let _ = tokio::signal::ctrl_c().await;
///         io.close().await;
///     })
///     .await
/// # }
/// ```
pub fn serve<S>(listener: TcpListener, app: S) -> Serve<S> {
    Serve {
        listener,
        app,
        keep_alive_timeout: Duration::from_secs(5),
    }
}

/// The server [`serve`] makes: await it, or give it a shutdown signal first.
#[must_use = "a server does nothing until awaited"]
pub struct Serve<S> {
    listener: TcpListener,
    app: S,
    keep_alive_timeout: Duration,
}

impl<S> fmt::Debug for Serve<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Serve")
            .field("listener", &self.listener)
            .field("keep_alive_timeout", &self.keep_alive_timeout)
            .finish_non_exhaustive()
    }
}

impl<S> Serve<S> {
    /// How long a connection may wait for, or take to send, its next request head: from the
    /// connection's start, and from the end of each response. Past it, the connection is
    /// closed. Node: `keepAliveTimeout`, 5 s (its `headersTimeout`, 60 s, counts from the
    /// head's first byte; here the shorter limit holds for both).
    pub fn keep_alive_timeout(mut self, timeout: Duration) -> Self {
        self.keep_alive_timeout = timeout;
        self
    }

    /// Stops accepting connections once `signal` resolves, lets every connection finish the
    /// request it is answering, and resolves when all have. Close the Socket.IO server in the
    /// signal (`io.close().await`) so that held long-poll requests end and WebSocket clients
    /// are told.
    pub fn with_graceful_shutdown<F>(self, signal: F) -> WithGracefulShutdown<S, F>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        WithGracefulShutdown {
            serve: self,
            signal,
        }
    }
}

/// A [`Serve`] with a shutdown signal; await it.
#[must_use = "a server does nothing until awaited"]
pub struct WithGracefulShutdown<S, F> {
    serve: Serve<S>,
    signal: F,
}

impl<S, F> fmt::Debug for WithGracefulShutdown<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WithGracefulShutdown")
            .field("serve", &self.serve)
            .finish_non_exhaustive()
    }
}

type ServeFuture = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;

impl<S, B> IntoFuture for Serve<S>
where
    S: Service<Request<Body>, Response = Response<B>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Output = io::Result<()>;
    type IntoFuture = ServeFuture;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(run(self, std::future::pending()))
    }
}

impl<S, B, F> IntoFuture for WithGracefulShutdown<S, F>
where
    S: Service<Request<Body>, Response = Response<B>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    F: Future<Output = ()> + Send + 'static,
{
    type Output = io::Result<()>;
    type IntoFuture = ServeFuture;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(run(self.serve, self.signal))
    }
}

/// Accepts until `signal`, then waits for the connections to finish.
async fn run<S, B>(serve: Serve<S>, signal: impl Future<Output = ()> + Send) -> io::Result<()>
where
    S: Service<Request<Body>, Response = Response<B>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let Serve {
        listener,
        app,
        keep_alive_timeout,
    } = serve;
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(keep_alive_timeout);
    // Every connection holds a receiver; the server waits for all of them to be dropped.
    let (stop, stopped) = watch::channel(false);
    tokio::pin!(signal);
    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut signal => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors, say: the connection waits in the backlog until one
                    // frees.
                    tracing::debug!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        // Small frames go out at once, as Node's server does.
        let _ = tcp.set_nodelay(true);
        let service = hyper::service::service_fn({
            let app = app.clone();
            move |mut req: Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                let mut app = app.clone();
                // As tower's `oneshot`: ready first, then called.
                async move {
                    std::future::poll_fn(|cx| app.poll_ready(cx)).await?;
                    app.call(req.map(Body::new)).await
                }
            }
        });
        let connection = http
            .serve_connection(TokioIo::new(tcp), service)
            .with_upgrades();
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => return log_end(result),
                _ = stopped.changed() => connection.as_mut().graceful_shutdown(),
            }
            log_end(connection.await);
        });
    }
    drop(listener);
    drop(stopped);
    let _ = stop.send(true);
    stop.closed().await;
    Ok(())
}

fn log_end(result: hyper::Result<()>) {
    if let Err(error) = result {
        tracing::debug!(%error, "connection ended");
    }
}
