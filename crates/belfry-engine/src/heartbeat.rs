//! Every Engine.IO v4 session's heartbeat, on one task: when each ping is due, and when each
//! pong is.
//!
//! Each session needs two timers per ping: the ping's, and the pong's deadline. As tokio timers,
//! they would live in a task per session, and each firing would touch that task's memory, long
//! untouched between two pings, when the wheel unlinks the entry. Here both kinds wait in two
//! queues of small entries, and only a ping that is due touches its session, to queue the ping.
//!
//! Every ping is due `ping_interval` after the session opened or after its last pong, and every
//! pong `ping_timeout` after its ping was due or after the packet that extended the wait: one
//! delay per queue, added to the time of the push (read under the queues' lock) or to a due time
//! already passed, so each queue is in due order as it is pushed, without sorting. (A deadline
//! pushed by the driver for a ping it serves late can be earlier than one an extension pushed
//! just before it: that entry waits behind the other, late by at most the driver's own
//! lateness. Likewise a deadline pushed for a ping sent early, below, is counted from the
//! ping's due time: an extension pushed just before can wait behind it, late by at most that
//! much.)
//!
//! Whenever the driver wakes, it sends every ping due within a thousandth of the ping interval
//! from then ([`PING_BATCH`]): sessions that connected together are pinged together, in one
//! wake-up rather than one per millisecond's few.
//!
//! An entry names its session by a slot, and by the slot's epoch when it was pushed: the epoch
//! moves on whenever the entry waiting for the slot no longer holds (a pong came, the wait was
//! extended, the session ended), so a stale entry is dropped without touching its session.
//! A session has at most one entry that holds.

use std::{
    collections::VecDeque,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use parking_lot::Mutex;
use tokio::{sync::Notify, time::Instant};

use crate::{CloseReason, Socket, slots::Slots};

/// A ping due within this fraction of the ping interval after the driver wakes is sent then
/// (25 ms early at most with the default 25 s): a client only looks at how long it waited since
/// the last ping, against `ping_interval + ping_timeout`.
const PING_BATCH: u32 = 1000;

/// No ping is out (or the client pings: Engine.IO v3).
pub(crate) const IDLE: u8 = 0;
/// A ping is out; no packet has come since.
pub(crate) const AWAITING: u8 = 1;
/// A ping is out and another packet came: the wait for the pong was extended, once.
pub(crate) const REFRESHED: u8 = 2;

/// The heartbeats of one engine's v4 sessions.
pub(crate) struct Heartbeats<D> {
    ping_interval: Duration,
    ping_timeout: Duration,
    state: Mutex<State<D>>,
    /// Wakes the driver when an entry is due before the time it sleeps until.
    wake: Notify,
}

struct State<D> {
    sessions: Slots<Arc<Socket<D>>>,
    /// `(due, slot, epoch)`: pings to send.
    pings: VecDeque<Entry>,
    /// `(due, slot, epoch)`: pongs awaited.
    deadlines: VecDeque<Entry>,
    /// When the driver sleeps until, set as it goes to sleep: `None` while it waits for a push
    /// (and before its first sleep). A push due earlier wakes it.
    armed: Option<Instant>,
    /// The driver task runs.
    running: bool,
}

#[derive(Clone, Copy)]
struct Entry {
    due: Instant,
    slot: u32,
    epoch: u32,
}

/// `at + delay`, or a time too far to come for a delay too long to add (a configured interval
/// of centuries).
fn after(at: Instant, delay: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    at.checked_add(delay)
        .or_else(|| at.checked_add(FAR))
        .unwrap_or(at)
}

impl<D> State<D> {
    /// The slot's session, if `entry` still holds for it.
    fn holds(&self, entry: &Entry) -> Option<&Arc<Socket<D>>> {
        self.sessions.get(entry.slot, entry.epoch)
    }

    /// Makes the waiting entry of `socket`'s slot stale: the slot and its new epoch. `None`
    /// when the slot is not, or no longer, the socket's (a session that ended, its slot maybe
    /// taken by another since).
    fn bump(&mut self, socket: &Socket<D>) -> Option<(u32, u32)> {
        let slot = socket.beat_slot.load(Ordering::Relaxed);
        let held = self.sessions.value(slot)?;
        if !std::ptr::eq(Arc::as_ptr(held), socket) {
            return None;
        }
        Some((slot, self.sessions.bump(slot)?))
    }

    /// When the first entry that still holds is due. Those in front of it that no longer hold
    /// go now rather than when due, so that the driver sleeps until a ping or a pong still
    /// awaited as it goes to sleep: a deadline is usually answered long before it is due, and
    /// a batch of pings spreads its deadlines over the batch's window, each millisecond of
    /// which would otherwise wake it. (A deadline answered after the driver went to sleep
    /// still wakes it once; the answered ones behind it go then.)
    fn next_due(&mut self) -> Option<Instant> {
        let named = |entry: &Entry| (entry.slot, entry.epoch);
        let ping = self.sessions.first_holding(&mut self.pings, named);
        let deadline = self.sessions.first_holding(&mut self.deadlines, named);
        match (ping, deadline) {
            (Some(a), Some(b)) => Some(a.due.min(b.due)),
            (a, b) => a.or(b).map(|entry| entry.due),
        }
    }
}

impl<D: Send + Sync + 'static> Heartbeats<D> {
    pub(crate) fn new(ping_interval: Duration, ping_timeout: Duration) -> Self {
        Heartbeats {
            ping_interval,
            ping_timeout,
            state: Mutex::new(State {
                sessions: Slots::default(),
                pings: VecDeque::new(),
                deadlines: VecDeque::new(),
                armed: None,
                running: false,
            }),
            wake: Notify::new(),
        }
    }

    /// Starts a session's heartbeat: its first ping is due a ping interval from now.
    pub(crate) fn start(self: &Arc<Self>, socket: &Arc<Socket<D>>) {
        let mut state = self.state.lock();
        let due = after(Instant::now(), self.ping_interval);
        let (slot, epoch) = state.sessions.insert(socket.clone());
        socket.beat_slot.store(slot, Ordering::Relaxed);
        state.pings.push_back(Entry { due, slot, epoch });
        self.arm(state, due);
    }

    /// Ends a session's heartbeat, once it closed; its waiting entry turns stale.
    pub(crate) fn stop(&self, socket: &Socket<D>) {
        let mut state = self.state.lock();
        let Some((slot, epoch)) = state.bump(socket) else {
            return;
        };
        state.sessions.remove(slot, epoch);
        socket.beat_slot.store(u32::MAX, Ordering::Relaxed);
        socket.heartbeat.store(IDLE, Ordering::Release);
        // A driver waiting for a push with no session left ends.
        if state.armed.is_none() && state.sessions.is_empty() {
            drop(state);
            self.wake.notify_one();
        }
    }

    /// The client answered the ping: the next one is due a ping interval from now. A pong with
    /// no ping out is ignored.
    pub(crate) fn ponged(self: &Arc<Self>, socket: &Socket<D>) {
        let answered = [AWAITING, REFRESHED].into_iter().any(|from| {
            socket
                .heartbeat
                .compare_exchange(from, IDLE, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        });
        if !answered {
            return;
        }
        if socket
            .full_for(Instant::now())
            .is_some_and(|full| full >= self.ping_timeout)
        {
            tracing::debug!("send queue full for longer than the ping timeout");
            socket.close_with(CloseReason::TransportError);
            return;
        }
        let mut state = self.state.lock();
        let due = after(Instant::now(), self.ping_interval);
        if let Some((slot, epoch)) = state.bump(socket) {
            state.pings.push_back(Entry { due, slot, epoch });
            self.arm(state, due);
        }
    }

    /// The client sent a packet other than a pong: while a pong is awaited, the first such
    /// packet extends the wait to a whole ping timeout from now (Node's
    /// `hasRefreshedPingTimeout`), once per ping.
    pub(crate) fn heard_from(self: &Arc<Self>, socket: &Socket<D>) {
        if socket.heartbeat.load(Ordering::Relaxed) != AWAITING
            || socket
                .heartbeat
                .compare_exchange(AWAITING, REFRESHED, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let mut state = self.state.lock();
        // A pong that came meanwhile answered the ping: nothing to extend.
        if socket.heartbeat.load(Ordering::Acquire) != REFRESHED {
            return;
        }
        let due = after(Instant::now(), self.ping_timeout);
        if let Some((slot, epoch)) = state.bump(socket) {
            state.deadlines.push_back(Entry { due, slot, epoch });
            self.arm(state, due);
        }
    }

    /// After a push due at `due`: wakes the driver if it sleeps past it, or starts it.
    fn arm(self: &Arc<Self>, mut state: parking_lot::MutexGuard<'_, State<D>>, due: Instant) {
        if !std::mem::replace(&mut state.running, true) {
            drop(state);
            tokio::spawn(self.clone().drive());
        } else if state.armed.is_none_or(|armed| due < armed) {
            state.armed = None;
            drop(state);
            self.wake.notify_one();
        }
    }

    /// Sends each ping when due and closes each session whose pong is late; ends when no
    /// session has a heartbeat (or if it panics, or its runtime drops it: the next push then
    /// starts another).
    async fn drive(self: Arc<Self>) {
        let mut running = Running {
            heartbeats: &self,
            ended: false,
        };
        let mut ping: Vec<Arc<Socket<D>>> = Vec::new();
        let mut late: Vec<Arc<Socket<D>>> = Vec::new();
        loop {
            let (next, done) = {
                let mut state = self.state.lock();
                let now = Instant::now();
                // Pings due a little later go with these: one wake-up of this task (and of the
                // worker's thread) for a batch rather than for each millisecond's few.
                let horizon = after(now, self.ping_interval / PING_BATCH);
                while let Some(entry) = state.pings.front().copied().filter(|e| e.due <= horizon) {
                    state.pings.pop_front();
                    if let Some(socket) = state.holds(&entry) {
                        ping.push(socket.clone());
                        // One deadline from the ping's due time, not from when this task
                        // woke, which may be a millisecond late: the pong is due
                        // `ping_interval + ping_timeout` after the last one, as in Node.
                        state.deadlines.push_back(Entry {
                            due: after(entry.due, self.ping_timeout),
                            ..entry
                        });
                    }
                }
                while let Some(entry) = state.deadlines.front().copied().filter(|e| e.due <= now) {
                    state.deadlines.pop_front();
                    if let Some(socket) = state.holds(&entry) {
                        late.push(socket.clone());
                    }
                }
                let next = state.next_due();
                // No entry and no session: the next session starts a new driver.
                let done = next.is_none() && state.sessions.is_empty();
                if done {
                    state.running = false;
                    running.ended = true;
                }
                state.armed = next;
                (next, done)
            };
            for socket in late.drain(..) {
                socket.close_with(CloseReason::PingTimeout);
            }
            for socket in ping.drain(..) {
                // Awaiting before the ping goes: its pong can only come after.
                socket.heartbeat.store(AWAITING, Ordering::Release);
                socket.queue_ping();
            }
            match next {
                Some(next) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(next) => {}
                        () = self.wake.notified() => {}
                    }
                }
                None if done => return,
                None => self.wake.notified().await,
            }
        }
    }
}

/// Resets `running` if the driver ends otherwise than by returning (a panic, or its runtime
/// dropping it), so that the next push starts another.
struct Running<'a, D> {
    heartbeats: &'a Heartbeats<D>,
    /// It returned, `running` reset under the lock where it saw that nothing was left.
    ended: bool,
}

impl<D> Drop for Running<'_, D> {
    fn drop(&mut self) {
        if !self.ended {
            self.heartbeats.state.lock().running = false;
        }
    }
}

/// A v3 client pings instead: it must do so within `ping_interval + ping_timeout` of its
/// previous ping (of the handshake, at first). Returns after closing the session when it did
/// not.
pub(crate) async fn v3_heartbeat<D>(deadline: Duration, socket: &Socket<D>) {
    while tokio::time::timeout(deadline, socket.pong.notified())
        .await
        .is_ok()
    {}
    socket.close_with(CloseReason::PingTimeout);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::TransportType;

    type Beats = Arc<Heartbeats<()>>;

    /// Heartbeats with a ping interval of 100 ms and a ping timeout of 50 ms.
    fn heartbeats() -> Beats {
        Arc::new(Heartbeats::new(
            Duration::from_millis(100),
            Duration::from_millis(50),
        ))
    }

    fn session() -> Arc<Socket<()>> {
        let (parts, ()) = http::Request::new(()).into_parts();
        Arc::new(Socket::new(
            crate::Sid::random(),
            parts,
            TransportType::Polling,
            4,
            16,
            1 << 16,
            (),
        ))
    }

    /// A session with its heartbeat running, and when it started.
    fn beating(beats: &Beats) -> (Arc<Socket<()>>, Instant) {
        let socket = session();
        beats.start(&socket);
        (socket, Instant::now())
    }

    /// Moves the paused clock to `when` and lets the driver run.
    async fn advance_to(when: Instant) {
        tokio::time::advance(when.saturating_duration_since(Instant::now())).await;
        tokio::task::yield_now().await;
    }

    /// Ends `first` and starts a session that takes its slot.
    fn next_in_slot(beats: &Beats, first: &Socket<()>) -> Arc<Socket<()>> {
        let slot = first.beat_slot.load(Ordering::Relaxed);
        first.close_with(CloseReason::TransportClose);
        beats.stop(first);
        let second = session();
        beats.start(&second);
        assert_eq!(slot, second.beat_slot.load(Ordering::Relaxed));
        second
    }

    fn awaiting(socket: &Socket<()>) -> bool {
        socket.heartbeat.load(Ordering::Acquire) != IDLE
    }

    /// The pong is due `ping_interval + ping_timeout` after the ping was due, however late the
    /// ping's own timer woke the heartbeat (a second timer started then would fire that much
    /// later, and a client polling on time would still find its session open).
    #[tokio::test(start_paused = true)]
    async fn ping_timeout_counts_from_when_the_ping_was_due() {
        let beats = heartbeats();
        let (socket, start) = beating(&beats);
        tokio::task::yield_now().await;
        // The ping's timer wakes the heartbeat 0.9 ms late.
        advance_to(start + Duration::from_micros(100_900)).await;
        assert!(awaiting(&socket));
        assert!(!socket.is_closed());
        advance_to(start + Duration::from_millis(150)).await;
        assert_eq!(socket.close_reason(), Some(CloseReason::PingTimeout));
    }

    /// As Node's `hasRefreshedPingTimeout`: the first packet other than a pong that arrives
    /// while the pong is awaited gives the client a whole ping timeout from then, once.
    #[tokio::test(start_paused = true)]
    async fn a_packet_while_the_pong_is_awaited_extends_the_wait_once() {
        let beats = heartbeats();
        let (socket, start) = beating(&beats);
        let at = |ms| start + Duration::from_millis(ms);
        tokio::task::yield_now().await;
        // The ping goes out at 100 ms; a message at 130 ms, another at 160 ms.
        advance_to(at(130)).await;
        beats.heard_from(&socket);
        advance_to(at(160)).await;
        beats.heard_from(&socket);
        // Not at 150 ms (the first deadline): at 180 ms, 50 ms after the first message only.
        advance_to(at(179)).await;
        assert!(!socket.is_closed());
        advance_to(at(181)).await;
        assert_eq!(socket.close_reason(), Some(CloseReason::PingTimeout));
    }

    /// Pings due within a thousandth of the ping interval (100 µs here) after the one that woke
    /// the driver go out with it: one wake-up for the batch, not one for each.
    #[tokio::test(start_paused = true)]
    async fn pings_due_close_together_go_out_together() {
        let beats = heartbeats();
        let (first, start) = beating(&beats);
        tokio::time::advance(Duration::from_micros(60)).await;
        let (near, _) = beating(&beats);
        tokio::time::advance(Duration::from_micros(140)).await;
        let (far, _) = beating(&beats);
        tokio::task::yield_now().await;
        advance_to(start + Duration::from_millis(100)).await;
        assert!(awaiting(&first));
        assert!(awaiting(&near), "due 60 µs later: in the batch");
        assert!(!awaiting(&far), "due 200 µs later: not in the batch");
        // tokio's timers fire on whole milliseconds.
        advance_to(start + Duration::from_millis(101)).await;
        assert!(awaiting(&far));
    }

    /// A deadline whose pong came before the driver went to sleep does not wake it: it goes
    /// when the driver wakes for anything else, and the driver sleeps until the first entry
    /// that still holds.
    #[tokio::test(start_paused = true)]
    async fn an_answered_deadline_does_not_wake_the_driver() {
        let beats = heartbeats();
        let (first, start) = beating(&beats);
        let at = |ms| start + Duration::from_millis(ms);
        tokio::task::yield_now().await;
        advance_to(at(10)).await;
        let (second, _) = beating(&beats);
        advance_to(at(100)).await;
        assert!(awaiting(&first));
        advance_to(at(105)).await;
        beats.ponged(&first);
        // The second's ping wakes the driver; the first's deadline (150 ms) was answered.
        advance_to(at(110)).await;
        assert!(awaiting(&second));
        assert_eq!(
            beats.state.lock().armed,
            Some(at(160)),
            "the second's deadline"
        );
        beats.ponged(&second);
        advance_to(at(150)).await;
        assert_eq!(beats.state.lock().armed, Some(at(160)));
        // Woken at 160 ms for nothing that holds: next, the first's ping at 205 ms.
        advance_to(at(160)).await;
        assert_eq!(beats.state.lock().armed, Some(at(205)));
        assert!(!first.is_closed() && !second.is_closed());
    }

    /// A pong cancels the deadline, and the next ping is due a ping interval after it.
    #[tokio::test(start_paused = true)]
    async fn the_next_ping_is_due_an_interval_after_the_pong() {
        let beats = heartbeats();
        let (socket, start) = beating(&beats);
        let at = |ms| start + Duration::from_millis(ms);
        tokio::task::yield_now().await;
        advance_to(at(99)).await;
        assert!(!awaiting(&socket));
        advance_to(at(100)).await;
        assert!(awaiting(&socket));
        advance_to(at(120)).await;
        beats.ponged(&socket);
        assert!(!awaiting(&socket));
        // Past the first deadline (150 ms): open; the second ping at 220 ms, not 200 ms.
        advance_to(at(219)).await;
        assert!(!awaiting(&socket));
        assert!(!socket.is_closed());
        advance_to(at(220)).await;
        assert!(awaiting(&socket));
        advance_to(at(230)).await;
        beats.ponged(&socket);
        // A pong with no ping out changes nothing: the next ping stays at 330 ms, not 360 ms.
        advance_to(at(260)).await;
        beats.ponged(&socket);
        advance_to(at(329)).await;
        assert!(!awaiting(&socket));
        advance_to(at(330)).await;
        assert!(awaiting(&socket));
        advance_to(at(380)).await;
        assert_eq!(socket.close_reason(), Some(CloseReason::PingTimeout));
    }

    /// A session that ended, whose packets are still being read, does not act on the session
    /// that took its slot.
    #[tokio::test(start_paused = true)]
    async fn an_ended_session_leaves_the_next_in_its_slot_alone() {
        let beats = heartbeats();
        let (first, start) = beating(&beats);
        let at = |ms| start + Duration::from_millis(ms);
        tokio::task::yield_now().await;
        advance_to(at(100)).await;
        assert!(awaiting(&first));
        let second = next_in_slot(&beats, &first);
        // The first's last packet, a message read after its close, while its ping was out.
        first.heartbeat.store(AWAITING, Ordering::Release);
        beats.heard_from(&first);
        // The second is pinged at 200 ms and not closed before its own deadline.
        advance_to(at(199)).await;
        assert!(!awaiting(&second));
        advance_to(at(200)).await;
        assert!(awaiting(&second));
        advance_to(at(249)).await;
        assert!(!second.is_closed());
        advance_to(at(250)).await;
        assert_eq!(second.close_reason(), Some(CloseReason::PingTimeout));
    }

    /// The driver ends once the last session timed out and ended.
    #[tokio::test(start_paused = true)]
    async fn the_driver_ends_after_the_last_timeout() {
        let beats = heartbeats();
        let (socket, start) = beating(&beats);
        tokio::task::yield_now().await;
        advance_to(start + Duration::from_millis(150)).await;
        assert_eq!(socket.close_reason(), Some(CloseReason::PingTimeout));
        assert!(beats.state.lock().running);
        beats.stop(&socket);
        tokio::task::yield_now().await;
        assert!(!beats.state.lock().running);
    }

    /// A session's entries left in the queues do not act on the next session given its slot,
    /// and the driver ends when no session is left.
    #[tokio::test(start_paused = true)]
    async fn an_ended_sessions_entries_are_stale() {
        let beats = heartbeats();
        let (first, start) = beating(&beats);
        let at = |ms| start + Duration::from_millis(ms);
        tokio::task::yield_now().await;
        advance_to(at(10)).await;
        let second = next_in_slot(&beats, &first);
        // The first session's ping was due at 100 ms: the second's is at 110 ms.
        advance_to(at(100)).await;
        assert!(!awaiting(&second));
        advance_to(at(110)).await;
        assert!(awaiting(&second));
        beats.ponged(&second);
        second.close_with(CloseReason::TransportClose);
        beats.stop(&second);
        advance_to(at(300)).await;
        let state = beats.state.lock();
        assert!(!state.running);
        assert!(state.pings.is_empty() && state.deadlines.is_empty());
    }
}
