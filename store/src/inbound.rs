//! Inbound (MO) messages with durable reassembly, opt-outs, and cancelling messages.

use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel_async::RunQueryDsl;
use hermod_core::inbound::{ALL_SENDERS, InboundMessage, InboundPart, Keyword, OptOut, sender_key};
use hermod_core::model::{AgentLaunch, CancelOutcome, ProviderEvent};
use hermod_core::ports::PortResult;
use hermod_core::{MessageId, Status, TenantId, now_ms};

use hermod_crypto::vault::Vault;

use crate::batch::BatchInsert as _;
use crate::rows::*;
use crate::schema::*;
use crate::seal::{OPT_NUMBER, SubjectKeys as _, inbound_subject, open_inbound, seal_inbound};
use crate::store::{event_row, parse_status};
use crate::{Db, backend, with_conn, write_tx};

/// Inside a transaction: records a provider event's marker; false when it was there
/// already (the event was applied before). A macro, so that one body serves both
/// backends' connections.
macro_rules! mark_event {
    ($c:expr, $ev:expr, $now:expr) => {
        diesel::insert_into($crate::schema::webhook_events::table)
            .values((
                $crate::schema::webhook_events::source.eq(&$ev.source),
                $crate::schema::webhook_events::event_id.eq(&$ev.id),
                $crate::schema::webhook_events::received_at.eq($now),
            ))
            .on_conflict_do_nothing()
            .execute($c)
            .await
            .map(|n| n > 0)
    };
}
pub(crate) use mark_event;

/// `reason` of a message refused because its recipient opted out.
pub const OPTED_OUT: &str = "recipient_opted_out";

/// Whether an opt-out blocks this message. A message without a sender is blocked by
/// any opt-out of its tenant for that recipient: its sender is the connector's
/// default, which a recipient may have answered STOP to.
pub(crate) fn opted_out(outs: &[OptOutRow], m: &MessageRow) -> bool {
    outs.iter().any(|o| {
        o.tenant_id == m.tenant_id
            && (m.to_hash.as_deref() == Some(o.recipient.as_str()) || o.recipient == m.to_number)
            && (o.sender == ALL_SENDERS
                || m.from_addr
                    .as_deref()
                    .is_none_or(|f| sender_key(f) == o.sender))
    })
}

/// A stable 64-bit key for the advisory lock of one concatenated message (FNV-1a).
fn lock_key(from: &str, to: &str, reference: u16, total: u8) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let rest = [
        reference.to_be_bytes()[0],
        reference.to_be_bytes()[1],
        total,
    ];
    for b in from
        .bytes()
        .chain([0])
        .chain(to.bytes())
        .chain([0])
        .chain(rest)
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    i64::from_ne_bytes(h.to_ne_bytes())
}

fn inbound_id() -> String {
    format!("in_{}", uuid::Uuid::now_v7().simple())
}

/// An opt-out change for the audit chain: the number's HMAC, not the number.
fn opt_fact(tenant: &str, at: i64, kind: &str, subject: &str, source: &str) -> NewAuditRow {
    crate::audit::fact(
        tenant,
        at,
        kind,
        Some(subject),
        serde_json::json!({ "source": source }),
    )
}

fn to_inbound(r: InboundRow) -> InboundMessage {
    InboundMessage {
        id: r.id,
        tenant_id: r.tenant_id.map(TenantId::from_trusted),
        from: r.from_number,
        to: r.to_addr,
        text: r.body,
        parts: r.parts,
        connector: r.connector,
        keyword: r.keyword.as_deref().and_then(|k| match k {
            "stop" => Some(Keyword::Stop),
            "stop_all" => Some(Keyword::StopAll),
            "start" => Some(Keyword::Start),
            "help" => Some(Keyword::Help),
            _ => None,
        }),
        received_at: r.received_at,
        payload: r.payload.and_then(|p| serde_json::from_str(&p).ok()),
        provider_id: r.provider_id,
    }
}

/// Stores one part; when it completes a message, stores the message, applies its
/// keyword and returns it. Idempotent for a part delivered twice.
pub async fn receive(
    db: &Db,
    vault: &Vault,
    part: &InboundPart,
) -> PortResult<Option<InboundMessage>> {
    let part = part.clone();
    let pg = db.is_postgres();
    write_tx!(db, |c| {
        if let Some(ev) = &part.event
            && !mark_event!(c, ev, now_ms())?
        {
            // Delivered before: stored then, with its marker.
            return Ok(None);
        }
        let (text, parts) = match part.concat {
            None => (part.text.clone(), 1),
            Some(k) => {
                if pg {
                    // Parts of one message arrive together on several binds and
                    // processes: one at a time, or two transactions each see only
                    // their own part and the message never completes. (SQLite
                    // transactions are serialised already.)
                    let lock = lock_key(&part.from, &part.to, k.reference, k.total);
                    diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
                        .bind::<diesel::sql_types::BigInt, _>(lock)
                        .execute(c)
                        .await?;
                }
                let key = (
                    part.from.clone(),
                    part.to.clone(),
                    i32::from(k.reference),
                    i32::from(k.total),
                );
                let row = InboundPartRow {
                    from_number: key.0.clone(),
                    to_addr: key.1.clone(),
                    ref_num: key.2,
                    total: key.3,
                    seq: i32::from(k.seq),
                    connector: part.connector.clone(),
                    body: part.text.clone(),
                    received_at: part.received_at,
                };
                // seq 0 asks to store whatever parts came (the rest timed out).
                let flush = k.seq == 0;
                if !flush {
                    diesel::insert_into(inbound_parts::table)
                        .values(&row)
                        .on_conflict_do_nothing()
                        .execute(c)
                        .await?;
                }
                let filter = inbound_parts::from_number
                    .eq(key.0.clone())
                    .and(inbound_parts::to_addr.eq(key.1.clone()))
                    .and(inbound_parts::ref_num.eq(key.2))
                    .and(inbound_parts::total.eq(key.3));
                let have: Vec<InboundPartRow> = inbound_parts::table
                    .filter(filter.clone())
                    .order(inbound_parts::seq.asc())
                    .select(InboundPartRow::as_select())
                    .load(c)
                    .await?;
                if (!flush && have.len() < usize::from(k.total)) || have.is_empty() {
                    // Waiting for more parts, or already flushed by another worker.
                    return Ok(None);
                }
                diesel::delete(inbound_parts::table.filter(filter))
                    .execute(c)
                    .await?;
                let text: String = have.iter().map(|p| p.body.as_str()).collect();
                (text, i32::try_from(have.len()).unwrap_or(key.3))
            }
        };
        // The tenant that owns the number it was sent to (set by the caller from the
        // sender assignments), else none: never "whoever wrote last".
        let plus = format!("+{}", part.from);
        let from_hash = vault.lookup(&plus);
        let ours = sender_key(&part.to);
        let tenant = part.tenant.as_ref().map(|t| t.to_string());
        let keyword = Keyword::parse(&text);
        let now = now_ms();
        if let (Some(t), Some(k)) = (&tenant, keyword) {
            match k {
                Keyword::Stop | Keyword::StopAll => {
                    let sender = if k == Keyword::StopAll {
                        ALL_SENDERS.to_owned()
                    } else {
                        ours.clone()
                    };
                    let pair = (t.clone(), from_hash.clone());
                    let keys = c
                        .ensure_keys(vault, std::slice::from_ref(&pair), now)
                        .await?;
                    let number = match keys.get(&pair) {
                        Some((_, k)) => Some(
                            vault
                                .seal(k, OPT_NUMBER, &plus)
                                .map_err(|e| DieselError::QueryBuilderError(Box::new(e)))?,
                        ),
                        None => None,
                    };
                    diesel::insert_into(opt_outs::table)
                        .values(OptOutRow {
                            tenant_id: t.clone(),
                            recipient: from_hash.clone(),
                            sender,
                            source: "keyword".into(),
                            created_at: now,
                            number,
                        })
                        .on_conflict_do_nothing()
                        .execute(c)
                        .await?;
                    c.insert_audit(vec![opt_fact(
                        t,
                        now,
                        "opt_out.added",
                        &from_hash,
                        "keyword",
                    )])
                    .await?;
                }
                Keyword::Start => {
                    diesel::delete(
                        opt_outs::table.filter(
                            opt_outs::tenant_id
                                .eq(t)
                                .and(opt_outs::recipient.eq_any([&from_hash, &plus]))
                                .and(opt_outs::sender.eq_any([ours.as_str(), ALL_SENDERS])),
                        ),
                    )
                    .execute(c)
                    .await?;
                    c.insert_audit(vec![opt_fact(
                        t,
                        now,
                        "opt_out.removed",
                        &from_hash,
                        "keyword",
                    )])
                    .await?;
                }
                Keyword::Help => {}
            }
        }
        let row = InboundRow {
            id: inbound_id(),
            tenant_id: tenant,
            from_number: plus,
            to_addr: part.to.clone(),
            body: text,
            parts,
            connector: part.connector.clone(),
            keyword: keyword.map(|k| k.as_str().to_owned()),
            received_at: part.received_at,
            payload: part.payload.as_ref().map(|p| p.to_string()),
            from_hash: Some(from_hash.clone()),
            provider_id: part.event.as_ref().map(|e| e.id.clone()),
        };
        // The stored copy is sealed under the sender's data key for this tenant.
        let mut sealed = row.clone();
        let pair = inbound_subject(&sealed).unwrap_or_default();
        let keys = c
            .ensure_keys(vault, std::slice::from_ref(&pair), now)
            .await?;
        let (key_id, key) = keys
            .get(&pair)
            .ok_or_else(|| DieselError::QueryBuilderError("a data key is missing".into()))?;
        seal_inbound(vault, key, &mut sealed)?;
        diesel::insert_into(inbound_messages::table)
            .values(&sealed)
            .execute(c)
            .await?;
        if let Some(t) = &row.tenant_id {
            c.insert_audit(vec![crate::audit::fact(
                t,
                row.received_at,
                "message.inbound",
                Some(&row.id),
                serde_json::json!({
                    "from": from_hash,
                    "key_id": key_id,
                    "connector": row.connector,
                    "keyword": row.keyword,
                    "body_sealed_sha256": hermod_crypto::sha256_hex(sealed.body.as_bytes()),
                }),
            )])
            .await?;
        }
        if let Some(t) = &row.tenant_id {
            let endpoints: Vec<EndpointRow> = webhook_endpoints::table
                .filter(webhook_endpoints::tenant_id.eq(t))
                .select(EndpointRow::as_select())
                .load(c)
                .await?;
            if !endpoints.is_empty() {
                let payload = serde_json::json!({
                    "id": format!("evt_{}", row.id),
                    "type": "message.inbound",
                    "inbound_id": row.id,
                    "from": row.from_number,
                    "to": row.to_addr,
                    "text": row.body,
                    "channel": if row.connector.starts_with("rbm:") { "rcs" } else { "sms" },
                    "connector": row.connector,
                    "keyword": row.keyword,
                    "payload": part.payload,
                    "occurred_at": hermod_core::rfc3339(row.received_at),
                });
                let rows = crate::webhooks::subscribed_deliveries(
                    t,
                    "message.inbound",
                    &row.id,
                    &payload,
                    &endpoints,
                    now_ms(),
                );
                c.insert_deliveries(rows).await?;
            }
        }
        Ok::<_, DieselError>(Some(to_inbound(row)))
    })
    .map_err(backend)
}

/// Groups of parts whose newest part arrived before `before`.
pub async fn stale_parts(db: &Db, before: i64) -> PortResult<Vec<Vec<InboundPart>>> {
    let rows: Vec<InboundPartRow> = with_conn!(db, |c| {
        inbound_parts::table
            .order((
                inbound_parts::from_number.asc(),
                inbound_parts::to_addr.asc(),
                inbound_parts::ref_num.asc(),
                inbound_parts::total.asc(),
                inbound_parts::seq.asc(),
            ))
            .limit(10_000)
            .select(InboundPartRow::as_select())
            .load(c)
            .await
    })
    .map_err(backend)?;
    let mut groups: Vec<Vec<InboundPartRow>> = Vec::new();
    for r in rows {
        match groups.last_mut() {
            Some(g)
                if <[_]>::first(g).is_some_and(|f| {
                    (&f.from_number, &f.to_addr, f.ref_num, f.total)
                        == (&r.from_number, &r.to_addr, r.ref_num, r.total)
                }) =>
            {
                g.push(r)
            }
            _ => groups.push(vec![r]),
        }
    }
    Ok(groups
        .into_iter()
        .filter(|g| g.iter().all(|p| p.received_at < before))
        .map(|g| {
            g.into_iter()
                .map(|p| InboundPart {
                    connector: p.connector,
                    from: p.from_number,
                    to: p.to_addr,
                    concat: Some(hermod_core::inbound::Concat {
                        reference: u16::try_from(p.ref_num).unwrap_or(0),
                        total: u8::try_from(p.total).unwrap_or(0),
                        seq: u8::try_from(p.seq).unwrap_or(0),
                    }),
                    text: p.body,
                    received_at: p.received_at,
                    tenant: None,
                    payload: None,
                    event: None,
                })
                .collect()
        })
        .collect())
}

/// A tenant's inbound messages (or, for `None`, those no tenant owns), newest first,
/// after `cursor` (an id).
pub async fn list(
    db: &Db,
    vault: &Vault,
    tenant: Option<&TenantId>,
    cursor: Option<&str>,
    limit: i64,
) -> PortResult<Vec<InboundMessage>> {
    let t = tenant.map(|t| t.to_string());
    let cursor = cursor.map(str::to_owned);
    with_conn!(db, |c| {
        let mut q = inbound_messages::table.into_boxed();
        q = match &t {
            Some(t) => q.filter(inbound_messages::tenant_id.eq(t.clone())),
            None => q.filter(inbound_messages::tenant_id.is_null()),
        };
        if let Some(cur) = &cursor {
            q = q.filter(inbound_messages::id.lt(cur.clone()));
        }
        let mut rows: Vec<InboundRow> = q
            .order(inbound_messages::id.desc())
            .limit(limit)
            .select(InboundRow::as_select())
            .load(c)
            .await
            .map_err(backend)?;
        let pairs: Vec<(String, String)> = rows.iter().filter_map(inbound_subject).collect();
        let keys = c.load_keys(vault, &pairs).await.map_err(backend)?;
        for r in &mut rows {
            open_inbound(&keys, r);
        }
        Ok(rows.into_iter().map(to_inbound).collect())
    })
}

pub async fn get(
    db: &Db,
    vault: &Vault,
    tenant: &TenantId,
    id: &str,
) -> PortResult<Option<InboundMessage>> {
    let (t, id) = (tenant.to_string(), id.to_owned());
    with_conn!(db, |c| {
        let row: Option<InboundRow> = inbound_messages::table
            .filter(inbound_messages::id.eq(&id))
            .filter(inbound_messages::tenant_id.eq(&t))
            .select(InboundRow::as_select())
            .first(c)
            .await
            .optional()
            .map_err(backend)?;
        let Some(mut r) = row else {
            return Ok(None);
        };
        let pairs: Vec<(String, String)> = inbound_subject(&r).into_iter().collect();
        let keys = c.load_keys(vault, &pairs).await.map_err(backend)?;
        open_inbound(&keys, &mut r);
        Ok(Some(to_inbound(r)))
    })
}

pub async fn list_opt_outs(
    db: &Db,
    vault: &Vault,
    tenant: &TenantId,
    recipient: Option<&str>,
) -> PortResult<Vec<OptOut>> {
    let t = tenant.to_string();
    let r = recipient.map(|r| vec![vault.lookup(r), r.to_owned()]);
    let (rows, keys) = with_conn!(db, |c| {
        let mut q = opt_outs::table
            .filter(opt_outs::tenant_id.eq(&t))
            .into_boxed();
        if let Some(r) = &r {
            q = q.filter(opt_outs::recipient.eq_any(r.clone()));
        }
        let rows: Vec<OptOutRow> = q
            .order((opt_outs::created_at.asc(), opt_outs::sender.asc()))
            .limit(10_000)
            .select(OptOutRow::as_select())
            .load(c)
            .await
            .map_err(backend)?;
        let pairs: Vec<(String, String)> = rows
            .iter()
            .filter(|o| o.number.is_some())
            .map(|o| (o.tenant_id.clone(), o.recipient.clone()))
            .collect();
        let keys = c.load_keys(vault, &pairs).await.map_err(backend)?;
        (rows, keys)
    });
    Ok(rows
        .into_iter()
        .map(|o| {
            // Sealed: opened with the subject's key ("" once erased). Older rows hold
            // the number itself.
            let recipient = match &o.number {
                Some(sealed) => keys
                    .get(&(o.tenant_id.clone(), o.recipient.clone()))
                    .and_then(|(_, k)| k.open(OPT_NUMBER, sealed).ok())
                    .unwrap_or_default(),
                None => o.recipient.clone(),
            };
            OptOut {
                recipient,
                sender: o.sender,
                source: o.source,
                created_at: o.created_at,
            }
        })
        .collect())
}

/// Records an opt-out (`sender` `*` = all senders); true when it is new.
pub async fn add_opt_out(
    db: &Db,
    vault: &Vault,
    tenant: &TenantId,
    recipient: &str,
    sender: &str,
    source: &str,
) -> PortResult<bool> {
    let subject = vault.lookup(recipient);
    let mut row = OptOutRow {
        tenant_id: tenant.to_string(),
        recipient: subject.clone(),
        sender: if sender == ALL_SENDERS {
            ALL_SENDERS.to_owned()
        } else {
            sender_key(sender)
        },
        source: source.to_owned(),
        created_at: now_ms(),
        number: None,
    };
    let number = recipient.to_owned();
    write_tx!(db, |c| {
        let pair = (row.tenant_id.clone(), subject.clone());
        let keys = c
            .ensure_keys(vault, std::slice::from_ref(&pair), row.created_at)
            .await?;
        if let Some((_, k)) = keys.get(&pair) {
            row.number = Some(
                vault
                    .seal(k, OPT_NUMBER, &number)
                    .map_err(|e| DieselError::QueryBuilderError(Box::new(e)))?,
            );
        }
        let n = diesel::insert_into(opt_outs::table)
            .values(&row)
            .on_conflict_do_nothing()
            .execute(c)
            .await?;
        if n > 0 {
            let f = opt_fact(
                &row.tenant_id,
                row.created_at,
                "opt_out.added",
                &subject,
                &row.source,
            );
            c.insert_audit(vec![f]).await?;
        }
        Ok::<_, DieselError>(n)
    })
    .map(|n| n > 0)
    .map_err(backend)
}

/// Removes opt-outs of a recipient: one sender's, or every one when `sender` is None.
pub async fn remove_opt_out(
    db: &Db,
    vault: &Vault,
    tenant: &TenantId,
    recipient: &str,
    sender: Option<&str>,
) -> PortResult<usize> {
    let t = tenant.to_string();
    let r = recipient.to_owned();
    let s = sender.map(|s| {
        if s == ALL_SENDERS {
            ALL_SENDERS.to_owned()
        } else {
            sender_key(s)
        }
    });
    let subject = vault.lookup(recipient);
    let now = now_ms();
    write_tx!(db, |c| {
        let base = opt_outs::tenant_id
            .eq(t.clone())
            .and(opt_outs::recipient.eq_any([subject.clone(), r.clone()]));
        let n = match &s {
            Some(s) => {
                diesel::delete(opt_outs::table.filter(base.and(opt_outs::sender.eq(s.clone()))))
                    .execute(c)
                    .await?
            }
            None => {
                diesel::delete(opt_outs::table.filter(base))
                    .execute(c)
                    .await?
            }
        };
        if n > 0 {
            c.insert_audit(vec![opt_fact(&t, now, "opt_out.removed", &subject, "api")])
                .await?;
        }
        Ok::<_, DieselError>(n)
    })
    .map_err(backend)
}

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

/// Records the marker of a provider event that has no effect; false when it was
/// there already.
pub async fn first_seen_event(db: &Db, ev: &ProviderEvent) -> PortResult<bool> {
    let ev = ev.clone();
    let now = now_ms();
    write_tx!(db, |c| mark_event!(c, ev, now)).map_err(backend)
}

/// The `message_id` of a `message.typing` delivery: the sender's subject, which
/// erasing it finds the delivery by.
pub(crate) fn typing_ref(subject: &str) -> String {
    format!("typing:{subject}")
}

pub async fn record_typing(
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
    let rows = crate::webhooks::subscribed_deliveries(
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
pub async fn seen_event(db: &Db, ev: &ProviderEvent) -> PortResult<bool> {
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

pub async fn record_launch(db: &Db, l: &AgentLaunch) -> PortResult<()> {
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

pub async fn launch_states(db: &Db) -> PortResult<Vec<AgentLaunch>> {
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
