//! Channel adapters. Each channel has the same shape: settings, client, encoding,
//! receipts. Simulators of the providers live in `sim` and follow the public specs,
//! not our client code.

pub mod app;
pub mod hooks;
pub mod net;
pub mod rcs;
pub mod sim;
pub mod smpp;
