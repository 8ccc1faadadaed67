//! A socket's handler queue: its events' handlers run one at a time, in arrival order, first on
//! the reader's task (most finish without waiting), then, for one that waits, on a task of the
//! socket's own that ends when the queue is empty.

use std::{collections::VecDeque, panic::AssertUnwindSafe, sync::Arc};

use belfry_engine::Socket as EngineSocket;
use futures_util::FutureExt;

use super::Socket;
use crate::{client::Connection, handler::BoxFuture};

/// How many events may wait for one socket's handlers before the client is cut off as a flood.
const MAX_PENDING_EVENTS: usize = 65_536;

/// How many bytes of event payloads may wait for one socket's handlers before the client is cut
/// off as a flood.
const MAX_PENDING_BYTES: usize = 16 << 20;

impl Socket {
    /// Queues a job behind the socket's pending handlers.
    pub(crate) fn enqueue(&self, future: BoxFuture) {
        self.enqueue_sized(0, false, |_| Some(future));
    }

    /// Runs the connect handler's `future` (queued first: nothing is queued before it) on the
    /// caller's task as far as it goes without waiting, like an event's handler: a handler
    /// that only registers listeners starts no task.
    pub(crate) fn start_connect_handler(&self, future: BoxFuture) {
        self.enqueue_sized(0, true, |_| Some(future));
    }

    /// Queues a job for an event of `bytes` bytes. A client whose events pile up past
    /// [`MAX_PENDING_EVENTS`] or [`MAX_PENDING_BYTES`] is cut off as a flood.
    ///
    /// Jobs run one at a time, in order, on a task started when a job arrives at an idle queue
    /// and ending when the queue is empty: an idle socket holds no task. With `inline`, a job
    /// arriving at an idle queue is first run right here, by the caller (which must hold no
    /// lock a handler could want): most handlers finish without waiting, and then no task is
    /// started at all. One that waits continues on a task.
    ///
    /// `job(now)` makes the job: `now` when it runs at once (it may do its synchronous start
    /// itself and return what is left, or nothing), else to be queued.
    pub(super) fn enqueue_sized(
        &self,
        bytes: usize,
        inline: bool,
        job: impl FnOnce(bool) -> Option<BoxFuture>,
    ) {
        let idle = {
            let mut queue = self.queue.lock();
            if queue.closed {
                return;
            }
            if !queue.admit(bytes) {
                drop(queue);
                let _span = self.span.enter();
                tracing::warn!("too many pending events, closing the connection");
                self.conn.close();
                return;
            }
            let idle = !std::mem::replace(&mut queue.draining, true);
            if !(idle && inline) {
                if let Some(future) = job(false) {
                    queue.jobs.push_back(Job { future, bytes });
                } else {
                    queue.release(bytes);
                }
                idle
            } else {
                queue.release(bytes);
                drop(queue);
                let Some(rest) = self.run_inline(job) else {
                    return self.finish_inline();
                };
                queue = self.queue.lock();
                queue.jobs.push_front(Job {
                    future: rest,
                    bytes: 0,
                });
                true
            }
        };
        if idle {
            self.spawn_drain();
        }
    }

    /// Makes a job and polls it once on the caller's task (the engine's reader, inside its
    /// call to the handler: the contract of [`belfry_engine::inline`]); returns it if it is not
    /// done. Its wakeups are dropped: the task that takes it over polls it again, which
    /// registers that task instead.
    fn run_inline(&self, job: impl FnOnce(bool) -> Option<BoxFuture>) -> Option<BoxFuture> {
        let _span = self.span.enter();
        let run = || {
            let mut future = job(true)?;
            belfry_engine::inline::poll_once(future.as_mut())
                .is_pending()
                .then_some(future)
        };
        match std::panic::catch_unwind(AssertUnwindSafe(run)) {
            Ok(rest) => rest,
            Err(_) => {
                tracing::error!("a handler panicked");
                None
            }
        }
    }

    /// After a job ran inline to its end: jobs queued meanwhile (by the job itself) get a task.
    fn finish_inline(&self) {
        let more = {
            let mut queue = self.queue.lock();
            queue.draining = !queue.jobs.is_empty();
            queue.draining
        };
        if more {
            self.spawn_drain();
        }
    }

    fn spawn_drain(&self) {
        if let Some(socket) = self.me.upgrade() {
            let span = self.span.clone();
            tokio::spawn(tracing::Instrument::instrument(socket.drain(), span));
        }
    }

    /// Runs queued jobs until the queue is empty.
    ///
    /// Each job runs as the connection's own work, as one run on the reader's task does: what
    /// it sends to its own client may go past the send queue's caps, and the next job waits
    /// until the writer took what filled them (so that the answers of a burst of events whose
    /// handlers wait are written, not refused).
    async fn drain(self: Arc<Self>) {
        loop {
            let job = {
                let mut queue = self.queue.lock();
                match queue.jobs.pop_front() {
                    Some(job) => {
                        queue.release(job.bytes);
                        job
                    }
                    None => {
                        queue.draining = false;
                        return;
                    }
                }
            };
            self.conn.until_unblocked().await;
            let own = OwnWork {
                conn: &self.conn,
                future: job.future,
            };
            if AssertUnwindSafe(own).catch_unwind().await.is_err() {
                tracing::error!("a handler panicked");
            }
        }
    }
}

/// A job polled as its connection's own work ([`EngineSocket::as_own_work`]).
struct OwnWork<'a> {
    conn: &'a EngineSocket<Connection>,
    future: BoxFuture,
}

impl std::future::Future for OwnWork<'_> {
    type Output = ();

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        let this = self.get_mut();
        this.conn.as_own_work(|| this.future.as_mut().poll(cx))
    }
}

/// A handler run waiting in a socket's queue, with the size of the event it handles.
struct Job {
    future: BoxFuture,
    bytes: usize,
}

/// The handler runs waiting in a socket's queue.
#[derive(Default)]
pub(super) struct Queue {
    jobs: VecDeque<Job>,
    events: usize,
    bytes: usize,
    /// A task is running the jobs.
    draining: bool,
    /// The socket left: nothing more is queued.
    pub(super) closed: bool,
}

impl Queue {
    fn admit(&mut self, bytes: usize) -> bool {
        if self.events >= MAX_PENDING_EVENTS || self.bytes + bytes > MAX_PENDING_BYTES {
            return false;
        }
        self.events += 1;
        self.bytes += bytes;
        true
    }

    fn release(&mut self, bytes: usize) {
        self.events = self.events.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub(bytes);
    }
}
