//! Claiming queued attempts for a channel's sender.

use super::rows::*;
use crate::sql::batch::BatchInsert as _;
use crate::sql::common::*;
use crate::sql::rows::*;
use crate::sql::schema::*;
use crate::sql::seal::open_messages;
use crate::{Db, backend, write_op};
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel_async::RunQueryDsl;
use hermod_core::model::*;
use hermod_core::ports::PortResult;
use hermod_core::{AttemptId, Status, now_ms};
use std::collections::HashSet;

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
