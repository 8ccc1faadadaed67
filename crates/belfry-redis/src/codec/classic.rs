//! The classic protocol's side of the [`Codec`](super::Codec) (Node's `createAdapter`): broadcasts
//! in [`wire`]'s msgpack on the namespace's (or a room's) channel, requests and responses as JSON
//! on `<key>-request#<nsp>#` and `<key>-response#<nsp>#` (broadcasts with acks and their answers
//! in msgpack there too).

use belfry_core::{
    Str,
    adapter::{BroadcastOptions, SocketInfo},
    msgpack::{Value as Msgpack, arg_to_value, get, read, value_to_arg, write},
    proto::value::Value,
};
use serde::Deserialize;
use serde_json::json;

use crate::{
    WireError,
    driver::Kind,
    wire::{self, Channels},
};
use belfry_cluster::message::{Body, EncodeError, Incoming, Outgoing, Reply, SocketOp};

/// Node's request types of the classic protocol (`RequestType`).
mod request_type {
    pub(super) const SOCKETS: u64 = 0;
    pub(super) const ALL_ROOMS: u64 = 1;
    pub(super) const REMOTE_JOIN: u64 = 2;
    pub(super) const REMOTE_LEAVE: u64 = 3;
    pub(super) const REMOTE_DISCONNECT: u64 = 4;
    pub(super) const REMOTE_FETCH: u64 = 5;
    pub(super) const SERVER_SIDE_EMIT: u64 = 6;
}

/// One namespace's channels and messages in the classic protocol.
pub(crate) struct ClassicCodec {
    uid: String,
    nsp: Str,
    channels: Channels,
    /// `channels.response_to(uid)`: where Node servers may answer this one.
    my_responses: String,
}

impl ClassicCodec {
    pub(super) fn new(key: &str, uid: &str, nsp: &str) -> ClassicCodec {
        let channels = Channels::new(key, nsp);
        ClassicCodec {
            uid: uid.to_owned(),
            nsp: Str::from(nsp),
            my_responses: channels.response_to(uid),
            channels,
        }
    }

    /// The broadcast pattern, the request and response channels, and this server's own
    /// response channel.
    pub(super) fn subscriptions(&self) -> Vec<(String, Kind)> {
        vec![
            (self.channels.broadcast_pattern(), Kind::Pattern),
            (self.channels.request.clone(), Kind::Channel),
            (self.channels.response.clone(), Kind::Channel),
            // Node servers with `publishOnSpecificResponseChannel` answer there.
            (self.my_responses.clone(), Kind::Channel),
        ]
    }

    /// The request channel, which every server of the namespace subscribes.
    pub(super) fn count_channel(&self) -> &str {
        &self.channels.request
    }

    /// A message received on `channel`, by the channel it came on.
    pub(super) fn decode(
        &self,
        channel: &str,
        bytes: &[u8],
    ) -> Result<Option<Incoming>, WireError> {
        if self.channels.room_of(channel).is_some() {
            let broadcast = wire::decode_broadcast(bytes)?;
            return Ok(Some(Incoming::new(
                Some(broadcast.uid),
                Body::Broadcast {
                    packet: broadcast.packet,
                    opts: broadcast.opts,
                },
            )));
        }
        if channel == self.channels.request {
            return decode_request(bytes);
        }
        if channel == self.channels.response || channel == self.my_responses {
            return decode_response(bytes);
        }
        Ok(None)
    }

    /// `message` as a broadcast or a request: `(channel, bytes)`.
    pub(super) fn encode(&self, message: &Outgoing<'_>) -> Result<(String, Vec<u8>), EncodeError> {
        let request = |kind: u64, request_id: Option<&str>, fields: serde_json::Value| {
            let mut request = json!({ "uid": self.uid, "type": kind });
            if let Some(request_id) = request_id {
                request["requestId"] = json!(request_id);
            }
            if let (Some(request), serde_json::Value::Object(fields)) =
                (request.as_object_mut(), fields)
            {
                request.extend(fields);
            }
            (self.channels.request.clone(), json_bytes(request))
        };
        Ok(match message {
            Outgoing::Broadcast { packet, opts } => (
                self.channels.for_broadcast(opts),
                wire::encode_broadcast(&self.uid, packet, opts)?,
            ),
            Outgoing::BroadcastWithAck {
                request_id,
                payload,
                opts,
            } => (
                self.channels.request.clone(),
                wire::encode_ack_request(&self.uid, request_id, &self.nsp, payload, opts)?,
            ),
            Outgoing::Join { opts, rooms } => request(
                request_type::REMOTE_JOIN,
                None,
                json!({ "opts": options_json(opts), "rooms": rooms }),
            ),
            Outgoing::Leave { opts, rooms } => request(
                request_type::REMOTE_LEAVE,
                None,
                json!({ "opts": options_json(opts), "rooms": rooms }),
            ),
            Outgoing::Disconnect { opts, close } => request(
                request_type::REMOTE_DISCONNECT,
                None,
                json!({ "opts": options_json(opts), "close": close }),
            ),
            Outgoing::Fetch { request_id, opts } => request(
                request_type::REMOTE_FETCH,
                Some(request_id),
                json!({ "opts": options_json(opts) }),
            ),
            Outgoing::AllRooms { request_id } => {
                request(request_type::ALL_ROOMS, Some(request_id), json!({}))
            }
            Outgoing::ServerSide { request_id, data } if data.iter().any(Value::has_binary) => {
                // JSON has no binary: msgpack, which Node's adapter reads too.
                let mut request = vec![
                    (Msgpack::from("uid"), Msgpack::from(self.uid.as_str())),
                    (
                        Msgpack::from("type"),
                        Msgpack::from(request_type::SERVER_SIDE_EMIT),
                    ),
                ];
                if let Some(request_id) = request_id {
                    request.push((Msgpack::from("requestId"), Msgpack::from(*request_id)));
                }
                let data = Msgpack::Array(data.iter().map(arg_to_value).collect());
                request.push((Msgpack::from("data"), data));
                (
                    self.channels.request.clone(),
                    write(&Msgpack::Map(request))?,
                )
            }
            Outgoing::ServerSide { request_id, data } => request(
                request_type::SERVER_SIDE_EMIT,
                *request_id,
                json!({ "data": data }),
            ),
            // Heartbeats belong to transports that cannot count servers; Redis can.
            _ => return Err(EncodeError::Unsupported("classic")),
        })
    }

    /// `reply` to request `request_id`, on the response channel every server reads.
    pub(super) fn encode_reply(
        &self,
        request_id: &str,
        reply: &Reply<'_>,
    ) -> Result<(String, Vec<u8>), EncodeError> {
        let bytes = match reply {
            Reply::AckAnswer(answer) => wire::encode_ack_answer(request_id, answer)?,
            Reply::Done => json_bytes(json!({ "requestId": request_id })),
            Reply::ClientCount(count) => json_bytes(json!({
                "type": wire::BROADCAST_CLIENT_COUNT,
                "requestId": request_id,
                "clientCount": count,
            })),
            Reply::Sockets(sockets) if sockets.iter().any(|socket| socket.data.has_binary()) => {
                // JSON has no binary: msgpack, which Node's adapter reads too.
                write(&Msgpack::Map(vec![
                    (Msgpack::from("requestId"), Msgpack::from(request_id)),
                    (Msgpack::from("sockets"), wire::sockets_to_value(sockets)?),
                ]))?
            }
            Reply::Sockets(sockets) => {
                json_bytes(json!({ "requestId": request_id, "sockets": sockets }))
            }
            Reply::SocketIds(ids) => json_bytes(json!({ "requestId": request_id, "sockets": ids })),
            Reply::Rooms(rooms) => json_bytes(json!({ "requestId": request_id, "rooms": rooms })),
            Reply::ServerSide(data) => json_bytes(json!({
                "type": request_type::SERVER_SIDE_EMIT,
                "requestId": request_id,
                "data": data,
            })),
            _ => return Err(EncodeError::Unsupported("classic")),
        };
        Ok((self.channels.response.clone(), bytes))
    }
}

fn json_bytes(value: serde_json::Value) -> Vec<u8> {
    value.to_string().into_bytes()
}

fn options_json(opts: &BroadcastOptions) -> serde_json::Value {
    json!({ "rooms": opts.rooms, "except": opts.except })
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
    data: Vec<Value>,
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
        BroadcastOptions::new()
            .with_rooms(opts.rooms)
            .with_except(opts.except)
    }
}

fn decode_request(bytes: &[u8]) -> Result<Option<Incoming>, WireError> {
    if bytes.first() != Some(&b'{') {
        // Msgpack: a broadcast with acks, or a server-side event with binary.
        if let Some(request) = wire::decode_ack_request(bytes)? {
            return Ok(Some(Incoming::new(
                Some(request.uid),
                Body::BroadcastWithAck {
                    request_id: request.request_id,
                    payload: request.payload,
                    opts: request.opts,
                },
            )));
        }
        return decode_msgpack_request(&read(bytes)?);
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
        (request_type::REMOTE_JOIN, Some(opts), _) => Body::Join { opts, rooms },
        (request_type::REMOTE_LEAVE, Some(opts), _) => Body::Leave { opts, rooms },
        (request_type::REMOTE_DISCONNECT, Some(opts), _) => Body::Disconnect { opts, close },
        (
            request_type::REMOTE_JOIN
            | request_type::REMOTE_LEAVE
            | request_type::REMOTE_DISCONNECT,
            None,
            Some(request_id),
        ) => {
            let op = match (kind, room) {
                (request_type::REMOTE_JOIN, Some(room)) => SocketOp::Join(room),
                (request_type::REMOTE_LEAVE, Some(room)) => SocketOp::Leave(room),
                (request_type::REMOTE_DISCONNECT, _) => SocketOp::Disconnect(close),
                _ => return Err(WireError::Shape("a one-socket request without its room")),
            };
            let sid = sid.ok_or(WireError::Shape("a one-socket request without sid"))?;
            Body::OneSocket {
                request_id,
                op,
                sid,
            }
        }
        (request_type::SOCKETS, _, Some(request_id)) => Body::SocketIds { request_id, rooms },
        (request_type::ALL_ROOMS, _, Some(request_id)) => Body::AllRooms { request_id },
        (request_type::REMOTE_FETCH, Some(opts), Some(request_id)) => {
            Body::Fetch { request_id, opts }
        }
        (request_type::SERVER_SIDE_EMIT, _, request_id) => Body::ServerSide { request_id, data },
        (kind, _, _) => {
            tracing::debug!(kind, "request not handled");
            return Ok(None);
        }
    };
    Ok(Some(Incoming::new(uid, body)))
}

/// A msgpack request other than a broadcast with acks: a server-side event (the form JSON cannot
/// give binary arguments); others are ignored.
fn decode_msgpack_request(message: &Msgpack) -> Result<Option<Incoming>, WireError> {
    if get(message, "type").and_then(Msgpack::as_u64) != Some(request_type::SERVER_SIDE_EMIT) {
        return Ok(None);
    }
    let text = |key: &str| {
        get(message, key)
            .map(|value| {
                value
                    .as_str()
                    .map(str::to_owned)
                    .ok_or(WireError::Shape("a request field is not a string"))
            })
            .transpose()
    };
    let Some(Msgpack::Array(data)) = get(message, "data") else {
        return Err(WireError::Shape("a server-side event without data"));
    };
    Ok(Some(Incoming::new(
        text("uid")?,
        Body::ServerSide {
            request_id: text("requestId")?,
            data: data.iter().map(value_to_arg).collect::<Result<_, _>>()?,
        },
    )))
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

fn decode_response(bytes: &[u8]) -> Result<Option<Incoming>, WireError> {
    if bytes.first() != Some(&b'{') {
        if let Some((request_id, answer)) = wire::decode_ack_answer(bytes)? {
            return Ok(Some(Incoming::new(
                None,
                Body::AckAnswer { request_id, answer },
            )));
        }
        // A `fetchSockets` answer with binary data.
        let message = read(bytes)?;
        let (Some(request_id), Some(sockets)) = (
            get(&message, "requestId").and_then(Msgpack::as_str),
            get(&message, "sockets"),
        ) else {
            return Ok(None);
        };
        return Ok(Some(Incoming::new(
            None,
            Body::Sockets {
                request_id: request_id.to_owned(),
                sockets: wire::sockets_from_value(sockets)?,
            },
        )));
    }
    let response: ClassicResponse = serde_json::from_slice(bytes)?;
    let request_id = response.request_id;
    let body = if response.kind == Some(wire::BROADCAST_CLIENT_COUNT) {
        let count = response
            .client_count
            .ok_or(WireError::Shape("a client count without clientCount"))?;
        Body::ClientCount { request_id, count }
    } else if response.kind == Some(request_type::SERVER_SIDE_EMIT) {
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
    Ok(Some(Incoming::new(None, body)))
}
