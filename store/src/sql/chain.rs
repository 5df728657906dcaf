//! The audit chain's primitives: the facts a transaction records beside the change it
//! makes, the entries that chain them after their tenants' heads, and the lock that
//! lets one chainer at a time append (`BatchInsert::append_audit` writes them).

use std::collections::BTreeMap;

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use hermod_core::audit::{AuditEntry, canonical_json};
use hermod_crypto::audit::{GENESIS, entry_hash};
use serde_json::{Value, json};

use super::conn::Lite;
use super::rows::*;

pub(crate) fn fact(
    tenant: &str,
    at: i64,
    kind: &str,
    subject: Option<&str>,
    data: Value,
) -> NewAuditRow {
    NewAuditRow {
        tenant_id: tenant.to_owned(),
        at,
        kind: kind.to_owned(),
        subject: subject.map(str::to_owned),
        data: canonical_json(&data),
    }
}

/// One fact per timeline event: its status, attempt and channel, and a digest of its
/// detail (which may hold provider text) instead of the detail itself.
pub(crate) fn event_facts(rows: &[NewEventRow]) -> Vec<NewAuditRow> {
    rows.iter()
        .map(|e| {
            fact(
                &e.tenant_id,
                e.at,
                &e.kind,
                Some(&e.message_id),
                json!({
                    "status": e.status,
                    "attempt": e.attempt_no,
                    "channel": e.channel,
                    "detail_sha256": e.detail.as_deref().map(|d| hermod_crypto::sha256_hex(d.as_bytes())),
                }),
            )
        })
        .collect()
}

/// Only one chainer appends at a time.
pub(crate) trait ChainLock {
    async fn chain_lock(&mut self) -> QueryResult<bool>;
}

#[derive(QueryableByName)]
struct Locked {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    locked: bool,
}

impl ChainLock for AsyncPgConnection {
    async fn chain_lock(&mut self) -> QueryResult<bool> {
        // Held until the transaction ends; another chainer skips its turn.
        let l: Locked = diesel::sql_query("SELECT pg_try_advisory_xact_lock(1212502605) AS locked")
            .get_result(self)
            .await?;
        Ok(l.locked)
    }
}

impl ChainLock for Lite {
    async fn chain_lock(&mut self) -> QueryResult<bool> {
        // Every write transaction already runs behind the writer gate.
        Ok(true)
    }
}

/// The entries for `facts` after the stored heads, and the tenants' new heads.
pub(crate) fn chain(
    facts: &[NewAuditRow],
    stored: Vec<(String, i64, String)>,
) -> (Vec<AuditEntryRow>, BTreeMap<String, (i64, String)>) {
    let mut heads: BTreeMap<String, (i64, String)> =
        stored.into_iter().map(|(t, s, h)| (t, (s, h))).collect();
    let mut entries = Vec::with_capacity(facts.len());
    for r in facts {
        let head = heads
            .entry(r.tenant_id.clone())
            .or_insert_with(|| (0, GENESIS.to_owned()));
        let mut e = AuditEntry {
            tenant: r.tenant_id.clone(),
            seq: head.0 + 1,
            at: r.at,
            kind: r.kind.clone(),
            subject: r.subject.clone(),
            data: serde_json::from_str(&r.data).unwrap_or(Value::String(r.data.clone())),
            prev_hash: head.1.clone(),
            hash: String::new(),
        };
        e.hash = entry_hash(&e.prev_hash, e.canonical().as_bytes());
        *head = (e.seq, e.hash.clone());
        entries.push(AuditEntryRow {
            data: r.data.clone(),
            tenant_id: e.tenant,
            seq: e.seq,
            at: e.at,
            kind: e.kind,
            subject: e.subject,
            prev_hash: e.prev_hash,
            hash: e.hash,
        });
    }
    (entries, heads)
}
