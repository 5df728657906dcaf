//! Row types: what diesel reads and writes.

use diesel::prelude::*;

use super::schema::*;

#[derive(Queryable, Selectable, Insertable, Clone, Debug)]
#[diesel(table_name = messages)]
#[diesel(treat_none_as_default_value = false)]
pub struct MessageRow {
    pub id: String,
    pub tenant_id: String,
    pub to_number: String,
    pub from_addr: Option<String>,
    pub body: String,
    pub channels: String,
    pub ttl_secs: Option<i64>,
    pub metadata: Option<String>,
    pub callback_url: Option<String>,
    pub status: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub send_at: Option<i64>,
    pub reason: Option<String>,
    pub content: Option<String>,
    pub user_id: Option<String>,
    pub plan: Option<String>,
    pub fallback: Option<String>,
    /// HMAC of the recipient number (`to_number` holds its ciphertext).
    pub to_hash: Option<String>,
    pub shredded_at: Option<i64>,
    /// 1: the fast lane.
    pub priority: i32,
    pub alert_key: Option<String>,
    pub alert_status: Option<String>,
    pub callback_events: Option<String>,
    /// RBM's messageTrafficType, as `TrafficType::as_str`.
    pub traffic_type: Option<String>,
    /// `MessageExtras` as JSON, for messages of the Twilio API.
    pub twilio: Option<String>,
    /// `SmppOrigin` as JSON, for messages submitted over SMPP.
    pub smpp: Option<String>,
}

impl MessageRow {
    /// Its `traffic_type`, parsed.
    pub fn traffic_type(&self) -> Option<hermod_core::model::TrafficType> {
        self.traffic_type
            .as_deref()
            .and_then(hermod_core::model::TrafficType::parse)
    }
}

#[derive(Queryable, Selectable, Insertable, Clone, Debug)]
#[diesel(table_name = attempts)]
#[diesel(treat_none_as_default_value = false)]
pub struct AttemptRow {
    pub id: String,
    pub message_id: String,
    pub attempt_no: i32,
    pub channel: String,
    pub status: String,
    pub user_ref: i32,
    pub raw_status: Option<String>,
    pub error_code: Option<String>,
    pub error_permanent: Option<bool>,
    pub parts: i32,
    pub sending_since: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Queryable, Selectable, Insertable, Clone, Debug)]
#[diesel(table_name = attempt_parts)]
#[diesel(treat_none_as_default_value = false)]
pub struct PartRow {
    pub provider_id: String,
    pub attempt_id: String,
    pub part_no: i32,
    pub status: String,
    pub raw_status: Option<String>,
    pub error_code: Option<String>,
    pub updated_at: i64,
}

#[derive(Insertable, Clone, Debug)]
#[diesel(table_name = events)]
#[diesel(treat_none_as_default_value = false)]
pub struct NewEventRow {
    pub message_id: String,
    pub tenant_id: String,
    pub kind: String,
    pub status: String,
    pub attempt_no: Option<i32>,
    pub channel: Option<String>,
    pub detail: Option<String>,
    pub at: i64,
}

#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = events)]
pub struct EventRow {
    pub seq: i64,
    pub message_id: String,
    pub tenant_id: String,
    pub kind: String,
    pub status: String,
    pub attempt_no: Option<i32>,
    pub channel: Option<String>,
    pub detail: Option<String>,
    pub at: i64,
}

#[derive(Queryable, Selectable, Insertable, Clone, Debug)]
#[diesel(table_name = idempotency_keys)]
pub struct IdempotencyRow {
    pub tenant_id: String,
    pub key: String,
    pub request_hash: String,
    pub status_code: i32,
    pub body: String,
    pub created_at: i64,
}

#[derive(Queryable, Selectable, Insertable, Clone, Debug)]
#[diesel(table_name = orphan_receipts)]
#[diesel(treat_none_as_default_value = false)]
pub struct OrphanRow {
    pub provider_id: String,
    pub status: String,
    pub raw_status: String,
    pub error_code: Option<String>,
    pub user_ref: Option<i32>,
    pub recipient: Option<String>,
    pub received_at: i64,
    /// The receipt's submit date (Unix ms, the SMSC's time zone).
    pub submitted_at: Option<i64>,
    /// Keyed hash of the receipt's text key (letters and digits of its `text:`),
    /// and that key's length: matched against prefixes of an attempt's parts.
    pub text_mac: Option<String>,
    pub text_len: Option<i32>,
}

#[derive(Insertable, Clone, Debug)]
#[diesel(table_name = jobs)]
pub struct NewJobRow {
    pub queue: String,
    pub payload: String,
    pub available_at: i64,
    pub locked_until: i64,
    pub deliveries: i32,
    pub created_at: i64,
    /// 1: the fast lane, leased before any other job of the queue.
    pub priority: i32,
}

impl NewJobRow {
    /// A job ready at `available_at`, in its lane.
    pub fn new(
        queue: &str,
        job: &hermod_core::model::Job,
        available_at: i64,
        now: i64,
    ) -> Result<Self, serde_json::Error> {
        Ok(Self {
            queue: queue.to_owned(),
            payload: serde_json::to_string(job)?,
            available_at,
            locked_until: 0,
            deliveries: 0,
            created_at: now,
            priority: i32::from(job.is_high()),
        })
    }
}

#[derive(Queryable, Selectable, Insertable, Clone, Debug)]
#[diesel(table_name = inbound_messages)]
#[diesel(treat_none_as_default_value = false)]
pub struct InboundRow {
    pub id: String,
    pub tenant_id: Option<String>,
    pub from_number: String,
    pub to_addr: String,
    pub body: String,
    pub parts: i32,
    pub connector: String,
    pub keyword: Option<String>,
    pub received_at: i64,
    pub payload: Option<String>,
    pub from_hash: Option<String>,
    pub provider_id: Option<String>,
    pub channel: String,
}

#[derive(Queryable, Selectable, Insertable, Clone, Debug)]
#[diesel(table_name = inbound_parts)]
pub struct InboundPartRow {
    pub from_number: String,
    pub to_addr: String,
    pub ref_num: i32,
    pub total: i32,
    pub seq: i32,
    pub connector: String,
    pub body: String,
    pub received_at: i64,
    pub channel: String,
}

#[derive(Queryable, Selectable, Insertable, Clone, Debug)]
#[diesel(table_name = opt_outs)]
pub struct OptOutRow {
    pub tenant_id: String,
    /// The number's HMAC (a plain number in rows from before sealing).
    pub recipient: String,
    pub sender: String,
    pub source: String,
    pub created_at: i64,
    /// The number, sealed under its subject's key.
    pub number: Option<String>,
}

#[derive(Queryable, Selectable, Insertable, Clone, Debug)]
#[diesel(table_name = devices)]
#[diesel(treat_none_as_default_value = false)]
pub struct DeviceRow {
    pub id: String,
    pub tenant_id: String,
    pub recipient: Option<String>,
    pub user_id: Option<String>,
    pub public_key: String,
    pub aead: String,
    pub platform: String,
    pub label: Option<String>,
    pub token_hash: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub revoked_at: Option<i64>,
}

#[derive(Insertable, Clone, Debug)]
#[diesel(table_name = app_inbox)]
#[diesel(treat_none_as_default_value = false)]
pub struct NewInboxRow {
    pub device_id: String,
    pub message_id: String,
    pub attempt_id: String,
    pub envelope: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub acked_at: Option<i64>,
}

#[derive(Queryable, Selectable, Insertable, Clone, Debug)]
#[diesel(table_name = fallback_timers)]
pub struct TimerRow {
    pub attempt_id: String,
    pub message_id: String,
    pub due_at: i64,
    pub locked_until: i64,
    pub tries: i32,
}

#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = webhook_endpoints)]
pub struct EndpointRow {
    pub id: String,
    pub tenant_id: String,
    pub url: String,
    pub events: String,
    pub secret: String,
    pub created_at: i64,
}

#[derive(Insertable, Clone, Debug)]
#[diesel(table_name = webhook_deliveries)]
#[diesel(treat_none_as_default_value = false)]
pub struct NewDeliveryRow {
    pub tenant_id: String,
    pub endpoint_id: Option<String>,
    pub url: String,
    pub event_type: String,
    pub message_id: Option<String>,
    pub payload: String,
    pub status: String,
    pub attempts: i32,
    pub next_at: i64,
    pub locked_until: i64,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = webhook_deliveries)]
pub struct DeliveryRow {
    pub id: i64,
    pub tenant_id: String,
    pub endpoint_id: Option<String>,
    pub url: String,
    pub event_type: String,
    pub message_id: Option<String>,
    pub payload: String,
    pub status: String,
    pub attempts: i32,
    pub next_at: i64,
    pub locked_until: i64,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Insertable, Clone, Debug)]
#[diesel(table_name = audit_outbox)]
pub struct NewAuditRow {
    pub tenant_id: String,
    pub at: i64,
    pub kind: String,
    pub subject: Option<String>,
    pub data: String,
}

#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = audit_outbox)]
pub struct AuditOutboxRow {
    pub id: i64,
    pub tenant_id: String,
    pub at: i64,
    pub kind: String,
    pub subject: Option<String>,
    pub data: String,
}

#[derive(Queryable, Selectable, Insertable, Clone, Debug)]
#[diesel(table_name = audit_entries)]
pub struct AuditEntryRow {
    pub tenant_id: String,
    pub seq: i64,
    pub at: i64,
    pub kind: String,
    pub subject: Option<String>,
    pub data: String,
    pub prev_hash: String,
    pub hash: String,
}

#[derive(Queryable, Selectable, Insertable, Clone, Debug)]
#[diesel(table_name = audit_checkpoints)]
pub struct CheckpointRow {
    pub tenant_id: String,
    pub seq: i64,
    pub head_hash: String,
    pub at: i64,
    pub key_id: String,
    pub signature: String,
}

#[derive(Queryable, Selectable, Insertable, Clone, Debug)]
#[diesel(table_name = subject_keys)]
pub struct SubjectKeyRow {
    pub tenant_id: String,
    pub subject: String,
    pub key_id: String,
    pub wrapped: String,
    pub created_at: i64,
}

/// A deliver_sm waiting for an SMPP account's receiver bind.
#[derive(Insertable, Clone, Debug)]
#[diesel(table_name = smpp_outbox)]
pub struct NewOutboxRow {
    pub system_id: String,
    pub dedupe: String,
    pub kind: String,
    pub payload: String,
    pub created_at: i64,
}
