//! Delivery rows: those due leased for the webhook stage (opened, signed with their
//! endpoint's secret), and the outcomes of their POSTs recorded in one transaction.

#[allow(unused_imports)]
use super::*;
use hermod_core::twilio::FormPost;

pub(super) async fn due_deliveries(
    store: &SqlStore,
    max: usize,
    lease: Duration,
) -> PortResult<Vec<DueDelivery>> {
    let now = now_ms();
    let until = now + ms(lease);
    let limit = i64::try_from(max).unwrap_or(100);
    // Most looks find nothing: a plain read first, the writer only when some are due.
    let any: Option<i64> = with_conn!(&store.db, |c| {
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
    write_tx!(&store.db, |c| {
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
        // Twilio's form POSTs (status callbacks, inbound messages) are signed with the
        // account's auth token.
        let twilio_tenants: Vec<&str> = rows
            .iter()
            .filter(|r| r.endpoint_id.is_none() && FormPost::is_payload(&r.payload))
            .map(|r| r.tenant_id.as_str())
            .collect();
        let tokens: HashMap<String, String> = if twilio_tenants.is_empty() {
            HashMap::new()
        } else {
            twilio_accounts::table
                .filter(twilio_accounts::tenant_id.eq_any(&twilio_tenants))
                .select((twilio_accounts::tenant_id, twilio_accounts::auth_token))
                .load::<(String, String)>(c)
                .await?
                .into_iter()
                .collect()
        };
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
                None if FormPost::is_payload(&r.payload) => None,
                None => callback.get(&r.tenant_id).cloned().flatten(),
            };
            let secret = match sealed {
                Some(s) => Some(
                    store
                        .vault
                        .open_secret(SECRET, &s)
                        .map_err(|e| DieselError::QueryBuilderError(Box::new(e)))?,
                ),
                None => match tokens.get(&r.tenant_id) {
                    Some(t) if r.endpoint_id.is_none() && FormPost::is_payload(&r.payload) => Some(
                        store
                            .vault
                            .open_secret(crate::twilio::TOKEN, t)
                            .map_err(|e| DieselError::QueryBuilderError(Box::new(e)))?,
                    ),
                    _ => None,
                },
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

pub(super) async fn record_deliveries(
    store: &SqlStore,
    results: &[DeliveryResult],
) -> PortResult<()> {
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
    write_tx!(&store.db, |c| {
        for ((status, next_at, code, error), ids) in &groups {
            diesel::update(webhook_deliveries::table.filter(webhook_deliveries::id.eq_any(ids)))
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
