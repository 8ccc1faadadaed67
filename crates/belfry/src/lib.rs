//! Belfry: a Socket.IO v4 server for tower and axum.
//!
//! Namespaces (static and dynamic), connect and per-packet middlewares, events with extractor
//! handlers, acks both ways, binary anywhere in the arguments, rooms and broadcasts (with acks),
//! connection state recovery, the msgpack parser, socket.io 2.x clients, the Admin UI (feature
//! `admin`) and, with the `belfry-redis` or `belfry-postgres` crate, clusters shared with Node
//! servers ([running many nodes](guides::many_nodes)). Checked against Node's `socket.io` 4.8
//! by differential tests. Published as the `belfry-io` package.
//!
//! The [`guides`] go further, from [getting started with axum](guides::getting_started) to
//! [migrating from Node's socket.io](guides::from_node).
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
//! belfry::serve(listener, app)
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
//! The handlers of one socket start in the order the packets arrived, and those that await run
//! concurrently, as in Node (at most `max_handlers_in_flight` per socket; `serial_handlers()`
//! runs a namespace's one at a time). Acknowledgements from the client are never queued, so a
//! handler may wait for one.
//!
//! ```
//! use belfry::{AckSender, SocketIo, SocketRef, extract::{Data, State, TryData}};
//!
//! #[derive(Clone)]
//! struct Greeting(&'static str);
//!
//! #[derive(serde::Deserialize)]
//! struct Login { name: String }
//!
//! let (_layer, io) = SocketIo::builder().with_state(Greeting("hello")).build_layer();
//! io.ns("/", |socket: SocketRef| async move {
//!     // One argument deserialized into a type; refused (and the ack answered) if it does not fit.
//!     socket.on("login", |socket: SocketRef, Data(login): Data<Login>, State(g): State<Greeting>| async move {
//!         let _ = socket.emit("welcome", &format!("{} {}", g.0, login.name));
//!     });
//!     // Never refused: the handler sees the error.
//!     socket.on("maybe", |TryData(n): TryData<u32>, ack: AckSender| async move {
//!         let _ = ack.send(&n.is_ok());
//!     });
//! });
//! ```
//!
//! # Arguments
//!
//! Node sends any number of arguments; in Rust one value is given: a tuple is spread into
//! several arguments, `()` is none, anything else one (a `Vec` is one argument, an array; a
//! fixed-size array spreads, as serde writes it as a tuple). [`extract::Args`] takes every
//! argument, however many, and serializes back spread. A `bytes::Bytes` anywhere in the data
//! is sent as a binary attachment (a `Buffer` for a Node client), and a client's `Buffer`
//! anywhere fills a `Bytes` field of `Data<T>`; [`extract::Bin`] gives the raw attachments.
//!
//! # Acknowledgements
//!
//! A client's callback is answered with [`AckSender`]; the server asks a client with
//! [`Socket::emit_with_ack`] (a timeout from [`SocketIoBuilder::ack_timeout`], 5 s by
//! default), and every client of a broadcast with [`BroadcastOperator::emit_with_ack`], whose
//! [`AckStream`] yields each socket's answer (or its timeout) and can be awaited whole.
//!
//! # Rooms and broadcasting
//!
//! A socket is in the room named after its id, and joins others with [`Socket::join`]. A
//! [`BroadcastOperator`] selects sockets (`to`/`within` add rooms, `except` removes them,
//! each socket is reached once) and sends to all of them, encoding the packet once:
//!
//! ```
//! use belfry::{SocketIo, SocketRef, extract::Data};
//!
//! let (_layer, io) = SocketIo::new_layer();
//! io.ns("/", |socket: SocketRef| async move {
//!     socket.on("enter", |socket: SocketRef, Data(room): Data<String>| async move {
//!         socket.join(room.clone());
//!         let _ = socket.to(room.clone()).emit("entered", socket.id().as_str()); // not the sender
//!         let _ = socket.io().to(room).emit("count", &1); // everyone in the room
//!     });
//! });
//! ```
//!
//! Rooms and broadcasts go through the namespace's [adapter](belfry_core::adapter): in memory
//! by default ([`LocalAdapter`](belfry_core::adapter::LocalAdapter)), across servers with a
//! cluster adapter plugged in with [`SocketIoBuilder::adapter`].
//!
//! # Middlewares
//!
//! Connect middlewares ([`NamespaceHandle::middleware`], Node's `nsp.use`) run in order before
//! the client is answered; an `Err` of any error type that implements `Display` refuses it with
//! a CONNECT_ERROR `{"message":..}` (a [`ConnectError`] adds Node's `err.data`). Per-packet
//! middlewares ([`Socket::packet_middleware`], Node's `socket.use`) run before an event's
//! listeners and may drop it.
//!
//! ```
//! use belfry::{ConnectError, SocketIo, SocketRef, extract::{Data, Event}};
//!
//! #[derive(serde::Deserialize)]
//! struct Auth { token: String }
//!
//! let (_layer, io) = SocketIo::new_layer();
//! io.ns("/admin", |socket: SocketRef| async move {
//!     socket.packet_middleware(|Event(name): Event| async move {
//!         if name == "shutdown" { Err("not here") } else { Ok(()) }
//!     });
//! })
//! .middleware(|Data(auth): Data<Auth>| async move {
//!     if auth.token == "secret" { Ok(()) } else { Err(ConnectError::new("not authorized")) }
//! });
//! ```
//!
//! # Dynamic namespaces
//!
//! [`SocketIo::dynamic_ns`] matches namespace names with a function (use the `regex` crate in
//! it for patterns); children are created on demand, share the parent's handler and
//! middlewares, and are removed with their last socket.
//!
//! # Layer order and tower middleware
//!
//! The layer answers `/socket.io/` itself: layers that must see engine requests (CORS, tracing,
//! sessions) go outside it (`Router::layer` after it), or inside with
//! [`SocketIoLayer::engine_layer`] (Node's `io.engine.use`); what they put in the request
//! extensions reaches handlers through [`extract::HttpExtension`]. A `TimeoutLayer` shorter
//! than the ping interval (25 s) cuts long-polling requests.
//!
//! # Shutdown
//!
//! [`SocketIo::close`] disconnects every socket with "server shutting down" and resolves once
//! all connections are gone; call it in axum's graceful shutdown (axum does not track
//! upgraded WebSockets itself).
//!
//! # Limits
//!
//! Engine limits are in [`engine`] (1 MB payloads, bounded send queues, timeouts). A socket's
//! pending events are capped (65,536 events or 16 MiB); a client past that is cut off. A packet
//! carries at most 10 binary attachments ([`SocketIoBuilder::max_attachments`]).
#![forbid(unsafe_code)]
// docs.rs (`--cfg docsrs`, nightly) marks items behind a feature.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod ack;
#[cfg(feature = "admin")]
#[cfg_attr(docsrs, doc(cfg(feature = "admin")))]
pub mod admin;
mod client;
mod client_files;
mod errors;
pub mod extract;
pub mod guides;
pub mod handler;
mod handshake;
mod io;
mod ns;
mod observe;
mod operators;
mod remote;
mod rooms;
mod serve;
mod server_side;
mod socket;

/// The README's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;

pub use ack::AckSender;
pub use belfry_core as core;
/// `socket.emit("ev", &Spread(&values))` sends `["ev", v1, ..., vn]`, as a tuple or
/// [`Args`](crate::extract::Args) would.
///
/// ```
/// use belfry::{SocketRef, Spread, Value};
///
/// fn send_all(socket: &SocketRef, values: &[Value]) {
///     let _ = socket.emit("values", &Spread(values));
/// }
/// # let _ = send_all;
/// ```
pub use belfry_core::args::Spread;
pub use belfry_core::proto::SocketId;
pub use belfry_core::proto::value::{Binary, Map, Value};
pub use belfry_engine as engine;
pub use errors::{AckError, ConnectError, DisconnectReason, EmitError, ServerSideError};
pub use handshake::Handshake;
pub use io::{NamespaceHandle, ParentNamespaceHandle, SocketIo, SocketIoBuilder, SocketIoLayer};
pub use operators::{AckStream, BroadcastOperator};
pub use remote::RemoteSocket;
pub use rooms::IntoRooms;
pub use serve::{Serve, WithGracefulShutdown, serve};
pub use server_side::ServerSideEvent;
pub use socket::{ListenerId, Socket, SocketOperator, SocketRef};
