//! `State<T>`: registered states, and states derived with axum's `FromRef`.
#![allow(clippy::unwrap_used)]

use axum::extract::FromRef;
use belfry::{SocketIo, SocketRef, extract::State};
use belfry_tests::{RawWs, serve};

#[derive(Clone)]
struct AppState {
    db: Db,
    name: &'static str,
}

#[derive(Clone)]
struct Db(&'static str);

impl FromRef<AppState> for Db {
    fn from_ref(app: &AppState) -> Db {
        app.db.clone()
    }
}

#[tokio::test]
async fn registered_and_derived_states_reach_handlers() {
    let (layer, io) = SocketIo::builder()
        .with_state(AppState {
            db: Db("postgres://db"),
            name: "app",
        })
        .with_state_from::<AppState, Db>()
        .build_layer();
    io.ns(
        "/",
        |socket: SocketRef, State(app): State<AppState>, State(db): State<Db>| async move {
            let _ = socket.emit("states", &(app.name, db.0));
        },
    );
    // A state nobody registered refuses the connect, with a message saying how to fix it.
    io.ns(
        "/missing",
        |_socket: SocketRef, State(_n): State<u64>| async {},
    );
    let addr = serve(axum::Router::new().layer(layer)).await;

    let (mut ws, _) = RawWs::open(addr).await;
    ws.frame(0x81, b"40").await;
    let (_, connect) = ws.read_frame().await.unwrap();
    assert!(connect.starts_with(b"40{\"sid\""));
    let (_, event) = ws.read_frame().await.unwrap();
    assert_eq!(
        String::from_utf8(event).unwrap(),
        r#"42["states","app","postgres://db"]"#
    );

    ws.frame(0x81, b"40/missing,").await;
    let (_, refusal) = ws.read_frame().await.unwrap();
    let refusal = String::from_utf8(refusal).unwrap();
    assert!(refusal.starts_with("44/missing,"), "{refusal}");
    assert!(
        refusal.contains("State of type `u64` was not found"),
        "{refusal}"
    );
}
