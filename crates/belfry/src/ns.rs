//! Namespaces: their sockets, rooms and connect handler.

use std::{
    collections::{HashMap, HashSet},
    fmt,
    sync::Arc,
};

use belfry_core::{Str, parser::Packet};
use belfry_engine::{Sid, Socket as EngineSocket};
use parking_lot::RwLock;

use crate::{
    SocketIo, SocketRef,
    client::Connection,
    handler::{ContextKind, ErasedHandler, HandlerContext, Rejected},
    socket::Socket,
};

/// A namespace: the sockets connected to it, their rooms, and the handler run on each connect.
pub(crate) struct Namespace {
    name: Str,
    on_connect: ErasedHandler,
    sockets: RwLock<HashMap<Sid, Arc<Socket>>>,
    rooms: RwLock<HashMap<String, HashSet<Sid>>>,
}

impl fmt::Debug for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Namespace")
            .field("name", &self.name)
            .field("sockets", &self.sockets.read().len())
            .finish_non_exhaustive()
    }
}

impl Namespace {
    pub(crate) fn new(name: Str, on_connect: ErasedHandler) -> Arc<Namespace> {
        Arc::new(Namespace {
            name,
            on_connect,
            sockets: RwLock::new(HashMap::new()),
            rooms: RwLock::new(HashMap::new()),
        })
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn name_str(&self) -> Str {
        self.name.clone()
    }

    /// A client asks to join: extract the connect handler's arguments (a refusal is answered
    /// with a CONNECT_ERROR and creates nothing), then register the socket, answer CONNECT, and
    /// run the handler.
    pub(crate) fn connect(
        self: &Arc<Self>,
        io: &SocketIo,
        conn: &Arc<EngineSocket<Connection>>,
        auth: Option<Str>,
    ) {
        let socket = Socket::new(self.clone(), conn.clone(), io.clone());
        let mut ctx = HandlerContext {
            socket: SocketRef(socket.clone()),
            kind: ContextKind::Connect { auth },
        };
        match (self.on_connect)(&mut ctx) {
            Err(Rejected(message)) => {
                tracing::debug!(ns = %self.name, %message, "connect refused by an extractor");
                let packet = Packet::connect_error(self.name.clone(), &message, None);
                let _ = crate::socket::send_frames(conn, &crate::socket::frames(&packet));
            }
            Ok(future) => {
                conn.data().insert(self.name(), socket.clone());
                socket.joined();
                let packet = Packet::connect(self.name.clone(), socket.id().as_str());
                let _ = crate::socket::send_frames(conn, &crate::socket::frames(&packet));
                tracing::debug!(ns = %self.name, id = %socket.id(), "socket connected");
                socket.enqueue(future);
            }
        }
    }

    pub(crate) fn add_socket(&self, socket: Arc<Socket>) {
        self.sockets.write().insert(socket.id().clone(), socket);
    }

    pub(crate) fn remove_socket(&self, id: &Sid) {
        self.sockets.write().remove(id);
    }

    pub(crate) fn sockets(&self) -> Vec<Arc<Socket>> {
        self.sockets.read().values().cloned().collect()
    }

    pub(crate) fn add_to_room(&self, room: &str, id: &Sid) {
        self.rooms
            .write()
            .entry(room.to_owned())
            .or_default()
            .insert(id.clone());
    }

    /// Removes `id` from `room`; a room is deleted with its last member.
    pub(crate) fn remove_from_room(&self, room: &str, id: &Sid) {
        let mut rooms = self.rooms.write();
        if let Some(members) = rooms.get_mut(room) {
            members.remove(id);
            if members.is_empty() {
                rooms.remove(room);
            }
        }
    }

    /// The names of the rooms that have members (each socket's own room included).
    pub(crate) fn room_names(&self) -> Vec<String> {
        self.rooms.read().keys().cloned().collect()
    }

    /// The sockets in any of `rooms` (every socket when `rooms` is empty) and in none of
    /// `except`, each once.
    pub(crate) fn targets(&self, rooms: &[String], except: &[String]) -> Vec<Arc<Socket>> {
        let room_map = self.rooms.read();
        let excluded: HashSet<&Sid> = except
            .iter()
            .filter_map(|room| room_map.get(room))
            .flatten()
            .collect();
        let sockets = self.sockets.read();
        if rooms.is_empty() {
            return sockets
                .iter()
                .filter(|(id, _)| !excluded.contains(id))
                .map(|(_, socket)| socket.clone())
                .collect();
        }
        let mut seen = HashSet::new();
        rooms
            .iter()
            .filter_map(|room| room_map.get(room))
            .flatten()
            .filter(|id| !excluded.contains(id) && seen.insert(*id))
            .filter_map(|id| sockets.get(id).cloned())
            .collect()
    }
}
