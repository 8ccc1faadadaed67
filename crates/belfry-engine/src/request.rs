//! Reading an engine request (query, upgrade headers) and writing Node's error responses.

use std::borrow::Cow;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use http_body_util::Full;

use belfry_proto::query::form_decode as percent_decode;

use crate::{TransportType, errors::RequestError};

pub(crate) type EngineResponse = Response<Full<Bytes>>;

/// The engine's query parameters, borrowed from the query string unless they were encoded.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Query<'a> {
    pub(crate) eio: Option<Cow<'a, str>>,
    pub(crate) transport: Option<Result<TransportType, ()>>,
    pub(crate) sid: Option<Cow<'a, str>>,
}

impl<'a> Query<'a> {
    /// Parses a query string as Node's engine.io reads it
    /// (`Object.fromEntries(new URL(..).searchParams)`): keys and values form-decoded, the last
    /// of repeated keys wins. An unknown `transport` is `Some(Err(()))`.
    ///
    /// Read on every request: split by a scan of the bytes, which costs less on these short
    /// strings than `str::split`'s searcher (the separators are ASCII, so every piece is on a
    /// character boundary); a value is copied only when it has something to decode.
    pub(crate) fn parse(query: Option<&'a str>) -> Query<'a> {
        let mut out = Query::default();
        let mut rest = query.unwrap_or("");
        while !rest.is_empty() {
            let end = rest.bytes().position(|b| b == b'&').unwrap_or(rest.len());
            let pair = &rest[..end];
            rest = rest.get(end + 1..).unwrap_or("");
            let (key, value) = match pair.bytes().position(|b| b == b'=') {
                Some(at) => (&pair[..at], &pair[at + 1..]),
                None => (pair, ""),
            };
            // Node decodes keys as it decodes values (`%45IO=4` is `EIO=4`): a key is scanned
            // for what to decode only when it is none of the three as clients write them.
            if !out.set(key, value) && key.bytes().any(|b| b == b'%' || b == b'+') {
                out.set(&percent_decode(key), value);
            }
        }
        out
    }

    /// Sets `key`'s parameter if it is one of the engine's; returns whether it was.
    fn set(&mut self, key: &str, value: &'a str) -> bool {
        match key {
            "EIO" => self.eio = Some(decoded(value)),
            // Node tests the sid for truth: an empty one is no sid (and still overrides an
            // earlier one, the last key winning).
            "sid" => self.sid = Some(decoded(value)).filter(|sid| !sid.is_empty()),
            "transport" => self.transport = Some(TransportType::parse(&decoded(value)).ok_or(())),
            _ => return false,
        }
        true
    }
}

/// Whether a v3 client asked for base64 payloads: Node's `supportsBinary = !req._query.b64`,
/// the last `b64` of the query (its key form-decoded too) with a value that is not empty.
pub(crate) fn asks_base64(query: Option<&str>) -> bool {
    query
        .unwrap_or("")
        .rsplit('&')
        .find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decoded(key) == "b64").then_some(!value.is_empty())
        })
        .unwrap_or(false)
}

/// `value` form-decoded, borrowed when there is nothing to decode.
fn decoded(value: &str) -> Cow<'_, str> {
    if value.bytes().any(|b| b == b'%' || b == b'+') {
        Cow::Owned(percent_decode(value))
    } else {
        Cow::Borrowed(value)
    }
}

/// True for a request asking to switch to WebSocket: `GET`, `Upgrade: websocket` and a
/// `Connection` header listing `upgrade`.
pub(crate) fn is_websocket_upgrade(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::GET
        && header_has_token(headers, header::UPGRADE, "websocket")
        && header_has_token(headers, header::CONNECTION, "upgrade")
}

fn header_has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|part| part.trim().eq_ignore_ascii_case(token))
        })
    })
}

/// The answer to a refused polling request: status 400 (403 for `Forbidden`) and Node's JSON
/// body `{"code":N,"message":"..."}`.
pub(crate) fn polling_error(error: &RequestError) -> EngineResponse {
    let status = match error {
        RequestError::Forbidden(_) => StatusCode::FORBIDDEN,
        _ => StatusCode::BAD_REQUEST,
    };
    let body = serde_json::json!({ "code": error.code(), "message": error.message() }).to_string();
    response(status, "application/json", Bytes::from(body))
}

/// The answer to a refused WebSocket upgrade, as Node writes it on the raw socket: 400, the
/// message as an HTML body, and `Connection: close`.
pub(crate) fn upgrade_error(error: &RequestError) -> EngineResponse {
    upgrade_refusal(StatusCode::BAD_REQUEST, error)
}

/// The answer to an engine request from an origin not allowed
/// ([`EngineConfigBuilder::allowed_origins`](crate::EngineConfigBuilder::allowed_origins)): `403`
/// code 4 `Forbidden`, as a refused `allowRequest`; on a WebSocket upgrade, `403` too (Node's
/// `abortUpgrade` writes `400` for every refusal; RFC 6455 §10.2 names `403` for this one).
pub(crate) fn origin_refused(is_upgrade: bool) -> EngineResponse {
    let error = RequestError::Forbidden("Forbidden".to_owned());
    if is_upgrade {
        upgrade_refusal(StatusCode::FORBIDDEN, &error)
    } else {
        polling_error(&error)
    }
}

fn upgrade_refusal(status: StatusCode, error: &RequestError) -> EngineResponse {
    let mut res = response(status, "text/html", Bytes::from(error.message().to_owned()));
    res.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    res
}

pub(crate) fn response(
    status: StatusCode,
    content_type: &'static str,
    body: Bytes,
) -> EngineResponse {
    let mut res = Response::new(Full::new(body));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    res
}

pub(crate) fn empty(status: StatusCode) -> EngineResponse {
    let mut res = Response::new(Full::new(Bytes::new()));
    *res.status_mut() = status;
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_engine_query() {
        let q = Query::parse(Some("EIO=4&transport=polling&t=abc&sid=a%2Db"));
        assert_eq!(q.eio.as_deref(), Some("4"));
        assert_eq!(q.transport, Some(Ok(TransportType::Polling)));
        assert_eq!(q.sid.as_deref(), Some("a-b"));
        // The last of repeated keys wins, as in Node's `Object.fromEntries(searchParams)`.
        let q = Query::parse(Some(
            "EIO=4&EIO=3&sid=a&sid=b&transport=abc&transport=polling",
        ));
        assert_eq!(q.eio.as_deref(), Some("3"));
        assert_eq!(q.sid.as_deref(), Some("b"));
        assert_eq!(q.transport, Some(Ok(TransportType::Polling)));
        // Empty pairs, a key alone, `=` in a value; only what was encoded is copied.
        let q = Query::parse(Some("&&EIO&sid=a=b&&transport=websocket&"));
        assert_eq!(q.eio.as_deref(), Some(""));
        assert!(matches!(q.sid, Some(Cow::Borrowed("a=b"))));
        assert_eq!(q.transport, Some(Ok(TransportType::Websocket)));
        // Keys are decoded as values are; `+` is a space.
        let q = Query::parse(Some("%45IO=4&%74ransport=polling&si%64=x&E+IO=3"));
        assert_eq!(q.eio.as_deref(), Some("4"));
        assert_eq!(q.transport, Some(Ok(TransportType::Polling)));
        assert_eq!(q.sid.as_deref(), Some("x"));
        // An empty sid is none, as Node tests it for truth; the last one still wins.
        assert_eq!(Query::parse(Some("EIO=4&sid=")).sid, None);
        assert_eq!(Query::parse(Some("sid=abc&sid=")).sid, None);
        assert_eq!(
            Query::parse(Some("sid=&sid=abc")).sid.as_deref(),
            Some("abc")
        );
        assert!(matches!(
            Query::parse(Some("sid=a+b")).sid,
            Some(Cow::Owned(sid)) if sid == "a b"
        ));
        assert_eq!(Query::parse(Some("")), Query::default());
        assert_eq!(Query::parse(None), Query::default());
    }

    /// As Node's `!req._query.b64`: the last `b64` wins, an empty value is no request, the key
    /// is decoded.
    #[test]
    fn base64_is_asked_as_node_reads_it() {
        for (query, asked) in [
            (None, false),
            (Some("EIO=3&transport=polling"), false),
            (Some("EIO=3&b64=1"), true),
            (Some("b64=0"), true),
            (Some("b64="), false),
            (Some("b64"), false),
            (Some("b64=1&b64="), false),
            (Some("b64=&b64=1"), true),
            (Some("%62%36%34=1"), true),
            (Some("b64x=1&xb64=1"), false),
        ] {
            assert_eq!(asks_base64(query), asked, "{query:?}");
        }
    }

    #[test]
    fn bad_transports() {
        for query in [
            "transport=abc",
            "transport=__proto__",
            "transport=constructor",
            "transport=webtransport",
            "transport=polling&transport=abc",
            "transport=",
        ] {
            assert_eq!(
                Query::parse(Some(query)).transport,
                Some(Err(())),
                "{query}"
            );
        }
        assert_eq!(Query::parse(Some("EIO=4")).transport, None);
    }

    #[test]
    fn percent_decoding_keeps_bad_escapes() {
        assert_eq!(percent_decode("a%zz%4"), "a%zz%4");
        assert_eq!(percent_decode("%41+b"), "A b");
    }
}
