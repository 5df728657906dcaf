//! Delivery rows: outcomes recorded in batches, and rows past their retention purged.

#[allow(unused_imports)]
use super::*;

/// Delivered deliveries are kept 3 days (to list and replay), failed ones 30 days.
pub(super) async fn purge(store: Arc<dyn Webhooks>, cancel: CancellationToken) {
    while !cancel.is_cancelled() {
        match store
            .purge_deliveries(
                Duration::from_secs(3 * 86_400),
                Duration::from_secs(30 * 86_400),
            )
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::debug!(n, "old webhook deliveries deleted"),
            Err(e) => tracing::warn!(error = %e, "purging webhook deliveries failed"),
        }
        pause(&cancel, Duration::from_secs(600)).await;
    }
}

/// Records outcomes of delivery rows in batches (one transaction for everything that
/// finished meanwhile), off the POSTing path.
pub(super) async fn record(
    store: Arc<dyn Webhooks>,
    mut rx: mpsc::Receiver<DeliveryResult>,
    cancel: CancellationToken,
) {
    loop {
        let first = tokio::select! {
            _ = cancel.cancelled() => return,
            r = rx.recv() => r,
        };
        let Some(first) = first else { return };
        let mut batch = vec![first];
        while batch.len() < 512 {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        if let Err(e) = store.record_deliveries(&batch).await {
            // Their leases run out and they are sent again.
            tracing::warn!(error = %e, n = batch.len(), "recording webhook deliveries failed");
        }
    }
}

/// What a POST's answer means for a delivery row.
pub(super) fn outcome(d: &DueDelivery, answer: Result<u16, PostError>, now: i64) -> DeliveryResult {
    let (status, error) = match answer {
        Ok(code) if (200..300).contains(&code) => (Some(code), None),
        Ok(code) => (Some(code), Some(format!("http_{code}"))),
        Err(e) => (None, Some(e.to_string())),
    };
    let age = Duration::from_millis(u64::try_from(now - d.created_at).unwrap_or(0));
    let retry_in = match &error {
        // Refused by the address policy: trying again changes nothing.
        Some(e) if e == hermod_core::net::BLOCKED => None,
        Some(_) if age < RETRY_PERIOD => Some(retry_backoff(d.attempts + 1)),
        _ => None,
    };
    if let Some(e) = &error {
        tracing::debug!(delivery = d.id, error = %e, attempts = d.attempts + 1, gave_up = retry_in.is_none(), "webhook delivery failed");
    }
    DeliveryResult {
        id: d.id,
        status,
        error,
        retry_in,
    }
}
