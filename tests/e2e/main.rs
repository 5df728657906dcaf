//! End-to-end tests: the store on SQLite and on the real PostgreSQL, the HTTP API of
//! the real `hermod` binary against the SMSC simulator, and a SIGKILL in mid-run.

mod admin;
mod alerts;
mod api;
mod app;
mod audit;
mod browser;
mod bulk;
mod compliance;
mod conformance;
mod console;
mod contract;
mod crash;
mod demo;
mod distributed;
mod docs;
mod fallback;
mod isolation;
mod providers;
mod queue;
mod rcs;
mod smpp_server;
mod sms;
mod store;
mod support;
mod twilio;
mod webhooks;
