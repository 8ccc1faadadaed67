//! Events from the server and the listeners that take them: each socket (and the manager, for
//! its reconnection events) has a task that runs its listeners one event at a time, in the
//! order the events came.

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
};

use belfry_core::{
    parser::Payload,
    proto::{Str, value::Value},
};
use parking_lot::RwLock;
use serde::{Serialize, de::DeserializeOwned};
use tokio::sync::mpsc;

use crate::{ConnectError, DisconnectReason, EmitError, Socket, data, socket::SocketInner};

pub(crate) type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Events (and connects, disconnects) waiting for the listeners, at most: past it the
/// connection is dropped rather than memory growing while listeners fall behind.
pub(crate) const EVENT_BACKLOG: usize = 4096;
type Listener = Arc<dyn Fn(Event) -> BoxFuture + Send + Sync>;
pub(crate) type Callback<T> = Arc<dyn Fn(T) -> BoxFuture + Send + Sync>;
/// A listener of the socket's own emits: the event's name and arguments.
pub(crate) type Outgoing = Arc<dyn Fn(&str, &[Value]) + Send + Sync>;

/// An event from the server, with its arguments (binary as [`Value::Binary`]) and, when the
/// server waits for an answer, the way to send it.
#[derive(Debug)]
pub struct Event {
    pub(crate) name: String,
    pub(crate) args: Vec<Value>,
    pub(crate) ack: Option<Acker>,
    pub(crate) socket: std::sync::Weak<SocketInner>,
}

#[derive(Debug)]
pub(crate) struct Acker {
    pub(crate) ns: Str,
    /// The socket and the session of that socket the event came in: an answer given after
    /// either changed is not sent (its id belongs to a server session that is gone).
    pub(crate) key: u64,
    pub(crate) session: u64,
    pub(crate) id: u64,
    /// The manager's own channel for answers: it does not keep the manager alive when every
    /// handle is dropped.
    pub(crate) answers: mpsc::UnboundedSender<Answer>,
}

/// An answer to the server.
pub(crate) struct Answer {
    pub(crate) ns: Str,
    pub(crate) key: u64,
    pub(crate) session: u64,
    pub(crate) id: u64,
    pub(crate) payload: Payload,
}

impl Event {
    /// The event's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The arguments (with connection state recovery on, the last is the event's offset, as
    /// socket.io-client shows it too).
    pub fn args(&self) -> &[Value] {
        &self.args
    }

    /// The arguments as `T`: a tuple (or a list) for all of them, or one type for the first
    /// (with connection state recovery on, an offset follows the arguments).
    ///
    /// # Errors
    ///
    /// The arguments are not a `T`.
    pub fn data<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        data::from_args(&self.args)
    }

    /// The socket it came to, while some [`Socket`] handle of it lives (an event does not
    /// keep the client alive).
    pub fn socket(&self) -> Option<Socket> {
        self.socket.upgrade().map(|inner| Socket { inner })
    }

    /// True when the server waits for an answer.
    pub fn wants_ack(&self) -> bool {
        self.ack.is_some()
    }

    /// Answers the server (its callback gets `data`, spread as for an emit). Does nothing when
    /// it asked for none, or was already answered.
    ///
    /// # Errors
    ///
    /// The data cannot be serialized.
    pub fn ack<T: Serialize + ?Sized>(&mut self, data: &T) -> Result<(), EmitError> {
        let Some(acker) = self.ack.take() else {
            return Ok(());
        };
        let payload = data::args_payload(data)?;
        acker
            .answers
            .send(Answer {
                ns: acker.ns,
                key: acker.key,
                session: acker.session,
                id: acker.id,
                payload,
            })
            .map_err(|_| EmitError::Closed)
    }
}

/// Names a listener added with [`Socket::on`], [`Socket::once`] or [`Socket::on_any`], to
/// remove it with [`Socket::off`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenerId(u64);

/// A listener of events, and how long it listens.
#[derive(Clone)]
pub(crate) struct Entry {
    id: u64,
    /// Removed after its first event.
    once: bool,
    listener: Listener,
}

/// The listeners.
#[derive(Default)]
pub(crate) struct Listeners {
    next_id: AtomicU64,
    pub(crate) events: RwLock<HashMap<String, Vec<Entry>>>,
    pub(crate) any: RwLock<Vec<Entry>>,
    pub(crate) connect: RwLock<Vec<Arc<dyn Fn() -> BoxFuture + Send + Sync>>>,
    pub(crate) disconnect: RwLock<Vec<Callback<DisconnectReason>>>,
    pub(crate) connect_error: RwLock<Vec<Callback<ConnectError>>>,
    pub(crate) reconnect: RwLock<Vec<Callback<ReconnectEvent>>>,
    /// Called with each emit (socket.io-client's `onAnyOutgoing`).
    pub(crate) outgoing: RwLock<Vec<(u64, Outgoing)>>,
}

impl Listeners {
    pub(crate) fn entry<F, Fut>(&self, once: bool, listener: F) -> Entry
    where
        F: Fn(Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Entry {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            once,
            listener: Arc::new(move |event| Box::pin(listener(event))),
        }
    }

    /// Adds a listener of the socket's own emits.
    pub(crate) fn add_outgoing(&self, listener: Outgoing) -> ListenerId {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.outgoing.write().push((id, listener));
        ListenerId(id)
    }

    /// Calls the listeners of the socket's own emits with the event of `payload`.
    pub(crate) fn tell_outgoing(&self, payload: &Payload) {
        let listeners: Vec<Outgoing> = self
            .outgoing
            .read()
            .iter()
            .map(|(_, listener)| listener.clone())
            .collect();
        if listeners.is_empty() {
            return;
        }
        let Ok(values) = data::values(payload) else {
            return;
        };
        if let Some((Value::String(name), args)) = values.split_first() {
            for listener in listeners {
                listener(name, args);
            }
        }
    }

    /// Adds a listener of `event` (of every event for `None`).
    pub(crate) fn add(&self, event: Option<String>, entry: Entry) -> ListenerId {
        let id = ListenerId(entry.id);
        match event {
            Some(event) => self.events.write().entry(event).or_default().push(entry),
            None => self.any.write().push(entry),
        }
        id
    }

    /// Removes the listener `id`; false when there is none.
    pub(crate) fn remove(&self, id: ListenerId) -> bool {
        let mut removed = false;
        let mut drop_id = |entries: &mut Vec<Entry>| {
            let before = entries.len();
            entries.retain(|entry| entry.id != id.0);
            removed |= entries.len() != before;
        };
        drop_id(&mut self.any.write());
        let mut events = self.events.write();
        for entries in events.values_mut() {
            drop_id(entries);
        }
        events.retain(|_, entries| !entries.is_empty());
        let mut outgoing = self.outgoing.write();
        let before = outgoing.len();
        outgoing.retain(|(kept, _)| *kept != id.0);
        removed || outgoing.len() != before
    }

    /// The listeners of `name` (the catch-all ones first); those added with `once` are
    /// removed.
    fn take_for(&self, name: &str) -> Vec<Listener> {
        let mut taken = Vec::new();
        let mut collect = |entries: &mut Vec<Entry>| {
            taken.extend(entries.iter().map(|entry| entry.listener.clone()));
            entries.retain(|entry| !entry.once);
        };
        collect(&mut self.any.write());
        let mut events = self.events.write();
        if let Some(entries) = events.get_mut(name) {
            collect(entries);
            if entries.is_empty() {
                events.remove(name);
            }
        }
        taken
    }
}

/// What happens to the connection while it reconnects (socket.io-client's Manager events).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReconnectEvent {
    /// An attempt begins (`reconnect_attempt`), with its number, from 1.
    Attempt(u32),
    /// The connection is open again (`reconnect`), after that many attempts.
    Reconnected(u32),
    /// An attempt failed (`reconnect_error`): why.
    Error(String),
    /// The attempts are exhausted (`reconnect_failed`): no more follow.
    Failed,
}

/// What the listener task is handed.
pub(crate) enum ToListeners {
    Event(Event),
    Connect,
    Disconnect(DisconnectReason),
    ConnectError(ConnectError),
    Reconnect(ReconnectEvent),
}

/// The way to a listener task: events count toward [`EVENT_BACKLOG`]; connects, disconnects
/// and errors (a few per connection) always go, so that a full backlog does not hide them.
#[derive(Clone)]
pub(crate) struct ToTask {
    tx: mpsc::UnboundedSender<ToListeners>,
    backlog: Arc<AtomicUsize>,
}

/// The listener task's end of a [`ToTask`].
pub(crate) struct FromTask {
    rx: mpsc::UnboundedReceiver<ToListeners>,
    backlog: Arc<AtomicUsize>,
}

/// The backlog is full: the listeners are far behind.
pub(crate) struct Full;

impl ToTask {
    pub(crate) fn channel() -> (ToTask, FromTask) {
        let (tx, rx) = mpsc::unbounded_channel();
        let backlog = Arc::new(AtomicUsize::new(0));
        (
            ToTask {
                tx,
                backlog: backlog.clone(),
            },
            FromTask { rx, backlog },
        )
    }

    /// Hands the listeners a connect, disconnect, error or reconnection event.
    pub(crate) fn tell(&self, what: ToListeners) {
        let _ = self.tx.send(what);
    }

    /// Hands the listeners an event, unless [`EVENT_BACKLOG`] of them wait already.
    pub(crate) fn event(&self, event: Event) -> Result<(), Full> {
        if self.backlog.load(Ordering::Acquire) >= EVENT_BACKLOG {
            return Err(Full);
        }
        // Counted before it can be taken (and uncounted), so the count never wraps.
        self.backlog.fetch_add(1, Ordering::AcqRel);
        if self.tx.send(ToListeners::Event(event)).is_err() {
            self.backlog.fetch_sub(1, Ordering::AcqRel);
        }
        Ok(())
    }
}

/// Runs the listeners, one event at a time, in order.
pub(crate) async fn run_listeners(listeners: Arc<Listeners>, mut events: FromTask) {
    while let Some(event) = events.rx.recv().await {
        match event {
            ToListeners::Event(event) => {
                events.backlog.fetch_sub(1, Ordering::AcqRel);
                let all = listeners.take_for(&event.name);
                let mut event = Some(event);
                let total = all.len();
                for (i, listener) in all.iter().enumerate() {
                    // The last listener gets the event (and its ack); the others, copies
                    // without the ack.
                    let this = if i + 1 == total {
                        event.take()
                    } else {
                        event.as_ref().map(Event::copy_without_ack)
                    };
                    if let Some(this) = this {
                        run_caught(listener(this)).await;
                    }
                }
            }
            ToListeners::Connect => {
                let connect = listeners.connect.read().clone();
                for listener in connect {
                    run_caught(listener()).await;
                }
            }
            ToListeners::Disconnect(reason) => {
                let disconnect = listeners.disconnect.read().clone();
                for listener in disconnect {
                    run_caught(listener(reason)).await;
                }
            }
            ToListeners::ConnectError(error) => {
                let connect_error = listeners.connect_error.read().clone();
                for listener in connect_error {
                    run_caught(listener(error.clone())).await;
                }
            }
            ToListeners::Reconnect(event) => {
                let reconnect = listeners.reconnect.read().clone();
                for listener in reconnect {
                    run_caught(listener(event.clone())).await;
                }
            }
        }
    }
}

/// Runs a listener; one that panics is logged and the next ones still run.
async fn run_caught(listener: BoxFuture) {
    use futures_util::FutureExt;
    if std::panic::AssertUnwindSafe(listener)
        .catch_unwind()
        .await
        .is_err()
    {
        tracing::error!("a listener panicked");
    }
}

impl Event {
    fn copy_without_ack(&self) -> Event {
        Event {
            name: self.name.clone(),
            args: self.args.clone(),
            ack: None,
            socket: self.socket.clone(),
        }
    }
}
