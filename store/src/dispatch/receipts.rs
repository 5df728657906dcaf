//! Receipts: applied to their attempts and messages (statuses only move forward), or
//! kept until their submit is recorded and then adopted.

use super::rows::*;
use crate::sql::batch::BatchInsert as _;
use crate::sql::common::*;
use crate::sql::rows::*;
use crate::sql::schema::*;
use crate::{Db, backend, write_op};
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel_async::RunQueryDsl;
use hermod_core::model::*;
use hermod_core::ports::PortResult;
use hermod_core::{Status, now_ms};
use std::collections::{HashMap, HashSet};

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

pub(super) fn orphan_to_receipt(o: &OrphanRow) -> Receipt {
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
pub(super) fn kept_in_order(mut orphans: Vec<OrphanRow>) -> Vec<Receipt> {
    orphans.sort_by_key(|o| (o.received_at, parse_status(&o.status).rank()));
    orphans.iter().map(orphan_to_receipt).collect()
}

/// Receipts in rounds in which no provider id repeats, each round applied on its own:
/// a DELIVERED and the READ after it in one batch are both recorded, one event each,
/// in order (one round applied at once folds them into the READ).
pub(super) fn rounds(receipts: Vec<Receipt>) -> Vec<Vec<Receipt>> {
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
                    && !crate::sql::markers::mark_event!(c, ev, now)?
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
pub(super) const ADOPT_WINDOW_MS: i64 = 10 * 60 * 1000;

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

pub(super) use {apply_in_tx, apply_rounds};
