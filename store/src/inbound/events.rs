//! Provider events that are not messages: markers of ignored events, typing
//! indicators, and RBM agents' launch states.

use crate::sql::batch::BatchInsert as _;
use crate::sql::markers::{mark_event, typing_ref};
use crate::sql::rows::*;
use crate::sql::schema::*;
use crate::{Db, backend, with_conn, write_tx};
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel_async::RunQueryDsl;
use hermod_core::model::{AgentLaunch, ProviderEvent};
use hermod_core::ports::PortResult;
use hermod_core::{TenantId, now_ms};
use hermod_crypto::vault::Vault;

/// Records the marker of a provider event that has no effect; false when it was
/// there already.
pub(super) async fn first_seen_event(db: &Db, ev: &ProviderEvent) -> PortResult<bool> {
    let ev = ev.clone();
    let now = now_ms();
    write_tx!(db, |c| mark_event!(c, ev, now)).map_err(backend)
}

pub(super) async fn record_typing(
    db: &Db,
    vault: &Vault,
    tenant: &TenantId,
    connector: &str,
    from: &str,
    at: i64,
    marker: &ProviderEvent,
) -> PortResult<()> {
    let t = tenant.to_string();
    // Read before the write transaction: it only inserts what this finds.
    let endpoints: Vec<EndpointRow> = with_conn!(db, |c| {
        webhook_endpoints::table
            .filter(webhook_endpoints::tenant_id.eq(&t))
            .select(EndpointRow::as_select())
            .load(c)
            .await
            .map_err(backend)?
    });
    let plus = format!("+{from}");
    let payload = serde_json::json!({
        "id": format!("evt_typing_{}", marker.id),
        "type": "message.typing",
        "from": plus,
        "channel": "rcs",
        "connector": connector,
        "occurred_at": hermod_core::rfc3339(at),
    });
    let now = now_ms();
    let rows = crate::sql::deliveries::subscribed_deliveries(
        &t,
        "message.typing",
        &typing_ref(&vault.lookup(&plus)),
        &payload,
        &endpoints,
        now,
    );
    let ev = marker.clone();
    write_tx!(db, |c| {
        if mark_event!(c, ev, now)? && !rows.is_empty() {
            c.insert_deliveries(rows).await?;
        }
        Ok::<_, DieselError>(())
    })
    .map_err(backend)
}

/// Whether a provider event was applied (its marker is there).
pub(super) async fn seen_event(db: &Db, ev: &ProviderEvent) -> PortResult<bool> {
    let ev = ev.clone();
    with_conn!(db, |c| {
        diesel::select(diesel::dsl::exists(
            webhook_events::table.filter(
                webhook_events::source
                    .eq(&ev.source)
                    .and(webhook_events::event_id.eq(&ev.id)),
            ),
        ))
        .get_result::<bool>(c)
        .await
    })
    .map_err(backend)
}

pub(super) async fn record_launch(db: &Db, l: &AgentLaunch) -> PortResult<()> {
    let l = l.clone();
    write_tx!(db, |c| {
        let later: Option<i64> = rbm_launch_states::table
            .filter(rbm_launch_states::agent.eq(&l.agent))
            .filter(rbm_launch_states::region.eq(&l.region))
            .filter(rbm_launch_states::at.gt(l.at))
            .select(rbm_launch_states::at)
            .first(c)
            .await
            .optional()?;
        if later.is_some() {
            // Events come out of order: the later state stays.
            return Ok(());
        }
        diesel::insert_into(rbm_launch_states::table)
            .values((
                rbm_launch_states::agent.eq(&l.agent),
                rbm_launch_states::region.eq(&l.region),
                rbm_launch_states::state.eq(&l.state),
                rbm_launch_states::previous.eq(&l.previous),
                rbm_launch_states::at.eq(l.at),
            ))
            .on_conflict((rbm_launch_states::agent, rbm_launch_states::region))
            .do_update()
            .set((
                rbm_launch_states::state.eq(&l.state),
                rbm_launch_states::previous.eq(&l.previous),
                rbm_launch_states::at.eq(l.at),
            ))
            .execute(c)
            .await
            .map(|_| ())
    })
    .map_err(backend)
}

pub(super) async fn launch_states(db: &Db) -> PortResult<Vec<AgentLaunch>> {
    let rows: Vec<(String, String, String, Option<String>, i64)> = with_conn!(db, |c| {
        rbm_launch_states::table
            .order((
                rbm_launch_states::agent.asc(),
                rbm_launch_states::region.asc(),
            ))
            .select((
                rbm_launch_states::agent,
                rbm_launch_states::region,
                rbm_launch_states::state,
                rbm_launch_states::previous,
                rbm_launch_states::at,
            ))
            .load(c)
            .await
            .map_err(backend)?
    });
    Ok(rows
        .into_iter()
        .map(|(agent, region, state, previous, at)| AgentLaunch {
            agent,
            region,
            state,
            previous,
            at,
        })
        .collect())
}
