//! Middleware that answers Engine.IO requests and passes every other request to the inner
//! service.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use belfry_engine::{CloseReason, EngineHandler, Packet, Socket, Str};
//! # use bytes::Bytes;
//! # struct Echo;
//! # impl EngineHandler for Echo {
//! #     type Data = ();
//! #     fn on_connect(&self, _: Arc<Socket<()>>) {}
//! #     fn on_disconnect(&self, _: Arc<Socket<()>>, _: CloseReason) {}
//! #     fn on_message(&self, s: &Arc<Socket<()>>, t: Str) { let _ = s.send(Packet::Message(t)); }
//! #     fn on_binary(&self, s: &Arc<Socket<()>>, b: Bytes) { let _ = s.send(Packet::Binary(b)); }
//! # }
//! use axum::{Router, routing::get};
//! use belfry_engine::{Engine, EngineConfig};
//! use tower_http::trace::TraceLayer;
//!
//! let engine = Engine::new(Echo, EngineConfig::default());
//! let app: Router = Router::new()
//!     .route("/", get(|| async { "hello" }))
//!     // `TraceLayer` here sees only the engine's own requests.
//!     .layer(engine.layer().engine_layer(TraceLayer::new_for_http()));
//! ```

use std::{
    convert::Infallible,
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Empty, Full, combinators::UnsyncBoxBody};
use pin_project_lite::pin_project;
use tower::{ServiceExt, util::BoxCloneSyncService};
use tower_layer::Layer;
use tower_service::Service;

use crate::{
    Engine, EngineHandler,
    dispatch::{self, Dispatched},
    errors::RequestError,
    request::{EngineResponse, polling_error},
};

/// A boxed error, as tower and hyper use.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of a request once it reached the engine (whatever body type the server used).
pub type RequestBody = UnsyncBoxBody<Bytes, BoxError>;

/// The body of a response the engine wrote.
pub type EngineBody = UnsyncBoxBody<Bytes, BoxError>;

/// The engine's own HTTP service, as the layers added with [`EngineLayer::engine_layer`] see it.
pub type EngineHttp = BoxCloneSyncService<Request<RequestBody>, Response<EngineBody>, BoxError>;

/// A [`Layer`] that mounts an Engine.IO server at its path (default `/socket.io/`), made by
/// [`Engine::layer`].
///
/// Requests under the path are answered by the engine, after passing through the layers added
/// with [`EngineLayer::engine_layer`]; every other request goes to the wrapped service untouched.
#[derive(Clone)]
pub struct EngineLayer {
    path: Arc<str>,
    engine: EngineCall,
}

/// How [`EngineService`] reaches the engine.
#[derive(Clone)]
enum EngineCall {
    /// No layer added: the engine's routing called in place, its future held inline (no boxed
    /// service cloned and no boxed future for each request).
    Direct(Arc<dyn Route>),
    /// Through the layers added with [`EngineLayer::engine_layer`].
    Layered(EngineHttp),
}

/// The engine's routing, whatever its handler.
trait Route: Send + Sync + 'static {
    fn route(&self, req: Request<RequestBody>) -> Dispatched;
}

impl<H: EngineHandler> Route for Engine<H> {
    fn route(&self, req: Request<RequestBody>) -> Dispatched {
        dispatch::handle(&self.inner, req)
    }
}

impl fmt::Debug for EngineLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineLayer")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl EngineLayer {
    pub(crate) fn new<H: EngineHandler>(engine: Engine<H>) -> Self {
        EngineLayer {
            path: engine.config().path().into(),
            engine: EngineCall::Direct(Arc::new(engine)),
        }
    }

    /// Wraps the engine's own HTTP requests (and only them) in a tower layer: Node's
    /// `io.engine.use(middleware)`.
    ///
    /// What the layer puts in the request's `http::Extensions` (a session, an authenticated user)
    /// is kept with the handshake request and reaches the handler through
    /// [`Socket::req_parts`](crate::Socket::req_parts). Each call wraps the layers added before
    /// it. An error from a layer is answered 400 `{"code":3,"message":"Bad request"}`, as Node
    /// answers a failing middleware.
    ///
    /// The engine acts on a request when its service is *called* (a handshake opens its session
    /// then), within a tokio runtime, as hyper and axum call services: a layer should not call
    /// the inner service for a request it means to drop unanswered.
    pub fn engine_layer<L, B>(self, layer: L) -> Self
    where
        L: Layer<EngineHttp>,
        L::Service:
            Service<Request<RequestBody>, Response = Response<B>> + Clone + Send + Sync + 'static,
        <L::Service as Service<Request<RequestBody>>>::Future: Send + 'static,
        <L::Service as Service<Request<RequestBody>>>::Error: Into<BoxError>,
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let engine = match self.engine {
            EngineCall::Direct(route) => BoxCloneSyncService::new(CoreService { route }),
            EngineCall::Layered(engine) => engine,
        };
        let service = layer
            .layer(engine)
            .map_response(|res: Response<B>| res.map(boxed))
            .map_err(Into::into);
        EngineLayer {
            path: self.path,
            engine: EngineCall::Layered(BoxCloneSyncService::new(service)),
        }
    }
}

impl<S> Layer<S> for EngineLayer {
    type Service = EngineService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        EngineService {
            inner,
            path: self.path.clone(),
            engine: self.engine.clone(),
        }
    }
}

fn boxed<B>(body: B) -> EngineBody
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

fn full_boxed(body: http_body_util::Full<Bytes>) -> EngineBody {
    body.map_err(|never| match never {}).boxed_unsync()
}

/// The innermost engine service under the layers added with [`EngineLayer::engine_layer`]:
/// dispatches to the transports.
#[derive(Clone)]
struct CoreService {
    route: Arc<dyn Route>,
}

impl Service<Request<RequestBody>> for CoreService {
    type Response = Response<EngineBody>;
    type Error = BoxError;
    type Future = futures_util::future::Map<Dispatched, fn(EngineResponse) -> CoreResult>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<RequestBody>) -> Self::Future {
        let answer: fn(EngineResponse) -> CoreResult = |res| Ok(res.map(full_boxed));
        futures_util::FutureExt::map(self.route.route(req), answer)
    }
}

/// What the engine's own service answers.
type CoreResult = Result<Response<EngineBody>, BoxError>;

/// The service made by [`EngineLayer`]: the engine at its path, `S` everywhere else.
#[derive(Clone)]
pub struct EngineService<S> {
    inner: S,
    path: Arc<str>,
    engine: EngineCall,
}

impl<S: fmt::Debug> fmt::Debug for EngineService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineService")
            .field("inner", &self.inner)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for EngineService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ReqBody: Body<Data = Bytes> + Send + 'static,
    ReqBody::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        if req.uri().path().starts_with(&*self.path) {
            let req = req.map(|body| body.map_err(Into::into).boxed_unsync());
            let kind = match &self.engine {
                EngineCall::Direct(route) => FutureKind::Direct {
                    future: route.route(req),
                },
                EngineCall::Layered(engine) => FutureKind::Engine {
                    future: engine.clone().oneshot(req),
                },
            };
            ResponseFuture { kind }
        } else {
            ResponseFuture {
                kind: FutureKind::Inner {
                    future: self.inner.call(req),
                },
            }
        }
    }
}

pin_project! {
    /// The response future of [`EngineService`].
    pub struct ResponseFuture<F> {
        #[pin]
        kind: FutureKind<F>,
    }
}

pin_project! {
    #[project = FutureKindProj]
    enum FutureKind<F> {
        Direct { #[pin] future: Dispatched },
        Engine { #[pin] future: tower::util::Oneshot<EngineHttp, Request<RequestBody>> },
        Inner { #[pin] future: F },
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            FutureKindProj::Direct { future } => future.poll(cx).map(|res| {
                Ok(res.map(|body| ResponseBody {
                    kind: BodyKind::Full { body },
                }))
            }),
            FutureKindProj::Engine { future } => future.poll(cx).map(|res| {
                let res = res.unwrap_or_else(|error| {
                    tracing::debug!(%error, "engine layer failed");
                    polling_error(&RequestError::BadRequest).map(full_boxed)
                });
                Ok(res.map(|body| ResponseBody {
                    kind: BodyKind::Engine { body },
                }))
            }),
            FutureKindProj::Inner { future } => future.poll(cx).map(|res| {
                res.map(|res| {
                    res.map(|body| ResponseBody {
                        kind: BodyKind::Inner { body },
                    })
                })
            }),
        }
    }
}

pin_project! {
    /// The body of a response from [`EngineService`]: the engine's, or the inner service's.
    pub struct ResponseBody<B> {
        #[pin]
        kind: BodyKind<B>,
    }
}

pin_project! {
    #[project = BodyKindProj]
    enum BodyKind<B> {
        /// The engine's own answer, when no layer wraps the engine.
        Full { #[pin] body: Full<Bytes> },
        Engine { #[pin] body: EngineBody },
        Inner { #[pin] body: B },
    }
}

impl<B> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseBody").finish_non_exhaustive()
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.project().kind.project() {
            BodyKindProj::Full { body } => body.poll_frame(cx).map_err(|never| match never {}),
            BodyKindProj::Engine { body } => body.poll_frame(cx),
            BodyKindProj::Inner { body } => body.poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            BodyKind::Full { body } => body.is_end_stream(),
            BodyKind::Engine { body } => body.is_end_stream(),
            BodyKind::Inner { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            BodyKind::Full { body } => body.size_hint(),
            BodyKind::Engine { body } => body.size_hint(),
            BodyKind::Inner { body } => body.size_hint(),
        }
    }
}

/// A service answering `404 Not Found` to everything: what [`Engine::service`] wraps, for a
/// server that serves only Engine.IO.
#[derive(Debug, Clone, Copy, Default)]
pub struct NotFound;

impl<B> Service<Request<B>> for NotFound {
    type Response = Response<Empty<Bytes>>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: Request<B>) -> Self::Future {
        let mut res = Response::new(Empty::new());
        *res.status_mut() = StatusCode::NOT_FOUND;
        std::future::ready(Ok(res))
    }
}
