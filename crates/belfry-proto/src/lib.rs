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

/// The Engine.IO path as servers and clients both use it (Node's `path` option, `/socket.io/`
/// by default): a leading and a trailing slash added if missing, so that `socket.io`,
/// `/socket.io` and `/socket.io/` name the same path.
pub fn engine_path(path: impl Into<String>) -> String {
    let mut path = path.into();
    if !path.starts_with('/') {
        path.insert(0, '/');
    }
    if !path.ends_with('/') {
        path.push('/');
    }
    path
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_engine_path_has_both_slashes() {
        for path in ["socket.io", "/socket.io", "socket.io/", "/socket.io/"] {
            assert_eq!(super::engine_path(path), "/socket.io/");
        }
        assert_eq!(super::engine_path(""), "/");
        assert_eq!(super::engine_path("/"), "/");
    }
}
