//! One conformance suite for every adapter: `adapter_conformance!(name, factory)` expands to a
//! module of tests that any [`Adapter`] must pass on one server. The factory is a
//! [`Factory`]: given the namespace's sockets, a future of the adapter ([`Made`], with what must
//! live as long as it, such as a Redis server). [`local`] makes Belfry's in-memory adapter,
//! [`redis`] a Redis adapter (in either protocol) on a `redis-server` of its own. The namespace
//! is played by [`RecordedSockets`], which records what the adapter asks of it.

use std::{any::Any, sync::Arc, time::Duration};

use belfry::{
    SocketId,
    core::adapter::{
        Adapter, BoxFuture, BroadcastFlags, LocalAckSink, LocalAdapter, LocalSockets,
        ServerSideReply, SocketInfo,
    },
    core::parser::{Packet, Payload},
};
use belfry_redis::{Protocol, RedisAdapter};
use parking_lot::Mutex;

use crate::processes::RedisServer;

/// An adapter made for one test, and what must live as long as it.
pub struct Made {
    /// The adapter under test.
    pub adapter: Arc<dyn Adapter>,
    /// Kept until the test ends (a Redis server and the connection to it), dropped after it.
    pub keep: Box<dyn Any + Send>,
}

impl std::fmt::Debug for Made {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Made").finish_non_exhaustive()
    }
}

/// What `adapter_conformance!` takes: makes an adapter over the namespace's sockets, in the
/// test's runtime.
pub type Factory = fn(Arc<dyn LocalSockets>) -> BoxFuture<'static, Made>;

/// Belfry's in-memory adapter.
pub fn local(sockets: Arc<dyn LocalSockets>) -> BoxFuture<'static, Made> {
    Box::pin(async move {
        Made {
            adapter: Arc::new(LocalAdapter::new(sockets)),
            keep: Box::new(()),
        }
    })
}

/// The Redis adapter in `protocol`, channels under `key`, on a `redis-server` started for this
/// test alone; resolves once the namespace is subscribed ([`RedisAdapter::ready`]), so that
/// the server counts itself.
pub fn redis(
    sockets: Arc<dyn LocalSockets>,
    key: &'static str,
    protocol: Protocol,
) -> BoxFuture<'static, Made> {
    Box::pin(async move {
        let server = RedisServer::start().await;
        let redis = RedisAdapter::builder(server.url())
            .key(key)
            .protocol(protocol)
            .connect()
            .await
            .unwrap();
        let adapter = redis.factory()(sockets);
        redis.ready().await;
        Made {
            adapter,
            keep: Box::new((redis, server)),
        }
    })
}

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
    pub server_side: Mutex<Vec<Vec<belfry::Value>>>,
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

    fn server_side_event(&self, data: Vec<belfry::Value>, _reply: Option<ServerSideReply>) {
        self.server_side.lock().push(data);
    }
}

/// Room names from string slices.
pub fn rooms(names: &[&str]) -> Vec<String> {
    names.iter().map(|&name| name.to_owned()).collect()
}

/// How long the suite waits for an adapter's own messages to come back through its bus (Redis)
/// before checking that they changed nothing.
pub const BUS_ROUND_TRIP: Duration = Duration::from_millis(300);

/// Expands to a module `$name` of tests run against the adapter made by `$factory`, a
/// [`Factory`] (a function or a closure that captures nothing).
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
                    adapter::{Adapter, AdapterEvent, BroadcastOptions},
                    parser::{Packet, Payload},
                },
            };
            use parking_lot::Mutex;
            use $crate::adapter_conformance::{
                BUS_ROUND_TRIP, Factory, Made, RecordedSockets, rooms,
            };

            /// The adapter, the namespace it records into, and what must outlive the test.
            struct Subject {
                adapter: Arc<dyn Adapter>,
                local: Arc<RecordedSockets>,
                _keep: Box<dyn std::any::Any + Send>,
            }

            async fn adapter() -> Subject {
                let local = Arc::new(RecordedSockets::default());
                let factory: Factory = $factory;
                let Made { adapter, keep } = factory(local.clone()).await;
                Subject {
                    adapter,
                    local,
                    _keep: keep,
                }
            }

            fn opts(to: &[&str], except: &[&str]) -> BroadcastOptions {
                BroadcastOptions::new()
                    .with_rooms(rooms(to))
                    .with_except(rooms(except))
            }

            /// Three sockets: a in x and y, b in x, c in muted (and each in its own room).
            async fn populated() -> (Subject, [SocketId; 3]) {
                let subject = adapter().await;
                let ids = [
                    SocketId::from("a"),
                    SocketId::from("b"),
                    SocketId::from("c"),
                ];
                let adapter = &subject.adapter;
                adapter.add_all(&ids[0], &rooms(&["a", "x", "y"]));
                adapter.add_all(&ids[1], &rooms(&["b", "x"]));
                adapter.add_all(&ids[2], &rooms(&["c", "muted"]));
                (subject, ids)
            }

            #[tokio::test]
            async fn room_events_follow_node_order() {
                let Subject { adapter, .. } = &adapter().await;
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

            #[tokio::test]
            async fn selection_reaches_each_socket_once() {
                let (Subject { adapter, local, .. }, [a, b, c]) = &populated().await;
                let packet = Packet::event("/", Payload::json(r#"["news",1]"#), None);
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
                let expected = vec![
                    vec![a.clone(), b.clone()],
                    vec![a.clone(), b.clone()],
                    vec![a.clone()],
                    vec![a.clone(), b.clone(), c.clone()],
                ];
                assert_eq!(*local.sent.lock(), expected);
                // Over a bus the broadcasts come back to this server: it delivered them already.
                tokio::time::sleep(BUS_ROUND_TRIP).await;
                assert_eq!(*local.sent.lock(), expected);
            }

            #[tokio::test]
            async fn rooms_of_a_socket_and_of_the_namespace() {
                let (Subject { adapter, .. }, [a, _, c]) = &populated().await;
                let mut of_a = adapter.socket_rooms(a);
                of_a.sort();
                assert_eq!(of_a, rooms(&["a", "x", "y"]));
                adapter.del_all(c);
                let mut all = adapter.rooms();
                all.sort();
                assert_eq!(all, rooms(&["a", "b", "x", "y"]));
                assert!(adapter.socket_rooms(c).is_empty());
            }

            #[tokio::test]
            async fn cluster_operations_act_on_the_selected_local_sockets() {
                let (Subject { adapter, local, .. }, [a, b, _]) = &populated().await;
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
                let check = || {
                    assert_eq!(
                        *local.joined.lock(),
                        vec![(vec![a.clone(), b.clone()], rooms(&["z"]))]
                    );
                    assert_eq!(*local.left.lock(), vec![(vec![a.clone()], rooms(&["x"]))]);
                    assert_eq!(*local.disconnected.lock(), vec![(vec![b.clone()], true)]);
                };
                check();
                // Over a bus the requests come back to this server: it acted on them already.
                tokio::time::sleep(BUS_ROUND_TRIP).await;
                check();
            }

            #[tokio::test]
            async fn alone_it_counts_itself_and_fetches_no_remote_socket() {
                let (Subject { adapter, .. }, _) = &populated().await;
                assert_eq!(adapter.server_count().await, 1);
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
