//! The pieces of Belfry that adapter authors need: the Socket.IO v5 packet model and parser,
//! rooms, broadcast options, and the `Adapter` trait with its in-memory implementation.
//!
//! **Not written yet.** This crate is a placeholder in the workspace so that the layout of
//! `docs/ARCHITECTURE.md` holds from the start; its content arrives with the Socket.IO layer.
//! Nothing here is usable today.
#![forbid(unsafe_code)]
