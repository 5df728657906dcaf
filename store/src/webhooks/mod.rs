//! Customer webhooks: endpoints, and the delivery rows of what did not go out at once
//! from the event log (see `event_log`) or came with an inbound message.

mod deliveries;
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
            // deliver_sm sent by the crashed run and not acknowledged: due again.
            diesel::update(
                smpp_outbox::table
                    .filter(smpp_outbox::locked_until.gt(now))
                    .filter(smpp_outbox::locked_until.lt(crate::smpp::OUTBOX_DONE)),
            )
            .set(smpp_outbox::locked_until.eq(0))
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
        deliveries::due_deliveries(self, max, lease).await
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
        deliveries::record_deliveries(self, results).await
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
