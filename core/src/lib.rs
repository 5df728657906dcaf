//! Hermod domain: identifiers, phone numbers, the unified status model, jobs and the
//! traits (`Store`, `Queue`, `Channel`) that the pipeline is generic over. No I/O here.

pub mod alert;
pub mod app;
pub mod audit;
pub mod content;
pub mod gsm;
pub mod ids;
pub mod inbound;
pub mod model;
pub mod msisdn;
pub mod net;
pub mod plan;
pub mod ports;
pub mod quiet;
pub mod sender;
pub mod status;
pub mod template;
pub mod webhook;

pub use ids::{AttemptId, EndpointId, MessageId, TenantId};
pub use msisdn::Msisdn;
pub use status::Status;

/// Milliseconds since the Unix epoch; the one clock format stored everywhere.
pub fn now_ms() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Unix ms as RFC 3339 (UTC, `2026-11-22T08:00:00.123Z`).
pub fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}
