//! The broadcast operator: `to`, `except`, `volatile`, then `emit` to every matching socket.

use std::{
    fmt,
    future::{Future, IntoFuture},
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use belfry_core::adapter::{AdapterError, BroadcastOptions, SocketInfo};
use belfry_engine::Sid;
use futures_util::{Stream, StreamExt, stream::FuturesUnordered};
use serde::de::DeserializeOwned;

use belfry_core::parser::Packet;
use bytes::Bytes;
use serde::Serialize;

use crate::{
    AckError, EmitError, SocketRef,
    ns::Namespace,
    socket::{event_payload, frames, send_frames},
};

/// Selects sockets of a namespace and sends to all of them at once.
///
/// Made by [`SocketIo::to`](crate::SocketIo::to), [`Socket::to`](crate::Socket::to),
/// [`Socket::broadcast`](crate::Socket::broadcast)... Rooms add up (a socket in several of them
/// gets the event once); `except` rooms are taken out. The packet is encoded once for every
/// recipient.
///
/// # Examples
///
/// ```
/// use belfry::{SocketIo, SocketRef};
///
/// let (_layer, io) = SocketIo::new_layer();
/// io.ns("/", |socket: SocketRef| async move {
///     socket.join("lobby");
///     // Everyone in the lobby but this socket, and nobody in "muted":
///     let _ = socket.to("lobby").except("muted").emit("joined", socket.id().as_str());
/// });
/// ```
#[derive(Clone)]
#[must_use = "a broadcast operator does nothing until `emit`"]
pub struct BroadcastOperator {
    ns: Arc<Namespace>,
    opts: BroadcastOptions,
}

impl fmt::Debug for BroadcastOperator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BroadcastOperator")
            .field("ns", &self.ns.name())
            .field("opts", &self.opts)
            .finish()
    }
}

impl BroadcastOperator {
    pub(crate) fn new(ns: Arc<Namespace>) -> Self {
        BroadcastOperator {
            ns,
            opts: BroadcastOptions::default(),
        }
    }

    /// Adds `room` to the targets (Node's `to`).
    pub fn to(mut self, room: impl Into<String>) -> Self {
        self.opts.rooms.push(room.into());
        self
    }

    /// Same as [`BroadcastOperator::to`] (Node's `in`).
    pub fn within(self, room: impl Into<String>) -> Self {
        self.to(room)
    }

    /// Leaves out the sockets of `room`.
    pub fn except(mut self, room: impl Into<String>) -> Self {
        self.opts.except.push(room.into());
        self
    }

    /// Drops the event, silently, for a client that cannot take it right now (Node's
    /// `volatile`): one with packets still queued, or a long-polling client with no request
    /// pending. For events that may be lost, such as "is typing".
    pub fn volatile(mut self) -> Self {
        self.opts.flags.volatile = true;
        self
    }

    /// Delivers on this server only, even with a cluster adapter (Node's `local`).
    pub fn local(mut self) -> Self {
        self.opts.flags.local = true;
        self
    }

    /// The compression hint (Node's `compress`); kept in the options, not applied yet.
    pub fn compress(mut self, compress: bool) -> Self {
        self.opts.flags.compress = Some(compress);
        self
    }

    /// How long [`BroadcastOperator::emit_with_ack`] waits for the clients' answers (default:
    /// the server's ack timeout).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.opts.flags.timeout = Some(timeout);
        self
    }

    /// Sends `event` to every matching socket, asking each for an acknowledgement (Node's
    /// `io.timeout(ms).emit(ev, data, cb)`). The packet is encoded once, with one ack id.
    ///
    /// The returned [`AckStream`] yields each socket's answer as it arrives (or its timeout);
    /// awaiting it collects them all.
    ///
    /// # Errors
    ///
    /// A reserved event name, or data that does not serialize.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use belfry::{SocketIo, SocketRef};
    ///
    /// let (_layer, io) = SocketIo::new_layer();
    /// io.ns("/", |socket: SocketRef| async move {
    ///     socket.on("poll", |socket: SocketRef| async move {
    ///         let Ok(answers) = socket.io().to("voters").timeout(Duration::from_secs(2))
    ///             .emit_with_ack::<bool, _>("vote?", &()) else { return };
    ///         let yes = answers.await.into_iter().filter(|(_, vote)| matches!(vote, Ok(true))).count();
    ///         let _ = socket.emit("result", &yes);
    ///     });
    /// });
    /// ```
    pub fn emit_with_ack<R, T>(&self, event: &str, data: &T) -> Result<AckStream<R>, EmitError>
    where
        R: DeserializeOwned + Send + 'static,
        T: Serialize + ?Sized,
    {
        let payload = event_payload(event, data, Vec::new())?;
        let id = self.ns.next_ack_id();
        let frames = frames(&Packet::event(self.ns.name_str(), payload, Some(id)));
        let timeout = self
            .opts
            .flags
            .timeout
            .unwrap_or_else(|| self.ns.ack_timeout());
        let answers = FuturesUnordered::new();
        for socket in self.local_sockets() {
            let rx = socket.expect_ack(id);
            if send_frames(socket.conn(), &frames).is_err() {
                continue;
            }
            answers.push(Box::pin(async move {
                let answer = socket.wait_ack::<R>(id, rx, timeout).await;
                (socket.id().clone(), answer)
            }) as AckFuture<R>);
        }
        Ok(AckStream { answers })
    }

    /// The matching sockets of this server (Node's `fetchSockets` on one server): their ids,
    /// handshakes, rooms and extensions. The sockets of other servers come from
    /// [`BroadcastOperator::fetch_remote_sockets`].
    pub async fn fetch_sockets(&self) -> Vec<SocketRef> {
        self.sockets()
    }

    /// The matching sockets of the other servers, as the adapter describes them.
    ///
    /// # Errors
    ///
    /// When a server does not answer in time.
    pub async fn fetch_remote_sockets(&self) -> Result<Vec<SocketInfo>, AdapterError> {
        self.ns.adapter().fetch_remote_sockets(&self.opts).await
    }

    /// The matching sockets on this server.
    pub fn sockets(&self) -> Vec<SocketRef> {
        self.local_sockets().into_iter().map(SocketRef).collect()
    }

    fn local_sockets(&self) -> Vec<Arc<crate::socket::Socket>> {
        self.ns
            .adapter()
            .sockets(&self.opts)
            .iter()
            .filter_map(|id| self.ns.socket(id))
            .collect()
    }

    /// Sends `event` to every matching socket; returns how many got it. A socket whose queue is
    /// full is skipped (and counted out).
    ///
    /// # Errors
    ///
    /// A reserved event name, or data that does not serialize.
    pub fn emit<T: Serialize + ?Sized>(&self, event: &str, data: &T) -> Result<usize, EmitError> {
        self.emit_binary(event, data, Vec::new())
    }

    /// [`BroadcastOperator::emit`] with binary attachments appended as the last arguments.
    ///
    /// # Errors
    ///
    /// As [`BroadcastOperator::emit`].
    pub fn emit_binary<T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
        attachments: Vec<Bytes>,
    ) -> Result<usize, EmitError> {
        let payload = event_payload(event, data, attachments)?;
        let packet = Packet::event(self.ns.name_str(), payload, None);
        // The adapter encodes once for every local recipient, and hands the packet to other
        // servers; a failure to reach them leaves local delivery done.
        match self.ns.adapter().broadcast(&packet, &self.opts) {
            Ok(delivered) => Ok(delivered),
            Err(error) => {
                tracing::warn!(%error, "broadcast not handed to other servers");
                Ok(0)
            }
        }
    }

    /// Makes every matching socket, on every server, join `room` (Node's `socketsJoin`).
    ///
    /// # Errors
    ///
    /// When the adapter cannot reach other servers.
    pub async fn sockets_join(&self, room: impl Into<String>) -> Result<(), AdapterError> {
        self.ns
            .adapter()
            .add_sockets(&self.opts, &[room.into()])
            .await
    }

    /// Makes every matching socket, on every server, leave `room` (Node's `socketsLeave`).
    ///
    /// # Errors
    ///
    /// When the adapter cannot reach other servers.
    pub async fn sockets_leave(&self, room: impl Into<String>) -> Result<(), AdapterError> {
        self.ns
            .adapter()
            .del_sockets(&self.opts, &[room.into()])
            .await
    }

    /// Disconnects every matching socket, on every server, from the namespace (or, with
    /// `close`, closes their connections) (Node's `disconnectSockets`).
    ///
    /// # Errors
    ///
    /// When the adapter cannot reach other servers.
    pub async fn disconnect_sockets(&self, close: bool) -> Result<(), AdapterError> {
        self.ns
            .adapter()
            .disconnect_sockets(&self.opts, close)
            .await
    }
}

type AckFuture<R> = Pin<Box<dyn Future<Output = (Sid, Result<R, AckError>)> + Send>>;

/// The answers to a broadcast with acks: a [`Stream`] of `(socket id, answer)` as they arrive;
/// `.await` it to collect them all. Every socket yields exactly once: its answer, or
/// [`AckError::Timeout`], or [`AckError::Disconnected`].
#[must_use = "the answers are lost unless the stream is read"]
pub struct AckStream<R> {
    answers: FuturesUnordered<AckFuture<R>>,
}

impl<R> fmt::Debug for AckStream<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AckStream")
            .field("pending", &self.answers.len())
            .finish()
    }
}

impl<R> Stream for AckStream<R> {
    type Item = (Sid, Result<R, AckError>);

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.answers.poll_next_unpin(cx)
    }
}

impl<R: Send + 'static> IntoFuture for AckStream<R> {
    type Output = Vec<(Sid, Result<R, AckError>)>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.collect())
    }
}
