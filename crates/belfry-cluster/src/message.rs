//! The messages of Node's `ClusterAdapter` (socket.io-adapter 2.5), apart from how they travel:
//! the adapter speaks in [`Outgoing`], [`Reply`] and [`Incoming`]; [`ClusterMessage`] is their
//! envelope `{type, data, uid, nsp}` as Node's cluster adapters put it on the wire (the sharded
//! Redis adapter, the Postgres adapter, the Redis Streams adapter), JSON or msgpack.

use belfry_core::{
    Str,
    adapter::{AdapterError, BroadcastOptions, SocketInfo},
    msgpack::{
        Value, WireError, arg_to_value, get, payload_to_value, read, value_to_arg, value_to_json,
        value_to_payload, write,
    },
    parser::{Packet, PacketData, Payload},
    proto::value::Value as Arg,
};

use crate::wire;

/// The kinds of [`ClusterMessage`] (Node's `MessageType`).
pub mod message_type {
    /// A server joins the namespace and asks the others to make themselves known.
    pub const INITIAL_HEARTBEAT: u64 = 1;
    /// A server is alive.
    pub const HEARTBEAT: u64 = 2;
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
    /// A server leaves the namespace.
    pub const ADAPTER_CLOSE: u64 = 13;
}

/// The uid that Node's emitters (`@socket.io/*-emitter`) sign their messages with: not a
/// server, never counted as one.
pub const EMITTER_UID: &str = "emitter";

/// A message from another server (or an emitter).
#[derive(Debug)]
#[non_exhaustive]
pub struct Incoming {
    /// The sender's uid, when the message names it.
    pub uid: Option<String>,
    /// What it asks for or answers.
    pub body: Body,
}

impl Incoming {
    /// `body`, from server `uid`.
    pub fn new(uid: Option<String>, body: Body) -> Incoming {
        Incoming { uid, body }
    }
}

/// What a message from another server asks for, or answers.
#[derive(Debug)]
#[non_exhaustive]
pub enum Body {
    /// Deliver `packet` to the sockets `opts` selects here.
    Broadcast {
        /// The event.
        packet: Packet,
        /// Which sockets.
        opts: BroadcastOptions,
    },
    /// The same, and send back the client count and every answer.
    BroadcastWithAck {
        /// The requester's id of the broadcast.
        request_id: String,
        /// The event's arguments.
        payload: Payload,
        /// Which sockets, and for how long answers are awaited (`flags.timeout`).
        opts: BroadcastOptions,
    },
    /// Make the sockets `opts` selects join `rooms`.
    Join {
        /// Which sockets.
        opts: BroadcastOptions,
        /// The rooms.
        rooms: Vec<String>,
    },
    /// Make the sockets `opts` selects leave `rooms`.
    Leave {
        /// Which sockets.
        opts: BroadcastOptions,
        /// The rooms.
        rooms: Vec<String>,
    },
    /// Disconnect the sockets `opts` selects (`close`: their whole connections).
    Disconnect {
        /// Which sockets.
        opts: BroadcastOptions,
        /// Close the underlying connections too.
        close: bool,
    },
    /// The classic Redis protocol's legacy one-socket forms of join/leave/disconnect.
    OneSocket {
        /// The request id to answer.
        request_id: String,
        /// What to do.
        op: SocketOp,
        /// The socket.
        sid: String,
    },
    /// The classic Redis protocol's `SOCKETS` request: the ids of the sockets in `rooms`.
    SocketIds {
        /// The request id to answer.
        request_id: String,
        /// The rooms.
        rooms: Vec<String>,
    },
    /// The classic Redis protocol's `allRooms` request.
    AllRooms {
        /// The request id to answer.
        request_id: String,
    },
    /// Describe the sockets `opts` selects.
    Fetch {
        /// The request id to answer.
        request_id: String,
        /// Which sockets.
        opts: BroadcastOptions,
    },
    /// A server-side event `[event, ...args]`, answered once when it has a request id.
    ServerSide {
        /// The request id to answer, when the sender waits for one.
        request_id: Option<String>,
        /// `[event, ...args]`.
        data: Vec<Arg>,
    },
    /// A server's client count for one of this server's broadcasts with acks.
    ClientCount {
        /// This server's request id.
        request_id: String,
        /// How many clients got the broadcast there.
        count: usize,
    },
    /// One client's answer: its first argument, as a one-element array.
    AckAnswer {
        /// This server's request id.
        request_id: String,
        /// `[answer]`.
        answer: Payload,
    },
    /// A server's sockets, answering this server's `Fetch`.
    Sockets {
        /// This server's request id.
        request_id: String,
        /// The sockets.
        sockets: Vec<SocketInfo>,
    },
    /// A server's rooms, answering this server's `AllRooms`.
    Rooms {
        /// This server's request id.
        request_id: String,
        /// The rooms.
        rooms: Vec<String>,
    },
    /// A server's answer to one of this server's server-side events.
    ServerSideAnswer {
        /// This server's request id.
        request_id: String,
        /// The answer's (first) argument.
        data: serde_json::Value,
    },
    /// The sender is alive; `initial`: it just joined and asks the others to say so too.
    Heartbeat {
        /// The sender just joined.
        initial: bool,
    },
    /// The sender leaves the namespace.
    Close,
}

/// What a legacy one-socket request does.
#[derive(Debug)]
#[non_exhaustive]
pub enum SocketOp {
    /// Join a room.
    Join(String),
    /// Leave a room.
    Leave(String),
    /// Disconnect (`true`: close the connection).
    Disconnect(bool),
}

/// A message this server sends to the others.
#[derive(Debug)]
#[non_exhaustive]
pub enum Outgoing<'a> {
    /// See [`Body::Broadcast`].
    Broadcast {
        /// The event.
        packet: &'a Packet,
        /// Which sockets.
        opts: &'a BroadcastOptions,
    },
    /// See [`Body::BroadcastWithAck`].
    BroadcastWithAck {
        /// The request id.
        request_id: &'a str,
        /// The event's arguments.
        payload: &'a Payload,
        /// Which sockets (`flags.timeout` set).
        opts: &'a BroadcastOptions,
    },
    /// See [`Body::Join`].
    Join {
        /// Which sockets.
        opts: &'a BroadcastOptions,
        /// The rooms.
        rooms: &'a [String],
    },
    /// See [`Body::Leave`].
    Leave {
        /// Which sockets.
        opts: &'a BroadcastOptions,
        /// The rooms.
        rooms: &'a [String],
    },
    /// See [`Body::Disconnect`].
    Disconnect {
        /// Which sockets.
        opts: &'a BroadcastOptions,
        /// Close the connections too.
        close: bool,
    },
    /// See [`Body::Fetch`].
    Fetch {
        /// The request id.
        request_id: &'a str,
        /// Which sockets.
        opts: &'a BroadcastOptions,
    },
    /// See [`Body::AllRooms`] (the classic Redis protocol only).
    AllRooms {
        /// The request id.
        request_id: &'a str,
    },
    /// See [`Body::ServerSide`].
    ServerSide {
        /// The request id, when answers are awaited.
        request_id: Option<&'a str>,
        /// `[event, ...args]`.
        data: &'a [Arg],
    },
    /// See [`Body::Heartbeat`].
    Heartbeat {
        /// This server just joined.
        initial: bool,
    },
    /// See [`Body::Close`].
    Close,
}

impl Outgoing<'_> {
    /// True for the messages of which order and delivery matter (broadcasts and rooms
    /// operations, which Node's Redis Streams adapter keeps in its stream); false for requests
    /// and heartbeats.
    pub fn is_durable(&self) -> bool {
        matches!(
            self,
            Outgoing::Broadcast { .. }
                | Outgoing::Join { .. }
                | Outgoing::Leave { .. }
                | Outgoing::Disconnect { .. }
        )
    }
}

/// This server's answer to a request.
#[derive(Debug)]
#[non_exhaustive]
pub enum Reply<'a> {
    /// A legacy one-socket request was carried out.
    Done,
    /// How many clients got a broadcast with acks here.
    ClientCount(usize),
    /// One client's answer (its arguments).
    AckAnswer(&'a Payload),
    /// The sockets a `Fetch` selects here.
    Sockets(&'a [SocketInfo]),
    /// The ids a `SocketIds` request selects here.
    SocketIds(&'a [String]),
    /// This server's rooms.
    Rooms(&'a [String]),
    /// The answer to a server-side event.
    ServerSide(&'a serde_json::Value),
}

/// Why a message could not be encoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// Its content cannot be written.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The protocol has no such message (the cluster protocol has no `allRooms`).
    #[error("the {0} protocol has no such message")]
    Unsupported(&'static str),
}

impl EncodeError {
    /// The adapter's error: [`AdapterError::Unsupported`] with `unsupported` (what the
    /// protocol lacks) for a message the protocol has no form for, a transport error
    /// otherwise.
    pub fn into_adapter_error(self, unsupported: &'static str) -> AdapterError {
        match self {
            EncodeError::Unsupported(_) => AdapterError::Unsupported(unsupported),
            error => AdapterError::Transport(Box::new(error)),
        }
    }
}

/// One message between servers: `{type, data, uid, nsp}`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ClusterMessage {
    /// The sending server's uid ([`EMITTER_UID`] for an emitter).
    pub uid: String,
    /// The namespace.
    pub nsp: String,
    /// One of [`message_type`].
    pub kind: u64,
    /// The message's fields (`Nil` for none), binary in place.
    pub data: Value,
}

impl ClusterMessage {
    /// A message of `kind` from server `uid` in namespace `nsp`.
    pub fn new(uid: &str, nsp: &str, kind: u64, data: Value) -> ClusterMessage {
        ClusterMessage {
            uid: uid.to_owned(),
            nsp: nsp.to_owned(),
            kind,
            data,
        }
    }

    /// `message` from server `uid` of namespace `nsp`.
    ///
    /// # Errors
    ///
    /// The message has no form in this protocol ([`Outgoing::AllRooms`]) or its content
    /// cannot be written.
    pub fn from_outgoing(
        uid: &str,
        nsp: &str,
        message: &Outgoing<'_>,
    ) -> Result<ClusterMessage, EncodeError> {
        let (kind, data) = message_data(nsp, message)?;
        Ok(ClusterMessage::new(uid, nsp, kind, data))
    }

    /// Server `uid`'s `reply` to request `request_id`, in namespace `nsp`.
    ///
    /// # Errors
    ///
    /// The reply has no form in this protocol (the classic Redis protocol's legacy answers)
    /// or its content cannot be written.
    pub fn from_reply(
        uid: &str,
        nsp: &str,
        request_id: &str,
        reply: &Reply<'_>,
    ) -> Result<ClusterMessage, EncodeError> {
        let request = (Value::from("requestId"), Value::from(request_id));
        let (kind, field) = match reply {
            Reply::ClientCount(count) => (
                message_type::BROADCAST_CLIENT_COUNT,
                (Value::from("clientCount"), Value::from(*count)),
            ),
            Reply::AckAnswer(answer) => (
                message_type::BROADCAST_ACK,
                (Value::from("packet"), first_argument(answer)?),
            ),
            Reply::Sockets(sockets) => (
                message_type::FETCH_SOCKETS_RESPONSE,
                (Value::from("sockets"), wire::sockets_to_value(sockets)?),
            ),
            Reply::ServerSide(data) => (
                message_type::SERVER_SIDE_EMIT_RESPONSE,
                (Value::from("packet"), to_value(data)?),
            ),
            Reply::Done | Reply::SocketIds(_) | Reply::Rooms(_) => {
                return Err(EncodeError::Unsupported("cluster"));
            }
        };
        let data = Value::Map(vec![request, field]);
        Ok(ClusterMessage::new(uid, nsp, kind, data))
    }

    /// The field `key` of the message's data.
    pub fn field(&self, key: &str) -> Option<&Value> {
        get(&self.data, key)
    }

    /// True when the data holds binary anywhere (Node's `hasBinary`).
    pub fn has_binary(&self) -> bool {
        has_binary(&self.data, 0)
    }

    /// The whole message as a msgpack value, keys in Node's order (`type`, `data`, `uid`,
    /// `nsp`).
    pub fn to_value(&self) -> Value {
        Value::Map(vec![
            (Value::from("type"), Value::from(self.kind)),
            (Value::from("data"), self.data.clone()),
            (Value::from("uid"), Value::from(self.uid.as_str())),
            (Value::from("nsp"), Value::from(self.nsp.as_str())),
        ])
    }

    /// The message as JSON text (binary in it becomes arrays of numbers: check
    /// [`has_binary`](ClusterMessage::has_binary) first).
    ///
    /// # Errors
    ///
    /// The data holds a map key that is not a string.
    pub fn to_json(&self) -> Result<Vec<u8>, WireError> {
        Ok(serde_json::to_vec(&self.to_value())?)
    }

    /// The message as msgpack.
    ///
    /// # Errors
    ///
    /// The data cannot be written (never for what [`ClusterMessage::from_outgoing`] makes).
    pub fn to_msgpack(&self) -> Result<Vec<u8>, WireError> {
        write(&self.to_value())
    }

    /// Encodes the message as Node's sharded Redis adapter does: JSON, or msgpack when it
    /// carries binary.
    ///
    /// # Errors
    ///
    /// The data holds what neither format can carry (a map key that is not a string in JSON).
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        if self.has_binary() {
            self.to_msgpack()
        } else {
            self.to_json()
        }
    }

    /// Decodes a message: JSON when it starts with `{`, msgpack otherwise.
    ///
    /// # Errors
    ///
    /// Neither valid JSON nor msgpack, or not `{type, data?, uid?, nsp?}`.
    pub fn decode(bytes: &[u8]) -> Result<ClusterMessage, WireError> {
        let message: Value = if bytes.first() == Some(&b'{') {
            serde_json::from_slice(bytes)?
        } else {
            read(bytes)?
        };
        ClusterMessage::from_value(&message)
    }

    /// Decodes a message of namespace `nsp` into what it asks for or answers: `Ok(None)` for
    /// another namespace's, or a kind this server does not act on.
    ///
    /// # Errors
    ///
    /// As [`ClusterMessage::decode`] and [`ClusterMessage::into_incoming`].
    pub fn decode_for(nsp: &str, bytes: &[u8]) -> Result<Option<Incoming>, WireError> {
        let message = ClusterMessage::decode(bytes)?;
        if message.nsp != nsp {
            return Ok(None);
        }
        message.into_incoming()
    }

    /// Reads a message from its value (see [`ClusterMessage::to_value`]); a missing `nsp` is
    /// `/`, a missing `uid` empty.
    ///
    /// # Errors
    ///
    /// Not a map with a numeric `type`.
    pub fn from_value(message: &Value) -> Result<ClusterMessage, WireError> {
        let text = |key: &str| get(message, key).and_then(Value::as_str);
        let kind = get(message, "type")
            .and_then(|kind| {
                kind.as_u64()
                    .or_else(|| kind.as_str().and_then(|s| s.parse().ok()))
            })
            .ok_or(WireError::Shape("a cluster message without type"))?;
        Ok(ClusterMessage {
            uid: text("uid").unwrap_or_default().to_owned(),
            nsp: text("nsp").unwrap_or("/").to_owned(),
            kind,
            data: get(message, "data").cloned().unwrap_or(Value::Nil),
        })
    }

    /// What the message asks for or answers; `Ok(None)` for a kind this server does not act
    /// on.
    ///
    /// # Errors
    ///
    /// Its data is not what its kind says.
    pub fn into_incoming(self) -> Result<Option<Incoming>, WireError> {
        decode_message(self)
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

/// `value` as msgpack, by way of its JSON form (so that structs are maps, as Node sends them).
fn to_value<T: serde::Serialize + ?Sized>(value: &T) -> Result<Value, WireError> {
    rmpv::ext::to_value(serde_json::to_value(value)?)
        .map_err(|_| WireError::Shape("not representable in msgpack"))
}

/// The first of a client's answer arguments (`null` when it sent none, as Node's `ack()`).
fn first_argument(answer: &Payload) -> Result<Value, WireError> {
    Ok(match payload_to_value(answer)? {
        Value::Array(mut args) if !args.is_empty() => args.swap_remove(0),
        _ => Value::Nil,
    })
}

/// The `(type, data)` of a sharded message.
fn message_data(nsp: &str, message: &Outgoing<'_>) -> Result<(u64, Value), EncodeError> {
    let entry = |key: &str, value: Value| (Value::from(key), value);
    let strings =
        |items: &[String]| Value::Array(items.iter().map(|s| Value::from(s.as_str())).collect());
    Ok(match message {
        Outgoing::Broadcast { packet, opts } => {
            let PacketData::Event { payload, .. } = &packet.data else {
                return Err(WireError::Shape("only events are broadcast").into());
            };
            (
                message_type::BROADCAST,
                Value::Map(vec![
                    entry("packet", wire::event_value(nsp, payload)?),
                    entry("opts", wire::opts_to_value(opts)),
                ]),
            )
        }
        Outgoing::BroadcastWithAck {
            request_id,
            payload,
            opts,
        } => (
            message_type::BROADCAST,
            Value::Map(vec![
                entry("packet", wire::event_value(nsp, payload)?),
                entry("requestId", Value::from(*request_id)),
                entry("opts", wire::opts_to_value(opts)),
            ]),
        ),
        Outgoing::Join { opts, rooms } => (
            message_type::SOCKETS_JOIN,
            Value::Map(vec![
                entry("opts", wire::opts_to_value(opts)),
                entry("rooms", strings(rooms)),
            ]),
        ),
        Outgoing::Leave { opts, rooms } => (
            message_type::SOCKETS_LEAVE,
            Value::Map(vec![
                entry("opts", wire::opts_to_value(opts)),
                entry("rooms", strings(rooms)),
            ]),
        ),
        Outgoing::Disconnect { opts, close } => (
            message_type::DISCONNECT_SOCKETS,
            Value::Map(vec![
                entry("opts", wire::opts_to_value(opts)),
                entry("close", Value::from(*close)),
            ]),
        ),
        Outgoing::Fetch { request_id, opts } => (
            message_type::FETCH_SOCKETS,
            Value::Map(vec![
                entry("opts", wire::opts_to_value(opts)),
                entry("requestId", Value::from(*request_id)),
            ]),
        ),
        Outgoing::ServerSide { request_id, data } => {
            let packet = Value::Array(data.iter().map(arg_to_value).collect());
            let mut fields = vec![entry("packet", packet)];
            if let Some(request_id) = request_id {
                fields.push(entry("requestId", Value::from(*request_id)));
            }
            (message_type::SERVER_SIDE_EMIT, Value::Map(fields))
        }
        Outgoing::Heartbeat { initial: true } => (message_type::INITIAL_HEARTBEAT, Value::Nil),
        Outgoing::Heartbeat { initial: false } => (message_type::HEARTBEAT, Value::Nil),
        Outgoing::Close => (message_type::ADAPTER_CLOSE, Value::Nil),
        Outgoing::AllRooms { .. } => return Err(EncodeError::Unsupported("cluster")),
    })
}

fn decode_message(message: ClusterMessage) -> Result<Option<Incoming>, WireError> {
    let text = |key: &str| -> Result<String, WireError> {
        message
            .field(key)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or(WireError::Shape("a cluster message without a text field"))
    };
    let opts = || {
        wire::opts_from_value(
            message
                .field("opts")
                .ok_or(WireError::Shape("a cluster message without opts"))?,
        )
    };
    let rooms = || -> Result<Vec<String>, WireError> {
        match message.field("rooms") {
            Some(Value::Array(items)) => items
                .iter()
                .map(|room| {
                    room.as_str()
                        .map(str::to_owned)
                        .ok_or(WireError::Shape("a room is not a string"))
                })
                .collect(),
            _ => Err(WireError::Shape("rooms are not an array")),
        }
    };
    let body = match message.kind {
        message_type::BROADCAST => {
            let packet = message
                .field("packet")
                .ok_or(WireError::Shape("a broadcast without packet"))?;
            let data =
                get(packet, "data").ok_or(WireError::Shape("a broadcast packet without data"))?;
            let payload = value_to_payload(data)?;
            match message.field("requestId") {
                Some(_) => Body::BroadcastWithAck {
                    request_id: text("requestId")?,
                    payload,
                    opts: opts()?,
                },
                None => Body::Broadcast {
                    packet: Packet {
                        ns: Str::from(message.nsp.as_str()),
                        data: PacketData::Event { payload, ack: None },
                    },
                    opts: opts()?,
                },
            }
        }
        message_type::SOCKETS_JOIN => Body::Join {
            opts: opts()?,
            rooms: rooms()?,
        },
        message_type::SOCKETS_LEAVE => Body::Leave {
            opts: opts()?,
            rooms: rooms()?,
        },
        message_type::DISCONNECT_SOCKETS => Body::Disconnect {
            opts: opts()?,
            close: message
                .field("close")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        },
        message_type::FETCH_SOCKETS => Body::Fetch {
            request_id: text("requestId")?,
            opts: opts()?,
        },
        message_type::FETCH_SOCKETS_RESPONSE => {
            let sockets = message
                .field("sockets")
                .ok_or(WireError::Shape("a fetch response without sockets"))?;
            Body::Sockets {
                request_id: text("requestId")?,
                sockets: wire::sockets_from_value(sockets)?,
            }
        }
        message_type::SERVER_SIDE_EMIT => {
            let Some(Value::Array(packet)) = message.field("packet") else {
                return Err(WireError::Shape("a server-side event without packet"));
            };
            let data = packet.iter().map(value_to_arg).collect::<Result<_, _>>()?;
            Body::ServerSide {
                request_id: message
                    .field("requestId")
                    .map(|_| text("requestId"))
                    .transpose()?,
                data,
            }
        }
        message_type::SERVER_SIDE_EMIT_RESPONSE => Body::ServerSideAnswer {
            request_id: text("requestId")?,
            data: message
                .field("packet")
                .map(value_to_json)
                .transpose()?
                .unwrap_or(serde_json::Value::Null),
        },
        message_type::BROADCAST_CLIENT_COUNT => Body::ClientCount {
            request_id: text("requestId")?,
            count: message
                .field("clientCount")
                .and_then(Value::as_u64)
                .and_then(|n| usize::try_from(n).ok())
                .ok_or(WireError::Shape("a client count without clientCount"))?,
        },
        message_type::BROADCAST_ACK => Body::AckAnswer {
            request_id: text("requestId")?,
            answer: value_to_payload(&Value::Array(vec![
                message.field("packet").cloned().unwrap_or(Value::Nil),
            ]))?,
        },
        message_type::INITIAL_HEARTBEAT => Body::Heartbeat { initial: true },
        message_type::HEARTBEAT => Body::Heartbeat { initial: false },
        message_type::ADAPTER_CLOSE => Body::Close,
        kind => {
            tracing::debug!(kind, "cluster message not handled");
            return Ok(None);
        }
    };
    Ok(Some(Incoming {
        uid: Some(message.uid),
        body,
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn json_unless_binary_and_back() {
        let plain = ClusterMessage::new(
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
            r#"{"type":4,"data":{"rooms":["r1"]},"uid":"0123456789abcdef","nsp":"/"}"#
        );
        assert_eq!(ClusterMessage::decode(&bytes).unwrap(), plain);

        let binary = ClusterMessage::new(
            "0123456789abcdef",
            "/",
            message_type::BROADCAST_ACK,
            Value::Map(vec![(Value::from("packet"), Value::Binary(vec![1, 2]))]),
        );
        let bytes = binary.encode().unwrap();
        assert_eq!(bytes[0], 0x84, "a msgpack map of four");
        assert_eq!(ClusterMessage::decode(&bytes).unwrap(), binary);
    }

    #[test]
    fn hostile_messages_are_errors() {
        for bytes in [&b""[..], b"{", b"{\"uid\":\"x\"}", b"\xc1", b"\x80"] {
            assert!(ClusterMessage::decode(bytes).is_err(), "{bytes:?}");
        }
    }

    #[test]
    fn heartbeats_and_close_both_ways() {
        for (message, kind) in [
            (
                Outgoing::Heartbeat { initial: true },
                message_type::INITIAL_HEARTBEAT,
            ),
            (
                Outgoing::Heartbeat { initial: false },
                message_type::HEARTBEAT,
            ),
            (Outgoing::Close, message_type::ADAPTER_CLOSE),
        ] {
            let encoded = ClusterMessage::from_outgoing("abc", "/", &message).unwrap();
            assert_eq!(encoded.kind, kind);
            let bytes = encoded.encode().unwrap();
            let incoming = ClusterMessage::decode(&bytes)
                .unwrap()
                .into_incoming()
                .unwrap()
                .unwrap();
            assert_eq!(incoming.uid.as_deref(), Some("abc"));
            match (message, incoming.body) {
                (Outgoing::Heartbeat { initial }, Body::Heartbeat { initial: back }) => {
                    assert_eq!(initial, back);
                }
                (Outgoing::Close, Body::Close) => {}
                (sent, got) => panic!("{sent:?} came back as {got:?}"),
            }
        }
        // Node's Postgres adapter writes `{"type":2,"uid":…,"nsp":…}`, without data.
        let node = br#"{"type":2,"uid":"9f0e","nsp":"/"}"#;
        let incoming = ClusterMessage::decode(node)
            .unwrap()
            .into_incoming()
            .unwrap()
            .unwrap();
        assert!(matches!(incoming.body, Body::Heartbeat { initial: false }));
    }

    #[test]
    fn all_rooms_has_no_cluster_form() {
        let err = ClusterMessage::from_outgoing("u", "/", &Outgoing::AllRooms { request_id: "r" });
        assert!(matches!(err, Err(EncodeError::Unsupported(_))));
    }
}
