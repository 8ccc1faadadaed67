//! The adapter as a server sees it: Node's room events, and the operations that go through the
//! adapter (`sockets_join`, `sockets_leave`, `disconnect_sockets`).
#![allow(clippy::unwrap_used)]

use std::{sync::Arc, time::Duration};

use belfry::{SocketIo, SocketRef, core::adapter::AdapterEvent};
use belfry_tests::{RawWs, serve};
use parking_lot::Mutex;

#[tokio::test]
async fn room_events_and_operations_through_the_adapter() {
    let (layer, io) = SocketIo::new_layer();
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    io.ns("/", |socket: SocketRef| async move {
        socket.join("lobby");
    })
    .on_adapter_event(Box::new(move |event| {
        // The socket's own room is named after its random id: keep the kind of event only.
        let named = |room: &String| {
            if room == "lobby" || room == "extra" {
                room.clone()
            } else {
                "own".to_owned()
            }
        };
        let entry = match event {
            AdapterEvent::CreateRoom(room) => format!("create {}", named(room)),
            AdapterEvent::DeleteRoom(room) => format!("delete {}", named(room)),
            AdapterEvent::JoinRoom(room, _) => format!("join {}", named(room)),
            AdapterEvent::LeaveRoom(room, _) => format!("leave {}", named(room)),
            _ => "other".to_owned(),
        };
        sink.lock().push(entry);
    }));
    let addr = serve(axum::Router::new().layer(layer)).await;
    let (mut ws, _) = RawWs::open(addr).await;
    ws.frame(0x81, b"40").await;
    let (_, reply) = ws.read_frame().await.unwrap();
    assert!(reply.starts_with(b"40{\"sid\""));
    let wait_for = |n: usize| {
        let events = events.clone();
        async move {
            for _ in 0..250 {
                if events.lock().len() >= n {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    wait_for(4).await;

    // Through the adapter: every socket of "lobby" joins "extra", then leaves it.
    io.to("lobby").sockets_join("extra").await.unwrap();
    let sockets = io.to("extra").sockets();
    assert_eq!(sockets.len(), 1);
    io.to("lobby").sockets_leave("extra").await.unwrap();
    assert!(io.to("extra").sockets().is_empty());

    // Disconnect everyone in "lobby": the client gets DISCONNECT, every room is gone.
    io.to("lobby").disconnect_sockets(false).await.unwrap();
    let (_, frame) = ws.read_frame().await.unwrap();
    assert_eq!(frame, b"41");
    wait_for(12).await;
    let events = events.lock().clone();
    assert_eq!(
        events[..8],
        [
            "create own",
            "join own",
            "create lobby",
            "join lobby", // connect, then join
            "create extra",
            "join extra",
            "leave extra",
            "delete extra", // sockets_join/leave
        ]
    );
    // Leaving every room at disconnect: rooms in any order, each left before it is deleted.
    let mut last: Vec<&str> = events[8..].iter().map(String::as_str).collect();
    for room in ["own", "lobby"] {
        let leave = last
            .iter()
            .position(|e| *e == format!("leave {room}"))
            .unwrap();
        let delete = last
            .iter()
            .position(|e| *e == format!("delete {room}"))
            .unwrap();
        assert!(leave < delete, "{events:?}");
    }
    last.sort_unstable();
    assert_eq!(
        last,
        ["delete lobby", "delete own", "leave lobby", "leave own"]
    );
    assert!(io.rooms("/").unwrap().is_empty());
}
