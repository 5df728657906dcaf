//! Channel adapters. Each channel has the same shape: settings, client, encoding,
//! receipts. Simulators of the providers live in their own crate (`hermod-sim`), so
//! this one carries no HTTP server.

pub mod app;
pub mod hooks;
pub mod net;
mod parts;
pub mod providers;
pub mod rcs;
pub mod smpp;

pub use parts::{BuildError, ChannelEnv, ChannelParts, Roles};
