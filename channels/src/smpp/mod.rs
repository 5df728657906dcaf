//! SMS over SMPP 3.4 with rusmpp: an ESME client with a window of outstanding
//! submits, enquire_link keep-alive, reconnect with backoff, GSM 03.38 / UCS-2,
//! UDH concatenation, and delivery receipts mapped to the unified status.

mod client;
pub mod dlr;
pub mod gsm;
pub mod status;

pub use client::{SmppChannel, SmppSettings};
