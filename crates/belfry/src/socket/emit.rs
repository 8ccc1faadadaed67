//! Sending to the client: an event, and any packet encoded and queued on the connection, with
//! the outgoing listener and the observer told.

use std::sync::atomic::Ordering;

use belfry_core::{
    adapter::{AdapterError, BroadcastFlags, BroadcastOptions},
    parser::{Packet, PacketData, Parser},
};
use serde::Serialize;

use super::{Socket, data_of, event_payload, into_frames, send_frames, wire::msgpack_frames};
use crate::EmitError;

impl Socket {
    /// Whether [`Socket::notify_outgoing`] has anything to do for this socket: an outgoing
    /// listener, or the server's observer.
    pub(crate) fn observes_outgoing(&self) -> bool {
        self.has_outgoing.load(Ordering::Acquire) || self.io.observer().is_some()
    }

    /// Calls the outgoing listener, if any, for an event packet about to be sent.
    pub(crate) fn notify_outgoing(&self, packet: &Packet) {
        let PacketData::Event { payload, .. } = &packet.data else {
            return;
        };
        if let Some(observer) = self.io.observer() {
            observer.event_sent(self, payload);
        }
        if !self.has_outgoing.load(Ordering::Acquire) {
            return;
        }
        let Some(listener) = self.outgoing.read().clone() else {
            return;
        };
        if let Ok((name, args)) = payload.event() {
            let args: Vec<crate::Value> = args
                .iter()
                // An argument that does not parse (nested too deep) keeps its place, as null.
                .map(|json| {
                    belfry_core::args::from_str(json, &payload.attachments).unwrap_or_default()
                })
                .collect();
            listener(&name, &args);
        }
    }

    /// Sends `event` to this client. `data` is the arguments: a tuple for several, `()` for none,
    /// anything else for one (see "Arguments" in the [crate docs](crate)). A fixed-size array
    /// `[T; N]` is a tuple to serde and spreads too: send `&array[..]` or a `Vec` for one array.
    ///
    /// # Errors
    ///
    /// A reserved event name, data that does not serialize, a full send queue, or a
    /// disconnected socket.
    pub fn emit<T: Serialize + ?Sized>(&self, event: &str, data: &T) -> Result<(), EmitError> {
        self.emit_flagged(event, data, BroadcastFlags::default())
    }

    /// Sends `event` as [`SocketOperator`](crate::SocketOperator) does: `volatile` drops it
    /// (without an error) for a transport that cannot take it now, `compress: Some(false)`
    /// sends it uncompressed.
    pub(crate) fn emit_flagged<T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
        flags: BroadcastFlags,
    ) -> Result<(), EmitError> {
        let payload = event_payload(self.ns.name(), None, event, data, Vec::new())?;
        let packet = Packet::event(self.ns.name_str(), payload, None);
        if self.pid.is_some() && self.connected() && self.ns.socket(&self.id).is_some() {
            // Under recovery, Node sends through the adapter (to the socket's own room), which
            // keeps the event (unless volatile) and gives it an offset.
            let own = BroadcastOptions::new()
                .with_rooms([self.id.to_string()])
                .with_flags(flags);
            return match self.ns.adapter().broadcast(&packet, &own) {
                Ok(0) if flags.volatile => Ok(()),
                Ok(0) => Err(EmitError::Full),
                Ok(_) => Ok(()),
                // The socket got it; other servers did not hear of it.
                Err(AdapterError::PartialBroadcast { delivered, .. }) if delivered > 0 => Ok(()),
                Err(error) => {
                    tracing::warn!(%error, "emit through the adapter failed");
                    Err(EmitError::Disconnected)
                }
            };
        }
        if flags.volatile && self.connected() && !self.conn.is_writable() {
            // Node's `volatile`: dropped for a client that cannot take it right now.
            return Ok(());
        }
        match self.send_with(packet, flags.compress != Some(false)) {
            Err(EmitError::Full) if flags.volatile => Ok(()),
            sent => sent,
        }
    }

    /// Encodes and queues one packet, with its attachments, on the connection.
    pub(crate) fn send(&self, packet: Packet) -> Result<(), EmitError> {
        self.send_with(packet, true)
    }

    /// [`Socket::send`], saying whether the packet may be compressed (Node's `compress` flag).
    pub(crate) fn send_with(&self, packet: Packet, compress: bool) -> Result<(), EmitError> {
        if !self.connected() {
            return Err(EmitError::Disconnected);
        }
        let parser = self.ns.parser();
        let frames = if parser == Parser::Msgpack {
            // The one encoding that can fail: tell the caller rather than drop the packet.
            let frames = msgpack_frames(&packet).map_err(EmitError::Encode)?;
            self.notify_outgoing(&packet);
            frames
        } else {
            self.notify_outgoing(&packet);
            into_frames(packet, parser)
        };
        let Some(observer) = self.io.observer() else {
            return send_frames(&self.conn, frames, compress);
        };
        let (packets, bytes) = data_of(frames.iter());
        send_frames(&self.conn, frames, compress)?;
        observer.packets_out(packets, bytes);
        Ok(())
    }
}
