//! An [Engine.IO] v4 server for tower and axum: HTTP long-polling, WebSocket, the upgrade from one
//! to the other, and heartbeats, behaving as Node's `engine.io` 6.6 does.
//!
//! This crate knows nothing of Socket.IO: it moves text and binary messages between a client and
//! an [`EngineHandler`]. The `belfry` crate builds Socket.IO on top of it.
//!
//! # Mounting
//!
//! [`Engine::layer`] gives a tower [`Layer`](tower_layer::Layer) that answers requests under the
//! engine path (default `/socket.io/`) and passes every other request to the service it wraps, so
//! it joins an axum `Router` with one `.layer(..)`. Layers added around the engine with
//! [`EngineLayer::engine_layer`] see only engine requests (Node's `io.engine.use`), and what they
//! put in the request extensions stays with the session ([`Socket::req_parts`]).
//!
//! Layers added to the router *outside* the engine layer (CORS, tracing, sessions) wrap engine
//! requests too. A timeout layer shorter than the ping interval cuts long-polling GETs, which are
//! held up to one ping interval: keep such timeouts longer, or add them inside the router only.
//!
//! # Limits
//!
//! | limit | default | when it is hit |
//! |---|---|---|
//! | payload (`max_payload`) | 1 MB | polling POST: 413 before the body is read; WebSocket: close 1009. The session closes. |
//! | send queue per session | 128 packets, 1 MiB | [`Socket::send`] returns [`SendError::Full`]; full for longer than the ping timeout: the session closes |
//! | polling POST body time | the ping timeout | 408, the session closes |
//! | upgrade | 10 s | the new WebSocket closes, polling goes on |
//! | heartbeat | 25 s + 20 s | the session closes with "ping timeout" |
//! | sessions | none | 503 when [`EngineConfigBuilder::max_sessions`] is set |
//!
//! [Engine.IO]: https://socket.io/docs/v4/engine-io-protocol/
#![forbid(unsafe_code)]

mod config;
mod dispatch;
mod engine;
mod errors;
mod handler;
mod heartbeat;
pub mod inline;
mod origin;
mod payload_v3;
mod request;
mod service;
pub mod slots;
mod socket;
mod traced;
mod transport;

/// Entry points for the fuzz targets (`crates/belfry-engine/fuzz`), built only with
/// `--cfg fuzzing` (tests/fuzz.sh): not part of the API.
#[cfg(fuzzing)]
pub mod fuzzing {
    use crate::transport::frame::oracle;

    /// Reads `input` as a client's WebSocket frames with messages up to `max` bytes: never
    /// panics; arriving in pieces cut at `splits` reads the same; without compression, reads as
    /// tungstenite reads it (the differences by design aside: see the oracle's doc).
    pub fn ws_frames(input: &[u8], splits: &[usize], max: usize, inflate: bool) {
        let whole = oracle::belfry(input, max, inflate);
        let pieces = oracle::belfry_in_pieces(input, splits, max, inflate);
        assert_eq!(whole, pieces, "the same reading whatever the reads");
        if !inflate && let Err(difference) = oracle::compare(input, max) {
            panic!("the codec and tungstenite differ:\n{difference}");
        }
    }

    /// Reads `input` as a request's query: never panics, and reads as Node's
    /// `Object.fromEntries(new URL("?" + input, base).searchParams)` (every key and value
    /// form-decoded, the last of repeated keys wins; an empty `sid` is none, as Node tests it
    /// for truth), spelled out here the slow way.
    pub fn query(input: &str) {
        use belfry_proto::query::form_decode;

        use crate::{TransportType, request};

        let mut eio = None;
        let mut sid = None;
        let mut transport = None;
        let mut b64 = None;
        for pair in input.split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = form_decode(value);
            match form_decode(key).as_str() {
                "EIO" => eio = Some(value),
                "sid" => sid = Some(value).filter(|sid| !sid.is_empty()),
                "transport" => transport = Some(TransportType::parse(&value).ok_or(())),
                "b64" => b64 = Some(!value.is_empty()),
                _ => {}
            }
        }
        let parsed = request::Query::parse(Some(input));
        assert_eq!(parsed.eio.as_deref(), eio.as_deref(), "EIO");
        assert_eq!(parsed.sid.as_deref(), sid.as_deref(), "sid");
        assert_eq!(parsed.transport, transport, "transport");
        assert_eq!(
            request::asks_base64(Some(input)),
            b64.unwrap_or(false),
            "b64"
        );
    }
}

// What the engine shares with the Socket.IO layers lives in `belfry-proto` (no I/O); the
// engine's paths stay as they were.
pub use belfry_proto::{packet, payload};

/// Engine.IO session ids and the hash maps keyed by them (from `belfry-proto`).
pub mod sid {
    pub use belfry_proto::sid::{Sid, SidHash, SidHasher, SidMap, SidSet};
}

pub use belfry_proto::{Sid, Str};
pub use config::{Cookie, EngineConfig, EngineConfigBuilder};
pub use engine::Engine;
pub use errors::{CloseReason, SendError};
pub use handler::EngineHandler;
pub use packet::{DecodeError, OpenPacket, Packet};
pub use service::{
    BoxError, EngineBody, EngineHttp, EngineLayer, EngineService, NotFound, RequestBody,
    ResponseBody, ResponseFuture,
};
pub use socket::{SharedPackets, Socket};
pub use transport::TransportType;
