//! The encrypted app channel's data: devices of a tenant's own app and the sealed
//! envelopes waiting for them. Hermod only ever holds ciphertext for a device.

use serde::{Deserialize, Serialize};

use crate::TenantId;

/// A registered device.
#[derive(Clone, Debug, PartialEq)]
pub struct Device {
    /// `dev_<16 hex>`, also the id part of its token.
    pub id: String,
    pub tenant_id: TenantId,
    /// E.164 with `+`.
    pub recipient: Option<String>,
    /// The tenant's own user id.
    pub user_id: Option<String>,
    /// X25519 public key, base64url without padding.
    pub public_key: String,
    /// `chacha20poly1305` or `aes256gcm`.
    pub aead: String,
    pub platform: String,
    pub label: Option<String>,
    /// HMAC of the device token's secret.
    pub token_hash: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub revoked_at: Option<i64>,
}

/// A sealed message for one device (stored as JSON, ciphertext only).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Inbox cursor (`GET /v1/app/inbox?after=`).
    #[serde(default)]
    pub seq: i64,
    pub message_id: String,
    pub device_id: String,
    /// `DHKEM(X25519,HKDF-SHA256)/HKDF-SHA256/<aead>`.
    pub suite: String,
    /// HPKE `enc` (the ephemeral public key), base64url.
    pub enc: String,
    /// Ciphertext with tag, base64url.
    pub ciphertext: String,
    /// What `info` binds, so the app can rebuild it:
    /// `hermod-app-v1|<tenant>|<device>|<message>`. The AAD is the message id.
    pub info: String,
    pub created_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

/// `info` of an envelope: binds tenant, device and message.
pub fn envelope_info(tenant: &str, device: &str, message: &str) -> String {
    format!("hermod-app-v1|{tenant}|{device}|{message}")
}

/// What a device finds inside an envelope once opened (JSON).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AppPayload {
    pub message_id: String,
    pub from: Option<String>,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<serde_json::Value>,
    pub sent_at: i64,
}

/// What a device says it did with a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppAck {
    Delivered,
    Read,
}
