//! What the UI is told: live reports of sockets, rooms and events (in development mode), and
//! `server_stats` every 2 seconds with the aggregated events.

use std::{collections::HashSet, sync::Arc, time::Duration};

use belfry_core::{adapter::AdapterEvent, parser::Payload};
use belfry_engine::TransportType;
use serde::Serialize;
use serde_json::{Value, json};

use super::{
    Admin,
    serialize::{WithBinary, data, now_iso, raw, serialize},
};
use crate::{DisconnectReason, SocketIo, observe::Observer, socket::Socket};

/// How often `server_stats` is sent.
const STATS_INTERVAL: Duration = Duration::from_secs(2);

/// Sends `server_stats` now and every 2 seconds, until the server is gone.
pub(super) async fn stats_loop(admin: Arc<Admin>) {
    let mut interval = tokio::time::interval(STATS_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(io) = admin.io.upgrade() else {
            return;
        };
        admin.send_stats(&io);
    }
}

#[derive(Debug, Serialize)]
pub(super) struct AggregatedEvent {
    timestamp: u64,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(rename = "subType", skip_serializing_if = "Option::is_none")]
    sub_type: Option<&'static str>,
    count: u64,
}

impl Admin {
    /// Sends `event` with `data` to the UI's sockets.
    fn report<T: Serialize + ?Sized>(&self, io: &SocketIo, event: &str, data: &T) {
        if let Some(operator) = io.of(&self.namespace) {
            let _ = operator.emit(event, data);
        }
    }

    /// A live `event_received` or `event_sent` report: `[ns, id, ["name", ...args], time]`,
    /// binary arguments as binary (the UI shows them as buffers, as Node's reports).
    fn live_event(&self, socket: &Socket, event: &str, payload: &Payload) {
        if !self.development || socket.ns() == self.namespace {
            return;
        }
        if payload.attachments.is_empty() {
            if let Some(args) = raw(payload) {
                let data = (socket.ns(), socket.id().as_str(), args, now_iso());
                self.live(socket, event, &data);
            }
        } else if let Ok(args) = serde_json::from_str::<Value>(&payload.json) {
            let args = WithBinary {
                value: &args,
                attachments: &payload.attachments,
            };
            let data = (socket.ns(), socket.id().as_str(), args, now_iso());
            self.live(socket, event, &data);
        }
    }

    /// A live report, in development mode, about a socket of another namespace.
    fn live<T: Serialize + ?Sized>(&self, socket: &Socket, event: &str, data: &T) {
        if self.development && socket.ns() != self.namespace {
            self.report(socket.io_ref(), event, data);
        }
    }

    fn count(&self, kind: &'static str, sub_type: Option<&'static str>, count: u64) {
        let timestamp = crate::handshake::now_millis() / 1000 * 1000;
        let mut events = self.events.lock();
        match events
            .iter_mut()
            .find(|e| e.timestamp == timestamp && e.kind == kind && e.sub_type == sub_type)
        {
            Some(event) => event.count += count,
            None => events.push(AggregatedEvent {
                timestamp,
                kind,
                sub_type,
                count,
            }),
        }
    }

    fn send_stats(&self, io: &SocketIo) {
        let namespaces = io.all_namespaces();
        let mut polling = HashSet::new();
        let sockets: Vec<_> = namespaces.iter().flat_map(|ns| ns.sockets()).collect();
        for socket in &sockets {
            if socket.conn().transport() == TransportType::Polling {
                polling.insert(socket.engine_id().clone());
            }
        }
        let stats = json!({
            "serverId": self.server_id,
            "hostname": self.hostname,
            "pid": std::process::id(),
            "uptime": self.started.elapsed().as_secs_f64(),
            "clientsCount": io.clients_count(),
            "pollingClientsCount": polling.len(),
            "aggregatedEvents": std::mem::take(&mut *self.events.lock()),
            "namespaces": namespaces
                .iter()
                .map(|ns| json!({ "name": ns.name(), "socketsCount": ns.sockets().len() }))
                .collect::<Vec<_>>(),
        });
        self.report(io, "server_stats", &stats);
    }
}

impl Observer for Admin {
    fn engine_connected(&self, _polling: bool) {
        self.count("rawConnection", None, 1);
    }

    fn engine_disconnected(&self, reason: DisconnectReason) {
        self.count("rawDisconnection", Some(reason.as_str()), 1);
    }

    fn packet_in(&self, bytes: usize) {
        self.count("packetsIn", None, 1);
        self.count("bytesIn", None, bytes as u64);
    }

    fn packets_out(&self, packets: usize, bytes: usize) {
        self.count("packetsOut", None, packets as u64);
        self.count("bytesOut", None, bytes as u64);
    }

    fn socket_upgraded(&self, socket: &Socket) {
        if self.development {
            let update =
                json!({ "id": socket.id().as_str(), "nsp": socket.ns(), "transport": "websocket" });
            self.report(socket.io_ref(), "socket_updated", &update);
        }
    }

    fn socket_connected(&self, socket: &Socket) {
        if self.development {
            self.report(
                socket.io_ref(),
                "socket_connected",
                &(serialize(socket), now_iso()),
            );
        }
    }

    fn socket_disconnected(&self, socket: &Socket, reason: DisconnectReason) {
        if self.development {
            let data = (
                socket.ns(),
                socket.id().as_str(),
                reason.as_str(),
                now_iso(),
            );
            self.report(socket.io_ref(), "socket_disconnected", &data);
        }
    }

    fn event_received(&self, socket: &Socket, payload: &Payload) {
        self.live_event(socket, "event_received", payload);
    }

    fn event_sent(&self, socket: &Socket, payload: &Payload) {
        self.live_event(socket, "event_sent", payload);
    }

    fn data_updated(&self, socket: &Socket) {
        if self.development {
            let update =
                json!({ "id": socket.id().as_str(), "nsp": socket.ns(), "data": data(socket) });
            self.report(socket.io_ref(), "socket_updated", &update);
        }
    }

    fn room_event(&self, ns: &str, event: &AdapterEvent) {
        let Some(io) = self.io.upgrade().filter(|_| self.development) else {
            return;
        };
        match event {
            AdapterEvent::JoinRoom(room, id) => {
                self.report(&io, "room_joined", &(ns, room, id.as_str(), now_iso()));
            }
            AdapterEvent::LeaveRoom(room, id) => {
                self.report(&io, "room_left", &(ns, room, id.as_str(), now_iso()));
            }
            _ => {}
        }
    }
}
