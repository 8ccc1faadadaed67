//! The protocol of Node's `@socket.io/redis-streams-adapter` 0.3: broadcasts and rooms
//! operations kept in a Redis stream (they survive a Redis restart with persistence, and
//! give connection state recovery its offsets), requests and answers over pub/sub, sessions
//! of disconnected sockets in Redis, so that a client recovers on any server.
//!
//! - Broadcasts without acks, `sockets_join`, `sockets_leave` and `disconnect_sockets` are
//!   `XADD <stream> MAXLEN ~ <max_len> * uid <uid> nsp <nsp> type <n> data <data>`, `data`
//!   the JSON of the message's data, or, when it holds binary, the base64 of its msgpack.
//!   Every server reads the stream (`XREAD BLOCK`) on a connection of its own.
//! - Broadcasts with acks, `fetch_sockets` and server-side events are the msgpack of the
//!   whole message on `<prefix>#<nsp>#`; answers on the requester's `<prefix>#<nsp>#<uid>#`.
//!   The servers are counted with `PUBSUB NUMSUB <prefix>#<nsp>#`.
//! - A socket that leaves for a recoverable reason is stored as
//!   `SET <session_key_prefix><pid> <base64 of msgpack {sid, pid, rooms, data}> PX <max
//!   disconnection duration>`; the server where its client comes back takes it
//!   (`GET`+`DEL`, once) and replays the broadcasts the stream kept after the client's
//!   offset.
//!
//! With several streams ([`StreamsOptions::stream_count`]), a namespace's is
//! `<name>-<i>`, `i` the remainder of the Java hash of its name, which may be negative (Node's
//! adapter then writes to a stream its readers never read: Belfry reads the stream of each of
//! its namespaces, whatever its name).

use std::time::Duration;

use base64::Engine as _;
use belfry_cluster::{ClusterMessage, message::message_type};
use belfry_core::{
    adapter::{BroadcastOptions, RestoredSession, Session, push_offset},
    msgpack::{Value, WireError, arg_to_value, get, read, value_to_arg, write},
    parser::{Packet, PacketData},
    proto::SocketId,
};
use redis::streams::StreamId;

/// The options of the streams protocol (Node's `createAdapter(redis, opts)` of
/// `@socket.io/redis-streams-adapter`); servers of one cluster must agree on them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamsOptions {
    /// The stream, or the prefix of the streams when there are several (Node's
    /// `streamName`, default `socket.io`).
    pub stream_name: String,
    /// How many streams the namespaces are spread over (Node's `streamCount`, default 1).
    pub stream_count: u32,
    /// About how many entries a stream keeps (`XADD MAXLEN ~`; Node's `maxLen`, default
    /// 10,000): a client that missed more cannot recover.
    pub max_len: usize,
    /// How many entries one `XREAD` reads at most (Node's `readCount`, default 100).
    pub read_count: usize,
    /// How long one `XREAD` waits for entries (Node's `blockTimeInMs`, default 5 s).
    pub block_time: Duration,
    /// The prefix of the keys of stored sessions (Node's `sessionKeyPrefix`, default
    /// `sio:session:`).
    pub session_key_prefix: String,
}

impl Default for StreamsOptions {
    fn default() -> Self {
        StreamsOptions {
            stream_name: "socket.io".to_owned(),
            stream_count: 1,
            max_len: 10_000,
            read_count: 100,
            block_time: Duration::from_secs(5),
            session_key_prefix: "sio:session:".to_owned(),
        }
    }
}

impl StreamsOptions {
    /// Node's defaults.
    pub fn new() -> StreamsOptions {
        StreamsOptions::default()
    }

    /// Sets [`stream_name`](StreamsOptions::stream_name).
    #[must_use]
    pub fn with_stream_name(mut self, name: impl Into<String>) -> Self {
        self.stream_name = name.into();
        self
    }

    /// Sets [`stream_count`](StreamsOptions::stream_count) (at least 1).
    #[must_use]
    pub fn with_stream_count(mut self, count: u32) -> Self {
        self.stream_count = count.max(1);
        self
    }

    /// Sets [`max_len`](StreamsOptions::max_len).
    #[must_use]
    pub fn with_max_len(mut self, entries: usize) -> Self {
        self.max_len = entries.max(1);
        self
    }

    /// Sets [`read_count`](StreamsOptions::read_count).
    #[must_use]
    pub fn with_read_count(mut self, entries: usize) -> Self {
        self.read_count = entries.max(1);
        self
    }

    /// Sets [`block_time`](StreamsOptions::block_time).
    #[must_use]
    pub fn with_block_time(mut self, wait: Duration) -> Self {
        self.block_time = wait.max(Duration::from_millis(1));
        self
    }

    /// Sets [`session_key_prefix`](StreamsOptions::session_key_prefix).
    #[must_use]
    pub fn with_session_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.session_key_prefix = prefix.into();
        self
    }

    /// The stream of namespace `nsp`.
    pub fn stream_of(&self, nsp: &str) -> String {
        if self.stream_count <= 1 {
            return self.stream_name.clone();
        }
        let count = i32::try_from(self.stream_count).unwrap_or(i32::MAX);
        format!("{}-{}", self.stream_name, java_hash(nsp) % count)
    }
}

/// Java's `String.hashCode` over the UTF-16 units of `text`, as Node's adapter computes it.
pub fn java_hash(text: &str) -> i32 {
    text.encode_utf16().fold(0i32, |hash, unit| {
        hash.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// The fields of the stream entry of `message`: `uid`, `nsp`, `type` and, as Node's adapter
/// writes them, `data` only when there is some.
///
/// The data is JSON when it is a map without binary (Node's reader takes a value starting with
/// `{` for JSON), and base64 of its msgpack otherwise, so that every entry written reads back.
///
/// # Errors
///
/// Its data cannot be written.
pub fn entry_fields(message: &ClusterMessage) -> Result<Vec<(&'static str, Vec<u8>)>, WireError> {
    let mut fields = vec![
        ("uid", message.uid.clone().into_bytes()),
        ("nsp", message.nsp.clone().into_bytes()),
        ("type", message.kind.to_string().into_bytes()),
    ];
    let data = match &message.data {
        Value::Nil => return Ok(fields),
        Value::Map(_) if !message.has_binary() => serde_json::to_vec(&message.data)?,
        data => base64::engine::general_purpose::STANDARD
            .encode(write(data)?)
            .into_bytes(),
    };
    fields.push(("data", data));
    Ok(fields)
}

/// The message of a stream entry; `Ok(None)` for an entry without `nsp` (not a message).
///
/// # Errors
///
/// The entry is not what the protocol says.
pub(crate) fn entry_message(entry: &StreamId) -> Result<Option<ClusterMessage>, WireError> {
    let text = |key: &str| entry.get::<String>(key);
    let Some(nsp) = text("nsp") else {
        return Ok(None);
    };
    let kind = text("type")
        .and_then(|kind| kind.parse::<u64>().ok())
        .ok_or(WireError::Shape("a stream entry without type"))?;
    let data = match entry.get::<Vec<u8>>("data") {
        None => Value::Nil,
        Some(data) if data.first() == Some(&b'{') => serde_json::from_slice(&data)?,
        Some(data) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(&data)
                .map_err(|_| WireError::Shape("stream entry data neither JSON nor base64"))?;
            read(&bytes)?
        }
    };
    Ok(Some(ClusterMessage::new(
        &text("uid").unwrap_or_default(),
        &nsp,
        kind,
        data,
    )))
}

/// `session` as Node's adapter stores it: base64 of the msgpack of `{sid, pid, rooms, data}`.
///
/// # Errors
///
/// Never for a session Belfry made.
pub(crate) fn encode_session(session: &Session) -> Result<String, WireError> {
    let map = Value::Map(vec![
        (Value::from("sid"), Value::from(session.sid.as_str())),
        (Value::from("pid"), Value::from(session.pid.as_str())),
        (
            Value::from("rooms"),
            Value::Array(
                session
                    .rooms
                    .iter()
                    .map(|room| Value::from(room.as_str()))
                    .collect(),
            ),
        ),
        (Value::from("data"), arg_to_value(&session.data)),
    ]);
    Ok(base64::engine::general_purpose::STANDARD.encode(write(&map)?))
}

/// A stored session.
///
/// # Errors
///
/// Not base64 of msgpack `{sid, pid, rooms?, data?}`.
pub(crate) fn decode_session(stored: &str) -> Result<Session, WireError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(stored.trim())
        .map_err(|_| WireError::Shape("a session that is not base64"))?;
    let map = read(&bytes)?;
    let text = |key: &str| {
        get(&map, key)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or(WireError::Shape("a session without sid or pid"))
    };
    let rooms = match get(&map, "rooms") {
        Some(Value::Array(rooms)) => rooms
            .iter()
            .filter_map(|room| room.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    let data = get(&map, "data")
        .map(value_to_arg)
        .transpose()?
        .unwrap_or_default();
    Ok(Session::new(
        SocketId::from(text("sid")?),
        SocketId::from(text("pid")?),
        rooms,
        data,
    ))
}

/// True for an entry id `<ms>-<seq>` (the offsets of this protocol).
pub(crate) fn is_entry_id(offset: &str) -> bool {
    let mut parts = offset.splitn(2, '-');
    let numeric = |part: Option<&str>| {
        part.is_some_and(|p| {
            !p.is_empty() && p.len() <= 20 && p.bytes().all(|b| b.is_ascii_digit())
        })
    };
    numeric(parts.next()) && numeric(parts.next())
}

/// The first entry id after `id` (XRANGE's exclusive start, for Redis before 6.2).
pub(crate) fn next_id(id: &str) -> Option<String> {
    let (ms, seq) = id.split_once('-')?;
    let seq: u64 = seq.parse().ok()?;
    Some(match seq.checked_add(1) {
        Some(seq) => format!("{ms}-{seq}"),
        None => format!("{}-0", ms.parse::<u64>().ok()?.checked_add(1)?),
    })
}

/// What a stream entry gives a client that recovers `session` in namespace `nsp`: the
/// broadcast's payload with the entry id as offset, when it reaches the session's rooms.
/// Volatile broadcasts are not replayed (Node's Streams adapter replays them; its in-memory
/// adapter does not).
pub(crate) fn missed_payload(
    entry: &StreamId,
    nsp: &str,
    session: &Session,
) -> Option<belfry_core::parser::Payload> {
    let message = entry_message(entry).ok()??;
    if message.nsp != nsp || message.kind != message_type::BROADCAST {
        return None;
    }
    let incoming = message.into_incoming().ok()??;
    let belfry_cluster::message::Body::Broadcast { packet, opts } = incoming.body else {
        return None;
    };
    if opts.flags.volatile || !reaches(&opts, &session.rooms) {
        return None;
    }
    let Packet {
        data: PacketData::Event { payload, .. },
        ..
    } = push_offset(&packet, &entry.id)?
    else {
        return None;
    };
    Some(payload)
}

/// Node's `shouldIncludePacket`: a broadcast to `opts` reaches a socket in `rooms`.
fn reaches(opts: &BroadcastOptions, rooms: &[String]) -> bool {
    let included = opts.rooms.is_empty() || rooms.iter().any(|r| opts.rooms.contains(r));
    included && !rooms.iter().any(|r| opts.except.contains(r))
}

/// The session and missed payloads, as [`RestoredSession`].
pub(crate) fn restored(
    session: Session,
    missed: Vec<belfry_core::parser::Payload>,
) -> RestoredSession {
    RestoredSession::new(session, missed)
}

/// Fields of a stream entry, for tests.
#[cfg(test)]
fn entry(id: &str, fields: &[(&str, &[u8])]) -> StreamId {
    let map: std::collections::HashMap<String, redis::Value> = fields
        .iter()
        .map(|(k, v)| ((*k).to_owned(), redis::Value::BulkString(v.to_vec())))
        .collect();
    StreamId {
        id: id.to_owned(),
        map,
        milliseconds_elapsed_from_delivery: None,
        delivered_count: None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn stream_names_follow_node() {
        let options = StreamsOptions::new();
        assert_eq!(options.stream_of("/chat"), "socket.io");
        // Java's hashCode: "/" is 47.
        assert_eq!(java_hash("/"), 47);
        assert_eq!(java_hash(""), 0);
        let four = StreamsOptions::new().with_stream_count(4);
        assert_eq!(four.stream_of("/"), "socket.io-3");
        // A negative hash gives a negative index, as in Node.
        assert_eq!(four.stream_of("/notifications"), "socket.io--3");
    }

    #[test]
    fn entries_round_trip_json_and_binary() {
        for data in [
            Value::Map(vec![(
                Value::from("rooms"),
                Value::Array(vec![Value::from("r")]),
            )]),
            Value::Map(vec![(Value::from("packet"), Value::Binary(vec![1, 2, 3]))]),
            // No data: no `data` field, as Node writes it (not `null`, which reads as base64).
            Value::Nil,
            // Data that is not a map goes as msgpack, so that it reads back.
            Value::from(5),
        ] {
            let message = ClusterMessage::new("u1", "/", message_type::BROADCAST, data);
            let fields = entry_fields(&message).unwrap();
            let pairs: Vec<(&str, &[u8])> =
                fields.iter().map(|(k, v)| (*k, v.as_slice())).collect();
            let back = entry_message(&entry("1-0", &pairs)).unwrap().unwrap();
            assert_eq!(back, message);
            if message.data == Value::Nil {
                assert!(fields.iter().all(|(key, _)| *key != "data"));
            }
        }
        assert!(
            entry_message(&entry("1-0", &[("uid", b"x")]))
                .unwrap()
                .is_none()
        );
        assert!(entry_message(&entry("1-0", &[("nsp", b"/"), ("type", b"x")])).is_err());
        assert!(
            entry_message(&entry(
                "1-0",
                &[("nsp", b"/"), ("type", b"3"), ("data", b"!!")]
            ))
            .is_err()
        );
    }

    #[test]
    fn sessions_round_trip() {
        let session = Session::new(
            SocketId::from("sid1"),
            SocketId::from("pid1"),
            vec!["sid1".into(), "r".into()],
            belfry_core::proto::value::Value::from_iter([(
                "n",
                belfry_core::proto::value::Value::from(1),
            )]),
        );
        let stored = encode_session(&session).unwrap();
        assert_eq!(decode_session(&stored).unwrap(), session);
        assert!(decode_session("not base64!").is_err());
    }

    #[test]
    fn offsets() {
        assert!(is_entry_id("1712345678901-0"));
        assert!(!is_entry_id("1712345678901"));
        assert!(!is_entry_id("a-1"));
        assert!(!is_entry_id("1-"));
        assert_eq!(next_id("5-1").as_deref(), Some("5-2"));
        assert_eq!(next_id(&format!("5-{}", u64::MAX)).as_deref(), Some("6-0"));
    }
}
