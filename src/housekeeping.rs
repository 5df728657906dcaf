//! Records past their retention, deleted in small batches so the writer is never held
//! for long: idempotency records, provider-event markers, kept receipts.

use std::sync::Arc;
use std::time::Duration;

use hermod_store::SqlStore;
use tokio_util::sync::CancellationToken;

/// Every 10 min: idempotency records past their retention, provider-event markers
/// older than 30 days (RBM retries an event for 7) and kept receipts older than a day
/// (nothing claims them any more) go 1,000 per transaction (a short pause between, so
/// the writer is never held for long).
pub(crate) async fn purge_idempotency(
    store: Arc<SqlStore>,
    keep: Duration,
    cancel: CancellationToken,
) {
    const MARKERS: Duration = Duration::from_secs(30 * 86_400);
    const ORPHANS: Duration = Duration::from_secs(86_400);
    loop {
        let swept = sweep("idempotency records", &cancel, |batch| {
            store.purge_idempotency(keep, batch)
        })
        .await
            && sweep("provider event markers", &cancel, |batch| {
                store.purge_event_markers(MARKERS, batch)
            })
            .await
            && sweep("kept receipts", &cancel, |batch| {
                store.purge_orphan_receipts(ORPHANS, batch)
            })
            .await;
        if !swept {
            return;
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(600)) => {}
        }
    }
}

/// Calls `purge` with batches of 1,000 until a batch comes back short; false once
/// cancelled.
async fn sweep<F, Fut>(what: &str, cancel: &CancellationToken, purge: F) -> bool
where
    F: Fn(i64) -> Fut,
    Fut: std::future::Future<Output = hermod_core::ports::PortResult<usize>>,
{
    const BATCH: i64 = 1000;
    let mut gone = 0;
    loop {
        match purge(BATCH).await {
            Ok(n) => {
                gone += n;
                if i64::try_from(n).unwrap_or(0) < BATCH {
                    break;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, what, "purging past their retention failed");
                break;
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return false,
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
    if gone > 0 {
        tracing::info!(gone, what, "deleted past their retention");
    }
    true
}
