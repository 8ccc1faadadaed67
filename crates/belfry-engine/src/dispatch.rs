//! Routes an engine request the way Node's engine.io `verify()` and `handshake()` do, in the same
//! order of checks, so that each refusal carries Node's error code.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use http::{Method, Request, StatusCode};

use crate::{
    EngineHandler, Sid, TransportType,
    engine::EngineInner,
    errors::RequestError,
    request::{
        EngineResponse, Query, empty, is_websocket_upgrade, origin_refused, polling_error,
        upgrade_error,
    },
    service::RequestBody,
    transport::{polling, websocket},
};

/// What routing a request gives: its answer, or the future that answers it later (a polling
/// request, or a handshake waiting for `allow_request`).
///
/// Routing itself does not wait, so the future a request is held with carries the state of
/// its own path only: an `async fn` that awaited one of several paths would be as large as the
/// largest, and keep its arguments twice (once as captured, once as bound), for each long-poll
/// a client holds open.
///
/// It is itself the future that answers (the engine's service maps it to its response type):
/// ready at once, or the path's own future.
pub(crate) enum Dispatched {
    /// The answer, taken when polled.
    Ready(Option<EngineResponse>),
    Later(Pin<Box<dyn Future<Output = EngineResponse> + Send>>),
}

impl From<EngineResponse> for Dispatched {
    fn from(res: EngineResponse) -> Self {
        Dispatched::Ready(Some(res))
    }
}

impl Future for Dispatched {
    type Output = EngineResponse;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<EngineResponse> {
        match self.get_mut() {
            Dispatched::Ready(res) => {
                Poll::Ready(res.take().expect("a ready future is polled once"))
            }
            Dispatched::Later(future) => future.as_mut().poll(cx),
        }
    }
}

pub(crate) fn handle<H: EngineHandler>(
    inner: &Arc<EngineInner<H>>,
    mut req: Request<RequestBody>,
) -> Dispatched {
    let is_upgrade = is_websocket_upgrade(req.method(), req.headers());
    let refuse = move |error: RequestError| refusal(is_upgrade, error);
    let query = Query::parse(req.uri().query());
    let transport = match query.transport {
        Some(Ok(transport)) if inner.config.allows_transport(transport) => transport,
        _ => return refuse(RequestError::UnknownTransport).into(),
    };
    // `allowed_origins`, Belfry's own: on every request, with a sid or not, before anything
    // about a session is looked at. (Node refuses an `Origin` holding control characters, code
    // 3; hyper's parser refuses such a header before the request reaches us, with 400.)
    if let Some(allowed) = &inner.config.allowed_origins
        && !allowed.allows(req.headers())
    {
        tracing::debug!(
            origin = ?req.headers().get(http::header::ORIGIN),
            "engine request refused: origin not allowed"
        );
        return origin_refused(is_upgrade).into();
    }

    if let Some(sid) = &query.sid {
        let Some(socket) = inner.get(sid) else {
            return refuse(RequestError::UnknownSid).into();
        };
        if is_upgrade && transport == TransportType::Polling {
            return accept_and_close(req, inner).into();
        }
        let res = match transport {
            TransportType::Polling if socket.transport() == TransportType::Polling => {
                return polling::serve(inner.clone(), socket, req);
            }
            TransportType::Websocket
                if is_upgrade
                    && socket.transport() == TransportType::Polling
                    && inner.config.allow_upgrades =>
            {
                let key = match websocket::accept_key(req.headers()) {
                    Ok(key) => key,
                    Err(error) => return error.response().into(),
                };
                let on_upgrade = hyper::upgrade::on(&mut req);
                let (parts, _body) = req.into_parts();
                websocket::upgrade(inner, socket, &parts, on_upgrade, &key)
            }
            // A WebSocket for a session that upgraded already: accepted and closed, as Node.
            TransportType::Websocket if is_upgrade && inner.config.allow_upgrades => {
                accept_and_close(req, inner)
            }
            _ => refuse(RequestError::BadRequest),
        };
        return res.into();
    }

    if req.method() != Method::GET {
        return refuse(RequestError::BadHandshakeMethod).into();
    }
    if transport == TransportType::Websocket && !is_upgrade {
        return refuse(RequestError::BadRequest).into();
    }
    let key = if is_upgrade && transport == TransportType::Websocket {
        match websocket::accept_key(req.headers()) {
            Ok(key) => Some(key),
            Err(error) => return error.response().into(),
        }
    } else {
        None
    };
    let eio4 = query.eio.as_deref() == Some("4");
    let Some(check) = &inner.config.allow_request else {
        return handshake(inner, req, is_upgrade, transport, key, eio4).into();
    };
    let (check, inner) = (check.clone(), inner.clone());
    Dispatched::Later(Box::pin(async move {
        let (parts, body) = req.into_parts();
        if let Err(message) = check(&parts).await {
            return refuse(RequestError::Forbidden(message));
        }
        let req = Request::from_parts(parts, body);
        handshake(&inner, req, is_upgrade, transport, key, eio4)
    }))
}

/// A new session's handshake, once every check before `allow_request` (and it, if set) passed.
fn handshake<H: EngineHandler>(
    inner: &Arc<EngineInner<H>>,
    mut req: Request<RequestBody>,
    is_upgrade: bool,
    transport: TransportType,
    key: Option<String>,
    eio4: bool,
) -> EngineResponse {
    let refuse = |error: RequestError| refusal(is_upgrade, error);
    if is_upgrade && transport == TransportType::Polling {
        return accept_and_close(req, inner);
    }
    let on_upgrade = key.as_ref().map(|_| hyper::upgrade::on(&mut req));
    let (parts, _body) = req.into_parts();
    // Node: `EIO=4` speaks v4; anything else (or nothing) v3, accepted only with `allowEIO3`.
    let protocol = if eio4 { 4 } else { 3 };
    if protocol == 3 && !inner.config.allow_eio3 {
        return refuse(RequestError::UnsupportedProtocolVersion);
    }
    if inner.at_capacity() {
        return empty(StatusCode::SERVICE_UNAVAILABLE);
    }
    let sid = match &inner.config.session_id_generator {
        Some(generate) => match generate(&parts) {
            Ok(sid) if !sid.as_str().is_empty() => sid,
            _ => return refuse(RequestError::BadRequest),
        },
        None => Sid::random(),
    };
    match (on_upgrade, key) {
        (Some(on_upgrade), Some(key)) => {
            websocket::handshake(inner, sid, parts, protocol, on_upgrade, &key)
        }
        _ => polling::handshake(inner, sid, parts, protocol),
    }
}

/// The answer refusing a request: Node's error code and message, as an upgrade's or a polling
/// request's refusal.
fn refusal(is_upgrade: bool, error: RequestError) -> EngineResponse {
    tracing::debug!(
        code = error.code(),
        message = error.message(),
        "engine request refused"
    );
    if is_upgrade {
        upgrade_error(&error)
    } else {
        polling_error(&error)
    }
}

/// An upgrade request Node's engine.io takes (the WebSocket handshake succeeds) only to close
/// the new connection at once: for a transport that is not WebSocket, or a session that
/// upgrades or upgraded already.
fn accept_and_close<H: EngineHandler>(
    mut req: Request<RequestBody>,
    inner: &Arc<EngineInner<H>>,
) -> EngineResponse {
    let key = match websocket::accept_key(req.headers()) {
        Ok(key) => key,
        Err(error) => return error.response(),
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    let (parts, _body) = req.into_parts();
    websocket::accept_and_close(inner, &parts, on_upgrade, &key)
}
