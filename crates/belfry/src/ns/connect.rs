//! A client joining a namespace: its socket recovered or made, the middlewares, the connect
//! handler's extractors, and the CONNECT or CONNECT_ERROR answer.

use std::sync::{Arc, Weak};

use belfry_core::proto::SocketId;
use belfry_core::{
    Str,
    adapter::RestoredSession,
    parser::{Packet, PacketData},
};
use belfry_engine::Socket as EngineSocket;
use futures_util::FutureExt;

use super::Namespace;
use crate::{
    ConnectError, SocketIo, SocketRef,
    client::Connection,
    handler::{ContextKind, HandlerContext, Rejected},
    socket::Socket,
};

impl Namespace {
    /// A client asks to join. Under connection state recovery, a client presenting its
    /// private session id and last offset first gets its old socket back, if the adapter still
    /// has it. Then the middlewares run in order (asynchronously, if there are any; skipped for
    /// a recovered socket when so configured), then the connect handler's arguments are
    /// extracted. A refusal from either is answered with a CONNECT_ERROR and leaves nothing
    /// behind; otherwise the socket is registered, the client gets CONNECT, and the handler runs.
    pub(crate) fn connect(
        self: &Arc<Self>,
        io: &SocketIo,
        conn: &Arc<EngineSocket<Connection>>,
        auth: Option<Str>,
    ) {
        let Some(claim) = io
            .config()
            .recovery
            .and_then(|_| RecoveryClaim::from_auth(auth.as_deref()))
        else {
            return self.connect_as(io, conn, auth, None);
        };
        let mut restore = self.adapter.restore_session(&claim.pid, &claim.offset);
        // The in-memory adapter answers at once; a remote one is waited for on a task.
        if let Some(restored) = (&mut restore).now_or_never() {
            return self.connect_as(io, conn, auth, restored_or_log(restored));
        }
        let (ns, io, conn) = (self.clone(), io.clone(), conn.clone());
        tokio::spawn(async move {
            let restored = restored_or_log(restore.await);
            if !conn.is_closed() {
                ns.connect_as(&io, &conn, auth, restored);
            }
        });
    }

    /// Creates the socket (the `restored` one, if any) and runs the middlewares.
    fn connect_as(
        self: &Arc<Self>,
        io: &SocketIo,
        conn: &Arc<EngineSocket<Connection>>,
        auth: Option<Str>,
        restored: Option<RestoredSession>,
    ) {
        let socket = Socket::new(
            self.clone(),
            conn.clone(),
            io.clone(),
            auth.as_deref(),
            restored.as_ref().map(|restored| &restored.session),
        );
        let skip_middlewares = match restored {
            Some(restored) => {
                socket.restore(restored);
                io.config()
                    .recovery
                    .is_some_and(|recovery| recovery.get_skip_middlewares())
            }
            None => false,
        };
        let middlewares = match self.parent.as_ref().and_then(Weak::upgrade) {
            _ if skip_middlewares => Vec::new(),
            Some(parent) => parent.middlewares.read().clone(),
            None => self.middlewares.read().clone(),
        };
        if middlewares.is_empty() {
            self.accept(socket, auth);
            return;
        }
        let ns = self.clone();
        tokio::spawn(async move {
            for middleware in middlewares {
                let mut ctx = HandlerContext {
                    socket: SocketRef(socket.clone()),
                    kind: ContextKind::Connect { auth: auth.clone() },
                };
                let refusal = match middleware(&mut ctx) {
                    Err(Rejected(message)) => Some(ConnectError::new(message)),
                    Ok(future) => future.await.err(),
                };
                if let Some(refusal) = refusal {
                    ns.refuse(&socket, &refusal);
                    return;
                }
            }
            // Node sends nothing if the connection closed while the middlewares ran.
            if !socket.conn().is_closed() {
                ns.accept(socket, auth);
            }
        });
    }

    /// Extracts the connect handler's arguments, then registers the socket and answers CONNECT,
    /// or refuses.
    fn accept(self: &Arc<Self>, socket: Arc<Socket>, auth: Option<Str>) {
        let mut ctx = HandlerContext {
            socket: SocketRef(socket.clone()),
            kind: ContextKind::Connect { auth },
        };
        let on_connect = self.on_connect.read().clone();
        match on_connect(&mut ctx) {
            Err(Rejected(message)) => self.refuse(&socket, &ConnectError::new(message)),
            Ok(future) => {
                socket.conn().data().insert(self.name(), socket.clone());
                socket.joined();
                if let Some(parent) = self.parent.as_ref().and_then(Weak::upgrade) {
                    parent.keep(self);
                }
                let pid = socket.pid().map(SocketId::as_str);
                let packet = if socket.conn().protocol() == 3 {
                    // socket.io 2.x clients get a CONNECT without payload.
                    Packet {
                        ns: self.name.clone(),
                        data: PacketData::Connect(None),
                    }
                } else {
                    Packet::connect(self.name.clone(), socket.id().as_str(), pid)
                };
                let _ = socket.send(packet);
                socket
                    .span()
                    .in_scope(|| tracing::debug!("socket connected"));
                if let Some(observer) = socket.io_ref().observer() {
                    observer.socket_connected(&socket);
                }
                socket.start_connect_handler(future);
            }
        }
    }

    fn refuse(&self, socket: &Arc<Socket>, refusal: &ConnectError) {
        socket
            .span()
            .in_scope(|| tracing::debug!(message = %refusal.message, "connect refused"));
        let packet = if socket.conn().protocol() == 3 {
            // socket.io 2.x's ERROR packet: the data, or else the message (Node's).
            let payload = match &refusal.data {
                Some(data) => data.to_string(),
                None => serde_json::Value::from(refusal.message.as_str()).to_string(),
            };
            Packet {
                ns: self.name.clone(),
                data: PacketData::ConnectError(payload.into()),
            }
        } else {
            Packet::connect_error(self.name.clone(), &refusal.message, refusal.data.as_ref())
        };
        let _ = socket.send(packet);
        socket.close(crate::DisconnectReason::ServerNamespaceDisconnect);
    }
}

/// What a client presents to recover its socket: in its CONNECT auth, `pid` and `offset`,
/// both strings (the client adds them to its own auth).
#[derive(serde::Deserialize)]
struct RecoveryClaim {
    pid: String,
    offset: String,
}

impl RecoveryClaim {
    fn from_auth(auth: Option<&str>) -> Option<RecoveryClaim> {
        serde_json::from_str(auth?).ok()
    }
}

/// The session an adapter restored; a failure is logged and gives a fresh socket, as in Node.
fn restored_or_log(
    restored: Result<Option<RestoredSession>, belfry_core::adapter::AdapterError>,
) -> Option<RestoredSession> {
    restored.unwrap_or_else(|error| {
        tracing::debug!(%error, "session not restored");
        None
    })
}
