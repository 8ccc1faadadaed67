//! One conformance suite for every adapter: `adapter_conformance!(name, factory)` expands to a
//! module of tests that any [`Adapter`](belfry::core::adapter::Adapter) must pass on one
//! server. The factory is a `fn(Arc<dyn LocalSockets>) -> Arc<dyn Adapter>`; the namespace is
//! played by [`RecordedSockets`], which records what the adapter asks of it.

use std::time::Duration;

use belfry::{
    SocketId,
    core::{
        adapter::{BroadcastFlags, LocalAckSink, LocalSockets, ServerSideReply, SocketInfo},
        parser::{Packet, Payload},
    },
};
use parking_lot::Mutex;

/// A namespace that records the adapter's requests (ids sorted, for comparisons).
#[derive(Debug, Default)]
pub struct RecordedSockets {
    /// The ids of every `send`, in order.
    pub sent: Mutex<Vec<Vec<SocketId>>>,
    /// Every `join`: ids and rooms.
    pub joined: Mutex<Vec<(Vec<SocketId>, Vec<String>)>>,
    /// Every `leave`: ids and rooms.
    pub left: Mutex<Vec<(Vec<SocketId>, Vec<String>)>>,
    /// Every `disconnect`: ids and `close`.
    pub disconnected: Mutex<Vec<(Vec<SocketId>, bool)>>,
    /// Every server-side event handed to the namespace.
    pub server_side: Mutex<Vec<Vec<serde_json::Value>>>,
}

fn sorted(ids: &[SocketId]) -> Vec<SocketId> {
    let mut ids = ids.to_vec();
    ids.sort();
    ids
}

impl LocalSockets for RecordedSockets {
    fn namespace(&self) -> &str {
        "/"
    }

    fn send(&self, ids: &[SocketId], _packet: &Packet, _flags: &BroadcastFlags) -> usize {
        self.sent.lock().push(sorted(ids));
        ids.len()
    }

    fn join(&self, ids: &[SocketId], rooms: &[String]) {
        self.joined.lock().push((sorted(ids), rooms.to_vec()));
    }

    fn leave(&self, ids: &[SocketId], rooms: &[String]) {
        self.left.lock().push((sorted(ids), rooms.to_vec()));
    }

    fn disconnect(&self, ids: &[SocketId], close: bool) {
        self.disconnected.lock().push((sorted(ids), close));
    }

    fn describe(&self, _ids: &[SocketId]) -> Vec<SocketInfo> {
        Vec::new()
    }

    fn send_with_ack(
        &self,
        ids: &[SocketId],
        _payload: &Payload,
        _timeout: Duration,
        _on_answer: LocalAckSink,
    ) -> usize {
        self.sent.lock().push(sorted(ids));
        ids.len()
    }

    fn server_side_event(&self, data: Vec<serde_json::Value>, _reply: Option<ServerSideReply>) {
        self.server_side.lock().push(data);
    }
}

/// Room names from string slices.
pub fn rooms(names: &[&str]) -> Vec<String> {
    names.iter().map(|&name| name.to_owned()).collect()
}

/// Expands to a module `$name` of tests run against the adapter made by `$factory`.
#[macro_export]
macro_rules! adapter_conformance {
    ($name:ident, $factory:expr) => {
        mod $name {
            // The factory expression may use the caller's imports.
            #[allow(unused_imports)]
            use super::*;
            use std::sync::Arc;

            use belfry::{
                SocketId,
                core::{
                    adapter::{Adapter, AdapterEvent, BroadcastOptions, LocalSockets},
                    parser::Packet,
                },
            };
            use parking_lot::Mutex;
            use $crate::adapter_conformance::{RecordedSockets, rooms};

            fn adapter() -> (Arc<dyn Adapter>, Arc<RecordedSockets>) {
                let local = Arc::new(RecordedSockets::default());
                let factory: fn(Arc<dyn LocalSockets>) -> Arc<dyn Adapter> = $factory;
                (factory(local.clone()), local)
            }

            fn opts(to: &[&str], except: &[&str]) -> BroadcastOptions {
                BroadcastOptions {
                    rooms: rooms(to),
                    except: rooms(except),
                    ..BroadcastOptions::default()
                }
            }

            /// Three sockets: a in x and y, b in x, c in muted (and each in its own room).
            fn populated() -> (Arc<dyn Adapter>, Arc<RecordedSockets>, [SocketId; 3]) {
                let (adapter, local) = adapter();
                let ids = [
                    SocketId::from("a"),
                    SocketId::from("b"),
                    SocketId::from("c"),
                ];
                adapter.add_all(&ids[0], &rooms(&["a", "x", "y"]));
                adapter.add_all(&ids[1], &rooms(&["b", "x"]));
                adapter.add_all(&ids[2], &rooms(&["c", "muted"]));
                (adapter, local, ids)
            }

            #[test]
            fn room_events_follow_node_order() {
                let (adapter, _) = adapter();
                let events = Arc::new(Mutex::new(Vec::new()));
                let sink = events.clone();
                adapter.on_event(Box::new(move |e| sink.lock().push(e.clone())));
                let (a, b) = (SocketId::from("a"), SocketId::from("b"));
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
            fn selection_reaches_each_socket_once() {
                let (adapter, local, [a, b, c]) = populated();
                let packet = Packet::disconnect("/");
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
                assert_eq!(adapter.broadcast(&packet, &opts(&[], &[])).unwrap(), 3);
                assert_eq!(
                    *local.sent.lock(),
                    vec![
                        vec![a.clone(), b.clone()],
                        vec![a.clone(), b.clone()],
                        vec![a.clone()],
                        vec![a, b, c],
                    ]
                );
            }

            #[test]
            fn rooms_of_a_socket_and_of_the_namespace() {
                let (adapter, _, [a, _, c]) = populated();
                let mut of_a = adapter.socket_rooms(&a);
                of_a.sort();
                assert_eq!(of_a, rooms(&["a", "x", "y"]));
                adapter.del_all(&c);
                let mut all = adapter.rooms();
                all.sort();
                assert_eq!(all, rooms(&["a", "b", "x", "y"]));
                assert!(adapter.socket_rooms(&c).is_empty());
            }

            #[tokio::test]
            async fn cluster_operations_act_on_the_selected_local_sockets() {
                let (adapter, local, [a, b, _]) = populated();
                adapter
                    .add_sockets(&opts(&["x"], &[]), &rooms(&["z"]))
                    .await
                    .unwrap();
                adapter
                    .del_sockets(&opts(&["y"], &[]), &rooms(&["x"]))
                    .await
                    .unwrap();
                adapter
                    .disconnect_sockets(&opts(&["x"], &["a"]), true)
                    .await
                    .unwrap();
                assert_eq!(
                    *local.joined.lock(),
                    vec![(vec![a.clone(), b.clone()], rooms(&["z"]))]
                );
                assert_eq!(*local.left.lock(), vec![(vec![a], rooms(&["x"]))]);
                assert_eq!(*local.disconnected.lock(), vec![(vec![b], true)]);
            }

            #[tokio::test]
            async fn alone_it_counts_itself_and_fetches_no_remote_socket() {
                let (adapter, _, _) = populated();
                assert!(adapter.server_count().await >= 1);
                assert!(
                    adapter
                        .fetch_remote_sockets(&opts(&[], &[]))
                        .await
                        .unwrap()
                        .is_empty()
                );
            }
        }
    };
}
