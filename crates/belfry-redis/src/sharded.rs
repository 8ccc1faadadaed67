//! The sharded protocol of Node's `@socket.io/redis-adapter` 8.x (`createShardedAdapter`,
//! Redis 7 sharded pub/sub), without I/O: the channels and the message envelope. It is the
//! protocol of Node's `ClusterAdapter` (`socket.io-adapter` 2.5, "cluster" as in a cluster of
//! Socket.IO servers, not Redis Cluster) over `SPUBLISH`/`SSUBSCRIBE`.
//!
//! Every message is `{type, data, uid, nsp}` ([`ClusterMessage`], from the cluster core
//! `belfry-cluster`), JSON unless it carries binary, then msgpack (notepack.io's dialect). Servers publish on the namespace's channel
//! `<prefix>#<nsp>#`, answer on the requester's `<prefix>#<nsp>#<uid>#`, and, in the dynamic
//! subscription modes, broadcast to one room on `<prefix>#<nsp>#<room>#`, a channel only the
//! servers where that room exists subscribe.

pub use belfry_cluster::{ClusterMessage, message::message_type};

/// How a server subscribes to rooms (Node's `subscriptionMode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubscriptionMode {
    /// Only the namespace's channel: every server receives every broadcast.
    Static,
    /// Besides, one channel per room that is not a socket's own room (Node's default):
    /// a broadcast to one such room reaches only the servers where it exists.
    #[default]
    Dynamic,
    /// One channel per room, sockets' own rooms included.
    DynamicPrivate,
}

/// The channels of one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardedChannels {
    /// `<prefix>#<nsp>#`: every message but responses and room broadcasts.
    pub namespace: String,
}

impl ShardedChannels {
    /// The channels of namespace `nsp` under `prefix` (Node's default is `socket.io`).
    pub fn new(prefix: &str, nsp: &str) -> ShardedChannels {
        ShardedChannels {
            namespace: format!("{prefix}#{nsp}#"),
        }
    }

    /// `<prefix>#<nsp>#<uid>#`: where the other servers answer server `uid`.
    pub fn responses_of(&self, uid: &str) -> String {
        format!("{}{uid}#", self.namespace)
    }

    /// `<prefix>#<nsp>#<room>#`: a room's channel in the dynamic modes.
    pub fn room(&self, room: &str) -> String {
        format!("{}{room}#", self.namespace)
    }

    /// Where a broadcast without acks to `rooms` goes: the room's own channel when it targets
    /// exactly one room that has one in `mode` (in `Dynamic`, a name of 20 characters is taken
    /// for a socket id, as Node does), the namespace's channel otherwise.
    pub fn for_broadcast(&self, mode: SubscriptionMode, rooms: &[String]) -> String {
        match (mode, rooms) {
            (SubscriptionMode::DynamicPrivate, [room]) => self.room(room),
            (SubscriptionMode::Dynamic, [room]) if room.chars().count() != 20 => self.room(room),
            _ => self.namespace.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn channels_are_nodes() {
        let channels = ShardedChannels::new("socket.io", "/chat");
        assert_eq!(channels.namespace, "socket.io#/chat#");
        assert_eq!(
            channels.responses_of("0123456789abcdef"),
            "socket.io#/chat#0123456789abcdef#"
        );
        let one = |room: &str| vec![room.to_owned()];
        let sid = "aaaaaaaaaaaaaaaaaaaa";
        use SubscriptionMode::*;
        assert_eq!(
            channels.for_broadcast(Dynamic, &one("r1")),
            "socket.io#/chat#r1#"
        );
        assert_eq!(
            channels.for_broadcast(Dynamic, &one(sid)),
            "socket.io#/chat#"
        );
        assert_eq!(
            channels.for_broadcast(DynamicPrivate, &one(sid)),
            format!("socket.io#/chat#{sid}#")
        );
        assert_eq!(
            channels.for_broadcast(Static, &one("r1")),
            "socket.io#/chat#"
        );
        assert_eq!(
            channels.for_broadcast(Dynamic, &[]),
            channels.for_broadcast(Dynamic, &["a".into(), "b".into()])
        );
    }
}
