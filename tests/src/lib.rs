//! Shared fixtures of Belfry's integration tests: an engine with a recording echo handler served
//! by axum on `127.0.0.1:0` (`server`), a raw HTTP/1.1 client for exact-byte checks (`http`), a
//! raw WebSocket client for malformed frames (`raw_ws`), and runners for the official clients in
//! `tests/js` and `tests/py` (`clients`). Their items are re-exported here.
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)]

pub mod adapter_conformance;
pub mod browser;
mod clients;
pub mod cluster;
pub mod processes;
mod raw_http;
mod raw_ws;
pub mod scenarios;
mod server;

pub use clients::{js_dir, run_node, run_python};
pub use raw_http::{RawResponse, http, polling_joined, raw, read_response, upgrade_request};
pub use raw_ws::{RawWs, encode_frame};
pub use server::{
    Event, Recorder, TestServer, serve, serve_http1, serve_nodelay, serve_tls,
    serve_with_connect_info,
};
