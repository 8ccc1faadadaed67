//! The tower layer of a Socket.IO server.

use belfry_engine::{EngineLayer, EngineService};
use bytes::Bytes;
use tower_layer::Layer;

/// The tower layer of a Socket.IO server: answers the engine path (default `/socket.io/`) and
/// passes every other request to the service it wraps.
#[derive(Debug, Clone)]
pub struct SocketIoLayer(pub(super) EngineLayer);

impl SocketIoLayer {
    /// Wraps the engine's own HTTP requests in a tower layer (Node's `io.engine.use`); what it
    /// puts in the request extensions reaches handlers through
    /// [`HttpExtension`](crate::extract::HttpExtension).
    pub fn engine_layer<L, B>(self, layer: L) -> Self
    where
        L: Layer<belfry_engine::EngineHttp>,
        L::Service: tower_service::Service<
                http::Request<belfry_engine::RequestBody>,
                Response = http::Response<B>,
            > + Clone
            + Send
            + Sync
            + 'static,
        <L::Service as tower_service::Service<http::Request<belfry_engine::RequestBody>>>::Future:
            Send + 'static,
        <L::Service as tower_service::Service<http::Request<belfry_engine::RequestBody>>>::Error:
            Into<belfry_engine::BoxError>,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<belfry_engine::BoxError>,
    {
        SocketIoLayer(self.0.engine_layer(layer))
    }
}

impl<S> Layer<S> for SocketIoLayer {
    type Service = EngineService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        self.0.layer(inner)
    }
}
