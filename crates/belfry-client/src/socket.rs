//! The handles: a [`Socket`] per namespace, and the [`Manager`] that holds the connection
//! they share.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use belfry_core::{parser::Payload, proto::Str};
use parking_lot::Mutex;
use serde::{Serialize, de::DeserializeOwned};
use tokio::sync::{mpsc, oneshot};

use crate::{
    AckError, EmitError, Event, ListenerId, Transport,
    builder::{Auth, SocketBuilder, object},
    data,
    listeners::Listeners,
    manager::Options,
};

/// What the socket's handles can read, written by the manager.
#[derive(Default)]
pub(crate) struct State {
    pub(crate) id: Mutex<Option<String>>,
    pub(crate) connected: AtomicBool,
    pub(crate) recovered: AtomicBool,
    pub(crate) closed: AtomicBool,
}

pub(crate) struct SocketInner {
    pub(crate) ns: Str,
    /// Tells this socket from another of the same namespace (one that failed to join because
    /// this one had).
    pub(crate) key: u64,
    pub(crate) manager: Manager,
    pub(crate) state: Arc<State>,
    /// The `auth` object sent with each `CONNECT`.
    pub(crate) auth: Arc<Mutex<Auth>>,
    pub(crate) listeners: Arc<Listeners>,
}

impl Drop for SocketInner {
    /// The last handle is gone: the socket leaves its namespace (and the connection closes
    /// when no socket is left).
    fn drop(&mut self) {
        let _ = self
            .manager
            .inner
            .commands
            .send(Command::Dropped(self.ns.clone(), self.key));
    }
}

/// A connected namespace: emit to the server, read its state, disconnect. Cheap to clone; the
/// connection closes when the last clone is dropped (or with [`Socket::disconnect`]).
#[derive(Clone)]
pub struct Socket {
    pub(crate) inner: Arc<SocketInner>,
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket")
            .field("namespace", &&*self.inner.ns)
            .field("id", &self.id())
            .field("connected", &self.connected())
            .finish_non_exhaustive()
    }
}

impl Socket {
    /// The socket's id, while connected.
    pub fn id(&self) -> Option<String> {
        self.inner.state.id.lock().clone()
    }

    /// True while the namespace is joined.
    pub fn connected(&self) -> bool {
        self.inner.state.connected.load(Ordering::Acquire)
    }

    /// True when the last connection recovered the previous session (connection state
    /// recovery: same id, missed events received).
    pub fn recovered(&self) -> bool {
        self.inner.state.recovered.load(Ordering::Acquire)
    }

    /// True until the socket is disconnected for good (by the server, or
    /// [`Socket::disconnect`]), or gave up reconnecting.
    pub fn active(&self) -> bool {
        !self.inner.state.closed.load(Ordering::Acquire)
    }

    /// The transport of the connection (socket.io-client's `socket.io.engine.transport.name`):
    /// polling until the upgrade to WebSocket, if any, is done.
    pub fn transport(&self) -> Transport {
        self.inner.manager.transport()
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.inner.ns
    }

    /// The manager of the socket's connection (socket.io-client's `socket.io`): more
    /// namespaces over the same connection ([`Manager::socket`]).
    pub fn io(&self) -> Manager {
        self.inner.manager.clone()
    }

    /// Replaces the `auth` object sent with the next connections.
    ///
    /// # Errors
    ///
    /// `auth` cannot be serialized, or is not an object.
    pub fn set_auth<T: Serialize + ?Sized>(&self, auth: &T) -> Result<(), serde_json::Error> {
        *self.inner.auth.lock() = Auth::Value(object(auth)?);
        Ok(())
    }

    /// Calls `listener` with every event named `event` from now on, after the listeners added
    /// before (socket.io-client's `socket.on`).
    pub fn on<F, Fut>(&self, event: impl Into<String>, listener: F) -> ListenerId
    where
        F: Fn(Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listeners = &self.inner.listeners;
        listeners.add(Some(event.into()), listeners.entry(false, listener))
    }

    /// Calls `listener` with the next event named `event` only (socket.io-client's
    /// `socket.once`).
    pub fn once<F, Fut>(&self, event: impl Into<String>, listener: F) -> ListenerId
    where
        F: Fn(Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listeners = &self.inner.listeners;
        listeners.add(Some(event.into()), listeners.entry(true, listener))
    }

    /// Calls `listener` with every event from now on (socket.io-client's `socket.onAny`).
    pub fn on_any<F, Fut>(&self, listener: F) -> ListenerId
    where
        F: Fn(Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listeners = &self.inner.listeners;
        listeners.add(None, listeners.entry(false, listener))
    }

    /// Calls `listener` with the name and arguments of each of this socket's emits, as it is
    /// made (socket.io-client's `socket.onAnyOutgoing`); removed with [`Socket::off`].
    pub fn on_any_outgoing<F>(&self, listener: F) -> ListenerId
    where
        F: Fn(&str, &[belfry_core::proto::value::Value]) + Send + Sync + 'static,
    {
        self.inner.listeners.add_outgoing(Arc::new(listener))
    }

    /// Removes the listener `id` (socket.io-client's `socket.off`, `offAny` and
    /// `offAnyOutgoing`); false when it
    /// was removed already (or was a `once` listener that ran).
    pub fn off(&self, id: ListenerId) -> bool {
        self.inner.listeners.remove(id)
    }

    /// Sends `event` with `data` (a tuple for several arguments, `()` for none; bytes become
    /// binary). While disconnected, it waits in a buffer and is sent on reconnection.
    ///
    /// # Errors
    ///
    /// A reserved name, data that cannot be serialized, a closed client.
    pub fn emit<T: Serialize + ?Sized>(&self, event: &str, data: &T) -> Result<(), EmitError> {
        self.send(event, data, None, false)
    }

    /// [`Socket::emit`], dropped rather than buffered when the socket is not connected
    /// (socket.io-client's `volatile`).
    ///
    /// # Errors
    ///
    /// As [`Socket::emit`].
    pub fn emit_volatile<T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
    ) -> Result<(), EmitError> {
        self.send(event, data, None, true)
    }

    /// Sends `event` and waits for the server's answer (its arguments as `R`: a tuple for
    /// several, one type for the first), within the client's `ack_timeout` if it has one.
    ///
    /// # Errors
    ///
    /// [`AckError::Timeout`], an emit error, a closed client, an answer that is not an `R`.
    pub async fn emit_with_ack<R: DeserializeOwned, T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
    ) -> Result<R, AckError> {
        self.ack_within(event, data, self.inner.manager.inner.options.ack_timeout)
            .await
    }

    /// [`Socket::emit_with_ack`] with its own timeout (socket.io-client's
    /// `socket.timeout(ms).emitWithAck`).
    ///
    /// # Errors
    ///
    /// As [`Socket::emit_with_ack`].
    pub async fn emit_with_timeout<R: DeserializeOwned, T: Serialize + ?Sized>(
        &self,
        timeout: Duration,
        event: &str,
        data: &T,
    ) -> Result<R, AckError> {
        self.ack_within(event, data, Some(timeout)).await
    }

    async fn ack_within<R: DeserializeOwned, T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
        timeout: Option<Duration>,
    ) -> Result<R, AckError> {
        let (tx, rx) = oneshot::channel();
        self.send(event, data, Some((tx, timeout)), false)?;
        let payload = rx.await.map_err(|_| AckError::Closed)??;
        let values = data::values(&payload).map_err(AckError::Deserialize)?;
        data::from_args(&values).map_err(AckError::Deserialize)
    }

    fn send<T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
        ack: Option<AckWaiter>,
        volatile: bool,
    ) -> Result<(), EmitError> {
        // socket.io-client throws on them; Node's parser refuses them.
        if belfry_core::parser::is_reserved_event(event) {
            return Err(EmitError::Reserved(event.to_owned()));
        }
        if self.inner.state.closed.load(Ordering::Acquire) {
            return Err(EmitError::Closed);
        }
        let payload = data::event_payload(event, data)?;
        self.inner.listeners.tell_outgoing(&payload);
        self.inner
            .manager
            .inner
            .commands
            .send(Command::Emit {
                ns: self.inner.ns.clone(),
                key: self.inner.key,
                payload,
                ack,
                volatile,
            })
            .map_err(|_| EmitError::Closed)
    }

    /// Leaves the namespace; no reconnection follows. The connection closes when it was the
    /// manager's last socket. Resolves once done.
    pub async fn disconnect(&self) {
        let (tx, rx) = oneshot::channel();
        let command = Command::Disconnect {
            ns: self.inner.ns.clone(),
            key: self.inner.key,
            done: tx,
        };
        if self.inner.manager.inner.commands.send(command).is_ok() {
            let _ = rx.await;
        }
    }
}

/// The connection to a server, shared by the sockets of its namespaces (socket.io-client's
/// `Manager`): it opens, reconnects with backoff and closes the connection for them. Made by
/// [`ClientBuilder::manager`](crate::ClientBuilder::manager), or got from
/// [`Socket::io`]. Cheap to clone.
///
/// ```no_run
/// use belfry_client::ClientBuilder;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let chat = ClientBuilder::new("http://127.0.0.1:3000").namespace("/chat").connect().await?;
/// // The admin namespace, over the same connection.
/// let admin = chat.io().socket("/admin").connect().await?;
/// # let _ = admin;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Manager {
    pub(crate) inner: Arc<ManagerInner>,
}

pub(crate) struct ManagerInner {
    pub(crate) commands: mpsc::UnboundedSender<Command>,
    pub(crate) options: Arc<Options>,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager")
            .field("authority", &self.inner.options.target.authority)
            .finish_non_exhaustive()
    }
}

impl Manager {
    /// A socket of `namespace` over this manager's connection, to configure and connect
    /// (socket.io-client's `manager.socket(nsp)`).
    pub fn socket(&self, namespace: impl Into<String>) -> SocketBuilder {
        SocketBuilder::new(self.clone(), namespace.into())
    }

    /// The transport of the connection: polling until the upgrade to WebSocket, if any, is
    /// done.
    pub fn transport(&self) -> Transport {
        if self
            .inner
            .options
            .target
            .on_websocket
            .load(Ordering::Acquire)
        {
            Transport::WebSocket
        } else {
            Transport::Polling
        }
    }
}

/// Where an answer goes, and how long it is waited for.
pub(crate) type AckWaiter = (oneshot::Sender<Result<Payload, AckError>>, Option<Duration>);

/// What the handles ask of the manager.
pub(crate) enum Command {
    /// A socket joins its namespace.
    Join(Box<crate::manager::Join>),
    Emit {
        ns: Str,
        key: u64,
        payload: Payload,
        ack: Option<AckWaiter>,
        volatile: bool,
    },
    /// [`Socket::disconnect`]: the socket's namespace and key.
    Disconnect {
        ns: Str,
        key: u64,
        done: oneshot::Sender<()>,
    },
    /// The last handle of a socket is gone: its namespace and key.
    Dropped(Str, u64),
}
