//! Belfry: a Socket.IO v4 server for tower and axum.
//!
//! **Work in progress.** Namespaces (static and dynamic), connect and per-packet middlewares,
//! events with extractor handlers, acks both ways, binary, rooms and broadcasts (with acks) work
//! with the official clients. The `Adapter` trait (for the Redis adapter), cluster-wide
//! operations and connection state recovery come next (see `CHANGELOG.md`).
//!
//! # Quick start with axum
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use belfry::{AckSender, SocketIo, SocketRef, extract::Data};
//!
//! # async fn run() -> std::io::Result<()> {
//! let (layer, io) = SocketIo::new_layer();
//! io.ns("/", |socket: SocketRef, Data(auth): Data<serde_json::Value>| async move {
//!     tracing::info!(id = %socket.id(), ?auth, "connected");
//!     socket.on("join", |socket: SocketRef, Data(room): Data<String>| async move {
//!         socket.join(room);
//!     });
//!     socket.on("chat", |socket: SocketRef, Data((room, text)): Data<(String, String)>, ack: AckSender| async move {
//!         let _ = socket.to(room).emit("chat", &text);
//!         let _ = ack.send(&"delivered");
//!     });
//! });
//! let app = Router::new().route("/", get(|| async { "hello" })).layer(layer);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app)
//!     .with_graceful_shutdown(async move {
//!         let _ = tokio::signal::ctrl_c().await;
//!         io.close().await;
//!     })
//!     .await
//! # }
//! ```
//!
//! # Handlers and extractors
//!
//! Handlers are async functions whose arguments are extractors ([`extract`]): the socket, the
//! event's data, its ack, state, request extensions. Extraction happens before the handler
//! runs; a failure is answered to the client (a refused connect, or an ack carrying
//! `{"error": message}`), never dropped.
//!
//! The handlers of one socket run one at a time, in the order the packets arrived; a slow
//! handler delays only its socket. Acknowledgements from the client bypass that queue, so a
//! handler may wait for one.
//!
//! # Arguments
//!
//! Node sends any number of arguments; in Rust one value is given (see the `args` rules): a
//! tuple is spread into several arguments, `()` is none, anything else one.
//!
//! # Layer order
//!
//! The layer answers `/socket.io/` itself: layers that must see engine requests (CORS, tracing,
//! sessions) go outside it (`Router::layer` after it), or inside with
//! [`SocketIoLayer::engine_layer`].
#![forbid(unsafe_code)]

mod ack;
mod args;
mod client;
mod errors;
pub mod extract;
pub mod handler;
mod handshake;
mod io;
mod ns;
mod operators;
mod socket;

pub use ack::AckSender;
pub use belfry_core as core;
pub use belfry_engine as engine;
pub use errors::{AckError, ConnectError, DisconnectReason, EmitError};
pub use handshake::Handshake;
pub use io::{NamespaceHandle, ParentNamespaceHandle, SocketIo, SocketIoBuilder, SocketIoLayer};
pub use operators::{AckStream, BroadcastOperator};
pub use socket::{Socket, SocketRef};
