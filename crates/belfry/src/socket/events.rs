//! Running a socket's events: the listeners an event reaches, its packet middlewares, its
//! handlers (their extractors first; a refusal answers the ack), started on the reader's task
//! when the socket's queue is idle.

use std::sync::Arc;

use belfry_core::parser::{Packet, Payload};
use bytes::Bytes;

use super::{Listener, Socket};
use crate::{
    ConnectError, SocketRef,
    handler::{BoxFuture, ContextKind, ErasedHandler, HandlerContext, Rejected},
};

impl Socket {
    /// Runs the handler of an incoming event, in its turn: once the handlers of the events
    /// before it have started (finished, with serial handlers).
    ///
    /// Called by the connection's reader with no lock held, so an event arriving at an idle
    /// queue starts at once, on the reader's task (see [`Socket::enqueue_sized`]).
    pub(crate) fn on_event(self: &Arc<Self>, payload: Payload, ack: Option<u64>) {
        let bytes = payload.json.len() + payload.attachments.iter().map(Bytes::len).sum::<usize>();
        self.enqueue_sized(bytes, true, self.event_run(), |now| {
            if now {
                // Its turn already: the handler's own future is the job, when one handler is all
                // the event runs (no future of `run_event` to allocate).
                let (ctx, listeners, any) = self.prepare_event(payload, ack)?;
                self.start_event(ctx, listeners, any)
            } else {
                let socket = self.clone();
                Some(Box::pin(async move {
                    if let Some((ctx, listeners, any)) = socket.prepare_event(payload, ack) {
                        socket.run_event(ctx, listeners, any).await;
                    }
                }))
            }
        });
    }

    /// The start of an event's run, when its turn comes: the observer sees it, and the
    /// listeners that run it are taken (`once` listeners are removed). `None` when nothing runs.
    fn prepare_event(
        self: &Arc<Self>,
        payload: Payload,
        ack: Option<u64>,
    ) -> Option<(HandlerContext, Handlers, Option<ErasedHandler>)> {
        if let Some(observer) = self.io.observer() {
            observer.event_received(self, &payload);
        }
        let (name, args) = payload.event().ok()?;
        let listeners = self.take_listeners(&name);
        let any = self.any_handler.read().clone();
        if listeners.is_empty() && any.is_none() && self.packet_middlewares.read().is_empty() {
            tracing::debug!(event = %name, "event with no listener");
            return None;
        }
        tracing::debug!(event = %name, ack = ack.is_some(), "event");
        let ctx = HandlerContext {
            socket: SocketRef(self.clone()),
            kind: ContextKind::Event {
                name,
                payload,
                args,
                ack,
            },
        };
        Some((ctx, listeners, any))
    }

    /// Runs a prepared event up to its first wait: one handler alone is called here and its
    /// future returned; anything more is returned as [`Socket::run_event`].
    fn start_event(
        self: &Arc<Self>,
        mut ctx: HandlerContext,
        listeners: Handlers,
        any: Option<ErasedHandler>,
    ) -> Option<BoxFuture> {
        match listeners {
            Handlers {
                first: Some(handler),
                rest,
            } if rest.is_empty() && any.is_none() && self.packet_middlewares.read().is_empty() => {
                self.call_handler(&handler, &mut ctx)
            }
            listeners => {
                let socket = self.clone();
                Some(Box::pin(async move {
                    socket.run_event(ctx, listeners, any).await;
                }))
            }
        }
    }

    /// Runs an event's packet middlewares, then its handlers, one after the other.
    async fn run_event(
        &self,
        mut ctx: HandlerContext,
        listeners: Handlers,
        any: Option<ErasedHandler>,
    ) {
        if !self.run_packet_middlewares(&mut ctx).await {
            return;
        }
        for handler in any.into_iter().chain(listeners) {
            self.run_handler(&handler, &mut ctx).await;
        }
    }

    /// The handlers of the listeners of `event`, in order; `once` listeners are removed (they
    /// run this time, and never again). No allocation for an event with one listener.
    fn take_listeners(&self, event: &str) -> Handlers {
        let collect = |all: &[Listener]| {
            let mut matching = all.iter().filter(|l| &*l.event == event);
            Handlers {
                first: matching.next().map(|l| l.handler.clone()),
                rest: matching.map(|l| l.handler.clone()).collect(),
            }
        };
        {
            let all = self.listeners.read();
            if !all.iter().any(|l| l.once && &*l.event == event) {
                return collect(&all);
            }
        }
        let mut all = self.listeners.write();
        let handlers = collect(&all);
        all.retain(|l| !(l.once && &*l.event == event));
        handlers
    }

    /// Runs the per-packet middlewares in order; false (the client's ack answered with the
    /// error) if one refused the event.
    async fn run_packet_middlewares(&self, ctx: &mut HandlerContext) -> bool {
        let middlewares = self.packet_middlewares.read().clone();
        for middleware in middlewares {
            let refusal = match middleware(ctx) {
                Ok(future) => future.await.err(),
                Err(Rejected(message)) => Some(ConnectError::new(message)),
            };
            if let Some(refusal) = refusal {
                tracing::debug!(message = %refusal, "event refused by a packet middleware");
                self.answer_error(ctx, refusal.message(), refusal.data());
                return false;
            }
        }
        true
    }

    /// Answers the client's ack, if it asked for one, with `{"error": message}` (and `"data"`,
    /// when given).
    fn answer_error(&self, ctx: &HandlerContext, message: &str, data: Option<&serde_json::Value>) {
        if let Some(id) = ctx.ack_id() {
            let error = match data {
                Some(data) => serde_json::json!({ "error": message, "data": data }),
                None => serde_json::json!({ "error": message }),
            };
            let _ = self.send(Packet::ack(
                self.ns.name_str(),
                Payload::json(format!("[{error}]")),
                id,
            ));
        }
    }

    /// Extracts and runs one event handler; a refusal answers the client's ack, if it asked.
    async fn run_handler(&self, handler: &ErasedHandler, ctx: &mut HandlerContext) {
        if let Some(future) = self.call_handler(handler, ctx) {
            future.await;
        }
    }

    /// Extracts an event handler's arguments and calls it: its future, or `None` when an
    /// extractor refused the event (the client's ack, if it asked, is answered).
    fn call_handler(&self, handler: &ErasedHandler, ctx: &mut HandlerContext) -> Option<BoxFuture> {
        match handler(ctx) {
            Ok(future) => Some(future),
            Err(Rejected(message)) => {
                tracing::debug!(%message, "event refused by an extractor");
                self.answer_error(ctx, &message, None);
                None
            }
        }
    }
}

/// The handlers an event runs.
struct Handlers {
    first: Option<ErasedHandler>,
    rest: Vec<ErasedHandler>,
}

impl Handlers {
    fn is_empty(&self) -> bool {
        self.first.is_none()
    }
}

impl IntoIterator for Handlers {
    type Item = ErasedHandler;
    type IntoIter =
        std::iter::Chain<std::option::IntoIter<ErasedHandler>, std::vec::IntoIter<ErasedHandler>>;

    fn into_iter(self) -> Self::IntoIter {
        self.first.into_iter().chain(self.rest)
    }
}
