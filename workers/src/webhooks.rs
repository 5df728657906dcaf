//! Customer webhook deliveries: leased from the store, POSTed (signed) with bounded
//! concurrency, each outcome recorded on its own so a slow endpoint holds only its own
//! slots. Message delivery never waits for any of this.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hermod_core::now_ms;
use hermod_core::webhook::*;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::pause;

/// POSTs in flight at once.
const IN_FLIGHT: usize = 64;
/// POSTs in flight to one endpoint (scheme, host and port): a slow or dead endpoint
/// holds at most this many slots; its other deliveries wait for their lease to end.
const PER_ENDPOINT: usize = 16;
/// How long a leased delivery is ours (longer than any POST's timeout).
const LEASE: Duration = Duration::from_secs(30);

/// `scheme://host:port` of a URL (the unit of the per-endpoint cap).
fn origin(url: &str) -> &str {
    let rest = url.find("://").map_or(0, |i| i + 3);
    url[rest..].find('/').map_or(url, |j| &url[..rest + j])
}

pub(crate) async fn run(
    store: Arc<dyn Webhooks>,
    poster: Arc<dyn WebhookPoster>,
    cancel: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let busy: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let (tx, rx) = mpsc::channel::<DeliveryResult>(IN_FLIGHT * 4);
    tokio::spawn(record(store.clone(), rx, cancel.clone()));
    while !cancel.is_cancelled() {
        let free = slots.available_permits();
        if free == 0 {
            pause(&cancel, Duration::from_millis(20)).await;
            continue;
        }
        let due = match store.due_deliveries(free, LEASE).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "leasing webhook deliveries failed");
                pause(&cancel, Duration::from_secs(1)).await;
                continue;
            }
        };
        if due.is_empty() {
            pause(&cancel, Duration::from_millis(250)).await;
            continue;
        }
        for d in due {
            let key = origin(&d.url).to_owned();
            {
                let mut b = busy
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let n = b.entry(key.clone()).or_insert(0);
                if *n >= PER_ENDPOINT {
                    // Left leased: it comes back when the lease ends.
                    continue;
                }
                *n += 1;
            }
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let (poster, tx, busy) = (poster.clone(), tx.clone(), busy.clone());
            tokio::spawn(async move {
                let result = outcome(&d, poster.post(&d).await, now_ms());
                if let Some(n) = busy
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .get_mut(&key)
                {
                    *n = n.saturating_sub(1);
                }
                // If this is lost, the lease runs out and the delivery goes again.
                let _ = tx.send(result).await;
                drop(permit);
            });
        }
    }
}

/// Records outcomes in batches (one transaction for everything that finished
/// meanwhile), off the POSTing path.
async fn record(
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

/// What a POST's answer means for the delivery.
fn outcome(d: &DueDelivery, answer: Result<u16, String>, now: i64) -> DeliveryResult {
    let (status, error) = match answer {
        Ok(code) if (200..300).contains(&code) => (Some(code), None),
        Ok(code) => (Some(code), Some(format!("http_{code}"))),
        Err(e) => (None, Some(e)),
    };
    let age = Duration::from_millis(u64::try_from(now - d.created_at).unwrap_or(0));
    let retry_in = match &error {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn due(created_at: i64, attempts: i32) -> DueDelivery {
        DueDelivery {
            id: 1,
            url: "http://x".into(),
            payload: "{}".into(),
            secret: None,
            attempts,
            created_at,
        }
    }

    #[test]
    fn endpoints_are_their_origin() {
        assert_eq!(
            origin("https://a.example:8443/hook?x=1"),
            "https://a.example:8443"
        );
        assert_eq!(origin("http://a.example"), "http://a.example");
    }

    #[test]
    fn failures_retry_for_the_period_then_give_up() {
        let ok = outcome(&due(0, 0), Ok(204), 10);
        assert!(ok.error.is_none() && ok.retry_in.is_none());
        let down = outcome(&due(0, 2), Ok(503), 1_000);
        assert_eq!(down.error.as_deref(), Some("http_503"));
        assert_eq!(down.retry_in, Some(Duration::from_secs(4)));
        let timeout = outcome(&due(0, 0), Err("timeout".into()), 1_000);
        assert_eq!(timeout.retry_in, Some(Duration::from_secs(1)));
        let old = i64::try_from(RETRY_PERIOD.as_millis()).unwrap() + 1;
        let gave_up = outcome(&due(0, 40), Ok(500), old);
        assert!(gave_up.error.is_some() && gave_up.retry_in.is_none());
    }
}
