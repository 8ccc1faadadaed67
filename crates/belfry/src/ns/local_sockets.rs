//! The namespace as its adapter sees it: the adapter's broadcasts, room changes, disconnects
//! and acks applied to this server's sockets.

use std::{
    sync::{Arc, Weak},
    time::Duration,
};

use belfry_core::proto::SocketId;
use belfry_core::{
    adapter::{
        BroadcastFlags, ConnectionStateRecovery, LocalAckSink, LocalSockets, ServerSideReply,
        SocketInfo,
    },
    parser::{Packet, Payload},
};

use super::Namespace;
use crate::{handler::BoxFuture, server_side::ServerSideEvent, socket::Socket};

/// The namespace as its adapter sees it.
pub(super) struct NamespaceSockets {
    pub(super) ns: Weak<Namespace>,
    pub(super) name: String,
    pub(super) recovery: Option<ConnectionStateRecovery>,
}

impl NamespaceSockets {
    /// Runs `f` on each of the sockets `ids` still here; looked up under one lock, run without
    /// it (`f` may run user callbacks).
    fn each(&self, ids: &[SocketId], mut f: impl FnMut(&Arc<Socket>)) {
        if let Some(ns) = self.ns.upgrade() {
            let mut sockets = Vec::with_capacity(ids.len());
            {
                let all = ns.sockets.read();
                sockets.extend(ids.iter().filter_map(|id| all.get(id).cloned()));
            }
            for socket in &sockets {
                f(socket);
            }
        }
    }
}

impl LocalSockets for NamespaceSockets {
    fn namespace(&self) -> &str {
        &self.name
    }

    fn recovery(&self) -> Option<ConnectionStateRecovery> {
        self.recovery
    }

    fn send(&self, ids: &[SocketId], packet: &Packet, flags: &BroadcastFlags) -> usize {
        let Some(ns) = self.ns.upgrade() else {
            return 0;
        };
        // Encoded once: every recipient's queue holds the same frames.
        let frames = crate::socket::frames(packet, ns.parser()).into_shared();
        let compress = flags.compress != Some(false);
        let mut delivered = 0;
        // Queued under the map's read lock, without taking a reference on each socket (that
        // touched every recipient twice more): queuing runs no user code. The outgoing
        // listeners (user code) of the recipients that have any run after, without the lock.
        let mut observed = Vec::new();
        {
            let all = ns.sockets.read();
            for socket in ids.iter().filter_map(|id| all.get(id)) {
                // Node's `volatile`: dropped for a client that cannot take it right now.
                if flags.volatile && !socket.conn().is_writable() {
                    continue;
                }
                if socket.observes_outgoing() {
                    observed.push(socket.clone());
                }
                match crate::socket::send_frames_with(socket.conn(), &frames, compress) {
                    Ok(()) => delivered += 1,
                    Err(crate::EmitError::Full) if !flags.volatile => {
                        tracing::debug!(id = %socket.id(), "broadcast skipped a full socket");
                    }
                    Err(_) => {}
                }
            }
        }
        for socket in observed {
            socket.notify_outgoing(packet);
        }
        if let Some(observer) = ns.observer.get()
            && delivered > 0
        {
            let (packets, bytes) = crate::socket::data_of(frames.iter());
            observer.packets_out(packets * delivered, bytes * delivered);
        }
        delivered
    }

    fn join(&self, ids: &[SocketId], rooms: &[String]) {
        self.each(ids, |socket| {
            for room in rooms {
                socket.join(room.clone());
            }
        });
    }

    fn leave(&self, ids: &[SocketId], rooms: &[String]) {
        self.each(ids, |socket| {
            for room in rooms {
                socket.leave(room);
            }
        });
    }

    fn disconnect(&self, ids: &[SocketId], close: bool) {
        self.each(ids, |socket| {
            if close {
                socket.close_connection();
            } else {
                socket.disconnect();
            }
        });
    }

    fn describe(&self, ids: &[SocketId]) -> Vec<SocketInfo> {
        let mut infos = Vec::with_capacity(ids.len());
        self.each(ids, |socket| {
            infos.push(SocketInfo::new(
                socket.id().to_string(),
                serde_json::to_value(socket.handshake()).unwrap_or_default(),
                socket.rooms(),
                socket.data_value(),
            ));
        });
        infos
    }

    fn send_with_ack(
        &self,
        ids: &[SocketId],
        payload: &Payload,
        timeout: Duration,
        on_answer: LocalAckSink,
    ) -> usize {
        let Some(ns) = self.ns.upgrade() else {
            return 0;
        };
        let id = ns.next_ack_id();
        let packet = Packet::event(ns.name_str(), payload.clone(), Some(id));
        let frames = crate::socket::frames(&packet, ns.parser()).into_shared();
        let mut waiting = Vec::new();
        self.each(ids, |socket| {
            if let Some(answer) = socket.send_expecting_ack(id, &packet, &frames) {
                waiting.push((socket.clone(), answer));
            }
        });
        let sent = waiting.len();
        if sent > 0 {
            // One task waits for every answer of this broadcast.
            tokio::spawn(async move {
                let answers = waiting.into_iter().map(|(socket, answer)| async move {
                    socket.wait_ack_payload(id, answer, timeout).await.ok()
                });
                let mut answers: futures_util::stream::FuturesUnordered<_> = answers.collect();
                while let Some(answer) = futures_util::StreamExt::next(&mut answers).await {
                    if let Some(payload) = answer {
                        on_answer(payload);
                    }
                }
            });
        }
        sent
    }

    fn server_side_event(&self, data: Vec<crate::Value>, reply: Option<ServerSideReply>) {
        let Some(ns) = self.ns.upgrade() else {
            return;
        };
        let Some(event) = ServerSideEvent::new(data, reply) else {
            tracing::debug!(ns = %self.name, "server-side event without a name dropped");
            return;
        };
        let handlers = ns
            .server_side
            .read()
            .get(event.event())
            .cloned()
            .unwrap_or_default();
        for handler in handlers {
            let future: BoxFuture = handler(event.clone());
            tokio::spawn(future);
        }
    }
}
