//! Futures run in a session's span, only when something records it.
//!
//! A [`tracing::Span`] is 40 bytes inline, recorded or not; a future that holds one for each
//! session (its task, a held long-poll) pays them for as long as it waits. A span that no
//! subscriber wanted is disabled for good, and entering it does nothing: such futures run as
//! they are.

use std::{future::Future, pin::Pin};

use tokio::runtime::Handle;
use tracing::{Instrument, Span};

/// `future` boxed, in `span` unless it is disabled.
pub(crate) fn boxed<F>(future: F, span: Span) -> Pin<Box<dyn Future<Output = F::Output> + Send>>
where
    F: Future + Send + 'static,
{
    if span.is_disabled() {
        Box::pin(future)
    } else {
        Box::pin(future.instrument(span))
    }
}

/// Spawns `future` on the current runtime, in `span` unless it is disabled.
pub(crate) fn spawn<F>(future: F, span: Span)
where
    F: Future<Output = ()> + Send + 'static,
{
    spawn_on(&Handle::current(), future, span);
}

/// Spawns `future` on `runtime`, in `span` unless it is disabled.
pub(crate) fn spawn_on<F>(runtime: &Handle, future: F, span: Span)
where
    F: Future<Output = ()> + Send + 'static,
{
    if span.is_disabled() {
        runtime.spawn(future);
    } else {
        runtime.spawn(future.instrument(span));
    }
}
