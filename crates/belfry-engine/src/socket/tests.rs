//! The send queue: waking the writer, the caps, the session's own work.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Wake, Waker},
};

use super::*;
use crate::Str;

/// Counts its wakes.
#[derive(Default)]
struct Count(AtomicUsize);

impl Wake for Count {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn session(transport: TransportType) -> Socket<()> {
    capped(transport, 100, 1 << 20)
}

/// A session whose queue holds at most `packets` packets and `bytes` bytes.
fn capped(transport: TransportType, packets: usize, bytes: usize) -> Socket<()> {
    let (parts, ()) = http::Request::new(()).into_parts();
    Socket::new(Sid::random(), parts, transport, 4, packets, bytes, ())
}

fn message(text: &str) -> Packet {
    Packet::Message(Str::from(text.to_owned()))
}

#[test]
fn a_waiting_websocket_writer_is_woken_once_by_what_comes() {
    let socket = session(TransportType::Websocket);
    let count = Arc::new(Count::default());
    let waker = Waker::from(count.clone());
    let mut out = Packets::default();
    // Nothing to take: the writer waits.
    assert_eq!(socket.drain_or_wait(&mut out, &waker), None);
    socket.send(message("a")).expect("open");
    socket.send(message("b")).expect("open");
    assert_eq!(
        count.0.load(Ordering::SeqCst),
        1,
        "woken once for two packets"
    );
    assert_eq!(socket.drain_or_wait(&mut out, &waker), Some(None));
    assert_eq!(out.len(), 2);
    // While the writer works (it is not waiting), a packet does not wake it: it looks at
    // the queue before it waits again.
    socket.writer_idle.store(false, Ordering::Release);
    out.clear();
    socket.send(message("c")).expect("open");
    assert_eq!(count.0.load(Ordering::SeqCst), 1);
    assert_eq!(socket.drain_or_wait(&mut out, &waker), Some(None));
    assert_eq!(out.len(), 1);
    out.clear();
    // Heartbeats and the close wake it too.
    assert_eq!(socket.drain_or_wait(&mut out, &waker), None);
    socket.queue_ping();
    assert_eq!(count.0.load(Ordering::SeqCst), 2);
    assert_eq!(socket.drain_or_wait(&mut out, &waker), Some(None));
    assert!(matches!(out.pop_front(), Some(Packet::Ping)));
    assert_eq!(socket.drain_or_wait(&mut out, &waker), None);
    socket.close();
    assert_eq!(count.0.load(Ordering::SeqCst), 3);
    assert_eq!(
        socket.drain_or_wait(&mut out, &waker),
        Some(Some(CloseReason::ForcedClose))
    );
}

/// The session's own work (its handlers answering the client) may fill the queue past its
/// caps, up to twice them, and pauses once it is at them; others get `Full` at the caps and
/// never pause the session.
#[test]
fn the_own_work_goes_past_the_caps_and_pauses() {
    let socket = session(TransportType::Websocket);
    for _ in 0..100 {
        socket.send(message("x")).expect("within the caps");
    }
    assert!(
        !socket.backlogged(),
        "others' sends do not pause the reader"
    );
    assert_eq!(socket.send(message("x")), Err(SendError::Full));
    let mut sent = 0;
    socket.as_own_work(|| {
        while socket.send(message("x")).is_ok() {
            sent += 1;
        }
    });
    assert_eq!(sent, 100, "up to twice the caps");
    assert!(socket.backlogged());
    let mut out = Packets::default();
    assert_eq!(socket.drain_or_wait(&mut out, Waker::noop()), Some(None));
    assert_eq!(out.len(), 200);
    assert!(!socket.backlogged(), "taken: the reader goes on");
}

/// The same bound in bytes: twice the byte cap for the session's own work.
#[test]
fn the_own_work_goes_past_the_byte_cap_up_to_twice_it() {
    let socket = capped(TransportType::Websocket, 1000, 100);
    // 10 bytes on the wire each: "4" and nine characters.
    let ten = || message("123456789");
    let mut sent = 0;
    while socket.send(ten()).is_ok() {
        sent += 1;
    }
    assert_eq!(sent, 10);
    assert!(!socket.backlogged());
    socket.as_own_work(|| {
        while socket.send(ten()).is_ok() {
            sent += 1;
        }
    });
    assert_eq!(sent, 20, "twice the byte cap");
    assert!(socket.backlogged());
}

#[test]
fn one_packet_at_a_time_needs_no_new_queue_buffer() {
    let socket = session(TransportType::Websocket);
    let waker = Waker::noop();
    let mut out = Packets::default();
    socket.send(message("first")).expect("open");
    assert_eq!(socket.drain_or_wait(&mut out, waker), Some(None));
    out.clear();
    for text in ["a", "b", "c"] {
        // The writer's emptied buffer goes back to the queue at each drain: both keep one
        // of a single packet, and a reply fits without an allocation.
        socket.send(message(text)).expect("open");
        assert_eq!(socket.state.lock().queue.own_capacity(), 1);
        assert_eq!(socket.drain_or_wait(&mut out, waker), Some(None));
        assert_eq!(
            out.pop_front().map(|p| p.encode_text()),
            Some(Some(format!("4{text}")))
        );
        assert_eq!(out.own_capacity(), 1);
    }
    // A burst: the next buffer is sized for the last batch at once.
    for text in ["a", "b", "c", "d", "e"] {
        socket.send(message(text)).expect("open");
    }
    assert_eq!(socket.drain_or_wait(&mut out, waker), Some(None));
    assert_eq!(out.len(), 5);
    // The writer keeps no buffer larger than one packet.
    out = Packets::default();
    socket.send(message("f")).expect("open");
    assert!(socket.state.lock().queue.own_capacity() >= 5);
    assert_eq!(socket.drain_or_wait(&mut out, waker), Some(None));
    assert_eq!(out.len(), 1);
    // A session that sends only its own packets holds no buffer for shared ones.
    assert_eq!(out.shared_capacity(), 0);
    assert_eq!(socket.state.lock().queue.shared_capacity(), 0);
}

/// A burst of broadcasts sizes the next burst's buffer of shared groups, apart from the own
/// packets' one-entry buffer.
#[test]
fn a_burst_of_shared_groups_sizes_the_next_one() {
    let socket = session(TransportType::Websocket);
    let waker = Waker::noop();
    let shared = SharedPackets::one(message("all"));
    let mut out = Packets::default();
    for _ in 0..7 {
        socket.send_shared_with(&shared, true).expect("open");
    }
    assert_eq!(socket.drain_or_wait(&mut out, waker), Some(None));
    assert_eq!(out.len(), 7);
    out = Packets::default();
    socket.send_shared_with(&shared, true).expect("open");
    assert!(socket.state.lock().queue.shared_capacity() >= 7);
    socket.send(message("own")).expect("open");
    assert!(socket.state.lock().queue.own_capacity() < 7);
    assert_eq!(socket.drain_or_wait(&mut out, waker), Some(None));
    assert_eq!(out.len(), 2);
}

/// A broadcast's shared packets queue in order with the session's own, count towards the caps
/// in packets and bytes, and go out as a polling payload too.
#[test]
fn shared_packets_queue_in_order_within_the_caps() {
    let socket = capped(TransportType::Websocket, 4, 1 << 20);
    let shared = SharedPackets::new(vec![message("s1"), message("s2")]).expect("two");
    socket.send(message("a")).expect("open");
    socket
        .send_shared_with(&shared, true)
        .expect("within the caps");
    socket.send(message("b")).expect("open");
    assert_eq!(
        socket.send_shared_with(&shared, true),
        Err(SendError::Full),
        "six packets are past the cap of four"
    );
    let mut out = Packets::default();
    assert_eq!(socket.drain_or_wait(&mut out, Waker::noop()), Some(None));
    let texts: Vec<_> = out
        .into_vec()
        .iter()
        .map(|p| p.encode_text().unwrap_or_default())
        .collect();
    assert_eq!(texts, ["4a", "4s1", "4s2", "4b"]);

    // Bytes: "4s1" and "4s2" are 6 on the wire.
    let socket = capped(TransportType::Polling, 100, 10);
    socket
        .send_shared_with(&shared, true)
        .expect("within the byte cap");
    assert_eq!(socket.send_shared_with(&shared, true), Err(SendError::Full));
    socket.send(message("xyz")).expect("10 bytes");
    let drained = socket.drain(true);
    assert_eq!(
        drained.packets,
        [message("s1"), message("s2"), message("xyz")]
    );
}

/// Pauses of reading count: the sockets of two namespaces on one connection each pause, and
/// reading resumes only once both took their pause back.
#[test]
fn pauses_of_reading_count() {
    let socket = session(TransportType::Websocket);
    assert!(!socket.reads_paused());
    socket.pause_reading(true);
    socket.pause_reading(true);
    socket.pause_reading(false);
    assert!(socket.reads_paused(), "one pause is still out");
    socket.pause_reading(false);
    assert!(!socket.reads_paused());
    // A pause taken back once too often does not go below none.
    socket.pause_reading(false);
    socket.pause_reading(true);
    assert!(socket.reads_paused());
}

#[tokio::test]
async fn closed_resolves_for_every_waiter_and_after_the_close() {
    use futures_util::FutureExt;

    let socket = Arc::new(session(TransportType::Websocket));
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let socket = socket.clone();
            tokio::spawn(async move { socket.closed().await })
        })
        .collect();
    // Each waiter listens before the close.
    tokio::task::yield_now().await;
    let mut waiting = std::pin::pin!(socket.closed());
    assert!(waiting.as_mut().now_or_never().is_none());
    socket.close_with(CloseReason::ForcedClose);
    assert!(waiting.as_mut().now_or_never().is_some());
    for waiter in waiters {
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("a waiter from before the close is woken")
            .unwrap();
    }
    // A waiter that comes after the close does not wait.
    assert!(socket.closed().now_or_never().is_some());
}
