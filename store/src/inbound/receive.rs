//! Inbound parts stored durably and reassembled (a concatenated message waits for
//! all its parts, or for its timeout); STOP/START keywords change opt-outs in the same
//! transaction.

use super::opt_out::opt_fact;
use super::read::to_inbound;
use crate::sql::batch::BatchInsert as _;
use crate::sql::common::channel_of;
use crate::sql::markers::mark_event;
use crate::sql::rows::*;
use crate::sql::schema::*;
use crate::sql::seal::{OPT_NUMBER, SubjectKeys as _, inbound_subject, seal_inbound};
use crate::{Db, backend, with_conn, write_tx};
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel_async::RunQueryDsl;
use hermod_core::inbound::{ALL_SENDERS, InboundMessage, InboundPart, Keyword, sender_key};
use hermod_core::now_ms;
use hermod_core::ports::PortResult;
use hermod_crypto::vault::Vault;

/// A stable 64-bit key for the advisory lock of one concatenated message (FNV-1a).
pub(super) fn lock_key(from: &str, to: &str, reference: u16, total: u8) -> i64 {
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

pub(super) fn inbound_id() -> String {
    format!("in_{}", uuid::Uuid::now_v7().simple())
}

/// Stores one part; when it completes a message, stores the message, applies its
/// keyword and returns it. Idempotent for a part delivered twice.
pub(super) async fn receive(
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
                    channel: part.channel.as_str().to_owned(),
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
            channel: part.channel.as_str().to_owned(),
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
            c.insert_audit(vec![crate::sql::chain::fact(
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
                    "channel": row.channel,
                    "connector": row.connector,
                    "keyword": row.keyword,
                    "payload": part.payload,
                    "occurred_at": hermod_core::rfc3339(row.received_at),
                });
                let rows = crate::sql::deliveries::subscribed_deliveries(
                    t,
                    "message.inbound",
                    &row.id,
                    &payload,
                    &endpoints,
                    now_ms(),
                );
                c.insert_deliveries(rows).await?;
            }
            // The tenant's SMPP accounts get it as a deliver_sm.
            let accounts: Vec<String> = smpp_accounts::table
                .filter(smpp_accounts::tenant_id.eq(t))
                .select(smpp_accounts::system_id)
                .load(c)
                .await?;
            if !accounts.is_empty() {
                let notice = hermod_core::smpp::Notice::Mo(hermod_core::smpp::MoNotice {
                    inbound_id: row.id.clone(),
                    from: row.from_number.trim_start_matches('+').to_owned(),
                    to: row.to_addr.trim_start_matches('+').to_owned(),
                    text: row.body.clone(),
                    channel: row.channel.clone(),
                });
                let now = now_ms();
                let rows: Vec<_> = accounts
                    .iter()
                    .filter_map(|a| {
                        crate::smpp::outbox_row(a, format!("mo:{}:{a}", row.id), &notice, now)
                    })
                    .collect();
                c.insert_outbox(rows).await?;
            }
            // A number with a Twilio `SmsUrl`: Twilio's inbound form POST, signed with the
            // account's auth token when it goes out; its TwiML answer is sent back.
            let hooks: Vec<(String, Option<String>, String)> = twilio_numbers::table
                .inner_join(
                    twilio_accounts::table
                        .on(twilio_accounts::tenant_id.eq(twilio_numbers::tenant_id)),
                )
                .filter(twilio_numbers::tenant_id.eq(t))
                .filter(twilio_numbers::sms_url.is_not_null())
                .select((
                    twilio_numbers::phone_number,
                    twilio_numbers::sms_url,
                    twilio_accounts::account_sid,
                ))
                .load(c)
                .await?;
            let to_key = hermod_core::inbound::sender_key(&row.to_addr);
            if let Some((number, Some(url), account)) = hooks
                .into_iter()
                .find(|(n, _, _)| hermod_core::inbound::sender_key(n) == to_key)
            {
                let form = hermod_core::twilio::inbound_form(
                    &account,
                    &row.id,
                    &row.from_number,
                    &number,
                    &row.body,
                );
                let d = crate::sql::deliveries::pending(
                    t,
                    None,
                    &url,
                    "message.inbound",
                    Some(&row.id),
                    &form.to_payload(),
                    now_ms(),
                );
                c.insert_deliveries(vec![d]).await?;
            }
        }
        Ok::<_, DieselError>(Some(to_inbound(row)))
    })
    .map_err(backend)
}

/// Groups of parts whose newest part arrived before `before`.
pub(super) async fn stale_parts(db: &Db, before: i64) -> PortResult<Vec<Vec<InboundPart>>> {
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
                    channel: channel_of(&p.channel),
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
