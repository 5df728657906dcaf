//! The audit chain in the database, erasure and retention.
//!
//! Facts are inserted into `audit_outbox` by the transaction that makes the change
//! (an event, a key, an opt-out, an erasure), so none is lost and writers never wait
//! on each other for a chain head. One chainer at a time (a PostgreSQL advisory lock;
//! SQLite's writer gate) moves them, in insertion order, into each tenant's chain:
//! `audit_entries` with `prev_hash` and `hash`, and `audit_heads`.

mod chainer;
mod erase;
mod retention;

use crate::SqlStore;
use crate::sql::batch::BatchInsert as _;
use crate::sql::chain::fact;
use crate::sql::rows::*;
use crate::sql::schema::*;
use crate::{backend, with_conn, write_tx};
use async_trait::async_trait;
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel_async::RunQueryDsl;
use hermod_core::audit::*;
use hermod_core::now_ms;
use hermod_core::ports::PortResult;
use serde_json::{Value, json};

fn to_entry(r: AuditEntryRow) -> AuditEntry {
    AuditEntry {
        // Unparseable data (only possible by tampering) hashes differently: `changed`.
        data: serde_json::from_str(&r.data).unwrap_or(Value::String(r.data)),
        tenant: r.tenant_id,
        seq: r.seq,
        at: r.at,
        kind: r.kind,
        subject: r.subject,
        prev_hash: r.prev_hash,
        hash: r.hash,
    }
}

fn to_checkpoint(r: CheckpointRow) -> Checkpoint {
    Checkpoint {
        tenant: r.tenant_id,
        seq: r.seq,
        head_hash: r.head_hash,
        at: r.at,
        key_id: r.key_id,
        signature: r.signature,
    }
}

#[async_trait]
impl AuditLog for SqlStore {
    async fn chain_pending(&self, max: usize) -> PortResult<usize> {
        chainer::chain_pending(self, max).await
    }

    async fn audit_tenants(&self) -> PortResult<Vec<String>> {
        Ok(with_conn!(&self.db, |c| {
            audit_heads::table
                .order(audit_heads::tenant_id.asc())
                .select(audit_heads::tenant_id)
                .load(c)
                .await
                .map_err(backend)?
        }))
    }

    async fn audit_head(&self, tenant: &str) -> PortResult<Option<(i64, String)>> {
        let t = tenant.to_owned();
        Ok(with_conn!(&self.db, |c| {
            audit_heads::table
                .filter(audit_heads::tenant_id.eq(&t))
                .select((audit_heads::seq, audit_heads::hash))
                .first(c)
                .await
                .optional()
                .map_err(backend)?
        }))
    }

    async fn heads_to_checkpoint(&self) -> PortResult<Vec<(String, i64, String)>> {
        Ok(with_conn!(&self.db, |c| {
            audit_heads::table
                .filter(audit_heads::seq.gt(audit_heads::checkpointed_seq))
                .select((audit_heads::tenant_id, audit_heads::seq, audit_heads::hash))
                .load(c)
                .await
                .map_err(backend)?
        }))
    }

    async fn add_checkpoint(&self, cp: &Checkpoint) -> PortResult<()> {
        let row = CheckpointRow {
            tenant_id: cp.tenant.clone(),
            seq: cp.seq,
            head_hash: cp.head_hash.clone(),
            at: cp.at,
            key_id: cp.key_id.clone(),
            signature: cp.signature.clone(),
        };
        write_tx!(&self.db, |c| {
            diesel::insert_into(audit_checkpoints::table)
                .values(&row)
                .on_conflict_do_nothing()
                .execute(c)
                .await?;
            diesel::update(
                audit_heads::table
                    .filter(audit_heads::tenant_id.eq(&row.tenant_id))
                    .filter(audit_heads::checkpointed_seq.lt(row.seq)),
            )
            .set(audit_heads::checkpointed_seq.eq(row.seq))
            .execute(c)
            .await?;
            Ok::<_, DieselError>(())
        })
        .map_err(backend)
    }

    async fn audit_entries(
        &self,
        tenant: &str,
        from: i64,
        to: i64,
        limit: usize,
    ) -> PortResult<Vec<AuditEntry>> {
        let t = tenant.to_owned();
        let limit = i64::try_from(limit).unwrap_or(PAGE as i64);
        let rows: Vec<AuditEntryRow> = with_conn!(&self.db, |c| {
            audit_entries::table
                .filter(audit_entries::tenant_id.eq(&t))
                .filter(audit_entries::seq.ge(from))
                .filter(audit_entries::seq.le(to))
                .order(audit_entries::seq.asc())
                .limit(limit)
                .select(AuditEntryRow::as_select())
                .load(c)
                .await
                .map_err(backend)?
        });
        Ok(rows.into_iter().map(to_entry).collect())
    }

    async fn audit_checkpoints(
        &self,
        tenant: &str,
        from: i64,
        to: i64,
    ) -> PortResult<Vec<Checkpoint>> {
        let t = tenant.to_owned();
        let rows: Vec<CheckpointRow> = with_conn!(&self.db, |c| {
            audit_checkpoints::table
                .filter(audit_checkpoints::tenant_id.eq(&t))
                .filter(audit_checkpoints::seq.ge(from))
                .filter(audit_checkpoints::seq.le(to))
                .order(audit_checkpoints::seq.asc())
                .select(CheckpointRow::as_select())
                .load(c)
                .await
                .map_err(backend)?
        });
        Ok(rows.into_iter().map(to_checkpoint).collect())
    }

    async fn erase_subject(
        &self,
        tenant: &str,
        number: &str,
        ours: &[String],
    ) -> PortResult<Erasure> {
        erase::erase(self, tenant, number, ours).await
    }

    async fn set_retention(&self, tenant: &str, days: Option<i64>) -> PortResult<()> {
        let t = tenant.to_owned();
        let now = now_ms();
        write_tx!(&self.db, |c| {
            diesel::update(tenants::table.filter(tenants::id.eq(&t)))
                .set(tenants::retention_days.eq(days))
                .execute(c)
                .await?;
            c.insert_audit(vec![fact(
                &t,
                now,
                "retention.set",
                None,
                json!({ "days": days }),
            )])
            .await?;
            Ok::<_, DieselError>(())
        })
        .map_err(backend)
    }

    async fn retention(&self, tenant: &str) -> PortResult<Option<i64>> {
        let t = tenant.to_owned();
        Ok(with_conn!(&self.db, |c| {
            tenants::table
                .filter(tenants::id.eq(&t))
                .select(tenants::retention_days)
                .first::<Option<i64>>(c)
                .await
                .optional()
                .map_err(backend)?
                .flatten()
        }))
    }

    async fn shred_expired(&self, max: usize) -> PortResult<usize> {
        retention::shred_expired(self, max).await
    }
}
