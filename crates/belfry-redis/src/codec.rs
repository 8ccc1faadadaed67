//! What servers tell each other, apart from how: the adapter speaks in [`Body`], [`Outgoing`]
//! and [`Reply`]; a [`Codec`] puts them on the channels of the classic or the sharded protocol.

use belfry_core::msgpack::{Value, payload_to_value, value_to_json, value_to_payload};
use belfry_core::{
    Str,
    adapter::{BroadcastOptions, SocketInfo},
    parser::{Packet, PacketData, Payload},
};
use serde::Deserialize;
use serde_json::json;

use crate::{
    Protocol, WireError,
    cluster::{ClusterMessage, ShardedChannels, SubscriptionMode, message_type as cluster},
    driver::Kind,
    wire::{self, Channels},
};

/// Node's request types of the classic protocol (`RequestType`).
mod classic {
    pub(super) const SOCKETS: u64 = 0;
    pub(super) const ALL_ROOMS: u64 = 1;
    pub(super) const REMOTE_JOIN: u64 = 2;
    pub(super) const REMOTE_LEAVE: u64 = 3;
    pub(super) const REMOTE_DISCONNECT: u64 = 4;
    pub(super) const REMOTE_FETCH: u64 = 5;
    pub(super) const SERVER_SIDE_EMIT: u64 = 6;
}

/// A message from another server (or an emitter).
pub(crate) struct Incoming {
    /// The sender's uid, when the message names it.
    pub(crate) uid: Option<String>,
    pub(crate) body: Body,
}

/// What a message asks for, or answers.
pub(crate) enum Body {
    /// Deliver `packet` to the sockets `opts` selects here.
    Broadcast {
        packet: Packet,
        opts: BroadcastOptions,
    },
    /// The same, and send back the client count and every answer.
    BroadcastWithAck {
        request_id: String,
        payload: Payload,
        opts: BroadcastOptions,
    },
    Join {
        opts: BroadcastOptions,
        rooms: Vec<String>,
    },
    Leave {
        opts: BroadcastOptions,
        rooms: Vec<String>,
    },
    Disconnect {
        opts: BroadcastOptions,
        close: bool,
    },
    /// The classic protocol's legacy one-socket forms of join/leave/disconnect.
    OneSocket {
        request_id: String,
        op: SocketOp,
        sid: String,
    },
    /// The classic `SOCKETS` request: the ids of the sockets in `rooms`.
    SocketIds {
        request_id: String,
        rooms: Vec<String>,
    },
    AllRooms {
        request_id: String,
    },
    Fetch {
        request_id: String,
        opts: BroadcastOptions,
    },
    /// A server-side event `[event, ...args]`, answered once when it has a request id.
    ServerSide {
        request_id: Option<String>,
        data: Vec<serde_json::Value>,
    },
    ClientCount {
        request_id: String,
        count: usize,
    },
    /// One client's answer: its first argument, as a one-element array.
    AckAnswer {
        request_id: String,
        answer: Payload,
    },
    Sockets {
        request_id: String,
        sockets: Vec<SocketInfo>,
    },
    Rooms {
        request_id: String,
        rooms: Vec<String>,
    },
    ServerSideAnswer {
        request_id: String,
        data: serde_json::Value,
    },
}

/// What a legacy one-socket request does.
pub(crate) enum SocketOp {
    Join(String),
    Leave(String),
    Disconnect(bool),
}

/// A message this server sends to the others.
pub(crate) enum Outgoing<'a> {
    Broadcast {
        packet: &'a Packet,
        opts: &'a BroadcastOptions,
    },
    BroadcastWithAck {
        request_id: &'a str,
        payload: &'a Payload,
        opts: &'a BroadcastOptions,
    },
    Join {
        opts: &'a BroadcastOptions,
        rooms: &'a [String],
    },
    Leave {
        opts: &'a BroadcastOptions,
        rooms: &'a [String],
    },
    Disconnect {
        opts: &'a BroadcastOptions,
        close: bool,
    },
    Fetch {
        request_id: &'a str,
        opts: &'a BroadcastOptions,
    },
    AllRooms {
        request_id: &'a str,
    },
    ServerSide {
        request_id: Option<&'a str>,
        data: &'a [serde_json::Value],
    },
}

/// This server's answer to a request.
pub(crate) enum Reply<'a> {
    /// A legacy one-socket request was carried out.
    Done,
    ClientCount(usize),
    AckAnswer(&'a Payload),
    Sockets(&'a [SocketInfo]),
    SocketIds(&'a [String]),
    Rooms(&'a [String]),
    ServerSide(&'a serde_json::Value),
}

/// The request cannot be put in this protocol (the sharded one has no `allRooms`).
#[derive(Debug, thiserror::Error)]
#[error("the {0} protocol has no such message")]
pub(crate) struct Unsupported(pub(crate) &'static str);

/// One namespace's channels and message forms in one protocol.
pub(crate) enum Codec {
    Classic {
        uid: String,
        nsp: Str,
        channels: Channels,
        /// `channels.response_to(uid)`: where Node servers may answer this one.
        my_responses: String,
    },
    Sharded {
        uid: String,
        nsp: Str,
        mode: SubscriptionMode,
        channels: ShardedChannels,
    },
}

impl Codec {
    pub(crate) fn new(protocol: Protocol, key: &str, uid: &str, nsp: &str) -> Codec {
        match protocol {
            Protocol::Classic => {
                let channels = Channels::new(key, nsp);
                Codec::Classic {
                    uid: uid.to_owned(),
                    nsp: Str::from(nsp),
                    my_responses: channels.response_to(uid),
                    channels,
                }
            }
            Protocol::Sharded(mode) => Codec::Sharded {
                uid: uid.to_owned(),
                nsp: Str::from(nsp),
                mode,
                channels: ShardedChannels::new(key, nsp),
            },
        }
    }

    /// What the namespace subscribes to from the start.
    pub(crate) fn subscriptions(&self) -> Vec<(String, Kind)> {
        match self {
            Codec::Classic {
                channels,
                my_responses,
                ..
            } => vec![
                (channels.broadcast_pattern(), Kind::Pattern),
                (channels.request.clone(), Kind::Channel),
                (channels.response.clone(), Kind::Channel),
                // Node servers with `publishOnSpecificResponseChannel` answer there.
                (my_responses.clone(), Kind::Channel),
            ],
            Codec::Sharded { uid, channels, .. } => vec![
                (channels.namespace.clone(), Kind::Shard),
                (channels.responses_of(uid), Kind::Shard),
            ],
        }
    }

    /// The channel of `room` when this protocol gives it one of its own (`is_socket`: the
    /// room is a socket's own).
    pub(crate) fn room_channel(&self, room: &str, is_socket: bool) -> Option<String> {
        match self {
            Codec::Sharded {
                mode: SubscriptionMode::DynamicPrivate,
                channels,
                ..
            } => Some(channels.room(room)),
            Codec::Sharded {
                mode: SubscriptionMode::Dynamic,
                channels,
                ..
            } if !is_socket => Some(channels.room(room)),
            _ => None,
        }
    }

    /// True when rooms may get channels of their own (the sharded protocol's dynamic modes).
    pub(crate) fn has_room_channels(&self) -> bool {
        matches!(
            self,
            Codec::Sharded {
                mode: SubscriptionMode::Dynamic | SubscriptionMode::DynamicPrivate,
                ..
            }
        )
    }

    /// A fresh request id, of the form the protocol's Node adapter uses.
    pub(crate) fn new_request_id(&self) -> String {
        match self {
            Codec::Classic { .. } => crate::random_id(6),
            Codec::Sharded { .. } => crate::random_hex(8),
        }
    }

    /// The channel used to count the servers.
    pub(crate) fn count_channel(&self) -> &str {
        match self {
            Codec::Classic { channels, .. } => &channels.request,
            Codec::Sharded { channels, .. } => &channels.namespace,
        }
    }

    /// A message received on `channel`; `Ok(None)` for one to ignore quietly (another
    /// namespace's, a type this server does not act on).
    pub(crate) fn decode(
        &self,
        channel: &str,
        bytes: &[u8],
    ) -> Result<Option<Incoming>, WireError> {
        match self {
            Codec::Classic {
                channels,
                my_responses,
                ..
            } => {
                if channels.room_of(channel).is_some() {
                    let broadcast = wire::decode_broadcast(bytes)?;
                    return Ok(Some(Incoming {
                        uid: Some(broadcast.uid),
                        body: Body::Broadcast {
                            packet: broadcast.packet,
                            opts: broadcast.opts,
                        },
                    }));
                }
                if channel == channels.request {
                    return decode_classic_request(bytes);
                }
                if channel == channels.response || channel == my_responses {
                    return decode_classic_response(bytes);
                }
                Ok(None)
            }
            Codec::Sharded { nsp, .. } => {
                let message = ClusterMessage::decode(bytes)?;
                if message.nsp != **nsp {
                    return Ok(None);
                }
                decode_cluster(message)
            }
        }
    }

    /// `message` as this protocol publishes it: `(channel, bytes)`.
    pub(crate) fn encode(&self, message: &Outgoing<'_>) -> Result<(String, Vec<u8>), EncodeError> {
        match self {
            Codec::Classic {
                uid, nsp, channels, ..
            } => encode_classic(uid, nsp, channels, message),
            Codec::Sharded {
                uid,
                nsp,
                mode,
                channels,
            } => {
                let (kind, data) = cluster_data(nsp, message)?;
                let channel = match message {
                    Outgoing::Broadcast { opts, .. } => channels.for_broadcast(*mode, &opts.rooms),
                    _ => channels.namespace.clone(),
                };
                Ok((channel, ClusterMessage::new(uid, nsp, kind, data).encode()?))
            }
        }
    }

    /// `reply` to request `request_id` of server `to`, as this protocol publishes it.
    pub(crate) fn encode_reply(
        &self,
        to: Option<&str>,
        request_id: &str,
        reply: &Reply<'_>,
    ) -> Result<(String, Vec<u8>), EncodeError> {
        match self {
            Codec::Classic { channels, .. } => {
                let bytes = match reply {
                    Reply::AckAnswer(answer) => wire::encode_ack_answer(request_id, answer)?,
                    Reply::Done => json_bytes(json!({ "requestId": request_id })),
                    Reply::ClientCount(count) => json_bytes(json!({
                        "type": wire::BROADCAST_CLIENT_COUNT,
                        "requestId": request_id,
                        "clientCount": count,
                    })),
                    Reply::Sockets(sockets) => {
                        json_bytes(json!({ "requestId": request_id, "sockets": sockets }))
                    }
                    Reply::SocketIds(ids) => {
                        json_bytes(json!({ "requestId": request_id, "sockets": ids }))
                    }
                    Reply::Rooms(rooms) => {
                        json_bytes(json!({ "requestId": request_id, "rooms": rooms }))
                    }
                    Reply::ServerSide(data) => json_bytes(json!({
                        "type": classic::SERVER_SIDE_EMIT,
                        "requestId": request_id,
                        "data": data,
                    })),
                };
                Ok((channels.response.clone(), bytes))
            }
            Codec::Sharded {
                uid, nsp, channels, ..
            } => {
                let to = to.ok_or(EncodeError::Unsupported(Unsupported("sharded")))?;
                let request = (Value::from("requestId"), Value::from(request_id));
                let (kind, field) = match reply {
                    Reply::ClientCount(count) => (
                        cluster::BROADCAST_CLIENT_COUNT,
                        (Value::from("clientCount"), Value::from(*count)),
                    ),
                    Reply::AckAnswer(answer) => (
                        cluster::BROADCAST_ACK,
                        (Value::from("packet"), first_argument(answer)?),
                    ),
                    Reply::Sockets(sockets) => (
                        cluster::FETCH_SOCKETS_RESPONSE,
                        (Value::from("sockets"), to_value(sockets)?),
                    ),
                    Reply::ServerSide(data) => (
                        cluster::SERVER_SIDE_EMIT_RESPONSE,
                        (Value::from("packet"), to_value(data)?),
                    ),
                    Reply::Done | Reply::SocketIds(_) | Reply::Rooms(_) => {
                        return Err(EncodeError::Unsupported(Unsupported("sharded")));
                    }
                };
                let data = Value::Map(vec![request, field]);
                let bytes = ClusterMessage::new(uid, nsp, kind, data).encode()?;
                Ok((channels.responses_of(to), bytes))
            }
        }
    }
}

/// Why a message could not be encoded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EncodeError {
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error(transparent)]
    Unsupported(#[from] Unsupported),
}

fn json_bytes(value: serde_json::Value) -> Vec<u8> {
    value.to_string().into_bytes()
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

fn options_json(opts: &BroadcastOptions) -> serde_json::Value {
    json!({ "rooms": opts.rooms, "except": opts.except })
}

fn encode_classic(
    uid: &str,
    nsp: &str,
    channels: &Channels,
    message: &Outgoing<'_>,
) -> Result<(String, Vec<u8>), EncodeError> {
    let request = |kind: u64, request_id: Option<&str>, fields: serde_json::Value| {
        let mut request = json!({ "uid": uid, "type": kind });
        if let Some(request_id) = request_id {
            request["requestId"] = json!(request_id);
        }
        if let (Some(request), serde_json::Value::Object(fields)) =
            (request.as_object_mut(), fields)
        {
            request.extend(fields);
        }
        (channels.request.clone(), json_bytes(request))
    };
    Ok(match message {
        Outgoing::Broadcast { packet, opts } => (
            channels.for_broadcast(opts),
            wire::encode_broadcast(uid, packet, opts)?,
        ),
        Outgoing::BroadcastWithAck {
            request_id,
            payload,
            opts,
        } => (
            channels.request.clone(),
            wire::encode_ack_request(uid, request_id, nsp, payload, opts)?,
        ),
        Outgoing::Join { opts, rooms } => request(
            classic::REMOTE_JOIN,
            None,
            json!({ "opts": options_json(opts), "rooms": rooms }),
        ),
        Outgoing::Leave { opts, rooms } => request(
            classic::REMOTE_LEAVE,
            None,
            json!({ "opts": options_json(opts), "rooms": rooms }),
        ),
        Outgoing::Disconnect { opts, close } => request(
            classic::REMOTE_DISCONNECT,
            None,
            json!({ "opts": options_json(opts), "close": close }),
        ),
        Outgoing::Fetch { request_id, opts } => request(
            classic::REMOTE_FETCH,
            Some(request_id),
            json!({ "opts": options_json(opts) }),
        ),
        Outgoing::AllRooms { request_id } => {
            request(classic::ALL_ROOMS, Some(request_id), json!({}))
        }
        Outgoing::ServerSide { request_id, data } => request(
            classic::SERVER_SIDE_EMIT,
            *request_id,
            json!({ "data": data }),
        ),
    })
}

/// The `(type, data)` of a cluster message.
fn cluster_data(nsp: &str, message: &Outgoing<'_>) -> Result<(u64, Value), EncodeError> {
    let entry = |key: &str, value: Value| (Value::from(key), value);
    let strings =
        |items: &[String]| Value::Array(items.iter().map(|s| Value::from(s.as_str())).collect());
    Ok(match message {
        Outgoing::Broadcast { packet, opts } => {
            let PacketData::Event { payload, .. } = &packet.data else {
                return Err(WireError::Shape("only events are broadcast").into());
            };
            (
                cluster::BROADCAST,
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
            cluster::BROADCAST,
            Value::Map(vec![
                entry("packet", wire::event_value(nsp, payload)?),
                entry("requestId", Value::from(*request_id)),
                entry("opts", wire::opts_to_value(opts)),
            ]),
        ),
        Outgoing::Join { opts, rooms } => (
            cluster::SOCKETS_JOIN,
            Value::Map(vec![
                entry("opts", wire::opts_to_value(opts)),
                entry("rooms", strings(rooms)),
            ]),
        ),
        Outgoing::Leave { opts, rooms } => (
            cluster::SOCKETS_LEAVE,
            Value::Map(vec![
                entry("opts", wire::opts_to_value(opts)),
                entry("rooms", strings(rooms)),
            ]),
        ),
        Outgoing::Disconnect { opts, close } => (
            cluster::DISCONNECT_SOCKETS,
            Value::Map(vec![
                entry("opts", wire::opts_to_value(opts)),
                entry("close", Value::from(*close)),
            ]),
        ),
        Outgoing::Fetch { request_id, opts } => (
            cluster::FETCH_SOCKETS,
            Value::Map(vec![
                entry("opts", wire::opts_to_value(opts)),
                entry("requestId", Value::from(*request_id)),
            ]),
        ),
        Outgoing::ServerSide { request_id, data } => {
            let mut fields = vec![entry("packet", to_value(data)?)];
            if let Some(request_id) = request_id {
                fields.push(entry("requestId", Value::from(*request_id)));
            }
            (cluster::SERVER_SIDE_EMIT, Value::Map(fields))
        }
        Outgoing::AllRooms { .. } => return Err(Unsupported("sharded").into()),
    })
}

/// A classic request, as JSON (the fields of the types Belfry answers).
#[derive(Deserialize)]
struct ClassicRequest {
    #[serde(rename = "type")]
    kind: u64,
    #[serde(default)]
    uid: Option<String>,
    #[serde(default, rename = "requestId")]
    request_id: Option<String>,
    #[serde(default)]
    opts: Option<ClassicOpts>,
    #[serde(default)]
    rooms: Vec<String>,
    #[serde(default)]
    close: bool,
    /// Server-side events: `[event, ...args]`.
    #[serde(default)]
    data: Vec<serde_json::Value>,
    /// The legacy forms of types 2–4: one socket...
    #[serde(default)]
    sid: Option<String>,
    /// ...and one room.
    #[serde(default)]
    room: Option<String>,
}

#[derive(Deserialize)]
struct ClassicOpts {
    #[serde(default)]
    rooms: Vec<String>,
    #[serde(default)]
    except: Vec<String>,
}

impl From<ClassicOpts> for BroadcastOptions {
    fn from(opts: ClassicOpts) -> BroadcastOptions {
        BroadcastOptions {
            rooms: opts.rooms,
            except: opts.except,
            ..BroadcastOptions::default()
        }
    }
}

fn decode_classic_request(bytes: &[u8]) -> Result<Option<Incoming>, WireError> {
    if bytes.first() != Some(&b'{') {
        // Msgpack: a broadcast with acks.
        return Ok(wire::decode_ack_request(bytes)?.map(|request| Incoming {
            uid: Some(request.uid),
            body: Body::BroadcastWithAck {
                request_id: request.request_id,
                payload: request.payload,
                opts: request.opts,
            },
        }));
    }
    let request: ClassicRequest = serde_json::from_slice(bytes)?;
    let ClassicRequest {
        kind,
        uid,
        request_id,
        opts,
        rooms,
        close,
        data,
        sid,
        room,
    } = request;
    let body = match (kind, opts.map(BroadcastOptions::from), request_id) {
        (classic::REMOTE_JOIN, Some(opts), _) => Body::Join { opts, rooms },
        (classic::REMOTE_LEAVE, Some(opts), _) => Body::Leave { opts, rooms },
        (classic::REMOTE_DISCONNECT, Some(opts), _) => Body::Disconnect { opts, close },
        (
            classic::REMOTE_JOIN | classic::REMOTE_LEAVE | classic::REMOTE_DISCONNECT,
            None,
            Some(request_id),
        ) => {
            let op = match (kind, room) {
                (classic::REMOTE_JOIN, Some(room)) => SocketOp::Join(room),
                (classic::REMOTE_LEAVE, Some(room)) => SocketOp::Leave(room),
                (classic::REMOTE_DISCONNECT, _) => SocketOp::Disconnect(close),
                _ => return Err(WireError::Shape("a one-socket request without its room")),
            };
            let sid = sid.ok_or(WireError::Shape("a one-socket request without sid"))?;
            Body::OneSocket {
                request_id,
                op,
                sid,
            }
        }
        (classic::SOCKETS, _, Some(request_id)) => Body::SocketIds { request_id, rooms },
        (classic::ALL_ROOMS, _, Some(request_id)) => Body::AllRooms { request_id },
        (classic::REMOTE_FETCH, Some(opts), Some(request_id)) => Body::Fetch { request_id, opts },
        (classic::SERVER_SIDE_EMIT, _, request_id) => Body::ServerSide { request_id, data },
        (kind, _, _) => {
            tracing::debug!(kind, "request not handled");
            return Ok(None);
        }
    };
    Ok(Some(Incoming { uid, body }))
}

/// A classic response, as JSON.
#[derive(Deserialize)]
struct ClassicResponse {
    #[serde(rename = "requestId")]
    request_id: String,
    #[serde(default, rename = "type")]
    kind: Option<u64>,
    #[serde(default, rename = "clientCount")]
    client_count: Option<usize>,
    #[serde(default)]
    sockets: Option<serde_json::Value>,
    #[serde(default)]
    rooms: Option<Vec<String>>,
    #[serde(default)]
    data: serde_json::Value,
}

fn decode_classic_response(bytes: &[u8]) -> Result<Option<Incoming>, WireError> {
    if bytes.first() != Some(&b'{') {
        return Ok(
            wire::decode_ack_answer(bytes)?.map(|(request_id, answer)| Incoming {
                uid: None,
                body: Body::AckAnswer { request_id, answer },
            }),
        );
    }
    let response: ClassicResponse = serde_json::from_slice(bytes)?;
    let request_id = response.request_id;
    let body = if response.kind == Some(wire::BROADCAST_CLIENT_COUNT) {
        let count = response
            .client_count
            .ok_or(WireError::Shape("a client count without clientCount"))?;
        Body::ClientCount { request_id, count }
    } else if response.kind == Some(classic::SERVER_SIDE_EMIT) {
        Body::ServerSideAnswer {
            request_id,
            data: response.data,
        }
    } else if let Some(rooms) = response.rooms {
        Body::Rooms { request_id, rooms }
    } else if let Some(sockets) = response.sockets {
        // Answers to `SOCKETS` (ids only) are not `fetchSockets` answers: Belfry never asks.
        match serde_json::from_value::<Vec<SocketInfo>>(sockets) {
            Ok(sockets) => Body::Sockets {
                request_id,
                sockets,
            },
            Err(_) => return Ok(None),
        }
    } else {
        return Ok(None);
    };
    Ok(Some(Incoming { uid: None, body }))
}

fn decode_cluster(message: ClusterMessage) -> Result<Option<Incoming>, WireError> {
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
        cluster::BROADCAST => {
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
        cluster::SOCKETS_JOIN => Body::Join {
            opts: opts()?,
            rooms: rooms()?,
        },
        cluster::SOCKETS_LEAVE => Body::Leave {
            opts: opts()?,
            rooms: rooms()?,
        },
        cluster::DISCONNECT_SOCKETS => Body::Disconnect {
            opts: opts()?,
            close: message
                .field("close")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        },
        cluster::FETCH_SOCKETS => Body::Fetch {
            request_id: text("requestId")?,
            opts: opts()?,
        },
        cluster::FETCH_SOCKETS_RESPONSE => {
            let sockets = message
                .field("sockets")
                .ok_or(WireError::Shape("a fetch response without sockets"))?;
            Body::Sockets {
                request_id: text("requestId")?,
                sockets: serde_json::from_value(value_to_json(sockets)?)?,
            }
        }
        cluster::SERVER_SIDE_EMIT => {
            let Some(serde_json::Value::Array(data)) =
                message.field("packet").map(value_to_json).transpose()?
            else {
                return Err(WireError::Shape("a server-side event without packet"));
            };
            Body::ServerSide {
                request_id: message
                    .field("requestId")
                    .map(|_| text("requestId"))
                    .transpose()?,
                data,
            }
        }
        cluster::SERVER_SIDE_EMIT_RESPONSE => Body::ServerSideAnswer {
            request_id: text("requestId")?,
            data: message
                .field("packet")
                .map(value_to_json)
                .transpose()?
                .unwrap_or(serde_json::Value::Null),
        },
        cluster::BROADCAST_CLIENT_COUNT => Body::ClientCount {
            request_id: text("requestId")?,
            count: message
                .field("clientCount")
                .and_then(Value::as_u64)
                .and_then(|n| usize::try_from(n).ok())
                .ok_or(WireError::Shape("a client count without clientCount"))?,
        },
        cluster::BROADCAST_ACK => Body::AckAnswer {
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
