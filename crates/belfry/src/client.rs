//! One client connection (an Engine.IO session): decodes its packets and routes them to its
//! sockets, by the rules of Node's `client.ts`.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use belfry_core::proto::query::form_decode;
use belfry_core::{
    Str,
    parser::{Decoder, Packet, PacketData, ParseError, Parser, msgpack},
};
use belfry_engine::{
    CloseReason, EngineHandler, Sid, Socket as EngineSocket, sid::SidHasher, slots::Slots,
};
use bytes::Bytes;
use parking_lot::{Mutex, RwLock};

use crate::{DisconnectReason, SocketIo, socket::Socket};

/// The Socket.IO state of one connection: its decoder and its sockets by namespace.
#[derive(Debug, Default)]
pub(crate) struct Connection {
    decoder: Mutex<Option<Decoder>>,
    /// Looked up for every packet, by the namespace's name.
    sockets: RwLock<Joined>,
    /// A namespace was joined once: the connect timeout no longer applies.
    joined: AtomicBool,
    /// The connect timeout's watch, until the first join.
    watch: Mutex<Option<Watch>>,
}

/// A connection's sockets by namespace. A client joins one namespace or a few: they are a short
/// list, scanned (no table of four slots and no copy of each name per connection); past
/// [`Joined::SCAN_LIMIT`] a map, so that a client that joins many dynamic namespaces costs no
/// long scan per packet.
#[derive(Debug)]
enum Joined {
    Few(Vec<Arc<Socket>>),
    /// Hashed as ids are (seeded, not SipHash): the names are of namespaces the server accepted.
    Many(HashMap<String, Arc<Socket>, SidHasher>),
}

impl Default for Joined {
    fn default() -> Self {
        Joined::Few(Vec::new())
    }
}

impl Joined {
    const SCAN_LIMIT: usize = 8;

    /// Sets the socket of `ns`, in place of any socket it had (as Node's `nsps.set`).
    fn insert(&mut self, ns: &str, socket: Arc<Socket>) {
        match self {
            Joined::Few(few) => {
                if let Some(slot) = few.iter_mut().find(|joined| joined.ns() == ns) {
                    *slot = socket;
                } else if few.len() < Self::SCAN_LIMIT {
                    // Room for exactly one: most clients join one namespace.
                    few.reserve_exact(1);
                    few.push(socket);
                } else {
                    let mut many: HashMap<String, Arc<Socket>, SidHasher> = few
                        .drain(..)
                        .map(|joined| (joined.ns().to_owned(), joined))
                        .collect();
                    many.insert(ns.to_owned(), socket);
                    *self = Joined::Many(many);
                }
            }
            Joined::Many(many) => {
                many.insert(ns.to_owned(), socket);
            }
        }
    }

    fn remove(&mut self, ns: &str) {
        match self {
            Joined::Few(few) => few.retain(|joined| joined.ns() != ns),
            Joined::Many(many) => {
                many.remove(ns);
            }
        }
    }

    fn get(&self, ns: &str) -> Option<Arc<Socket>> {
        match self {
            Joined::Few(few) => few.iter().find(|joined| joined.ns() == ns).cloned(),
            Joined::Many(many) => many.get(ns).cloned(),
        }
    }

    fn all(&self) -> Vec<Arc<Socket>> {
        match self {
            Joined::Few(few) => few.clone(),
            Joined::Many(many) => many.values().cloned().collect(),
        }
    }
}

impl Connection {
    pub(crate) fn sockets(&self) -> std::vec::IntoIter<Arc<Socket>> {
        self.sockets.read().all().into_iter()
    }

    pub(crate) fn insert(&self, ns: &str, socket: Arc<Socket>) {
        self.sockets.write().insert(ns, socket);
        self.joined.store(true, Ordering::Release);
        if let Some(watch) = self.watch.lock().take() {
            watch.timeouts.state.lock().release(watch.slot, watch.epoch);
        }
    }

    pub(crate) fn remove(&self, ns: &str) {
        self.sockets.write().remove(ns);
    }

    fn get(&self, ns: &str) -> Option<Arc<Socket>> {
        self.sockets.read().get(ns)
    }

    fn decode(
        &self,
        max_attachments: usize,
        decode: impl FnOnce(&mut Decoder) -> Result<Option<Packet>, ParseError>,
    ) -> Result<Option<Packet>, ParseError> {
        let mut decoder = self.decoder.lock();
        decode(decoder.get_or_insert_with(|| Decoder::new(max_attachments)))
    }
}

/// The engine handler of the Socket.IO server.
#[derive(Debug)]
pub(crate) struct Client {
    pub(crate) io: SocketIo,
    pub(crate) timeouts: Arc<ConnectTimeouts>,
}

/// Node's `connectTimeout` for every connection, on one task: a connection that has joined no
/// namespace when its time is up is closed. The timeout is the same for all, so connections wait
/// in the order they came and the task sleeps until the first still watched is due; it ends
/// when none waits.
///
/// A connection waits in a slot, which its first join frees: an entry whose slot moved on since
/// (its epoch differs) is dropped without touching its connection, so the connections that
/// joined, nearly all, are not touched again 45 s after they came. Entries name connections by
/// id: a connection gone meanwhile is not kept alive by its entry.
#[derive(Debug, Default)]
pub(crate) struct ConnectTimeouts {
    state: Mutex<Watching>,
}

#[derive(Debug, Default)]
struct Watching {
    /// `(deadline, slot, epoch)`, in order.
    queue: VecDeque<(tokio::time::Instant, u32, u32)>,
    /// The ids of the connections watched.
    ids: Slots<WatchedId>,
    /// The task runs.
    running: bool,
}

/// A connection's place among those [`ConnectTimeouts`] watches.
#[derive(Debug)]
pub(crate) struct Watch {
    timeouts: Arc<ConnectTimeouts>,
    slot: u32,
    epoch: u32,
}

/// A watched session's id: its text kept in the entry when it has the usual 20 bytes, so that
/// the ids of connections long gone pin no allocation of their own between the connections that
/// came after.
#[derive(Debug)]
enum WatchedId {
    Inline([u8; 20]),
    Shared(Sid),
}

impl WatchedId {
    fn new(sid: &Sid) -> Self {
        match <[u8; 20]>::try_from(sid.as_str().as_bytes()) {
            Ok(bytes) => WatchedId::Inline(bytes),
            Err(_) => WatchedId::Shared(sid.clone()),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            // Copied from a `str` whole: valid UTF-8.
            WatchedId::Inline(bytes) => std::str::from_utf8(bytes).unwrap_or_default(),
            WatchedId::Shared(sid) => sid.as_str(),
        }
    }
}

impl Watching {
    /// Takes a slot for `sid`, due at `deadline`: its slot and epoch.
    fn take(&mut self, sid: &Sid, deadline: tokio::time::Instant) -> (u32, u32) {
        let (slot, epoch) = self.ids.insert(WatchedId::new(sid));
        self.queue.push_back((deadline, slot, epoch));
        (slot, epoch)
    }

    /// Frees `slot` if `epoch` is still its own.
    fn release(&mut self, slot: u32, epoch: u32) -> Option<WatchedId> {
        self.ids.remove(slot, epoch)
    }

    /// The deadline of the first connection still watched. The entries in front of it, of
    /// connections that joined since, go now rather than when due: the task sleeps until a
    /// connection still watched, not once for every millisecond in which connections came that
    /// have all joined since.
    fn next_due(&mut self) -> Option<tokio::time::Instant> {
        self.ids
            .first_holding(&mut self.queue, |&(_, slot, epoch)| (slot, epoch))
            .map(|&(deadline, ..)| deadline)
    }
}

impl ConnectTimeouts {
    fn watch(self: &Arc<Self>, io: &SocketIo, sid: &Sid) -> Watch {
        let deadline = tokio::time::Instant::now() + io.config().connect_timeout;
        let (slot, epoch, start) = {
            let mut state = self.state.lock();
            let (slot, epoch) = state.take(sid, deadline);
            (slot, epoch, !std::mem::replace(&mut state.running, true))
        };
        if start {
            tokio::spawn(self.clone().run(io.downgrade()));
        }
        Watch {
            timeouts: self.clone(),
            slot,
            epoch,
        }
    }

    async fn run(self: Arc<Self>, io: crate::io::WeakSocketIo) {
        loop {
            let next = {
                let mut state = self.state.lock();
                match state.next_due() {
                    Some(deadline) => deadline,
                    None => {
                        state.running = false;
                        return;
                    }
                }
            };
            tokio::time::sleep_until(next).await;
            let Some(io) = io.upgrade() else {
                return;
            };
            let now = tokio::time::Instant::now();
            loop {
                let due = {
                    let mut state = self.state.lock();
                    match state.queue.front() {
                        Some(&(deadline, slot, epoch)) if deadline <= now => {
                            state.queue.pop_front();
                            // `None` for a connection that joined since.
                            Some(state.release(slot, epoch))
                        }
                        _ => None,
                    }
                };
                let Some(id) = due else { break };
                if let Some(conn) = id.and_then(|id| io.engine_socket(id.as_str()))
                    && !conn.data().joined.load(Ordering::Acquire)
                {
                    conn.span()
                        .in_scope(|| tracing::debug!("no namespace joined in time"));
                    conn.close();
                }
            }
        }
    }
}

type Conn = Arc<EngineSocket<Connection>>;

impl EngineHandler for Client {
    type Data = Connection;

    fn on_connect(&self, conn: Conn) {
        if let Some(observer) = self.io.observer() {
            // The open packet is not counted out: Node's instrumentation starts listening to a
            // connection after it was sent.
            observer.engine_connected(conn.transport() == belfry_engine::TransportType::Polling);
        }
        // Node's `connectTimeout`: a client must join a namespace in time.
        let watch = self.timeouts.watch(&self.io, conn.id());
        *conn.data().watch.lock() = Some(watch);
        // socket.io 2.x clients are in `/` from the start, without a CONNECT of their own.
        if conn.protocol() == 3
            && let Some(ns) = self.io.namespace_for_connect("/")
        {
            ns.connect(&self.io, &conn, None);
        }
    }

    fn on_disconnect(&self, conn: Conn, reason: CloseReason) {
        let reason = DisconnectReason::from(reason);
        if let Some(observer) = self.io.observer() {
            observer.engine_disconnected(reason);
        }
        for socket in conn.data().sockets() {
            socket.close(reason);
        }
    }

    fn on_message(&self, conn: &Conn, text: Str) {
        if let Some(observer) = self.io.observer() {
            observer.packet_in(text.len());
        }
        let result = match self.io.config().parser {
            // Every msgpack packet is a binary message.
            Parser::Msgpack => Err(ParseError::TextWithMsgpack),
            _ => {
                let max = self.io.config().max_attachments;
                conn.data().decode(max, |decoder| decoder.decode_text(text))
            }
        };
        self.handle(conn, result);
    }

    fn on_upgrade(&self, conn: &Conn) {
        if let Some(observer) = self.io.observer() {
            for socket in conn.data().sockets() {
                observer.socket_upgraded(&socket);
            }
        }
    }

    fn on_binary(&self, conn: &Conn, data: Bytes) {
        if let Some(observer) = self.io.observer() {
            observer.packet_in(data.len());
        }
        let result = match self.io.config().parser {
            Parser::Msgpack => msgpack::decode(&data).map(Some),
            _ => {
                let max = self.io.config().max_attachments;
                conn.data()
                    .decode(max, |decoder| decoder.decode_binary(data))
            }
        };
        self.handle(conn, result);
    }
}

impl Client {
    fn handle(&self, conn: &Conn, result: Result<Option<Packet>, ParseError>) {
        match result {
            Ok(Some(packet)) => self.route(conn, packet),
            Ok(None) => {}
            Err(error) => {
                tracing::debug!(%error, "invalid Socket.IO packet");
                force_close(conn);
            }
        }
    }

    fn route(&self, conn: &Conn, mut packet: Packet) {
        if conn.protocol() == 3
            && let PacketData::Connect(auth) = &mut packet.data
            && let Some((ns, query)) = packet.ns.split_once('?')
        {
            // socket.io 2.x: `40/nsp?token=x,` carries its auth as a query string.
            *auth = Some(query_to_json(query).into());
            packet.ns = Str::from(ns);
        }
        let socket = conn.data().get(&packet.ns);
        match (packet.data, socket) {
            (PacketData::Connect(auth), None) => match self.io.namespace_for_connect(&packet.ns) {
                Some(ns) => ns.connect(&self.io, conn, auth),
                None => {
                    let refusal = Packet::connect_error(packet.ns, "Invalid namespace", None);
                    let frames = crate::socket::frames(&refusal, self.io.config().parser);
                    let counted = crate::socket::data_of(frames.iter());
                    if crate::socket::send_frames(conn, frames, true).is_ok()
                        && let Some(observer) = self.io.observer()
                    {
                        observer.packets_out(counted.0, counted.1);
                    }
                }
            },
            (PacketData::Event { payload, ack }, Some(socket)) => socket.on_event(payload, ack),
            (PacketData::Ack { payload, ack }, Some(socket)) => socket.on_ack(ack, payload),
            (PacketData::Disconnect, Some(socket)) => {
                socket.close(DisconnectReason::ClientNamespaceDisconnect);
            }
            // A second CONNECT, a packet for a namespace not joined, a CONNECT_ERROR from a
            // client: Node closes the whole connection.
            (data, _) => {
                tracing::debug!(ns = %packet.ns, ?data, "packet out of sequence");
                force_close(conn);
            }
        }
    }
}

/// A query string as the JSON object Node's `url.parse(.., true).query` makes of it: values are
/// strings (percent-decoded, `+` as a space), a repeated key an array of them.
fn query_to_json(query: &str) -> String {
    let mut object = serde_json::Map::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (key, value) = (
            form_decode(key),
            serde_json::Value::from(form_decode(value)),
        );
        match object.get_mut(&key) {
            Some(serde_json::Value::Array(values)) => values.push(value),
            Some(first) => *first = serde_json::Value::Array(vec![first.take(), value]),
            None => {
                object.insert(key, value);
            }
        }
    }
    serde_json::Value::Object(object).to_string()
}

/// Closes the connection for a protocol violation ("forced server close" for its sockets).
fn force_close(conn: &Conn) {
    for socket in conn.data().sockets() {
        socket.close(DisconnectReason::ForcedServerClose);
    }
    conn.close();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watched_ids_keep_their_text() {
        let usual = Sid::random();
        let watched = WatchedId::new(&usual);
        assert!(matches!(watched, WatchedId::Inline(_)));
        assert_eq!(watched.as_str(), usual.as_str());
        for other in ["short", "an-id-longer-than-twenty-bytes", "éééééééééé"] {
            let watched = WatchedId::new(&Sid::from(other));
            assert_eq!(watched.as_str(), other);
        }
    }

    /// The task sleeps until the first connection still watched: the entries in front of it,
    /// of connections that joined since, go at once.
    #[test]
    fn joined_connections_in_front_do_not_set_the_wake() {
        let mut watching = Watching::default();
        let now = tokio::time::Instant::now();
        let at = |ms| now + std::time::Duration::from_millis(ms);
        let joined = [0, 1, 2].map(|ms| watching.take(&Sid::random(), at(ms)));
        let (slot, epoch) = watching.take(&Sid::random(), at(3));
        watching.take(&Sid::random(), at(4));
        assert_eq!(watching.next_due(), Some(at(0)));
        for (slot, epoch) in joined {
            watching.release(slot, epoch).expect("watched");
        }
        assert_eq!(watching.next_due(), Some(at(3)));
        assert_eq!(watching.queue.len(), 2);
        watching.release(slot, epoch).expect("watched");
        assert_eq!(watching.next_due(), Some(at(4)));
    }

    /// A connection that joined frees its slot: its entry, still queued, no longer names it,
    /// nor the connection that takes the slot next.
    #[test]
    fn a_joined_connections_entry_is_stale() {
        let mut watching = Watching::default();
        let now = tokio::time::Instant::now();
        let first = Sid::random();
        let (slot, epoch) = watching.take(&first, now);
        // The join.
        let id = watching
            .release(slot, epoch)
            .expect("the slot is the first's");
        assert_eq!(id.as_str(), first.as_str());
        let second = Sid::random();
        let (again, later) = watching.take(&second, now);
        assert_eq!(again, slot);
        assert_ne!(later, epoch);
        // The first's entry, due first, is stale: the second keeps its slot.
        let (_, stale_slot, stale_epoch) = watching.queue.pop_front().expect("two entries");
        assert!(watching.release(stale_slot, stale_epoch).is_none());
        let (_, slot, epoch) = watching.queue.pop_front().expect("two entries");
        let id = watching
            .release(slot, epoch)
            .expect("the slot is the second's");
        assert_eq!(id.as_str(), second.as_str());
    }
}
