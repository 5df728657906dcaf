//! Retention: content older than its tenant's retention period shredded in batches.

use super::erase::in_flight;
use crate::SqlStore;
use crate::sql::batch::BatchInsert as _;
use crate::sql::chain::fact;
use crate::sql::common::*;
use crate::sql::schema::*;
use crate::{backend, with_conn, write_tx};
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel_async::RunQueryDsl;
use hermod_core::now_ms;
use hermod_core::ports::PortResult;
use serde_json::json;

/// Blanks the sealed content of ended messages (and inbound messages) older than
/// their tenant's retention period.
pub(super) async fn shred_expired(store: &SqlStore, max: usize) -> PortResult<usize> {
    let now = now_ms();
    let limit = i64::try_from(max).unwrap_or(1000);
    let tenants: Vec<(String, Option<i64>)> = with_conn!(&store.db, |c| {
        tenants::table
            .filter(tenants::retention_days.is_not_null())
            .select((tenants::id, tenants::retention_days))
            .load(c)
            .await
            .map_err(backend)?
    });
    let mut total = 0;
    for (t, days) in tenants {
        let Some(days) = days else { continue };
        let before = now - days.max(0).saturating_mul(86_400_000);
        let n = write_tx!(&store.db, |c| {
            let candidates: Vec<(String, String)> = messages::table
                .filter(messages::tenant_id.eq(&t))
                .filter(messages::created_at.lt(before))
                .filter(messages::shredded_at.is_null())
                .order(messages::created_at.asc())
                .limit(limit)
                .select((messages::id, messages::status))
                .load(c)
                .await?;
            let ids: Vec<&str> = candidates
                .iter()
                .filter(|(_, s)| !in_flight(parse_status(s)))
                .map(|(id, _)| id.as_str())
                .collect();
            for chunk in ids.chunks(500) {
                diesel::update(messages::table.filter(messages::id.eq_any(chunk)))
                    .set((
                        messages::to_number.eq(""),
                        messages::body.eq(""),
                        messages::content.eq(None::<String>),
                        messages::shredded_at.eq(now),
                    ))
                    .execute(c)
                    .await?;
            }
            let inbound = diesel::update(
                inbound_messages::table
                    .filter(inbound_messages::tenant_id.eq(&t))
                    .filter(inbound_messages::received_at.lt(before))
                    .filter(inbound_messages::body.ne("")),
            )
            .set((
                inbound_messages::from_number.eq(""),
                inbound_messages::body.eq(""),
                inbound_messages::payload.eq(None::<String>),
            ))
            .execute(c)
            .await?;
            if !ids.is_empty() || inbound > 0 {
                c.insert_audit(vec![fact(
                    &t,
                    now,
                    "retention.shredded",
                    None,
                    json!({ "messages": ids.len(), "inbound": inbound, "before": before }),
                )])
                .await?;
            }
            Ok::<_, DieselError>(ids.len())
        })
        .map_err(backend)?;
        total += n;
    }
    Ok(total)
}
