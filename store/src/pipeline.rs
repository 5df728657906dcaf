//! The pipeline's writes: planning attempts, claiming them, recording submit outcomes
//! and receipts. Each call is one transaction over a batch, and each is idempotent so a
//! redelivered job does no harm. Statuses only move forward (`Status::can_advance_to`).

use std::collections::{BTreeMap, HashMap, HashSet};

use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel_async::RunQueryDsl;
use hermod_core::model::*;
use hermod_core::plan::{Plan, Until, next_channel};
use hermod_core::ports::PortResult;
use hermod_core::{AttemptId, MessageId, Msisdn, Status, now_ms};

use crate::batch::BatchInsert as _;
use crate::rows::*;
use crate::schema::*;
use crate::seal::open_messages;
use crate::store::{event_row, parse_status};
use crate::{Db, backend, write_op, write_tx};

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

fn user_ref() -> i32 {
    let b = uuid::Uuid::now_v7();
    let bytes = b.as_bytes();
    i32::from(u16::from_be_bytes([bytes[14], bytes[15]]))
}

fn channel_of(s: &str) -> ChannelKind {
    ChannelKind::parse(s).unwrap_or(ChannelKind::Sms)
}

/// Groups ids by the values they are set to, so each group is one UPDATE.
fn group<K: Ord, V>(items: impl IntoIterator<Item = (K, V)>) -> BTreeMap<K, Vec<V>> {
    let mut m: BTreeMap<K, Vec<V>> = BTreeMap::new();
    for (k, v) in items {
        m.entry(k).or_default().push(v);
    }
    m
}

/// The error code a withdrawn RCS attempt gets when RBM delivers it anyway.
pub(crate) const DELIVERED_AFTER_REVOKE: &str = "delivered_after_revoke";

/// How long after a revoke RBM answered 200 a DELIVERED (or READ) for that message
/// means the revoke did not take: the revoke guide says the 200 does not confirm it.
/// The device then has the RCS message and the fallback SMS.
pub(crate) const REVOKE_GRACE_MS: i64 = 10 * 60 * 1000;

/// A receipt saying the device has a message Hermod withdrew for its fallback.
fn delivered_after_revoke(a: &AttemptRow, folded: Status, now: i64) -> bool {
    matches!(folded, Status::Delivered | Status::Read)
        && a.error_code.as_deref() == Some(crate::fallback::WITHDRAWN_FOR_FALLBACK)
        && now - a.updated_at <= REVOKE_GRACE_MS
}

/// The plan dispatch recorded on a message.
pub(crate) fn plan_of(m: &MessageRow) -> Option<Plan> {
    m.plan.as_deref().and_then(|p| serde_json::from_str(p).ok())
}

/// A new attempt row, queued.
fn attempt_row(message_id: &str, no: i32, channel: ChannelKind, now: i64) -> AttemptRow {
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
pub(crate) struct FallbackRows {
    pub attempt: AttemptRow,
    pub job: NewJobRow,
    pub event: NewEventRow,
}

pub(crate) fn fallback_rows(
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
fn timer_row(m: &MessageRow, a: &AttemptRow, now: i64) -> Option<TimerRow> {
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
fn ends_wait(m: &MessageRow, status: Status) -> bool {
    let until = plan_of(m).map_or(Until::Delivered, |p| p.fallback.until);
    match until {
        Until::Delivered => matches!(status, Status::Delivered | Status::Read),
        Until::Read => status == Status::Read,
    }
}

/// The timeline row of a receipt that moved a message.
fn receipt_event(
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
pub(crate) use insert_fallbacks;

fn outgoing(a: &AttemptRow, m: &MessageRow) -> Option<Outgoing> {
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
    })
}

/// Applies receipts inside an open transaction `$c`; evaluates to the receipts whose
/// provider id is unknown. A macro so that the body is checked once per backend.
macro_rules! apply_in_tx {
    ($c:ident, $receipts:expr, $now:expr) => {{
        let receipts: &[Receipt] = $receipts;
        let now: i64 = $now;
        let pids: Vec<String> = receipts.iter().map(|r| r.provider_id.clone()).collect();
        let mut parts: Vec<PartRow> = attempt_parts::table
            .filter(attempt_parts::provider_id.eq_any(&pids))
            .select(PartRow::as_select())
            .load($c)
            .await?;
        if !parts.is_empty() {
            // Their attempts are locked, and the parts read again where that may have
            // waited (PostgreSQL): what a concurrent outcome or receipt committed
            // meanwhile is seen, and nothing changes them until this commits.
            let mut owners: Vec<String> = parts.iter().map(|p| p.attempt_id.clone()).collect();
            owners.sort_unstable();
            owners.dedup();
            if $c.lock_attempts(&owners).await? {
                parts = attempt_parts::table
                    .filter(attempt_parts::provider_id.eq_any(&pids))
                    .select(PartRow::as_select())
                    .load($c)
                    .await?;
            }
        }
        let mut by_pid: HashMap<String, PartRow> = parts
            .into_iter()
            .map(|p| (p.provider_id.clone(), p))
            .collect();
        let mut unknown = Vec::new();
        let mut touched: HashSet<String> = HashSet::new();
        let mut part_updates = Vec::new();
        for r in receipts {
            match by_pid.get_mut(&r.provider_id) {
                None => unknown.push(r.clone()),
                Some(p) => {
                    let cur = parse_status(&p.status);
                    // Same status, new raw state (RBM's TTL_EXPIRATION_REVOKE_FAILED on
                    // a sent message): recorded, nothing moves.
                    let note =
                        cur == r.status && p.raw_status.as_deref() != Some(r.raw_status.as_str());
                    if cur.can_advance_to(r.status) || note {
                        p.status = r.status.as_str().to_owned();
                        p.raw_status = Some(r.raw_status.clone());
                        p.error_code = r.error_code.clone();
                        touched.insert(p.attempt_id.clone());
                        part_updates.push((
                            (p.status.clone(), p.raw_status.clone(), p.error_code.clone()),
                            p.provider_id.clone(),
                        ));
                    }
                }
            }
        }
        for ((st, raw, err), ids) in group(part_updates) {
            diesel::update(attempt_parts::table.filter(attempt_parts::provider_id.eq_any(&ids)))
                .set((
                    attempt_parts::status.eq(st),
                    attempt_parts::raw_status.eq(raw),
                    attempt_parts::error_code.eq(err),
                    attempt_parts::updated_at.eq(now),
                ))
                .execute($c)
                .await?;
        }
        if !touched.is_empty() {
            let touched: Vec<String> = touched.into_iter().collect();
            let atts: Vec<(AttemptRow, MessageRow)> = attempts::table
                .inner_join(messages::table)
                .filter(attempts::id.eq_any(&touched))
                .select((AttemptRow::as_select(), MessageRow::as_select()))
                .load($c)
                .await?;
            let all_parts: Vec<PartRow> = attempt_parts::table
                .filter(attempt_parts::attempt_id.eq_any(&touched))
                .select(PartRow::as_select())
                .load($c)
                .await?;
            let mut att_updates = Vec::new();
            let mut late_raw = Vec::new();
            let mut msg_updates = Vec::new();
            let mut evs = Vec::new();
            let mut fallbacks = Vec::new();
            let mut done_timers: Vec<String> = Vec::new();
            // Failures are settled after the loop: they need the message's other attempts.
            let mut failures = Vec::new();
            for (a, m) in atts {
                let mine: Vec<&PartRow> =
                    all_parts.iter().filter(|p| p.attempt_id == a.id).collect();
                let statuses: Vec<Status> = mine.iter().map(|p| parse_status(&p.status)).collect();
                let folded = Status::fold_parts(&statuses, usize::try_from(a.parts).unwrap_or(1));
                let same = parse_status(&a.status) == folded;
                if !same && !parse_status(&a.status).can_advance_to(folded) {
                    // A late receipt on an abandoned (withdrawn or failed) attempt: its
                    // raw state is recorded on the attempt; nothing moves.
                    if parse_status(&a.status).is_failure() {
                        let raw = mine
                            .iter()
                            .find(|p| parse_status(&p.status) == folded)
                            .and_then(|p| p.raw_status.clone());
                        let code = if delivered_after_revoke(&a, folded, now) {
                            metrics::counter!("hermod_rcs_delivered_after_revoke_total")
                                .increment(1);
                            Some(DELIVERED_AFTER_REVOKE.to_owned())
                        } else {
                            a.error_code.clone()
                        };
                        late_raw.push(((raw, code), a.id.clone()));
                    }
                    continue;
                }
                // The raw status and error of the part that decided the outcome.
                let decider = mine
                    .iter()
                    .find(|p| parse_status(&p.status) == folded)
                    .or(<[&PartRow]>::first(&mine));
                let raw = decider.and_then(|p| p.raw_status.clone());
                // `err:000` on a delivered part is no error.
                let err = decider
                    .and_then(|p| p.error_code.clone())
                    .filter(|_| folded.is_failure());
                att_updates.push(((folded.as_str(), raw.clone(), err.clone()), a.id.clone()));
                if same {
                    continue;
                }
                if folded.is_failure() {
                    failures.push((a, m, folded, raw, err));
                    continue;
                }
                if ends_wait(&m, folded) && timer_row(&m, &a, now).is_some() {
                    done_timers.push(a.id.clone());
                }
                if parse_status(&m.status).can_advance_to(folded) {
                    msg_updates.push((folded.as_str(), m.id.clone()));
                    evs.push(receipt_event(&m, &a, folded, &raw, &err, now));
                }
            }
            if !failures.is_empty() {
                let msg_ids: Vec<&str> = failures
                    .iter()
                    .map(|(a, ..)| a.message_id.as_str())
                    .collect();
                let siblings: Vec<(String, i32)> = attempts::table
                    .filter(attempts::message_id.eq_any(&msg_ids))
                    .select((attempts::message_id, attempts::attempt_no))
                    .load($c)
                    .await?;
                let mut latest: HashMap<String, i32> = HashMap::new();
                for (mid, no) in siblings {
                    let e = latest.entry(mid).or_insert(no);
                    *e = (*e).max(no);
                }
                for (a, m, folded, raw, err) in &failures {
                    done_timers.push(a.id.clone());
                    if latest.get(&m.id).is_some_and(|n| *n > a.attempt_no) {
                        // An attempt the message already moved on from.
                        continue;
                    }
                    let reason = err.clone().unwrap_or_else(|| folded.as_str().to_owned());
                    if let Some(fb) = fallback_rows(m, a, &reason, now) {
                        fallbacks.push(fb);
                    } else if parse_status(&m.status).can_advance_to(*folded) {
                        msg_updates.push((folded.as_str(), m.id.clone()));
                        evs.push(receipt_event(m, a, *folded, raw, err, now));
                    }
                }
            }
            for ((st, raw, err), ids) in group(att_updates) {
                // `err` is only kept for failures, and a receipt's failure is final.
                let permanent = err.as_ref().map(|_| true);
                diesel::update(attempts::table.filter(attempts::id.eq_any(&ids)))
                    .set((
                        attempts::status.eq(st),
                        attempts::raw_status.eq(raw),
                        attempts::error_code.eq(err),
                        attempts::error_permanent.eq(permanent),
                        attempts::updated_at.eq(now),
                    ))
                    .execute($c)
                    .await?;
            }
            for ((raw, code), ids) in group(late_raw) {
                diesel::update(attempts::table.filter(attempts::id.eq_any(&ids)))
                    .set((
                        attempts::raw_status.eq(raw),
                        attempts::error_code.eq(code),
                        attempts::updated_at.eq(now),
                    ))
                    .execute($c)
                    .await?;
            }
            for (st, ids) in group(msg_updates) {
                diesel::update(messages::table.filter(messages::id.eq_any(&ids)))
                    .set((messages::status.eq(st), messages::updated_at.eq(now)))
                    .execute($c)
                    .await?;
            }
            $c.insert_events(evs).await?;
            insert_fallbacks!($c, fallbacks);
            if !done_timers.is_empty() {
                diesel::delete(
                    fallback_timers::table.filter(fallback_timers::attempt_id.eq_any(&done_timers)),
                )
                .execute($c)
                .await?;
            }
        }
        Ok::<Vec<Receipt>, DieselError>(unknown)
    }};
}

/// `apply_in_tx!` round by round (see `rounds`); the receipts whose provider id is
/// not known, in the order given.
macro_rules! apply_rounds {
    ($c:ident, $receipts:expr, $now:expr) => {{
        let mut unknown: Vec<Receipt> = Vec::new();
        for round in rounds($receipts) {
            unknown.extend(apply_in_tx!($c, &round, $now)?);
        }
        Ok::<Vec<Receipt>, DieselError>(unknown)
    }};
}

fn orphan_to_receipt(o: &OrphanRow) -> Receipt {
    Receipt {
        channel: ChannelKind::Sms,
        provider_id: o.provider_id.clone(),
        status: parse_status(&o.status),
        raw_status: o.raw_status.clone(),
        error_code: o.error_code.clone(),
        user_ref: o.user_ref.and_then(|u| u16::try_from(u).ok()),
        recipient: o.recipient.clone(),
        echo: None,
        event: None,
    }
}

/// Kept receipts as receipts, in the order they came (a DELIVERED and the READ stored
/// in one batch: the forward one last).
fn kept_in_order(mut orphans: Vec<OrphanRow>) -> Vec<Receipt> {
    orphans.sort_by_key(|o| (o.received_at, parse_status(&o.status).rank()));
    orphans.iter().map(orphan_to_receipt).collect()
}

/// Receipts in rounds in which no provider id repeats, each round applied on its own:
/// a DELIVERED and the READ after it in one batch are both recorded, one event each,
/// in order (one round applied at once folds them into the READ).
fn rounds(receipts: Vec<Receipt>) -> Vec<Vec<Receipt>> {
    let mut out: Vec<(HashSet<String>, Vec<Receipt>)> = Vec::new();
    for r in receipts {
        let i = out
            .iter()
            .rposition(|(ids, _)| ids.contains(&r.provider_id))
            .map_or(0, |i| i + 1);
        if i == out.len() {
            out.push(Default::default());
        }
        if let Some((ids, round)) = out.get_mut(i) {
            ids.insert(r.provider_id.clone());
            round.push(r);
        }
    }
    out.into_iter().map(|(_, round)| round).collect()
}

/// Kept receipts hold no text: a keyed hash of their text key, matched against the
/// same hash of a prefix of an attempt's part.
fn text_mac(vault: &hermod_crypto::vault::Vault, key: &str) -> String {
    vault.lookup(&format!("text:{key}"))
}

/// A receipt's source address, as digits: how it names the attempt's destination.
fn receipt_recipient(vault: &hermod_crypto::vault::Vault, addr: &str) -> String {
    let digits: String = addr.chars().filter(char::is_ascii_digit).collect();
    vault.lookup(&digits)
}

const QUARTER_HOUR: i64 = 15 * 60 * 1000;

/// True when a receipt's `submit date` fits a submit made between `since` and `now`.
/// SMSCs write it to the minute in their own time zone, which is a whole number of
/// quarter hours off UTC (within ±14 h); a minute of truncation and a minute of
/// clock skew either side are allowed.
fn submit_date_fits(date: i64, since: i64, now: i64) -> bool {
    let (lo, hi) = (since - 120_000, now + 60_000);
    if hi - lo >= QUARTER_HOUR {
        return true;
    }
    // The smallest whole-quarter-hour shift that brings the date to lo or later.
    let gap = lo - date;
    let k = gap.div_euclid(QUARTER_HOUR) + i64::from(gap.rem_euclid(QUARTER_HOUR) != 0);
    k.abs() <= 56 && date + k * QUARTER_HOUR <= hi
}

/// True when a kept receipt's text is consistent with a part whose text key is
/// `part` (`None`: the channel does not say): the receipt's key is a prefix of it.
fn text_fits(vault: &hermod_crypto::vault::Vault, o: &OrphanRow, part: Option<&str>) -> bool {
    let (Some(mac), Some(len), Some(part)) = (&o.text_mac, o.text_len, part) else {
        return true;
    };
    let Ok(len) = usize::try_from(len) else {
        return false;
    };
    len == 0 || part.get(..len).is_some_and(|p| &text_mac(vault, p) == mac)
}

pub async fn plan_attempts(
    db: &Db,
    ids: &[MessageId],
    plans: &[(MessageId, Plan)],
) -> PortResult<Vec<(AttemptId, ChannelKind, bool)>> {
    let ids: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    let plans: HashMap<String, Plan> = plans
        .iter()
        .map(|(m, p)| (m.to_string(), p.clone()))
        .collect();
    let now = now_ms();
    write_op!(db, move |c| {
        let msgs: Vec<MessageRow> = messages::table
            .filter(messages::id.eq_any(&ids))
            .select(MessageRow::as_select())
            .load(c)
            .await?;
        // Planning needs no plaintext: opt-outs are matched by the number's HMAC.
        let existing: Vec<AttemptRow> = attempts::table
            .filter(attempts::message_id.eq_any(&ids))
            .select(AttemptRow::as_select())
            .load(c)
            .await?;
        // The latest attempt of each message (a fallback's may be waiting to go out).
        let mut latest: HashMap<&str, &AttemptRow> = HashMap::new();
        for a in &existing {
            let e = latest.entry(a.message_id.as_str()).or_insert(a);
            if a.attempt_no > e.attempt_no {
                *e = a;
            }
        }
        let existing = latest;
        let mut plan_updates = Vec::new();
        // Opt-outs are keyed by the number's HMAC (rows from before sealing by the
        // number, which such messages hold in plaintext).
        let tos: Vec<&str> = msgs
            .iter()
            .flat_map(|m| [m.to_hash.as_deref(), Some(m.to_number.as_str())])
            .flatten()
            .collect();
        let outs: Vec<OptOutRow> = opt_outs::table
            .filter(opt_outs::recipient.eq_any(&tos))
            .select(OptOutRow::as_select())
            .load(c)
            .await?;
        let mut rejected = Vec::new();
        let mut out = Vec::new();
        let mut new_atts = Vec::new();
        let mut evs = Vec::new();
        let mut queued = Vec::new();
        for m in &msgs {
            if let Some(a) = existing.get(m.id.as_str()) {
                // A redelivered dispatch job: the send job may not have been published.
                if a.status == Status::Queued.as_str() {
                    out.push((
                        AttemptId::from_trusted(a.id.clone()),
                        channel_of(&a.channel),
                        m.priority > 0,
                    ));
                }
                continue;
            }
            let status = parse_status(&m.status);
            if status.is_final() {
                continue;
            }
            if crate::inbound::opted_out(&outs, m) {
                rejected.push(m.id.clone());
                evs.push(event_row(
                    &m.id,
                    &m.tenant_id,
                    Status::Rejected,
                    None,
                    Some(serde_json::json!({ "reason": crate::inbound::OPTED_OUT })),
                    now,
                ));
                continue;
            }
            let channel = match plans.get(m.id.as_str()) {
                Some(plan) => {
                    plan_updates.push((
                        serde_json::to_string(plan).unwrap_or_default(),
                        m.id.clone(),
                    ));
                    plan.first_channel()
                }
                None => {
                    let asked: Vec<String> = serde_json::from_str(&m.channels).unwrap_or_default();
                    <[String]>::first(&asked).map_or(ChannelKind::Sms, |c| channel_of(c))
                }
            };
            let row = attempt_row(&m.id, 1, channel, now);
            let id = AttemptId::from_trusted(row.id.clone());
            new_atts.push(row);
            if status.can_advance_to(Status::Queued) {
                queued.push(m.id.clone());
                evs.push(event_row(
                    &m.id,
                    &m.tenant_id,
                    Status::Queued,
                    Some((1, channel.as_str())),
                    None,
                    now,
                ));
            }
            out.push((id, channel, m.priority > 0));
        }
        c.insert_attempts(new_atts).await?;
        c.insert_events(evs).await?;
        // One UPDATE per message: its plan and `queued` together.
        let queued_set: HashSet<&String> = queued.iter().collect();
        let planned: HashSet<&String> = plan_updates.iter().map(|(_, id)| id).collect();
        for ((plan, q), ids) in group(
            plan_updates
                .iter()
                .map(|(p, id)| ((Some(p.clone()), queued_set.contains(id)), id.clone()))
                .chain(
                    queued
                        .iter()
                        .filter(|id| !planned.contains(id))
                        .map(|id| ((None, true), id.clone())),
                ),
        ) {
            let target = messages::table.filter(messages::id.eq_any(&ids));
            match (plan, q) {
                (Some(plan), true) => {
                    diesel::update(target)
                        .set((
                            messages::plan.eq(plan),
                            messages::status.eq(Status::Queued.as_str()),
                            messages::updated_at.eq(now),
                        ))
                        .execute(c)
                        .await?
                }
                (Some(plan), false) => {
                    diesel::update(target)
                        .set(messages::plan.eq(plan))
                        .execute(c)
                        .await?
                }
                (None, _) => {
                    diesel::update(target)
                        .set((
                            messages::status.eq(Status::Queued.as_str()),
                            messages::updated_at.eq(now),
                        ))
                        .execute(c)
                        .await?
                }
            };
        }
        if !rejected.is_empty() {
            diesel::update(messages::table.filter(messages::id.eq_any(&rejected)))
                .set((
                    messages::status.eq(Status::Rejected.as_str()),
                    messages::reason.eq(crate::inbound::OPTED_OUT),
                    messages::updated_at.eq(now),
                ))
                .execute(c)
                .await?;
        }
        Ok::<_, DieselError>(out)
    })
    .map_err(backend)
}

pub async fn claim_attempts(
    db: &Db,
    vault: &std::sync::Arc<hermod_crypto::vault::Vault>,
    ids: &[AttemptId],
) -> PortResult<Vec<Claim>> {
    let ids: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    let now = now_ms();
    let vault = vault.clone();
    write_op!(db, move |c| {
        let mut rows: Vec<(AttemptRow, MessageRow)> = attempts::table
            .inner_join(messages::table)
            .filter(attempts::id.eq_any(&ids))
            .select((AttemptRow::as_select(), MessageRow::as_select()))
            .load(c)
            .await?;
        open_messages!(c, &vault, rows.iter_mut().map(|(_, m)| m));
        let mut out = Vec::new();
        let mut candidates: Vec<(&AttemptRow, &MessageRow, Outgoing)> = Vec::new();
        let mut msg_sending = Vec::new();
        let mut evs = Vec::new();
        let mut found = HashSet::new();
        for (a, m) in &rows {
            found.insert(a.id.clone());
            let st = parse_status(&a.status);
            match (st, outgoing(a, m)) {
                (Status::Queued, Some(o)) => candidates.push((a, m, o)),
                (Status::Sending, Some(o)) => out.push(Claim::InDoubt {
                    outgoing: o,
                    since: a.sending_since.unwrap_or(a.updated_at),
                }),
                _ => out.push(Claim::Done(AttemptId::from_trusted(a.id.clone()))),
            }
        }
        for id in &ids {
            if !found.contains(id) {
                out.push(Claim::Done(AttemptId::from_trusted(id.clone())));
            }
        }
        if !candidates.is_empty() {
            // Only rows still `queued` are claimed: a concurrent cancel may have won.
            let want: Vec<&str> = candidates.iter().map(|(a, _, _)| a.id.as_str()).collect();
            let got: HashSet<String> = diesel::update(
                attempts::table
                    .filter(attempts::id.eq_any(&want))
                    .filter(attempts::status.eq(Status::Queued.as_str())),
            )
            .set((
                attempts::status.eq(Status::Sending.as_str()),
                attempts::sending_since.eq(now),
                attempts::updated_at.eq(now),
            ))
            .returning(attempts::id)
            .get_results::<String>(c)
            .await?
            .into_iter()
            .collect();
            for (a, m, o) in candidates {
                if !got.contains(&a.id) {
                    out.push(Claim::Done(AttemptId::from_trusted(a.id.clone())));
                    continue;
                }
                if parse_status(&m.status).can_advance_to(Status::Sending) {
                    msg_sending.push(m.id.clone());
                    evs.push(event_row(
                        &m.id,
                        &m.tenant_id,
                        Status::Sending,
                        Some((a.attempt_no, &a.channel)),
                        None,
                        now,
                    ));
                }
                out.push(Claim::Claimed(o));
            }
        }
        if !msg_sending.is_empty() {
            diesel::update(messages::table.filter(messages::id.eq_any(&msg_sending)))
                .set((
                    messages::status.eq(Status::Sending.as_str()),
                    messages::updated_at.eq(now),
                ))
                .execute(c)
                .await?;
        }
        c.insert_events(evs).await?;
        Ok::<_, DieselError>(out)
    })
    .map_err(backend)
}

pub async fn record_sends(db: &Db, results: &[SendResult]) -> PortResult<()> {
    let ids: Vec<String> = results.iter().map(|r| r.attempt_id.to_string()).collect();
    let results = results.to_vec();
    let now = now_ms();
    write_op!(db, move |c| {
        let mut new_pids = Vec::new();
        // Statuses are decided on the latest rows, which stay as read until commit (a
        // receipt or an in-doubt resolution may be recording the same attempt).
        c.lock_attempts(&ids).await?;
        let rows: Vec<(AttemptRow, MessageRow)> = attempts::table
            .inner_join(messages::table)
            .filter(attempts::id.eq_any(&ids))
            .select((AttemptRow::as_select(), MessageRow::as_select()))
            .load(c)
            .await?;
        let rows: HashMap<String, (AttemptRow, MessageRow)> = rows
            .into_iter()
            .map(|(a, m)| (a.id.clone(), (a, m)))
            .collect();
        let mut parts = Vec::new();
        let mut att_sent = Vec::new();
        let mut att_failed = Vec::new();
        let mut att_retry = Vec::new();
        let mut msg_updates = Vec::new();
        let mut evs = Vec::new();
        let mut timers = Vec::new();
        let mut fallbacks = Vec::new();
        for r in results {
            let Some((a, m)) = rows.get(r.attempt_id.as_str()) else {
                continue;
            };
            let cur = parse_status(&a.status);
            let (next, detail) = match &r.outcome {
                SendOutcome::Sent {
                    provider_ids,
                    raw_status,
                } => {
                    for (i, pid) in provider_ids.iter().enumerate() {
                        let pid = normalize_provider_id(pid);
                        new_pids.push(pid.clone());
                        parts.push(PartRow {
                            provider_id: pid,
                            attempt_id: a.id.clone(),
                            part_no: i32::try_from(i + 1).unwrap_or(i32::MAX),
                            status: Status::Sent.as_str().to_owned(),
                            raw_status: Some(raw_status.clone()),
                            error_code: None,
                            updated_at: now,
                        });
                    }
                    if !cur.can_advance_to(Status::Sent) {
                        continue;
                    }
                    let n = i32::try_from(provider_ids.len()).unwrap_or(1);
                    att_sent.push(((raw_status.clone(), n), a.id.clone()));
                    timers.extend(timer_row(m, a, now));
                    (
                        Status::Sent,
                        serde_json::json!({"provider_ids": provider_ids, "raw_status": raw_status}),
                    )
                }
                SendOutcome::Failed { code, permanent } => {
                    if !cur.can_advance_to(Status::Failed) {
                        continue;
                    }
                    att_failed.push(((code.clone(), *permanent), a.id.clone()));
                    if let Some(fb) = fallback_rows(m, a, code, now) {
                        fallbacks.push(fb);
                        continue;
                    }
                    (
                        Status::Failed,
                        serde_json::json!({"error_code": code, "permanent": permanent}),
                    )
                }
                SendOutcome::Retry { .. } => {
                    att_retry.push(a.id.clone());
                    continue;
                }
            };
            if parse_status(&m.status).can_advance_to(next) {
                msg_updates.push((next.as_str(), m.id.clone()));
                evs.push(event_row(
                    &m.id,
                    &m.tenant_id,
                    next,
                    Some((a.attempt_no, &a.channel)),
                    Some(detail),
                    now,
                ));
            }
        }
        c.insert_parts(parts).await?;
        for ((raw, n), ids) in group(att_sent) {
            diesel::update(attempts::table.filter(attempts::id.eq_any(&ids)))
                .set((
                    attempts::status.eq(Status::Sent.as_str()),
                    attempts::raw_status.eq(raw),
                    attempts::parts.eq(n),
                    attempts::updated_at.eq(now),
                ))
                .execute(c)
                .await?;
        }
        for ((code, permanent), ids) in group(att_failed) {
            diesel::update(attempts::table.filter(attempts::id.eq_any(&ids)))
                .set((
                    attempts::status.eq(Status::Failed.as_str()),
                    attempts::raw_status.eq(code.clone()),
                    attempts::error_code.eq(code),
                    attempts::error_permanent.eq(permanent),
                    attempts::updated_at.eq(now),
                ))
                .execute(c)
                .await?;
        }
        if !att_retry.is_empty() {
            diesel::update(
                attempts::table
                    .filter(attempts::id.eq_any(&att_retry))
                    .filter(attempts::status.eq(Status::Sending.as_str())),
            )
            .set((
                attempts::status.eq(Status::Queued.as_str()),
                attempts::sending_since.eq(None::<i64>),
                attempts::updated_at.eq(now),
            ))
            .execute(c)
            .await?;
        }
        for (st, ids) in group(msg_updates) {
            diesel::update(messages::table.filter(messages::id.eq_any(&ids)))
                .set((messages::status.eq(st), messages::updated_at.eq(now)))
                .execute(c)
                .await?;
        }
        c.insert_events(evs).await?;
        insert_fallbacks!(c, fallbacks);
        c.insert_timers(timers).await?;
        // Receipts that overtook their submit response.
        if !new_pids.is_empty() {
            let orphans: Vec<OrphanRow> = orphan_receipts::table
                .filter(orphan_receipts::provider_id.eq_any(&new_pids))
                .select(OrphanRow::as_select())
                .load(c)
                .await?;
            if !orphans.is_empty() {
                let done: Vec<String> = orphans.iter().map(|o| o.provider_id.clone()).collect();
                apply_rounds!(c, kept_in_order(orphans), now)?;
                diesel::delete(
                    orphan_receipts::table.filter(orphan_receipts::provider_id.eq_any(done)),
                )
                .execute(c)
                .await?;
            }
        }
        Ok::<_, DieselError>(())
    })
    .map_err(backend)
}

pub async fn apply_receipts(
    db: &Db,
    vault: &std::sync::Arc<hermod_crypto::vault::Vault>,
    receipts: &[Receipt],
) -> PortResult<()> {
    let now = now_ms();
    let receipts: Vec<Receipt> = receipts
        .iter()
        .map(|r| Receipt {
            provider_id: normalize_provider_id(&r.provider_id),
            ..r.clone()
        })
        .collect();
    let vault = vault.clone();
    write_op!(db, move |c| {
        // A redelivered provider event (its marker is there) changes nothing; the
        // markers of the others are written with their effect. (SMPP receipts carry
        // none: the batch goes as it is.)
        let mut fresh = std::borrow::Cow::Borrowed(receipts.as_slice());
        if receipts.iter().any(|r| r.event.is_some()) {
            let mut kept = Vec::with_capacity(receipts.len());
            for r in &receipts {
                if let Some(ev) = &r.event
                    && !crate::inbound::mark_event!(c, ev, now)?
                {
                    continue;
                }
                kept.push(r.clone());
            }
            fresh = std::borrow::Cow::Owned(kept);
        }
        // Kept receipts of these ids go first: one kept while its submit response was
        // being stored beside it (PostgreSQL: neither transaction saw the other) is
        // applied before the receipt that followed it, not after, by the adopting loop.
        let pids: Vec<&str> = fresh.iter().map(|r| r.provider_id.as_str()).collect();
        let waiting: Vec<OrphanRow> = orphan_receipts::table
            .filter(orphan_receipts::provider_id.eq_any(&pids))
            .select(OrphanRow::as_select())
            .load(c)
            .await?;
        let kept: HashSet<(String, String)> = waiting
            .iter()
            .map(|o| (o.provider_id.clone(), o.status.clone()))
            .collect();
        let mut all = kept_in_order(waiting);
        all.extend(fresh.iter().cloned());
        let unknown = apply_rounds!(c, all, now)?;
        if !kept.is_empty() {
            let still: HashSet<&str> = unknown.iter().map(|r| r.provider_id.as_str()).collect();
            let adopted: Vec<&String> = kept
                .iter()
                .map(|(p, _)| p)
                .filter(|p| !still.contains(p.as_str()))
                .collect();
            if !adopted.is_empty() {
                diesel::delete(
                    orphan_receipts::table.filter(orphan_receipts::provider_id.eq_any(&adopted)),
                )
                .execute(c)
                .await?;
            }
        }
        let orphans: Vec<OrphanRow> = unknown
            .iter()
            .filter(|r| !kept.contains(&(r.provider_id.clone(), r.status.as_str().to_owned())))
            .map(|r| {
                let echo = r.echo.as_ref();
                let key = echo.map(|e| e.text_key.as_str()).filter(|k| !k.is_empty());
                OrphanRow {
                    provider_id: r.provider_id.clone(),
                    status: r.status.as_str().to_owned(),
                    raw_status: r.raw_status.clone(),
                    error_code: r.error_code.clone(),
                    user_ref: r.user_ref.map(i32::from),
                    recipient: r.recipient.as_deref().map(|d| receipt_recipient(&vault, d)),
                    received_at: now,
                    submitted_at: echo.and_then(|e| e.submitted_at),
                    text_mac: key.map(|k| text_mac(&vault, k)),
                    text_len: key.and_then(|k| i32::try_from(k.len()).ok()),
                }
            })
            .collect();
        c.insert_orphans(orphans).await?;
        Ok::<_, DieselError>(())
    })
    .map_err(backend)
}

/// Kept receipts are offered to their attempts this long: a receipt that came before
/// its submit response is adopted within seconds; older ones wait only for an
/// in-doubt submit or their purge, and cost nothing here.
const ADOPT_WINDOW_MS: i64 = 10 * 60 * 1000;

pub async fn adopt_orphans(db: &Db) -> PortResult<usize> {
    let now = now_ms();
    write_op!(db, move |c| {
        let orphans: Vec<OrphanRow> = orphan_receipts::table
            .filter(orphan_receipts::received_at.gt(now - ADOPT_WINDOW_MS))
            .order(orphan_receipts::received_at.asc())
            .limit(1000)
            .select(OrphanRow::as_select())
            .load(c)
            .await?;
        if orphans.is_empty() {
            return Ok(0);
        }
        // Every kept receipt of these ids, also one past the limit: all go together.
        let pids: HashSet<String> = orphans.iter().map(|o| o.provider_id.clone()).collect();
        let orphans: Vec<OrphanRow> = orphan_receipts::table
            .filter(orphan_receipts::provider_id.eq_any(&pids))
            .select(OrphanRow::as_select())
            .load(c)
            .await?;
        let unknown = apply_rounds!(c, kept_in_order(orphans), now)?;
        let unknown: HashSet<&str> = unknown.iter().map(|r| r.provider_id.as_str()).collect();
        let known: Vec<&String> = pids
            .iter()
            .filter(|p| !unknown.contains(p.as_str()))
            .collect();
        if !known.is_empty() {
            diesel::delete(
                orphan_receipts::table.filter(orphan_receipts::provider_id.eq_any(&known)),
            )
            .execute(c)
            .await?;
        }
        Ok::<_, DieselError>(known.len())
    })
    .map_err(backend)
}

/// The kept receipts that are an in-doubt attempt's own, one per part in order, or
/// none. Receipts that echo its `user_ref` win; without them, receipts that echo no
/// reference are matched by scope, arrival, submit date and text, each used once.
fn own_receipts(
    vault: &hermod_crypto::vault::Vault,
    orphans: Vec<OrphanRow>,
    user_ref: i32,
    look: &InDoubtLook,
    now: i64,
) -> Vec<OrphanRow> {
    let (by_ref, rest): (Vec<OrphanRow>, Vec<OrphanRow>) = orphans
        .into_iter()
        .partition(|o| o.user_ref == Some(user_ref));
    if !by_ref.is_empty() {
        return by_ref;
    }
    // Stored provider ids are in normal form (lower case).
    let scopes: Vec<String> = look.scopes.iter().map(|s| s.to_ascii_lowercase()).collect();
    let mut free: Vec<Option<OrphanRow>> = rest
        .into_iter()
        .filter(|o| o.user_ref.is_none())
        .filter(|o| {
            scopes.is_empty() || scopes.iter().any(|s| o.provider_id.starts_with(s.as_str()))
        })
        // Stored after the submit could have been made (a minute of clock skew).
        .filter(|o| o.received_at >= look.since - 60_000)
        .filter(|o| {
            o.submitted_at
                .is_none_or(|d| submit_date_fits(d, look.since, now))
        })
        .map(Some)
        .collect();
    let parts = look.part_keys.len().max(1);
    let mut mine = Vec::with_capacity(parts);
    for i in 0..parts {
        let key = look.part_keys.get(i).map(String::as_str);
        let hit = free
            .iter_mut()
            .find(|o| o.as_ref().is_some_and(|o| text_fits(vault, o, key)));
        if let Some(o) = hit.and_then(Option::take) {
            mine.push(o);
        }
    }
    // Every part recognised; or, at the last look, any: sending it all again would
    // repeat what the SMSC took.
    if mine.len() == parts || (look.last_look && !mine.is_empty()) {
        mine
    } else {
        Vec::new()
    }
}

pub async fn resolve_in_doubt(
    db: &Db,
    vault: &std::sync::Arc<hermod_crypto::vault::Vault>,
    o: &Outgoing,
    look: &InDoubtLook,
) -> PortResult<bool> {
    let now = now_ms();
    let aid = o.attempt_id.to_string();
    let uref = i32::from(o.user_ref);
    // Orphans keep the recipient's HMAC, not the number.
    let recipient = vault.lookup(o.to.digits());
    let (vault, look) = (vault.clone(), look.clone());
    let resolved = write_tx!(db, |c| {
        // Before its receipt: a submit outcome for this attempt may be committing.
        c.lock_attempts(std::slice::from_ref(&aid)).await?;
        let still: i64 = attempts::table
            .filter(attempts::id.eq(&aid))
            .filter(attempts::status.eq(Status::Sending.as_str()))
            .count()
            .get_result(c)
            .await?;
        if still == 0 {
            return Ok(false);
        }
        let orphans: Vec<OrphanRow> = orphan_receipts::table
            .filter(orphan_receipts::recipient.eq(&recipient))
            .order((
                orphan_receipts::received_at.asc(),
                orphan_receipts::provider_id.asc(),
            ))
            .limit(500)
            .select(OrphanRow::as_select())
            .load(c)
            .await?;
        // One receipt per provider id is matched to a part (its first); the others of
        // that id (an intermediate status, then the final one) are applied with it.
        let mut seen = HashSet::new();
        let (firsts, later): (Vec<OrphanRow>, Vec<OrphanRow>) = orphans
            .into_iter()
            .partition(|o| seen.insert(o.provider_id.clone()));
        let mine = own_receipts(&vault, firsts, uref, &look, now);
        if mine.is_empty() {
            return Ok(false);
        }
        let done: Vec<String> = mine.iter().map(|x| x.provider_id.clone()).collect();
        let mut taken = later;
        taken.retain(|o| done.contains(&o.provider_id));
        let parts: Vec<PartRow> = mine
            .iter()
            .enumerate()
            .map(|(i, orph)| PartRow {
                provider_id: orph.provider_id.clone(),
                attempt_id: aid.clone(),
                part_no: i32::try_from(i + 1).unwrap_or(i32::MAX),
                status: Status::Sent.as_str().to_owned(),
                raw_status: None,
                error_code: None,
                updated_at: now,
            })
            .collect();
        let n = i32::try_from(parts.len()).unwrap_or(1);
        c.insert_parts(parts).await?;
        diesel::update(
            attempts::table
                .filter(attempts::id.eq(&aid))
                .filter(attempts::status.eq(Status::Sending.as_str())),
        )
        .set((
            attempts::status.eq(Status::Sent.as_str()),
            attempts::parts.eq(n),
            attempts::raw_status.eq("recovered_from_receipt"),
            attempts::updated_at.eq(now),
        ))
        .execute(c)
        .await?;
        taken.extend(mine);
        // Each kept receipt is one attempt's: one that another attempt took meanwhile
        // (PostgreSQL, another worker) undoes this and the next look decides.
        let gone = diesel::delete(
            orphan_receipts::table.filter(orphan_receipts::provider_id.eq_any(&done)),
        )
        .execute(c)
        .await?;
        if gone < taken.len() {
            return Err(DieselError::RollbackTransaction);
        }
        apply_rounds!(c, kept_in_order(taken), now)?;
        Ok::<_, DieselError>(true)
    });
    match resolved {
        Err(DieselError::RollbackTransaction) => Ok(false),
        r => r.map_err(backend),
    }
}

#[cfg(test)]
mod tests {
    use super::normalize_provider_id as n;

    #[test]
    fn a_receipt_counts_as_delivered_after_revoke_only_on_a_withdrawn_attempt_in_the_grace() {
        use super::*;
        let now = 1_700_000_000_000;
        let mut a = attempt_row("msg_x", 1, ChannelKind::Rcs, now);
        a.status = Status::Canceled.as_str().to_owned();
        assert!(
            !delivered_after_revoke(&a, Status::Delivered, now),
            "not withdrawn"
        );
        a.error_code = Some(crate::fallback::WITHDRAWN_FOR_FALLBACK.to_owned());
        assert!(delivered_after_revoke(&a, Status::Delivered, now));
        assert!(delivered_after_revoke(
            &a,
            Status::Read,
            now + REVOKE_GRACE_MS
        ));
        assert!(
            !delivered_after_revoke(&a, Status::Failed, now),
            "a failure is no delivery"
        );
        assert!(
            !delivered_after_revoke(&a, Status::Delivered, now + REVOKE_GRACE_MS + 1),
            "past the grace"
        );
    }

    #[test]
    fn submit_dates_fit_in_any_whole_quarter_hour_time_zone() {
        use super::submit_date_fits as fits;
        let since = 1_700_654_430_000; // 12:00:30 UTC
        let now = since + 20_000;
        let minute = |t: i64| t - t.rem_euclid(60_000);
        assert!(fits(minute(since), since, now), "UTC, to the minute");
        assert!(
            fits(minute(since) + 5 * 3_600_000 + 1_800_000, since, now),
            "UTC+5:30"
        );
        assert!(fits(minute(since) - 8 * 3_600_000, since, now), "UTC-8");
        assert!(
            !fits(minute(since) + 7 * 60_000, since, now),
            "seven minutes off"
        );
        assert!(
            !fits(minute(since) - 20 * 3_600_000, since, now),
            "beyond ±14 h"
        );
        assert!(
            fits(since - 3_600_000 * 3, since, since + 20 * 60_000),
            "a long window"
        );
    }

    #[test]
    fn provider_ids_meet_whatever_the_case_and_leading_zeros() {
        assert_eq!(n("0A1B"), "a1b");
        assert_eq!(n(" a1b "), "a1b");
        assert_eq!(n("0000"), "0");
        assert_eq!(n("smsc-1:000042"), "smsc-1:42");
        assert_eq!(n("SMSC-1:0x"), "smsc-1:x");
        assert_ne!(n("a:1"), n("b:1"), "connectors scope their ids");
    }
}
