//! Customer webhooks: endpoints, and the delivery rows of what did not go out at once
//! from the event log (see `event_log`) or came with an inbound message.

mod event_log;

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel_async::RunQueryDsl;
use hermod_core::ports::PortResult;
use hermod_core::webhook::*;
use hermod_core::{TenantId, now_ms};

use crate::sql::batch::BatchInsert as _;

use crate::sql::deliveries::end_deliveries_of;
use crate::sql::rows::*;
use crate::sql::schema::*;
use crate::{SqlStore, backend, with_conn, write_tx};

fn to_delivery(r: DeliveryRow) -> WebhookDelivery {
    WebhookDelivery {
        id: r.id,
        endpoint_id: r.endpoint_id,
        url: r.url,
        event_type: r.event_type,
        message_id: r.message_id,
        status: DeliveryStatus::parse(&r.status).unwrap_or(DeliveryStatus::Failed),
        attempts: r.attempts,
        next_at: r.next_at,
        last_status: r.last_status,
        last_error: r.last_error,
        created_at: r.created_at,
        updated_at: r.updated_at,
    }
}

fn to_endpoint(r: EndpointRow) -> WebhookEndpoint {
    WebhookEndpoint {
        id: r.id,
        tenant_id: TenantId::from_trusted(r.tenant_id),
        url: r.url,
        events: serde_json::from_str(&r.events).unwrap_or_default(),
        created_at: r.created_at,
    }
}

use event_log::SECRET;

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

impl SqlStore {
    /// Frees what a crashed run of the one embedded process had leased: webhook
    /// delivery rows (due now), fallback timers and the event-log cursor. Without it
    /// they wait out their leases (up to a minute) after a restart. Only for the
    /// embedded mode, where one process owns the file; distributed workers share rows
    /// and leases are how they hand over. Returns the rows and timers freed.
    pub async fn release_leases_after_restart(&self) -> PortResult<(usize, usize)> {
        let now = now_ms();
        write_tx!(&self.db, |c| {
            let rows = diesel::update(
                webhook_deliveries::table
                    .filter(webhook_deliveries::status.eq(DeliveryStatus::Pending.as_str()))
                    .filter(webhook_deliveries::locked_until.gt(0)),
            )
            .set((
                webhook_deliveries::next_at.eq(now),
                webhook_deliveries::locked_until.eq(0),
            ))
            .execute(c)
            .await?;
            let timers =
                diesel::update(fallback_timers::table.filter(fallback_timers::locked_until.gt(0)))
                    .set(fallback_timers::locked_until.eq(0))
                    .execute(c)
                    .await?;
            diesel::update(webhook_cursor::table)
                .set(webhook_cursor::lease_until.eq(0))
                .execute(c)
                .await?;
            Ok::<_, DieselError>((rows, timers))
        })
        .map_err(backend)
    }
}

#[async_trait]
impl Webhooks for SqlStore {
    async fn claim_cursor(&self, holder: &str, ttl: Duration) -> PortResult<Option<EventCursor>> {
        event_log::claim_cursor(&self.db, holder, ttl).await
    }

    async fn events_after(&self, cursor: &EventCursor, max: usize) -> PortResult<EventPage> {
        event_log::events_after(&self.db, &self.vault, cursor, max).await
    }

    async fn advance_cursor(
        &self,
        holder: &str,
        ttl: Duration,
        to: &EventCursor,
        retry: &[RetryDelivery],
        delivered: &[DeliveredRange],
    ) -> PortResult<bool> {
        event_log::advance_cursor(&self.db, holder, ttl, to, retry, delivered).await
    }

    async fn create_endpoint(&self, e: &WebhookEndpoint, secret: &str) -> PortResult<()> {
        let events = serde_json::to_string(&e.events).map_err(backend)?;
        let secret = self.vault.seal_secret(SECRET, secret).map_err(backend)?;
        write_tx!(&self.db, |c| {
            diesel::insert_into(webhook_endpoints::table)
                .values((
                    webhook_endpoints::id.eq(&e.id),
                    webhook_endpoints::tenant_id.eq(e.tenant_id.as_str()),
                    webhook_endpoints::url.eq(&e.url),
                    webhook_endpoints::events.eq(&events),
                    webhook_endpoints::secret.eq(&secret),
                    webhook_endpoints::created_at.eq(e.created_at),
                ))
                .execute(c)
                .await
        })
        .map_err(backend)?;
        Ok(())
    }

    async fn list_endpoints(&self, tenant: &TenantId) -> PortResult<Vec<WebhookEndpoint>> {
        let rows: Vec<EndpointRow> = with_conn!(&self.db, |c| {
            webhook_endpoints::table
                .filter(webhook_endpoints::tenant_id.eq(tenant.as_str()))
                .order(webhook_endpoints::created_at.asc())
                .select(EndpointRow::as_select())
                .load(c)
                .await
                .map_err(backend)?
        });
        Ok(rows.into_iter().map(to_endpoint).collect())
    }

    async fn delete_endpoint(&self, tenant: &TenantId, id: &str) -> PortResult<bool> {
        let now = now_ms();
        let n = write_tx!(&self.db, |c| {
            let n = diesel::delete(
                webhook_endpoints::table
                    .filter(webhook_endpoints::tenant_id.eq(tenant.as_str()))
                    .filter(webhook_endpoints::id.eq(id)),
            )
            .execute(c)
            .await?;
            if n > 0 {
                // Its pending deliveries end with it (they stay listed, as failed).
                end_deliveries_of!(c, endpoint_id, [id.to_owned()], "endpoint_deleted", now)?;
            }
            Ok::<_, DieselError>(n)
        })
        .map_err(backend)?;
        Ok(n > 0)
    }

    async fn set_callback_secret(&self, tenant: &TenantId, secret: &str) -> PortResult<()> {
        let secret = self.vault.seal_secret(SECRET, secret).map_err(backend)?;
        write_tx!(&self.db, |c| {
            diesel::update(tenants::table.filter(tenants::id.eq(tenant.as_str())))
                .set(tenants::callback_secret.eq(&secret))
                .execute(c)
                .await
        })
        .map_err(backend)?;
        Ok(())
    }

    async fn due_deliveries(&self, max: usize, lease: Duration) -> PortResult<Vec<DueDelivery>> {
        let now = now_ms();
        let until = now + ms(lease);
        let limit = i64::try_from(max).unwrap_or(100);
        // Most looks find nothing: a plain read first, the writer only when some are due.
        let any: Option<i64> = with_conn!(&self.db, |c| {
            webhook_deliveries::table
                .filter(webhook_deliveries::status.eq(DeliveryStatus::Pending.as_str()))
                .filter(webhook_deliveries::next_at.le(now))
                .select(webhook_deliveries::id)
                .first(c)
                .await
                .optional()
                .map_err(backend)?
        });
        if any.is_none() {
            return Ok(Vec::new());
        }
        write_tx!(&self.db, |c| {
            // A lease moves `next_at` to its end: the due ones are one index range.
            let due: Vec<i64> = webhook_deliveries::table
                .filter(webhook_deliveries::status.eq(DeliveryStatus::Pending.as_str()))
                .filter(webhook_deliveries::next_at.le(now))
                .order(webhook_deliveries::next_at.asc())
                .limit(limit)
                .select(webhook_deliveries::id)
                .load(c)
                .await?;
            if due.is_empty() {
                return Ok(Vec::new());
            }
            // The lease is re-checked row by row, so two workers never take the same one.
            let rows: Vec<DeliveryRow> = diesel::update(
                webhook_deliveries::table
                    .filter(webhook_deliveries::id.eq_any(&due))
                    .filter(webhook_deliveries::next_at.le(now)),
            )
            .set((
                webhook_deliveries::next_at.eq(until),
                webhook_deliveries::locked_until.eq(until),
            ))
            .returning(DeliveryRow::as_returning())
            .get_results(c)
            .await?;
            let endpoint_ids: Vec<&str> = rows
                .iter()
                .filter_map(|r| r.endpoint_id.as_deref())
                .collect();
            let secrets: HashMap<String, String> = webhook_endpoints::table
                .filter(webhook_endpoints::id.eq_any(&endpoint_ids))
                .select((webhook_endpoints::id, webhook_endpoints::secret))
                .load::<(String, String)>(c)
                .await?
                .into_iter()
                .collect();
            let tenant_ids: Vec<&str> = rows
                .iter()
                .filter(|r| r.endpoint_id.is_none())
                .map(|r| r.tenant_id.as_str())
                .collect();
            let callback: HashMap<String, Option<String>> = tenants::table
                .filter(tenants::id.eq_any(&tenant_ids))
                .select((tenants::id, tenants::callback_secret))
                .load::<(String, Option<String>)>(c)
                .await?
                .into_iter()
                .collect();
            let mut out = Vec::new();
            let mut gone = Vec::new();
            for r in rows {
                let sealed = match &r.endpoint_id {
                    // A deleted endpoint: nothing more to send.
                    Some(e) => match secrets.get(e) {
                        Some(s) => Some(s.clone()),
                        None => {
                            gone.push(e.clone());
                            continue;
                        }
                    },
                    None => callback.get(&r.tenant_id).cloned().flatten(),
                };
                let secret = match sealed {
                    Some(s) => Some(
                        self.vault
                            .open_secret(SECRET, &s)
                            .map_err(|e| DieselError::QueryBuilderError(Box::new(e)))?,
                    ),
                    None => None,
                };
                out.push(DueDelivery {
                    id: r.id,
                    tenant_id: r.tenant_id,
                    url: r.url,
                    payload: r.payload,
                    secret,
                    attempts: r.attempts,
                    created_at: r.created_at,
                });
            }
            if !gone.is_empty() {
                end_deliveries_of!(c, endpoint_id, &gone, "endpoint_deleted", now)?;
            }
            Ok::<_, DieselError>(out)
        })
        .map_err(backend)
    }

    async fn defer_deliveries(&self, ids: &[i64], delay: Duration) -> PortResult<()> {
        let until = now_ms() + ms(delay);
        write_tx!(&self.db, |c| {
            diesel::update(webhook_deliveries::table.filter(webhook_deliveries::id.eq_any(ids)))
                .set((
                    webhook_deliveries::next_at.eq(until),
                    webhook_deliveries::locked_until.eq(0),
                ))
                .execute(c)
                .await
        })
        .map_err(backend)?;
        Ok(())
    }

    async fn record_deliveries(&self, results: &[DeliveryResult]) -> PortResult<()> {
        let now = now_ms();
        // Outcomes alike (most often: delivered, 2xx) are one UPDATE.
        let mut groups: std::collections::BTreeMap<_, Vec<i64>> = std::collections::BTreeMap::new();
        for r in results {
            let status = match (&r.error, r.retry_in) {
                (None, _) => DeliveryStatus::Delivered,
                (Some(_), Some(_)) => DeliveryStatus::Pending,
                (Some(_), None) => DeliveryStatus::Failed,
            };
            let next_at = now + r.retry_in.map_or(0, ms);
            groups
                .entry((
                    status.as_str(),
                    next_at,
                    r.status.map(i32::from),
                    r.error.clone(),
                ))
                .or_default()
                .push(r.id);
        }
        write_tx!(&self.db, |c| {
            for ((status, next_at, code, error), ids) in &groups {
                diesel::update(
                    webhook_deliveries::table.filter(webhook_deliveries::id.eq_any(ids)),
                )
                .set((
                    webhook_deliveries::status.eq(*status),
                    webhook_deliveries::attempts.eq(webhook_deliveries::attempts + 1),
                    webhook_deliveries::next_at.eq(*next_at),
                    webhook_deliveries::locked_until.eq(0),
                    webhook_deliveries::last_status.eq(*code),
                    webhook_deliveries::last_error.eq(error),
                    webhook_deliveries::updated_at.eq(now),
                ))
                .execute(c)
                .await?;
            }
            // Final outcomes go into the audit chain (pending retries do not).
            let finals: Vec<(i64, &str, Option<u16>, Option<&str>)> = results
                .iter()
                .filter(|r| r.retry_in.is_none())
                .map(|r| {
                    let kind = if r.error.is_none() {
                        "webhook.delivered"
                    } else {
                        "webhook.failed"
                    };
                    (r.id, kind, r.status, r.error.as_deref())
                })
                .collect();
            if !finals.is_empty() {
                let ids: Vec<i64> = finals.iter().map(|f| f.0).collect();
                type Meta = (
                    i64,
                    String,
                    Option<String>,
                    String,
                    Option<String>,
                    String,
                    i32,
                );
                let meta: Vec<Meta> = webhook_deliveries::table
                    .filter(webhook_deliveries::id.eq_any(&ids))
                    .select((
                        webhook_deliveries::id,
                        webhook_deliveries::tenant_id,
                        webhook_deliveries::endpoint_id,
                        webhook_deliveries::event_type,
                        webhook_deliveries::message_id,
                        webhook_deliveries::url,
                        webhook_deliveries::attempts,
                    ))
                    .load(c)
                    .await?;
                let facts = finals
                    .iter()
                    .filter_map(|(id, kind, code, error)| {
                        let (_, tenant, endpoint, event, message, url, attempts) =
                            meta.iter().find(|m| m.0 == *id)?;
                        Some(crate::sql::chain::fact(
                            tenant,
                            now,
                            kind,
                            Some(&format!("whd_{id}")),
                            serde_json::json!({
                                "endpoint_id": endpoint,
                                "event_type": event,
                                "message_id": message,
                                "url_sha256": hermod_crypto::sha256_hex(url.as_bytes()),
                                "http_status": code,
                                "error": error,
                                "attempts": attempts,
                            }),
                        ))
                    })
                    .collect();
                c.insert_audit(facts).await?;
            }
            Ok::<_, DieselError>(())
        })
        .map_err(backend)
    }

    async fn list_deliveries(
        &self,
        tenant: &TenantId,
        status: Option<DeliveryStatus>,
        before: Option<i64>,
        limit: i64,
    ) -> PortResult<Vec<WebhookDelivery>> {
        let rows: Vec<DeliveryRow> = with_conn!(&self.db, |c| {
            let mut q = webhook_deliveries::table
                .filter(webhook_deliveries::tenant_id.eq(tenant.as_str()))
                .into_boxed();
            if let Some(s) = status {
                q = q.filter(webhook_deliveries::status.eq(s.as_str()));
            }
            if let Some(b) = before {
                q = q.filter(webhook_deliveries::id.lt(b));
            }
            q.order(webhook_deliveries::id.desc())
                .limit(limit)
                .select(DeliveryRow::as_select())
                .load(c)
                .await
                .map_err(backend)?
        });
        Ok(rows.into_iter().map(to_delivery).collect())
    }

    async fn purge_deliveries(
        &self,
        delivered_for: Duration,
        failed_for: Duration,
    ) -> PortResult<usize> {
        let now = now_ms();
        write_tx!(&self.db, |c| {
            let a = diesel::delete(
                webhook_deliveries::table
                    .filter(webhook_deliveries::status.eq(DeliveryStatus::Delivered.as_str()))
                    .filter(webhook_deliveries::updated_at.le(now - ms(delivered_for))),
            )
            .execute(c)
            .await?;
            let b = diesel::delete(
                webhook_deliveries::table
                    .filter(webhook_deliveries::status.eq(DeliveryStatus::Failed.as_str()))
                    .filter(webhook_deliveries::updated_at.le(now - ms(failed_for))),
            )
            .execute(c)
            .await?;
            Ok::<_, DieselError>(a + b)
        })
        .map_err(backend)
    }

    async fn retry_delivery(&self, tenant: &TenantId, id: i64) -> PortResult<bool> {
        let now = now_ms();
        let n = write_tx!(&self.db, |c| {
            diesel::update(
                webhook_deliveries::table
                    .filter(webhook_deliveries::tenant_id.eq(tenant.as_str()))
                    .filter(webhook_deliveries::id.eq(id)),
            )
            .set((
                webhook_deliveries::status.eq(DeliveryStatus::Pending.as_str()),
                webhook_deliveries::next_at.eq(now),
                webhook_deliveries::locked_until.eq(0),
                // A replay gets a fresh retry period.
                webhook_deliveries::created_at.eq(now),
                webhook_deliveries::updated_at.eq(now),
            ))
            .execute(c)
            .await
        })
        .map_err(backend)?;
        Ok(n > 0)
    }
}
