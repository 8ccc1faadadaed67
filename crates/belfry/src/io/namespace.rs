//! The handles of registered namespaces, to add their middlewares and listeners.

use std::{fmt, future::Future, sync::Arc};

use belfry_core::adapter::AdapterListener;
use serde::Serialize;

use crate::{
    BroadcastOperator, EmitError, ServerSideEvent,
    handler::{Handler, erase_middleware, kind},
    ns::{Namespace, ParentNamespace},
    server_side::erase_server_side,
};

/// A namespace just registered with [`SocketIo::ns`](crate::SocketIo::ns), to add its connect
/// middlewares.
#[derive(Debug, Clone)]
pub struct NamespaceHandle(pub(super) Arc<Namespace>);

impl NamespaceHandle {
    /// Adds a connect middleware (Node's `nsp.use`): an async function of extractors returning
    /// `Result<(), E>`, where `E` is any error that implements `Display`. Middlewares run in the
    /// order they were added, before the client is answered; the first `Err` refuses the
    /// connect with a CONNECT_ERROR `{"message":..}` (the error's `Display`, Node's
    /// `err.message`), or `{"message":..,"data":..}` for a
    /// [`ConnectError`](crate::ConnectError) with data (Node's `err.data`). A middleware may
    /// emit to the socket: the client receives it once connected.
    ///
    /// # Examples
    ///
    /// ```
    /// use belfry::{ConnectError, SocketIo, SocketRef, extract::Data};
    ///
    /// #[derive(serde::Deserialize)]
    /// struct Auth { token: String }
    ///
    /// let (_layer, io) = SocketIo::new_layer();
    /// io.ns("/admin", |_socket: SocketRef| async {})
    ///     .middleware(|Data(auth): Data<Auth>| async move {
    ///         if auth.token == "secret" {
    ///             Ok(())
    ///         } else {
    ///             Err(ConnectError::new("not authorized").with_data(serde_json::json!({"code": 401})))
    ///         }
    ///     })
    ///     // Any error: the client's `connect_error` has its message.
    ///     .middleware(|| async {
    ///         if std::path::Path::new("/etc/maintenance").exists() {
    ///             Err("down for maintenance")
    ///         } else {
    ///             Ok(())
    ///         }
    ///     });
    /// ```
    pub fn middleware<H, T, E>(self, middleware: H) -> Self
    where
        H: Handler<T, kind::Connect, Result<(), E>>,
        E: fmt::Display + Send + 'static,
    {
        self.0.add_middleware(erase_middleware(middleware));
        self
    }

    /// The namespace name.
    pub fn name(&self) -> &str {
        self.0.name()
    }

    /// Runs each socket's event handlers one at a time, in arrival order: an event's handler
    /// starts once the handlers of the events before it have finished.
    ///
    /// By default, as in Node, a handler starts when its event arrives (what it does before
    /// its first `.await` runs in arrival order) and later events do not wait for it; a
    /// handler that awaits an ack from its client then cannot hold back the event that brings
    /// it. Serial handlers suit state that each event changes in turn.
    ///
    /// # Examples
    ///
    /// ```
    /// use belfry::{SocketIo, SocketRef, extract::Data};
    ///
    /// let (_layer, io) = SocketIo::new_layer();
    /// io.ns("/ledger", |socket: SocketRef| async move {
    ///     socket.on("entry", |Data(amount): Data<i64>| async move {
    ///         // Each entry is handled after the one before it has finished.
    ///         let _ = amount;
    ///     });
    /// })
    /// .serial_handlers();
    /// ```
    pub fn serial_handlers(self) -> Self {
        self.0.set_serial_handlers(true);
        self
    }

    /// Listens to the server-side events named `event` that other servers send to this
    /// namespace (see [`SocketIo::on_server_side`](crate::SocketIo::on_server_side)).
    pub fn on_server_side<F, Fut>(self, event: impl Into<String>, listener: F) -> Self
    where
        F: Fn(ServerSideEvent) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.0
            .on_server_side(event.into(), erase_server_side(listener));
        self
    }

    /// Adds a listener of the namespace's room events (Node's `adapter.on("create-room")`...).
    pub fn on_adapter_event(self, listener: AdapterListener) -> Self {
        self.0.adapter().on_event(listener);
        self
    }
}

/// A dynamic namespace registered with [`SocketIo::dynamic_ns`](crate::SocketIo::dynamic_ns): adds
/// middlewares shared by its children, and broadcasts to all of them.
#[derive(Debug, Clone)]
pub struct ParentNamespaceHandle(pub(super) Arc<ParentNamespace>);

impl ParentNamespaceHandle {
    /// Adds a connect middleware that every child runs (see [`NamespaceHandle::middleware`]).
    pub fn middleware<H, T, E>(self, middleware: H) -> Self
    where
        H: Handler<T, kind::Connect, Result<(), E>>,
        E: fmt::Display + Send + 'static,
    {
        self.0.add_middleware(erase_middleware(middleware));
        self
    }

    /// Runs the event handlers of each socket of every child one at a time (see
    /// [`NamespaceHandle::serial_handlers`]).
    pub fn serial_handlers(self) -> Self {
        self.0.set_serial_handlers(true);
        self
    }

    /// The names of the children that exist now.
    pub fn children(&self) -> Vec<String> {
        self.0
            .children()
            .iter()
            .map(|child| child.name().to_owned())
            .collect()
    }

    /// One broadcast operator per child, to select sockets across every child.
    pub fn operators(&self) -> Vec<BroadcastOperator> {
        self.0
            .children()
            .into_iter()
            .map(BroadcastOperator::new)
            .collect()
    }

    /// Sends `event` to every socket of every child; returns how many got it.
    ///
    /// # Errors
    ///
    /// As [`BroadcastOperator::emit`]: the first child's error, once every child was sent to.
    pub fn emit<T: Serialize + ?Sized>(&self, event: &str, data: &T) -> Result<usize, EmitError> {
        let mut delivered = 0;
        let mut failure = None;
        for operator in self.operators() {
            match operator.emit(event, data) {
                Ok(count) => delivered += count,
                Err(error) => {
                    failure.get_or_insert(error);
                }
            }
        }
        failure.map_or(Ok(delivered), Err)
    }
}
