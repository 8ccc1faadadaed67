//! Belfry: a Socket.IO v4 server for tower and axum.
//!
//! **Work in progress.** Today Belfry has its transport layer, a complete Engine.IO v4 server
//! (re-exported here as [`engine`]): long-polling, WebSocket, the upgrade between them,
//! heartbeats, and the tower layer that mounts it in an axum `Router`. The Socket.IO layer
//! (namespaces, events, acks, rooms, broadcasts) is built on it next; until then this crate
//! offers only the engine.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use belfry::engine::{DisconnectReason, EngineHandler, Packet, Socket, Str};
//! # struct Echo;
//! # impl EngineHandler for Echo {
//! #     type Data = ();
//! #     fn on_connect(&self, _: Arc<Socket<()>>) {}
//! #     fn on_disconnect(&self, _: Arc<Socket<()>>, _: DisconnectReason) {}
//! #     fn on_message(&self, s: &Arc<Socket<()>>, t: Str) { let _ = s.send(Packet::Message(t)); }
//! #     fn on_binary(&self, s: &Arc<Socket<()>>, b: bytes::Bytes) { let _ = s.send(Packet::Binary(b)); }
//! # }
//! use belfry::engine::{Engine, EngineConfig};
//!
//! let engine = Engine::new(Echo, EngineConfig::default());
//! let app: axum::Router = axum::Router::new().layer(engine.layer());
//! ```
#![forbid(unsafe_code)]

pub use belfry_engine as engine;
