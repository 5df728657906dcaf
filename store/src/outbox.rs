//! The job table (`jobs`): the outbox written in the same transaction as the rows a
//! job is about, leased by the embedded queue (one process owns the file) or by the
//! relay that moves jobs to RabbitMQ. This module is the table's only reader; other
//! parts of the store add jobs through `BatchInsert::insert_jobs` in their own
//! transactions.

use std::time::Duration;

use async_trait::async_trait;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Text};
use diesel_async::RunQueryDsl;
use hermod_core::model::{DeadJob, Delivery, Job};
use hermod_core::now_ms;
use hermod_core::ports::{Outbox, PortResult};

use crate::sql::batch::BatchInsert as _;
use crate::sql::rows::NewJobRow;
use crate::sql::schema::jobs;
use crate::{Db, SqlStore, backend, with_conn, write_op, write_tx};

/// Dead jobs stay in the table under `dead:<queue>`.
const DEAD_PREFIX: &str = "dead:";

#[derive(QueryableByName)]
struct Leased {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    payload: String,
    #[diesel(sql_type = Integer)]
    deliveries: i32,
    #[diesel(sql_type = Integer)]
    priority: i32,
}

// A lease moves `available_at` to the lease's end (and marks `locked_until`): the ready
// jobs are one range of the (queue, priority, available_at) index.
const LEASE_SQLITE: &str = "UPDATE jobs SET available_at = ?, locked_until = ?, deliveries = deliveries + 1 \
     WHERE id IN (SELECT id FROM jobs WHERE queue = ? AND available_at <= ? \
     ORDER BY priority DESC, available_at, id LIMIT ?) RETURNING id, payload, deliveries, priority";
const LEASE_PG: &str = "UPDATE jobs SET available_at = $1, locked_until = $2, deliveries = deliveries + 1 \
     WHERE id IN (SELECT id FROM jobs WHERE queue = $3 AND available_at <= $4 \
     ORDER BY priority DESC, available_at, id LIMIT $5 FOR UPDATE SKIP LOCKED) RETURNING id, payload, deliveries, priority";

/// Moves jobs to the dead letters of `queue`.
async fn bury(db: &Db, queue: &str, ids: Vec<i64>) -> PortResult<()> {
    let dead = format!("{DEAD_PREFIX}{queue}");
    write_tx!(db, |c| {
        diesel::update(jobs::table.filter(jobs::id.eq_any(&ids)))
            .set((
                jobs::queue.eq(&dead),
                jobs::available_at.eq(now_ms()),
                jobs::locked_until.eq(0i64),
            ))
            .execute(c)
            .await
    })
    .map_err(backend)?;
    Ok(())
}

#[async_trait]
impl Outbox for SqlStore {
    async fn enqueue(&self, queue: &str, batch: &[Job]) -> PortResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let mut rows = Vec::with_capacity(batch.len());
        for j in batch {
            rows.push(NewJobRow::new(queue, j, now, now).map_err(backend)?);
        }
        write_op!(&self.db, move |c| c.insert_jobs(rows).await).map_err(backend)?;
        Ok(())
    }

    async fn lease(
        &self,
        queue: &str,
        max: usize,
        lease: Duration,
        max_deliveries: i32,
    ) -> PortResult<Vec<Delivery>> {
        let now = now_ms();
        let until = now + i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 2);
        let limit = i64::try_from(max).unwrap_or(1000);
        // Most polls of an idle queue find nothing: look with a plain read first and
        // take a write transaction (the SQLite writer gate) only when there is work.
        let ready: Option<i64> = with_conn!(&self.db, |c| {
            jobs::table
                .filter(jobs::queue.eq(queue))
                .filter(jobs::available_at.le(now))
                .select(jobs::id)
                .first(c)
                .await
                .optional()
                .map_err(backend)?
        });
        if ready.is_none() {
            return Ok(Vec::new());
        }
        let sql = if self.db.is_postgres() {
            LEASE_PG
        } else {
            LEASE_SQLITE
        };
        let q = queue.to_owned();
        let mut rows: Vec<Leased> = write_op!(&self.db, move |c| {
            diesel::sql_query(sql)
                .bind::<BigInt, _>(until)
                .bind::<BigInt, _>(until)
                .bind::<Text, _>(&q)
                .bind::<BigInt, _>(now)
                .bind::<BigInt, _>(limit)
                .load::<Leased>(c)
                .await
        })
        .map_err(backend)?;
        // The fast lane first, then oldest first.
        rows.sort_by_key(|r| (std::cmp::Reverse(r.priority), r.id));
        let mut out = Vec::with_capacity(rows.len());
        let mut poison = Vec::new();
        for r in rows {
            match serde_json::from_str::<Job>(&r.payload) {
                Ok(job) if r.deliveries <= max_deliveries => out.push(Delivery {
                    tag: r.id,
                    job,
                    deliveries: r.deliveries,
                }),
                Ok(_) => {
                    tracing::warn!(
                        job = r.id,
                        deliveries = r.deliveries,
                        "job moved to the dead-letter queue"
                    );
                    poison.push(r.id);
                }
                Err(e) => {
                    tracing::error!(job = r.id, error = %e, "unreadable job moved to the dead-letter queue");
                    poison.push(r.id);
                }
            }
        }
        if !poison.is_empty() {
            bury(&self.db, queue, poison).await?;
        }
        Ok(out)
    }

    async fn ack(&self, tags: &[i64]) -> PortResult<()> {
        if tags.is_empty() {
            return Ok(());
        }
        let tags = tags.to_vec();
        write_op!(&self.db, move |c| {
            diesel::delete(jobs::table.filter(jobs::id.eq_any(&tags)))
                .execute(c)
                .await
        })
        .map_err(backend)?;
        Ok(())
    }

    async fn retry(&self, retries: &[(i64, Duration)]) -> PortResult<()> {
        if retries.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        // One UPDATE per distinct delay (a batch usually shares one or two).
        let mut by_at: std::collections::BTreeMap<i64, Vec<i64>> = Default::default();
        for (tag, delay) in retries {
            let at = now + i64::try_from(delay.as_millis()).unwrap_or(0);
            by_at.entry(at).or_default().push(*tag);
        }
        write_op!(&self.db, move |c| {
            for (at, tags) in &by_at {
                diesel::update(jobs::table.filter(jobs::id.eq_any(tags)))
                    .set((jobs::available_at.eq(*at), jobs::locked_until.eq(0i64)))
                    .execute(c)
                    .await?;
            }
            Ok::<_, diesel::result::Error>(())
        })
        .map_err(backend)?;
        Ok(())
    }

    async fn depth(&self, queue: &str) -> PortResult<i64> {
        with_conn!(&self.db, |c| {
            jobs::table
                .filter(jobs::queue.eq(queue))
                .count()
                .get_result::<i64>(c)
                .await
                .map_err(backend)
        })
    }

    async fn dead_letters(&self, max: usize) -> PortResult<Vec<DeadJob>> {
        let limit = i64::try_from(max).unwrap_or(1000);
        let rows: Vec<(String, String, i32, i64)> = with_conn!(&self.db, |c| {
            jobs::table
                .filter(jobs::queue.like(format!("{DEAD_PREFIX}%")))
                .order(jobs::id.asc())
                .limit(limit)
                .select((
                    jobs::queue,
                    jobs::payload,
                    jobs::deliveries,
                    jobs::available_at,
                ))
                .load(c)
                .await
                .map_err(backend)
        })?;
        Ok(rows
            .into_iter()
            .map(|(q, payload, deliveries, at)| DeadJob {
                queue: q.trim_start_matches(DEAD_PREFIX).to_owned(),
                deliveries,
                dead_at: at,
                payload,
            })
            .collect())
    }

    async fn release_all_leases(&self) -> PortResult<usize> {
        write_tx!(&self.db, |c| {
            diesel::update(jobs::table.filter(jobs::locked_until.gt(0)))
                .set((
                    jobs::locked_until.eq(0),
                    jobs::available_at.eq(jobs::created_at),
                ))
                .execute(c)
                .await
        })
        .map_err(backend)
    }

    async fn wait_for_commit(&self, max: Duration) {
        match self.db.committed() {
            // Any commit of SQLite's writer may have added jobs.
            Some(committed) => {
                let _ = tokio::time::timeout(max, committed.notified()).await;
            }
            None => tokio::time::sleep(max).await,
        }
    }
}
