//! Canceling a message that no channel has yet.

use crate::sql::batch::BatchInsert as _;
use crate::sql::common::*;
use crate::sql::rows::*;
use crate::sql::schema::*;
use crate::{Db, backend, write_tx};
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel_async::RunQueryDsl;
use hermod_core::model::CancelOutcome;
use hermod_core::ports::PortResult;
use hermod_core::{MessageId, Status, TenantId, now_ms};

/// Cancels a message that has not been handed to a channel yet.
pub async fn cancel(db: &Db, tenant: &TenantId, id: &MessageId) -> PortResult<CancelOutcome> {
    let t = tenant.to_string();
    let id = id.to_string();
    let now = now_ms();
    write_tx!(db, |c| {
        let m: Option<MessageRow> = messages::table
            .filter(messages::id.eq(&id).and(messages::tenant_id.eq(&t)))
            .select(MessageRow::as_select())
            .first(c)
            .await
            .optional()?;
        let Some(m) = m else {
            return Ok(CancelOutcome::NotFound);
        };
        let st = parse_status(&m.status);
        if st == Status::Canceled {
            return Ok(CancelOutcome::Canceled);
        }
        // Attempts already claimed by a sender may be on the wire.
        let started: i64 = attempts::table
            .filter(attempts::message_id.eq(&id))
            .filter(attempts::status.ne(Status::Queued.as_str()))
            .count()
            .get_result(c)
            .await?;
        if !matches!(st, Status::Accepted | Status::Scheduled | Status::Queued) || started > 0 {
            return Ok(CancelOutcome::TooLate(st));
        }
        let queued: i64 = attempts::table
            .filter(attempts::message_id.eq(&id))
            .count()
            .get_result(c)
            .await?;
        // Conditional, so that a sender claiming the attempt at the same moment wins
        // or loses cleanly (the row lock orders the two updates).
        let n = diesel::update(
            attempts::table
                .filter(attempts::message_id.eq(&id))
                .filter(attempts::status.eq(Status::Queued.as_str())),
        )
        .set((
            attempts::status.eq(Status::Canceled.as_str()),
            attempts::updated_at.eq(now),
        ))
        .execute(c)
        .await?;
        if i64::try_from(n).unwrap_or(0) != queued {
            return Err(DieselError::RollbackTransaction);
        }
        diesel::update(messages::table.filter(messages::id.eq(&id)))
            .set((
                messages::status.eq(Status::Canceled.as_str()),
                messages::reason.eq("canceled"),
                messages::updated_at.eq(now),
            ))
            .execute(c)
            .await?;
        c.insert_events(vec![event_row(&id, &t, Status::Canceled, None, None, now)])
            .await?;
        Ok::<_, DieselError>(CancelOutcome::Canceled)
    })
    .or_else(|e| match e {
        // A sender claimed an attempt between our read and our update.
        DieselError::RollbackTransaction => Ok(CancelOutcome::TooLate(Status::Sending)),
        e => Err(backend(e)),
    })
}
