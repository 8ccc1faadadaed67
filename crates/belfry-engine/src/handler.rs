//! The interface between the engine and the protocol above it.

use std::sync::Arc;

use bytes::Bytes;

use crate::{CloseReason, Socket, Str};

/// What the engine calls as sessions open, receive messages and close.
///
/// The callbacks are synchronous and run on the task that read the packet, in the order the
/// packets arrived; a handler that needs to wait spawns its own task. Each session has its own
/// `Data`, created with `Default` at the handshake, for the layer above to keep per-connection
/// state (Socket.IO keeps its namespaces and partial binary packets there).
///
/// # Examples
///
/// An echo server:
///
/// ```
/// use std::sync::Arc;
/// use belfry_engine::{CloseReason, EngineHandler, Packet, Socket, Str};
/// use bytes::Bytes;
///
/// struct Echo;
///
/// impl EngineHandler for Echo {
///     type Data = ();
///
///     fn on_connect(&self, _socket: Arc<Socket<()>>) {}
///     fn on_disconnect(&self, _socket: Arc<Socket<()>>, _reason: CloseReason) {}
///     fn on_message(&self, socket: &Arc<Socket<()>>, text: Str) {
///         let _ = socket.send(Packet::Message(text));
///     }
///     fn on_binary(&self, socket: &Arc<Socket<()>>, data: Bytes) {
///         let _ = socket.send(Packet::Binary(data));
///     }
/// }
/// ```
pub trait EngineHandler: Send + Sync + 'static {
    /// Per-session state, created with `Default` at the handshake.
    type Data: Default + Send + Sync + 'static;

    /// A session opened (the open packet is already queued).
    fn on_connect(&self, socket: Arc<Socket<Self::Data>>);

    /// A session closed; called exactly once per session, after which sends fail.
    fn on_disconnect(&self, socket: Arc<Socket<Self::Data>>, reason: CloseReason);

    /// A text message arrived.
    fn on_message(&self, socket: &Arc<Socket<Self::Data>>, text: Str);

    /// A binary message arrived.
    fn on_binary(&self, socket: &Arc<Socket<Self::Data>>, data: Bytes);

    /// A polling session upgraded to WebSocket (Node's `socket.on("upgrade")`). Nothing by
    /// default.
    fn on_upgrade(&self, socket: &Arc<Socket<Self::Data>>) {
        let _ = socket;
    }
}
