//! The sharded protocol of Node's `@socket.io/redis-adapter` 8.x (`createShardedAdapter`,
//! Redis 7 sharded pub/sub), without I/O: the channels and the message envelope. It is the
//! protocol of Node's `ClusterAdapter` (`socket.io-adapter` 2.5, "cluster" as in a cluster of
//! Socket.IO servers, not Redis Cluster) over `SPUBLISH`/`SSUBSCRIBE`.
//!
//! Every message is `{uid, nsp, type, data}` ([`ShardedMessage`]), JSON unless it carries
//! binary, then msgpack (notepack.io's dialect). Servers publish on the namespace's channel
//! `<prefix>#<nsp>#`, answer on the requester's `<prefix>#<nsp>#<uid>#`, and, in the dynamic
//! subscription modes, broadcast to one room on `<prefix>#<nsp>#<room>#`, a channel only the
//! servers where that room exists subscribe.

use rmpv::Value;

use crate::WireError;

/// The kinds of [`ShardedMessage`] (Node's `MessageType`).
pub mod message_type {
    /// A broadcast; with a `requestId`, a broadcast with acks.
    pub const BROADCAST: u64 = 3;
    /// `socketsJoin`.
    pub const SOCKETS_JOIN: u64 = 4;
    /// `socketsLeave`.
    pub const SOCKETS_LEAVE: u64 = 5;
    /// `disconnectSockets`.
    pub const DISCONNECT_SOCKETS: u64 = 6;
    /// `fetchSockets`.
    pub const FETCH_SOCKETS: u64 = 7;
    /// One server's sockets.
    pub const FETCH_SOCKETS_RESPONSE: u64 = 8;
    /// `serverSideEmit`; with a `requestId`, one answer per server is expected.
    pub const SERVER_SIDE_EMIT: u64 = 9;
    /// One server's answer to a server-side event.
    pub const SERVER_SIDE_EMIT_RESPONSE: u64 = 10;
    /// How many clients a server sent a broadcast with acks to.
    pub const BROADCAST_CLIENT_COUNT: u64 = 11;
    /// One client's answer to a broadcast with acks.
    pub const BROADCAST_ACK: u64 = 12;
}

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

/// One message between servers.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ShardedMessage {
    /// The sending server's uid.
    pub uid: String,
    /// The namespace.
    pub nsp: String,
    /// One of [`message_type`].
    pub kind: u64,
    /// The message's fields (`Nil` for none), binary in place.
    pub data: Value,
}

impl ShardedMessage {
    /// A message of `kind` from server `uid` in namespace `nsp`.
    pub fn new(uid: &str, nsp: &str, kind: u64, data: Value) -> ShardedMessage {
        ShardedMessage {
            uid: uid.to_owned(),
            nsp: nsp.to_owned(),
            kind,
            data,
        }
    }

    /// The field `key` of the message's data.
    pub fn field(&self, key: &str) -> Option<&Value> {
        crate::wire::get(&self.data, key)
    }

    /// Encodes the message as Node does: JSON, or msgpack when it carries binary.
    ///
    /// # Errors
    ///
    /// The data holds what neither format can carry (a map key that is not a string in JSON).
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        let message = Value::Map(vec![
            (Value::from("uid"), Value::from(self.uid.as_str())),
            (Value::from("nsp"), Value::from(self.nsp.as_str())),
            (Value::from("type"), Value::from(self.kind)),
            (Value::from("data"), self.data.clone()),
        ]);
        if has_binary(&self.data, 0) {
            crate::wire::write(&message)
        } else {
            Ok(serde_json::to_vec(&message)?)
        }
    }

    /// Decodes a message: JSON when it starts with `{`, msgpack otherwise.
    ///
    /// # Errors
    ///
    /// Neither valid JSON nor msgpack, or not `{uid, nsp, type, data}`.
    pub fn decode(bytes: &[u8]) -> Result<ShardedMessage, WireError> {
        let message: Value = if bytes.first() == Some(&b'{') {
            serde_json::from_slice(bytes)?
        } else {
            crate::wire::read(bytes)?
        };
        let text = |key: &str| crate::wire::get(&message, key).and_then(Value::as_str);
        let kind = crate::wire::get(&message, "type")
            .and_then(Value::as_u64)
            .ok_or(WireError::Shape("a cluster message without type"))?;
        Ok(ShardedMessage {
            uid: text("uid").unwrap_or_default().to_owned(),
            nsp: text("nsp").unwrap_or("/").to_owned(),
            kind,
            data: crate::wire::get(&message, "data")
                .cloned()
                .unwrap_or(Value::Nil),
        })
    }
}

/// True when `value` holds binary anywhere (Node's `hasBinary`).
fn has_binary(value: &Value, depth: usize) -> bool {
    match value {
        Value::Binary(_) => true,
        Value::Array(items) if depth < 256 => items.iter().any(|v| has_binary(v, depth + 1)),
        Value::Map(entries) if depth < 256 => entries.iter().any(|(_, v)| has_binary(v, depth + 1)),
        _ => false,
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

    #[test]
    fn json_unless_binary_and_back() {
        let plain = ShardedMessage::new(
            "0123456789abcdef",
            "/",
            message_type::SOCKETS_JOIN,
            Value::Map(vec![(
                Value::from("rooms"),
                Value::Array(vec![Value::from("r1")]),
            )]),
        );
        let bytes = plain.encode().unwrap();
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            r#"{"uid":"0123456789abcdef","nsp":"/","type":4,"data":{"rooms":["r1"]}}"#
        );
        assert_eq!(ShardedMessage::decode(&bytes).unwrap(), plain);

        let binary = ShardedMessage::new(
            "0123456789abcdef",
            "/",
            message_type::BROADCAST_ACK,
            Value::Map(vec![(Value::from("packet"), Value::Binary(vec![1, 2]))]),
        );
        let bytes = binary.encode().unwrap();
        assert_eq!(bytes[0], 0x84, "a msgpack map of four");
        assert_eq!(ShardedMessage::decode(&bytes).unwrap(), binary);
    }

    #[test]
    fn hostile_messages_are_errors() {
        for bytes in [&b""[..], b"{", b"{\"uid\":\"x\"}", b"\xc1", b"\x80"] {
            assert!(ShardedMessage::decode(bytes).is_err(), "{bytes:?}");
        }
    }
}
