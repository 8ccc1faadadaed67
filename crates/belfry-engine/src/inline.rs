//! Work run on a connection's reader task, and the contract between the engine and the layer
//! above that makes a broadcaster's answer follow its deliveries.
//!
//! # The contract
//!
//! When the engine's reader hands a connection's packets to the [`EngineHandler`], it runs
//! that as the connection's *own work* (`queues_for_others`): a thread-local record says
//! which session's reader is running. While it runs:
//!
//! - every packet queued for **another** session whose writer is idle takes a claim on the
//!   reader's fence, released when that writer has taken its queue; the reader writes its
//!   own packets (the broadcaster's ack) only once the fence is open, as Node's `emit` writes
//!   every recipient's socket before it returns;
//! - packets queued for the session **itself** may go past its send caps (up to twice them),
//!   and the reader pauses once they are reached instead of the handler's answers failing.
//!
//! Both hold only for what is queued *synchronously inside* that run. The layer above keeps its
//! side of the contract by starting a handler **inline**: it polls the handler's future once,
//! with [`poll_once`], from within the engine's call (its `on_message`), before it returns. A
//! handler that does not finish in that first poll continues on a task of its own, where each
//! poll runs through [`Socket::as_own_work`](crate::Socket::as_own_work): still the session's
//! own work for the caps, but claiming no writers (a task that runs later cannot hold up a
//! reader that has moved on).
//!
//! Starting the handler on a spawned task instead would compile and run, and lose both: the
//! broadcast would go out after the ack and the answers of a burst would hit the caps. This
//! module's tests hold the engine's side (and show what a handler run later loses); the layer's
//! side is held end to end by `tests/tests/sio_fairness.rs` (a broadcaster's ack after 400
//! deliveries) and `sio_backpressure.rs`.
//!
//! [`EngineHandler`]: crate::EngineHandler

use std::{
    cell::Cell,
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll, Waker},
};

use futures_util::task::AtomicWaker;

/// Polls `future` once on the calling thread with a waker that does nothing: the inline start
/// of a handler, from within the engine's call to the [`EngineHandler`](crate::EngineHandler)
/// (see the module's contract). Its wakeups are dropped: whoever takes over a future still
/// pending must poll it again, which registers its own waker.
pub fn poll_once<F: Future + ?Sized>(future: Pin<&mut F>) -> Poll<F::Output> {
    future.poll(&mut Context::from_waker(Waker::noop()))
}

thread_local! {
    /// The session whose reader runs on this thread (its address), and whether what it ran
    /// queued packets for another session.
    static CURRENT: Cell<(usize, bool)> = const { Cell::new((0, false)) };
    /// That reader's fence, made when it first claims a writer.
    static FENCE: Cell<Option<Arc<Fence>>> = const { Cell::new(None) };
    /// Whether that reader claims the writers it gives packets to.
    static CLAIMS: Cell<bool> = const { Cell::new(false) };
}

/// What a connection's reader waits for before its own packets go out: the writers it gave
/// packets to while they were idle. Each such recipient holds a [`Claim`] until its writer
/// takes its queue, and writes it then, before anything else runs on its task; so a
/// broadcaster's ack follows its deliveries, as on Node (where `emit` writes every
/// recipient's socket before it returns). Waking the recipients' tasks is not enough: past
/// 256 woken tasks, tokio's worker keeps the rest in a shared queue that it looks at only
/// now and then, and the broadcaster's next turn comes first.
///
/// Only idle writers are claimed: a writer held up by a slow peer never holds up a
/// broadcaster. A reader that waits is not idle, so no two readers wait for each other.
#[derive(Debug, Default)]
pub(crate) struct Fence {
    pending: AtomicUsize,
    waker: AtomicWaker,
}

impl Fence {
    /// Ready once every claim on the fence is released.
    pub(crate) fn poll_open(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.pending.load(Ordering::Acquire) == 0 {
            return Poll::Ready(());
        }
        self.waker.register(cx.waker());
        if self.pending.load(Ordering::Acquire) == 0 {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// A recipient's hold on a reader's [`Fence`], released when dropped.
#[derive(Debug)]
pub(crate) struct Claim(Arc<Fence>);

impl Drop for Claim {
    fn drop(&mut self) {
        if self.0.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.waker.wake();
        }
    }
}

/// Runs `f` as the work of session `me`, which claims the idle writers it gives packets to
/// on `fence` (made at the first claim), or claims none; true if it queued packets for
/// other sessions.
pub(crate) fn queues_for_others<T: ?Sized>(
    me: &T,
    mut fence: Option<&mut Option<Arc<Fence>>>,
    f: impl FnOnce(),
) -> bool {
    let outer = CURRENT.replace((address(me), false));
    let claims = CLAIMS.replace(fence.is_some());
    let outer_fence = FENCE.replace(fence.as_mut().and_then(|fence| fence.take()));
    f();
    let made = FENCE.replace(outer_fence);
    CLAIMS.set(claims);
    if let Some(fence) = fence {
        *fence = made;
    }
    CURRENT.replace(outer).1
}

/// Runs `f` as the work of session `me`, claiming no writers.
pub(crate) fn as_own_work<T: ?Sized, R>(me: &T, f: impl FnOnce() -> R) -> R {
    let outer = CURRENT.replace((address(me), false));
    let claims = CLAIMS.replace(false);
    let outer_fence = FENCE.take();
    let result = f();
    FENCE.set(outer_fence);
    CLAIMS.set(claims);
    CURRENT.set(outer);
    result
}

/// True when the reader running on this thread is `session`'s own.
pub(crate) fn is_own_reader<T: ?Sized>(session: &T) -> bool {
    CURRENT.get().0 == address(session)
}

/// Notes that `session` was given packets.
pub(crate) fn queued_for<T: ?Sized>(session: &T) {
    CURRENT.with(|current| {
        let (me, others) = current.get();
        if !others && me != 0 && me != address(session) {
            current.set((me, true));
        }
    });
}

/// A claim on the fence of the reader running on this thread, for the idle writer of
/// `session`, which was just given packets; none outside a reader or for its own session.
pub(crate) fn claim<T: ?Sized>(session: &T) -> Option<Claim> {
    let (me, _) = CURRENT.get();
    if me == 0 || me == address(session) || !CLAIMS.get() {
        return None;
    }
    let fence = FENCE.take().unwrap_or_default();
    fence.pending.fetch_add(1, Ordering::AcqRel);
    let claim = Claim(fence.clone());
    FENCE.set(Some(fence));
    Some(claim)
}

fn address<T: ?Sized>(session: &T) -> usize {
    std::ptr::from_ref(session).cast::<()>() as usize
}

#[cfg(test)]
mod tests {
    use std::future::pending;

    use super::*;
    use crate::{Packet, Sid, Socket, Str, TransportType, socket::Packets};

    fn session() -> Socket<()> {
        let (parts, ()) = http::Request::new(()).into_parts();
        Socket::new(
            Sid::random(),
            parts,
            TransportType::Websocket,
            4,
            100,
            1 << 20,
            (),
        )
    }

    /// A session whose WebSocket writer waits for packets.
    fn idle_writer() -> Socket<()> {
        let socket = session();
        assert_eq!(
            socket.drain_or_wait(&mut Packets::default(), Waker::noop()),
            None
        );
        socket
    }

    fn message() -> Packet {
        Packet::Message(Str::from("x".to_owned()))
    }

    fn is_open(fence: &Fence) -> bool {
        fence
            .poll_open(&mut Context::from_waker(Waker::noop()))
            .is_ready()
    }

    /// A handler that delivers to `recipient`, then waits (as one waiting for an ack).
    fn handler(recipient: &Socket<()>) -> Pin<Box<impl Future<Output = ()> + '_>> {
        Box::pin(async move {
            recipient.send(message()).expect("open");
            pending::<()>().await;
        })
    }

    #[test]
    fn a_handler_started_inline_holds_the_readers_fence_until_its_deliveries_are_taken() {
        let (reader, recipient) = (session(), idle_writer());
        let mut handler = handler(&recipient);
        let mut fence = None;
        let fed_others = queues_for_others(&reader, Some(&mut fence), || {
            assert!(poll_once(handler.as_mut()).is_pending());
        });
        assert!(fed_others, "the reader knows it fed another session");
        assert!(recipient.has_claim());
        let fence = fence.expect("the delivery claimed the idle writer");
        assert!(!is_open(&fence), "the reader's own packets wait");
        assert_eq!(
            recipient.drain_or_wait(&mut Packets::default(), Waker::noop()),
            Some(None)
        );
        assert!(
            is_open(&fence),
            "open once the recipient's writer took its queue"
        );
    }

    #[test]
    fn a_handler_run_after_the_readers_run_holds_nothing() {
        // The same handler, first polled on a task of its own once the reader's run is over
        // (what a spawned start would do): the reader's fence never sees the delivery, and its
        // ack could go out before it.
        let (reader, recipient) = (session(), idle_writer());
        let mut handler = handler(&recipient);
        let mut fence = None;
        let fed_others = queues_for_others(&reader, Some(&mut fence), || {});
        assert!(!fed_others && fence.is_none());
        assert!(
            reader
                .as_own_work(|| poll_once(handler.as_mut()))
                .is_pending()
        );
        assert!(
            !recipient.has_claim(),
            "delivered, and no reader waits for its writer"
        );
    }

    #[test]
    fn the_own_work_of_a_session_claims_no_writers() {
        // A handler continuing on its task runs as its session's own work: it claims nothing,
        // even inside another reader's run on the same thread.
        let (reader, other, recipient) = (session(), session(), idle_writer());
        let mut handler = handler(&recipient);
        let mut fence = None;
        queues_for_others(&reader, Some(&mut fence), || {
            assert!(
                other
                    .as_own_work(|| poll_once(handler.as_mut()))
                    .is_pending()
            );
        });
        assert!(fence.is_none() && !recipient.has_claim());
    }

    #[test]
    fn poll_once_drops_wakeups() {
        let mut ready_later = Box::pin(async {
            tokio::task::yield_now().await;
            7
        });
        assert!(poll_once(ready_later.as_mut()).is_pending());
        assert_eq!(poll_once(ready_later.as_mut()), Poll::Ready(7));
    }
}
