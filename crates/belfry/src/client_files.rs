//! Middleware that serves the official browser client (`socket.io.min.js` and its siblings) under
//! the engine path, as Node's `serveClient` does.
//!
//! The files are read once, from the `dist` folder of the `socket.io-client` npm package the
//! user points at ([`SocketIoBuilder::serve_client`](crate::SocketIoBuilder::serve_client)), and
//! answered from memory with an `ETag`; a request carrying that tag in `If-None-Match` gets
//! `304 Not Modified`.

use std::{
    collections::HashMap,
    future::Future,
    io,
    path::Path,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use belfry_engine::{BoxError, EngineBody, RequestBody};
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use tower_layer::Layer;
use tower_service::Service;

/// The files Node's `serveClient` answers, all from the client package's `dist` folder.
const FILES: [&str; 8] = [
    "socket.io.js",
    "socket.io.js.map",
    "socket.io.min.js",
    "socket.io.min.js.map",
    "socket.io.esm.min.js",
    "socket.io.esm.min.js.map",
    "socket.io.msgpack.min.js",
    "socket.io.msgpack.min.js.map",
];

/// One file held in memory.
#[derive(Debug)]
struct ClientFile {
    body: Bytes,
    etag: HeaderValue,
    content_type: HeaderValue,
}

/// The client files found in a `dist` folder, by file name.
#[derive(Debug, Clone)]
pub(crate) struct ClientFiles(Arc<HashMap<&'static str, ClientFile>>);

impl ClientFiles {
    /// Reads every client file present in `dir`; `socket.io.min.js` must be among them.
    pub(crate) fn read(dir: &Path) -> io::Result<ClientFiles> {
        let mut files = HashMap::new();
        for name in FILES {
            let body = match std::fs::read(dir.join(name)) {
                Ok(body) => Bytes::from(body),
                Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                Err(error) => return Err(error),
            };
            let content_type = if name.ends_with(".map") {
                "application/json; charset=utf-8"
            } else {
                "application/javascript; charset=utf-8"
            };
            let etag = format!("\"{:016x}\"", fnv1a(&body));
            files.insert(
                name,
                ClientFile {
                    body,
                    etag: HeaderValue::try_from(etag).expect("hex digits are a valid header"),
                    content_type: HeaderValue::from_static(content_type),
                },
            );
        }
        if !files.contains_key("socket.io.min.js") {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "no socket.io.min.js in {}: point serve_client at the `dist` folder of the \
                     socket.io-client npm package (node_modules/socket.io-client/dist)",
                    dir.display()
                ),
            ));
        }
        Ok(ClientFiles(Arc::new(files)))
    }

    /// The answer to `req` if it asks for a client file.
    fn answer<B>(&self, engine_path: &str, req: &Request<B>) -> Option<Response<EngineBody>> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return None;
        }
        let name = req.uri().path().strip_prefix(engine_path)?;
        let file = self.0.get(name)?;
        let fresh = req
            .headers()
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(|tag| tag.trim())
            .any(|tag| tag == "*" || file.etag == tag.trim_start_matches("W/"));
        let (status, body) = if fresh {
            (StatusCode::NOT_MODIFIED, Bytes::new())
        } else if req.method() == Method::HEAD {
            (StatusCode::OK, Bytes::new())
        } else {
            (StatusCode::OK, file.body.clone())
        };
        let mut res = Response::new(
            Full::new(body)
                .map_err(|never| match never {})
                .boxed_unsync(),
        );
        *res.status_mut() = status;
        let headers = res.headers_mut();
        headers.insert(header::ETAG, file.etag.clone());
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=0"),
        );
        if status == StatusCode::OK {
            headers.insert(header::CONTENT_TYPE, file.content_type.clone());
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(file.body.len()));
        }
        Some(res)
    }
}

/// 64-bit FNV-1a: a stable content hash for the `ETag` (not a security boundary).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The layer that answers client files before the engine sees the request.
#[derive(Debug, Clone)]
pub(crate) struct ServeClientLayer {
    pub(crate) files: ClientFiles,
    pub(crate) path: Arc<str>,
}

impl<S> Layer<S> for ServeClientLayer {
    type Service = ServeClient<S>;

    fn layer(&self, inner: S) -> ServeClient<S> {
        ServeClient {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`ServeClientLayer`].
#[derive(Debug, Clone)]
pub(crate) struct ServeClient<S> {
    inner: S,
    layer: ServeClientLayer,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S> Service<Request<RequestBody>> for ServeClient<S>
where
    S: Service<Request<RequestBody>, Response = Response<EngineBody>, Error = BoxError>,
    S::Future: Send + 'static,
{
    type Response = Response<EngineBody>;
    type Error = BoxError;
    type Future = BoxFuture<Result<Response<EngineBody>, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<RequestBody>) -> Self::Future {
        match self.layer.files.answer(&self.layer.path, &req) {
            Some(res) => Box::pin(std::future::ready(Ok(res))),
            None => Box::pin(self.inner.call(req)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_reference_vectors() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn a_folder_without_the_bundle_is_refused_with_a_hint() {
        let error = ClientFiles::read(Path::new("/nonexistent")).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
        assert!(error.to_string().contains("socket.io-client/dist"));
    }
}
