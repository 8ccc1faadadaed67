//! A cheaply cloneable, immutable UTF-8 string backed by [`Bytes`].

use std::{fmt, ops::Deref};

use bytes::Bytes;
use bytestring::ByteString;

/// An immutable UTF-8 string that clones in O(1), as [`Bytes`] does.
///
/// Engine.IO text messages travel as `Str`: a WebSocket text frame or a slice of a polling body
/// becomes a `Str` without copying, and one `Str` can be queued on many sockets.
///
/// # Examples
///
/// ```
/// use belfry_proto::Str;
///
/// let s = Str::from("hello");
/// assert_eq!(&*s, "hello");
/// assert_eq!(s.clone().len(), 5);
/// ```
///
/// A sub-string ([`Str::slice`]) shares the buffer and costs O(1): it keeps the whole buffer's
/// checked UTF-8 and a range into it, so slicing never checks the bytes again.
#[derive(Clone)]
pub struct Str {
    /// Checked UTF-8: the range below is on its char boundaries.
    buf: ByteString,
    start: usize,
    end: usize,
}

impl Str {
    /// Creates a `Str` from a static string, without allocating.
    pub const fn from_static(s: &'static str) -> Self {
        Str {
            buf: ByteString::from_static(s),
            start: 0,
            end: s.len(),
        }
    }

    fn whole(buf: ByteString) -> Self {
        let end = buf.len();
        Str { buf, start: 0, end }
    }

    /// The string slice.
    pub fn as_str(&self) -> &str {
        // The range is on char boundaries of the buffer's text (`slice` checked them).
        &self.buf[self.start..self.end]
    }

    /// The UTF-8 bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.as_str().as_bytes()
    }

    /// Converts into the underlying bytes.
    pub fn into_bytes(self) -> Bytes {
        self.buf.into_bytes().slice(self.start..self.end)
    }

    /// A sub-string of `self` sharing the same buffer, in O(1).
    ///
    /// # Panics
    ///
    /// Panics if `range` is out of bounds or does not fall on `char` boundaries, as
    /// `str` indexing does.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Str {
        self.clone().into_slice(range)
    }

    /// [`Str::slice`] of a string given away: no new reference to the buffer is taken (see
    /// [`Str::into_widened_front`]).
    ///
    /// # Panics
    ///
    /// As [`Str::slice`].
    pub fn into_slice(self, range: std::ops::Range<usize>) -> Str {
        // Checks the boundaries the way `str` indexing does (the panic is documented).
        let _ = &self.as_str()[range.clone()];
        Str {
            start: self.start + range.start,
            end: self.start + range.end,
            buf: self.buf,
        }
    }

    /// `self` with `prefix` in front, if its buffer holds exactly `prefix` right before it: the
    /// wider string shares the buffer.
    ///
    /// ```
    /// use belfry_proto::Str;
    ///
    /// let text = Str::from("42[1]");
    /// let json = text.slice(2..5);
    /// assert_eq!(json.widen_front("42").unwrap(), "42[1]");
    /// assert!(json.widen_front("43").is_none());
    /// ```
    pub fn widen_front(&self, prefix: &str) -> Option<Str> {
        let start = self.front_start(prefix)?;
        Some(Str {
            buf: self.buf.clone(),
            start,
            end: self.end,
        })
    }

    /// [`Str::widen_front`] of a string given away: it keeps its reference to the buffer
    /// instead of taking one more (which, for a buffer made from a `String`, allocates the
    /// first time). Gives `self` back unchanged if the buffer does not hold `prefix` right
    /// before it.
    ///
    /// ```
    /// use belfry_proto::Str;
    ///
    /// let json = Str::from(String::from("42[1]")).into_slice(2..5);
    /// assert_eq!(json.into_widened_front("42").unwrap(), "42[1]");
    /// ```
    ///
    /// # Errors
    ///
    /// `self`, when `prefix` is not what comes before it in the buffer.
    pub fn into_widened_front(self, prefix: &str) -> Result<Str, Str> {
        match self.front_start(prefix) {
            Some(start) => Ok(Str { start, ..self }),
            None => Err(self),
        }
    }

    /// Where `self` would start with `prefix` in front, if its buffer holds exactly that.
    fn front_start(&self, prefix: &str) -> Option<usize> {
        let start = self.start.checked_sub(prefix.len())?;
        // Equal to a `str`, so `start` is on a char boundary.
        (self.buf.as_bytes().get(start..self.start)? == prefix.as_bytes()).then_some(start)
    }

    /// True if the buffer holds exactly `prefix` right before `self` (see
    /// [`Str::widen_front`]).
    pub fn follows(&self, prefix: &str) -> bool {
        self.front_start(prefix).is_some()
    }
}

impl Default for Str {
    fn default() -> Self {
        Str::from_static("")
    }
}

impl PartialEq for Str {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Str {}

impl std::hash::Hash for Str {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl PartialOrd for Str {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Str {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl TryFrom<Bytes> for Str {
    type Error = std::str::Utf8Error;

    fn try_from(bytes: Bytes) -> Result<Self, Self::Error> {
        ByteString::try_from(bytes).map(Str::whole)
    }
}

impl From<String> for Str {
    fn from(s: String) -> Self {
        Str::whole(s.into())
    }
}

impl From<&str> for Str {
    fn from(s: &str) -> Self {
        Str::whole(s.into())
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
