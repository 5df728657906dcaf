//! Submits left in doubt (sent, but the answer lost): recognised by the receipts kept
//! for them, so they are not sent twice.

use super::receipts::*;
use super::rows::*;
use crate::sql::batch::BatchInsert as _;
use crate::sql::common::*;
use crate::sql::rows::*;
use crate::sql::schema::*;
use crate::{Db, backend, write_tx};
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel_async::RunQueryDsl;
use hermod_core::model::*;
use hermod_core::ports::PortResult;
use hermod_core::{Status, now_ms};
use std::collections::{HashMap, HashSet};

pub(super) const QUARTER_HOUR: i64 = 15 * 60 * 1000;

/// True when a receipt's `submit date` fits a submit made between `since` and `now`.
/// SMSCs write it to the minute in their own time zone, which is a whole number of
/// quarter hours off UTC (within ±14 h); a minute of truncation and a minute of
/// clock skew either side are allowed.
pub(super) fn submit_date_fits(date: i64, since: i64, now: i64) -> bool {
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
pub(super) fn text_fits(
    vault: &hermod_crypto::vault::Vault,
    o: &OrphanRow,
    part: Option<&str>,
) -> bool {
    let (Some(mac), Some(len), Some(part)) = (&o.text_mac, o.text_len, part) else {
        return true;
    };
    let Ok(len) = usize::try_from(len) else {
        return false;
    };
    len == 0 || part.get(..len).is_some_and(|p| &text_mac(vault, p) == mac)
}

/// The kept receipts that are an in-doubt attempt's own, one per part in order, or
/// none. Receipts that echo its `user_ref` win; without them, receipts that echo no
/// reference are matched by scope, arrival, submit date and text, each used once.
pub(super) fn own_receipts(
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
