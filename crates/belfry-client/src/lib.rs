//! A Socket.IO v4 client for Rust services, bots, tests and load generators, on Belfry's own
//! codecs (the Engine.IO packets, the Socket.IO parser and the argument encoding its server
//! uses).
//!
//! ```no_run
//! use belfry_client::ClientBuilder;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let socket = ClientBuilder::new("http://127.0.0.1:3000")
//!     .on("message", |event| async move {
//!         let text: String = event.data().unwrap_or_default();
//!         println!("{text}");
//!     })
//!     .connect()
//!     .await?;
//! socket.emit("join", "lobby")?;
//! let count: u32 = socket.emit_with_ack("count", &()).await?;
//! # let _ = count;
//! # Ok(()) }
//! ```
//!
//! What it does today, as socket.io-client 4.8 does:
//! - `http://` and `ws://` URLs, and `https://` and `wss://` with the `tls` feature (on by
//!   default: rustls, the system's root certificates or [`ClientBuilder::root_certificates`]);
//! - the transports: HTTP long-polling first, then the upgrade to WebSocket (a probe on a new
//!   WebSocket, polling paused, what waited flushed over the WebSocket), or either alone
//!   ([`ClientBuilder::transports`]); cookies the server (or a load balancer) sets are sent
//!   back with every request, so sticky sessions work; Engine.IO v4: it answers the server's
//!   pings and closes a connection whose server was silent for `pingInterval + pingTimeout`;
//! - namespaces, each joined with its own `auth` object, several over one connection (a
//!   [`Manager`]: [`Socket::io`], [`Manager::socket`]); a refusal comes back as
//!   [`ConnectError::Refused`] with the server's message and data;
//! - events with any arguments, binary anywhere ([`Value::Binary`], or `bytes::Bytes`
//!   fields), acknowledgements both ways, with a timeout; volatile emits; listeners per event
//!   and for every event, on the builder or on a connected socket ([`Socket::on`],
//!   [`Socket::once`], [`Socket::off`]), run one at a time in the order events came, and of
//!   the socket's own emits ([`Socket::on_any_outgoing`]); `auth` as an object or a function
//!   called before each connection ([`ClientBuilder::auth_with`]);
//! - reconnection with socket.io-client's options and backoff (whose arithmetic saturates
//!   instead of overflowing after a thousand attempts), its Manager events
//!   ([`ReconnectEvent`]) and `connect_error` ([`ClientBuilder::on_connect_error`]), emits
//!   made while disconnected sent on reconnection;
//! - connection state recovery: the private id and the last offset are sent on reconnection,
//!   [`Socket::recovered`] says whether the session came back;
//! - retries ([`ClientBuilder::retries`]): every emit delivered at least once, in order;
//! - the disconnect reasons of socket.io-client ([`DisconnectReason`]);
//! - the msgpack parser of `socket.io-msgpack-parser` as an option ([`ClientBuilder::parser`]).
//!
//! Bounds: events wait for the listeners up to 4096 (past that the connection is dropped and
//! made again, which recovery, when on, makes up for); a message (or a polling response) is
//! 16 MiB at most; a POST holds no more than the server's `maxPayload` (one packet larger
//! than that goes alone); the server sets 64 cookies at most. What the application emits
//! while disconnected (or faster than the server takes it) waits in memory, as in
//! socket.io-client: the client does not drop the application's own emits. An ack
//! whose event was sent fails with [`AckError::Disconnected`] when the connection is lost, one
//! whose timeout passes while disconnected is not sent any more. [`ClientBuilder::connect`]
//! waits until the namespace is joined: with reconnection on and no attempt limit, as long as
//! the server cannot be reached.
//!
//! The connection closes when its sockets are gone: each leaves its namespace when its last
//! [`Socket`] clone is dropped (a listener that keeps a clone keeps it), or with
//! [`Socket::disconnect`]. No task outlives the handles.
//!
//! Where it differs from socket.io-client 4.8, on purpose:
//! - the backoff's exponent saturates (the JavaScript arithmetic overflows after about a
//!   thousand attempts and then fires half of them at once);
//! - under retries, an ack's arguments are the answer, as without retries (socket.io-client
//!   takes the first for an error, unless `ackTimeout` is set); a try without a timeout is made
//!   again only when the connection is lost;
//! - after the last attempt, [`ReconnectEvent::Error`] comes before
//!   [`ReconnectEvent::Failed`] (socket.io-client emits `reconnect_failed` first), and the
//!   socket is no longer [`Socket::active`] (socket.io-client's stays `active`);
//! - a volatile emit made while disconnected is dropped (socket.io-client buffers one made
//!   before it noticed the connection was gone);
//! - a socket per namespace: [`Manager::socket`] refuses a namespace already joined
//!   ([`ConnectError::AlreadyJoined`]) where socket.io-client returns the socket it has;
//! - the WebSocket is not compressed (no `permessage-deflate`), so there is no `compress`
//!   flag; Node's servers leave compression off by default too;
//! - a socket that was disconnected (by the client, the server, or for good) stays so: an
//!   emit on it fails with [`EmitError::Closed`] (socket.io-client buffers it), and joining
//!   again is a new socket ([`Manager::socket`]) where socket.io-client calls `connect()` on
//!   the old one.
#![forbid(unsafe_code)]

mod backoff;
mod builder;
mod data;
mod engine;
mod error;
mod listeners;
mod manager;
mod socket;
mod tls;

pub use belfry_core::parser::Parser;
pub use belfry_core::proto::value::Value;
pub use builder::{ClientBuilder, SocketBuilder};
pub use engine::{Transport, Transports};
pub use error::{AckError, ConnectError, DisconnectReason, EmitError};
pub use listeners::{Event, ListenerId, ReconnectEvent};
pub use socket::{Manager, Socket};
