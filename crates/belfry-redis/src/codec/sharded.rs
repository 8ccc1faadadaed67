//! The sharded protocol's side of the [`Codec`](super::Codec) (Node's `createShardedAdapter`):
//! every message a [`ShardedMessage`] on the namespace's channel, a room's channel (broadcasts
//! in the dynamic subscription modes) or the requester's response channel.

use belfry_core::msgpack::{
    Value, arg_to_value, payload_to_value, value_to_arg, value_to_json, value_to_payload,
};
use belfry_core::{
    Str,
    parser::{Packet, PacketData, Payload},
};

use super::{Body, EncodeError, Incoming, Outgoing, Reply, Unsupported};
use crate::{
    WireError,
    driver::Kind,
    sharded::{ShardedChannels, ShardedMessage, SubscriptionMode, message_type},
    wire,
};

/// One namespace's channels and messages in the sharded protocol.
pub(crate) struct ShardedCodec {
    uid: String,
    nsp: Str,
    mode: SubscriptionMode,
    channels: ShardedChannels,
}

impl ShardedCodec {
    pub(super) fn new(key: &str, uid: &str, nsp: &str, mode: SubscriptionMode) -> ShardedCodec {
        ShardedCodec {
            uid: uid.to_owned(),
            nsp: Str::from(nsp),
            mode,
            channels: ShardedChannels::new(key, nsp),
        }
    }

    /// The namespace's channel and this server's response channel.
    pub(super) fn subscriptions(&self) -> Vec<(String, Kind)> {
        vec![
            (self.channels.namespace.clone(), Kind::Shard),
            (self.channels.responses_of(&self.uid), Kind::Shard),
        ]
    }

    /// The channel of `room` in the dynamic modes (in `Dynamic`, not for a socket's own room).
    pub(super) fn room_channel(&self, room: &str, is_socket: bool) -> Option<String> {
        match self.mode {
            SubscriptionMode::DynamicPrivate => Some(self.channels.room(room)),
            SubscriptionMode::Dynamic if !is_socket => Some(self.channels.room(room)),
            _ => None,
        }
    }

    /// True in the dynamic modes.
    pub(super) fn has_room_channels(&self) -> bool {
        matches!(
            self.mode,
            SubscriptionMode::Dynamic | SubscriptionMode::DynamicPrivate
        )
    }

    /// The namespace's channel, which every server of the namespace subscribes.
    pub(super) fn count_channel(&self) -> &str {
        &self.channels.namespace
    }

    /// A message received on any of the namespace's channels (they all carry the same
    /// envelope); another namespace's is ignored.
    pub(super) fn decode(&self, bytes: &[u8]) -> Result<Option<Incoming>, WireError> {
        let message = ShardedMessage::decode(bytes)?;
        if message.nsp != *self.nsp {
            return Ok(None);
        }
        decode_message(message)
    }

    /// `message` on its channel: a room's for a broadcast to one room that has one, the
    /// namespace's otherwise.
    pub(super) fn encode(&self, message: &Outgoing<'_>) -> Result<(String, Vec<u8>), EncodeError> {
        let (kind, data) = message_data(&self.nsp, message)?;
        let channel = match message {
            Outgoing::Broadcast { opts, .. } => self.channels.for_broadcast(self.mode, &opts.rooms),
            _ => self.channels.namespace.clone(),
        };
        Ok((
            channel,
            ShardedMessage::new(&self.uid, &self.nsp, kind, data).encode()?,
        ))
    }

    /// `reply` to request `request_id` of server `to`, on its response channel; the sharded
    /// protocol has no anonymous answers nor the classic protocol's legacy forms.
    pub(super) fn encode_reply(
        &self,
        to: Option<&str>,
        request_id: &str,
        reply: &Reply<'_>,
    ) -> Result<(String, Vec<u8>), EncodeError> {
        let to = to.ok_or(EncodeError::Unsupported(Unsupported("sharded")))?;
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
                return Err(EncodeError::Unsupported(Unsupported("sharded")));
            }
        };
        let data = Value::Map(vec![request, field]);
        let bytes = ShardedMessage::new(&self.uid, &self.nsp, kind, data).encode()?;
        Ok((self.channels.responses_of(to), bytes))
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
        Outgoing::AllRooms { .. } => return Err(Unsupported("sharded").into()),
    })
}

fn decode_message(message: ShardedMessage) -> Result<Option<Incoming>, WireError> {
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
            let data = wire::get(packet, "data")
                .ok_or(WireError::Shape("a broadcast packet without data"))?;
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
        // Heartbeats and adapter-close belong to adapters that count servers by heartbeat.
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
