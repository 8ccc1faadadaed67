//! The per-socket operator: `timeout`, `volatile`, `compress`, then `emit` to one socket.

use std::{fmt, time::Duration};

use belfry_core::adapter::BroadcastFlags;
use serde::{Serialize, de::DeserializeOwned};

use super::Socket;
use crate::{AckError, BroadcastOperator, EmitError, IntoRooms};

/// One socket, with options for what is sent to it next (Node's `socket.timeout(ms)`,
/// `socket.volatile`, `socket.compress(false)`).
///
/// Made by [`Socket::timeout`], [`Socket::volatile`] and [`Socket::compress`]; the options chain
/// as in Node (`socket.timeout(d).volatile().emit(..)`). They are the
/// [`BroadcastFlags`] that a [`BroadcastOperator`] holds too: [`SocketOperator::to`],
/// [`SocketOperator::except`] and [`SocketOperator::broadcast`] carry them over to a broadcast,
/// as Node's `socket.volatile.to(room)` does. The operator is `Copy`: keep one to send several
/// events with the same options.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use belfry::{AckError, SocketIo, SocketRef};
///
/// let (_layer, io) = SocketIo::new_layer();
/// io.ns("/", |socket: SocketRef| async move {
///     // Lost if the client cannot take it right now, and never compressed.
///     let _ = socket.volatile().compress(false).emit("typing", &true);
///     // Rejected after two seconds without an answer.
///     match socket.timeout(Duration::from_secs(2)).emit_with_ack::<String, _>("name?", &()).await {
///         Ok(name) => tracing::info!(%name, "answered"),
///         Err(AckError::Timeout) => tracing::info!("no answer in time"),
///         Err(error) => tracing::info!(%error, "no answer"),
///     }
/// });
/// ```
#[derive(Clone, Copy)]
#[must_use = "a socket operator does nothing until `emit`"]
pub struct SocketOperator<'a> {
    socket: &'a Socket,
    flags: BroadcastFlags,
}

impl fmt::Debug for SocketOperator<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SocketOperator")
            .field("socket", &self.socket.id())
            .field("flags", &self.flags)
            .finish()
    }
}

impl<'a> SocketOperator<'a> {
    pub(crate) fn new(socket: &'a Socket) -> Self {
        SocketOperator {
            socket,
            flags: BroadcastFlags::default(),
        }
    }

    /// How long [`SocketOperator::emit_with_ack`] waits for the answer (Node's
    /// `socket.timeout(ms)`; default: the server's
    /// [`ack_timeout`](crate::SocketIoBuilder::ack_timeout)).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.flags.timeout = Some(timeout);
        self
    }

    /// Drops the event, silently, if the client cannot take it right now (Node's
    /// `socket.volatile`): packets are still queued for it, or it is long-polling with no
    /// request pending. An emit so dropped returns `Ok(())`.
    pub fn volatile(mut self) -> Self {
        self.flags.volatile = true;
        self
    }

    /// Node's `socket.compress(bool)`: `false` sends the event uncompressed. As for
    /// [`BroadcastOperator::compress`], this applies to polling responses (one is compressed
    /// unless every packet in it was sent with `compress(false)`); WebSocket messages are
    /// compressed, with permessage-deflate on, by their size alone.
    pub fn compress(mut self, compress: bool) -> Self {
        self.flags.compress = Some(compress);
        self
    }

    /// The options set so far.
    pub fn flags(&self) -> &BroadcastFlags {
        &self.flags
    }

    /// [`Socket::emit`] with these options (`timeout` does not apply: no answer is asked for).
    ///
    /// # Errors
    ///
    /// As [`Socket::emit`]; a volatile event dropped is not an error.
    pub fn emit<T: Serialize + ?Sized>(&self, event: &str, data: &T) -> Result<(), EmitError> {
        self.socket.emit_flagged(event, data, self.flags)
    }

    /// [`Socket::emit_with_ack`] with these options: waits at most the operator's
    /// [`timeout`](SocketOperator::timeout) (Node's `socket.timeout(ms).emitWithAck(..)`, which
    /// rejects when it passes). A volatile event dropped is never answered: the wait ends in
    /// [`AckError::Timeout`], as in Node.
    ///
    /// # Errors
    ///
    /// As [`Socket::emit_with_ack`].
    pub async fn emit_with_ack<R: DeserializeOwned, T: Serialize + ?Sized>(
        self,
        event: &str,
        data: &T,
    ) -> Result<R, AckError> {
        self.socket
            .emit_with_ack_flagged(event, data, self.flags)
            .await
    }

    /// A broadcast to `rooms`, except this socket, with these options (Node's
    /// `socket.volatile.to(room)`).
    pub fn to(self, rooms: impl IntoRooms) -> BroadcastOperator {
        self.broadcast().to(rooms)
    }

    /// A broadcast to the namespace except `rooms` and this socket, with these options.
    pub fn except(self, rooms: impl IntoRooms) -> BroadcastOperator {
        self.broadcast().except(rooms)
    }

    /// A broadcast to every socket of the namespace but this one, with these options (Node's
    /// `socket.volatile.broadcast`).
    pub fn broadcast(self) -> BroadcastOperator {
        self.socket.broadcast().with_flags(self.flags)
    }
}
