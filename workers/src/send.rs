use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use std::sync::Arc;

use hermod_core::model::{Claim, Job, Outgoing, SendOutcome, SendResult};
use hermod_core::ports::{Channel, PortError, SendError};
use hermod_core::{AttemptId, now_ms};
use tokio_util::sync::CancellationToken;

use crate::{Pipeline, backoff, pause};

/// Claims send jobs, submits them (up to a batch in flight), records the outcomes in
/// one transaction and only then acknowledges the jobs.
pub(crate) async fn run(p: Pipeline, channel: Arc<dyn Channel>, cancel: CancellationToken) {
    while !cancel.is_cancelled() {
        // No bind up in this process (down, or held by another worker): leave the jobs
        // to a process that can send them.
        if !channel.ready() {
            pause(&cancel, Duration::from_millis(200)).await;
            continue;
        }
        if let Err(e) = step(&p, &channel).await {
            tracing::error!(error = %e, "send step failed");
            pause(&cancel, Duration::from_millis(500)).await;
        }
    }
}

type SendReply = Result<(Vec<String>, String), SendError>;

enum Next {
    Ack,
    Retry(Duration),
}

async fn step(p: &Pipeline, channel: &Arc<dyn Channel>) -> Result<(), PortError> {
    let queue = channel.kind().queue();
    let batch = p
        .queue
        .receive(queue, p.settings.batch, Duration::from_millis(500))
        .await?;
    if batch.is_empty() {
        return Ok(());
    }
    let tags: Vec<i64> = batch.iter().map(|d| d.tag).collect();
    let r = work(p, channel, batch).await;
    if r.is_err() {
        // Whatever was not acknowledged or retried goes back (RabbitMQ would hold it
        // until the connection closes). Claims are idempotent; a submit already made
        // comes back in doubt and is resolved as such.
        let back: Vec<(i64, Duration)> =
            tags.iter().map(|t| (*t, Duration::from_secs(1))).collect();
        let _ = p.queue.retry(queue, &back).await;
    }
    r
}

async fn work(
    p: &Pipeline,
    channel: &Arc<dyn Channel>,
    batch: Vec<hermod_core::model::Delivery>,
) -> Result<(), PortError> {
    let queue = channel.kind().queue();
    let stage = channel.kind().as_str();
    let mut tags: HashMap<String, (i64, i32)> = HashMap::new();
    let mut ids = Vec::new();
    for d in &batch {
        if let Job::SendV1 { attempt_id, .. } = &d.job
            && let Some(id) = AttemptId::parse(attempt_id)
        {
            {
                ids.push(id);
                tags.insert(attempt_id.clone(), (d.tag, d.deliveries));
                continue;
            }
        }
        p.queue.ack(queue, &[d.tag]).await?;
    }
    let claims = p.store.claim_attempts(&ids).await?;
    let mut to_send: Vec<Outgoing> = Vec::new();
    let mut next: Vec<(i64, Next)> = Vec::new();
    let tag_of = |id: &AttemptId| tags.get(id.as_str()).copied().unwrap_or((0, 1));
    for c in claims {
        match c {
            Claim::Claimed(o) => to_send.push(o),
            Claim::Done(id) => next.push((tag_of(&id).0, Next::Ack)),
            Claim::InDoubt { outgoing, since } => {
                // A submit may have reached the SMSC before a crash: its receipt carries
                // our user_message_reference. Resend only when none came in time.
                let (tag, _) = tag_of(&outgoing.attempt_id);
                if channel.idempotent_sends() {
                    to_send.push(outgoing);
                } else if p.store.resolve_in_doubt(&outgoing).await? {
                    tracing::info!(attempt = %outgoing.attempt_id, "in-doubt submit resolved by its receipt");
                    next.push((tag, Next::Ack));
                } else if now_ms() - since
                    < i64::try_from(p.settings.in_doubt_grace.as_millis()).unwrap_or(0)
                {
                    next.push((tag, Next::Retry(Duration::from_secs(1))));
                } else {
                    tracing::warn!(attempt = %outgoing.attempt_id, "in-doubt submit had no receipt; sending again");
                    to_send.push(outgoing);
                }
            }
        }
    }
    let concurrency = to_send.len().max(1);
    if !to_send.is_empty() {
        channel.prepare(&to_send).await;
    }
    let outcomes: Vec<(Outgoing, SendReply)> = futures::stream::iter(to_send)
        .map(|o| {
            let channel = channel.clone();
            async move {
                let r = channel.send(&o).await;
                (o, r)
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let mut results = Vec::with_capacity(outcomes.len());
    for (o, r) in outcomes {
        let (tag, deliveries) = tag_of(&o.attempt_id);
        let (outcome, n) = match r {
            Ok((provider_ids, raw_status)) => {
                metrics::counter!("hermod_messages_total", "stage" => stage, "status" => "sent")
                    .increment(1);
                (
                    SendOutcome::Sent {
                        provider_ids,
                        raw_status,
                    },
                    Next::Ack,
                )
            }
            Err(SendError::Permanent { code }) => {
                metrics::counter!("hermod_messages_total", "stage" => stage, "status" => "failed")
                    .increment(1);
                (
                    SendOutcome::Failed {
                        code,
                        permanent: true,
                    },
                    Next::Ack,
                )
            }
            Err(SendError::InDoubt { code }) => {
                // Nothing to record: the attempt stays `sending`, and the job comes back
                // as in doubt, to be resolved by a receipt or resent after the grace.
                tracing::debug!(attempt = %o.attempt_id, %code, "send outcome unknown");
                metrics::counter!("hermod_messages_total", "stage" => stage, "status" => "in_doubt")
                    .increment(1);
                next.push((tag, Next::Retry(Duration::from_secs(1))));
                continue;
            }
            Err(SendError::Transient { code, retry_after }) => {
                tracing::debug!(attempt = %o.attempt_id, %code, deliveries, "transient send failure");
                if deliveries >= p.settings.max_send_deliveries {
                    metrics::counter!("hermod_messages_total", "stage" => stage, "status" => "failed").increment(1);
                    (
                        SendOutcome::Failed {
                            code,
                            permanent: false,
                        },
                        Next::Ack,
                    )
                } else {
                    metrics::counter!("hermod_messages_total", "stage" => stage, "status" => "retry").increment(1);
                    let wait = retry_after.unwrap_or_else(|| backoff(deliveries));
                    (SendOutcome::Retry { code }, Next::Retry(wait))
                }
            }
        };
        results.push(SendResult {
            attempt_id: o.attempt_id.clone(),
            outcome,
        });
        next.push((tag, n));
    }
    if !results.is_empty() {
        p.store.record_sends(&results).await?;
    }
    let acks: Vec<i64> = next
        .iter()
        .filter(|(_, n)| matches!(n, Next::Ack))
        .map(|(t, _)| *t)
        .collect();
    p.queue.ack(queue, &acks).await?;
    let retries: Vec<(i64, Duration)> = next
        .iter()
        .filter_map(|(t, n)| match n {
            Next::Retry(d) => Some((*t, *d)),
            Next::Ack => None,
        })
        .collect();
    p.queue.retry(queue, &retries).await
}
