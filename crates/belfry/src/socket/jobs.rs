//! A socket's handler queue. By default, as in Node, an event's handler starts when the event
//! arrives (in arrival order: what it does before its first wait runs before the next event's
//! handler starts) and later events do not wait for it: a handler that waits goes on on a task
//! of its own. At most `max_handlers_in_flight` of them wait at once; past that, events wait
//! in the queue, and once as many wait, the connection is not read. The connect and disconnect handlers, and every
//! handler of a namespace with serial handlers, run one at a time: each waits for the one
//! before, on a task of the socket's own that ends when the queue is empty.
//!
//! A job is first run on the reader's task when nothing is ahead of it (most finish without
//! waiting, and then no task starts at all).

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
    /// Queues a job behind the socket's pending handlers; it runs alone (the jobs after it
    /// wait for it to finish).
    pub(crate) fn enqueue(&self, future: BoxFuture) {
        self.enqueue_sized(0, false, Run::Alone, |_| Some(future));
    }

    /// Runs the connect handler's `future` (queued first: nothing is queued before it) on the
    /// caller's task as far as it goes without waiting, like an event's handler: a handler
    /// that only registers listeners starts no task. The socket's events wait for it.
    pub(crate) fn start_connect_handler(&self, future: BoxFuture) {
        self.enqueue_sized(0, true, Run::Alone, |_| Some(future));
    }

    /// How an event's handlers run in this socket's namespace.
    pub(super) fn event_run(&self) -> Run {
        if self.ns.serial_handlers() {
            Run::Alone
        } else {
            Run::Concurrently
        }
    }

    /// Queues a job for an event of `bytes` bytes. A client whose events pile up past
    /// [`MAX_PENDING_EVENTS`] or [`MAX_PENDING_BYTES`] is cut off as a flood.
    ///
    /// Jobs start in order, on a task started when a job arrives at an idle queue and ending
    /// when the queue is empty: an idle socket holds no task. A job that runs [`Run::Alone`]
    /// holds the queue until it finishes; one that runs [`Run::Concurrently`] holds it until
    /// it first waits, then goes on on a task of its own (at most `max_handlers_in_flight` at
    /// once: at the bound the queue waits for one to finish, and once as many wait, the
    /// connection is not read).
    /// With `inline`, a job that nothing is ahead of is first run right here, by the caller
    /// (which must hold no lock a handler could want): most handlers finish without waiting,
    /// and then no task is started at all.
    ///
    /// `job(now)` makes the job: `now` when it runs at once (it may do its synchronous start
    /// itself and return what is left, or nothing), else to be queued.
    pub(super) fn enqueue_sized(
        &self,
        bytes: usize,
        inline: bool,
        run: Run,
        job: impl FnOnce(bool) -> Option<BoxFuture>,
    ) {
        let max = self.ns.max_handlers_in_flight();
        let start_drain = {
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
            let free = !queue.draining
                && queue.jobs.is_empty()
                && (run == Run::Alone || queue.in_flight < max);
            if !(free && inline) {
                if let Some(future) = job(false) {
                    queue.jobs.push_back(Job { future, bytes, run });
                } else {
                    queue.release(bytes);
                }
                // Behind a handler that waits for a place in flight, the queue is started again
                // by the handler that finishes next.
                let blocked = queue
                    .jobs
                    .front()
                    .is_some_and(|job| job.run == Run::Concurrently)
                    && queue.in_flight >= max;
                self.update_pause(&mut queue, max);
                !blocked && !std::mem::replace(&mut queue.draining, true)
            } else {
                queue.release(bytes);
                queue.draining = true;
                drop(queue);
                let Some(rest) = self.run_inline(job) else {
                    return self.finish_inline();
                };
                queue = self.queue.lock();
                match run {
                    Run::Alone => {
                        queue.jobs.push_front(Job {
                            future: rest,
                            bytes: 0,
                            run,
                        });
                        true
                    }
                    Run::Concurrently => {
                        self.detach(&mut queue, rest, max);
                        queue.draining = !queue.jobs.is_empty();
                        queue.draining
                    }
                }
            }
        };
        if start_drain {
            self.spawn_drain();
        }
    }

    /// Lets a started handler that waits go on on a task of its own, counted in flight (the
    /// connection is not read while the count and the events waiting are both at `max`).
    fn detach(&self, queue: &mut Queue, future: BoxFuture, max: usize) {
        queue.in_flight += 1;
        self.update_pause(queue, max);
        let Some(socket) = self.me.upgrade() else {
            return;
        };
        let span = self.span.clone();
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                let own = OwnWork::new(&socket.conn, future);
                if AssertUnwindSafe(own).catch_unwind().await.is_err() {
                    tracing::error!("a handler panicked");
                }
                socket.handler_finished();
            },
            span,
        ));
    }

    /// A handler in flight finished: reading resumes below the bound, and the events that
    /// waited for a free place start.
    fn handler_finished(&self) {
        let max = self.ns.max_handlers_in_flight();
        let start_drain = {
            let mut queue = self.queue.lock();
            queue.in_flight -= 1;
            self.update_pause(&mut queue, max);
            !queue.jobs.is_empty() && !std::mem::replace(&mut queue.draining, true)
        };
        if start_drain {
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

    /// Pauses the connection's reading while this socket has `max` handlers in flight and `max`
    /// events waiting for a place (so acks and heartbeats are still read while handlers merely
    /// wait), and takes the pause back once either is below.
    fn update_pause(&self, queue: &mut Queue, max: usize) {
        let full = queue.in_flight >= max && queue.jobs.len() >= max;
        if full != queue.reads_paused {
            queue.reads_paused = full;
            self.conn.pause_reading(full);
        }
    }

    /// The socket left: its events not started yet are dropped (their handlers would run for a
    /// socket that is gone, and they would hold its disconnect handlers back), and a pause of
    /// the connection's reading taken by this socket is taken back.
    pub(super) fn discard_pending_events(&self) {
        let mut queue = self.queue.lock();
        let Queue { jobs, .. } = &mut *queue;
        let dropped: Vec<Job> = std::mem::take(jobs).into_iter().collect();
        for job in &dropped {
            queue.release(job.bytes);
        }
        if queue.reads_paused {
            queue.reads_paused = false;
            self.conn.pause_reading(false);
        }
        drop(queue);
        // Dropped outside the lock: a handler's future may hold what another lock guards.
        drop(dropped);
    }

    /// Runs queued jobs until the queue is empty, or until the next one would be a handler in
    /// flight past the bound (the handler that finishes next starts the queue again).
    ///
    /// Each job runs as the connection's own work, as one run on the reader's task does: what
    /// it sends to its own client may go past the send queue's caps, and the next job waits
    /// until the writer took what filled them (so that the answers of a burst of events whose
    /// handlers wait are written, not refused).
    async fn drain(self: Arc<Self>) {
        let max = self.ns.max_handlers_in_flight();
        loop {
            let job = {
                let mut queue = self.queue.lock();
                let full = queue.in_flight >= max;
                match queue.jobs.pop_front() {
                    Some(job) if job.run == Run::Concurrently && full => {
                        queue.jobs.push_front(job);
                        queue.draining = false;
                        return;
                    }
                    Some(job) => {
                        queue.release(job.bytes);
                        self.update_pause(&mut queue, max);
                        job
                    }
                    None => {
                        queue.draining = false;
                        return;
                    }
                }
            };
            self.conn.until_unblocked().await;
            let mut future = job.future;
            match job.run {
                Run::Alone => {
                    let own = OwnWork::new(&self.conn, future);
                    if AssertUnwindSafe(own).catch_unwind().await.is_err() {
                        tracing::error!("a handler panicked");
                    }
                }
                Run::Concurrently => {
                    // Started here, in its turn (the writer has taken what held the queue);
                    // what waits goes on on its own task.
                    let started = std::panic::catch_unwind(AssertUnwindSafe(|| {
                        self.conn.as_own_work(|| {
                            belfry_engine::inline::poll_once(future.as_mut()).is_pending()
                        })
                    }));
                    match started {
                        Ok(true) => {
                            let mut queue = self.queue.lock();
                            self.detach(&mut queue, future, max);
                        }
                        Ok(false) => {}
                        Err(_) => tracing::error!("a handler panicked"),
                    }
                }
            }
        }
    }
}

/// A job polled as its connection's own work ([`EngineSocket::as_own_work`]). While the
/// connection's own work holds its send queue at the caps, the job is not resumed: it waits for
/// the writer first, so that handlers in flight that answer together do not go past what the
/// queue takes (a burst of events whose handlers wait gets every answer).
struct OwnWork<'a> {
    conn: &'a EngineSocket<Connection>,
    future: BoxFuture,
    /// The wait for the writer, while the send queue is held at its caps.
    unblocked: Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>>>,
}

impl<'a> OwnWork<'a> {
    fn new(conn: &'a EngineSocket<Connection>, future: BoxFuture) -> Self {
        OwnWork {
            conn,
            future,
            unblocked: None,
        }
    }
}

impl std::future::Future for OwnWork<'_> {
    type Output = ();

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        let this = self.get_mut();
        loop {
            if let Some(unblocked) = &mut this.unblocked {
                std::task::ready!(unblocked.as_mut().poll(cx));
                this.unblocked = None;
            }
            if !this.conn.backlogged() || this.conn.is_closed() {
                return this.conn.as_own_work(|| this.future.as_mut().poll(cx));
            }
            this.unblocked = Some(Box::pin(this.conn.until_unblocked()));
        }
    }
}

/// How a job runs with respect to the jobs after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Run {
    /// The jobs after it wait until it finishes.
    Alone,
    /// The jobs after it wait until it first waits (an event's handlers, as in Node).
    Concurrently,
}

/// A handler run waiting in a socket's queue, with the size of the event it handles.
struct Job {
    future: BoxFuture,
    bytes: usize,
    run: Run,
}

/// The handler runs waiting in a socket's queue.
#[derive(Default)]
pub(super) struct Queue {
    jobs: VecDeque<Job>,
    events: usize,
    bytes: usize,
    /// A task is running the jobs (or the caller is running one inline).
    draining: bool,
    /// Handlers started that wait, each on a task of its own.
    in_flight: usize,
    /// The connection's reading is paused: `in_flight` is at the bound.
    reads_paused: bool,
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
