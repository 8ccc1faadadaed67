//! Errors and close reasons.

use std::fmt;

/// Why an Engine.IO session closed, named as Node's engine.io names it (the Socket.IO layer
/// turns it into `belfry::DisconnectReason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseReason {
    /// The client closed the connection (a `1` packet, or the WebSocket closed cleanly).
    TransportClose,
    /// The transport failed: an I/O error, an oversized message, overlapping polling requests, a
    /// client ping in v4, a send queue full for too long.
    TransportError,
    /// The server closed the session ([`Socket::close`](crate::Socket::close) or
    /// [`Engine::close`](crate::Engine::close)).
    ForcedClose,
    /// No pong arrived within the ping timeout.
    PingTimeout,
    /// The client sent a packet that could not be decoded.
    ParseError,
}

impl CloseReason {
    /// The reason as Node writes it: `"transport close"`, `"ping timeout"`, ...
    pub fn as_str(&self) -> &'static str {
        match self {
            CloseReason::TransportClose => "transport close",
            CloseReason::TransportError => "transport error",
            CloseReason::ForcedClose => "forced close",
            CloseReason::PingTimeout => "ping timeout",
            CloseReason::ParseError => "parse error",
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a packet could not be queued on a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The session's send queue is at its packet or byte cap: the client reads slower than the
    /// server writes. Drop the packet or retry later; a queue full for longer than the ping
    /// timeout closes the session.
    #[error("send queue is full")]
    Full,
    /// The session is closed.
    #[error("session is closed")]
    Closed,
}

impl SendError {
    /// True for [`SendError::Full`].
    pub fn is_full(&self) -> bool {
        matches!(self, SendError::Full)
    }

    /// True for [`SendError::Closed`].
    pub fn is_closed(&self) -> bool {
        matches!(self, SendError::Closed)
    }
}

/// The error codes of Node's engine.io, answered to a request the engine refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RequestError {
    UnknownTransport,
    UnknownSid,
    BadHandshakeMethod,
    BadRequest,
    Forbidden(String),
    UnsupportedProtocolVersion,
}

impl RequestError {
    pub(crate) fn code(&self) -> u8 {
        match self {
            RequestError::UnknownTransport => 0,
            RequestError::UnknownSid => 1,
            RequestError::BadHandshakeMethod => 2,
            RequestError::BadRequest => 3,
            RequestError::Forbidden(_) => 4,
            RequestError::UnsupportedProtocolVersion => 5,
        }
    }

    pub(crate) fn message(&self) -> &str {
        match self {
            RequestError::UnknownTransport => "Transport unknown",
            RequestError::UnknownSid => "Session ID unknown",
            RequestError::BadHandshakeMethod => "Bad handshake method",
            RequestError::BadRequest => "Bad request",
            RequestError::Forbidden(message) => message,
            RequestError::UnsupportedProtocolVersion => "Unsupported protocol version",
        }
    }
}
