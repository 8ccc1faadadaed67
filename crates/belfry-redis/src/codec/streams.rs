//! The streams protocol's pub/sub side of the [`Codec`](super::Codec) (Node's
//! `@socket.io/redis-streams-adapter` 0.3): requests as the msgpack of the whole message on
//! `<prefix>#<nsp>#`, answers on the requester's `<prefix>#<nsp>#<uid>#`. What goes through
//! the stream is the transport's (`crate::streams`).

use belfry_cluster::{
    ClusterMessage,
    message::{EncodeError, Incoming, Outgoing, Reply},
};
use belfry_core::Str;

use crate::{WireError, driver::Kind};

/// One namespace's channels and messages in the streams protocol.
pub(crate) struct StreamsCodec {
    uid: String,
    nsp: Str,
    /// `<prefix>#<nsp>#`.
    channel: String,
}

impl StreamsCodec {
    pub(super) fn new(prefix: &str, uid: &str, nsp: &str) -> StreamsCodec {
        StreamsCodec {
            uid: uid.to_owned(),
            nsp: Str::from(nsp),
            channel: format!("{prefix}#{nsp}#"),
        }
    }

    fn responses_of(&self, uid: &str) -> String {
        format!("{}{uid}#", self.channel)
    }

    /// The namespace's channel and this server's response channel.
    pub(super) fn subscriptions(&self) -> Vec<(String, Kind)> {
        vec![
            (self.channel.clone(), Kind::Channel),
            (self.responses_of(&self.uid), Kind::Channel),
        ]
    }

    /// The namespace's channel, which every server of the namespace subscribes.
    pub(super) fn count_channel(&self) -> &str {
        &self.channel
    }

    /// A request or answer (always msgpack); another namespace's is ignored.
    pub(super) fn decode(&self, bytes: &[u8]) -> Result<Option<Incoming>, WireError> {
        ClusterMessage::decode_for(&self.nsp, bytes)
    }

    /// A request, on the namespace's channel.
    pub(super) fn encode(&self, message: &Outgoing<'_>) -> Result<(String, Vec<u8>), EncodeError> {
        let encoded = ClusterMessage::from_outgoing(&self.uid, &self.nsp, message)?;
        Ok((self.channel.clone(), encoded.to_msgpack()?))
    }

    /// `reply` to request `request_id` of server `to`, on its response channel.
    pub(super) fn encode_reply(
        &self,
        to: Option<&str>,
        request_id: &str,
        reply: &Reply<'_>,
    ) -> Result<(String, Vec<u8>), EncodeError> {
        let to = to.ok_or(EncodeError::Unsupported("streams"))?;
        let encoded = ClusterMessage::from_reply(&self.uid, &self.nsp, request_id, reply)?;
        Ok((self.responses_of(to), encoded.to_msgpack()?))
    }
}
