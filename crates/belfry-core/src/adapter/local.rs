//! The in-memory adapter: one server.

use std::{
    collections::{HashMap, HashSet, hash_map::RandomState},
    fmt,
    sync::Arc,
};

use belfry_proto::{
    SocketId,
    sid::{SidHasher, SocketIdMap},
};
use parking_lot::{Mutex, RwLock};

use super::{
    Adapter, AdapterError, AdapterEvent, AdapterListener, BoxFuture, BroadcastOptions,
    ConnectionStateRecovery, LocalSockets, RestoredSession, Session, SocketInfo, few::Few,
    recovery::Store,
};
use crate::parser::Packet;

/// The adapter of a single server (Node's in-memory `Adapter`): rooms in memory, broadcasts
/// delivered to this server's sockets. Made [`LocalAdapter::with_recovery`], it also keeps
/// recent events and departed sockets for connection state recovery (Node's
/// `SessionAwareAdapter`).
pub struct LocalAdapter {
    local: Arc<dyn LocalSockets>,
    /// Each room's members. Most rooms are a socket's own (one member), held inline.
    rooms: RwLock<HashMap<String, Few<SocketId, SidHasher>>>,
    /// Each socket's rooms. Most sockets are only in their own, held inline.
    sids: RwLock<SocketIdMap<Few<String, RandomState>>>,
    listeners: RwLock<Vec<AdapterListener>>,
    recovery: Option<Mutex<Store>>,
}

impl fmt::Debug for LocalAdapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalAdapter")
            .field("namespace", &self.local.namespace())
            .field("rooms", &self.rooms.read().len())
            .field("sockets", &self.sids.read().len())
            .finish_non_exhaustive()
    }
}

impl LocalAdapter {
    /// An adapter delivering to `local`.
    pub fn new(local: Arc<dyn LocalSockets>) -> Self {
        LocalAdapter {
            local,
            rooms: RwLock::new(HashMap::new()),
            sids: RwLock::new(SocketIdMap::default()),
            listeners: RwLock::new(Vec::new()),
            recovery: None,
        }
    }

    /// An adapter delivering to `local` that keeps what connection state recovery needs.
    pub fn with_recovery(local: Arc<dyn LocalSockets>, options: ConnectionStateRecovery) -> Self {
        LocalAdapter {
            recovery: Some(Mutex::new(Store::new(options))),
            ..LocalAdapter::new(local)
        }
    }

    /// Where a room change records its events: nowhere when nothing listens (a socket's join of
    /// its own room at connection would otherwise copy the room's name twice for nobody).
    fn events(&self) -> Events {
        Events(if self.listeners.read().is_empty() {
            None
        } else {
            Some(Vec::new())
        })
    }

    fn emit(&self, events: Events) {
        let Some(events) = events.0 else {
            return;
        };
        let listeners = self.listeners.read();
        for event in &events {
            for listener in listeners.iter() {
                listener(event);
            }
        }
    }
}

/// The room events of one change, if anything listens for them.
struct Events(Option<Vec<AdapterEvent>>);

impl Events {
    fn push(&mut self, event: impl FnOnce() -> AdapterEvent) {
        if let Some(events) = &mut self.0 {
            events.push(event());
        }
    }
}

/// The sockets a broadcast leaves out. Usually one (the sender's own room), where a scan beats
/// hashing every recipient's id.
enum Excluded<'a> {
    Few(Vec<&'a SocketId>),
    Many(HashSet<&'a SocketId, SidHasher>),
}

impl<'a> Excluded<'a> {
    const SCAN_LIMIT: usize = 8;

    fn new(ids: impl Iterator<Item = &'a SocketId>) -> Self {
        let few: Vec<&SocketId> = ids.collect();
        if few.len() <= Self::SCAN_LIMIT {
            Excluded::Few(few)
        } else {
            Excluded::Many(few.into_iter().collect())
        }
    }

    fn contains(&self, id: &SocketId) -> bool {
        match self {
            Excluded::Few(ids) => ids.contains(&id),
            Excluded::Many(ids) => ids.contains(id),
        }
    }
}

impl Adapter for LocalAdapter {
    fn add_all(&self, id: &SocketId, rooms: &[String]) {
        let mut events = self.events();
        {
            let mut room_map = self.rooms.write();
            let mut sids = self.sids.write();
            let joined = sids.entry(id.clone()).or_default();
            for room in rooms {
                let members = room_map.entry(room.clone()).or_insert_with(|| {
                    events.push(|| AdapterEvent::CreateRoom(room.clone()));
                    Few::default()
                });
                if members.insert(id.clone()) {
                    joined.insert(room.clone());
                    events.push(|| AdapterEvent::JoinRoom(room.clone(), id.clone()));
                }
            }
        }
        self.emit(events);
    }

    fn del(&self, id: &SocketId, room: &str) {
        let mut events = self.events();
        {
            let mut room_map = self.rooms.write();
            if let Some(joined) = self.sids.write().get_mut(id) {
                joined.remove(room);
            }
            if let Some(members) = room_map.get_mut(room)
                && members.remove(id)
            {
                events.push(|| AdapterEvent::LeaveRoom(room.to_owned(), id.clone()));
                if members.is_empty() {
                    room_map.remove(room);
                    events.push(|| AdapterEvent::DeleteRoom(room.to_owned()));
                }
            }
        }
        self.emit(events);
    }

    fn del_all(&self, id: &SocketId) {
        let mut events = self.events();
        {
            let mut room_map = self.rooms.write();
            let Some(joined) = self.sids.write().remove(id) else {
                return;
            };
            for room in joined {
                if let Some(members) = room_map.get_mut(&room)
                    && members.remove(id)
                {
                    events.push(|| AdapterEvent::LeaveRoom(room.clone(), id.clone()));
                    if members.is_empty() {
                        room_map.remove(&room);
                        events.push(|| AdapterEvent::DeleteRoom(room));
                    }
                }
            }
        }
        self.emit(events);
    }

    fn rooms(&self) -> Vec<String> {
        self.rooms.read().keys().cloned().collect()
    }

    fn socket_rooms(&self, id: &SocketId) -> Vec<String> {
        self.sids
            .read()
            .get(id)
            .map(|rooms| rooms.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn sockets(&self, opts: &BroadcastOptions) -> Vec<SocketId> {
        let room_map = self.rooms.read();
        let excluded = Excluded::new(
            opts.except
                .iter()
                .filter_map(|room| room_map.get(room))
                .flatten(),
        );
        let kept = |id: &&SocketId| !excluded.contains(id);
        match &opts.rooms[..] {
            [] => self.sids.read().keys().filter(kept).cloned().collect(),
            // The common broadcast: the members of one room are each there once already.
            [room] => {
                let Some(members) = room_map.get(room) else {
                    return Vec::new();
                };
                let mut ids = Vec::with_capacity(members.len());
                ids.extend(members.iter().filter(kept).cloned());
                ids
            }
            rooms => {
                let mut seen = HashSet::with_hasher(SidHasher::default());
                rooms
                    .iter()
                    .filter_map(|room| room_map.get(room))
                    .flatten()
                    .filter(|id| kept(id) && seen.insert(*id))
                    .cloned()
                    .collect()
            }
        }
    }

    fn broadcast(&self, packet: &Packet, opts: &BroadcastOptions) -> Result<usize, AdapterError> {
        let ids = self.sockets(opts);
        let stored = self
            .recovery
            .as_ref()
            .and_then(|store| store.lock().store(packet, opts));
        Ok(self
            .local
            .send(&ids, stored.as_ref().unwrap_or(packet), &opts.flags))
    }

    fn add_sockets(
        &self,
        opts: &BroadcastOptions,
        rooms: &[String],
    ) -> BoxFuture<'static, Result<(), AdapterError>> {
        self.local.join(&self.sockets(opts), rooms);
        Box::pin(async { Ok(()) })
    }

    fn del_sockets(
        &self,
        opts: &BroadcastOptions,
        rooms: &[String],
    ) -> BoxFuture<'static, Result<(), AdapterError>> {
        self.local.leave(&self.sockets(opts), rooms);
        Box::pin(async { Ok(()) })
    }

    fn disconnect_sockets(
        &self,
        opts: &BroadcastOptions,
        close: bool,
    ) -> BoxFuture<'static, Result<(), AdapterError>> {
        self.local.disconnect(&self.sockets(opts), close);
        Box::pin(async { Ok(()) })
    }

    fn fetch_remote_sockets(
        &self,
        _opts: &BroadcastOptions,
    ) -> BoxFuture<'static, Result<Vec<SocketInfo>, AdapterError>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    fn server_count(&self) -> BoxFuture<'static, usize> {
        Box::pin(async { 1 })
    }

    fn persist_session(&self, session: Session) {
        if let Some(store) = &self.recovery {
            store.lock().persist(session);
        }
    }

    fn restore_session(
        &self,
        pid: &str,
        offset: &str,
    ) -> BoxFuture<'static, Result<Option<RestoredSession>, AdapterError>> {
        let restored = self
            .recovery
            .as_ref()
            .and_then(|store| store.lock().restore(pid, offset));
        Box::pin(async move { Ok(restored) })
    }

    fn on_event(&self, listener: AdapterListener) {
        self.listeners.write().push(listener);
    }
}

// The behaviour of the adapter is tested by the conformance suite every adapter passes
// (`belfry_tests::adapter_conformance!`, tests/tests/adapter_conformance.rs).
#[cfg(test)]
mod tests {
    use crate::adapter::BroadcastFlags;

    #[test]
    fn flags_round_trip_as_node_writes_them() {
        let flags = BroadcastFlags {
            volatile: true,
            timeout: Some(std::time::Duration::from_millis(1500)),
            ..BroadcastFlags::default()
        };
        let json = serde_json::to_string(&flags).unwrap();
        assert_eq!(json, r#"{"volatile":true,"local":false,"timeout":1500}"#);
        assert_eq!(
            serde_json::from_str::<BroadcastFlags>(&json).unwrap(),
            flags
        );
        assert_eq!(
            serde_json::from_str::<BroadcastFlags>("{}").unwrap(),
            BroadcastFlags::default()
        );
    }
}
