//! The embedded queue: the store's job table ([`Outbox`]) with a lease, woken by
//! publishes in this process and by commits of the store's writer.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hermod_core::model::{DeadJob, Delivery, Job};
use hermod_core::ports::{Outbox, PortResult, Queue};
use tokio::sync::Notify;

/// The durable queue in the store's database.
pub struct EmbeddedQueue {
    outbox: Arc<dyn Outbox>,
    lease: Duration,
    idle_poll: Duration,
    notify: Notify,
    max_deliveries: i32,
}

impl EmbeddedQueue {
    /// `lease`: how long a handed-out job stays invisible before it is handed out again.
    pub fn new(outbox: Arc<dyn Outbox>, lease: Duration) -> Self {
        Self {
            outbox,
            lease,
            idle_poll: Duration::from_millis(20),
            notify: Notify::new(),
            max_deliveries: 100,
        }
    }

    /// Deliveries after which a job is moved to the dead-letter queue.
    pub fn with_max_deliveries(mut self, n: i32) -> Self {
        self.max_deliveries = n.max(1);
        self
    }

    /// Makes every leased job visible again (in its first order). Only safe when this
    /// process is the sole consumer (the embedded mode): call it at startup, after a
    /// crash.
    pub async fn release_all_leases(&self) -> PortResult<usize> {
        self.outbox.release_all_leases().await
    }
}

#[async_trait]
impl Queue for EmbeddedQueue {
    async fn publish(&self, queue: &str, batch: &[Job]) -> PortResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        self.outbox.enqueue(queue, batch).await?;
        self.notify.notify_waiters();
        Ok(())
    }

    async fn receive(&self, queue: &str, max: usize, wait: Duration) -> PortResult<Vec<Delivery>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let got = self
                .outbox
                .lease(queue, max, self.lease, self.max_deliveries)
                .await?;
            if !got.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(got);
            }
            // Woken by a publish in this process, or a commit of the store's writer
            // (the API writes first jobs in its own transaction), or polls.
            let nap = self
                .idle_poll
                .min(deadline.saturating_duration_since(tokio::time::Instant::now()));
            tokio::select! {
                _ = self.outbox.wait_for_commit(nap) => {}
                _ = self.notify.notified() => {}
            }
        }
    }

    async fn ack(&self, _queue: &str, tags: &[i64]) -> PortResult<()> {
        self.outbox.ack(tags).await
    }

    async fn retry(&self, _queue: &str, retries: &[(i64, Duration)]) -> PortResult<()> {
        self.outbox.retry(retries).await
    }

    async fn dead_letters(&self, max: usize) -> PortResult<Vec<DeadJob>> {
        self.outbox.dead_letters(max).await
    }

    async fn depth(&self, queue: &str) -> PortResult<i64> {
        self.outbox.depth(queue).await
    }
}
