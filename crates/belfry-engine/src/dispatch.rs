//! Routes an engine request the way Node's engine.io `verify()` and `handshake()` do, in the same
//! order of checks, so that each refusal carries Node's error code.

use std::sync::Arc;

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

pub(crate) async fn handle<H: EngineHandler>(
    inner: Arc<EngineInner<H>>,
    mut req: Request<RequestBody>,
) -> EngineResponse {
    let is_upgrade = is_websocket_upgrade(req.method(), req.headers());
    let refuse = |error: RequestError| {
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
    };
    let query = Query::parse(req.uri().query());
    let transport = match query.transport {
        Some(Ok(transport)) if inner.config.allows_transport(transport) => transport,
        _ => return refuse(RequestError::UnknownTransport),
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
        return origin_refused(is_upgrade);
    }

    if let Some(sid) = &query.sid {
        let Some(socket) = inner.get(sid) else {
            return refuse(RequestError::UnknownSid);
        };
        if is_upgrade && transport == TransportType::Polling {
            return accept_and_close(req, &inner);
        }
        return match transport {
            TransportType::Polling if socket.transport() == TransportType::Polling => {
                polling::serve(&inner, socket, req).await
            }
            TransportType::Websocket
                if is_upgrade
                    && socket.transport() == TransportType::Polling
                    && inner.config.allow_upgrades =>
            {
                let key = match websocket::accept_key(req.headers()) {
                    Ok(key) => key,
                    Err(error) => return error.response(),
                };
                let on_upgrade = hyper::upgrade::on(&mut req);
                let (parts, _body) = req.into_parts();
                websocket::upgrade(&inner, socket, &parts, on_upgrade, &key)
            }
            // A WebSocket for a session that upgraded already: accepted and closed, as Node.
            TransportType::Websocket if is_upgrade && inner.config.allow_upgrades => {
                accept_and_close(req, &inner)
            }
            _ => refuse(RequestError::BadRequest),
        };
    }

    if req.method() != Method::GET {
        return refuse(RequestError::BadHandshakeMethod);
    }
    if transport == TransportType::Websocket && !is_upgrade {
        return refuse(RequestError::BadRequest);
    }
    let key = if is_upgrade && transport == TransportType::Websocket {
        match websocket::accept_key(req.headers()) {
            Ok(key) => Some(key),
            Err(error) => return error.response(),
        }
    } else {
        None
    };
    if let Some(check) = &inner.config.allow_request {
        let (parts, body) = req.into_parts();
        if let Err(message) = check(&parts).await {
            return refuse(RequestError::Forbidden(message));
        }
        req = Request::from_parts(parts, body);
    }
    if is_upgrade && transport == TransportType::Polling {
        return accept_and_close(req, &inner);
    }
    let on_upgrade = key.as_ref().map(|_| hyper::upgrade::on(&mut req));
    let (parts, _body) = req.into_parts();
    // Node: `EIO=4` speaks v4; anything else (or nothing) v3, accepted only with `allowEIO3`.
    let protocol = if query.eio.as_deref() == Some("4") {
        4
    } else {
        3
    };
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
            websocket::handshake(&inner, sid, parts, protocol, on_upgrade, &key)
        }
        _ => polling::handshake(&inner, sid, parts, protocol),
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
