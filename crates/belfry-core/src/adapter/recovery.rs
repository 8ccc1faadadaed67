//! Connection state recovery (Node's `connectionStateRecovery`, since socket.io 4.6): the
//! in-memory store of the [`LocalAdapter`](super::LocalAdapter).
//!
//! Every event broadcast without an ack and not volatile gets an *offset*, a string pushed as
//! its last argument (the client remembers the last one it saw). A socket that leaves for a
//! recoverable reason is kept as a [`Session`] for [`ConnectionStateRecovery::max_disconnection_duration`];
//! a client coming back with its private id and last offset gets the same socket id, rooms and
//! data, and the events it missed.

use std::{
    collections::{HashMap, VecDeque},
    time::{Duration, Instant},
};

use belfry_proto::{SocketId, value::Value};

use super::BroadcastOptions;
use crate::parser::{Packet, PacketData, Payload, write_header};

/// The options of connection state recovery.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use belfry_core::adapter::ConnectionStateRecovery;
///
/// let recovery = ConnectionStateRecovery::default()
///     .max_disconnection_duration(Duration::from_secs(30))
///     .skip_middlewares(false);
/// assert_eq!(recovery.get_max_disconnection_duration(), Duration::from_secs(30));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionStateRecovery {
    max_disconnection_duration: Duration,
    skip_middlewares: bool,
    max_packets: usize,
}

impl Default for ConnectionStateRecovery {
    /// Node's defaults: 2 minutes, middlewares skipped; at most 10,000 events kept.
    fn default() -> Self {
        ConnectionStateRecovery {
            max_disconnection_duration: Duration::from_secs(120),
            skip_middlewares: true,
            max_packets: 10_000,
        }
    }
}

impl ConnectionStateRecovery {
    /// How long a disconnected socket can be recovered, and how long events are kept for it
    /// (default 2 minutes).
    #[must_use]
    pub fn max_disconnection_duration(mut self, duration: Duration) -> Self {
        self.max_disconnection_duration = duration;
        self
    }

    /// Whether a recovered socket skips the namespace's connect middlewares (default `true`).
    #[must_use]
    pub fn skip_middlewares(mut self, skip: bool) -> Self {
        self.skip_middlewares = skip;
        self
    }

    /// The most events kept for clients that may come back (default 10,000; Node keeps every
    /// event of the last `max_disconnection_duration`). A client whose last offset was dropped
    /// gets a fresh socket, as when it comes back too late.
    #[must_use]
    pub fn max_packets(mut self, packets: usize) -> Self {
        self.max_packets = packets;
        self
    }

    /// See [`ConnectionStateRecovery::max_disconnection_duration`].
    pub fn get_max_disconnection_duration(&self) -> Duration {
        self.max_disconnection_duration
    }

    /// See [`ConnectionStateRecovery::skip_middlewares`].
    pub fn get_skip_middlewares(&self) -> bool {
        self.skip_middlewares
    }

    /// See [`ConnectionStateRecovery::max_packets`].
    pub fn get_max_packets(&self) -> usize {
        self.max_packets
    }
}

/// What is kept of a socket that left for a recoverable reason (Node's `SessionToPersist`).
/// Made with [`Session::new`] (`#[non_exhaustive]`).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Session {
    /// The socket id, given back to the recovered socket.
    pub sid: SocketId,
    /// The private session id the client presents to recover (Node's `pid`).
    pub pid: SocketId,
    /// The rooms the socket was in (its own included).
    pub rooms: Vec<String>,
    /// The socket's data, binary included.
    pub data: Value,
}

/// A session found again, with the events its client missed. Made with
/// [`RestoredSession::new`] (`#[non_exhaustive]`).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RestoredSession {
    /// The socket as it left.
    pub session: Session,
    /// The payloads (offsets included) of the events broadcast to the socket's rooms after the
    /// client's offset, oldest first.
    pub missed: Vec<Payload>,
}

impl Session {
    /// The session of socket `sid`, recovered with `pid`, in `rooms` (its own included), with
    /// `data`.
    pub fn new(sid: SocketId, pid: SocketId, rooms: Vec<String>, data: Value) -> Self {
        Session {
            sid,
            pid,
            rooms,
            data,
        }
    }
}

impl RestoredSession {
    /// `session` found again, with the payloads its client `missed` (oldest first).
    pub fn new(session: Session, missed: Vec<Payload>) -> Self {
        RestoredSession { session, missed }
    }
}

/// An event kept for clients that may come back.
#[derive(Debug)]
struct Stored {
    rooms: Vec<String>,
    except: Vec<String>,
    payload: Payload,
    at: Instant,
}

impl Stored {
    /// Node's `shouldIncludePacket`: for a socket in `rooms`.
    fn reaches(&self, rooms: &[String]) -> bool {
        let included = self.rooms.is_empty() || rooms.iter().any(|r| self.rooms.contains(r));
        included && !rooms.iter().any(|r| self.except.contains(r))
    }
}

/// The store: recent events by sequence number, and the sessions of departed sockets.
#[derive(Debug)]
pub(super) struct Store {
    options: ConnectionStateRecovery,
    /// Offsets are `<tag>.<seq>`: the tag, random per store, tells an offset of another server
    /// (or of this one before a restart) from ours.
    tag: String,
    /// `packets[i]` has sequence number `first + i`.
    packets: VecDeque<Stored>,
    first: u64,
    sessions: HashMap<SocketId, (Session, Instant)>,
    /// Session ids in the order they were stored, to drop expired ones.
    expiry: VecDeque<(Instant, SocketId)>,
}

impl Store {
    pub(super) fn new(options: ConnectionStateRecovery) -> Store {
        let mut tag = SocketId::random().as_str().to_owned();
        tag.truncate(8);
        Store {
            options,
            tag,
            packets: VecDeque::new(),
            first: 0,
            sessions: HashMap::new(),
            expiry: VecDeque::new(),
        }
    }

    /// Keeps `packet` if it is an event without ack broadcast without `volatile` (Node's
    /// `SessionAwareAdapter.broadcast`): returns it with its offset pushed as last argument.
    pub(super) fn store(&mut self, packet: &Packet, opts: &BroadcastOptions) -> Option<Packet> {
        let PacketData::Event { payload, ack: None } = &packet.data else {
            return None;
        };
        if opts.flags.volatile {
            return None;
        }
        let now = Instant::now();
        self.prune(now);
        let seq = self.first + self.packets.len() as u64;
        let offset = format!("{}.{seq}", self.tag);
        let payload = with_offset(&packet.ns, payload, &offset)?;
        self.packets.push_back(Stored {
            rooms: opts.rooms.clone(),
            except: opts.except.clone(),
            payload: payload.clone(),
            at: now,
        });
        if self.packets.len() > self.options.max_packets {
            self.packets.pop_front();
            self.first += 1;
        }
        Some(Packet::event(packet.ns.clone(), payload, None))
    }

    /// Keeps `session` until it expires (Node's `persistSession`).
    pub(super) fn persist(&mut self, session: Session) {
        let now = Instant::now();
        self.prune(now);
        self.expiry.push_back((now, session.pid.clone()));
        self.sessions.insert(session.pid.clone(), (session, now));
    }

    /// The session `pid` with the events after `offset` that reach its rooms (Node's
    /// `restoreSession`); `None` if the session expired or is unknown, or the offset is no longer
    /// kept. A session is restored once: it is forgotten here.
    pub(super) fn restore(&mut self, pid: &str, offset: &str) -> Option<RestoredSession> {
        self.prune(Instant::now());
        let index = offset
            .strip_prefix(self.tag.as_str())
            .and_then(|rest| rest.strip_prefix('.'))
            .and_then(|seq| seq.parse::<u64>().ok())
            .and_then(|seq| seq.checked_sub(self.first))
            .and_then(|i| usize::try_from(i).ok())
            .filter(|&i| i < self.packets.len())?;
        let (session, _) = self.sessions.remove(pid)?;
        let missed = self
            .packets
            .iter()
            .skip(index + 1)
            .filter(|stored| stored.reaches(&session.rooms))
            .map(|stored| stored.payload.clone())
            .collect();
        Some(RestoredSession { session, missed })
    }

    /// Drops the events and sessions older than the recovery window.
    fn prune(&mut self, now: Instant) {
        let window = self.options.max_disconnection_duration;
        let expired = |at: Instant| now.saturating_duration_since(at) > window;
        while self.packets.front().is_some_and(|p| expired(p.at)) {
            self.packets.pop_front();
            self.first += 1;
        }
        while let Some((at, pid)) = self.expiry.front() {
            if !expired(*at) {
                break;
            }
            // Only if the session was not stored again since.
            if self
                .sessions
                .get(pid)
                .is_some_and(|(_, stored)| stored == at)
            {
                self.sessions.remove(pid);
            }
            self.expiry.pop_front();
        }
    }

    #[cfg(test)]
    fn len(&self) -> (usize, usize) {
        (self.packets.len(), self.sessions.len())
    }
}

/// `packet` with `offset` pushed as the last argument of its event (Node's
/// `addOffsetIfNecessary`), for adapters that give events the offsets of their own store (a
/// stream entry id); `None` when `packet` is not an event without ack.
pub fn push_offset(packet: &Packet, offset: &str) -> Option<Packet> {
    let PacketData::Event { payload, ack: None } = &packet.data else {
        return None;
    };
    let payload = with_offset(&packet.ns, payload, offset)?;
    Some(Packet::event(packet.ns.clone(), payload, None))
}

/// `payload` (a JSON array) with `offset` pushed as its last element, written after the Engine.IO
/// header of its packet so that encoding shares the buffer.
fn with_offset(ns: &str, payload: &Payload, offset: &str) -> Option<Payload> {
    let array = payload.json.trim_end().strip_suffix(']')?;
    let mut text = String::with_capacity(ns.len() + payload.json.len() + offset.len() + 16);
    write_header(&mut text, "4", ns, false, None);
    let start = text.len();
    text.push_str(array);
    if !array.trim_end().ends_with('[') {
        text.push(',');
    }
    text.push('"');
    text.push_str(offset);
    text.push_str("\"]");
    let text = crate::Str::from(text);
    Some(Payload::new(
        text.slice(start..text.len()),
        payload.attachments.clone(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(json: &str) -> Packet {
        Packet::event("/", Payload::json(json.to_owned()), None)
    }

    fn to(rooms: &[&str], except: &[&str]) -> BroadcastOptions {
        BroadcastOptions {
            rooms: rooms.iter().map(|r| (*r).to_owned()).collect(),
            except: except.iter().map(|r| (*r).to_owned()).collect(),
            ..BroadcastOptions::default()
        }
    }

    fn session(pid: &str, rooms: &[&str]) -> Session {
        Session {
            sid: SocketId::from("sid"),
            pid: SocketId::from(pid),
            rooms: rooms.iter().map(|r| (*r).to_owned()).collect(),
            data: Value::from_iter([("n", Value::from(1))]),
        }
    }

    fn offset_of(packet: &Packet) -> String {
        let PacketData::Event { payload, .. } = &packet.data else {
            panic!("an event");
        };
        let args: Vec<serde_json::Value> = serde_json::from_str(&payload.json).unwrap();
        args.last().unwrap().as_str().unwrap().to_owned()
    }

    fn json_of(payload: &Payload) -> serde_json::Value {
        serde_json::from_str(&payload.json).unwrap()
    }

    #[test]
    fn events_get_offsets_and_missed_ones_reach_the_sessions_rooms() {
        let mut store = Store::new(ConnectionStateRecovery::default());
        let first = store.store(&event(r#"["a"]"#), &to(&[], &[])).unwrap();
        let offset = offset_of(&first);
        assert!(offset.starts_with(&store.tag));
        store.persist(session("p1", &["sid", "r1"]));
        store
            .store(&event(r#"["b",1]"#), &to(&["r1"], &[]))
            .unwrap();
        store.store(&event(r#"["c"]"#), &to(&["r2"], &[])).unwrap();
        store.store(&event(r#"["d"]"#), &to(&[], &["r1"])).unwrap();
        store.store(&event("[ \"e\" ]"), &to(&[], &[])).unwrap();

        let restored = store.restore("p1", &offset).unwrap();
        assert_eq!(restored.session, session("p1", &["sid", "r1"]));
        let missed: Vec<_> = restored.missed.iter().map(json_of).collect();
        assert_eq!(missed.len(), 2);
        assert_eq!(missed[0][0], "b");
        assert_eq!(missed[0][1], 1);
        assert_eq!(missed[1][0], "e");
        // Restored once only.
        assert!(store.restore("p1", &offset).is_none());
    }

    #[test]
    fn acks_volatile_and_non_events_are_not_kept() {
        let mut store = Store::new(ConnectionStateRecovery::default());
        let with_ack = Packet::event("/", Payload::json(r#"["a"]"#), Some(1));
        assert!(store.store(&with_ack, &to(&[], &[])).is_none());
        let mut volatile = to(&[], &[]);
        volatile.flags.volatile = true;
        assert!(store.store(&event(r#"["a"]"#), &volatile).is_none());
        assert!(
            store
                .store(&Packet::disconnect("/"), &to(&[], &[]))
                .is_none()
        );
        assert_eq!(store.len(), (0, 0));
    }

    #[test]
    fn the_offset_follows_the_attachments_and_shares_the_header_buffer() {
        let mut store = Store::new(ConnectionStateRecovery::default());
        let payload = Payload::new(
            r#"["up",{"_placeholder":true,"num":0}]"#,
            vec![bytes::Bytes::from_static(b"x")],
        );
        let packet = Packet::event("/chat", payload, None);
        let stored = store.store(&packet, &to(&[], &[])).unwrap();
        let offset = offset_of(&stored);
        let text = stored.encode_shared("4");
        assert_eq!(
            &*text,
            format!(r#"451-/chat,["up",{{"_placeholder":true,"num":0}},"{offset}"]"#)
        );
        assert_eq!(stored.attachments().len(), 1);
        let empty = store.store(&event("[]"), &to(&[], &[])).unwrap();
        assert_eq!(
            json_of(match &empty.data {
                PacketData::Event { payload, .. } => payload,
                _ => unreachable!(),
            }),
            serde_json::json!([offset_of(&empty)])
        );
    }

    #[test]
    fn unknown_foreign_or_dropped_offsets_and_unknown_sessions_restore_nothing() {
        let options = ConnectionStateRecovery::default().max_packets(3);
        let mut store = Store::new(options);
        let oldest = offset_of(&store.store(&event(r#"["a"]"#), &to(&[], &[])).unwrap());
        for _ in 0..3 {
            store.store(&event(r#"["b"]"#), &to(&[], &[])).unwrap();
        }
        // At most 3 events are kept: the oldest is gone.
        assert_eq!(store.len().0, 3);
        store.persist(session("p", &[]));
        assert!(store.restore("p", &oldest).is_none());
        let kept = offset_of(&store.store(&event(r#"["c"]"#), &to(&[], &[])).unwrap());
        assert!(store.restore("p", "another.1").is_none());
        assert!(store.restore("p", &format!("{}.99", store.tag)).is_none());
        assert!(store.restore("p", "").is_none());
        assert!(store.restore("nobody", &kept).is_none());
        assert!(store.restore("p", &kept).unwrap().missed.is_empty());
    }

    #[test]
    fn sessions_and_events_expire_after_the_window() {
        let window = Duration::from_millis(50);
        let mut store =
            Store::new(ConnectionStateRecovery::default().max_disconnection_duration(window));
        let offset = offset_of(&store.store(&event(r#"["a"]"#), &to(&[], &[])).unwrap());
        store.persist(session("p", &[]));
        std::thread::sleep(window * 2);
        store.persist(session("q", &[]));
        assert_eq!(store.len(), (0, 1));
        assert!(store.restore("p", &offset).is_none());
    }
}
