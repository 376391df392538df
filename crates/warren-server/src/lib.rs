//! The `warren` server: configuration, the TCP listener, and for each connection one task that
//! reads frames, runs the AMQP handshake and the per-channel state machine, and writes replies and
//! deliveries in batches.
//!
//! Queue internals belong to `warren-broker`; this crate only turns frames into calls on it and its
//! results back into frames.

pub mod alarm;
mod channel;
pub mod config;
mod connection;
pub mod ctl;
pub mod disk;
pub mod healthcheck;
pub mod memory;
pub mod registry;
mod server;
pub mod tls;

pub use server::{Server, ServerHandle};
