//! Tenant administration: the operator's view of tenants (limits, suspension), API keys
//! with roles, and the console's server-side sessions.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::TenantId;
use crate::plan::TenantDefaults;
use crate::ports::PortResult;

/// What an API key may do. `admin` > `send` > `read`: a role allows what the ones below
/// it allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads messages, inbound traffic, templates, webhooks — changes nothing.
    Read,
    /// Also creates and cancels messages.
    Send,
    /// Everything of its tenant: keys, webhooks, templates, hooks, devices, retention,
    /// erasure.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Send => "send",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "read" => Some(Role::Read),
            "send" => Some(Role::Send),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    /// True when a key of this role may do what `need` allows.
    pub fn allows(self, need: Role) -> bool {
        self >= need
    }
}

/// The operator's limits on one tenant (none set: the configuration's).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TenantLimits {
    /// Messages per second this tenant may create (overrides `[api] rate_limit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_sec: Option<f64>,
    /// Messages per UTC day; beyond it `429 quota_exceeded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_quota: Option<u64>,
}

/// What a request's API key is: read by the API for every key (and cached briefly).
#[derive(Clone, Debug, PartialEq)]
pub struct KeyAuth {
    pub tenant: TenantId,
    /// The stored hash the secret is checked against.
    pub hash: String,
    pub role: Role,
    /// Unix ms after which the key no longer works.
    pub expires_at: Option<i64>,
    /// The operator suspended the tenant: its keys answer `403 tenant_suspended`.
    pub suspended: bool,
    pub limits: TenantLimits,
}

/// An API key as listed (never its secret).
#[derive(Clone, Debug, PartialEq)]
pub struct ApiKeyInfo {
    pub id: String,
    pub tenant_id: TenantId,
    pub name: Option<String>,
    pub role: Role,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

/// A key to store: its id and the hash of its secret.
#[derive(Clone, Debug)]
pub struct NewApiKey {
    pub id: String,
    pub hash: String,
    pub name: Option<String>,
    pub role: Role,
    pub expires_at: Option<i64>,
}

/// A tenant as the operator sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct TenantInfo {
    pub id: TenantId,
    pub name: String,
    pub created_at: i64,
    pub suspended_at: Option<i64>,
    pub limits: TenantLimits,
    pub defaults: TenantDefaults,
    pub retention_days: Option<i64>,
    /// Keys not revoked.
    pub keys: i64,
}

/// The operator's changes to a tenant; `None` leaves a setting as it is.
#[derive(Clone, Debug, Default)]
pub struct TenantPatch {
    pub limits: Option<TenantLimits>,
    pub defaults: Option<TenantDefaults>,
    /// `Some(None)`: keep messages as long as the configuration says.
    pub retention_days: Option<Option<i64>>,
    pub suspended: Option<bool>,
}

/// Who a console session is signed in as.
#[derive(Clone, Debug, PartialEq)]
pub enum Principal {
    /// The operator, signed in with the admin token (kept as its SHA-256: a session
    /// ends when the token changes).
    Operator { token_hash: String },
    /// A tenant, through one of its API keys (the session ends with the key).
    Tenant {
        tenant: TenantId,
        key_id: String,
        role: Role,
    },
}

/// A console session as stored: the cookie's token only as its SHA-256.
#[derive(Clone, Debug, PartialEq)]
pub struct ConsoleSession {
    /// Hex SHA-256 of the cookie's token.
    pub id: String,
    pub principal: Principal,
    /// The token every form carries.
    pub csrf: String,
    pub created_at: i64,
    pub expires_at: i64,
}

/// Tenants, their keys and the console's sessions, as the operator administers them.
#[async_trait]
pub trait TenantAdmin: Send + Sync {
    /// The key, its role and its tenant's state; None when it is unknown or revoked
    /// (or its tenant deleted).
    async fn key_auth(&self, key_id: &str) -> PortResult<Option<KeyAuth>>;
    /// Records when keys were last used (batched by the caller).
    async fn touch_keys(&self, used: &[(String, i64)]) -> PortResult<()>;
    /// A new tenant; `Conflict` when the name is taken.
    async fn create_tenant(&self, name: &str, patch: &TenantPatch) -> PortResult<TenantInfo>;
    /// Every tenant not deleted, by name.
    async fn list_tenants(&self) -> PortResult<Vec<TenantInfo>>;
    async fn tenant(&self, id: &TenantId) -> PortResult<Option<TenantInfo>>;
    /// None: no such tenant. Each change is an audit fact of the tenant.
    async fn update_tenant(
        &self,
        id: &TenantId,
        patch: &TenantPatch,
    ) -> PortResult<Option<TenantInfo>>;
    /// Deletes a tenant: its keys are revoked and it is no longer listed; its messages
    /// stay until retention removes them. False: no such tenant.
    async fn delete_tenant(&self, id: &TenantId) -> PortResult<bool>;
    /// Stores a key of `tenant` (an audit fact). False: no such tenant.
    async fn add_key(&self, tenant: &TenantId, key: &NewApiKey) -> PortResult<bool>;
    /// The tenant's keys that are not revoked, newest first.
    async fn list_keys(&self, tenant: &TenantId) -> PortResult<Vec<ApiKeyInfo>>;
    /// Revokes one of the tenant's keys (an audit fact); false when it has no such live key.
    async fn revoke_key(&self, tenant: &TenantId, key_id: &str) -> PortResult<bool>;
    /// Replaces a live key by `new` (same name, role and expiry), in one transaction;
    /// None when the tenant has no such live key.
    async fn rotate_key(
        &self,
        tenant: &TenantId,
        key_id: &str,
        new_id: &str,
        new_hash: &str,
    ) -> PortResult<Option<ApiKeyInfo>>;
    /// Messages the tenant created since `since` (Unix ms): its daily quota.
    async fn messages_since(&self, tenant: &TenantId, since: i64) -> PortResult<u64>;
    /// Stores a session (and forgets expired ones).
    async fn create_session(&self, session: &ConsoleSession) -> PortResult<()>;
    /// A session that has not expired.
    async fn session(&self, id: &str) -> PortResult<Option<ConsoleSession>>;
    async fn end_session(&self, id: &str) -> PortResult<()>;
}
