//! The audit chain in the database, erasure and retention.
//!
//! Facts are inserted into `audit_outbox` by the transaction that makes the change
//! (an event, a key, an opt-out, an erasure), so none is lost and writers never wait
//! on each other for a chain head. One chainer at a time (a PostgreSQL advisory lock;
//! SQLite's writer gate) moves them, in insertion order, into each tenant's chain:
//! `audit_entries` with `prev_hash` and `hash`, and `audit_heads`.

use std::collections::{BTreeMap, HashSet};

use async_trait::async_trait;
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use hermod_core::audit::*;
use hermod_core::ports::PortResult;
use hermod_core::{Status, now_ms};
use hermod_crypto::audit::{GENESIS, entry_hash};
use serde_json::{Value, json};

use crate::batch::BatchInsert as _;
use crate::db::Lite;
use crate::rows::*;
use crate::schema::*;
use crate::store::{SqlStore, event_row, parse_status};
use crate::{backend, with_conn, write_tx};

/// Why an erased subject's messages in flight ended.
pub const ERASED: &str = "subject_erased";

/// Not yet at an outcome: still to be sent, or sent and awaiting its receipt.
fn in_flight(s: Status) -> bool {
    matches!(
        s,
        Status::Accepted | Status::Scheduled | Status::Queued | Status::Sending | Status::Sent
    )
}

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

/// Appends facts (in order) to their tenants' chains: reads the heads, hashes, inserts
/// the entries and moves the heads, all in the caller's transaction.
macro_rules! append_facts {
    ($c:expr, $facts:expr) => {{
        let facts: &[NewAuditRow] = $facts;
        let tenants: HashSet<&str> = facts.iter().map(|r| r.tenant_id.as_str()).collect();
        let stored: Vec<(String, i64, String)> = audit_heads::table
            .filter(audit_heads::tenant_id.eq_any(&tenants))
            .select((audit_heads::tenant_id, audit_heads::seq, audit_heads::hash))
            .load($c)
            .await?;
        let (entries, heads) = chain(facts, stored);
        $c.insert_audit_entries(entries).await?;
        for (t, (seq, hash)) in &heads {
            diesel::insert_into(audit_heads::table)
                .values((
                    audit_heads::tenant_id.eq(t),
                    audit_heads::seq.eq(seq),
                    audit_heads::hash.eq(hash),
                    audit_heads::checkpointed_seq.eq(0i64),
                ))
                .on_conflict(audit_heads::tenant_id)
                .do_update()
                .set((audit_heads::seq.eq(seq), audit_heads::hash.eq(hash)))
                .execute($c)
                .await?;
        }
    }};
}

/// The entries for `facts` after the stored heads, and the tenants' new heads.
fn chain(
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

/// SQLite: the writer gate already puts transactions in one order, so facts are
/// chained in the transaction that records them (no outbox round trip).
pub(crate) async fn append_now(c: &mut Lite, facts: Vec<NewAuditRow>) -> QueryResult<usize> {
    if facts.is_empty() {
        return Ok(0);
    }
    append_facts!(c, &facts);
    Ok(facts.len())
}

/// PostgreSQL: facts written to the outbox by concurrent transactions are chained
/// here, in insertion order, by one chainer at a time.
async fn chain_pending(store: &SqlStore, max: usize) -> PortResult<usize> {
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
        append_facts!(c, &facts);
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

/// The messages of a subject still on their way are canceled; all of its content
/// becomes unreadable when its data key goes, and what is not sealed under it goes
/// too: message metadata, webhook deliveries about its messages and replies, app
/// devices and envelopes, stored idempotent responses that name it, and parts of its
/// replies still waiting for the rest.
async fn erase(
    store: &SqlStore,
    tenant: &str,
    number: &str,
    ours: &[String],
) -> PortResult<Erasure> {
    let ours: HashSet<String> = ours
        .iter()
        .map(|s| hermod_core::inbound::sender_key(s))
        .collect();
    let subject = store.vault.lookup(number);
    let now = now_ms();
    let t = tenant.to_owned();
    let number = number.to_owned();
    let digits = hermod_core::inbound::sender_key(&number);
    write_tx!(&store.db, |c| {
        let destroyed = diesel::delete(
            subject_keys::table
                .filter(subject_keys::tenant_id.eq(&t))
                .filter(subject_keys::subject.eq(&subject)),
        )
        .execute(c)
        .await?;
        let msgs: Vec<(String, String)> = messages::table
            .filter(messages::tenant_id.eq(&t))
            .filter(messages::to_hash.eq(&subject))
            .select((messages::id, messages::status))
            .load(c)
            .await?;
        let open: Vec<String> = msgs
            .iter()
            .filter(|(_, s)| in_flight(parse_status(s)))
            .map(|(id, _)| id.clone())
            .collect();
        let all: Vec<&str> = msgs.iter().map(|(id, _)| id.as_str()).collect();
        for chunk in open.chunks(500) {
            diesel::update(
                attempts::table
                    .filter(attempts::message_id.eq_any(chunk))
                    .filter(attempts::status.eq(Status::Queued.as_str())),
            )
            .set((
                attempts::status.eq(Status::Canceled.as_str()),
                attempts::updated_at.eq(now),
            ))
            .execute(c)
            .await?;
            diesel::update(messages::table.filter(messages::id.eq_any(chunk)))
                .set((
                    messages::status.eq(Status::Canceled.as_str()),
                    messages::reason.eq(ERASED),
                    messages::updated_at.eq(now),
                ))
                .execute(c)
                .await?;
            diesel::delete(
                fallback_timers::table.filter(fallback_timers::message_id.eq_any(chunk)),
            )
            .execute(c)
            .await?;
        }
        // Its replies, by the sender's HMAC (their content is sealed like messages').
        let replies: Vec<String> = inbound_messages::table
            .filter(inbound_messages::tenant_id.eq(&t))
            .filter(inbound_messages::from_hash.eq(&subject))
            .select(inbound_messages::id)
            .load(c)
            .await?;
        for chunk in all.chunks(500) {
            diesel::update(messages::table.filter(messages::id.eq_any(chunk)))
                .set((
                    messages::shredded_at.eq(now),
                    messages::metadata.eq(None::<String>),
                ))
                .execute(c)
                .await?;
            diesel::delete(app_inbox::table.filter(app_inbox::message_id.eq_any(chunk)))
                .execute(c)
                .await?;
        }
        // Deliveries that waited or failed keep their payload (metadata, a reply's
        // number and text): blanked, and those still waiting end.
        let typing = crate::inbound::typing_ref(&subject);
        let about: Vec<&str> = all
            .iter()
            .copied()
            .chain(replies.iter().map(String::as_str))
            .chain(std::iter::once(typing.as_str()))
            .collect();
        // (Message and inbound ids are unique across tenants.)
        for chunk in about.chunks(500) {
            crate::webhooks::erase_deliveries_of!(c, chunk, now)?;
        }
        // App devices registered for the number, with their envelopes.
        let devices: Vec<String> = devices::table
            .filter(devices::tenant_id.eq(&t))
            .filter(devices::recipient.eq(&number))
            .select(devices::id)
            .load(c)
            .await?;
        if !devices.is_empty() {
            diesel::delete(app_inbox::table.filter(app_inbox::device_id.eq_any(&devices)))
                .execute(c)
                .await?;
            diesel::delete(devices::table.filter(devices::id.eq_any(&devices)))
                .execute(c)
                .await?;
        }
        // Stored responses name every recipient's subject (see `seal::seal_idem`).
        diesel::update(
            idempotency_keys::table
                .filter(idempotency_keys::tenant_id.eq(&t))
                .filter(idempotency_keys::body.like(format!("%{subject}%"))),
        )
        .set(idempotency_keys::body.eq(crate::seal::ERASED_BODY))
        .execute(c)
        .await?;
        // Parts of its replies to this tenant's numbers, still waiting for the rest.
        let waiting: Vec<String> = inbound_parts::table
            .filter(inbound_parts::from_number.eq(&digits))
            .select(inbound_parts::to_addr)
            .distinct()
            .load(c)
            .await?;
        let to_us: Vec<&String> = waiting
            .iter()
            .filter(|to| ours.contains(&hermod_core::inbound::sender_key(to)))
            .collect();
        if !to_us.is_empty() {
            diesel::delete(
                inbound_parts::table
                    .filter(inbound_parts::from_number.eq(&digits))
                    .filter(inbound_parts::to_addr.eq_any(to_us)),
            )
            .execute(c)
            .await?;
        }
        let evs = open
            .iter()
            .map(|id| {
                event_row(
                    id,
                    &t,
                    Status::Canceled,
                    None,
                    Some(json!({ "reason": ERASED })),
                    now,
                )
            })
            .collect();
        c.insert_events(evs).await?;
        let out = Erasure {
            subject: subject.clone(),
            key_destroyed: destroyed > 0,
            messages: i64::try_from(msgs.len()).unwrap_or(i64::MAX),
            canceled: i64::try_from(open.len()).unwrap_or(i64::MAX),
        };
        c.insert_audit(vec![fact(
            &t,
            now,
            "erasure",
            Some(&subject),
            json!({
                "key_destroyed": out.key_destroyed,
                "messages": out.messages,
                "canceled": out.canceled,
            }),
        )])
        .await?;
        Ok::<_, DieselError>(out)
    })
    .map_err(backend)
}

/// Blanks the sealed content of ended messages (and inbound messages) older than
/// their tenant's retention period.
async fn shred_expired(store: &SqlStore, max: usize) -> PortResult<usize> {
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

#[async_trait]
impl AuditLog for SqlStore {
    async fn chain_pending(&self, max: usize) -> PortResult<usize> {
        chain_pending(self, max).await
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
        erase(self, tenant, number, ours).await
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
        shred_expired(self, max).await
    }
}
