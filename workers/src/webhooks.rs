//! Customer webhook deliveries: leased from the store in batches, held per endpoint,
//! POSTed (signed) with bounded concurrency overall and per endpoint, and recorded in
//! batches. A slow or dead endpoint holds only its own slots; message delivery never
//! waits for any of this.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hermod_core::now_ms;
use hermod_core::webhook::*;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::pause;

/// POSTs in flight at once.
const IN_FLIGHT: usize = 64;
/// POSTs in flight to one endpoint (scheme, host and port): a slow or dead endpoint
/// holds at most this many slots.
const PER_ENDPOINT: usize = 16;
/// Leased deliveries held in this process, overall and per endpoint; beyond that they
/// are handed back for later.
const HELD: usize = 512;
const HELD_PER_ENDPOINT: usize = 128;
/// How long a leased delivery is ours. One held locally for longer than the lease
/// less a POST's time is dropped here (another worker may have it by then).
const LEASE: Duration = Duration::from_secs(60);
const STALE: Duration = Duration::from_secs(40);

/// `scheme://host:port` of a URL (the unit of the per-endpoint cap).
fn origin(url: &str) -> &str {
    let rest = url.find("://").map_or(0, |i| i + 3);
    url[rest..].find('/').map_or(url, |j| &url[..rest + j])
}

/// POSTs in flight, overall and per endpoint.
#[derive(Default)]
struct InFlight {
    total: usize,
    per: HashMap<String, usize>,
}

impl InFlight {
    fn has_room(&self, origin: &str) -> bool {
        self.total < IN_FLIGHT && self.per.get(origin).copied().unwrap_or(0) < PER_ENDPOINT
    }
    fn start(&mut self, origin: &str) {
        self.total += 1;
        *self.per.entry(origin.to_owned()).or_insert(0) += 1;
    }
    fn finish(&mut self, origin: &str) {
        self.total = self.total.saturating_sub(1);
        if let Some(n) = self.per.get_mut(origin) {
            *n = n.saturating_sub(1);
        }
    }
}

pub(crate) async fn run(
    store: Arc<dyn Webhooks>,
    poster: Arc<dyn WebhookPoster>,
    cancel: CancellationToken,
) {
    let (tx, rx) = mpsc::channel::<DeliveryResult>(IN_FLIGHT * 4);
    tokio::spawn(record(store.clone(), rx, cancel.clone()));
    tokio::spawn(purge(store.clone(), cancel.clone()));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<String>();
    let mut held: HashMap<String, VecDeque<(Instant, DueDelivery)>> = HashMap::new();
    let mut busy = InFlight::default();
    while !cancel.is_cancelled() {
        while let Ok(o) = done_rx.try_recv() {
            busy.finish(&o);
        }
        // Start what the caps allow.
        let mut started = 0;
        for (o, queue) in held.iter_mut() {
            while busy.has_room(o) {
                let Some((leased_at, d)) = queue.pop_front() else {
                    break;
                };
                if leased_at.elapsed() > STALE {
                    continue;
                }
                busy.start(o);
                started += 1;
                let (poster, tx, done, o) =
                    (poster.clone(), tx.clone(), done_tx.clone(), o.clone());
                tokio::spawn(async move {
                    let result = outcome(&d, poster.post(&d).await, now_ms());
                    // If this is lost, the lease runs out and the delivery goes again.
                    let _ = tx.send(result).await;
                    let _ = done.send(o);
                });
            }
        }
        held.retain(|_, q| !q.is_empty());
        // Lease more while there is room.
        let count: usize = held.values().map(VecDeque::len).sum();
        let mut leased = 0;
        if count < HELD / 2 {
            match store.due_deliveries(HELD - count, LEASE).await {
                Ok(due) => {
                    leased = due.len();
                    let now = Instant::now();
                    let mut deferred = Vec::new();
                    for d in due {
                        let q = held.entry(origin(&d.url).to_owned()).or_default();
                        if q.len() >= HELD_PER_ENDPOINT {
                            deferred.push(d.id);
                        } else {
                            q.push_back((now, d));
                        }
                    }
                    if !deferred.is_empty()
                        && let Err(e) = store
                            .defer_deliveries(&deferred, Duration::from_secs(1))
                            .await
                    {
                        tracing::warn!(error = %e, "deferring webhook deliveries failed");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "leasing webhook deliveries failed");
                    pause(&cancel, Duration::from_secs(1)).await;
                }
            }
        }
        if started == 0 && leased == 0 {
            // Wait for a POST to finish or for new deliveries to come due.
            tokio::select! {
                _ = cancel.cancelled() => return,
                o = done_rx.recv() => if let Some(o) = o {
                    busy.finish(&o);
                },
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
        }
    }
}

/// Delivered deliveries are kept 3 days (to list and replay), failed ones 30 days.
async fn purge(store: Arc<dyn Webhooks>, cancel: CancellationToken) {
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
    fn one_endpoint_takes_at_most_its_share_of_the_slots() {
        let mut busy = InFlight::default();
        for _ in 0..PER_ENDPOINT {
            assert!(busy.has_room("http://dead:1"));
            busy.start("http://dead:1");
        }
        assert!(
            !busy.has_room("http://dead:1"),
            "the dead endpoint is at its cap"
        );
        assert!(busy.has_room("http://ok:1"), "others still get slots");
        busy.finish("http://dead:1");
        assert!(busy.has_room("http://dead:1"));
        while busy.has_room("http://ok:1") && busy.total < IN_FLIGHT {
            busy.start(&format!("http://ok:{}", busy.total));
        }
        assert!(!busy.has_room("http://new:1"), "the overall cap holds");
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
