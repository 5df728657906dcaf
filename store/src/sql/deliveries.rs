//! Webhook delivery rows written beside other changes: an event that is not in the
//! event log (`message.inbound`, `message.typing`) for each subscribed endpoint, and
//! ending or blanking the deliveries of a deleted endpoint or an erased subject.

use hermod_core::webhook::{DeliveryStatus, wants};

use super::rows::{EndpointRow, NewDeliveryRow};

/// Ends the pending deliveries whose `$column` is one of `$ids`: failed, with
/// `$reason` (a deleted endpoint, an erased subject). A macro: the body is written once
/// for both backends' connections.
macro_rules! end_deliveries_of {
    ($c:expr, $column:ident, $ids:expr, $reason:expr, $now:expr) => {{
        use hermod_core::webhook::DeliveryStatus as S;
        use $crate::sql::schema::webhook_deliveries as d;
        diesel::update(
            d::table
                .filter(d::$column.eq_any($ids))
                .filter(d::status.eq(S::Pending.as_str())),
        )
        .set((
            d::status.eq(S::Failed.as_str()),
            d::last_error.eq($reason),
            d::locked_until.eq(0i64),
            d::updated_at.eq($now),
        ))
        .execute($c)
        .await
    }};
}
/// The deliveries about `$ids` (message, inbound or typing references) of an erased
/// subject: those still pending end `subject_erased`, and every payload is blanked.
macro_rules! erase_deliveries_of {
    ($c:expr, $ids:expr, $now:expr) => {{
        use $crate::sql::schema::webhook_deliveries as d;
        $crate::sql::deliveries::end_deliveries_of!(
            $c,
            message_id,
            $ids,
            $crate::sql::common::ERASED,
            $now
        )?;
        diesel::update(d::table.filter(d::message_id.eq_any($ids)))
            .set(d::payload.eq($crate::sql::seal::ERASED_BODY))
            .execute($c)
            .await
    }};
}
/// A delivery row of an event that is not in the log (`message.inbound`,
/// `message.typing`) for each of the tenant's endpoints subscribed to `kind`;
/// `reference` (the inbound id, the typing user's subject) is what erasing its subject
/// finds it by.
pub(crate) fn subscribed_deliveries(
    tenant: &str,
    kind: &str,
    reference: &str,
    payload: &serde_json::Value,
    endpoints: &[EndpointRow],
    now: i64,
) -> Vec<NewDeliveryRow> {
    let body = payload.to_string();
    endpoints
        .iter()
        .filter(|e| e.tenant_id == tenant)
        .filter(|e| {
            let subscribed: Vec<String> = serde_json::from_str(&e.events).unwrap_or_default();
            wants(&subscribed, kind)
        })
        .map(|e| {
            pending(
                tenant,
                Some(&e.id),
                &e.url,
                kind,
                Some(reference),
                &body,
                now,
            )
        })
        .collect()
}

/// A delivery waiting for its first POST.
pub(crate) fn pending(
    tenant: &str,
    endpoint_id: Option<&str>,
    url: &str,
    event_type: &str,
    message_id: Option<&str>,
    payload: &str,
    now: i64,
) -> NewDeliveryRow {
    NewDeliveryRow {
        tenant_id: tenant.to_owned(),
        endpoint_id: endpoint_id.map(str::to_owned),
        url: url.to_owned(),
        event_type: event_type.to_owned(),
        message_id: message_id.map(str::to_owned),
        payload: payload.to_owned(),
        status: DeliveryStatus::Pending.as_str().to_owned(),
        attempts: 0,
        next_at: now,
        locked_until: 0,
        last_status: None,
        last_error: None,
        created_at: now,
        updated_at: now,
    }
}

pub(crate) use end_deliveries_of;
pub(crate) use erase_deliveries_of;
