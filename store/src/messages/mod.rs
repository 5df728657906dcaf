//! Messages as the API sees them: accepted in groups (see `accept`), read back with
//! their attempts and timeline, canceled before a channel has them.

mod accept;
mod cancel;

pub(crate) use accept::Committer;

use crate::sql::rows::*;
use crate::sql::schema::*;
use crate::sql::seal::{open_idem_row, open_messages};
use crate::{backend, with_conn};
use async_trait::async_trait;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use hermod_core::model::*;
use hermod_core::ports::Messages;
use hermod_core::ports::PortResult;
use hermod_core::{AttemptId, MessageId, Status, TenantId};

use crate::SqlStore;
use crate::sql::common::*;

#[async_trait]
impl Messages for SqlStore {
    async fn accept(
        &self,
        tenant: &TenantId,
        msgs: &[NewMessage],
        idem: Option<&IdempotencyRecord>,
    ) -> PortResult<AcceptOutcome> {
        accept::submit(&self.accepts, tenant, msgs, idem).await
    }

    async fn idempotency(
        &self,
        tenant: &TenantId,
        key: &str,
    ) -> PortResult<Option<IdempotencyRecord>> {
        let row: Option<IdempotencyRow> = with_conn!(&self.db, |c| {
            let row: Option<IdempotencyRow> = idempotency_keys::table
                .filter(idempotency_keys::tenant_id.eq(tenant.as_str()))
                .filter(idempotency_keys::key.eq(key))
                .select(IdempotencyRow::as_select())
                .first(c)
                .await
                .optional()
                .map_err(backend)?;
            match row {
                Some(mut r) => {
                    open_idem_row!(c, &self.vault, r, backend);
                    Some(r)
                }
                None => None,
            }
        });
        Ok(row.map(to_idem))
    }

    async fn get_message(
        &self,
        tenant: &TenantId,
        id: &MessageId,
    ) -> PortResult<Option<MessageView>> {
        let found: Option<(MessageRow, Vec<AttemptRow>, Vec<PartRow>, Vec<EventRow>)> =
            with_conn!(&self.db, |c| {
                let mut m: Option<MessageRow> = messages::table
                    .filter(messages::id.eq(id.as_str()))
                    .filter(messages::tenant_id.eq(tenant.as_str()))
                    .filter(messages::deleted_at.is_null())
                    .select(MessageRow::as_select())
                    .first(c)
                    .await
                    .optional()
                    .map_err(backend)?;
                open_messages!(c, &self.vault, m.iter_mut(), backend);
                match m {
                    None => None,
                    Some(m) => {
                        let atts: Vec<AttemptRow> = attempts::table
                            .filter(attempts::message_id.eq(id.as_str()))
                            .order(attempts::attempt_no.asc())
                            .select(AttemptRow::as_select())
                            .load(c)
                            .await
                            .map_err(backend)?;
                        let ids: Vec<&str> = atts.iter().map(|a| a.id.as_str()).collect();
                        let parts: Vec<PartRow> = attempt_parts::table
                            .filter(attempt_parts::attempt_id.eq_any(&ids))
                            .order(attempt_parts::part_no.asc())
                            .select(PartRow::as_select())
                            .load(c)
                            .await
                            .map_err(backend)?;
                        let evs: Vec<EventRow> = events::table
                            .filter(events::message_id.eq(id.as_str()))
                            .order(events::seq.asc())
                            .select(EventRow::as_select())
                            .load(c)
                            .await
                            .map_err(backend)?;
                        Some((m, atts, parts, evs))
                    }
                }
            });
        let Some((m, atts, parts, evs)) = found else {
            return Ok(None);
        };
        let attempts = atts
            .into_iter()
            .map(|a| Attempt {
                provider_ids: parts
                    .iter()
                    .filter(|p| p.attempt_id == a.id)
                    .map(|p| p.provider_id.clone())
                    .collect(),
                id: AttemptId::from_trusted(a.id),
                message_id: MessageId::from_trusted(a.message_id),
                attempt_no: a.attempt_no,
                channel: a.channel,
                status: parse_status(&a.status),
                raw_status: a.raw_status,
                error: a.error_code.map(|code| AttemptError {
                    code,
                    permanent: a.error_permanent.unwrap_or(false),
                }),
                parts: a.parts,
                created_at: a.created_at,
                updated_at: a.updated_at,
            })
            .collect();
        let events = evs
            .into_iter()
            .map(|e| Event {
                seq: e.seq,
                message_id: MessageId::from_trusted(e.message_id),
                kind: e.kind,
                status: parse_status(&e.status),
                attempt_no: e.attempt_no,
                channel: e.channel,
                detail: e.detail.and_then(|d| serde_json::from_str(&d).ok()),
                at: e.at,
            })
            .collect();
        Ok(Some(MessageView {
            message: to_message(m),
            attempts,
            events,
        }))
    }

    async fn list_messages(&self, tenant: &TenantId, f: &ListFilter) -> PortResult<Vec<Message>> {
        let rows: Vec<MessageRow> = with_conn!(&self.db, |c| {
            let mut q = messages::table
                .filter(messages::tenant_id.eq(tenant.as_str()))
                .filter(messages::deleted_at.is_null())
                .select(MessageRow::as_select())
                .order(messages::id.desc())
                .limit(f.limit)
                .into_boxed();
            if let Some(s) = f.status {
                q = q.filter(messages::status.eq(s.as_str()));
            }
            if let Some(to) = &f.to {
                q = q.filter(messages::to_hash.eq(self.vault.lookup(to)));
            }
            if let Some(from) = &f.from {
                q = q.filter(messages::from_addr.eq(from.clone()));
            }
            if let Some(since) = f.since {
                q = q.filter(messages::created_at.ge(since));
            }
            if let Some(until) = f.until {
                q = q.filter(messages::created_at.lt(until));
            }
            if let Some(ch) = &f.channel {
                // Correlated: the newest messages are checked first, and the page
                // stops at `limit`.
                q = q.filter(diesel::dsl::exists(
                    attempts::table
                        .filter(attempts::message_id.eq(messages::id))
                        .filter(attempts::channel.eq(ch.clone())),
                ));
            }
            if let Some(key) = &f.metadata_key {
                // Metadata is stored as compact JSON: `"key":` finds the key, and the
                // rows are checked below (a nested key matches here too).
                q = q.filter(
                    messages::metadata
                        .like(metadata_key_pattern(key))
                        .escape('\\'),
                );
            }
            if let Some(cursor) = &f.cursor {
                q = q.filter(messages::id.lt(cursor.to_string()));
            }
            let mut rows: Vec<MessageRow> = q.load(c).await.map_err(backend)?;
            open_messages!(c, &self.vault, rows.iter_mut(), backend);
            rows
        });
        Ok(rows
            .into_iter()
            .map(to_message)
            .filter(|m| {
                f.metadata_key.as_ref().is_none_or(|k| {
                    m.metadata
                        .as_ref()
                        .and_then(|v| v.as_object())
                        .is_some_and(|o| o.contains_key(k))
                })
            })
            .collect())
    }

    async fn status_counts(&self) -> PortResult<Vec<(Status, i64)>> {
        let rows: Vec<(String, i64)> = with_conn!(&self.db, |c| {
            messages::table
                .group_by(messages::status)
                .select((messages::status, diesel::dsl::count_star()))
                .load(c)
                .await
                .map_err(backend)?
        });
        Ok(rows
            .into_iter()
            .map(|(s, n)| (parse_status(&s), n))
            .collect())
    }

    async fn cancel_message(&self, tenant: &TenantId, id: &MessageId) -> PortResult<CancelOutcome> {
        cancel::cancel(&self.db, tenant, id).await
    }
}

fn to_message(r: MessageRow) -> Message {
    let traffic_type = r.traffic_type();
    Message {
        id: MessageId::from_trusted(r.id),
        tenant_id: TenantId::from_trusted(r.tenant_id),
        to: r.to_number,
        from: r.from_addr,
        text: r.body,
        channels: serde_json::from_str(&r.channels).unwrap_or_default(),
        ttl_secs: r.ttl_secs,
        metadata: r.metadata.and_then(|m| serde_json::from_str(&m).ok()),
        callback_url: r.callback_url,
        callback_events: r
            .callback_events
            .and_then(|e| serde_json::from_str(&e).ok()),
        status: parse_status(&r.status),
        created_at: r.created_at,
        updated_at: r.updated_at,
        send_at: r.send_at,
        reason: r.reason,
        content: r.content.and_then(|c| serde_json::from_str(&c).ok()),
        user_id: r.user_id,
        fallback: r.fallback.and_then(|c| serde_json::from_str(&c).ok()),
        plan: r.plan.and_then(|c| serde_json::from_str(&c).ok()),
        traffic_type,
        twilio: r.twilio.and_then(|t| serde_json::from_str(&t).ok()),
        priority: if r.priority > 0 {
            hermod_core::model::Priority::High
        } else {
            hermod_core::model::Priority::Normal
        },
    }
}

pub(crate) fn to_idem(r: IdempotencyRow) -> IdempotencyRecord {
    IdempotencyRecord {
        key: r.key,
        request_hash: r.request_hash,
        status_code: u16::try_from(r.status_code).unwrap_or(500),
        body: r.body,
    }
}

/// `LIKE` pattern finding `"key":` in compact JSON, with `%`, `_` and `\\` taken
/// literally.
fn metadata_key_pattern(key: &str) -> String {
    let quoted = serde_json::to_string(key).unwrap_or_default();
    let mut p = String::from("%");
    for ch in quoted.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(ch);
    }
    p.push_str(":%");
    p
}

#[cfg(test)]
mod tests {
    #[test]
    fn metadata_patterns_take_wildcards_literally() {
        assert_eq!(super::metadata_key_pattern("order_id"), "%\"order\\_id\":%");
        assert_eq!(super::metadata_key_pattern("a%b"), "%\"a\\%b\":%");
    }
}
