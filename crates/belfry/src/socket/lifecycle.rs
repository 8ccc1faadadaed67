//! A socket's life in its namespace after it is made: joining it (restored, under recovery),
//! and leaving it, its disconnect handlers run.

use std::sync::{Arc, atomic::Ordering};

use belfry_core::{
    adapter::{RestoredSession, Session},
    parser::Packet,
};

use super::{Socket, SocketRef};
use crate::{
    DisconnectReason,
    handler::{BoxFuture, ContextKind, ErasedHandler, HandlerContext, Rejected},
};

impl Socket {
    /// Puts back what the socket had before its connection was lost, and sends the events its
    /// client missed (before the CONNECT reply, as Node; the client holds them until then).
    pub(crate) fn restore(&self, restored: RestoredSession) {
        let RestoredSession {
            session, missed, ..
        } = restored;
        self.ns.adapter().add_all(&self.id, &session.rooms);
        *self.data.write() = session.data;
        for payload in missed {
            let _ = self.send(Packet::event(self.ns.name_str(), payload, None));
        }
    }

    /// Makes the socket leave its namespace: the client gets a DISCONNECT, the reason is
    /// [`DisconnectReason::ServerNamespaceDisconnect`]. The connection stays open for the
    /// client's other namespaces.
    pub fn disconnect(&self) {
        if self.connected() {
            let _ = self.send(Packet::disconnect(self.ns.name_str()));
            self.close(DisconnectReason::ServerNamespaceDisconnect);
        }
    }

    /// Closes the client's connection (Node's `socket.disconnect(true)`): every socket of this
    /// client, in every namespace, is disconnected first (each client socket gets its
    /// DISCONNECT, as from [`Socket::disconnect`]). [`Socket::disconnect`] leaves the
    /// connection open for the client's other namespaces.
    pub fn close_connection(&self) {
        let sockets: Vec<_> = self.conn.data().sockets().collect();
        for socket in sockets {
            socket.disconnect();
        }
        self.conn.close();
    }

    /// Closes the client's connection without telling its namespaces first (Node's
    /// `socket.conn.close()`): to the client it is a lost connection (`transport close`), from
    /// which it reconnects by itself and, with connection state recovery on, recovers its
    /// sessions. Every socket of the connection leaves with
    /// [`DisconnectReason::ForcedClose`], a reason recovery keeps sessions for.
    pub fn close_transport(&self) {
        self.conn.close();
    }

    /// The transport the client's connection uses now (Node's `socket.conn.transport.name`):
    /// polling until an upgrade to WebSocket completes.
    pub fn transport(&self) -> belfry_engine::TransportType {
        self.conn.transport()
    }

    /// Leaves the namespace for `reason`. The `disconnecting` handler runs first, with the rooms
    /// still joined; then rooms are left, pending acks fail, and the disconnect handler runs,
    /// after the handlers already queued. Idempotent.
    pub(crate) fn close(&self, reason: DisconnectReason) {
        if !self.connected.swap(false, Ordering::AcqRel) {
            return;
        }
        self.span
            .in_scope(|| tracing::debug!(%reason, "socket disconnected"));
        if let Some(observer) = self.io.observer() {
            observer.socket_disconnected(self, reason);
        }
        self.conn.data().remove(self.ns.name());
        self.acks.lock().clear();
        self.discard_pending_events();
        let disconnecting = self.disconnecting_handler.read().clone();
        match (disconnecting, self.me.upgrade()) {
            (Some(handler), Some(me)) => {
                if let Some(future) = self.run_close_handler(&handler, reason) {
                    self.enqueue(future);
                }
                self.enqueue(Box::pin(async move {
                    if let Some(future) = me.leave_namespace(reason) {
                        future.await;
                    }
                }));
            }
            _ => {
                if let Some(future) = self.leave_namespace(reason) {
                    self.enqueue(future);
                }
            }
        }
        // Nothing is queued after the disconnect handlers.
        self.queue.lock().closed = true;
    }

    /// Leaves every room and the namespace; returns the disconnect handler's future. Under
    /// recovery, a socket whose connection was lost is kept for its client's return first.
    fn leave_namespace(&self, reason: DisconnectReason) -> Option<BoxFuture> {
        if let Some(pid) = &self.pid
            && reason.is_recoverable()
        {
            self.ns.adapter().persist_session(Session::new(
                self.id.clone(),
                pid.clone(),
                self.rooms(),
                self.data_value(),
            ));
        }
        self.ns.adapter().del_all(&self.id);
        self.ns.remove_socket(&self.id);
        let handler = self.disconnect_handler.read().clone()?;
        self.run_close_handler(&handler, reason)
    }

    fn run_close_handler(
        &self,
        handler: &ErasedHandler,
        reason: DisconnectReason,
    ) -> Option<BoxFuture> {
        let mut ctx = HandlerContext {
            socket: SocketRef(self.me.upgrade()?),
            kind: ContextKind::Disconnect { reason },
        };
        match handler(&mut ctx) {
            Ok(future) => Some(future),
            Err(Rejected(message)) => {
                tracing::debug!(%message, "disconnect handler refused");
                None
            }
        }
    }

    /// Registers `self` in its namespace and own room; called once CONNECT succeeded.
    pub(crate) fn joined(self: &Arc<Self>) {
        self.ns.add_socket(self.clone());
        // Its own room, joined quietly: not a room the user chose.
        self.ns.adapter().add_all(&self.id, &[self.id.to_string()]);
    }
}
