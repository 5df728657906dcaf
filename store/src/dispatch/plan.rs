//! Planning: the messages still to be planned with their tenant's defaults, and their
//! first attempts on the first channel of their plans.

use super::rows::*;
use crate::sql::batch::BatchInsert as _;
use crate::sql::common::*;
use crate::sql::rows::*;
use crate::sql::schema::*;
use crate::sql::seal::open_messages;
use crate::with_conn;
use crate::{Db, backend, write_op};
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel_async::RunQueryDsl;
use hermod_core::TenantId;
use hermod_core::model::ChannelKind;
use hermod_core::plan::Plan;
use hermod_core::plan::*;
use hermod_core::ports::PortResult;
use hermod_core::{AttemptId, MessageId, Msisdn, Status, now_ms};
use std::collections::{HashMap, HashSet};

pub async fn dispatch_candidates(
    db: &Db,
    vault: &hermod_crypto::vault::Vault,
    ids: &[MessageId],
) -> PortResult<Vec<Candidate>> {
    let ids: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    type Loaded = (Vec<MessageRow>, Vec<String>, Vec<(String, Option<String>)>);
    let (msgs, planned, tenants): Loaded = with_conn!(db, |c| {
        let mut msgs: Vec<MessageRow> = messages::table
            .filter(messages::id.eq_any(&ids))
            .select(MessageRow::as_select())
            .load(c)
            .await
            .map_err(backend)?;
        open_messages!(c, vault, msgs.iter_mut(), backend);
        let planned: Vec<String> = attempts::table
            .filter(attempts::message_id.eq_any(&ids))
            .select(attempts::message_id)
            .load(c)
            .await
            .map_err(backend)?;
        let tids: HashSet<&str> = msgs.iter().map(|m| m.tenant_id.as_str()).collect();
        let tenants: Vec<(String, Option<String>)> = tenants::table
            .filter(tenants::id.eq_any(tids))
            .select((tenants::id, tenants::defaults))
            .load(c)
            .await
            .map_err(backend)?;
        (msgs, planned, tenants)
    });
    let planned: HashSet<String> = planned.into_iter().collect();
    let defaults: HashMap<String, TenantDefaults> = tenants
        .into_iter()
        .map(|(id, d)| (id, defaults_of(d.as_deref())))
        .collect();
    let mut out = Vec::new();
    for m in msgs {
        if planned.contains(&m.id) || parse_status(&m.status).is_final() {
            continue;
        }
        let Ok(to) = Msisdn::parse(&m.to_number) else {
            continue;
        };
        let tenant = defaults.get(&m.tenant_id).cloned().unwrap_or_default();
        let asked: Vec<ChannelKind> = serde_json::from_str::<Vec<String>>(&m.channels)
            .unwrap_or_default()
            .iter()
            .filter_map(|c| ChannelKind::parse(c))
            .collect();
        let channels = if !asked.is_empty() {
            asked
        } else {
            tenant
                .channels
                .clone()
                .filter(|c| !c.is_empty())
                .unwrap_or_else(|| DEFAULT_CHANNELS.to_vec())
        };
        let own: FallbackSpec = m
            .fallback
            .as_deref()
            .and_then(|f| serde_json::from_str(f).ok())
            .unwrap_or_default();
        let policy = own.resolve(
            tenant
                .fallback
                .clone()
                .unwrap_or_default()
                .resolve(FallbackPolicy::default()),
        );
        out.push(Candidate {
            message_id: MessageId::from_trusted(m.id),
            tenant_id: TenantId::from_trusted(m.tenant_id),
            to,
            from: m.from_addr,
            user_id: m.user_id,
            content: m
                .content
                .as_deref()
                .and_then(|c| serde_json::from_str(c).ok()),
            channels,
            policy,
        });
    }
    Ok(out)
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
            if crate::sql::optouts::opted_out(&outs, m) {
                rejected.push(m.id.clone());
                evs.push(event_row(
                    &m.id,
                    &m.tenant_id,
                    Status::Rejected,
                    None,
                    Some(serde_json::json!({ "reason": crate::sql::optouts::OPTED_OUT })),
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
                    messages::reason.eq(crate::sql::optouts::OPTED_OUT),
                    messages::updated_at.eq(now),
                ))
                .execute(c)
                .await?;
        }
        Ok::<_, DieselError>(out)
    })
    .map_err(backend)
}
