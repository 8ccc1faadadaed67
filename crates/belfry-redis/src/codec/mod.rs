//! How the messages of the cluster core (`belfry_cluster::message`) travel over Redis: a
//! [`Codec`] puts them on the channels of the classic protocol ([`classic`]) or the sharded
//! one ([`sharded`]).

mod classic;
mod sharded;
mod streams;

use belfry_cluster::message::{EncodeError, Incoming, Outgoing, Reply};

use crate::{Protocol, WireError, driver::Kind};

use self::{classic::ClassicCodec, sharded::ShardedCodec, streams::StreamsCodec};

/// One namespace's channels and message forms in one protocol.
pub(crate) enum Codec {
    Classic(ClassicCodec),
    Sharded(ShardedCodec),
    Streams(StreamsCodec),
}

impl Codec {
    pub(crate) fn new(protocol: Protocol, key: &str, uid: &str, nsp: &str) -> Codec {
        match protocol {
            Protocol::Classic => Codec::Classic(ClassicCodec::new(key, uid, nsp)),
            Protocol::Sharded(mode) => Codec::Sharded(ShardedCodec::new(key, uid, nsp, mode)),
            Protocol::Streams => Codec::Streams(StreamsCodec::new(key, uid, nsp)),
        }
    }

    /// What the namespace subscribes to from the start.
    pub(crate) fn subscriptions(&self) -> Vec<(String, Kind)> {
        match self {
            Codec::Classic(codec) => codec.subscriptions(),
            Codec::Sharded(codec) => codec.subscriptions(),
            Codec::Streams(codec) => codec.subscriptions(),
        }
    }

    /// The channel of `room` when this protocol gives it one of its own (`is_socket`: the
    /// room is a socket's own).
    pub(crate) fn room_channel(&self, room: &str, is_socket: bool) -> Option<String> {
        match self {
            Codec::Classic(_) | Codec::Streams(_) => None,
            Codec::Sharded(codec) => codec.room_channel(room, is_socket),
        }
    }

    /// True when rooms may get channels of their own (the sharded protocol's dynamic modes).
    pub(crate) fn has_room_channels(&self) -> bool {
        match self {
            Codec::Classic(_) | Codec::Streams(_) => false,
            Codec::Sharded(codec) => codec.has_room_channels(),
        }
    }

    /// A fresh request id, of the form the protocol's Node adapter uses.
    pub(crate) fn new_request_id(&self) -> String {
        match self {
            Codec::Classic(_) => crate::random_id(6),
            Codec::Sharded(_) | Codec::Streams(_) => belfry_cluster::random_hex(8),
        }
    }

    /// The channel used to count the servers.
    pub(crate) fn count_channel(&self) -> &str {
        match self {
            Codec::Classic(codec) => codec.count_channel(),
            Codec::Sharded(codec) => codec.count_channel(),
            Codec::Streams(codec) => codec.count_channel(),
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
            Codec::Streams(codec) => codec.decode(bytes),
        }
    }

    /// `message` as this protocol publishes it: `(channel, bytes)`.
    pub(crate) fn encode(&self, message: &Outgoing<'_>) -> Result<(String, Vec<u8>), EncodeError> {
        match self {
            Codec::Classic(codec) => codec.encode(message),
            Codec::Sharded(codec) => codec.encode(message),
            Codec::Streams(codec) => codec.encode(message),
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
            Codec::Streams(codec) => codec.encode_reply(to, request_id, reply),
        }
    }
}
