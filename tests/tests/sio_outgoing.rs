//! The outgoing listener (Node's `onAnyOutgoing`) sees broadcasts as well as direct emits.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use belfry::{SocketIo, SocketRef};
use belfry_tests::{http, polling_joined, serve};
use parking_lot::Mutex;

#[tokio::test]
async fn broadcasts_reach_the_outgoing_listener() {
    let (layer, io) = SocketIo::new_layer();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = seen.clone();
    io.ns("/", move |socket: SocketRef| {
        let log = log.clone();
        async move {
            socket.on_any_outgoing(move |event, args| {
                let args = serde_json::to_string(args).unwrap();
                log.lock().push(format!("{event} {args}"));
            });
        }
    });
    let addr = serve(axum::Router::new().layer(layer)).await;
    let path = polling_joined(addr).await;

    assert_eq!(io.emit("news", &1).unwrap(), 1);
    assert_eq!(io.to("nobody").emit("lost", &2).unwrap(), 0);
    assert_eq!(
        http(addr, "GET", &path, &[], b"").await.text(),
        r#"42["news",1]"#
    );
    assert_eq!(*seen.lock(), vec!["news [1]".to_owned()]);
}
