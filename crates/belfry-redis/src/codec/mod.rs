//! What servers tell each other, apart from how: the adapter speaks in [`Body`], [`Outgoing`]
//! and [`Reply`]; a [`Codec`] puts them on the channels of the classic protocol
//! ([`classic`]) or the sharded one ([`sharded`]).

mod classic;
mod sharded;

use belfry_core::{
    adapter::{BroadcastOptions, SocketInfo},
    parser::{Packet, Payload},
    proto::value::Value,
};

use crate::{Protocol, WireError, driver::Kind};

use self::{classic::ClassicCodec, sharded::ShardedCodec};

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
        data: Vec<Value>,
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
        data: &'a [Value],
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
    Classic(ClassicCodec),
    Sharded(ShardedCodec),
}

impl Codec {
    pub(crate) fn new(protocol: Protocol, key: &str, uid: &str, nsp: &str) -> Codec {
        match protocol {
            Protocol::Classic => Codec::Classic(ClassicCodec::new(key, uid, nsp)),
            Protocol::Sharded(mode) => Codec::Sharded(ShardedCodec::new(key, uid, nsp, mode)),
        }
    }

    /// What the namespace subscribes to from the start.
    pub(crate) fn subscriptions(&self) -> Vec<(String, Kind)> {
        match self {
            Codec::Classic(codec) => codec.subscriptions(),
            Codec::Sharded(codec) => codec.subscriptions(),
        }
    }

    /// The channel of `room` when this protocol gives it one of its own (`is_socket`: the
    /// room is a socket's own).
    pub(crate) fn room_channel(&self, room: &str, is_socket: bool) -> Option<String> {
        match self {
            Codec::Classic(_) => None,
            Codec::Sharded(codec) => codec.room_channel(room, is_socket),
        }
    }

    /// True when rooms may get channels of their own (the sharded protocol's dynamic modes).
    pub(crate) fn has_room_channels(&self) -> bool {
        match self {
            Codec::Classic(_) => false,
            Codec::Sharded(codec) => codec.has_room_channels(),
        }
    }

    /// A fresh request id, of the form the protocol's Node adapter uses.
    pub(crate) fn new_request_id(&self) -> String {
        match self {
            Codec::Classic(_) => crate::random_id(6),
            Codec::Sharded(_) => crate::random_hex(8),
        }
    }

    /// The channel used to count the servers.
    pub(crate) fn count_channel(&self) -> &str {
        match self {
            Codec::Classic(codec) => codec.count_channel(),
            Codec::Sharded(codec) => codec.count_channel(),
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
            Codec::Classic(codec) => codec.decode(channel, bytes),
            Codec::Sharded(codec) => codec.decode(bytes),
        }
    }

    /// `message` as this protocol publishes it: `(channel, bytes)`.
    pub(crate) fn encode(&self, message: &Outgoing<'_>) -> Result<(String, Vec<u8>), EncodeError> {
        match self {
            Codec::Classic(codec) => codec.encode(message),
            Codec::Sharded(codec) => codec.encode(message),
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
            Codec::Classic(codec) => codec.encode_reply(request_id, reply),
            Codec::Sharded(codec) => codec.encode_reply(to, request_id, reply),
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
