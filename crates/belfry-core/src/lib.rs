//! The pieces of Belfry that adapter authors need.
//!
//! Today: the Socket.IO v5 packet model and its JSON parser ([`parser`]), sans-IO. The rooms,
//! broadcast options and the `Adapter` trait with its in-memory implementation arrive with the
//! Socket.IO layer.
#![forbid(unsafe_code)]

pub mod parser;

/// The string type of packets: UTF-8 over [`bytes::Bytes`], cloned in O(1), sliced without
/// copying (the engine's own).
pub use belfry_engine::Str;
