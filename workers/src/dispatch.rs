use std::time::Duration;

use std::collections::HashMap;

use hermod_core::MessageId;
use hermod_core::model::{ChannelKind, Job, queues};
use hermod_core::plan::{Assessment, Candidate, Plan, PlanStep};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::{Pipeline, pause};

/// Plans the first attempt of each accepted message and hands it to its channel queue.
pub(crate) async fn run(p: Pipeline, cancel: CancellationToken) {
    while !cancel.is_cancelled() {
        if let Err(e) = step(&p).await {
            tracing::error!(error = %e, "dispatch step failed");
            pause(&cancel, Duration::from_millis(500)).await;
        }
    }
}

async fn step(p: &Pipeline) -> Result<(), hermod_core::ports::PortError> {
    let batch = p
        .queue
        .receive(
            queues::DISPATCH,
            p.settings.batch,
            Duration::from_millis(500),
        )
        .await?;
    if batch.is_empty() {
        return Ok(());
    }
    let tags: Vec<i64> = batch.iter().map(|d| d.tag).collect();
    let span = tracing::info_span!("dispatch", jobs = batch.len());
    if let Err(e) = plan_and_forward(p, &batch).instrument(span).await {
        // Hand the batch back (RabbitMQ would otherwise hold it until the connection
        // closes); planning is idempotent.
        let back: Vec<(i64, Duration)> =
            tags.iter().map(|t| (*t, Duration::from_secs(1))).collect();
        let _ = p.queue.retry(queues::DISPATCH, &back).await;
        return Err(e);
    }
    p.queue.ack(queues::DISPATCH, &tags).await
}

async fn plan_and_forward(
    p: &Pipeline,
    batch: &[hermod_core::model::Delivery],
) -> Result<(), hermod_core::ports::PortError> {
    let mut ids = Vec::with_capacity(batch.len());
    for d in batch {
        if let Job::DispatchV1 { message_id, .. } = &d.job
            && let Some(id) = MessageId::parse(message_id)
        {
            {
                ids.push(id);
            }
        }
    }
    let candidates = p.dispatch.dispatch_candidates(&ids).await?;
    let plans = plan(p, &candidates).await;
    let planned = p.dispatch.plan_attempts(&ids, &plans).await?;
    for (message, plan) in &plans {
        tracing::debug!(message_id = %message, channel = plan.first_channel().as_str(), "planned");
    }
    for kind in ChannelKind::ALL.iter().copied() {
        let jobs: Vec<Job> = planned
            .iter()
            .filter(|(_, c, _)| *c == kind)
            .map(|(attempt, _, high)| Job::SendV1 {
                attempt_id: attempt.to_string(),
                high: *high,
            })
            .collect();
        if jobs.is_empty() {
            continue;
        }
        p.queue.publish(kind.queue(), &jobs).await?;
        metrics::counter!("hermod_messages_total", "stage" => "dispatch", "status" => "queued")
            .increment(jobs.len() as u64);
    }
    Ok(())
}

/// Each candidate's plan: every channel of its order, kept or skipped by what that
/// channel knows of the recipient (one assessment call per channel and batch).
async fn plan(p: &Pipeline, candidates: &[Candidate]) -> Vec<(MessageId, Plan)> {
    let mut verdicts: HashMap<ChannelKind, Vec<Assessment>> = HashMap::new();
    for kind in ChannelKind::ALL.iter().copied() {
        let wanted: Vec<Candidate> = candidates
            .iter()
            .filter(|c| c.channels.contains(&kind))
            .cloned()
            .collect();
        if wanted.is_empty() {
            continue;
        }
        let assessed = match p.channel(kind) {
            Some(ch) => ch.assess(&wanted).await,
            None => wanted
                .iter()
                .map(|_| Assessment::skip("channel_not_configured"))
                .collect(),
        };
        verdicts.insert(kind, assessed);
    }
    let mut cursor: HashMap<ChannelKind, usize> = HashMap::new();
    candidates
        .iter()
        .map(|c| {
            let steps = c
                .channels
                .iter()
                .map(|kind| {
                    let i = cursor.entry(*kind).or_insert(0);
                    let a = verdicts
                        .get(kind)
                        .and_then(|v| v.get(*i))
                        .cloned()
                        .unwrap_or_else(|| Assessment::keep("unchecked"));
                    *i += 1;
                    PlanStep {
                        channel: *kind,
                        kept: a.kept,
                        reason: a.reason,
                    }
                })
                .collect();
            (
                c.message_id.clone(),
                Plan {
                    steps,
                    fallback: c.policy,
                },
            )
        })
        .collect()
}
