//! The store's other records: app devices and their inboxes, templates, alert hooks,
//! and named leases.

use std::time::Duration;

use async_trait::async_trait;

use super::PortResult;
use crate::plan::Withdrawal;
use crate::{AttemptId, TenantId};

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
