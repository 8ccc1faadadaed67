//! The pieces of Belfry that adapter authors and Socket.IO clients need, without I/O.
//!
//! - [`parser`]: the Socket.IO v5 packet model, its JSON parser and its msgpack parser
//!   (`socket.io-msgpack-parser`), sans-IO.
//! - [`msgpack`]: arguments between JSON with placeholders and msgpack with binary in place
//!   (notepack.io's dialect, as Node's msgpack parser and Redis adapters use it).
//! - [`args`]: Rust values to Socket.IO argument lists and back (tuples spread, bytes as binary
//!   attachments behind placeholders), for the server's emits and a client's.
//! - [`adapter`]: the object-safe [`Adapter`](adapter::Adapter) trait (rooms, broadcasts,
//!   cluster-wide operations), broadcast options, Node's adapter events, and the in-memory
//!   [`LocalAdapter`](adapter::LocalAdapter).
#![forbid(unsafe_code)]

pub mod adapter;
pub mod args;
pub mod msgpack;
pub mod parser;

/// What the Engine.IO and Socket.IO layers share, without I/O (ids and their maps, `Str`, the
/// Engine.IO codecs): an adapter depends on it through this crate.
pub use belfry_proto as proto;
/// The string type of packets: UTF-8 over [`bytes::Bytes`], cloned in O(1), sliced without
/// copying (the engine's too).
pub use belfry_proto::Str;
