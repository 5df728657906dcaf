//! Protocol-faithful provider simulators for tests, benchmarks and `hermod demo`: an
//! SMPP 3.4 SMSC, Google's RBM API and an app device. Each is written against the
//! public specification, not against Hermod's client code, and behaves like a real
//! peer (an SMSC that rate-limits, drops connections and never echoes what it need not).
//! The channels do not depend on this crate; only the binary and tests do.

pub mod device;
pub mod providers;
pub mod rbm;
pub mod smsc;
