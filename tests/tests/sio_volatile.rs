//! Volatile broadcasts, as Node's: dropped for a client that cannot take them right now.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use belfry::SocketIo;
use belfry_tests::{http, polling_joined, serve};

#[tokio::test]
async fn volatile_packets_skip_clients_that_are_not_writable() {
    let (layer, io) = SocketIo::new_layer();
    let addr = serve(axum::Router::new().layer(layer)).await;
    // A long-polling client joined to `/`.
    let path = polling_joined(addr).await;

    // No GET pending: a volatile packet is dropped, a normal one waits for the next GET.
    assert_eq!(io.volatile().emit("typing", &()).unwrap(), 0);
    assert_eq!(io.emit("kept", &()).unwrap(), 1);
    assert_eq!(
        http(addr, "GET", &path, &[], b"").await.text(),
        r#"42["kept"]"#
    );

    // A GET pending: the volatile packet goes out.
    let pending = tokio::spawn({
        let path = path.clone();
        async move { http(addr, "GET", &path, &[], b"").await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(io.volatile().emit("typing", &()).unwrap(), 1);
    assert_eq!(pending.await.unwrap().text(), r#"42["typing"]"#);
}
