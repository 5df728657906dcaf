//! Protocol-faithful provider simulators for tests, benchmarks and `hermod demo`.

pub mod device;
pub mod rbm;
pub mod smsc;
