//! The classic protocol of Node's `@socket.io/redis-adapter` 8.x, without I/O: channel names and
//! the broadcast message. Public for tools that publish to or read from a cluster (an emitter,
//! a monitor); the adapter uses it.
//!
//! A broadcast is a msgpack array `[uid, packet, opts]` published on `<key>#<nsp>#` (or
//! `<key>#<nsp>#<room>#` when it targets exactly one room), where `packet` is the packet as
//! Node's server builds it before encoding (`{type: 2, data: ["event", ...args], nsp}`, binary
//! in place) and `opts` is `{rooms, except, flags}`.

pub(crate) use belfry_cluster::wire::{
    event_value, opts_from_value, opts_to_value, sockets_from_value, sockets_to_value,
};
pub(crate) use belfry_core::msgpack::{get, read, write};
use belfry_core::{
    Str,
    adapter::BroadcastOptions,
    msgpack::{Value, payload_to_value, value_to_payload},
    parser::{Packet, PacketData, Payload},
};

use crate::WireError;

/// Node's request type of a broadcast with acks (`BROADCAST`).
pub const BROADCAST_WITH_ACK: u64 = 7;
/// Node's response type carrying one server's client count (`BROADCAST_CLIENT_COUNT`).
pub const BROADCAST_CLIENT_COUNT: u64 = 8;
/// Node's response type carrying one client's answer (`BROADCAST_ACK`).
pub const BROADCAST_ACK: u64 = 9;

/// The channels of one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channels {
    /// `<key>#<nsp>#`: broadcasts to every socket; a room's channel appends `<room>#`.
    pub broadcast: String,
    /// `<key>-request#<nsp>#`: requests between servers.
    pub request: String,
    /// `<key>-response#<nsp>#`: their responses.
    pub response: String,
}

impl Channels {
    /// The channels of namespace `nsp` under `key` (Node's default key is `socket.io`).
    pub fn new(key: &str, nsp: &str) -> Channels {
        Channels {
            broadcast: format!("{key}#{nsp}#"),
            request: format!("{key}-request#{nsp}#"),
            response: format!("{key}-response#{nsp}#"),
        }
    }

    /// `<key>-response#<nsp>#<uid>#`: where Node servers configured with
    /// `publishOnSpecificResponseChannel` answer the requests of server `uid`.
    pub fn response_to(&self, uid: &str) -> String {
        format!("{}{uid}#", self.response)
    }

    /// The pattern matching every broadcast channel of the namespace.
    pub fn broadcast_pattern(&self) -> String {
        format!("{}*", self.broadcast)
    }

    /// Where a broadcast with `opts` is published: the room's channel when it targets exactly
    /// one room, the namespace's otherwise.
    pub fn for_broadcast(&self, opts: &BroadcastOptions) -> String {
        match opts.rooms.as_slice() {
            [room] => format!("{}{room}#", self.broadcast),
            _ => self.broadcast.clone(),
        }
    }

    /// The room a broadcast channel names (`None` for the namespace's own channel, or for a
    /// channel of another namespace).
    pub fn room_of<'a>(&self, channel: &'a str) -> Option<Option<&'a str>> {
        let rest = channel.strip_prefix(self.broadcast.as_str())?;
        if rest.is_empty() {
            return Some(None);
        }
        rest.strip_suffix('#').map(Some)
    }
}

/// A broadcast read off the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Broadcast {
    /// The publishing server's uid (`"emitter"` for `@socket.io/redis-emitter`).
    pub uid: String,
    /// The packet, ready for local delivery.
    pub packet: Packet,
    /// Which sockets, and how.
    pub opts: BroadcastOptions,
}

/// Encodes a broadcast of `packet` (an event) as Node's adapter publishes it.
///
/// # Errors
///
/// `packet` is not an event, or its payload is not the JSON array it should be.
pub fn encode_broadcast(
    uid: &str,
    packet: &Packet,
    opts: &BroadcastOptions,
) -> Result<Vec<u8>, WireError> {
    let PacketData::Event { payload, .. } = &packet.data else {
        return Err(WireError::Shape("only events are broadcast"));
    };
    let packet = event_value(&packet.ns, payload)?;
    write(&Value::Array(vec![
        Value::from(uid),
        packet,
        opts_to_value(opts),
    ]))
}

/// A broadcast with acks read off the request channel.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AckRequest {
    /// The requesting server's uid.
    pub uid: String,
    /// Where the answers go (`requestId`).
    pub request_id: String,
    /// The event's arguments, `["event", ...args]`.
    pub payload: Payload,
    /// Which sockets, and how (`flags.timeout`: how long the requester listens).
    pub opts: BroadcastOptions,
}

/// Encodes a broadcast with acks as Node's adapter publishes it on the request channel:
/// msgpack `{uid, requestId, type: 7, packet, opts}`.
///
/// # Errors
///
/// `payload` is not the JSON array it should be.
pub fn encode_ack_request(
    uid: &str,
    request_id: &str,
    ns: &str,
    payload: &Payload,
    opts: &BroadcastOptions,
) -> Result<Vec<u8>, WireError> {
    write(&Value::Map(vec![
        (Value::from("uid"), Value::from(uid)),
        (Value::from("requestId"), Value::from(request_id)),
        (Value::from("type"), Value::from(BROADCAST_WITH_ACK)),
        (Value::from("packet"), event_value(ns, payload)?),
        (Value::from("opts"), opts_to_value(opts)),
    ]))
}

/// Decodes a msgpack request; `Ok(None)` for a msgpack request of another type.
///
/// # Errors
///
/// The bytes are not msgpack, or a broadcast with acks without its parts.
pub fn decode_ack_request(bytes: &[u8]) -> Result<Option<AckRequest>, WireError> {
    let message = read(bytes)?;
    if get(&message, "type").and_then(Value::as_u64) != Some(BROADCAST_WITH_ACK) {
        return Ok(None);
    }
    let text = |key: &str| {
        get(&message, key)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or(WireError::Shape("a request without uid or requestId"))
    };
    let data = get(&message, "packet")
        .and_then(|packet| get(packet, "data"))
        .ok_or(WireError::Shape("a request without packet data"))?;
    let opts = get(&message, "opts").ok_or(WireError::Shape("a request without opts"))?;
    Ok(Some(AckRequest {
        uid: text("uid")?,
        request_id: text("requestId")?,
        payload: value_to_payload(data)?,
        opts: opts_from_value(opts)?,
    }))
}

/// Encodes one client's answer to a broadcast with acks: msgpack
/// `{type: 9, requestId, packet: <its first argument>}`, binary in place.
///
/// # Errors
///
/// `answer` (the client's arguments) is not a JSON array.
pub fn encode_ack_answer(request_id: &str, answer: &Payload) -> Result<Vec<u8>, WireError> {
    let first = match payload_to_value(answer)? {
        Value::Array(mut args) if !args.is_empty() => args.swap_remove(0),
        _ => Value::Nil,
    };
    write(&Value::Map(vec![
        (Value::from("type"), Value::from(BROADCAST_ACK)),
        (Value::from("requestId"), Value::from(request_id)),
        (Value::from("packet"), first),
    ]))
}

/// Decodes a msgpack response: `Some((requestId, [answer]))` for a client's answer to a
/// broadcast with acks, `None` for a msgpack response of another type.
///
/// # Errors
///
/// The bytes are not msgpack, or an answer without its request id.
pub fn decode_ack_answer(bytes: &[u8]) -> Result<Option<(String, Payload)>, WireError> {
    let message = read(bytes)?;
    if get(&message, "type").and_then(Value::as_u64) != Some(BROADCAST_ACK) {
        return Ok(None);
    }
    let request_id = get(&message, "requestId")
        .and_then(Value::as_str)
        .ok_or(WireError::Shape("an answer without requestId"))?
        .to_owned();
    let answer = get(&message, "packet").cloned().unwrap_or(Value::Nil);
    Ok(Some((
        request_id,
        value_to_payload(&Value::Array(vec![answer]))?,
    )))
}

/// Decodes a broadcast published by a Node or Belfry server, or by the Redis emitter.
///
/// # Errors
///
/// The bytes are not msgpack, or not a broadcast (`[uid, {data, nsp}, {rooms, except, flags}]`).
pub fn decode_broadcast(bytes: &[u8]) -> Result<Broadcast, WireError> {
    let message = read(bytes)?;
    let Value::Array(parts) = message else {
        return Err(WireError::Shape("a broadcast is not an array"));
    };
    let [uid, packet, opts] = parts.as_slice() else {
        return Err(WireError::Shape("a broadcast is not [uid, packet, opts]"));
    };
    let uid = uid
        .as_str()
        .ok_or(WireError::Shape("the uid is not a string"))?
        .to_owned();
    let data = get(packet, "data").ok_or(WireError::Shape("the packet has no data"))?;
    let payload = value_to_payload(data)?;
    // Node treats a packet without `nsp` as the main namespace's.
    let ns = match get(packet, "nsp") {
        None | Some(Value::Nil) => "/",
        Some(nsp) => nsp
            .as_str()
            .ok_or(WireError::Shape("the namespace is not a string"))?,
    };
    let packet = Packet {
        ns: Str::from(ns),
        data: PacketData::Event { payload, ack: None },
    };
    Ok(Broadcast {
        uid,
        packet,
        opts: opts_from_value(opts)?,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;
    use belfry_core::adapter::BroadcastFlags;

    fn event(ns: &str, json: &str, attachments: Vec<Bytes>) -> Packet {
        Packet {
            ns: Str::from(ns),
            data: PacketData::Event {
                payload: Payload::new(json, attachments),
                ack: None,
            },
        }
    }

    #[test]
    fn channels_are_nodes() {
        let channels = Channels::new("socket.io", "/chat");
        assert_eq!(channels.broadcast, "socket.io#/chat#");
        assert_eq!(channels.request, "socket.io-request#/chat#");
        assert_eq!(channels.response, "socket.io-response#/chat#");
        assert_eq!(
            channels.response_to("abc123"),
            "socket.io-response#/chat#abc123#"
        );
        assert_eq!(channels.broadcast_pattern(), "socket.io#/chat#*");
        let one_room = BroadcastOptions::new().with_rooms(["r1"]);
        assert_eq!(channels.for_broadcast(&one_room), "socket.io#/chat#r1#");
        assert_eq!(
            channels.for_broadcast(&BroadcastOptions::default()),
            "socket.io#/chat#"
        );
        assert_eq!(channels.room_of("socket.io#/chat#"), Some(None));
        assert_eq!(channels.room_of("socket.io#/chat#r1#"), Some(Some("r1")));
        assert_eq!(channels.room_of("socket.io#/other#"), None);
    }

    #[test]
    fn broadcasts_round_trip_with_binary_and_flags() {
        let packet = event(
            "/chat",
            r#"["file",{"_placeholder":true,"num":0},"x"]"#,
            vec![Bytes::from_static(b"\x00\x01")],
        );
        let opts = BroadcastOptions::new()
            .with_rooms(["a", "b"])
            .with_except(["c"])
            .with_flags(
                BroadcastFlags::new()
                    .with_volatile(true)
                    .with_compress(true)
                    .with_timeout(Duration::from_millis(1500)),
            );
        let bytes = encode_broadcast("abc123", &packet, &opts).unwrap();
        let decoded = decode_broadcast(&bytes).unwrap();
        assert_eq!(decoded.uid, "abc123");
        assert_eq!(decoded.packet, packet);
        assert_eq!(decoded.opts, opts);
    }

    #[test]
    fn ack_requests_and_answers_round_trip() {
        let payload = Payload::new(
            r#"["vote?",{"_placeholder":true,"num":0}]"#,
            vec![Bytes::from_static(b"\x01")],
        );
        let opts = BroadcastOptions::new()
            .with_rooms(["voters"])
            .with_flags(BroadcastFlags::new().with_timeout(Duration::from_millis(900)));
        let bytes = encode_ack_request("srv001", "req001", "/", &payload, &opts).unwrap();
        let request = decode_ack_request(&bytes).unwrap().unwrap();
        assert_eq!(
            (request.uid.as_str(), request.request_id.as_str()),
            ("srv001", "req001")
        );
        assert_eq!((request.payload, request.opts), (payload, opts));

        let answer = Payload::json(r#"[{"yes":true},"ignored"]"#);
        let bytes = encode_ack_answer("req001", &answer).unwrap();
        let (id, decoded) = decode_ack_answer(&bytes).unwrap().unwrap();
        assert_eq!(id, "req001");
        assert_eq!(&*decoded.json, r#"[{"yes":true}]"#);
        // An answer without arguments is `null`, as Node's `ack()` sends `undefined`.
        let bytes = encode_ack_answer("req002", &Payload::json("[]")).unwrap();
        assert_eq!(
            &*decode_ack_answer(&bytes).unwrap().unwrap().1.json,
            "[null]"
        );
        // Other msgpack messages are not these.
        assert_eq!(decode_ack_request(&bytes).unwrap(), None);
        assert!(decode_ack_answer(b"\x80").unwrap().is_none());
        assert!(decode_ack_request(b"\x81\xa4type\x07").is_err());
    }

    #[test]
    fn hostile_broadcasts_are_errors() {
        for bytes in [
            &b""[..],
            b"\xc1",
            b"\x93\xa1a\x80\x80",    // a packet without data
            b"\x92\xa1a\x80",        // two elements
            b"\x93\x01\x80\x80",     // uid not a string
            b"\xdd\xff\xff\xff\xff", // an array claiming 4 billion elements
        ] {
            assert!(decode_broadcast(bytes).is_err(), "{bytes:?}");
        }
    }
}
