//! The store's ports for the message path, one per concern, so that each stage and
//! handler names what it uses: the API accepts and reads ([`Messages`], [`Tenants`],
//! [`Inbound`]); the workers plan, send and apply receipts ([`Dispatch`]); the channels'
//! ingress records what providers send ([`Inbound`]).

use std::time::Duration;

use async_trait::async_trait;

use super::PortResult;
use crate::inbound::*;
use crate::model::*;
use crate::plan::*;
use crate::{AttemptId, MessageId, Status, TenantId};

/// Messages as the API sees them: accepting (with idempotency), reading, canceling.
#[async_trait]
pub trait Messages: Send + Sync {
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
    /// Cancels a message not yet handed to a channel.
    async fn cancel_message(&self, tenant: &TenantId, id: &MessageId) -> PortResult<CancelOutcome>;
}

/// The pipeline's writes: planning attempts, claiming them, recording submit outcomes
/// and receipts, firing fallbacks. Each call is one transaction over a batch and
/// idempotent, so a redelivered job does no harm; statuses only move forward.
#[async_trait]
pub trait Dispatch: Send + Sync {
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
    /// Leases up to `max` due fallback timers for `lease`.
    async fn due_fallbacks(&self, max: usize, lease: Duration) -> PortResult<Vec<DueFallback>>;
    /// Fires a timer once: with `Withdrawn` or `NotSupported` the next channel's attempt
    /// is queued (and `message.fallback` recorded); with `AlreadyDelivered` nothing
    /// follows. The timer is gone afterwards either way.
    async fn fire_fallback(&self, attempt: &AttemptId, outcome: Withdrawal) -> PortResult<()>;
    /// Tries a timer again after `delay` (the withdrawal failed for now).
    async fn postpone_fallback(&self, attempt: &AttemptId, delay: Duration) -> PortResult<()>;
}

/// What comes in from providers: inbound (MO) messages, opt-outs, provider event
/// markers, typing indicators and RBM agents' launch states.
#[async_trait]
pub trait Inbound: Send + Sync {
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
    /// Inbound messages stored without a tenant (the operator's view), newest first,
    /// after `cursor`.
    async fn unattributed_inbound(
        &self,
        limit: i64,
        cursor: Option<&str>,
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
    async fn first_seen_event(&self, event: &ProviderEvent) -> PortResult<bool>;
    /// Whether a provider event was applied already (a redelivered webhook).
    async fn seen_event(&self, event: &ProviderEvent) -> PortResult<bool>;
    /// A user (`from`, digits) of a rich channel is typing to `connector`
    /// (`rbm:<agent>`): a `message.typing` delivery for each endpoint of `tenant` that
    /// names it, in one transaction with the event's marker (nothing when it was seen
    /// before).
    async fn record_typing(
        &self,
        tenant: &TenantId,
        connector: &str,
        from: &str,
        at: i64,
        marker: &ProviderEvent,
    ) -> PortResult<()>;
    /// Records an RBM agent's launch state in a region, unless a later one is there.
    async fn record_launch(&self, launch: &AgentLaunch) -> PortResult<()>;
    /// Every agent's launch states, by agent and region.
    async fn launch_states(&self) -> PortResult<Vec<AgentLaunch>>;
}

/// Tenants, their API keys and their defaults (channel order, fallback, quiet hours).
#[async_trait]
pub trait Tenants: Send + Sync {
    /// Creates the tenant if needed and stores an API key hash for it.
    async fn create_api_key(
        &self,
        tenant_name: &str,
        key_id: &str,
        hash: &str,
    ) -> PortResult<TenantId>;
    /// `(tenant, stored hash)` for a key id that is not revoked.
    async fn api_key(&self, key_id: &str) -> PortResult<Option<(TenantId, String)>>;
    async fn tenant_defaults(&self, tenant: &TenantId) -> PortResult<TenantDefaults>;
    async fn set_tenant_defaults(
        &self,
        tenant: &TenantId,
        defaults: &TenantDefaults,
    ) -> PortResult<()>;
}
