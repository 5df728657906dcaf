//! Hermod domain: identifiers, phone numbers, the unified status model, jobs and the
//! traits (`Store`, `Queue`, `Channel`) that the pipeline is generic over. No I/O here.

pub mod alert;
pub mod app;
pub mod audit;
pub mod channel;
pub mod content;
pub mod error;
pub mod gsm;
pub mod ids;
pub mod inbound;
pub mod insights;
pub mod model;
pub mod msisdn;
pub mod net;
pub mod plan;
pub mod ports;
pub mod quiet;
pub mod secret;
pub mod sender;
pub mod smpp;
pub mod status;
pub mod template;
pub mod tenant;
pub mod twilio;
pub mod webhook;

pub use ids::{AttemptId, EndpointId, MessageId, TenantId};
pub use msisdn::Msisdn;
pub use secret::Secret;
pub use status::Status;

/// Milliseconds since the Unix epoch; the one clock format stored everywhere.
pub fn now_ms() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// RFC 3339 as Unix ms; None when it is not RFC 3339.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
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
