//! The event log as the webhook queue: the webhook stage reads published events after
//! its cursor, with their payloads and destinations (subscribed endpoints, the
//! message's callback URL), and moves the cursor once they went out. Only deliveries
//! that fail or wait become `webhook_deliveries` rows.
//!
//! SQLite commits one writer at a time, so event numbers become visible in order and
//! the cursor is one number. PostgreSQL takes numbers before commit: a transaction
//! still running when the log was read may later show events below the cursor. The
//! cursor keeps those transactions (`pending`) and the next read also takes their
//! events, once they ended. Every event carries its transaction id, assigned before
//! its number (see the migration), so a transaction holding a number is either
//! committed or one of the running ones.

use std::collections::HashMap;
use std::time::Duration;

use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel::sql_types::{Array, BigInt, Nullable, Text};
use diesel_async::RunQueryDsl;
use hermod_core::ports::PortResult;
use hermod_core::webhook::*;
use hermod_core::{Status, now_ms};

use crate::sql::batch::BatchInsert as _;
use crate::sql::rows::*;
use crate::sql::schema::*;
use crate::{Db, backend, write_op, write_tx};

/// The cursor's row.
const NAME: &str = "events";
/// The sealed-field name of webhook signing secrets (endpoints and callback).
pub(crate) const SECRET: &str = "webhook.secret";

/// An event with what its message says about callbacks.
type LogRow = (
    EventRow,
    Option<String>, // callback_url
    Option<String>, // callback_events
    Option<String>, // metadata
    Option<String>, // twilio
    Option<String>, // smpp
);

#[derive(QueryableByName)]
struct LogRowByName {
    #[diesel(sql_type = BigInt)]
    seq: i64,
    #[diesel(sql_type = Text)]
    message_id: String,
    #[diesel(sql_type = Text)]
    tenant_id: String,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Nullable<diesel::sql_types::Integer>)]
    attempt_no: Option<i32>,
    #[diesel(sql_type = Nullable<Text>)]
    channel: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    detail: Option<String>,
    #[diesel(sql_type = BigInt)]
    at: i64,
    #[diesel(sql_type = Nullable<Text>)]
    callback_url: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    callback_events: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    metadata: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    twilio: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    smpp: Option<String>,
}

impl From<LogRowByName> for LogRow {
    fn from(r: LogRowByName) -> Self {
        (
            EventRow {
                seq: r.seq,
                message_id: r.message_id,
                tenant_id: r.tenant_id,
                kind: r.kind,
                status: r.status,
                attempt_no: r.attempt_no,
                channel: r.channel,
                detail: r.detail,
                at: r.at,
            },
            r.callback_url,
            r.callback_events,
            r.metadata,
            r.twilio,
            r.smpp,
        )
    }
}

#[derive(QueryableByName)]
struct Snapshot {
    #[diesel(sql_type = Text)]
    snap: String,
}

/// `xmin:xmax:xip,...` → (xmax, running transaction ids).
fn parse_snapshot(s: &str) -> Option<(i64, Vec<i64>)> {
    let mut it = s.split(':');
    let _xmin: i64 = it.next()?.parse().ok()?;
    let xmax: i64 = it.next()?.parse().ok()?;
    let xip = it
        .next()
        .unwrap_or("")
        .split(',')
        .filter(|x| !x.is_empty())
        .map(|x| x.parse().ok())
        .collect::<Option<Vec<i64>>>()?;
    Some((xmax, xip))
}

const PG_COLUMNS: &str = "e.seq, e.message_id, e.tenant_id, e.kind, e.status, e.attempt_no, \
     e.channel, e.detail, e.at, m.callback_url, m.callback_events, m.metadata, m.twilio, m.smpp \
     FROM events e LEFT JOIN messages m ON m.id = e.message_id";

fn published_kinds() -> Vec<&'static str> {
    EVENT_TYPES
        .iter()
        .copied()
        .filter(|k| *k != "message.inbound" && *k != "message.typing")
        .collect()
}

/// Reads the log after `cursor`: the events and the cursor after them.
async fn read(db: &Db, cursor: &EventCursor, max: usize) -> PortResult<(Vec<LogRow>, EventCursor)> {
    let limit = i64::try_from(max).unwrap_or(1000);
    let kinds = published_kinds();
    match db {
        Db::Lite { pool, .. } => {
            let mut c = pool.get().await.map_err(crate::unavailable)?;
            let rows: Vec<LogRow> = events::table
                .left_join(messages::table.on(messages::id.eq(events::message_id)))
                .filter(events::seq.gt(cursor.seq))
                .filter(events::kind.eq_any(&kinds))
                .order(events::seq.asc())
                .limit(limit)
                .select((
                    EventRow::as_select(),
                    messages::callback_url.nullable(),
                    messages::callback_events.nullable(),
                    messages::metadata.nullable(),
                    messages::twilio.nullable(),
                    messages::smpp.nullable(),
                ))
                .load(&mut *c)
                .await
                .map_err(backend)?;
            let seq = rows.last().map_or(cursor.seq, |r| r.0.seq);
            Ok((
                rows,
                EventCursor {
                    seq,
                    pending: Vec::new(),
                },
            ))
        }
        Db::Pg(pool) => {
            let mut c = pool.get().await.map_err(crate::unavailable)?;
            let cursor = cursor.clone();
            // One snapshot for the running transactions and both reads.
            c.build_transaction()
                .repeatable_read()
                .read_only()
                .run(async |c| {
                    let snap: Snapshot =
                        diesel::sql_query("SELECT pg_current_snapshot()::text AS snap")
                            .get_result(c)
                            .await?;
                    let (xmax, running) = parse_snapshot(&snap.snap).ok_or_else(|| {
                        DieselError::QueryBuilderError("unreadable pg_current_snapshot".into())
                    })?;
                    let ended: Vec<i64> = cursor
                        .pending
                        .iter()
                        .copied()
                        .filter(|x| *x < xmax && !running.contains(x))
                        .collect();
                    let kinds: Vec<String> = kinds.iter().map(|k| (*k).to_owned()).collect();
                    let mut rows: Vec<LogRow> = Vec::new();
                    if !ended.is_empty() {
                        // Events of transactions that were running at the last read.
                        let late: Vec<LogRowByName> = diesel::sql_query(format!(
                            "SELECT {PG_COLUMNS} WHERE e.tx = ANY($1) AND e.seq <= $2 \
                             AND e.kind = ANY($3) ORDER BY e.seq"
                        ))
                        .bind::<Array<BigInt>, _>(&ended)
                        .bind::<BigInt, _>(cursor.seq)
                        .bind::<Array<Text>, _>(&kinds)
                        .load(c)
                        .await?;
                        rows.extend(late.into_iter().map(LogRow::from));
                    }
                    let fresh: Vec<LogRowByName> = diesel::sql_query(format!(
                        "SELECT {PG_COLUMNS} WHERE e.seq > $1 AND e.kind = ANY($2) \
                         ORDER BY e.seq LIMIT $3"
                    ))
                    .bind::<BigInt, _>(cursor.seq)
                    .bind::<Array<Text>, _>(&kinds)
                    .bind::<BigInt, _>(limit)
                    .load(c)
                    .await?;
                    rows.extend(fresh.into_iter().map(LogRow::from));
                    let seq = rows
                        .iter()
                        .map(|r| r.0.seq)
                        .max()
                        .unwrap_or(cursor.seq)
                        .max(cursor.seq);
                    Ok::<_, DieselError>((
                        rows,
                        EventCursor {
                            seq,
                            pending: running,
                        },
                    ))
                })
                .await
                .map_err(backend)
        }
    }
}

/// Published events after `cursor`, each with its payload and destinations.
pub(crate) async fn events_after(
    db: &Db,
    vault: &hermod_crypto::vault::Vault,
    cursor: &EventCursor,
    max: usize,
) -> PortResult<EventPage> {
    let (rows, next) = read(db, cursor, max).await?;
    if rows.is_empty() {
        return Ok(EventPage {
            events: Vec::new(),
            next,
        });
    }
    smpp_receipts(db, vault, &rows).await?;
    let mut tenants: Vec<&str> = rows.iter().map(|r| r.0.tenant_id.as_str()).collect();
    tenants.sort_unstable();
    tenants.dedup();
    let (endpoints, callback): (Vec<EndpointRow>, Vec<(String, Option<String>)>) =
        crate::with_conn!(db, |c| {
            let e: Vec<EndpointRow> = webhook_endpoints::table
                .filter(webhook_endpoints::tenant_id.eq_any(&tenants))
                .select(EndpointRow::as_select())
                .load(c)
                .await
                .map_err(backend)?;
            let t: Vec<(String, Option<String>)> = tenants::table
                .filter(tenants::id.eq_any(&tenants))
                .select((tenants::id, tenants::callback_secret))
                .load(c)
                .await
                .map_err(backend)?;
            (e, t)
        });
    // Each sealed secret opened once per page.
    let mut opened: HashMap<String, Option<String>> = HashMap::new();
    let mut open = |sealed: &str| -> Option<String> {
        opened
            .entry(sealed.to_owned())
            .or_insert_with(|| match vault.open_secret(SECRET, sealed) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::error!(error = %e, "cannot open a webhook secret; sent unsigned");
                    None
                }
            })
            .clone()
    };
    let endpoints: Vec<(EndpointRow, Vec<String>, Option<String>)> = endpoints
        .into_iter()
        .map(|e| {
            let subscribed = serde_json::from_str(&e.events).unwrap_or_default();
            let secret = open(&e.secret);
            (e, subscribed, secret)
        })
        .collect();
    let callback: HashMap<String, Option<String>> = callback
        .into_iter()
        .map(|(t, s)| {
            let s = s.and_then(|s| open(&s));
            (t, s)
        })
        .collect();
    let twilio = twilio_context(db, vault, &rows).await?;
    let mut events = Vec::with_capacity(rows.len());
    for (ev, callback_url, callback_events, metadata, extras, _) in rows {
        let mut destinations = Vec::new();
        for (e, subscribed, secret) in &endpoints {
            if e.tenant_id == ev.tenant_id && wants(subscribed, &ev.kind) {
                destinations.push(Destination {
                    endpoint_id: Some(e.id.clone()),
                    url: e.url.clone(),
                    secret: secret.clone(),
                    payload: None,
                });
            }
        }
        if let Some(url) = callback_url {
            let wanted = callback_events
                .as_deref()
                .and_then(|c| serde_json::from_str::<Vec<String>>(c).ok())
                .is_none_or(|list| list.contains(&ev.kind));
            let extras = extras
                .as_deref()
                .and_then(|x| serde_json::from_str::<hermod_core::twilio::MessageExtras>(x).ok());
            match extras {
                // A Twilio status callback: its own form, signed with the auth token.
                Some(x) => {
                    if let Some((payload, token)) = twilio.status_callback(&ev, &x) {
                        destinations.push(Destination {
                            endpoint_id: None,
                            url,
                            secret: token,
                            payload: Some(payload),
                        });
                    }
                }
                None if wanted => destinations.push(Destination {
                    endpoint_id: None,
                    url,
                    secret: callback.get(&ev.tenant_id).cloned().flatten(),
                    payload: None,
                }),
                None => {}
            }
        }
        if destinations.is_empty() {
            continue;
        }
        let detail: Option<serde_json::Value> = ev
            .detail
            .as_deref()
            .and_then(|d| serde_json::from_str(d).ok());
        let metadata: Option<serde_json::Value> = metadata
            .as_deref()
            .and_then(|m| serde_json::from_str(m).ok());
        let payload = event_payload(
            ev.seq,
            &ev.message_id,
            &ev.kind,
            &ev.status,
            ev.attempt_no,
            ev.channel.as_deref(),
            detail.as_ref(),
            ev.at,
            metadata.as_ref(),
        )
        .to_string();
        events.push(OutgoingEvent {
            seq: ev.seq,
            tenant_id: ev.tenant_id,
            event_type: ev.kind,
            message_id: ev.message_id,
            payload,
            destinations,
        });
    }
    Ok(EventPage { events, next })
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

fn decode(seq: i64, pending: &str) -> EventCursor {
    let pending = if pending.is_empty() {
        Vec::new()
    } else {
        serde_json::from_str(pending).unwrap_or_default()
    };
    EventCursor { seq, pending }
}

fn encode(c: &EventCursor) -> String {
    if c.pending.is_empty() {
        String::new()
    } else {
        serde_json::to_string(&c.pending).unwrap_or_default()
    }
}

pub(crate) async fn claim_cursor(
    db: &Db,
    holder: &str,
    ttl: Duration,
) -> PortResult<Option<EventCursor>> {
    let now = now_ms();
    write_tx!(db, |c| {
        // A database made before the cursor existed starts at its newest event.
        let got: Option<(i64, String)> = diesel::update(
            webhook_cursor::table
                .filter(webhook_cursor::name.eq(NAME))
                .filter(
                    webhook_cursor::holder
                        .eq(holder)
                        .or(webhook_cursor::lease_until.lt(now)),
                ),
        )
        .set((
            webhook_cursor::holder.eq(holder),
            webhook_cursor::lease_until.eq(now + ms(ttl)),
        ))
        .returning((webhook_cursor::seq, webhook_cursor::pending))
        .get_result(c)
        .await
        .optional()?;
        Ok::<_, DieselError>(got.map(|(seq, pending)| decode(seq, &pending)))
    })
    .map_err(backend)
}

pub(crate) async fn advance_cursor(
    db: &Db,
    holder: &str,
    ttl: Duration,
    to: &EventCursor,
    retry: &[RetryDelivery],
    delivered: &[DeliveredRange],
) -> PortResult<bool> {
    let now = now_ms();
    let rows: Vec<NewDeliveryRow> = retry
        .iter()
        .map(|r| NewDeliveryRow {
            tenant_id: r.tenant_id.clone(),
            endpoint_id: r.endpoint_id.clone(),
            url: r.url.clone(),
            event_type: r.event_type.clone(),
            message_id: r.message_id.clone(),
            payload: r.payload.clone(),
            status: DeliveryStatus::Pending.as_str().to_owned(),
            attempts: r.attempts,
            next_at: now + ms(r.retry_in),
            locked_until: 0,
            last_status: r.last_status.map(i32::from),
            last_error: r.last_error.clone(),
            created_at: now,
            updated_at: now,
        })
        .collect();
    // Successes are one audit fact per tenant and range, not one per POST.
    let facts: Vec<NewAuditRow> = delivered
        .iter()
        .map(|d| {
            crate::sql::chain::fact(
                &d.tenant_id,
                now,
                "webhook.delivered_range",
                Some(&format!("evt_{}..evt_{}", d.from_seq, d.to_seq)),
                serde_json::json!({
                    "from_seq": d.from_seq,
                    "to_seq": d.to_seq,
                    "deliveries": d.deliveries,
                }),
            )
        })
        .collect();
    let pending = encode(to);
    let (holder, seq) = (holder.to_owned(), to.seq);
    let about: Vec<String> = rows.iter().filter_map(|r| r.message_id.clone()).collect();
    write_op!(db, move |c| {
        let n = diesel::update(
            webhook_cursor::table
                .filter(webhook_cursor::name.eq(NAME))
                .filter(webhook_cursor::holder.eq(&holder)),
        )
        .set((
            webhook_cursor::seq.eq(seq),
            webhook_cursor::pending.eq(&pending),
            webhook_cursor::lease_until.eq(now + ms(ttl)),
            webhook_cursor::updated_at.eq(now),
        ))
        .execute(c)
        .await?;
        if n == 0 {
            return Ok(false);
        }
        c.insert_deliveries(rows).await?;
        // Read from the log before their subject was erased: they carried its
        // metadata out of the erasure's reach. Blanked and ended like the rows it found.
        for chunk in about.chunks(500) {
            let erased: Vec<String> = messages::table
                .filter(messages::id.eq_any(chunk))
                .filter(messages::shredded_at.is_not_null())
                .select(messages::id)
                .load(c)
                .await?;
            if !erased.is_empty() {
                crate::sql::deliveries::erase_deliveries_of!(c, &erased, now)?;
            }
        }
        c.insert_audit(facts).await?;
        Ok::<_, DieselError>(true)
    })
    .map_err(backend)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_parse() {
        assert_eq!(parse_snapshot("10:20:"), Some((20, vec![])));
        assert_eq!(parse_snapshot("10:20:12,15"), Some((20, vec![12, 15])));
        assert_eq!(parse_snapshot("junk"), None);
    }

    #[test]
    fn cursors_round_trip() {
        let c = EventCursor {
            seq: 7,
            pending: vec![3, 9],
        };
        assert_eq!(decode(c.seq, &encode(&c)), c);
        assert_eq!(encode(&EventCursor::default()), "");
    }
}

/// What Twilio status callbacks of a page need: the accounts of its tenants and the
/// parties of its Twilio messages (their numbers opened).
#[derive(Default)]
struct TwilioContext {
    /// Tenant → (account SID, auth token).
    accounts: HashMap<String, (String, Option<String>)>,
    /// Message → (to, from).
    parties: HashMap<String, (String, Option<String>)>,
}

async fn twilio_context(
    db: &Db,
    vault: &hermod_crypto::vault::Vault,
    rows: &[LogRow],
) -> PortResult<TwilioContext> {
    let ids: Vec<&str> = rows
        .iter()
        .filter(|r| r.1.is_some() && r.4.is_some())
        .map(|r| r.0.message_id.as_str())
        .collect();
    if ids.is_empty() {
        return Ok(TwilioContext::default());
    }
    let mut tenants: Vec<&str> = rows
        .iter()
        .filter(|r| r.4.is_some())
        .map(|r| r.0.tenant_id.as_str())
        .collect();
    tenants.sort_unstable();
    tenants.dedup();
    let (accounts, msgs): (Vec<(String, String, String)>, Vec<MessageRow>) =
        crate::with_conn!(db, |c| {
            let a: Vec<(String, String, String)> = twilio_accounts::table
                .filter(twilio_accounts::tenant_id.eq_any(&tenants))
                .select((
                    twilio_accounts::tenant_id,
                    twilio_accounts::account_sid,
                    twilio_accounts::auth_token,
                ))
                .load(c)
                .await
                .map_err(backend)?;
            let mut m: Vec<MessageRow> = messages::table
                .filter(messages::id.eq_any(&ids))
                .select(MessageRow::as_select())
                .load(c)
                .await
                .map_err(backend)?;
            crate::sql::seal::open_messages!(c, vault, m.iter_mut(), backend);
            (a, m)
        });
    Ok(TwilioContext {
        accounts: accounts
            .into_iter()
            .map(|(t, sid, sealed)| {
                let token = match vault.open_secret(crate::twilio::TOKEN, &sealed) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot open a Twilio auth token; sent unsigned");
                        None
                    }
                };
                (t, (sid, token))
            })
            .collect(),
        parties: msgs
            .into_iter()
            .map(|m| (m.id, (m.to_number, m.from_addr)))
            .collect(),
    })
}

impl TwilioContext {
    /// The status callback of a Twilio message's event (form payload, auth token);
    /// None for events Twilio has no status for (`message.fallback`).
    fn status_callback(
        &self,
        ev: &EventRow,
        extras: &hermod_core::twilio::MessageExtras,
    ) -> Option<(String, Option<String>)> {
        use hermod_core::twilio;
        let status = hermod_core::Status::parse(&ev.status)?;
        if ev.kind == "message.fallback" || ev.kind == "message.typing" {
            return None;
        }
        let (sid, token) = self.accounts.get(&ev.tenant_id)?;
        let (to, from) = self.parties.get(&ev.message_id)?;
        let detail: Option<serde_json::Value> = ev
            .detail
            .as_deref()
            .and_then(|d| serde_json::from_str(d).ok());
        let field = |k: &str| {
            detail
                .as_ref()
                .and_then(|d| d.get(k))
                .and_then(|v| v.as_str())
        };
        let raw = field("raw_status");
        let id = hermod_core::MessageId::from_trusted(ev.message_id.clone());
        let message_sid = twilio::message_sid(&id, extras.media);
        let accepted_as = if extras.service_sid.is_some() {
            "accepted"
        } else {
            "queued"
        };
        let form = twilio::StatusCallback {
            account_sid: sid,
            message_sid: &message_sid,
            status: twilio::status_name(status, raw.is_some(), accepted_as),
            from: from.as_deref(),
            to,
            error_code: twilio::error_code(status, field("reason"), field("error_code"), raw),
            service_sid: extras.service_sid.as_deref(),
            channel: ev.channel.as_deref(),
            raw_status: raw,
        }
        .form();
        Some((form.to_payload(), token.clone()))
    }
}

/// Receipts for SMPP clients: a final event (and a read, when the account wants reads)
/// of a message submitted over SMPP with `registered_delivery` becomes an outbox row
/// for the account's receiver binds. Written before the cursor moves past the events;
/// a page read twice writes nothing twice (one row per message and `stat`).
async fn smpp_receipts(
    db: &Db,
    vault: &hermod_crypto::vault::Vault,
    rows: &[LogRow],
) -> PortResult<()> {
    use hermod_core::smpp::*;
    let wanted: Vec<(&EventRow, SmppOrigin, Status)> = rows
        .iter()
        .filter_map(|r| {
            let origin: SmppOrigin = serde_json::from_str(r.5.as_deref()?).ok()?;
            let status = Status::parse(&r.0.status)?;
            let message_level = matches!(
                r.0.kind.as_str(),
                "message.delivered"
                    | "message.read"
                    | "message.failed"
                    | "message.expired"
                    | "message.rejected"
                    | "message.canceled"
            );
            let final_or_read =
                message_level && (receipt_state(status).is_some() || status == Status::Read);
            (origin.registered_delivery & 0x03 != 0 && final_or_read)
                .then_some((&r.0, origin, status))
        })
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = wanted.iter().map(|w| w.0.message_id.as_str()).collect();
    let accounts: Vec<&str> = wanted.iter().map(|w| w.1.system_id.as_str()).collect();
    let (reads, mut msgs): (Vec<String>, Vec<MessageRow>) = crate::with_conn!(db, |c| {
        let a: Vec<String> = smpp_accounts::table
            .filter(smpp_accounts::system_id.eq_any(&accounts))
            .filter(smpp_accounts::read_receipts.ne(0))
            .select(smpp_accounts::system_id)
            .load(c)
            .await
            .map_err(backend)?;
        let m: Vec<MessageRow> = messages::table
            .filter(messages::id.eq_any(&ids))
            .select(MessageRow::as_select())
            .load(c)
            .await
            .map_err(backend)?;
        (a, m)
    });
    crate::with_conn!(db, |c| {
        crate::sql::seal::open_messages!(c, vault, msgs.iter_mut(), backend);
    });
    let msgs: HashMap<String, MessageRow> = msgs.into_iter().map(|m| (m.id.clone(), m)).collect();
    let now = now_ms();
    let mut out = Vec::new();
    for (ev, origin, status) in wanted {
        let Some(m) = msgs.get(&ev.message_id) else {
            continue;
        };
        let (stat, state, err) = match receipt_state(status) {
            Some(s) => s,
            None if reads.contains(&origin.system_id) => read_receipt(),
            None => continue,
        };
        // 0x02: failures only.
        if origin.registered_delivery & 0x03 == 0x02 && matches!(state, 2 | 6) {
            continue;
        }
        let notice = Notice::Receipt(ReceiptNotice {
            message_id: ev.message_id.clone(),
            recipient: m.to_number.trim_start_matches('+').to_owned(),
            source: origin.source.clone(),
            source_ton: origin.source_ton,
            source_npi: origin.source_npi,
            stat: stat.to_owned(),
            state,
            err: err.to_owned(),
            submitted_at: m.created_at,
            done_at: ev.at,
            channel: ev.channel.clone(),
        });
        let dedupe = format!("r:{}:{stat}", ev.message_id);
        if let Some(row) = crate::smpp::outbox_row(&origin.system_id, dedupe, &notice, now) {
            out.push(row);
        }
    }
    if out.is_empty() {
        return Ok(());
    }
    write_tx!(db, |c| c.insert_outbox(out.clone()).await).map_err(backend)?;
    Ok(())
}
