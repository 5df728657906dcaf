//! Customer webhooks: the endpoints a tenant registers, the unified event they receive
//! and the deliveries (one per event and destination) retried until they succeed.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::TenantId;
use crate::error::PortResult;

/// Event types a webhook endpoint can subscribe to (`*` takes them all).
pub const EVENT_TYPES: [&str; 12] = [
    "message.queued",
    "message.sent",
    "message.delivered",
    "message.read",
    "message.failed",
    "message.expired",
    "message.rejected",
    "message.canceled",
    "message.scheduled",
    "message.fallback",
    "message.inbound",
    "message.typing",
];

/// Event types an endpoint gets only when it names them (`*` leaves them out):
/// `message.typing` comes whenever an RCS user types.
pub const OPT_IN_TYPES: [&str; 1] = ["message.typing"];

/// Whether an event of `kind` goes out as a webhook at all (`accepted` and `sending`
/// are internal steps).
pub fn is_published(kind: &str) -> bool {
    EVENT_TYPES.contains(&kind)
}

/// Whether an endpoint subscribed to `events` wants `kind`.
pub fn wants(events: &[String], kind: &str) -> bool {
    is_published(kind)
        && events
            .iter()
            .any(|e| (e == "*" && !OPT_IN_TYPES.contains(&kind)) || e == kind)
}

/// One timeline event as every webhook receives it, whatever the channel:
/// `{id, type, sequence, message_id, attempt, channel, status, raw_status,
/// error: {code, permanent} | null, occurred_at, metadata?, detail?}`.
/// `sequence` is the event's position in Hermod's timeline: it grows with each event
/// of a message, so receivers can order what arrives out of order.
#[allow(clippy::too_many_arguments)]
pub fn event_payload(
    seq: i64,
    message_id: &str,
    kind: &str,
    status: &str,
    attempt: Option<i32>,
    channel: Option<&str>,
    detail: Option<&serde_json::Value>,
    at: i64,
    metadata: Option<&serde_json::Value>,
) -> serde_json::Value {
    let field = |k: &str| detail.and_then(|d| d.get(k)).filter(|v| !v.is_null());
    let error = field("error_code").map(|code| {
        serde_json::json!({
            "code": code,
            "permanent": field("permanent").and_then(|p| p.as_bool()).unwrap_or(true),
        })
    });
    let mut v = serde_json::json!({
        "id": format!("evt_{seq}"),
        "type": kind,
        "sequence": seq,
        "message_id": message_id,
        "attempt": attempt,
        "channel": channel,
        "status": status,
        "raw_status": field("raw_status"),
        "error": error,
        "occurred_at": crate::rfc3339(at),
    });
    if let Some(m) = metadata {
        v["metadata"] = m.clone();
    }
    if (kind == "message.fallback" || kind == "message.rejected")
        && let Some(d) = detail
    {
        v["detail"] = d.clone();
    }
    v
}

/// A registered endpoint (its secret is shown once, at creation).
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookEndpoint {
    pub id: String,
    pub tenant_id: TenantId,
    pub url: String,
    pub events: Vec<String>,
    pub created_at: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    /// Given up after the retry period; can be replayed.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Delivered, Self::Failed]
            .into_iter()
            .find(|d| d.as_str() == s)
    }
}

/// One event on its way to one destination.
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookDelivery {
    pub id: i64,
    pub endpoint_id: Option<String>,
    pub url: String,
    pub event_type: String,
    pub message_id: Option<String>,
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub next_at: i64,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A due delivery as the webhook stage sends it.
#[derive(Clone, Debug)]
pub struct DueDelivery {
    pub id: i64,
    /// Whose delivery it is (each tenant has its share of the POSTs in flight).
    pub tenant_id: String,
    pub url: String,
    /// The JSON body, exactly as signed.
    pub payload: String,
    /// The endpoint's secret, or the tenant's callback secret; `None` when a
    /// callback URL's tenant has not created one yet (sent unsigned).
    pub secret: Option<String>,
    pub attempts: i32,
    pub created_at: i64,
}

/// What one POST came to.
#[derive(Clone, Debug)]
pub struct DeliveryResult {
    pub id: i64,
    /// The HTTP status, when an answer came.
    pub status: Option<u16>,
    /// Why it failed (`timeout`, `connect`, `http_503`), or None on a 2xx.
    pub error: Option<String>,
    /// When to try again; None when delivered or given up.
    pub retry_in: Option<Duration>,
}

/// Where the webhook stage stands in the append-only event log. Opaque to the stage:
/// the store reads after it and the stage hands it back once everything before it
/// has gone out (delivered, or kept as a delivery row to retry).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventCursor {
    /// The highest event read.
    pub seq: i64,
    /// PostgreSQL only: transactions still running when the log was read; their
    /// events may appear below `seq` once they commit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<i64>,
}

/// Where one event goes: a subscribed endpoint or the message's callback URL.
#[derive(Clone, Debug, PartialEq)]
pub struct Destination {
    pub endpoint_id: Option<String>,
    pub url: String,
    /// The endpoint's secret or the tenant's callback secret (None: sent unsigned);
    /// for a Twilio form POST, the account's auth token.
    pub secret: Option<String>,
    /// What this destination gets instead of the event's JSON (a Twilio status
    /// callback, see `twilio::FormPost`).
    pub payload: Option<String>,
}

/// A published event read from the log, with its payload and destinations.
#[derive(Clone, Debug, PartialEq)]
pub struct OutgoingEvent {
    pub seq: i64,
    pub tenant_id: String,
    pub event_type: String,
    pub message_id: String,
    /// The JSON body, exactly as signed.
    pub payload: String,
    pub destinations: Vec<Destination>,
}

/// Events after a cursor, and the cursor after them.
#[derive(Clone, Debug, Default)]
pub struct EventPage {
    pub events: Vec<OutgoingEvent>,
    pub next: EventCursor,
}

/// A delivery from the event log that did not succeed at once (or was not tried: its
/// endpoint was unhealthy or busy): kept as a row and retried from there.
#[derive(Clone, Debug)]
pub struct RetryDelivery {
    pub tenant_id: String,
    pub endpoint_id: Option<String>,
    pub url: String,
    pub event_type: String,
    pub message_id: Option<String>,
    pub payload: String,
    /// 0 when it was not tried yet.
    pub attempts: i32,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    /// Due again after this.
    pub retry_in: Duration,
}

/// What went out from the log for one tenant between two cursor positions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveredRange {
    pub tenant_id: String,
    pub from_seq: i64,
    pub to_seq: i64,
    /// POSTs answered 2xx.
    pub deliveries: u64,
}

/// Endpoints and deliveries. The event log is the delivery queue: the webhook stage
/// reads it after its cursor, and only deliveries that fail (or wait for a busy
/// endpoint) become rows, retried with backoff. Inbound messages are delivered
/// through rows written with them.
#[async_trait]
pub trait Webhooks: Send + Sync {
    async fn create_endpoint(&self, endpoint: &WebhookEndpoint, secret: &str) -> PortResult<()>;
    async fn list_endpoints(&self, tenant: &TenantId) -> PortResult<Vec<WebhookEndpoint>>;
    /// False when there is no such endpoint.
    async fn delete_endpoint(&self, tenant: &TenantId, id: &str) -> PortResult<bool>;
    /// Sets the secret that signs deliveries to per-message callback URLs.
    async fn set_callback_secret(&self, tenant: &TenantId, secret: &str) -> PortResult<()>;
    /// Takes (or renews) the event cursor for `holder` until `ttl` from now; None
    /// while another holder has it (several processes run the webhook stage, one
    /// reads the log).
    async fn claim_cursor(&self, holder: &str, ttl: Duration) -> PortResult<Option<EventCursor>>;
    /// Up to `max` published events after `cursor`, with their destinations.
    async fn events_after(&self, cursor: &EventCursor, max: usize) -> PortResult<EventPage>;
    /// In one transaction: moves `holder`'s cursor to `to` (renewing its claim for
    /// `ttl`), stores the deliveries to retry and records what was delivered in the
    /// audit log. False (and nothing stored) when `holder` no longer has the cursor.
    async fn advance_cursor(
        &self,
        holder: &str,
        ttl: Duration,
        to: &EventCursor,
        retry: &[RetryDelivery],
        delivered: &[DeliveredRange],
    ) -> PortResult<bool>;
    /// Leases up to `max` pending deliveries that are due, for `lease`.
    async fn due_deliveries(&self, max: usize, lease: Duration) -> PortResult<Vec<DueDelivery>>;
    /// Hands leased deliveries back untried, due again after `delay` (their endpoint
    /// is busy).
    async fn defer_deliveries(&self, ids: &[i64], delay: Duration) -> PortResult<()>;
    /// Records outcomes; a result without `retry_in` that failed marks it failed.
    async fn record_deliveries(&self, results: &[DeliveryResult]) -> PortResult<()>;
    /// A tenant's deliveries, newest first, optionally of one status, before `before`.
    async fn list_deliveries(
        &self,
        tenant: &TenantId,
        status: Option<DeliveryStatus>,
        before: Option<i64>,
        limit: i64,
    ) -> PortResult<Vec<WebhookDelivery>>;
    /// Housekeeping: deletes deliveries delivered more than `delivered_for` ago and
    /// failed ones older than `failed_for`; returns how many.
    async fn purge_deliveries(
        &self,
        delivered_for: Duration,
        failed_for: Duration,
    ) -> PortResult<usize>;
    /// Queues a delivery again now (any status); false when unknown.
    async fn retry_delivery(&self, tenant: &TenantId, id: i64) -> PortResult<bool>;
}

/// Why a POST got no HTTP status; shown as the delivery's `last_error`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PostError {
    /// The URL's address is one the SSRF guard refuses.
    #[error("blocked_address")]
    Blocked,
    #[error("timeout")]
    Timeout,
    #[error("connect")]
    Connect,
    #[error("request")]
    Request,
}

/// POSTs deliveries (an HTTP client adapter).
#[async_trait]
pub trait WebhookPoster: Send + Sync {
    /// POSTs the payload to the URL, signed with the secret when there is one;
    /// the HTTP status, or why none came.
    async fn post(&self, delivery: &DueDelivery) -> Result<u16, PostError>;
}

/// How long deliveries are retried before they are marked failed.
pub const RETRY_PERIOD: Duration = Duration::from_secs(25 * 3600);

/// The wait before the n-th retry: 1 s, 2 s, 4 s ... capped at 1 hour.
pub fn retry_backoff(attempts: i32) -> Duration {
    let exp = u32::try_from(attempts.clamp(1, 30) - 1).unwrap_or(0);
    Duration::from_secs(1u64 << exp.min(12)).min(Duration::from_secs(3600))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_an_hour() {
        assert_eq!(retry_backoff(1), Duration::from_secs(1));
        assert_eq!(retry_backoff(4), Duration::from_secs(8));
        assert_eq!(retry_backoff(30), Duration::from_secs(3600));
        // The retry period holds 30 attempts and more.
        let total: u64 = (1..=30).map(|n| retry_backoff(n).as_secs()).sum();
        assert!(total < RETRY_PERIOD.as_secs());
    }

    #[test]
    fn payloads_carry_the_unified_fields() {
        let detail = serde_json::json!({"raw_status": "DELIVRD", "error_code": null});
        let v = event_payload(
            7,
            "msg_1",
            "message.delivered",
            "delivered",
            Some(2),
            Some("sms"),
            Some(&detail),
            0,
            None,
        );
        assert_eq!(v["id"], "evt_7");
        assert_eq!(v["sequence"], 7);
        assert_eq!(v["attempt"], 2);
        assert_eq!(v["channel"], "sms");
        assert_eq!(v["raw_status"], "DELIVRD");
        assert!(v["error"].is_null());
        assert_eq!(v["occurred_at"], "1970-01-01T00:00:00Z");
        let failed = serde_json::json!({"error_code": "rcs_not_capable", "permanent": true});
        let v = event_payload(
            8,
            "m",
            "message.failed",
            "failed",
            Some(1),
            Some("rcs"),
            Some(&failed),
            0,
            None,
        );
        assert_eq!(
            v["error"],
            serde_json::json!({"code": "rcs_not_capable", "permanent": true})
        );
        assert!(wants(&["*".into()], "message.read"));
        assert!(!wants(&["*".into()], "message.sending"));
        assert!(!wants(&["message.sent".into()], "message.read"));
        assert!(!wants(&["*".into()], "message.typing"), "opt-in");
        assert!(wants(
            &["*".into(), "message.typing".into()],
            "message.typing"
        ));
    }
}
