//! The cluster-adapter core of Belfry: the protocol of Node's `ClusterAdapter`
//! (`socket.io-adapter` 2.5) that the adapters of a cluster of Socket.IO servers speak,
//! without the transport.
//!
//! A [`ClusterAdapter`] is one namespace's adapter: its rooms and local delivery, the
//! requests to the other servers and their answers (`fetch_sockets`, server-side events with
//! acks, broadcasts with acks), this server's answers to theirs, and, for transports that
//! cannot count servers themselves, heartbeats (Node's `ClusterAdapterWithHeartbeat`). What
//! carries the messages is a [`Transport`]: `belfry-redis` (classic and sharded pub/sub, and
//! Redis Streams) and `belfry-postgres` (`LISTEN`/`NOTIFY`) are each a transport and a
//! factory on top of this crate. A transport that keeps broadcasts in a store giving each an
//! offset (a stream) makes connection state recovery work across servers: see
//! [`Transport::gives_offsets`]. [`message`] has the messages and their envelope
//! [`ClusterMessage`] as Node's adapters write it; [`wire`] the values inside.
//!
//! ```
//! use std::sync::Arc;
//! use belfry_cluster::{
//!     ClusterAdapter, ClusterOptions, Heartbeat, Receiver, Transport,
//!     message::{Outgoing, Reply},
//! };
//! use belfry_core::adapter::{AdapterError, AdapterFactory};
//!
//! /// A transport that reaches nobody: every server of its "cluster" is alone.
//! struct Nowhere {
//!     receiver: Receiver,
//! }
//!
//! impl Transport for Nowhere {
//!     fn send(&self, message: &Outgoing<'_>) -> Result<(), AdapterError> {
//!         let _ = message;
//!         Ok(())
//!     }
//!
//!     fn reply(&self, to: Option<&str>, id: &str, reply: &Reply<'_>) -> Result<(), AdapterError> {
//!         let _ = (to, id, reply);
//!         Ok(())
//!     }
//! }
//!
//! let factory: AdapterFactory = Arc::new(|sockets| {
//!     let options = ClusterOptions::new("0123456789abcdef")
//!         .with_heartbeat(Some(Heartbeat::default()));
//!     Arc::new(ClusterAdapter::new(sockets, options, |receiver| {
//!         Arc::new(Nowhere { receiver })
//!     }))
//! });
//! # drop(factory);
//! ```
#![forbid(unsafe_code)]

mod adapter;
pub mod message;
pub mod queue;
pub mod wire;

pub use adapter::{ClusterAdapter, ClusterOptions, Heartbeat, Receiver, Transport};
pub use belfry_core::msgpack::WireError;
pub use message::ClusterMessage;
pub use queue::PublishQueue;

/// `bytes` random bytes from the OS CSPRNG in hex (Node's `randomBytes(n).toString("hex")`):
/// the form of Node's cluster adapters' uids and request ids.
pub fn random_hex(bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    getrandom::fill(&mut raw).expect("the OS random source is available");
    raw.iter().map(|b| format!("{b:02x}")).collect()
}
