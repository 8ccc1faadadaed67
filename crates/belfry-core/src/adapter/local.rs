//! The in-memory adapter: one server.

use std::{
    collections::{HashMap, HashSet},
    fmt,
    sync::Arc,
};

use belfry_engine::Sid;
use parking_lot::RwLock;

use super::{
    Adapter, AdapterError, AdapterEvent, AdapterListener, BoxFuture, BroadcastOptions,
    LocalSockets, SocketInfo,
};
use crate::parser::Packet;

/// The adapter of a single server (Node's in-memory `Adapter`): rooms in memory, broadcasts
/// delivered to this server's sockets.
pub struct LocalAdapter {
    local: Arc<dyn LocalSockets>,
    rooms: RwLock<HashMap<String, HashSet<Sid>>>,
    sids: RwLock<HashMap<Sid, HashSet<String>>>,
    listeners: RwLock<Vec<AdapterListener>>,
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
            sids: RwLock::new(HashMap::new()),
            listeners: RwLock::new(Vec::new()),
        }
    }

    fn emit(&self, events: &[AdapterEvent]) {
        let listeners = self.listeners.read();
        if listeners.is_empty() {
            return;
        }
        for event in events {
            for listener in listeners.iter() {
                listener(event);
            }
        }
    }
}

impl Adapter for LocalAdapter {
    fn add_all(&self, id: &Sid, rooms: &[String]) {
        let mut events = Vec::new();
        {
            let mut room_map = self.rooms.write();
            let mut sids = self.sids.write();
            let joined = sids.entry(id.clone()).or_default();
            for room in rooms {
                let members = room_map.entry(room.clone()).or_insert_with(|| {
                    events.push(AdapterEvent::CreateRoom(room.clone()));
                    HashSet::new()
                });
                if members.insert(id.clone()) {
                    joined.insert(room.clone());
                    events.push(AdapterEvent::JoinRoom(room.clone(), id.clone()));
                }
            }
        }
        self.emit(&events);
    }

    fn del(&self, id: &Sid, room: &str) {
        let mut events = Vec::new();
        {
            let mut room_map = self.rooms.write();
            if let Some(joined) = self.sids.write().get_mut(id) {
                joined.remove(room);
            }
            if let Some(members) = room_map.get_mut(room)
                && members.remove(id)
            {
                events.push(AdapterEvent::LeaveRoom(room.to_owned(), id.clone()));
                if members.is_empty() {
                    room_map.remove(room);
                    events.push(AdapterEvent::DeleteRoom(room.to_owned()));
                }
            }
        }
        self.emit(&events);
    }

    fn del_all(&self, id: &Sid) {
        let mut events = Vec::new();
        {
            let mut room_map = self.rooms.write();
            let Some(joined) = self.sids.write().remove(id) else {
                return;
            };
            for room in joined {
                if let Some(members) = room_map.get_mut(&room)
                    && members.remove(id)
                {
                    events.push(AdapterEvent::LeaveRoom(room.clone(), id.clone()));
                    if members.is_empty() {
                        room_map.remove(&room);
                        events.push(AdapterEvent::DeleteRoom(room));
                    }
                }
            }
        }
        self.emit(&events);
    }

    fn rooms(&self) -> Vec<String> {
        self.rooms.read().keys().cloned().collect()
    }

    fn socket_rooms(&self, id: &Sid) -> Vec<String> {
        self.sids
            .read()
            .get(id)
            .map(|rooms| rooms.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn sockets(&self, opts: &BroadcastOptions) -> Vec<Sid> {
        let room_map = self.rooms.read();
        let excluded: HashSet<&Sid> = opts
            .except
            .iter()
            .filter_map(|room| room_map.get(room))
            .flatten()
            .collect();
        if opts.rooms.is_empty() {
            return self
                .sids
                .read()
                .keys()
                .filter(|id| !excluded.contains(id))
                .cloned()
                .collect();
        }
        let mut seen = HashSet::new();
        opts.rooms
            .iter()
            .filter_map(|room| room_map.get(room))
            .flatten()
            .filter(|id| !excluded.contains(id) && seen.insert(*id))
            .cloned()
            .collect()
    }

    fn broadcast(&self, packet: &Packet, opts: &BroadcastOptions) -> Result<usize, AdapterError> {
        let ids = self.sockets(opts);
        Ok(self.local.send(&ids, packet, &opts.flags))
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

    fn on_event(&self, listener: AdapterListener) {
        self.listeners.write().push(listener);
    }
}

#[cfg(test)]
mod tests {
    use parking_lot::Mutex;

    use super::*;
    use crate::adapter::BroadcastFlags;

    /// Records what the adapter asks of the namespace.
    #[derive(Default)]
    struct Recorded {
        sent: Mutex<Vec<Vec<Sid>>>,
    }

    impl LocalSockets for Recorded {
        fn namespace(&self) -> &str {
            "/"
        }
        fn send(&self, ids: &[Sid], _packet: &Packet, _flags: &BroadcastFlags) -> usize {
            let mut ids = ids.to_vec();
            ids.sort();
            self.sent.lock().push(ids.clone());
            ids.len()
        }
        fn join(&self, _ids: &[Sid], _rooms: &[String]) {}
        fn leave(&self, _ids: &[Sid], _rooms: &[String]) {}
        fn disconnect(&self, _ids: &[Sid], _close: bool) {}
        fn describe(&self, _ids: &[Sid]) -> Vec<SocketInfo> {
            Vec::new()
        }
    }

    fn rooms(names: &[&str]) -> Vec<String> {
        names.iter().map(|&n| n.to_owned()).collect()
    }

    #[test]
    fn events_follow_node_order() {
        let adapter = LocalAdapter::new(Arc::new(Recorded::default()));
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        adapter.on_event(Box::new(move |e| sink.lock().push(e.clone())));
        let (a, b) = (Sid::from("a"), Sid::from("b"));
        adapter.add_all(&a, &rooms(&["r"]));
        adapter.add_all(&b, &rooms(&["r"]));
        adapter.add_all(&b, &rooms(&["r"]));
        adapter.del(&a, "r");
        adapter.del_all(&b);
        assert_eq!(
            *events.lock(),
            vec![
                AdapterEvent::CreateRoom("r".into()),
                AdapterEvent::JoinRoom("r".into(), a.clone()),
                AdapterEvent::JoinRoom("r".into(), b.clone()),
                AdapterEvent::LeaveRoom("r".into(), a),
                AdapterEvent::LeaveRoom("r".into(), b),
                AdapterEvent::DeleteRoom("r".into()),
            ]
        );
        assert!(adapter.rooms().is_empty());
    }

    #[test]
    fn broadcasts_reach_each_selected_socket_once() {
        let local = Arc::new(Recorded::default());
        let adapter = LocalAdapter::new(local.clone());
        let (a, b, c) = (Sid::from("a"), Sid::from("b"), Sid::from("c"));
        adapter.add_all(&a, &rooms(&["a", "x", "y"]));
        adapter.add_all(&b, &rooms(&["b", "x"]));
        adapter.add_all(&c, &rooms(&["c", "muted"]));
        let packet = Packet::disconnect("/");
        let opts = |to: &[&str], except: &[&str]| BroadcastOptions {
            rooms: rooms(to),
            except: rooms(except),
            flags: BroadcastFlags::default(),
        };
        assert_eq!(
            adapter.broadcast(&packet, &opts(&["x", "y"], &[])).unwrap(),
            2
        );
        assert_eq!(
            adapter.broadcast(&packet, &opts(&[], &["muted"])).unwrap(),
            2
        );
        assert_eq!(
            adapter.broadcast(&packet, &opts(&["x"], &["b"])).unwrap(),
            1
        );
        assert_eq!(
            *local.sent.lock(),
            vec![
                vec![a.clone(), b.clone()],
                vec![a.clone(), b],
                vec![a.clone()]
            ]
        );
        let mut of_a = adapter.socket_rooms(&a);
        of_a.sort();
        assert_eq!(of_a, rooms(&["a", "x", "y"]));
    }

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
