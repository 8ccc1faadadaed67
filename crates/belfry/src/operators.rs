//! The broadcast operator: `to`, `except`, `volatile`, then `emit` to every matching socket.

use std::{
    fmt,
    future::{Future, IntoFuture},
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

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
    rooms: Vec<String>,
    except: Vec<String>,
    volatile: bool,
    timeout: Option<Duration>,
}

impl fmt::Debug for BroadcastOperator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BroadcastOperator")
            .field("ns", &self.ns.name())
            .field("rooms", &self.rooms)
            .field("except", &self.except)
            .field("volatile", &self.volatile)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl BroadcastOperator {
    pub(crate) fn new(ns: Arc<Namespace>) -> Self {
        BroadcastOperator {
            ns,
            rooms: Vec::new(),
            except: Vec::new(),
            volatile: false,
            timeout: None,
        }
    }

    /// Adds `room` to the targets (Node's `to`).
    pub fn to(mut self, room: impl Into<String>) -> Self {
        self.rooms.push(room.into());
        self
    }

    /// Same as [`BroadcastOperator::to`] (Node's `in`).
    pub fn within(self, room: impl Into<String>) -> Self {
        self.to(room)
    }

    /// Leaves out the sockets of `room`.
    pub fn except(mut self, room: impl Into<String>) -> Self {
        self.except.push(room.into());
        self
    }

    /// Drops the event, silently, for a client whose send queue is full.
    pub fn volatile(mut self) -> Self {
        self.volatile = true;
        self
    }

    /// How long [`BroadcastOperator::emit_with_ack`] waits for the clients' answers (default:
    /// the server's ack timeout).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
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
        let timeout = self.timeout.unwrap_or_else(|| self.ns.ack_timeout());
        let answers = FuturesUnordered::new();
        for socket in self.ns.targets(&self.rooms, &self.except) {
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

    /// The matching sockets (Node's `fetchSockets`): their ids, handshakes, rooms and
    /// extensions. Local to this server until a cluster adapter is plugged in.
    pub async fn fetch_sockets(&self) -> Vec<SocketRef> {
        self.sockets()
    }

    /// The matching sockets on this server.
    pub fn sockets(&self) -> Vec<SocketRef> {
        self.ns
            .targets(&self.rooms, &self.except)
            .into_iter()
            .map(SocketRef)
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
        // Encoded once: every recipient's queue holds the same frames.
        let packet = Packet::event(self.ns.name_str(), payload, None);
        let frames = frames(&packet);
        let mut delivered = 0;
        for socket in self.ns.targets(&self.rooms, &self.except) {
            socket.notify_outgoing(&packet);
            match send_frames(socket.conn(), &frames) {
                Ok(()) => delivered += 1,
                Err(EmitError::Full) if !self.volatile => {
                    tracing::debug!(id = %socket.id(), "broadcast skipped a full socket");
                }
                Err(_) => {}
            }
        }
        Ok(delivered)
    }

    /// Makes every matching socket join `room`.
    pub fn sockets_join(&self, room: impl Into<String>) {
        let room = room.into();
        for socket in self.sockets() {
            socket.join(room.clone());
        }
    }

    /// Makes every matching socket leave `room`.
    pub fn sockets_leave(&self, room: &str) {
        for socket in self.sockets() {
            socket.leave(room);
        }
    }

    /// Disconnects every matching socket from the namespace (or, with `close`, closes their
    /// connections).
    pub fn disconnect_sockets(&self, close: bool) {
        for socket in self.sockets() {
            if close {
                socket.disconnect_all();
            } else {
                socket.disconnect();
            }
        }
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
