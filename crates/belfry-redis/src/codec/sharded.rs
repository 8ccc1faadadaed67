//! The sharded protocol's side of the [`Codec`](super::Codec) (Node's `createShardedAdapter`):
//! every message a [`ClusterMessage`] on the namespace's channel, a room's channel (broadcasts
//! in the dynamic subscription modes) or the requester's response channel.

use belfry_cluster::{
    ClusterMessage,
    message::{EncodeError, Incoming, Outgoing, Reply},
};
use belfry_core::Str;

use crate::{
    WireError,
    driver::Kind,
    sharded::{ShardedChannels, SubscriptionMode},
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
        ClusterMessage::decode_for(&self.nsp, bytes)
    }

    /// `message` on its channel: a room's for a broadcast to one room that has one, the
    /// namespace's otherwise.
    pub(super) fn encode(&self, message: &Outgoing<'_>) -> Result<(String, Vec<u8>), EncodeError> {
        let encoded = ClusterMessage::from_outgoing(&self.uid, &self.nsp, message)?;
        let channel = match message {
            Outgoing::Broadcast { opts, .. } => self.channels.for_broadcast(self.mode, &opts.rooms),
            _ => self.channels.namespace.clone(),
        };
        Ok((channel, encoded.encode()?))
    }

    /// `reply` to request `request_id` of server `to`, on its response channel; the sharded
    /// protocol has no anonymous answers nor the classic protocol's legacy forms.
    pub(super) fn encode_reply(
        &self,
        to: Option<&str>,
        request_id: &str,
        reply: &Reply<'_>,
    ) -> Result<(String, Vec<u8>), EncodeError> {
        let to = to.ok_or(EncodeError::Unsupported("sharded"))?;
        let encoded = ClusterMessage::from_reply(&self.uid, &self.nsp, request_id, reply)?;
        Ok((self.channels.responses_of(to), encoded.encode()?))
    }
}
