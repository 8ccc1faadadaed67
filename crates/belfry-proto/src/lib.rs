//! What Belfry's Engine.IO server (`belfry-engine`) and its Socket.IO layers (`belfry-core`,
//! `belfry`, the adapters) share, without I/O and without async: [`Str`], a UTF-8 string over
//! `Bytes` that clones and slices in O(1); the ids ([`Sid`] for Engine.IO sessions,
//! [`SocketId`] for Socket.IO sockets) and their hash maps; the Engine.IO codecs ([`packet`],
//! [`payload`]); [`Value`], any Socket.IO argument, binary included. An adapter or a tool depends on this crate (through `belfry-core`) without
//! compiling an HTTP server.
#![forbid(unsafe_code)]

pub mod packet;
pub mod payload;
pub mod query;
pub mod sid;
mod str;
pub mod value;

pub use packet::{DecodeError, OpenPacket, Packet};
pub use sid::{Sid, SocketId};
pub use str::Str;
pub use value::{Binary, Value};
