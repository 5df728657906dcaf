//! Chaining the facts of the audit outbox (PostgreSQL), one chainer at a time.

use crate::SqlStore;
use crate::sql::batch::BatchInsert as _;
use crate::sql::chain::ChainLock as _;
use crate::sql::rows::*;
use crate::sql::schema::*;
use crate::{backend, with_conn, write_tx};
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel_async::RunQueryDsl;
use hermod_core::ports::PortResult;

/// PostgreSQL: facts written to the outbox by concurrent transactions are chained
/// here, in insertion order, by one chainer at a time.
pub(super) async fn chain_pending(store: &SqlStore, max: usize) -> PortResult<usize> {
    let limit = i64::try_from(max).unwrap_or(1000);
    // A read first: the common answer is "nothing", and it needs no writer.
    let pending: Option<i64> = with_conn!(&store.db, |c| {
        audit_outbox::table
            .select(audit_outbox::id)
            .first(c)
            .await
            .optional()
            .map_err(backend)?
    });
    if pending.is_none() {
        return Ok(0);
    }
    write_tx!(&store.db, |c| {
        if !c.chain_lock().await? {
            return Ok(0);
        }
        let rows: Vec<AuditOutboxRow> = audit_outbox::table
            .order(audit_outbox::id.asc())
            .limit(limit)
            .select(AuditOutboxRow::as_select())
            .load(c)
            .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let facts: Vec<NewAuditRow> = rows
            .iter()
            .map(|r| NewAuditRow {
                tenant_id: r.tenant_id.clone(),
                at: r.at,
                kind: r.kind.clone(),
                subject: r.subject.clone(),
                data: r.data.clone(),
            })
            .collect();
        c.append_audit(&facts).await?;
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        for chunk in ids.chunks(500) {
            diesel::delete(audit_outbox::table.filter(audit_outbox::id.eq_any(chunk)))
                .execute(c)
                .await?;
        }
        Ok::<_, DieselError>(rows.len())
    })
    .map_err(backend)
}
