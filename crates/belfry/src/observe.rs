//! A server-wide observer of sockets, events, rooms and traffic, for instrumentation (the
//! Admin UI). Set at most once per server; until then each hook costs one `OnceLock` read.

use belfry_core::{adapter::AdapterEvent, parser::Payload};

use crate::{DisconnectReason, socket::Socket};

/// What an observer is told. Every method has an empty default.
pub(crate) trait Observer: Send + Sync + 'static {
    /// An engine connection opened (`polling`: on the polling transport).
    fn engine_connected(&self, polling: bool) {
        let _ = polling;
    }

    /// An engine connection closed.
    fn engine_disconnected(&self, reason: DisconnectReason) {
        let _ = reason;
    }

    /// A Socket.IO message of `bytes` bytes arrived.
    fn packet_in(&self, bytes: usize) {
        let _ = bytes;
    }

    /// `packets` Engine.IO packets with data, `bytes` bytes of data in all, were queued (Node
    /// counts every packet created with data once its instrumentation listens to the
    /// connection: CONNECT, events, acks, attachments; not the open packet).
    fn packets_out(&self, packets: usize, bytes: usize) {
        let _ = (packets, bytes);
    }

    /// A socket's connection upgraded to WebSocket.
    fn socket_upgraded(&self, socket: &Socket) {
        let _ = socket;
    }

    /// A socket joined its namespace (CONNECT answered).
    fn socket_connected(&self, socket: &Socket) {
        let _ = socket;
    }

    /// A socket left its namespace.
    fn socket_disconnected(&self, socket: &Socket, reason: DisconnectReason) {
        let _ = (socket, reason);
    }

    /// A socket's client sent an event (`["name", ...args]`).
    fn event_received(&self, socket: &Socket, payload: &Payload) {
        let _ = (socket, payload);
    }

    /// An event is sent to a socket's client.
    fn event_sent(&self, socket: &Socket, payload: &Payload) {
        let _ = (socket, payload);
    }

    /// A socket's data changed.
    fn data_updated(&self, socket: &Socket) {
        let _ = socket;
    }

    /// A room event in namespace `ns`.
    fn room_event(&self, ns: &str, event: &AdapterEvent) {
        let _ = (ns, event);
    }
}
