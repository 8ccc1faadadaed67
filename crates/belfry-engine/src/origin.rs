//! The `Origin` allow-list of [`EngineConfigBuilder::allowed_origins`](crate::EngineConfigBuilder::allowed_origins).

use std::sync::Arc;

use http::{HeaderMap, header};

/// Origins in their serialized form, lowercased, without a trailing slash or a default port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AllowedOrigins(Arc<[String]>);

impl AllowedOrigins {
    pub(crate) fn new<I, S>(origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        AllowedOrigins(
            origins
                .into_iter()
                .map(|origin| normalize(origin.as_ref()))
                .collect(),
        )
    }

    /// True when the request has no `Origin` header (not a browser's cross-origin request), or
    /// when every `Origin` it carries is listed. A value that is not visible ASCII is refused.
    pub(crate) fn allows(&self, headers: &HeaderMap) -> bool {
        headers.get_all(header::ORIGIN).iter().all(|value| {
            value
                .to_str()
                .is_ok_and(|origin| self.0.iter().any(|allowed| *allowed == normalize(origin)))
        })
    }
}

/// `scheme://host[:port]` as browsers serialize it: lowercase (scheme and host are
/// case-insensitive; an origin has no path), no trailing slash, no default port.
fn normalize(origin: &str) -> String {
    let mut origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
    let default_port = match origin.split_once("://") {
        Some(("http" | "ws", _)) => ":80",
        Some(("https" | "wss", _)) => ":443",
        _ => "",
    };
    if !default_port.is_empty() && origin.ends_with(default_port) {
        origin.truncate(origin.len() - default_port.len());
    }
    origin
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn with_origins(values: &[&[u8]]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            if let Ok(value) = HeaderValue::from_bytes(value) {
                headers.append(header::ORIGIN, value);
            }
        }
        headers
    }

    #[test]
    fn exact_origins_match_case_insensitively() {
        let allowed = AllowedOrigins::new(["https://App.example/", "http://127.0.0.1:3000"]);
        for ok in [
            &b"https://app.example"[..],
            b"HTTPS://APP.EXAMPLE",
            b"https://app.example:443",
            b"http://127.0.0.1:3000",
        ] {
            assert!(allowed.allows(&with_origins(&[ok])), "{ok:?}");
        }
        for refused in [
            &b"https://app.example:8443"[..],
            b"http://app.example",
            b"https://app.example.evil",
            b"https://evil.app.example",
            b"http://127.0.0.1:30000",
            b"http://127.0.0.1",
            b"null",
            b"",
            b"https://app.example\xff",
        ] {
            assert!(!allowed.allows(&with_origins(&[refused])), "{refused:?}");
        }
    }

    #[test]
    fn no_origin_is_allowed_and_every_origin_must_be() {
        let allowed = AllowedOrigins::new(["https://app.example"]);
        assert!(allowed.allows(&HeaderMap::new()));
        assert!(!allowed.allows(&with_origins(&[
            b"https://app.example",
            b"https://evil.example"
        ])));
        let none = AllowedOrigins::new(Vec::<String>::new());
        assert!(none.allows(&HeaderMap::new()));
        assert!(!none.allows(&with_origins(&[b"https://app.example"])));
    }

    #[test]
    fn default_ports_are_dropped() {
        assert_eq!(normalize("http://a.example:80"), "http://a.example");
        assert_eq!(normalize("https://a.example:443/"), "https://a.example");
        assert_eq!(normalize("http://a.example:443"), "http://a.example:443");
        assert_eq!(normalize("http://[::1]:80"), "http://[::1]");
    }
}
