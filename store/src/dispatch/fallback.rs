//! Fallback timers: due ones leased, fired once (the next channel's attempt, or
//! nothing when the message was delivered meanwhile), or postponed.

use super::rows::*;
use crate::sql::batch::BatchInsert as _;
use crate::sql::common::*;
use crate::sql::rows::*;
use crate::sql::schema::*;
use crate::sql::seal::open_messages;
use crate::{Db, backend, write_tx};
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel_async::RunQueryDsl;
use hermod_core::model::ChannelKind;
use hermod_core::plan::*;
use hermod_core::ports::PortResult;
use hermod_core::{AttemptId, MessageId, Msisdn, Status, TenantId, now_ms};
use std::collections::HashMap;
use std::time::Duration;

pub async fn due_fallbacks(
    db: &Db,
    vault: &hermod_crypto::vault::Vault,
    max: usize,
    lease: Duration,
) -> PortResult<Vec<DueFallback>> {
    let now = now_ms();
    let until = now + i64::try_from(lease.as_millis()).unwrap_or(60_000);
    let limit = i64::try_from(max).unwrap_or(100);
    let leased: Vec<(TimerRow, AttemptRow, MessageRow, Vec<String>)> = write_tx!(db, |c| {
        let due: Vec<String> = fallback_timers::table
            .filter(fallback_timers::due_at.le(now))
            .filter(fallback_timers::locked_until.lt(now))
            .order(fallback_timers::due_at.asc())
            .limit(limit)
            .select(fallback_timers::attempt_id)
            .load(c)
            .await?;
        if due.is_empty() {
            return Ok(Vec::new());
        }
        // The lease is re-checked row by row, so two workers never take the same timer.
        let timers: Vec<TimerRow> = diesel::update(
            fallback_timers::table
                .filter(fallback_timers::attempt_id.eq_any(&due))
                .filter(fallback_timers::locked_until.lt(now)),
        )
        .set((
            fallback_timers::locked_until.eq(until),
            fallback_timers::tries.eq(fallback_timers::tries + 1),
        ))
        .returning(TimerRow::as_returning())
        .get_results(c)
        .await?;
        let ids: Vec<&str> = timers.iter().map(|t| t.attempt_id.as_str()).collect();
        let mut rows: Vec<(AttemptRow, MessageRow)> = attempts::table
            .inner_join(messages::table)
            .filter(attempts::id.eq_any(&ids))
            .select((AttemptRow::as_select(), MessageRow::as_select()))
            .load(c)
            .await?;
        open_messages!(c, vault, rows.iter_mut().map(|(_, m)| m));
        let parts: Vec<(String, String)> = attempt_parts::table
            .filter(attempt_parts::attempt_id.eq_any(&ids))
            .order(attempt_parts::part_no.asc())
            .select((attempt_parts::attempt_id, attempt_parts::provider_id))
            .load(c)
            .await?;
        let mut rows: HashMap<String, (AttemptRow, MessageRow)> = rows
            .into_iter()
            .map(|(a, m)| (a.id.clone(), (a, m)))
            .collect();
        let mut out = Vec::new();
        for t in timers {
            if let Some((a, m)) = rows.remove(&t.attempt_id) {
                let pids = parts
                    .iter()
                    .filter(|(aid, _)| *aid == a.id)
                    .map(|(_, p)| p.clone())
                    .collect();
                out.push((t, a, m, pids));
            }
        }
        Ok::<_, DieselError>(out)
    })
    .map_err(backend)?;
    Ok(leased
        .into_iter()
        .filter_map(|(t, a, m, provider_ids)| {
            Some(DueFallback {
                attempt_id: AttemptId::from_trusted(a.id),
                message_id: MessageId::from_trusted(m.id.clone()),
                tenant_id: TenantId::from_trusted(m.tenant_id.clone()),
                to: Msisdn::parse(&m.to_number).ok()?,
                from: m.from_addr.clone(),
                channel: ChannelKind::parse(&a.channel)?,
                provider_ids,
                policy: plan_of(&m).map(|p| p.fallback).unwrap_or_default(),
                tries: t.tries,
            })
        })
        .collect())
}

pub async fn fire_fallback(db: &Db, attempt: &AttemptId, outcome: Withdrawal) -> PortResult<()> {
    let aid = attempt.to_string();
    let now = now_ms();
    write_tx!(db, |c| {
        // Taking the timer row out first makes the firing happen once: a concurrent
        // firing finds nothing to delete and stops here.
        let gone =
            diesel::delete(fallback_timers::table.filter(fallback_timers::attempt_id.eq(&aid)))
                .execute(c)
                .await?;
        if gone == 0 {
            return Ok(());
        }
        let Some((a, m)) = attempts::table
            .inner_join(messages::table)
            .filter(attempts::id.eq(&aid))
            .select((AttemptRow::as_select(), MessageRow::as_select()))
            .first::<(AttemptRow, MessageRow)>(c)
            .await
            .optional()?
        else {
            return Ok(());
        };
        let later: i64 = attempts::table
            .filter(attempts::message_id.eq(&m.id))
            .filter(attempts::attempt_no.gt(a.attempt_no))
            .count()
            .get_result(c)
            .await?;
        let st = parse_status(&a.status);
        let waiting = matches!(st, Status::Sending | Status::Sent)
            || (st == Status::Delivered
                && plan_of(&m).is_some_and(|p| p.fallback.until == Until::Read));
        if later > 0 || !waiting {
            return Ok(());
        }
        match outcome {
            Withdrawal::AlreadyDelivered => {
                // The rich message reached the device: no fallback. Its receipt follows.
                diesel::update(attempts::table.filter(attempts::id.eq(&aid)))
                    .set((
                        attempts::raw_status.eq("withdraw_found_delivered"),
                        attempts::updated_at.eq(now),
                    ))
                    .execute(c)
                    .await?;
            }
            Withdrawal::Withdrawn | Withdrawal::NotSupported => {
                let reason = "no_receipt_in_time";
                let rows: Vec<FallbackRows> =
                    fallback_rows(&m, &a, reason, now).into_iter().collect();
                if outcome == Withdrawal::Withdrawn {
                    // The withdrawn attempt ends; a receipt that still comes is recorded
                    // on it without moving the message.
                    diesel::update(attempts::table.filter(attempts::id.eq(&aid)))
                        .set((
                            attempts::status.eq(Status::Canceled.as_str()),
                            attempts::raw_status.eq("withdrawn"),
                            attempts::error_code.eq(WITHDRAWN_FOR_FALLBACK),
                            attempts::error_permanent.eq(true),
                            attempts::updated_at.eq(now),
                        ))
                        .execute(c)
                        .await?;
                }
                insert_fallbacks!(c, rows);
            }
        }
        Ok::<_, DieselError>(())
    })
    .map_err(backend)
}

pub async fn postpone_fallback(db: &Db, attempt: &AttemptId, delay: Duration) -> PortResult<()> {
    let at = now_ms() + i64::try_from(delay.as_millis()).unwrap_or(60_000);
    write_tx!(db, |c| {
        diesel::update(
            fallback_timers::table.filter(fallback_timers::attempt_id.eq(attempt.as_str())),
        )
        .set((
            fallback_timers::due_at.eq(at),
            fallback_timers::locked_until.eq(0),
        ))
        .execute(c)
        .await
    })
    .map_err(backend)?;
    Ok(())
}
