//! [`RemoteSocket`]: a socket of any server of the cluster, as
//! [`BroadcastOperator::fetch_sockets`] finds it.

use std::sync::Arc;

use belfry_core::{adapter::AdapterError, proto::SocketId};
use serde::{Serialize, de::DeserializeOwned};

use crate::{BroadcastOperator, EmitError, SocketRef, ns::Namespace, rooms::IntoRooms};

/// A socket that [`BroadcastOperator::fetch_sockets`] found, on this server or another one
/// (Node's `RemoteSocket`): its id, handshake, rooms and data as they were then, and what can
/// be done to it from anywhere in the cluster (through the adapter, as Node does).
///
/// # Examples
///
/// ```
/// use belfry::SocketIo;
///
/// # async fn kick_guests(io: SocketIo) -> Result<(), Box<dyn std::error::Error>> {
/// for socket in io.to("lobby").fetch_sockets().await? {
///     if socket.data::<String>().as_deref() == Some("guest") {
///         socket.emit("bye", &"guests leave the lobby")?;
///         socket.leave("lobby").await?;
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RemoteSocket {
    id: SocketId,
    handshake: serde_json::Value,
    rooms: Vec<String>,
    data: crate::Value,
    local: Option<SocketRef>,
    ns: Arc<Namespace>,
}

impl std::fmt::Debug for RemoteSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteSocket")
            .field("id", &self.id)
            .field("rooms", &self.rooms)
            .field("local", &self.local.is_some())
            .finish_non_exhaustive()
    }
}

impl RemoteSocket {
    /// One of this server's sockets.
    pub(crate) fn local(socket: SocketRef, ns: Arc<Namespace>) -> RemoteSocket {
        RemoteSocket {
            id: socket.id().clone(),
            handshake: serde_json::to_value(socket.handshake()).unwrap_or_default(),
            rooms: socket.rooms(),
            data: socket.data_value(),
            local: Some(socket),
            ns,
        }
    }

    /// A socket another server described.
    pub(crate) fn remote(
        info: belfry_core::adapter::SocketInfo,
        ns: Arc<Namespace>,
    ) -> RemoteSocket {
        RemoteSocket {
            id: SocketId::from(info.id),
            handshake: info.handshake,
            rooms: info.rooms,
            data: info.data,
            local: None,
            ns,
        }
    }

    /// The socket's id.
    pub fn id(&self) -> &SocketId {
        &self.id
    }

    /// Its handshake, in Node's shape (`headers`, `time`, `address`, `xdomain`, `secure`,
    /// `issued`, `url`, `query`, `auth`).
    pub fn handshake(&self) -> &serde_json::Value {
        &self.handshake
    }

    /// Its rooms (its own room, its id, among them).
    pub fn rooms(&self) -> &[String] {
        &self.rooms
    }

    /// Its data ([`Socket::set_data`](crate::Socket::set_data); Node's `socket.data`) as a
    /// `T` (binary in it as bytes, through Redis too); `None` when it has none or it is not
    /// a `T`.
    pub fn data<T: DeserializeOwned>(&self) -> Option<T> {
        belfry_core::args::from_value(&self.data).ok()
    }

    /// The socket itself, when it is one of this server's.
    pub fn as_local(&self) -> Option<&SocketRef> {
        self.local.as_ref()
    }

    /// An operator that reaches this socket alone, wherever it is.
    fn operator(&self) -> BroadcastOperator {
        let operator = BroadcastOperator::new(self.ns.clone()).to(&self.id);
        // One of this server's: no other server has it, nothing goes through the adapter's bus.
        if self.local.is_some() {
            operator.local()
        } else {
            operator
        }
    }

    /// Sends `event` to the socket (Node's `remoteSocket.emit`).
    ///
    /// # Errors
    ///
    /// As [`BroadcastOperator::emit`].
    pub fn emit<T: Serialize + ?Sized>(&self, event: &str, data: &T) -> Result<(), EmitError> {
        self.operator().emit(event, data).map(drop)
    }

    /// Makes the socket join one room or several.
    ///
    /// # Errors
    ///
    /// As [`BroadcastOperator::sockets_join`].
    pub async fn join(&self, rooms: impl IntoRooms) -> Result<(), AdapterError> {
        self.operator().sockets_join(rooms).await
    }

    /// Makes the socket leave one room or several.
    ///
    /// # Errors
    ///
    /// As [`BroadcastOperator::sockets_leave`].
    pub async fn leave(&self, rooms: impl IntoRooms) -> Result<(), AdapterError> {
        self.operator().sockets_leave(rooms).await
    }

    /// Disconnects the socket; with `close`, closes its connection too (Node's
    /// `remoteSocket.disconnect(close)`).
    ///
    /// # Errors
    ///
    /// As [`BroadcastOperator::disconnect_sockets`].
    pub async fn disconnect(&self, close: bool) -> Result<(), AdapterError> {
        self.operator().disconnect_sockets(close).await
    }
}
