//! Small helpers every part of the store uses: timeline rows, statuses read back,
//! uniqueness clashes, grouping updates.

use std::collections::BTreeMap;

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use hermod_core::Status;
use hermod_core::model::ChannelKind;

use super::rows::NewEventRow;

pub(crate) fn event_row(
    message_id: &str,
    tenant_id: &str,
    status: Status,
    attempt: Option<(i32, &str)>,
    detail: Option<serde_json::Value>,
    at: i64,
) -> NewEventRow {
    NewEventRow {
        message_id: message_id.to_owned(),
        tenant_id: tenant_id.to_owned(),
        kind: format!("message.{}", status.as_str()),
        status: status.as_str().to_owned(),
        attempt_no: attempt.map(|a| a.0),
        channel: attempt.map(|a| a.1.to_owned()),
        detail: detail.map(|d| d.to_string()),
        at,
    }
}

pub(crate) fn parse_status(s: &str) -> Status {
    // Only our own code writes statuses; an unknown one can only come from a newer
    // version, and treating it as failed keeps it from being resent.
    Status::parse(s).unwrap_or(Status::Failed)
}

pub(crate) fn is_unique_violation(e: &DieselError) -> bool {
    matches!(
        e,
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)
    )
}

pub(crate) fn channel_of(s: &str) -> ChannelKind {
    ChannelKind::parse(s).unwrap_or(ChannelKind::Sms)
}

/// Groups ids by the values they are set to, so each group is one UPDATE.
pub(crate) fn group<K: Ord, V>(items: impl IntoIterator<Item = (K, V)>) -> BTreeMap<K, Vec<V>> {
    let mut m: BTreeMap<K, Vec<V>> = BTreeMap::new();
    for (k, v) in items {
        m.entry(k).or_default().push(v);
    }
    m
}

/// Why an erased subject's messages in flight ended.
pub const ERASED: &str = "subject_erased";

/// A tenant's defaults as stored (JSON); the built-in ones when unset or unreadable.
pub(crate) fn defaults_of(raw: Option<&str>) -> hermod_core::plan::TenantDefaults {
    raw.and_then(|d| serde_json::from_str(d).ok())
        .unwrap_or_default()
}
