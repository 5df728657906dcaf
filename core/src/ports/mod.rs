//! The traits the pipeline is generic over. Adapters (store, queue, channels) implement
//! them; `api` and `workers` only ever see these, and each names only the ports it uses:
//!
//! - the store's, one per concern: [`Messages`] (accept and read), [`Dispatch`] (plan,
//!   claim, record, receipts, fallback), [`Inbound`] (MO, opt-outs, provider events),
//!   [`Tenants`] (keys and defaults), [`Devices`], [`Templates`], [`Hooks`],
//!   [`Leases`], and the compliance ports in `audit` and `webhook`;
//! - the queue's: [`Queue`], and the store's job table behind the embedded one,
//!   [`Outbox`];
//! - a channel's: [`Channel`] with its [`ChannelError`], and what it hands back
//!   ([`ReceiptSink`], [`InboundSink`]) or serves ([`WebhookIngress`], [`AgentEvents`]).

mod channel;
mod queue;
mod records;
mod store;

pub use channel::*;
pub use queue::*;
pub use records::*;
pub use store::*;

pub use crate::error::{ConfigError, PortError, PortResult};
