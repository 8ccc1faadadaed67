//! The broadcast operator: `to`, `except`, `volatile`, then `emit` to every matching socket.
//! Its flags are those of the per-socket operator ([`crate::SocketOperator`]) too.

use std::{
    fmt,
    future::{Future, IntoFuture},
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use belfry_core::proto::SocketId;
use belfry_core::{
    adapter::{AdapterError, BroadcastFlags, BroadcastOptions, RemoteAck},
    parser::Packet,
};
use futures_util::{Stream, StreamExt, stream::FuturesUnordered};
use serde::{Serialize, de::DeserializeOwned};
use tokio::sync::mpsc;

use crate::{
    AckError, EmitError, IntoRooms, ServerSideError, SocketRef,
    ns::Namespace,
    server_side,
    socket::{deserialize_args, event_payload, frames},
};

/// Selects sockets of a namespace and sends to all of them at once.
///
/// Made by [`SocketIo::to`](crate::SocketIo::to), [`Socket::to`](crate::Socket::to),
/// [`Socket::broadcast`](crate::Socket::broadcast)... Rooms add up (a socket in several of them
/// gets the event once); `except` rooms are taken out; either takes one room or several
/// ([`IntoRooms`]). The packet is encoded once for every recipient. Its delivery options
/// (`volatile`, `local`, `compress`, `timeout`) are [`BroadcastFlags`], as for one socket
/// ([`SocketOperator`](crate::SocketOperator)).
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
///     // Several rooms at once:
///     let _ = socket.to(["lobby", "hall"]).except(["muted", "away"]).emit("hi", &());
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

    /// Carries the options of a [`SocketOperator`](crate::SocketOperator) over.
    pub(crate) fn with_flags(mut self, flags: BroadcastFlags) -> Self {
        self.opts.flags = flags;
        self
    }

    /// Adds one room or several to the targets (Node's `to(room)` and `to([a, b])`).
    pub fn to(mut self, rooms: impl IntoRooms) -> Self {
        self.opts.rooms.extend(rooms.into_rooms());
        self
    }

    /// Same as [`BroadcastOperator::to`] (Node's `in`).
    pub fn within(self, rooms: impl IntoRooms) -> Self {
        self.to(rooms)
    }

    /// Leaves out the sockets of one room or several (Node's `except`).
    pub fn except(mut self, rooms: impl IntoRooms) -> Self {
        self.opts.except.extend(rooms.into_rooms());
        self
    }

    /// The delivery options set so far.
    pub fn flags(&self) -> &BroadcastFlags {
        &self.opts.flags
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

    /// Node's `compress`: `false` sends the packet uncompressed. A polling response is
    /// compressed (gzip or deflate, when the client accepts it and the response is at least
    /// [`http_compression`](belfry_engine::EngineConfigBuilder::http_compression)'s threshold)
    /// unless every packet in it was sent with `compress(false)`. Over WebSocket, with
    /// [`per_message_deflate`](belfry_engine::EngineConfigBuilder::per_message_deflate) on,
    /// messages are compressed by size alone (the flag is not applied there).
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
        let id = self.ns.next_ack_id();
        let payload = event_payload(self.ns.name(), Some(id), event, data, Vec::new())?;
        let timeout = self
            .opts
            .flags
            .timeout
            .unwrap_or_else(|| self.ns.ack_timeout());
        let packet = Packet::event(self.ns.name_str(), payload.clone(), Some(id));
        let frames = frames(&packet, self.ns.parser()).into_shared();
        let answers = FuturesUnordered::new();
        for socket in self.local_sockets() {
            let Some(rx) = socket.send_expecting_ack(id, &packet, &frames) else {
                continue;
            };
            answers.push(Box::pin(async move {
                let answer = socket.wait_ack::<R>(id, rx, timeout).await;
                (Some(socket.id().clone()), answer)
            }) as AckFuture<R>);
        }
        let remote = (!self.opts.flags.local).then(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            let servers = self.ns.adapter().broadcast_with_ack(
                &payload,
                &self.opts,
                timeout,
                Arc::new(move |ack| {
                    // The stream may be dropped before the adapter stops listening.
                    let _ = tx.send(ack);
                }),
            );
            remote_answers::<R>(servers, rx, timeout)
        });
        Ok(AckStream { answers, remote })
    }

    /// The matching sockets of every server of the cluster (Node's `fetchSockets`): this
    /// server's, then the others' (unless the operator is [`local`](BroadcastOperator::local)),
    /// each a [`RemoteSocket`](crate::RemoteSocket) with its id, handshake, rooms and data, to
    /// emit to, move between rooms or disconnect. [`BroadcastOperator::sockets`] gives this
    /// server's as [`SocketRef`]s.
    ///
    /// # Errors
    ///
    /// When another server does not answer in time.
    pub async fn fetch_sockets(&self) -> Result<Vec<crate::RemoteSocket>, AdapterError> {
        let mut sockets: Vec<crate::RemoteSocket> = self
            .local_sockets()
            .into_iter()
            .map(|socket| crate::RemoteSocket::local(SocketRef(socket), self.ns.clone()))
            .collect();
        let others = self.ns.adapter().fetch_remote_sockets(&self.opts).await?;
        sockets.extend(
            others
                .into_iter()
                .map(|info| crate::RemoteSocket::remote(info, self.ns.clone())),
        );
        Ok(sockets)
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
    /// A reserved event name, or data that does not serialize. [`EmitError::Adapter`] when the
    /// adapter failed: with a cluster adapter that could not reach the other servers (a Redis
    /// adapter whose publish queue is full while Redis is away),
    /// [`AdapterError::PartialBroadcast`] says how many sockets of this server got the event.
    pub fn emit<T: Serialize + ?Sized>(&self, event: &str, data: &T) -> Result<usize, EmitError> {
        let payload = event_payload(self.ns.name(), None, event, data, Vec::new())?;
        let packet = Packet::event(self.ns.name_str(), payload, None);
        // The adapter encodes once for every local recipient, and hands the packet to other
        // servers.
        self.ns
            .adapter()
            .broadcast(&packet, &self.opts)
            .map_err(EmitError::Adapter)
    }

    /// Sends `event` to the listeners of this namespace on the *other* servers of the cluster
    /// (Node's `serverSideEmit`); they receive it with
    /// [`SocketIo::on_server_side`](crate::SocketIo::on_server_side). The rooms and flags of the
    /// operator do not apply. With the in-memory adapter there is no other server and nothing
    /// is sent.
    ///
    /// Arguments travel as JSON (a Node server receives `Bytes` as an array of numbers).
    ///
    /// # Errors
    ///
    /// A reserved name (`connect`, `connection`, `new_namespace`), data that does not
    /// serialize, or an adapter that cannot reach the other servers.
    ///
    /// # Examples
    ///
    /// ```
    /// use belfry::SocketIo;
    ///
    /// # async fn run() -> Result<(), belfry::ServerSideError> {
    /// let (_layer, io) = SocketIo::new_layer();
    /// io.on_server_side("reload-config", |event: belfry::ServerSideEvent| async move {
    ///     let version: u32 = event.data().unwrap_or_default();
    ///     println!("another server asks for config v{version}");
    /// });
    /// io.server_side_emit("reload-config", &7).await?;
    /// # Ok(()) }
    /// ```
    pub async fn server_side_emit<T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
    ) -> Result<(), ServerSideError> {
        let data = server_side_data(event, data)?;
        self.ns.adapter().server_side_emit(&data, false).await?;
        Ok(())
    }

    /// [`BroadcastOperator::server_side_emit`], waiting for one answer from every other server
    /// (each server's first listener to call [`ServerSideEvent::ack`](crate::ServerSideEvent::ack)),
    /// at most the adapter's requests timeout. Resolves at once to no answers when there is no
    /// other server.
    ///
    /// # Errors
    ///
    /// As [`BroadcastOperator::server_side_emit`]; [`ServerSideError::Timeout`] with the
    /// answers that did arrive (as JSON values) when a server did not answer in time, as Node
    /// hands them to the callback with the error; an answer that does not deserialize into `R`.
    pub async fn server_side_emit_with_ack<R: DeserializeOwned, T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
    ) -> Result<Vec<R>, ServerSideError> {
        let data = server_side_data(event, data)?;
        let answers = match self.ns.adapter().server_side_emit(&data, true).await {
            Ok(answers) => answers,
            Err(belfry_core::adapter::AdapterError::TimeoutWithAnswers { answers, .. }) => {
                return Err(ServerSideError::Timeout { answers });
            }
            Err(error) => return Err(error.into()),
        };
        answers
            .into_iter()
            .map(|answer| R::deserialize(answer).map_err(ServerSideError::Deserialize))
            .collect()
    }

    /// The rooms with members on any server (Node's `adapter.allRooms()`), each socket's own
    /// room included.
    ///
    /// # Errors
    ///
    /// When a server does not answer in time.
    pub async fn all_rooms(&self) -> Result<Vec<String>, AdapterError> {
        self.ns.adapter().all_rooms().await
    }

    /// How many servers share the namespace, this one included (Node's
    /// `adapter.serverCount()`): 1 without a cluster adapter; with one, as the adapter counts
    /// them (Redis: the subscribers of the namespace's channel; Postgres: the servers heard
    /// from by heartbeat).
    pub async fn server_count(&self) -> usize {
        self.ns.adapter().server_count().await
    }

    /// Makes every matching socket, on every server, join one room or several (Node's
    /// `socketsJoin`).
    ///
    /// # Errors
    ///
    /// When the adapter cannot reach other servers.
    pub async fn sockets_join(&self, rooms: impl IntoRooms) -> Result<(), AdapterError> {
        let rooms = rooms.into_rooms();
        self.ns.adapter().add_sockets(&self.opts, &rooms).await
    }

    /// Makes every matching socket, on every server, leave one room or several (Node's
    /// `socketsLeave`).
    ///
    /// # Errors
    ///
    /// When the adapter cannot reach other servers.
    pub async fn sockets_leave(&self, rooms: impl IntoRooms) -> Result<(), AdapterError> {
        let rooms = rooms.into_rooms();
        self.ns.adapter().del_sockets(&self.opts, &rooms).await
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

/// `[event, ...args]` of a server-side emit, binary included.
fn server_side_data<T: Serialize + ?Sized>(
    event: &str,
    data: &T,
) -> Result<Vec<crate::Value>, EmitError> {
    if server_side::is_reserved(event) {
        return Err(EmitError::ReservedEvent(event.to_owned()));
    }
    let args = belfry_core::args::to_values(data)?;
    let mut values = Vec::with_capacity(args.len() + 1);
    values.push(crate::Value::from(event));
    values.extend(args);
    Ok(values)
}

type AckFuture<R> = Pin<Box<dyn Future<Output = (Option<SocketId>, Result<R, AckError>)> + Send>>;
type AckItems<R> = Pin<Box<dyn Stream<Item = (Option<SocketId>, Result<R, AckError>)> + Send>>;

/// The answers to a broadcast with acks: a [`Stream`] of `(socket id, answer)` as they arrive;
/// `.await` it to collect them all. Every socket yields exactly once: its answer, or
/// [`AckError::Timeout`], or [`AckError::Disconnected`]. Sockets of other servers (with a
/// cluster adapter) have no id here (`None`); those that did not answer in time yield one
/// [`AckError::Timeout`] each, as far as their server said how many it asked.
#[must_use = "the answers are lost unless the stream is read"]
pub struct AckStream<R> {
    answers: FuturesUnordered<AckFuture<R>>,
    remote: Option<AckItems<R>>,
}

impl<R> fmt::Debug for AckStream<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AckStream")
            .field("pending", &self.answers.len())
            .field("remote", &self.remote.is_some())
            .finish()
    }
}

impl<R> Stream for AckStream<R> {
    type Item = (Option<SocketId>, Result<R, AckError>);

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let local = self.answers.poll_next_unpin(cx);
        if let Poll::Ready(Some(item)) = local {
            return Poll::Ready(Some(item));
        }
        let remote = match self.remote.as_mut() {
            Some(remote) => remote.poll_next_unpin(cx),
            None => Poll::Ready(None),
        };
        match remote {
            Poll::Ready(Some(item)) => Poll::Ready(Some(item)),
            Poll::Ready(None) => {
                self.remote = None;
                local
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<R: Send + 'static> IntoFuture for AckStream<R> {
    type Output = Vec<(Option<SocketId>, Result<R, AckError>)>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.collect())
    }
}

/// The other servers' side of a broadcast with acks (Node's completeness rule): done once every
/// server asked reported its client count and that many answers arrived, or at the timeout,
/// when each answer still missing yields a timeout.
fn remote_answers<R: DeserializeOwned + Send + 'static>(
    servers: belfry_core::adapter::BoxFuture<'static, Result<usize, AdapterError>>,
    acks: mpsc::UnboundedReceiver<RemoteAck>,
    timeout: Duration,
) -> AckItems<R> {
    struct State {
        servers: Option<belfry_core::adapter::BoxFuture<'static, Result<usize, AdapterError>>>,
        expected_servers: Option<usize>,
        reported: usize,
        expected: usize,
        received: usize,
        acks: mpsc::UnboundedReceiver<RemoteAck>,
        deadline: Pin<Box<tokio::time::Sleep>>,
        /// Timeouts still to yield, once the deadline passed.
        missing: Option<usize>,
    }
    let state = State {
        servers: Some(servers),
        expected_servers: None,
        reported: 0,
        expected: 0,
        received: 0,
        acks,
        deadline: Box::pin(tokio::time::sleep(timeout)),
        missing: None,
    };
    Box::pin(futures_util::stream::unfold(
        state,
        |mut state| async move {
            loop {
                if let Some(missing) = state.missing.as_mut() {
                    if *missing == 0 {
                        return None;
                    }
                    *missing -= 1;
                    return Some(((None, Err(AckError::Timeout)), state));
                }
                if state.expected_servers == Some(state.reported)
                    && state.received >= state.expected
                {
                    return None;
                }
                enum Step {
                    Servers(Result<usize, AdapterError>),
                    Ack(Option<RemoteAck>),
                    Deadline,
                }
                let step = {
                    let servers = &mut state.servers;
                    let acks = &mut state.acks;
                    let deadline = state.deadline.as_mut();
                    tokio::select! {
                        count = async {
                            match servers.as_mut() {
                                Some(servers) => servers.await,
                                None => std::future::pending().await,
                            }
                        } => Step::Servers(count),
                        ack = acks.recv() => Step::Ack(ack),
                        () = deadline => Step::Deadline,
                    }
                };
                match step {
                    Step::Servers(count) => {
                        state.servers = None;
                        state.expected_servers = Some(count.unwrap_or_else(|error| {
                        tracing::warn!(%error, "broadcast with acks not handed to other servers");
                        0
                    }));
                    }
                    Step::Ack(Some(RemoteAck::ClientCount(count))) => {
                        state.reported += 1;
                        state.expected = state.expected.saturating_add(count);
                    }
                    Step::Ack(Some(RemoteAck::Answer(payload))) => {
                        state.received += 1;
                        let answer = deserialize_args(&payload).map_err(AckError::Deserialize);
                        return Some(((None, answer), state));
                    }
                    // A kind of answer this version does not know.
                    Step::Ack(Some(_)) => {}
                    Step::Ack(None) | Step::Deadline => {
                        state.missing = Some(state.expected.saturating_sub(state.received));
                    }
                }
            }
        },
    ))
}
