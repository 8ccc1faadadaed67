//! What Node calls `socket.handshake`: the details of the connection a socket came with.

use std::{
    net::SocketAddr,
    time::{SystemTime, UNIX_EPOCH},
};

use http::request::Parts;
use serde::Serialize;
use serde_json::{Map, Value};

/// The details of a socket's connection, as Node's `socket.handshake` has them; serializes to
/// the same JSON shape.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Handshake {
    /// The handshake request's headers, names in lowercase (repeated headers joined by `, `).
    pub headers: Map<String, Value>,
    /// When the socket connected, as JavaScript's `Date.toString()` writes it (UTC).
    pub time: String,
    /// The client's address: from axum's `ConnectInfo<SocketAddr>` when the app is served with
    /// `into_make_service_with_connect_info`, empty otherwise.
    pub address: String,
    /// True if the request had an `Origin` header.
    pub xdomain: bool,
    /// True if the request URI's scheme is `https` (behind a proxy, read `x-forwarded-proto`
    /// from `headers`).
    pub secure: bool,
    /// When the socket connected, in milliseconds since the Unix epoch.
    pub issued: u64,
    /// The handshake request's path and query.
    pub url: String,
    /// The handshake request's query parameters (`EIO`, `transport`, `t` included, as in Node).
    pub query: Map<String, Value>,
    /// The CONNECT packet's auth object (`{}` when the client sent none).
    pub auth: Value,
}

impl Handshake {
    pub(crate) fn new(parts: &Parts, auth: Option<&str>, issued: u64) -> Handshake {
        let mut headers = Map::new();
        for (name, value) in &parts.headers {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            match headers.get_mut(name.as_str()) {
                Some(Value::String(existing)) => {
                    existing.push_str(", ");
                    existing.push_str(&value);
                }
                _ => {
                    headers.insert(name.as_str().to_owned(), Value::String(value));
                }
            }
        }
        let query = query_object(parts.uri.query().unwrap_or(""));
        let address = parts
            .extensions
            .get::<axum::extract::ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip().to_string())
            .unwrap_or_default();
        Handshake {
            headers,
            time: js_date_string(issued / 1000),
            address,
            xdomain: parts.headers.contains_key(http::header::ORIGIN),
            secure: parts.uri.scheme_str() == Some("https"),
            issued,
            url: parts
                .uri
                .path_and_query()
                .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned()),
            query,
            auth: auth
                .and_then(|auth| serde_json::from_str(auth).ok())
                .unwrap_or_else(|| Value::Object(Map::new())),
        }
    }
}

/// A query string as Node's `Object.fromEntries(new URLSearchParams(query))`: keys and values
/// form-decoded (`%XX` escapes, `+` as a space), the last of repeated keys wins.
fn query_object(query: &str) -> Map<String, Value> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (
                belfry_core::proto::query::form_decode(key),
                Value::String(belfry_core::proto::query::form_decode(value)),
            )
        })
        .collect()
}

/// The value of `name` in a query string, as `query_object` would have it (decoded, the last of
/// repeated keys), without building the whole object.
pub(crate) fn query_param(query: &str, name: &str) -> Option<String> {
    // From the end: the last of repeated keys wins.
    let value = query.rsplit('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let same = if key.contains(['%', '+']) {
            belfry_core::proto::query::form_decode(key) == name
        } else {
            key == name
        };
        (same && !pair.is_empty()).then_some(value)
    })?;
    Some(belfry_core::proto::query::form_decode(value))
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `Sat Nov 21 2026 23:30:00 GMT+0000 (Coordinated Universal Time)` for `secs` since the epoch.
fn js_date_string(secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs / 86_400;
    let (h, m, s) = (secs % 86_400 / 3600, secs % 3600 / 60, secs % 60);
    let (year, month, day) = civil(days);
    format!(
        "{} {} {:02} {} {:02}:{:02}:{:02} GMT+0000 (Coordinated Universal Time)",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        day,
        year,
        h,
        m,
        s
    )
}

/// `2026-11-22T04:30:00.000Z` (JavaScript's `Date.toJSON`) for `millis` since the epoch.
#[cfg_attr(not(feature = "admin"), allow(dead_code))]
pub(crate) fn iso_date(millis: u64) -> String {
    let secs = millis / 1000;
    let (year, month, day) = civil(secs / 86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
        millis % 1000
    )
}

/// The civil date (year, month 1–12, day) of `days` since 1970-01-01 (Howard Hinnant's
/// algorithm).
fn civil(days: u64) -> (i64, i64, i64) {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_written_as_javascript_does() {
        assert_eq!(
            js_date_string(0),
            "Thu Jan 01 1970 00:00:00 GMT+0000 (Coordinated Universal Time)"
        );
        assert_eq!(
            js_date_string(1_795_304_096),
            "Sat Nov 21 2026 23:34:56 GMT+0000 (Coordinated Universal Time)"
        );
        assert_eq!(
            js_date_string(951_782_400),
            "Tue Feb 29 2000 00:00:00 GMT+0000 (Coordinated Universal Time)"
        );
        assert_eq!(iso_date(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_date(1_795_304_096_789), "2026-11-21T23:34:56.789Z");
    }

    #[test]
    fn handshake_reads_the_request() {
        let req = http::Request::get("/socket.io/?EIO=4&transport=polling&t=x")
            .header("origin", "http://a.example")
            .header("x-many", "1")
            .header("x-many", "2")
            .body(())
            .unwrap();
        let (parts, ()) = req.into_parts();
        let handshake = Handshake::new(&parts, Some(r#"{"token":"t"}"#), now_millis());
        assert_eq!(handshake.url, "/socket.io/?EIO=4&transport=polling&t=x");
        assert_eq!(handshake.query["EIO"], "4");
        assert_eq!(handshake.headers["x-many"], "1, 2");
        assert!(handshake.xdomain);
        assert!(!handshake.secure);
        assert_eq!(handshake.auth, serde_json::json!({"token": "t"}));
        assert_eq!(Handshake::new(&parts, None, 0).auth, serde_json::json!({}));
    }

    /// As `URLSearchParams` reads it in Node: decoded, `+` a space, the last repeated key wins.
    #[test]
    fn handshake_query_is_form_decoded() {
        let req = http::Request::get(
            "/socket.io/?EIO=4&transport=polling&%26a=%26%3D%3Fa&b=a%2Bb%20c&c=a+b&d=1&d=2&e&=f&bad=%zz",
        )
        .body(())
        .unwrap();
        let (parts, ()) = req.into_parts();
        let handshake = Handshake::new(&parts, None, 0);
        // One parameter reads the same without the whole object.
        let query = parts.uri.query().unwrap_or("");
        for (name, value) in &handshake.query {
            assert_eq!(
                query_param(query, name).as_ref(),
                value.as_str().map(str::to_owned).as_ref()
            );
        }
        assert_eq!(query_param(query, "missing"), None);
        assert_eq!(
            Value::Object(handshake.query),
            serde_json::json!({
                "EIO": "4", "transport": "polling", "&a": "&=?a", "b": "a+b c", "c": "a b",
                "d": "2", "e": "", "": "f", "bad": "%zz"
            })
        );
    }
}
