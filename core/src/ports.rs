//! The traits the pipeline is generic over. Adapters (store, queue, channels) implement
//! them; `api` and `workers` only ever see these.

use std::time::Duration;

use async_trait::async_trait;

use crate::inbound::*;
use crate::model::*;
use crate::plan::*;
use crate::{AttemptId, MessageId, Status, TenantId};

/// Errors from a backend. `Conflict` is a uniqueness clash the caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("backend unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("backend error")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

pub type PortResult<T> = Result<T, PortError>;

/// Durable state: tenants, keys, messages, attempts, the event timeline.
#[async_trait]
pub trait Store: Send + Sync {
    /// Creates the tenant if needed and stores an API key hash for it.
    async fn create_api_key(
        &self,
        tenant_name: &str,
        key_id: &str,
        hash: &str,
    ) -> PortResult<TenantId>;
    /// `(tenant, stored hash)` for a key id that is not revoked.
    async fn api_key(&self, key_id: &str) -> PortResult<Option<(TenantId, String)>>;

    /// Stores messages, their `accepted` events and their dispatch jobs in one
    /// transaction, with the idempotency record when given.
    async fn accept(
        &self,
        tenant: &TenantId,
        messages: &[NewMessage],
        idempotency: Option<&IdempotencyRecord>,
    ) -> PortResult<AcceptOutcome>;
    async fn idempotency(
        &self,
        tenant: &TenantId,
        key: &str,
    ) -> PortResult<Option<IdempotencyRecord>>;

    async fn get_message(
        &self,
        tenant: &TenantId,
        id: &MessageId,
    ) -> PortResult<Option<MessageView>>;
    async fn list_messages(
        &self,
        tenant: &TenantId,
        filter: &ListFilter,
    ) -> PortResult<Vec<Message>>;
    /// Messages per status, for metrics.
    async fn status_counts(&self) -> PortResult<Vec<(Status, i64)>>;

    /// Creates (or finds) the first attempt of each message on its channel and moves
    /// the message to `queued`. Idempotent: a redelivered dispatch job finds the attempt.
    /// The messages of `ids` still to be planned (no attempt yet, not final), with
    /// their channel order and fallback policy resolved over the tenant's defaults.
    async fn dispatch_candidates(&self, ids: &[MessageId]) -> PortResult<Vec<Candidate>>;
    /// Creates (or finds) the first attempt of each message on the first channel of its
    /// plan (recorded on the message) and moves it to `queued`. Idempotent: a
    /// redelivered dispatch job finds the attempt, and a queued fallback attempt is
    /// handed out again. Each attempt comes with its channel and whether the message
    /// travels in the fast lane.
    async fn plan_attempts(
        &self,
        messages: &[MessageId],
        plans: &[(MessageId, Plan)],
    ) -> PortResult<Vec<(AttemptId, ChannelKind, bool)>>;
    /// Leases up to `max` due fallback timers for `lease`.
    async fn due_fallbacks(&self, max: usize, lease: Duration) -> PortResult<Vec<DueFallback>>;
    /// Fires a timer once: with `Withdrawn` or `NotSupported` the next channel's attempt
    /// is queued (and `message.fallback` recorded); with `AlreadyDelivered` nothing
    /// follows. The timer is gone afterwards either way.
    async fn fire_fallback(&self, attempt: &AttemptId, outcome: Withdrawal) -> PortResult<()>;
    /// Tries a timer again after `delay` (the withdrawal failed for now).
    async fn postpone_fallback(&self, attempt: &AttemptId, delay: Duration) -> PortResult<()>;
    async fn tenant_defaults(&self, tenant: &TenantId) -> PortResult<TenantDefaults>;
    async fn set_tenant_defaults(
        &self,
        tenant: &TenantId,
        defaults: &TenantDefaults,
    ) -> PortResult<()>;
    /// Moves attempts `queued → sending` and reports what each one needs.
    async fn claim_attempts(&self, attempts: &[AttemptId]) -> PortResult<Vec<Claim>>;
    /// Records submit outcomes (and any receipts that arrived before them).
    async fn record_sends(&self, results: &[SendResult]) -> PortResult<()>;
    /// Applies receipts; ones for unknown provider ids are kept until their submit
    /// is recorded.
    async fn apply_receipts(&self, receipts: &[Receipt]) -> PortResult<()>;
    /// Applies kept receipts whose provider id has since become known.
    async fn adopt_orphans(&self) -> PortResult<usize>;
    /// For an in-doubt attempt: adopts kept receipts that are its own — they carry its
    /// `user_ref` and recipient, or (an SMSC that echoes no reference) its recipient,
    /// a scope it may have gone to, a submit date and text consistent with it.
    /// Returns true when the attempt was resolved that way.
    async fn resolve_in_doubt(&self, outgoing: &Outgoing, look: &InDoubtLook) -> PortResult<bool>;

    /// Cancels a message not yet handed to a channel.
    async fn cancel_message(&self, tenant: &TenantId, id: &MessageId) -> PortResult<CancelOutcome>;

    /// Stores an inbound part; returns the message it completes, if it does. A
    /// STOP/START keyword updates the tenant's opt-outs in the same transaction.
    async fn receive_inbound(&self, part: &InboundPart) -> PortResult<Option<InboundMessage>>;
    /// Parts of inbound messages whose newest part is older than `before` (Unix ms):
    /// the rest will not come. Grouped per message, in part order.
    async fn stale_inbound_parts(&self, before: i64) -> PortResult<Vec<Vec<InboundPart>>>;
    /// A tenant's inbound messages, newest first, older than `cursor`.
    async fn list_inbound(
        &self,
        tenant: &TenantId,
        cursor: Option<&str>,
        limit: i64,
    ) -> PortResult<Vec<InboundMessage>>;
    /// One of a tenant's inbound messages; None when it has no such message.
    async fn get_inbound(&self, tenant: &TenantId, id: &str) -> PortResult<Option<InboundMessage>>;
    async fn list_opt_outs(
        &self,
        tenant: &TenantId,
        recipient: Option<&str>,
    ) -> PortResult<Vec<OptOut>>;
    /// Records an opt-out; true when new. `sender` `*` covers all senders.
    async fn add_opt_out(
        &self,
        tenant: &TenantId,
        recipient: &str,
        sender: &str,
        source: &str,
    ) -> PortResult<bool>;
    /// Removes one sender's opt-out, or all of the recipient's; returns how many.
    async fn remove_opt_out(
        &self,
        tenant: &TenantId,
        recipient: &str,
        sender: Option<&str>,
    ) -> PortResult<usize>;

    /// Records the marker of a provider event that changes nothing (an event type
    /// Hermod ignores); false when it was recorded before. Events with an effect carry
    /// their marker (`Receipt::event`, `InboundPart::event`) into the transaction
    /// that applies them.
    async fn first_seen_event(&self, event: &crate::model::ProviderEvent) -> PortResult<bool>;
    /// An RCS user (`from`, digits) is typing to `connector` (`rbm:<agent>`): a
    /// `message.typing` delivery for each endpoint of `tenant` that names it, in one
    /// transaction with the event's marker (nothing when it was seen before).
    async fn record_typing(
        &self,
        tenant: &TenantId,
        connector: &str,
        from: &str,
        at: i64,
        marker: &crate::model::ProviderEvent,
    ) -> PortResult<()>;
    /// Whether a provider event was applied already (a redelivered webhook).
    async fn seen_event(&self, event: &crate::model::ProviderEvent) -> PortResult<bool>;
    /// Records an RBM agent's launch state in a region, unless a later one is there.
    async fn record_launch(&self, launch: &crate::model::AgentLaunch) -> PortResult<()>;
    /// Every agent's launch states, by agent and region.
    async fn launch_states(&self) -> PortResult<Vec<crate::model::AgentLaunch>>;
}

/// The app channel's devices and their inboxes of sealed envelopes.
#[async_trait]
pub trait Devices: Send + Sync {
    async fn register_device(&self, device: &crate::app::Device) -> PortResult<()>;
    /// A device by id, revoked ones included (token checks look at `revoked_at`).
    async fn device(&self, id: &str) -> PortResult<Option<crate::app::Device>>;
    /// A tenant's live devices, optionally of one recipient or user.
    async fn list_devices(
        &self,
        tenant: &TenantId,
        recipient: Option<&str>,
        user_id: Option<&str>,
    ) -> PortResult<Vec<crate::app::Device>>;
    /// Replaces a live device's public key; false when there is none.
    async fn rotate_device_key(
        &self,
        tenant: &TenantId,
        id: &str,
        public_key: &str,
        aead: &str,
    ) -> PortResult<bool>;
    /// Revokes a device; its waiting envelopes are dropped. False when unknown.
    async fn revoke_device(&self, tenant: &TenantId, id: &str) -> PortResult<bool>;
    /// Stores envelopes, each with its attempt, in one transaction; a repeat (same
    /// device and message) is ignored.
    async fn put_envelopes(
        &self,
        envelopes: &[(AttemptId, crate::app::Envelope)],
    ) -> PortResult<()>;
    /// A device's envelopes not yet acknowledged nor expired, after `after`, oldest first.
    async fn inbox(
        &self,
        device: &str,
        after: i64,
        limit: i64,
    ) -> PortResult<Vec<crate::app::Envelope>>;
    /// Marks the device's envelope of a message acknowledged and forgets the message's
    /// plaintext (kept only for a fallback) in the same transaction; returns the
    /// envelope's attempt id, or None when this device has no such envelope.
    async fn ack_envelope(&self, device: &str, message_id: &str) -> PortResult<Option<AttemptId>>;
    /// Housekeeping: forgets the plaintext of app messages that ended (failed,
    /// expired, canceled, rejected, read) and deletes envelopes that expired or were
    /// acknowledged more than a day ago. Returns `(messages, envelopes)` touched.
    async fn sweep_app(&self) -> PortResult<(usize, usize)>;
    /// For each `(tenant, recipient E.164, user id)`: whether a live device is there.
    async fn has_devices(
        &self,
        who: &[(TenantId, String, Option<String>)],
    ) -> PortResult<Vec<bool>>;
    /// Withdraws an attempt's envelopes not yet acknowledged; `AlreadyDelivered` when a
    /// device acknowledged one.
    async fn withdraw_envelopes(&self, attempt: &AttemptId) -> PortResult<Withdrawal>;
}

/// Named leases with expiry (SMPP binds held by one live process at a time).
#[async_trait]
pub trait Leases: Send + Sync {
    /// Takes or renews `key` for `holder` until now + `ttl`, recording `status` (the
    /// holder's JSON view of what it holds); false while another holder's lease runs.
    async fn acquire_lease(
        &self,
        key: &str,
        holder: &str,
        ttl: Duration,
        status: Option<&str>,
    ) -> PortResult<bool>;
    /// Gives the lease up (shutdown), if `holder` has it.
    async fn release_lease(&self, key: &str, holder: &str) -> PortResult<()>;
    /// Leases that have not expired: `(key, holder, expires_at, status)`.
    async fn live_leases(&self) -> PortResult<Vec<(String, String, i64, Option<String>)>>;
}

/// A durable work queue with at-least-once delivery.
#[async_trait]
pub trait Queue: Send + Sync {
    async fn publish(&self, queue: &str, jobs: &[Job]) -> PortResult<()>;
    /// Up to `max` jobs; waits up to `wait` for the first one.
    async fn receive(&self, queue: &str, max: usize, wait: Duration) -> PortResult<Vec<Delivery>>;
    async fn ack(&self, queue: &str, tags: &[i64]) -> PortResult<()>;
    /// Hands each job out again after its delay.
    async fn retry(&self, queue: &str, jobs: &[(i64, Duration)]) -> PortResult<()>;
    async fn depth(&self, queue: &str) -> PortResult<i64>;
    /// Jobs moved aside after too many deliveries, oldest first.
    async fn dead_letters(&self, max: usize) -> PortResult<Vec<DeadJob>>;
}

/// Why a send failed, and whether trying again can help.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SendError {
    #[error("transient send failure {code}")]
    Transient {
        code: String,
        retry_after: Option<Duration>,
    },
    #[error("permanent send failure {code}")]
    Permanent { code: String },
    /// The request may have reached the provider but no answer came (timeout, lost
    /// connection): sending again could deliver twice. The attempt stays `sending`
    /// until a receipt resolves it or the in-doubt grace period ends.
    #[error("send outcome unknown {code}")]
    InDoubt { code: String },
}

/// A channel that can carry a message to a recipient.
#[async_trait]
pub trait Channel: Send + Sync {
    fn kind(&self) -> ChannelKind;
    /// Whether this process can send now (e.g. holds a bound SMPP bind); a stage
    /// does not take jobs while it cannot.
    fn ready(&self) -> bool {
        true
    }
    /// Whether sending the same attempt twice is harmless (the provider drops the
    /// repeat): then a send left in doubt by a crash is simply sent again.
    fn idempotent_sends(&self) -> bool {
        false
    }
    /// What a receipt of this message would repeat, where it may have gone and how
    /// soon receipts come there: how the pipeline recognises the receipt of a submit
    /// left in doubt, and how long it waits for it.
    fn in_doubt_look(&self, _msg: &Outgoing, since: i64) -> InDoubtLook {
        InDoubtLook {
            since,
            ..InDoubtLook::default()
        }
    }
    /// Called with each batch before its sends (e.g. one bulk capability lookup).
    async fn prepare(&self, _batch: &[Outgoing]) {}
    /// Submits and returns the provider ids (one per part) and the raw provider status.
    async fn send(&self, msg: &Outgoing) -> Result<(Vec<String>, String), SendError>;
    /// What the channel knows of each candidate's recipient (device registered, RCS
    /// capable, ...): kept or skipped, with the reason. One entry per candidate.
    async fn assess(&self, batch: &[Candidate]) -> Vec<Assessment> {
        batch
            .iter()
            .map(|_| Assessment::keep("available"))
            .collect()
    }
    /// Withdraws an unanswered message before a fallback (RBM revoke, envelope
    /// deletion).
    async fn withdraw(&self, _due: &DueFallback) -> Result<Withdrawal, SendError> {
        Ok(Withdrawal::NotSupported)
    }
}

/// What an agent shows a user of a rich channel about their message (RBM
/// `phones.agentEvents`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgentEventKind {
    /// The user's message was read (RBM shows it as read).
    Read,
    /// The agent is typing (RBM shows a typing indicator for a while).
    Typing,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentEventError {
    /// The message came on a connector that has no agent events (SMS), or its agent
    /// is not configured here.
    #[error("{0}")]
    NotSupported(String),
    /// The provider refused it or could not be reached.
    #[error("{0}")]
    Provider(String),
}

/// Sends agent events for inbound messages.
#[async_trait]
pub trait AgentEvents: Send + Sync {
    /// Sends `kind` to `to` (E.164) through `connector` (`rbm:<agent>`, as the
    /// inbound message records it); `message_id` is the provider's id of the user's
    /// message (a READ needs it).
    async fn send_agent_event(
        &self,
        connector: &str,
        to: &str,
        kind: AgentEventKind,
        message_id: Option<&str>,
    ) -> Result<(), AgentEventError>;
}

/// A provider's webhook (RBM events): what the HTTP layer hands over and answers.
#[async_trait]
pub trait WebhookIngress: Send + Sync {
    /// Handles one POST to `/v1/webhooks/<kind>/{name}`; `signature` is the provider's
    /// signature header. Returns the HTTP status and the body to answer with.
    async fn handle(&self, name: &str, signature: Option<&str>, body: &[u8]) -> WebhookReply;
}

/// The answer to a webhook call.
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookReply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl WebhookReply {
    pub fn json(status: u16, body: serde_json::Value) -> Self {
        Self {
            status,
            content_type: "application/json",
            body: body.to_string(),
        }
    }
    pub fn error(status: u16, code: &str, message: &str) -> Self {
        Self::json(
            status,
            serde_json::json!({"error": {"code": code, "message": message}}),
        )
    }
}

/// Where channels hand inbound (MO) parts. Returns once the part is durably recorded
/// (true) or could not be (false: the provider should redeliver it).
#[async_trait]
pub trait InboundSink: Send + Sync {
    async fn receive(&self, part: InboundPart) -> bool;
}

/// Where channels hand receipts. Returns once the receipt is durably recorded (true)
/// or could not be (false: the provider should redeliver it).
#[async_trait]
pub trait ReceiptSink: Send + Sync {
    async fn deliver(&self, receipt: Receipt) -> bool;
}

/// A tenant's message templates.
#[async_trait]
pub trait Templates: Send + Sync {
    /// Stores a template; unless `replace`, an id already used is a `Conflict`.
    async fn put_template(
        &self,
        tenant: &TenantId,
        template: &crate::template::Template,
        replace: bool,
    ) -> PortResult<()>;
    async fn template(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> PortResult<Option<crate::template::Template>>;
    async fn list_templates(&self, tenant: &TenantId)
    -> PortResult<Vec<crate::template::Template>>;
    async fn delete_template(&self, tenant: &TenantId, id: &str) -> PortResult<bool>;
}

/// Alert hooks and what they last sent.
#[async_trait]
pub trait Hooks: Send + Sync {
    /// Stores a hook, found later by the SHA-256 of its URL token.
    async fn create_hook(&self, hook: &crate::alert::Hook, token_hash: &str) -> PortResult<()>;
    async fn hook_by_token(&self, token_hash: &str) -> PortResult<Option<crate::alert::Hook>>;
    async fn list_hooks(&self, tenant: &TenantId) -> PortResult<Vec<crate::alert::Hook>>;
    async fn delete_hook(&self, tenant: &TenantId, id: &str) -> PortResult<bool>;
    /// For each alert key, the status and time of the newest message raised for it.
    async fn last_alerts(&self, keys: &[String]) -> PortResult<Vec<(String, String, i64)>>;
}
