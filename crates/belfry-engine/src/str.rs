//! A cheaply cloneable, immutable UTF-8 string backed by [`Bytes`].

use std::{fmt, ops::Deref};

use bytes::Bytes;
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// An immutable UTF-8 string that clones in O(1), as [`Bytes`] does.
///
/// Engine.IO text messages travel as `Str`: a WebSocket text frame or a slice of a polling body
/// becomes a `Str` without copying, and one `Str` can be queued on many sockets.
///
/// # Examples
///
/// ```
/// use belfry_engine::Str;
///
/// let s = Str::from("hello");
/// assert_eq!(&*s, "hello");
/// assert_eq!(s.clone().len(), 5);
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Str(Utf8Bytes);

impl Str {
    /// Creates a `Str` from a static string, without allocating.
    pub const fn from_static(s: &'static str) -> Self {
        Str(Utf8Bytes::from_static(s))
    }

    /// The string slice.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The underlying bytes (UTF-8).
    pub fn as_bytes(&self) -> &Bytes {
        self.0.as_ref()
    }

    /// Converts into the underlying bytes.
    pub fn into_bytes(self) -> Bytes {
        self.0.into()
    }

    /// A sub-string of `self` sharing the same buffer.
    ///
    /// # Panics
    ///
    /// Panics if `range` is out of bounds or does not fall on `char` boundaries, as
    /// `str` indexing does.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Str {
        // Checks the boundaries the way `str` indexing does (the panic is documented).
        let _ = &self.as_str()[range.clone()];
        Str(Utf8Bytes::try_from(self.as_bytes().slice(range))
            .expect("a str slice on char boundaries is valid UTF-8"))
    }

    pub(crate) fn into_utf8_bytes(self) -> Utf8Bytes {
        self.0
    }

    pub(crate) fn from_utf8_bytes(b: Utf8Bytes) -> Self {
        Str(b)
    }
}

impl TryFrom<Bytes> for Str {
    type Error = std::str::Utf8Error;

    fn try_from(bytes: Bytes) -> Result<Self, Self::Error> {
        Utf8Bytes::try_from(bytes).map(Str)
    }
}

impl From<String> for Str {
    fn from(s: String) -> Self {
        Str(s.into())
    }
}

impl From<&str> for Str {
    fn from(s: &str) -> Self {
        Str(s.into())
    }
}

impl From<Str> for Bytes {
    fn from(s: Str) -> Self {
        s.into_bytes()
    }
}

impl Deref for Str {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Str {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq<str> for Str {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Str {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Debug for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}
