//! The Redis [`Transport`] of one namespace: the cluster core's messages put on Redis
//! channels by the namespace's [`Codec`] and published through the server's [`Driver`];
//! what arrives on the namespace's channels decoded and handed to the core.

use std::sync::{Arc, Weak};

use belfry_cluster::{
    Receiver, Transport,
    message::{EncodeError, Outgoing, Reply},
};
use belfry_core::adapter::{AdapterError, BoxFuture};

use crate::{
    codec::Codec,
    driver::{Driver, Kind, Route},
};

pub(crate) struct RedisTransport {
    me: Weak<RedisTransport>,
    driver: Arc<Driver>,
    codec: Codec,
    receiver: Receiver,
}

impl RedisTransport {
    /// The transport of namespace `nsp`, subscribed to the namespace's channels.
    pub(crate) fn new(driver: Arc<Driver>, nsp: &str, receiver: Receiver) -> Arc<RedisTransport> {
        let codec = Codec::new(driver.protocol, &driver.key, &driver.uid, nsp);
        let transport = Arc::new_cyclic(|me| RedisTransport {
            me: me.clone(),
            driver,
            codec,
            receiver,
        });
        for (channel, kind) in transport.codec.subscriptions() {
            transport.subscribe(channel, kind);
        }
        transport
    }

    fn subscribe(&self, channel: String, kind: Kind) {
        let route = Route {
            kind,
            transport: self.me.clone(),
        };
        self.driver.subscribe(channel, route);
    }

    fn publish(&self, encoded: Result<(String, Vec<u8>), EncodeError>) -> Result<(), AdapterError> {
        match encoded {
            Ok((channel, bytes)) => self
                .driver
                .publish(channel, bytes)
                .map_err(|_| AdapterError::Transport("the redis publish queue is full".into())),
            Err(EncodeError::Unsupported(protocol)) => {
                Err(AdapterError::Unsupported(if protocol == "sharded" {
                    "this request in the sharded protocol"
                } else {
                    "this request in the classic protocol"
                }))
            }
            Err(error) => Err(AdapterError::Transport(Box::new(error))),
        }
    }

    /// A message on one of the namespace's channels.
    pub(crate) fn on_message(&self, channel: &str, payload: &[u8]) {
        match self.codec.decode(channel, payload) {
            Ok(Some(incoming)) => {
                self.receiver.receive(incoming);
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(%channel, %error, "invalid message dropped"),
        }
    }
}

impl Transport for RedisTransport {
    fn send(&self, message: &Outgoing<'_>) -> Result<(), AdapterError> {
        self.publish(self.codec.encode(message))
    }

    fn reply(
        &self,
        to: Option<&str>,
        request_id: &str,
        reply: &Reply<'_>,
    ) -> Result<(), AdapterError> {
        self.publish(self.codec.encode_reply(to, request_id, reply))
    }

    fn count_servers(&self) -> Option<BoxFuture<'static, Result<usize, AdapterError>>> {
        let driver = self.driver.clone();
        let channel = self.codec.count_channel().to_owned();
        Some(Box::pin(async move {
            driver
                .subscribers(&channel)
                .await
                .map_err(|error| AdapterError::Transport(Box::new(error)))
        }))
    }

    fn ready(&self) -> BoxFuture<'static, ()> {
        let driver = self.driver.clone();
        Box::pin(async move { driver.ready().await })
    }

    fn new_request_id(&self) -> String {
        self.codec.new_request_id()
    }

    fn wants_room_events(&self) -> bool {
        self.codec.has_room_channels()
    }

    /// The sharded protocol's dynamic modes: a room gets its channel while it exists here.
    fn room_created(&self, room: &str, is_socket: bool) {
        if let Some(channel) = self.codec.room_channel(room, is_socket) {
            self.subscribe(channel, Kind::Shard);
        }
    }

    fn room_deleted(&self, room: &str) {
        // A socket's own room is deleted after the socket: whether it was one is no longer
        // known, and unsubscribing a channel never subscribed does nothing.
        if let Some(channel) = self.codec.room_channel(room, false) {
            self.driver.unsubscribe(&[channel]);
        }
    }

    fn close(&self, rooms: &[(String, bool)]) {
        let mut channels: Vec<String> = self
            .codec
            .subscriptions()
            .into_iter()
            .map(|(channel, _)| channel)
            .collect();
        channels.extend(
            rooms
                .iter()
                .filter_map(|(room, is_socket)| self.codec.room_channel(room, *is_socket)),
        );
        self.driver.unsubscribe(&channels);
    }
}
