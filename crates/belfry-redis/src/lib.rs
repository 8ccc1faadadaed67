//! A Redis adapter for Belfry that speaks the wire protocol of Node's
//! `@socket.io/redis-adapter` 8.x, so Belfry and Node servers can share one cluster.
//!
//! **Work in progress.** This first part is the wire format (channels, the msgpack broadcast
//! message in notepack.io's dialect), checked against Node's own encoder; the adapter over
//! Redis pub/sub comes next.
#![forbid(unsafe_code)]

mod value;
pub mod wire;

/// A message from Redis that is not what the protocol says; dropped with a log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// Not valid msgpack.
    #[error("invalid msgpack: {0}")]
    Msgpack(#[from] rmpv::decode::Error),
    /// Not valid JSON.
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// Valid, but not the shape the protocol gives this message.
    #[error("unexpected message shape: {0}")]
    Shape(&'static str),
    /// A binary placeholder with no attachment behind it.
    #[error("a placeholder points past the attachments")]
    Placeholder,
}
