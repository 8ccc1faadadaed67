//! Engine.IO session ids.

use std::{fmt, sync::Arc};

use base64::Engine as _;

/// An Engine.IO session id.
///
/// The default generator draws 15 bytes from the operating system's CSPRNG and encodes them as
/// 20 URL-safe base64 characters, as long as Node's ids. A custom generator (see
/// [`EngineConfigBuilder::session_id_generator`](crate::EngineConfigBuilder::session_id_generator))
/// may produce any non-empty string.
///
/// # Examples
///
/// ```
/// use belfry_engine::Sid;
///
/// let sid = Sid::random();
/// assert_eq!(sid.as_str().len(), 20);
/// assert!(sid.as_str().bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sid(Arc<str>);

impl Sid {
    /// A fresh random id: 120 bits from the operating system's CSPRNG, 20 URL-safe characters.
    ///
    /// # Panics
    ///
    /// Panics if the operating system cannot provide random bytes, which leaves no safe way to
    /// make session ids.
    pub fn random() -> Sid {
        let mut bytes = [0u8; 15];
        getrandom::fill(&mut bytes).expect("the OS random source is available");
        let mut out = String::with_capacity(20);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(bytes, &mut out);
        Sid(out.into())
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl serde::Serialize for Sid {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl From<&str> for Sid {
    fn from(s: &str) -> Self {
        Sid(s.into())
    }
}

impl From<String> for Sid {
    fn from(s: String) -> Self {
        Sid(s.into())
    }
}

impl std::borrow::Borrow<str> for Sid {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn a_million_ids_are_unique_and_url_safe() {
        let mut seen = HashSet::with_capacity(1_000_000);
        for _ in 0..1_000_000 {
            let sid = Sid::random();
            assert_eq!(sid.as_str().len(), 20);
            assert!(
                sid.as_str()
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            );
            assert!(seen.insert(sid), "duplicate session id");
        }
    }
}
