//! Answering a client's acknowledgement request.

use std::{convert::Infallible, fmt};

use belfry_core::parser::Packet;
use serde::Serialize;

use crate::{
    EmitError, SocketRef,
    extract::FromContext,
    handler::{HandlerContext, kind},
};

/// Answers the client's acknowledgement (its emit's callback), once.
///
/// An extractor of event handlers (only they have an ack to answer). If the client did not ask for an answer,
/// [`AckSender::send`] does nothing.
///
/// # Examples
///
/// ```
/// use belfry::{AckSender, SocketIo, SocketRef};
///
/// let (_layer, io) = SocketIo::new_layer();
/// io.ns("/", |socket: SocketRef| async move {
///     socket.on("ping", |ack: AckSender| async move {
///         let _ = ack.send(&"pong");
///     });
/// });
/// ```
pub struct AckSender {
    socket: SocketRef,
    id: Option<u64>,
}

impl fmt::Debug for AckSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AckSender")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl AckSender {
    /// True if the client waits for an answer.
    pub fn expected(&self) -> bool {
        self.id.is_some()
    }

    /// Answers with `data` as the callback's arguments (a tuple or [`Args`](crate::extract::Args)
    /// for several, `()` for none; binary anywhere in `data` reaches the client as binary).
    ///
    /// # Errors
    ///
    /// Data that does not serialize, a full send queue, a disconnected socket.
    pub fn send<T: Serialize + ?Sized>(self, data: &T) -> Result<(), EmitError> {
        let Some(id) = self.id else {
            return Ok(());
        };
        let ns = self.socket.ns();
        let payload = crate::socket::packet_payload(ns, true, Some(id), None, data, Vec::new())?;
        self.socket
            .send(Packet::ack(self.socket.ns().to_owned(), payload, id))
    }
}

impl FromContext<kind::Event> for AckSender {
    type Rejection = Infallible;

    fn from_context(ctx: &mut HandlerContext) -> Result<Self, Infallible> {
        Ok(AckSender {
            socket: ctx.socket.clone(),
            id: ctx.ack_id(),
        })
    }
}
