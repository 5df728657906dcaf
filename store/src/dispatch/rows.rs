//! The rows the pipeline writes (attempts, fallback timers, the fallback's next
//! attempt and its job) and what it reads back from them.

use crate::sql::common::*;
use crate::sql::rows::*;
use hermod_core::model::*;
use hermod_core::plan::{Plan, Until, next_channel};
use hermod_core::{AttemptId, MessageId, Msisdn, Status};

/// Provider ids as stored: trimmed, lower-case and without leading zeros, so `0A1B`,
/// `0a1b` and `a1b` meet.
/// A `connector:` scope, when present, is kept (lower-cased) in front.
pub fn normalize_provider_id(id: &str) -> String {
    let lower = id.trim().to_ascii_lowercase();
    let (scope, id) = match lower.split_once(':') {
        Some((s, rest)) => (Some(s), rest.trim()),
        None => (None, lower.as_str()),
    };
    // RBM message ids are UUIDs, kept whole.
    if scope == Some("rbm") {
        return format!("rbm:{id}");
    }
    let stripped = id.trim_start_matches('0');
    let id = if stripped.is_empty() && !id.is_empty() {
        "0"
    } else {
        stripped
    };
    match scope {
        Some(s) => format!("{s}:{id}"),
        None => id.to_owned(),
    }
}

pub(super) fn user_ref() -> i32 {
    let b = uuid::Uuid::now_v7();
    let bytes = b.as_bytes();
    i32::from(u16::from_be_bytes([bytes[14], bytes[15]]))
}

/// The error code a withdrawn RCS attempt gets when RBM delivers it anyway.
pub(super) const DELIVERED_AFTER_REVOKE: &str = "delivered_after_revoke";

/// The error code of an RCS attempt withdrawn (revoked, RBM answered 200) so its
/// fallback could go out.
pub(super) const WITHDRAWN_FOR_FALLBACK: &str = "withdrawn_for_fallback";

/// How long after a revoke RBM answered 200 a DELIVERED (or READ) for that message
/// means the revoke did not take: the revoke guide says the 200 does not confirm it.
/// The device then has the RCS message and the fallback SMS.
pub(super) const REVOKE_GRACE_MS: i64 = 10 * 60 * 1000;

/// A receipt saying the device has a message Hermod withdrew for its fallback.
pub(super) fn delivered_after_revoke(a: &AttemptRow, folded: Status, now: i64) -> bool {
    matches!(folded, Status::Delivered | Status::Read)
        && a.error_code.as_deref() == Some(WITHDRAWN_FOR_FALLBACK)
        && now - a.updated_at <= REVOKE_GRACE_MS
}

/// The plan dispatch recorded on a message.
pub(super) fn plan_of(m: &MessageRow) -> Option<Plan> {
    m.plan.as_deref().and_then(|p| serde_json::from_str(p).ok())
}

/// A new attempt row, queued.
pub(super) fn attempt_row(message_id: &str, no: i32, channel: ChannelKind, now: i64) -> AttemptRow {
    AttemptRow {
        id: AttemptId::generate().to_string(),
        message_id: message_id.to_owned(),
        attempt_no: no,
        channel: channel.as_str().to_owned(),
        status: Status::Queued.as_str().to_owned(),
        user_ref: user_ref(),
        raw_status: None,
        error_code: None,
        error_permanent: None,
        parts: 1,
        sending_since: None,
        created_at: now,
        updated_at: now,
    }
}

/// What moves a message from attempt `a` to the next channel of its plan: the new
/// attempt, its dispatch job (the outbox in distributed mode) and the
/// `message.fallback` event. None when the plan has no further channel or the
/// message has ended.
pub(super) struct FallbackRows {
    pub attempt: AttemptRow,
    pub job: NewJobRow,
    pub event: NewEventRow,
}

pub(super) fn fallback_rows(
    m: &MessageRow,
    a: &AttemptRow,
    reason: &str,
    now: i64,
) -> Option<FallbackRows> {
    if parse_status(&m.status).is_final() {
        return None;
    }
    let plan = plan_of(m)?;
    let next = next_channel(&plan.steps, channel_of(&a.channel))?;
    let no = a.attempt_no + 1;
    let job = Job::DispatchV1 {
        message_id: m.id.clone(),
        high: m.priority > 0,
    };
    Some(FallbackRows {
        attempt: attempt_row(&m.id, no, next, now),
        job: NewJobRow::new(queues::DISPATCH, &job, now, now).ok()?,
        event: NewEventRow {
            message_id: m.id.clone(),
            tenant_id: m.tenant_id.clone(),
            kind: "message.fallback".into(),
            status: m.status.clone(),
            attempt_no: Some(no),
            channel: Some(next.as_str().to_owned()),
            detail: Some(
                serde_json::json!({
                    "from_attempt": a.attempt_no,
                    "from_channel": a.channel,
                    "reason": reason,
                })
                .to_string(),
            ),
            at: now,
        },
    })
}

/// The fallback timer of a sent attempt whose plan has a further channel.
pub(super) fn timer_row(m: &MessageRow, a: &AttemptRow, now: i64) -> Option<TimerRow> {
    let plan = plan_of(m)?;
    next_channel(&plan.steps, channel_of(&a.channel))?;
    let after = i64::try_from(plan.fallback.after_secs).unwrap_or(i64::MAX / 2000);
    Some(TimerRow {
        attempt_id: a.id.clone(),
        message_id: m.id.clone(),
        due_at: now + after * 1000,
        locked_until: 0,
        tries: 0,
    })
}

/// Whether `status` is the positive receipt the message's fallback waits for.
pub(super) fn ends_wait(m: &MessageRow, status: Status) -> bool {
    let until = plan_of(m).map_or(Until::Delivered, |p| p.fallback.until);
    match until {
        Until::Delivered => matches!(status, Status::Delivered | Status::Read),
        Until::Read => status == Status::Read,
    }
}

/// The timeline row of a receipt that moved a message.
pub(super) fn receipt_event(
    m: &MessageRow,
    a: &AttemptRow,
    status: Status,
    raw: &Option<String>,
    err: &Option<String>,
    now: i64,
) -> NewEventRow {
    event_row(
        &m.id,
        &m.tenant_id,
        status,
        Some((a.attempt_no, &a.channel)),
        Some(serde_json::json!({"raw_status": raw, "error_code": err})),
        now,
    )
}

/// Inserts fallback rows inside a transaction.
macro_rules! insert_fallbacks {
    ($c:ident, $rows:expr) => {{
        let rows: Vec<FallbackRows> = $rows;
        if !rows.is_empty() {
            let mut atts = Vec::new();
            let mut jobs = Vec::new();
            let mut evs = Vec::new();
            for r in rows {
                atts.push(r.attempt);
                jobs.push(r.job);
                evs.push(r.event);
            }
            $c.insert_attempts(atts).await?;
            $c.insert_jobs(jobs).await?;
            $c.insert_events(evs).await?;
        }
    }};
}
pub(super) fn outgoing(a: &AttemptRow, m: &MessageRow) -> Option<Outgoing> {
    Some(Outgoing {
        attempt_id: AttemptId::from_trusted(a.id.clone()),
        message_id: MessageId::from_trusted(m.id.clone()),
        tenant_id: hermod_core::TenantId::from_trusted(m.tenant_id.clone()),
        to: Msisdn::parse(&m.to_number).ok()?,
        from: m.from_addr.clone(),
        text: m.body.clone(),
        user_ref: u16::try_from(a.user_ref).unwrap_or(0),
        expires_at: m
            .ttl_secs
            .map(|t| m.send_at.unwrap_or(m.created_at).max(m.created_at) + t.saturating_mul(1000)),
        content: m
            .content
            .as_deref()
            .and_then(|c| serde_json::from_str(c).ok()),
        user_id: m.user_id.clone(),
        traffic_type: m.traffic_type(),
        binary: m
            .smpp
            .as_deref()
            .and_then(|o| serde_json::from_str::<hermod_core::smpp::SmppOrigin>(o).ok())
            .and_then(|o| o.binary),
    })
}

/// Kept receipts hold no text: a keyed hash of their text key, matched against the
/// same hash of a prefix of an attempt's part.
pub(super) fn text_mac(vault: &hermod_crypto::vault::Vault, key: &str) -> String {
    vault.lookup(&format!("text:{key}"))
}

/// A receipt's source address, as digits: how it names the attempt's destination.
pub(super) fn receipt_recipient(vault: &hermod_crypto::vault::Vault, addr: &str) -> String {
    let digits: String = addr.chars().filter(char::is_ascii_digit).collect();
    vault.lookup(&digits)
}

pub(super) use insert_fallbacks;
