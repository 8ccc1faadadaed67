//! Errors and disconnect reasons.

use std::fmt;

use belfry_engine::CloseReason;

/// Why a socket left its namespace: Node's nine reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The connection failed (an I/O error, an oversized message, ...).
    TransportError,
    /// The client closed the connection, or it was lost.
    TransportClose,
    /// The server closed the connection
    /// ([`Socket::close_connection`](crate::Socket::close_connection), or an invalid packet).
    ForcedClose,
    /// The client stopped answering pings.
    PingTimeout,
    /// The client sent an Engine.IO packet that could not be decoded.
    ParseError,
    /// The server is shutting down ([`SocketIo::close`](crate::SocketIo::close)).
    ServerShuttingDown,
    /// The client broke the Socket.IO protocol (a second CONNECT, a packet for a namespace it
    /// did not join, an undecodable packet), or never joined a namespace in time.
    ForcedServerClose,
    /// The client left the namespace (`socket.disconnect()` on the client).
    ClientNamespaceDisconnect,
    /// The server made the socket leave ([`Socket::disconnect`](crate::Socket::disconnect)).
    ServerNamespaceDisconnect,
}

impl DisconnectReason {
    /// Whether a socket that left for this reason may be recovered (Node's
    /// `RECOVERABLE_DISCONNECT_REASONS`): the connection was lost or closed by the server, not
    /// left on purpose.
    pub fn is_recoverable(&self) -> bool {
        matches!(
            self,
            DisconnectReason::TransportError
                | DisconnectReason::TransportClose
                | DisconnectReason::ForcedClose
                | DisconnectReason::PingTimeout
                | DisconnectReason::ServerShuttingDown
                | DisconnectReason::ForcedServerClose
        )
    }

    /// The reason as Node writes it: `"transport close"`, `"server namespace disconnect"`, ...
    pub fn as_str(&self) -> &'static str {
        match self {
            DisconnectReason::TransportError => "transport error",
            DisconnectReason::TransportClose => "transport close",
            DisconnectReason::ForcedClose => "forced close",
            DisconnectReason::PingTimeout => "ping timeout",
            DisconnectReason::ParseError => "parse error",
            DisconnectReason::ServerShuttingDown => "server shutting down",
            DisconnectReason::ForcedServerClose => "forced server close",
            DisconnectReason::ClientNamespaceDisconnect => "client namespace disconnect",
            DisconnectReason::ServerNamespaceDisconnect => "server namespace disconnect",
        }
    }
}

impl From<CloseReason> for DisconnectReason {
    fn from(reason: CloseReason) -> Self {
        match reason {
            CloseReason::TransportClose => DisconnectReason::TransportClose,
            CloseReason::ForcedClose => DisconnectReason::ForcedClose,
            CloseReason::PingTimeout => DisconnectReason::PingTimeout,
            CloseReason::ParseError => DisconnectReason::ParseError,
            _ => DisconnectReason::TransportError,
        }
    }
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an emit failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmitError {
    /// The event name is reserved (`connect`, `disconnect`, ...); Node throws the same.
    #[error("\"{0}\" is a reserved event name")]
    ReservedEvent(String),
    /// The data could not be serialized to JSON.
    #[error("could not serialize the event data")]
    Serialize(#[from] serde_json::Error),
    /// The client reads slower than the server writes: its queue is full. Retry later, or
    /// drop the message (volatile emits are dropped silently).
    #[error("the socket's send queue is full")]
    Full,
    /// The socket is disconnected.
    #[error("the socket is disconnected")]
    Disconnected,
    /// The parser cannot encode the packet: with the msgpack parser, a binary placeholder
    /// without its attachment (the raw text of [`Args`](crate::extract::Args) holding binary).
    #[error("could not encode the packet: {0}")]
    Encode(#[source] belfry_core::msgpack::WireError),
    /// The adapter failed to broadcast. With a cluster adapter that delivered on this server
    /// but could not reach the other servers, it is
    /// [`AdapterError::PartialBroadcast`](belfry_core::adapter::AdapterError::PartialBroadcast),
    /// with the count of this server's recipients.
    #[error("the broadcast failed: {0}")]
    Adapter(#[source] belfry_core::adapter::AdapterError),
}

/// Why an acknowledgement did not arrive.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AckError {
    /// No answer within the timeout. Node: "operation has timed out".
    #[error("operation has timed out")]
    Timeout,
    /// The socket disconnected before answering.
    #[error("the socket disconnected before acknowledging")]
    Disconnected,
    /// The emit itself failed.
    #[error(transparent)]
    Emit(#[from] EmitError),
    /// The answer could not be deserialized into the requested type.
    #[error("could not deserialize the acknowledgement")]
    Deserialize(#[source] serde_json::Error),
}

/// Why a server-side emit failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerSideError {
    /// A reserved name (`connect`, `connection`, `new_namespace`), or data that does not
    /// serialize.
    #[error(transparent)]
    Emit(#[from] EmitError),
    /// The adapter could not reach the other servers, or not all of them answered in time.
    #[error(transparent)]
    Adapter(#[from] belfry_core::adapter::AdapterError),
    /// Not every server answered in time: the answers that did arrive, as JSON values (Node
    /// gives them to the callback with the error).
    #[error("timeout reached while waiting for serverSideEmit responses ({} arrived)", answers.len())]
    Timeout {
        /// The answers that arrived in time.
        answers: Vec<serde_json::Value>,
    },
    /// An answer could not be deserialized into the requested type.
    #[error("could not deserialize a server's answer")]
    Deserialize(#[source] serde_json::Error),
}

/// A middleware's refusal with Node's `err.data`: a connect middleware's refusal sends the
/// client a CONNECT_ERROR `{"message":..,"data":..}`, as Node does for `next(err)`; a packet
/// middleware's answers the client's ack with `{"error":..,"data":..}`.
///
/// Middlewares may return any error that implements `Display` (`std::io::Error`,
/// `anyhow::Error`, `String`, `&str`...): its message is the refusal's. Return a
/// `ConnectError` (or a `Box<dyn Error + Send + Sync>` holding one) to send `data` as well;
/// a `ConnectError` inside another error type (an `anyhow::Error`, say) is sent as its message
/// alone.
///
/// # Examples
///
/// ```
/// use belfry::ConnectError;
///
/// let refusal = ConnectError::new("not authorized").with_data(serde_json::json!({"code": 401}));
/// assert_eq!(refusal.message(), "not authorized");
/// let refusal: ConnectError = "banned".into();
/// assert_eq!(refusal.data(), None);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectError {
    pub(crate) message: String,
    pub(crate) data: Option<serde_json::Value>,
}

impl ConnectError {
    /// A refusal with `message`.
    pub fn new(message: impl Into<String>) -> Self {
        ConnectError {
            message: message.into(),
            data: None,
        }
    }

    /// Adds `data`, sent as the error's `data` field.
    pub fn with_data(mut self, data: serde_json::Value) -> Self {
        self.data = Some(data);
        self
    }

    /// The message (Node's `err.message`).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The data, if any (Node's `err.data`).
    pub fn data(&self) -> Option<&serde_json::Value> {
        self.data.as_ref()
    }

    /// The refusal a middleware's error stands for: a `ConnectError` as it is, one inside a
    /// `Box<dyn Error + Send + Sync>` too, any other error with its `Display` as the message.
    pub(crate) fn from_middleware<E: fmt::Display + 'static>(error: E) -> ConnectError {
        let any: &dyn std::any::Any = &error;
        if let Some(refusal) = any.downcast_ref::<ConnectError>() {
            return refusal.clone();
        }
        if let Some(refusal) = any
            .downcast_ref::<Box<dyn std::error::Error + Send + Sync>>()
            .and_then(|boxed| boxed.downcast_ref::<ConnectError>())
        {
            return refusal.clone();
        }
        ConnectError::new(error.to_string())
    }
}

impl From<&str> for ConnectError {
    fn from(message: &str) -> Self {
        ConnectError::new(message)
    }
}

impl From<String> for ConnectError {
    fn from(message: String) -> Self {
        ConnectError::new(message)
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConnectError {}
