//! The leaves every part of the store builds on: connections, pools and migrations,
//! SQLite's writer, the schema and its rows, batch inserts, sealing at rest, the audit
//! chain's append, and the few rows that several parts write in their own
//! transactions (timeline events, audit facts, webhook deliveries, provider event
//! markers, opt-out checks). Nothing here imports a part of the store above it.

pub(crate) mod batch;
pub(crate) mod chain;
pub(crate) mod common;
pub(crate) mod conn;
pub(crate) mod db;
pub(crate) mod deliveries;
pub(crate) mod markers;
pub(crate) mod optouts;
pub mod pg_tls;
pub mod rows;
pub mod schema;
pub(crate) mod seal;
pub mod sqlprof;
pub(crate) mod writer;
