//! The outbox relay (distributed mode): the API commits each message with a job row in
//! PostgreSQL; this moves those rows to RabbitMQ. Rows are leased with
//! `FOR UPDATE SKIP LOCKED` (so any number of relays share the work), published with
//! confirms, and only then deleted; a relay that dies mid-way leaves its rows to be
//! leased again, so a job may be published twice but never lost.

use std::sync::Arc;
use std::time::Duration;

use hermod_core::model::{Job, queues};
use hermod_core::ports::Queue;
use tokio_util::sync::CancellationToken;

use crate::pause;

pub async fn run(
    outbox: Arc<dyn Queue>,
    broker: Arc<dyn Queue>,
    batch: usize,
    cancel: CancellationToken,
) {
    while !cancel.is_cancelled() {
        let leased = match outbox
            .receive(queues::DISPATCH, batch, Duration::from_millis(200))
            .await
        {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "outbox read failed");
                pause(&cancel, Duration::from_secs(1)).await;
                continue;
            }
        };
        if leased.is_empty() {
            continue;
        }
        let jobs: Vec<Job> = leased.iter().map(|d| d.job.clone()).collect();
        let tags: Vec<i64> = leased.iter().map(|d| d.tag).collect();
        match broker.publish(queues::DISPATCH, &jobs).await {
            Ok(()) => {
                metrics::counter!("hermod_outbox_relayed_total").increment(jobs.len() as u64);
                if let Err(e) = outbox.ack(queues::DISPATCH, &tags).await {
                    // Published but still in the outbox: it will be published again.
                    tracing::warn!(error = %e, "outbox delete failed");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, jobs = jobs.len(), "publishing from the outbox failed; will retry");
                let back: Vec<(i64, Duration)> =
                    tags.iter().map(|t| (*t, Duration::from_secs(1))).collect();
                let _ = outbox.retry(queues::DISPATCH, &back).await;
                pause(&cancel, Duration::from_millis(500)).await;
            }
        }
    }
}
