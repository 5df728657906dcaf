use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hermod_core::model::Receipt;
use hermod_core::ports::{Dispatch, ReceiptSink};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::pause;

/// Collects receipts from every bind and stores them in batches; each caller learns
/// when its receipt is durable, so the provider is acknowledged only then.
pub struct ReceiptBatcher {
    tx: mpsc::Sender<(Receipt, oneshot::Sender<bool>)>,
}

impl ReceiptBatcher {
    pub fn start(
        store: Arc<dyn Dispatch>,
        max_batch: usize,
        cancel: CancellationToken,
    ) -> Arc<Self> {
        let (tx, rx) = mpsc::channel(max_batch * 4);
        tokio::spawn(run(store, rx, max_batch, cancel));
        Arc::new(Self { tx })
    }
}

#[async_trait]
impl ReceiptSink for ReceiptBatcher {
    async fn deliver(&self, receipt: Receipt) -> bool {
        let (tx, rx) = oneshot::channel();
        if self.tx.send((receipt, tx)).await.is_err() {
            return false;
        }
        rx.await.unwrap_or(false)
    }
}

async fn run(
    store: Arc<dyn Dispatch>,
    mut rx: mpsc::Receiver<(Receipt, oneshot::Sender<bool>)>,
    max_batch: usize,
    cancel: CancellationToken,
) {
    loop {
        let first = tokio::select! {
            _ = cancel.cancelled() => return,
            r = rx.recv() => r,
        };
        let Some(first) = first else { return };
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let receipts: Vec<Receipt> = batch.iter().map(|(r, _)| r.clone()).collect();
        let span = tracing::info_span!("receipts", n = receipts.len());
        let _entered = span.enter();
        for r in &receipts {
            tracing::debug!(provider_id = %r.provider_id, status = r.status.as_str(), "receipt");
        }
        drop(_entered);
        let ok = match store.apply_receipts(&receipts).instrument(span).await {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(error = %e, n = receipts.len(), "storing receipts failed");
                false
            }
        };
        for r in &receipts {
            metrics::counter!("hermod_messages_total", "stage" => "receipt", "status" => r.status.as_str())
                .increment(1);
        }
        for (_, done) in batch {
            let _ = done.send(ok);
        }
    }
}

/// Applies receipts that arrived before their submit response was stored, should the
/// immediate check in `record_sends` have missed them.
pub(crate) async fn adopt_loop(store: Arc<dyn Dispatch>, cancel: CancellationToken) {
    while !cancel.is_cancelled() {
        if let Err(e) = store.adopt_orphans().await {
            tracing::warn!(error = %e, "adopting early receipts failed");
        }
        pause(&cancel, Duration::from_secs(1)).await;
    }
}
