//! The client's errors and disconnect reasons, as socket.io-client names them.

use belfry_core::proto::value::Value;

/// Why a socket was disconnected (socket.io-client's reasons).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The server disconnected the socket (`socket.disconnect()` there): no reconnection.
    IoServerDisconnect,
    /// [`Socket::disconnect`](crate::Socket::disconnect) was called: no reconnection.
    IoClientDisconnect,
    /// The server was silent longer than `pingInterval + pingTimeout`.
    PingTimeout,
    /// The connection was closed.
    TransportClose,
    /// The connection failed.
    TransportError,
    /// The server sent what cannot be decoded.
    ParseError,
    /// The client closed the connection.
    ForcedClose,
}

impl DisconnectReason {
    /// The reason as socket.io-client names it (`"io server disconnect"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            DisconnectReason::IoServerDisconnect => "io server disconnect",
            DisconnectReason::IoClientDisconnect => "io client disconnect",
            DisconnectReason::PingTimeout => "ping timeout",
            DisconnectReason::TransportClose => "transport close",
            DisconnectReason::TransportError => "transport error",
            DisconnectReason::ParseError => "parse error",
            DisconnectReason::ForcedClose => "forced close",
        }
    }

    /// True when the client reconnects by itself after it.
    pub fn reconnects(self) -> bool {
        !matches!(
            self,
            DisconnectReason::IoServerDisconnect | DisconnectReason::IoClientDisconnect
        )
    }
}

/// Why connecting failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The URL is not an `http://`, `https://`, `ws://` or `wss://` one.
    #[error("invalid url: {0}")]
    Url(String),
    /// TLS cannot be set up: the `tls` feature is off, the root certificates are not PEM, or
    /// there is none to trust.
    #[error("tls: {0}")]
    Tls(String),
    /// The server refused the namespace connection (a middleware's error, or an unknown
    /// namespace): its message and data, as socket.io-client's `connect_error`.
    #[error("connection refused: {message}")]
    Refused {
        /// The error's message (`"Invalid namespace"`, a middleware's message).
        message: String,
        /// The error's data, `null` when it sent none.
        data: Value,
    },
    /// The connection could not be opened, and reconnection is off or gave up.
    #[error("cannot connect: {0}")]
    Unreachable(String),
    /// The manager has a socket in that namespace already (socket.io-client's `Manager`
    /// keeps one per namespace too).
    #[error("namespace {0} is joined already")]
    AlreadyJoined(String),
}

/// Why an emit could not be sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmitError {
    /// The event name is one socket.io reserves (`connect`, `disconnect`, ...).
    #[error("reserved event name: {0}")]
    Reserved(String),
    /// The data cannot be serialized.
    #[error("the data cannot be serialized")]
    Serialize(#[from] serde_json::Error),
    /// The client is closed ([`Socket::disconnect`](crate::Socket::disconnect), or gone).
    #[error("the client is closed")]
    Closed,
}

/// Why an acknowledgement did not come.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AckError {
    /// The emit failed.
    #[error(transparent)]
    Emit(#[from] EmitError),
    /// The answer did not come within the timeout.
    #[error("operation has timed out")]
    Timeout,
    /// The client was closed before the answer came.
    #[error("the client is closed")]
    Closed,
    /// The connection was lost after the event was sent, before the answer came.
    #[error("socket has been disconnected")]
    Disconnected,
    /// The answer is not what was asked for.
    #[error("unexpected answer")]
    Deserialize(#[source] serde_json::Error),
}
