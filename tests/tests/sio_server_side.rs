//! Server-side emits on a single server (the cluster case is in redis_cluster.rs): nobody else
//! to tell, reserved names refused as Node refuses them.
#![allow(clippy::unwrap_used)]

use belfry::{EmitError, ServerSideError, SocketIo};

#[tokio::test]
async fn a_single_server_has_nobody_to_tell() {
    let (_layer, io) = SocketIo::new_layer();
    io.server_side_emit("hello", &(1, "two")).await.unwrap();
    let answers: Vec<String> = io.server_side_emit_with_ack("hello", &()).await.unwrap();
    assert!(answers.is_empty());
    assert_eq!(
        io.of("/").unwrap().all_rooms().await.unwrap(),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn reserved_names_are_refused() {
    let (_layer, io) = SocketIo::new_layer();
    for name in ["connect", "connection", "new_namespace"] {
        let refused = io.server_side_emit(name, &()).await;
        assert!(
            matches!(refused, Err(ServerSideError::Emit(EmitError::ReservedEvent(ref n))) if n == name),
            "{name}: {refused:?}"
        );
    }
}
