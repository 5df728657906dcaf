//! The console's overview (see `hermod_core::insights`). A tenant's messages per hour
//! are counted exactly from the `(tenant_id, status, id)` index alone (message ids start
//! with their creation time); everything else comes from the newest `SAMPLE` messages of
//! the window and their attempts, read in two range queries.

use std::collections::{BTreeMap, HashMap, HashSet};

use async_trait::async_trait;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use hermod_core::insights::*;
use hermod_core::ports::PortResult;
use hermod_core::{Status, TenantId};

use crate::admin::all_statuses;
use crate::sql::schema::*;
use crate::{SqlStore, backend, with_conn};

const HOUR_MS: i64 = 3_600_000;

#[async_trait]
impl Insights for SqlStore {
    async fn overview(&self, tenant: Option<&TenantId>, now: i64) -> PortResult<Overview> {
        // 24 whole hours, the last one the current.
        let first = (now / HOUR_MS - 23) * HOUR_MS;
        let t = tenant.map(|t| t.to_string());
        let statuses = all_statuses();
        #[allow(clippy::type_complexity)]
        let (hours, sample, attempts): (
            Option<Vec<Vec<(String, i64)>>>,
            Vec<(String, String, i64, i64, Option<String>)>,
            Vec<(String, i32, String, String)>,
        ) = with_conn!(&self.db, |c| {
            let hours = match &t {
                Some(t) => {
                    let mut hours = Vec::with_capacity(24);
                    for h in 0..24 {
                        let lo = message_id_at(first + h * HOUR_MS);
                        let hi = message_id_at(first + (h + 1) * HOUR_MS);
                        let counts: Vec<(String, i64)> = messages::table
                            .filter(messages::tenant_id.eq(t.clone()))
                            .filter(messages::status.eq_any(statuses.clone()))
                            .filter(messages::id.ge(lo))
                            .filter(messages::id.lt(hi))
                            .group_by(messages::status)
                            .select((messages::status, diesel::dsl::count_star()))
                            .load(c)
                            .await
                            .map_err(backend)?;
                        hours.push(counts);
                    }
                    Some(hours)
                }
                None => None,
            };
            let mut q = messages::table
                .filter(messages::id.ge(message_id_at(first)))
                .order(messages::id.desc())
                .limit(SAMPLE)
                .select((
                    messages::id,
                    messages::status,
                    messages::created_at,
                    messages::updated_at,
                    messages::reason,
                ))
                .into_boxed();
            if let Some(t) = &t {
                q = q.filter(messages::tenant_id.eq(t.clone()));
            }
            let sample: Vec<(String, String, i64, i64, Option<String>)> =
                q.load(c).await.map_err(backend)?;
            let attempts = match (sample.last(), <[_]>::first(&sample)) {
                (Some(oldest), Some(newest)) => {
                    let mut q = attempts::table
                        .inner_join(messages::table)
                        .filter(attempts::message_id.ge(oldest.0.clone()))
                        .filter(attempts::message_id.le(newest.0.clone()))
                        .select((
                            attempts::message_id,
                            attempts::attempt_no,
                            attempts::channel,
                            attempts::status,
                        ))
                        .into_boxed();
                    if let Some(t) = &t {
                        q = q.filter(messages::tenant_id.eq(t.clone()));
                    }
                    q.load(c).await.map_err(backend)?
                }
                _ => Vec::new(),
            };
            (hours, sample, attempts)
        });
        Ok(summarize(first, hours, &sample, &attempts))
    }
}

fn summarize(
    first: i64,
    hours: Option<Vec<Vec<(String, i64)>>>,
    sample: &[(String, String, i64, i64, Option<String>)],
    attempts: &[(String, i32, String, String)],
) -> Overview {
    let sampled = i64::try_from(sample.len()).unwrap_or(i64::MAX);
    let hours: Vec<Hour> = match hours {
        Some(h) => h
            .into_iter()
            .zip(0i64..)
            .map(|(by_status, i)| Hour {
                start: first + i * HOUR_MS,
                by_status,
                by_channel: Vec::new(),
            })
            .collect(),
        // The operator's: from the sample.
        None => (0..24)
            .map(|i| {
                let start = first + i * HOUR_MS;
                let mut by: BTreeMap<String, i64> = BTreeMap::new();
                for m in sample
                    .iter()
                    .filter(|m| m.2 >= start && m.2 < start + HOUR_MS)
                {
                    *by.entry(m.1.clone()).or_default() += 1;
                }
                Hour {
                    start,
                    by_status: by.into_iter().collect(),
                    by_channel: Vec::new(),
                }
            })
            .collect(),
    };
    let mut hours = hours;
    let messages = hours
        .iter()
        .flat_map(|h| h.by_status.iter().map(|(_, n)| *n))
        .sum::<i64>()
        .max(sampled);

    // Attempts in order per message.
    let mut per_message: HashMap<&str, Vec<(i32, &str, &str)>> = HashMap::new();
    for (m, no, ch, st) in attempts {
        per_message
            .entry(m.as_str())
            .or_default()
            .push((*no, ch.as_str(), st.as_str()));
    }
    for v in per_message.values_mut() {
        v.sort_unstable_by_key(|a| a.0);
    }
    let mut by_channel: BTreeMap<String, i64> = BTreeMap::new();
    let mut funnel: BTreeMap<String, Funnel> = BTreeMap::new();
    let (mut rich_first, mut fell_back) = (0, 0);
    let mut to_delivered = Vec::new();
    let mut failures: HashMap<String, i64> = HashMap::new();
    let reached = |st: &str, at_least: Status| {
        Status::parse(st).is_some_and(|s| match at_least {
            Status::Sent => matches!(s, Status::Sent | Status::Delivered | Status::Read),
            Status::Delivered => matches!(s, Status::Delivered | Status::Read),
            _ => s == at_least,
        })
    };
    for (id, status, created, updated, reason) in sample {
        let tries = per_message.get(id.as_str());
        let last = tries
            .and_then(|t| t.last())
            .map_or("none", |a| a.1)
            .to_owned();
        if let Some(h) = usize::try_from((created - first) / HOUR_MS)
            .ok()
            .and_then(|i| hours.get_mut(i))
        {
            match h.by_channel.iter_mut().find(|(c, _)| *c == last) {
                Some((_, n)) => *n += 1,
                None => h.by_channel.push((last.clone(), 1)),
            }
        }
        *by_channel.entry(last).or_default() += 1;
        if let Some(tries) = tries {
            let mut seen = HashSet::new();
            for (_, ch, st) in tries {
                let f = funnel.entry((*ch).to_owned()).or_insert_with(|| Funnel {
                    channel: (*ch).to_owned(),
                    ..Funnel::default()
                });
                f.attempted += 1;
                f.sent += i64::from(reached(st, Status::Sent));
                f.delivered += i64::from(reached(st, Status::Delivered));
                f.read += i64::from(*st == "read");
                f.failed += i64::from(matches!(*st, "failed" | "expired" | "rejected"));
                seen.insert(*ch);
            }
            if tries.iter().next().is_some_and(|a| a.1 != "sms") {
                rich_first += 1;
                fell_back += i64::from(seen.contains("sms"));
            }
        }
        match status.as_str() {
            "delivered" => to_delivered.push(updated - created),
            "failed" | "expired" | "rejected" => {
                *failures
                    .entry(reason.clone().unwrap_or_else(|| status.clone()))
                    .or_default() += 1;
            }
            _ => {}
        }
    }
    to_delivered.sort_unstable();
    let mut failures: Vec<(String, i64)> = failures.into_iter().collect();
    failures.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    failures.truncate(10);
    Overview {
        since: first,
        messages,
        sampled,
        hours,
        by_channel: by_channel.into_iter().collect(),
        funnel: funnel.into_values().collect(),
        rich_first,
        fell_back,
        delivered_p50_ms: quantile(&to_delivered, 0.5),
        delivered_p95_ms: quantile(&to_delivered, 0.95),
        failures,
    }
}
