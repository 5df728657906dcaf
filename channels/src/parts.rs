//! What every channel folder exports, in one shape: its settings section (`Settings`),
//! the private files it names (`key_files`), the senders its settings give tenants
//! (`fixed_senders`), and one constructor (`build`) that returns its [`ChannelParts`]
//! from a [`ChannelEnv`]. The composition root lists the channels once (its
//! registry) and derives stages, webhook routes, the connectors view and metrics
//! labels from what the constructors return.

use std::sync::Arc;
use std::time::Duration;

use hermod_core::model::ChannelKind;
use hermod_core::net::AddressPolicy;
use hermod_core::ports::{
    AgentEvents, Channel, ConfigError, Connectors, Devices, Inbound, InboundSink, Leases, Messages,
    ReceiptSink, WebhookIngress,
};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// What this process does with a channel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Roles {
    /// Runs the channel's send stage (`hermod worker --stages <kind>`).
    pub send: bool,
    /// Plans messages or fires fallbacks: asks the channel what it knows of
    /// recipients, and withdraws its messages.
    pub plan: bool,
    /// Serves the HTTP API: the channel's webhooks, agent events, connectors.
    pub api: bool,
}

/// What the composition root gives every channel's constructor.
#[derive(Clone)]
pub struct ChannelEnv {
    pub roles: Roles,
    /// Replies (HELP) go out as new messages.
    pub messages: Arc<dyn Messages>,
    /// What providers send that is not a receipt.
    pub inbound: Arc<dyn Inbound>,
    /// The app channel's devices and inboxes.
    pub devices: Arc<dyn Devices>,
    /// Named leases: with `distributed`, each SMPP bind is held by one process.
    pub leases: Arc<dyn Leases>,
    /// Several worker processes share the channels (PostgreSQL + RabbitMQ).
    pub distributed: bool,
    /// This process, as a lease holder.
    pub holder: String,
    /// Lease length (renewed every third of it).
    pub lease_ttl: Duration,
    /// Receipts, batched into the store.
    pub receipts: Arc<dyn ReceiptSink>,
    /// Inbound (MO) parts: stored, reassembled, keywords applied.
    pub inbound_sink: Arc<dyn InboundSink>,
    /// Which addresses tenant-chosen URLs may reach (push relays, ...).
    pub policy: Arc<AddressPolicy>,
    /// Device ids with new envelopes: wakes this process's app streams.
    pub wake: broadcast::Sender<String>,
    /// The reply to an inbound HELP, on whichever channel it came.
    pub help_reply: Option<String>,
    pub cancel: CancellationToken,
}

/// What a channel's constructor returns; every part is optional.
pub struct ChannelParts {
    pub kind: ChannelKind,
    /// Messages may ask for this channel (it is configured here).
    pub offered: bool,
    /// Sends, assesses recipients, withdraws; None when this process does none of
    /// it for this channel.
    pub channel: Option<Arc<dyn Channel>>,
    /// The providers' webhooks, each served at `/v1/webhooks/{provider}/{name}`.
    pub ingress: Vec<(&'static str, Arc<dyn WebhookIngress>)>,
    /// Agent events (READ, typing) for inbound messages of this channel.
    pub agent_events: Option<Arc<dyn AgentEvents>>,
    /// Its entries in `GET /v1/connectors`, and what a reload changes.
    pub connectors: Option<Arc<dyn Connectors>>,
    /// How long a concatenated inbound message waits for its missing parts.
    pub inbound_part_timeout: Option<Duration>,
}

impl ChannelParts {
    /// Nothing of `kind` in this process.
    pub fn none(kind: ChannelKind) -> Self {
        Self {
            kind,
            offered: false,
            channel: None,
            ingress: Vec::new(),
            agent_events: None,
            connectors: None,
            inbound_part_timeout: None,
        }
    }
}

/// Why a channel could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{what}: {source}")]
    Tls {
        what: String,
        #[source]
        source: hermod_crypto::tls::TlsError,
    },
    #[error("{what}: {source}")]
    Http {
        what: String,
        #[source]
        source: reqwest::Error,
    },
}
