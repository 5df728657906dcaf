//! RCS through Google's RBM API v1: agent settings, the HTTPS client (OAuth with a
//! service-account JWT, capability cache, send, revoke), our content model in RBM's
//! JSON shape, the channel, and the webhook ingress for RBM events.

mod channel;
mod client;
mod config;
mod message;
mod parts;
mod webhook;

pub use channel::{RcsChannel, codes, provider_id};
pub use client::{BATCH_GET_MAX, Capability, RbmClient, RbmError, Revoke, SCOPE, message_id_for};
pub use config::{AgentConfig, DEFAULT_BASE_URL, RcsConfig, Region, ServiceAccount};
pub use message::{agent_message, content_message};
pub use parts::{Settings, build, fixed_senders, key_files};
pub use webhook::{InvalidEvent, RbmEvent, RbmWebhook, decode_event};

#[cfg(test)]
mod tests;
