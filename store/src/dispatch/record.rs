//! Recording submit outcomes: sent (with the provider ids and a fallback timer),
//! failed (and the next channel of the plan), or to retry.

use super::receipts::*;
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
