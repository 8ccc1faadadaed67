//! The two Engine.IO transports: HTTP long-polling and WebSocket.

mod conn;
mod deflate;
pub(crate) mod frame;
mod io;
pub(crate) mod polling;
pub(crate) mod websocket;

/// An Engine.IO transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TransportType {
    /// HTTP long-polling: a held GET for server packets, a POST for client packets.
    Polling = 0,
    /// One WebSocket connection, one packet per frame.
    Websocket = 1,
}

impl TransportType {
    /// The name used in the `transport` query parameter.
    pub fn as_str(&self) -> &'static str {
        match self {
            TransportType::Polling => "polling",
            TransportType::Websocket => "websocket",
        }
    }

    /// Parses a `transport` query value.
    pub fn parse(name: &str) -> Option<TransportType> {
        match name {
            "polling" => Some(TransportType::Polling),
            "websocket" => Some(TransportType::Websocket),
            _ => None,
        }
    }
}

impl std::fmt::Display for TransportType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
