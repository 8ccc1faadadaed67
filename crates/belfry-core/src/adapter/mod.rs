//! The adapter: where a namespace keeps its rooms and how its broadcasts reach sockets, on this
//! server ([`LocalAdapter`]) or across a cluster (the Redis adapter).
//!
//! An adapter is a runtime value behind `Arc<dyn Adapter>`, never a type parameter of user
//! types. Belfry creates one per namespace with an [`AdapterFactory`], handing it the
//! namespace's local sockets as a [`LocalSockets`]. Room bookkeeping and broadcasts are
//! synchronous (a cluster adapter delivers locally at once and publishes in the background);
//! operations that wait for other servers return futures.

mod few;
mod local;
mod recovery;

use std::{fmt, future::Future, pin::Pin, sync::Arc, time::Duration};

use belfry_proto::{SocketId, value::Value};
use serde::{Deserialize, Serialize};

pub use local::LocalAdapter;
pub use recovery::{ConnectionStateRecovery, RestoredSession, Session, push_offset};

use crate::parser::{Packet, Payload};

/// A boxed future, as the async adapter operations return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Which sockets a broadcast reaches, and how (Node's `BroadcastOptions`).
///
/// Built with [`BroadcastOptions::new`] and the `with_*` methods (its fields may grow: it is
/// `#[non_exhaustive]`); its fields can be read and assigned.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use belfry_core::adapter::{BroadcastFlags, BroadcastOptions};
///
/// let opts = BroadcastOptions::new()
///     .with_rooms(["lobby", "hall"])
///     .with_except(["muted"])
///     .with_flags(BroadcastFlags::new().with_volatile(true).with_timeout(Duration::from_secs(1)));
/// assert_eq!(opts.rooms, ["lobby", "hall"]);
/// assert!(opts.flags.volatile);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BroadcastOptions {
    /// Sockets in any of these rooms; every socket when empty.
    pub rooms: Vec<String>,
    /// Minus the sockets in any of these rooms.
    pub except: Vec<String>,
    /// How to deliver.
    pub flags: BroadcastFlags,
}

/// How a broadcast is delivered (Node's `flags`).
///
/// Built with [`BroadcastFlags::new`] and the `with_*` methods (`#[non_exhaustive]`); its
/// fields can be read and assigned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BroadcastFlags {
    /// Drop the packet for a client whose send queue is full.
    #[serde(default)]
    pub volatile: bool,
    /// Deliver on this server only.
    #[serde(default)]
    pub local: bool,
    /// `Some(false)`: do not compress (Node's `compress(false)`; applies to polling responses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compress: Option<bool>,
    /// For broadcasts with acks: how long to wait for the answers.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "millis")]
    pub timeout: Option<Duration>,
}

impl BroadcastOptions {
    /// Every socket, delivered with no flag (the same as `default()`).
    pub fn new() -> Self {
        BroadcastOptions::default()
    }

    /// Sockets in any of `rooms` (replacing the rooms set before); every socket when empty.
    #[must_use]
    pub fn with_rooms<R: Into<String>>(mut self, rooms: impl IntoIterator<Item = R>) -> Self {
        self.rooms = rooms.into_iter().map(Into::into).collect();
        self
    }

    /// Minus the sockets in any of `rooms` (replacing the rooms set before).
    #[must_use]
    pub fn with_except<R: Into<String>>(mut self, rooms: impl IntoIterator<Item = R>) -> Self {
        self.except = rooms.into_iter().map(Into::into).collect();
        self
    }

    /// Delivered as `flags` say.
    #[must_use]
    pub fn with_flags(mut self, flags: BroadcastFlags) -> Self {
        self.flags = flags;
        self
    }
}

impl BroadcastFlags {
    /// No flag set (the same as `default()`).
    pub fn new() -> Self {
        BroadcastFlags::default()
    }

    /// Sets [`volatile`](BroadcastFlags::volatile).
    #[must_use]
    pub fn with_volatile(mut self, volatile: bool) -> Self {
        self.volatile = volatile;
        self
    }

    /// Sets [`local`](BroadcastFlags::local).
    #[must_use]
    pub fn with_local(mut self, local: bool) -> Self {
        self.local = local;
        self
    }

    /// Sets [`compress`](BroadcastFlags::compress) to `Some(compress)`.
    #[must_use]
    pub fn with_compress(mut self, compress: bool) -> Self {
        self.compress = Some(compress);
        self
    }

    /// Sets [`timeout`](BroadcastFlags::timeout) to `Some(timeout)`.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

/// Node's adapter events, in Node's order: `create-room` before the first `join-room` of a
/// room, `delete-room` after its last `leave-room`. A socket's own room fires them too.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AdapterEvent {
    /// A room got its first member.
    CreateRoom(String),
    /// A room lost its last member.
    DeleteRoom(String),
    /// A socket joined a room.
    JoinRoom(String, SocketId),
    /// A socket left a room.
    LeaveRoom(String, SocketId),
}

/// A listener of [`AdapterEvent`]s.
pub type AdapterListener = Box<dyn Fn(&AdapterEvent) + Send + Sync>;

/// A socket as another server describes it (Node's `RemoteSocket` data). Made with
/// [`SocketInfo::new`] (`#[non_exhaustive]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SocketInfo {
    /// The socket id.
    pub id: String,
    /// Its handshake (Node's shape).
    pub handshake: serde_json::Value,
    /// Its rooms.
    pub rooms: Vec<String>,
    /// Its data (Node's `socket.data`; `null` when the server sent none), binary included.
    #[serde(default)]
    pub data: Value,
}

impl SocketInfo {
    /// Socket `id`, with its handshake (Node's shape), rooms and data.
    pub fn new(
        id: impl Into<String>,
        handshake: serde_json::Value,
        rooms: Vec<String>,
        data: Value,
    ) -> Self {
        SocketInfo {
            id: id.into(),
            handshake,
            rooms,
            data,
        }
    }
}

/// Why a cross-server adapter operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdapterError {
    /// Not every server answered in time.
    #[error("timeout reached while waiting for {0} responses")]
    Timeout(&'static str),
    /// Not every server answered a server-side emit in time; `answers` are those that did
    /// (Node hands them to the callback with the error).
    #[error("timeout reached while waiting for {what} responses")]
    TimeoutWithAnswers {
        /// The operation (`serverSideEmit`).
        what: &'static str,
        /// The answers that arrived in time, in the order they came.
        answers: Vec<serde_json::Value>,
    },
    /// The adapter was closed.
    #[error("the adapter is closed")]
    Closed,
    /// The transport between servers failed.
    #[error("adapter transport error")]
    Transport(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// This adapter (or the protocol it speaks) cannot do this operation.
    #[error("the adapter does not support {0}")]
    Unsupported(&'static str),
    /// A broadcast reached the sockets of this server but could not be handed to the other
    /// servers (`source` says why: a Redis adapter whose publish queue is full while Redis is
    /// away, ...).
    #[error("broadcast delivered to {delivered} sockets of this server, not to the other servers")]
    PartialBroadcast {
        /// How many sockets of this server got the packet.
        delivered: usize,
        /// Why the other servers were not reached.
        #[source]
        source: Box<AdapterError>,
    },
}

/// What another server answered to a broadcast with acks ([`Adapter::broadcast_with_ack`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RemoteAck {
    /// A server sent the packet to this many of its clients: that many answers may follow.
    ClientCount(usize),
    /// One client's answer: its first argument, as a one-element array.
    Answer(Payload),
}

/// Where an adapter hands the [`RemoteAck`]s of one broadcast.
pub type RemoteAckSink = Arc<dyn Fn(RemoteAck) + Send + Sync>;

/// Answers a server-side event of another server (Node's `serverSideEmit` callback): called at
/// most once, with the answer's single argument.
pub type ServerSideReply = Box<dyn FnOnce(serde_json::Value) + Send>;

/// Where a client's answer to [`LocalSockets::send_with_ack`] goes: its arguments.
pub type LocalAckSink = Arc<dyn Fn(Payload) + Send + Sync>;

/// What an adapter may do with its namespace's sockets on this server; implemented by Belfry.
pub trait LocalSockets: Send + Sync + 'static {
    /// The namespace name.
    fn namespace(&self) -> &str;

    /// Sends `packet` (encoded once) to the sockets `ids`; returns how many got it.
    fn send(&self, ids: &[SocketId], packet: &Packet, flags: &BroadcastFlags) -> usize;

    /// Makes the sockets `ids` join `rooms`.
    fn join(&self, ids: &[SocketId], rooms: &[String]);

    /// Makes the sockets `ids` leave `rooms`.
    fn leave(&self, ids: &[SocketId], rooms: &[String]);

    /// Disconnects the sockets `ids` from the namespace, or closes their connections.
    fn disconnect(&self, ids: &[SocketId], close: bool);

    /// Describes the sockets `ids`, for other servers' `fetch_sockets`.
    fn describe(&self, ids: &[SocketId]) -> Vec<SocketInfo>;

    /// Sends the event `payload` (encoded once, with a fresh ack id of this namespace) to the
    /// sockets `ids`, asking each for an acknowledgement; each answer arriving within
    /// `timeout` goes to `on_answer`. Returns how many sockets got the packet.
    fn send_with_ack(
        &self,
        ids: &[SocketId],
        payload: &Payload,
        timeout: Duration,
        on_answer: LocalAckSink,
    ) -> usize;

    /// Hands another server's server-side event (`[event, ...args]`) to this namespace's
    /// listeners (binary arguments as [`Value::Binary`]); `reply` is set when the sender waits
    /// for an answer.
    fn server_side_event(&self, data: Vec<Value>, reply: Option<ServerSideReply>);

    /// The server's connection state recovery options, when it is on (Node's
    /// `server.opts.connectionStateRecovery`): a cluster adapter that keeps events gives them
    /// offsets only then. `None` by default.
    fn recovery(&self) -> Option<ConnectionStateRecovery> {
        None
    }
}

/// A namespace's rooms and the delivery of its broadcasts. Object-safe: used as
/// `Arc<dyn Adapter>`.
pub trait Adapter: Send + Sync + 'static {
    /// Adds socket `id` to `rooms` (on this server).
    fn add_all(&self, id: &SocketId, rooms: &[String]);

    /// Removes socket `id` from `room`.
    fn del(&self, id: &SocketId, room: &str);

    /// Removes socket `id` from every room.
    fn del_all(&self, id: &SocketId);

    /// The rooms with members on this server.
    fn rooms(&self) -> Vec<String>;

    /// The rooms of socket `id`.
    fn socket_rooms(&self, id: &SocketId) -> Vec<String>;

    /// The sockets of this server that `opts` selects, each once.
    fn sockets(&self, opts: &BroadcastOptions) -> Vec<SocketId>;

    /// Delivers `packet` to the sockets `opts` selects, on every server (this one only with
    /// `flags.local`); returns how many local sockets got it.
    ///
    /// # Errors
    ///
    /// [`AdapterError::PartialBroadcast`], with the local count, when a cluster adapter
    /// delivered on this server but cannot hand the packet to the other servers; another error
    /// when the broadcast failed as a whole (nothing was delivered).
    fn broadcast(&self, packet: &Packet, opts: &BroadcastOptions) -> Result<usize, AdapterError>;

    /// Makes the sockets `opts` selects, on every server, join `rooms`.
    fn add_sockets(
        &self,
        opts: &BroadcastOptions,
        rooms: &[String],
    ) -> BoxFuture<'static, Result<(), AdapterError>>;

    /// Makes the sockets `opts` selects, on every server, leave `rooms`.
    fn del_sockets(
        &self,
        opts: &BroadcastOptions,
        rooms: &[String],
    ) -> BoxFuture<'static, Result<(), AdapterError>>;

    /// Disconnects the sockets `opts` selects, on every server.
    fn disconnect_sockets(
        &self,
        opts: &BroadcastOptions,
        close: bool,
    ) -> BoxFuture<'static, Result<(), AdapterError>>;

    /// Describes the sockets `opts` selects on the *other* servers.
    fn fetch_remote_sockets(
        &self,
        opts: &BroadcastOptions,
    ) -> BoxFuture<'static, Result<Vec<SocketInfo>, AdapterError>>;

    /// How many servers share this namespace (this one included).
    fn server_count(&self) -> BoxFuture<'static, usize>;

    /// Asks the *other* servers to send the event `payload` to their sockets that `opts`
    /// selects, each asking its clients for acknowledgements (this server's sockets are
    /// Belfry's to serve). Every server's client count and every client's answer go to
    /// `sink` until `timeout`. Resolves to how many other servers were asked; a single server
    /// resolves to 0 (the default).
    fn broadcast_with_ack(
        &self,
        payload: &Payload,
        opts: &BroadcastOptions,
        timeout: Duration,
        sink: RemoteAckSink,
    ) -> BoxFuture<'static, Result<usize, AdapterError>> {
        let _ = (payload, opts, timeout, sink);
        Box::pin(async { Ok(0) })
    }

    /// Sends `data` (`[event, ...args]`) to the namespace's listeners on the *other* servers
    /// (Node's `serverSideEmit`). With `ack`, resolves to their answers, one per server, once
    /// every server answered; without, once it is sent. A single server has nobody to tell
    /// and resolves to no answers (the default).
    fn server_side_emit(
        &self,
        data: &[Value],
        ack: bool,
    ) -> BoxFuture<'static, Result<Vec<serde_json::Value>, AdapterError>> {
        let _ = (data, ack);
        Box::pin(async { Ok(Vec::new()) })
    }

    /// The rooms with members on any server (Node's `allRooms`); this server's by default.
    fn all_rooms(&self) -> BoxFuture<'static, Result<Vec<String>, AdapterError>> {
        let rooms = self.rooms();
        Box::pin(async move { Ok(rooms) })
    }

    /// Keeps the state of a socket that left for a recoverable reason, for connection state
    /// recovery (Node's `persistSession`). Adapters that cannot recover sessions ignore it (the
    /// default).
    fn persist_session(&self, session: Session) {
        let _ = session;
    }

    /// Finds the session `pid` again, with the events its client missed after `offset` (Node's
    /// `restoreSession`). `None` (the default) gives the client a fresh socket.
    fn restore_session(
        &self,
        pid: &str,
        offset: &str,
    ) -> BoxFuture<'static, Result<Option<RestoredSession>, AdapterError>> {
        let _ = (pid, offset);
        Box::pin(async { Ok(None) })
    }

    /// Adds a listener of room events.
    fn on_event(&self, listener: AdapterListener);

    /// Releases what the adapter holds (subscriptions, tasks): called by `SocketIo::close` and
    /// when the namespace goes away. It may be called more than once: later calls do nothing.
    fn close(&self) {}
}

/// Makes the adapter of a namespace from its local sockets.
pub type AdapterFactory = Arc<dyn Fn(Arc<dyn LocalSockets>) -> Arc<dyn Adapter> + Send + Sync>;

impl fmt::Debug for dyn Adapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Adapter")
    }
}

/// `Option<Duration>` as milliseconds, as Node writes `timeout`.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}
