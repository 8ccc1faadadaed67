//! The Redis [`Transport`] of one namespace: the cluster core's messages put on Redis
//! channels by the namespace's [`Codec`] and published through the server's [`Driver`];
//! what arrives on the namespace's channels decoded and handed to the core.

use std::{
    sync::{Arc, Weak},
    time::Duration,
};

use belfry_cluster::{
    ClusterMessage, Receiver, Transport,
    message::{EncodeError, Outgoing, Reply},
};
use belfry_core::adapter::{AdapterError, BoxFuture, RestoredSession, Session};
use redis::streams::StreamRangeReply;
use tokio::sync::oneshot;

use crate::{
    Protocol,
    codec::Codec,
    driver::{Command, Driver, Kind, Route},
    streams,
};

/// The most pages of missed entries one recovery reads (Node's adapter: 100 calls).
const RESTORE_PAGES: usize = 100;
/// The entries of one page.
const RESTORE_PAGE: usize = 1000;

pub(crate) struct RedisTransport {
    me: Weak<RedisTransport>,
    driver: Arc<Driver>,
    codec: Codec,
    receiver: Receiver,
    nsp: String,
    /// The streams protocol: the namespace's stream.
    stream: Option<String>,
    /// How long a session is kept, when the server has connection state recovery on.
    recovery: Option<Duration>,
}

impl RedisTransport {
    /// The transport of namespace `nsp`, subscribed to the namespace's channels (and reading
    /// its stream, in the streams protocol). `recovery`: how long the server keeps sessions,
    /// when it has connection state recovery on.
    pub(crate) fn new(
        driver: Arc<Driver>,
        nsp: &str,
        recovery: Option<Duration>,
        receiver: Receiver,
    ) -> Arc<RedisTransport> {
        let codec = Codec::new(driver.protocol, &driver.key, &driver.uid, nsp);
        let stream = (driver.protocol == Protocol::Streams).then(|| driver.streams.stream_of(nsp));
        let transport = Arc::new_cyclic(|me| RedisTransport {
            me: me.clone(),
            driver,
            codec,
            receiver,
            nsp: nsp.to_owned(),
            stream,
            recovery,
        });
        for (channel, kind) in transport.codec.subscriptions() {
            transport.subscribe(channel, kind);
        }
        if let Some(stream) = &transport.stream {
            transport
                .driver
                .read_stream(stream, nsp, transport.me.clone());
        }
        transport
    }

    /// An entry of the namespace's stream, kept at `id`.
    pub(crate) fn on_entry(&self, message: ClusterMessage, id: &str) {
        self.receiver.receive_message_at(message, id);
    }

    /// Appends `message` to the namespace's stream; its entry id goes to `reply`.
    fn append(
        &self,
        stream: &str,
        message: &Outgoing<'_>,
        reply: Option<oneshot::Sender<Result<String, String>>>,
    ) -> Result<(), AdapterError> {
        let encoded = ClusterMessage::from_outgoing(&self.driver.uid, &self.nsp, message)
            .map_err(|error| AdapterError::Transport(Box::new(error)))?;
        let fields = streams::entry_fields(&encoded)
            .map_err(|error| AdapterError::Transport(Box::new(error)))?;
        self.driver.queue(Command::Append {
            stream: stream.to_owned(),
            max_len: self.driver.streams.max_len,
            fields,
            reply,
        })
    }

    fn subscribe(&self, channel: String, kind: Kind) {
        let route = Route {
            kind,
            transport: self.me.clone(),
        };
        self.driver.subscribe(channel, route);
    }

    fn publish(&self, encoded: Result<(String, Vec<u8>), EncodeError>) -> Result<(), AdapterError> {
        let (channel, bytes) = encoded.map_err(|error| {
            error.into_adapter_error(match self.driver.protocol {
                Protocol::Classic => "this request in the classic protocol",
                Protocol::Sharded(_) => "this request in the sharded protocol",
                Protocol::Streams => "this request in the streams protocol",
            })
        })?;
        self.driver.publish(channel, bytes)
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
        match &self.stream {
            Some(stream) if message.is_durable() => self.append(stream, message, None),
            _ => self.publish(self.codec.encode(message)),
        }
    }

    fn gives_offsets(&self) -> bool {
        self.stream.is_some()
    }

    fn send_durable(
        &self,
        message: &Outgoing<'_>,
    ) -> Result<BoxFuture<'static, Result<String, AdapterError>>, AdapterError> {
        let Some(stream) = &self.stream else {
            return Err(AdapterError::Unsupported("offsets"));
        };
        let (tx, rx) = oneshot::channel();
        self.append(stream, message, Some(tx))?;
        Ok(Box::pin(async move {
            match rx.await {
                Ok(Ok(id)) => Ok(id),
                Ok(Err(why)) => Err(AdapterError::Transport(why.into())),
                Err(_) => Err(AdapterError::Closed),
            }
        }))
    }

    fn persist_session(&self, session: Session) {
        let (Some(_), Some(keep)) = (&self.stream, self.recovery) else {
            return;
        };
        let value = match streams::encode_session(&session) {
            Ok(value) => value,
            Err(error) => {
                tracing::warn!(%error, "session not stored");
                return;
            }
        };
        let key = format!("{}{}", self.driver.streams.session_key_prefix, session.pid);
        let millis = u64::try_from(keep.as_millis()).unwrap_or(u64::MAX);
        if self
            .driver
            .queue(Command::Store { key, value, millis })
            .is_err()
        {
            tracing::warn!("session not stored: the redis publish queue is full");
        }
    }

    fn restore_session(
        &self,
        pid: &str,
        offset: &str,
    ) -> BoxFuture<'static, Result<Option<RestoredSession>, AdapterError>> {
        let Some(stream) = self.stream.clone() else {
            return Box::pin(async { Ok(None) });
        };
        if !streams::is_entry_id(offset) {
            return Box::pin(async { Ok(None) });
        }
        let driver = self.driver.clone();
        let key = format!("{}{pid}", driver.streams.session_key_prefix);
        let (offset, nsp) = (offset.to_owned(), self.nsp.clone());
        Box::pin(async move {
            // A session this server stored waits in the queue no longer.
            let (done, stored) = oneshot::channel();
            if driver.queue(Command::Barrier(done)).is_ok() {
                let _ = tokio::time::timeout(driver.requests_timeout, stored).await;
            }
            restore(&driver, &stream, &key, &offset, &nsp)
                .await
                .map_err(|error| AdapterError::Transport(Box::new(error)))
        })
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
            self.driver.unsubscribe(&[channel], &self.me);
        }
    }

    fn close(&self, rooms: &[(String, bool)]) {
        if let Some(stream) = &self.stream {
            self.driver.stop_reading(stream, &self.nsp, &self.me);
        }
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
        self.driver.unsubscribe(&channels, &self.me);
    }
}

/// The session `key` (taken: it can be restored once) with the broadcasts to its rooms kept in
/// `stream` after `offset`; `None` when the session or the offset is no longer there.
async fn restore(
    driver: &Driver,
    stream: &str,
    key: &str,
    offset: &str,
    nsp: &str,
) -> redis::RedisResult<Option<RestoredSession>> {
    let mut conn = driver.connection().await?;
    let (stored,): (Option<String>,) = redis::pipe()
        .atomic()
        .get(key)
        .del(key)
        .ignore()
        .query_async(&mut conn)
        .await?;
    let at: StreamRangeReply = redis::cmd("XRANGE")
        .arg(stream)
        .arg(offset)
        .arg(offset)
        .query_async(&mut conn)
        .await?;
    let (Some(stored), false) = (stored, at.ids.is_empty()) else {
        return Ok(None);
    };
    let session = match streams::decode_session(&stored) {
        Ok(session) => session,
        Err(error) => {
            tracing::warn!(%error, "stored session unreadable");
            return Ok(None);
        }
    };
    let mut missed = Vec::new();
    let mut after = offset.to_owned();
    for _ in 0..RESTORE_PAGES {
        let Some(start) = streams::next_id(&after) else {
            return Ok(Some(streams::restored(session, missed)));
        };
        let page: StreamRangeReply = redis::cmd("XRANGE")
            .arg(stream)
            .arg(&start)
            .arg("+")
            .arg("COUNT")
            .arg(RESTORE_PAGE)
            .query_async(&mut conn)
            .await?;
        let Some(last) = page.ids.last() else {
            return Ok(Some(streams::restored(session, missed)));
        };
        after.clone_from(&last.id);
        let full = page.ids.len() == RESTORE_PAGE;
        missed.extend(
            page.ids
                .iter()
                .filter_map(|entry| streams::missed_payload(entry, nsp, &session)),
        );
        if !full {
            return Ok(Some(streams::restored(session, missed)));
        }
    }
    // More missed than a restore reads: a fresh socket rather than a replay with a gap.
    tracing::warn!(pid = %session.pid, "too many missed events to replay: not recovered");
    Ok(None)
}
