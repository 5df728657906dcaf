//! SMS over SMPP 3.4 with rusmpp: connectors (each any number of transceiver or
//! transmitter + receiver binds, TLS, a window, a token bucket), prefix routes with
//! failover, GSM 03.38 / Latin-1 / UCS-2 with UDH concatenation, tolerant delivery
//! receipts, and inbound messages.

mod bind;
mod bucket;
mod clock;
pub mod config;
mod connector;
pub mod dlr;
mod health;
pub use hermod_core::gsm;
pub mod mo;
mod parts;
mod router;
pub mod status;
pub mod tls;
#[cfg(test)]
mod vectors;

pub use bind::{BindLeases, BindStatus, Mode, Sinks};
pub use bucket::TokenBucket;
pub use config::{BindMode, ConnectorConfig, RouteConfig, SmppConfig};
pub use connector::{ConnectorStatus, relative_validity, scoped_id, source_addr};
pub use health::Health;
pub use parts::{Settings, build, fixed_senders, key_files};
pub use router::{SmsRouter, Upstream};
