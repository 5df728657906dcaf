use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use hermod_core::model::{Claim, Delivery, Job, Outgoing, SendOutcome, SendResult};
use hermod_core::ports::{Channel, PortError, SendError};
use hermod_core::{AttemptId, now_ms};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::{Pipeline, backoff, pause};

/// Records of one batch at most.
const RECORD_MAX: usize = 512;

type SendReply = Result<(Vec<String>, String), SendError>;

/// What became of a job: submitted (its outcome to record), or nothing to submit.
enum Done {
    Sent {
        outgoing: Box<Outgoing>,
        reply: SendReply,
        tag: i64,
        deliveries: i32,
    },
    Ack(i64),
    Retry(i64, Duration),
}

/// A channel's sender: claims send jobs, submits them with up to `senders × batch` in
/// flight (the channel paces and windows them) and records the outcomes in batches as
/// they come, acknowledging each job only once its outcome is stored. No submit waits
/// for a slower one of its batch.
pub(crate) async fn run(p: Pipeline, channel: Arc<dyn Channel>, cancel: CancellationToken) {
    let capacity = p.settings.senders.max(1) * p.settings.batch.max(1);
    let room = Arc::new(Semaphore::new(capacity));
    let (done_tx, done_rx) = mpsc::unbounded_channel::<Done>();
    let recorder = tokio::spawn(record(p.clone(), channel.clone(), done_rx));
    while !cancel.is_cancelled() {
        // No bind up in this process (down, or held by another worker): leave the jobs
        // to a process that can send them.
        if !channel.ready() {
            pause(&cancel, Duration::from_millis(200)).await;
            continue;
        }
        // Wait for room in the pipeline.
        if room.available_permits() == 0 {
            tokio::select! {
                _ = cancel.cancelled() => break,
                permit = room.acquire() => drop(permit),
            }
            continue;
        }
        let want = room.available_permits().min(p.settings.batch.max(1));
        if let Err(e) = step(&p, &channel, want, &room, &done_tx).await {
            tracing::error!(error = %e, "send step failed");
            pause(&cancel, Duration::from_millis(500)).await;
        }
    }
    // Let what is in flight finish and be recorded.
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        room.acquire_many(u32::try_from(capacity).unwrap_or(u32::MAX)),
    )
    .await;
    drop(done_tx);
    let _ = recorder.await;
}

async fn step(
    p: &Pipeline,
    channel: &Arc<dyn Channel>,
    want: usize,
    room: &Arc<Semaphore>,
    done: &mpsc::UnboundedSender<Done>,
) -> Result<(), PortError> {
    let queue = channel.kind().queue();
    let batch = p
        .queue
        .receive(queue, want, Duration::from_millis(500))
        .await?;
    if batch.is_empty() {
        return Ok(());
    }
    let tags: Vec<i64> = batch.iter().map(|d| d.tag).collect();
    let r = claim_and_send(p, channel, batch, room, done).await;
    if r.is_err() {
        // The batch goes back (RabbitMQ would hold it until the connection closes).
        // Claims are idempotent; a submit already made comes back in doubt and is
        // resolved as such.
        let back: Vec<(i64, Duration)> =
            tags.iter().map(|t| (*t, Duration::from_secs(1))).collect();
        let _ = p.queue.retry(queue, &back).await;
    }
    r
}

async fn claim_and_send(
    p: &Pipeline,
    channel: &Arc<dyn Channel>,
    batch: Vec<Delivery>,
    room: &Arc<Semaphore>,
    done: &mpsc::UnboundedSender<Done>,
) -> Result<(), PortError> {
    // What becomes of jobs that are not sent: handed on only once nothing here can
    // fail any more (a failure hands the whole batch back).
    let mut decided: Vec<Done> = Vec::new();
    let mut tags: HashMap<String, (i64, i32)> = HashMap::new();
    let mut ids = Vec::new();
    for d in &batch {
        if let Job::SendV1 { attempt_id, .. } = &d.job
            && let Some(id) = AttemptId::parse(attempt_id)
        {
            ids.push(id);
            tags.insert(attempt_id.clone(), (d.tag, d.deliveries));
            continue;
        }
        decided.push(Done::Ack(d.tag));
    }
    let claims = p.store.claim_attempts(&ids).await?;
    let tag_of = |id: &AttemptId| tags.get(id.as_str()).copied().unwrap_or((0, 1));
    let mut to_send: Vec<Outgoing> = Vec::new();
    let mut in_doubt: Vec<(Outgoing, i64)> = Vec::new();
    for c in claims {
        match c {
            Claim::Claimed(o) => to_send.push(o),
            Claim::Done(id) => decided.push(Done::Ack(tag_of(&id).0)),
            Claim::InDoubt { outgoing, .. } if channel.idempotent_sends() => {
                to_send.push(outgoing);
            }
            Claim::InDoubt { outgoing, since } => in_doubt.push((outgoing, since)),
        }
    }
    // A submit may have reached the provider before a crash: its receipt may resolve
    // it. Resend only when none came in time. (After a crash, a whole window of them
    // comes back at once: looked at side by side.)
    let grace = i64::try_from(p.settings.in_doubt_grace.as_millis()).unwrap_or(0);
    let looked = futures::stream::iter(in_doubt)
        .map(|(o, since)| async move {
            let resolved = p.store.resolve_in_doubt(&o).await;
            (o, since, resolved)
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    for (outgoing, since, resolved) in looked {
        let (tag, _) = tag_of(&outgoing.attempt_id);
        if resolved? {
            tracing::info!(attempt = %outgoing.attempt_id, "in-doubt submit resolved by its receipt");
            decided.push(Done::Ack(tag));
        } else if now_ms() - since < grace {
            decided.push(Done::Retry(tag, Duration::from_secs(1)));
        } else {
            tracing::warn!(attempt = %outgoing.attempt_id, "in-doubt submit had no receipt; sending again");
            to_send.push(outgoing);
        }
    }
    for d in decided {
        let _ = done.send(d);
    }
    if to_send.is_empty() {
        return Ok(());
    }
    channel.prepare(&to_send).await;
    for o in to_send {
        let Ok(permit) = room.clone().acquire_owned().await else {
            break;
        };
        let (tag, deliveries) = tag_of(&o.attempt_id);
        let (channel, done) = (channel.clone(), done.clone());
        tokio::spawn(async move {
            let reply = channel.send(&o).await;
            let _ = done.send(Done::Sent {
                outgoing: Box::new(o),
                reply,
                tag,
                deliveries,
            });
            drop(permit);
        });
    }
    Ok(())
}

/// Stores outcomes in batches (whatever finished while the last batch was stored),
/// then acknowledges or retries their jobs.
async fn record(p: Pipeline, channel: Arc<dyn Channel>, mut rx: mpsc::UnboundedReceiver<Done>) {
    let queue = channel.kind().queue();
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < RECORD_MAX {
            match rx.try_recv() {
                Ok(d) => batch.push(d),
                Err(_) => break,
            }
        }
        let (results, acks, retries) = outcomes(&p, channel.kind().as_str(), batch);
        if !results.is_empty()
            && let Err(e) = p.store.record_sends(&results).await
        {
            // The jobs come back; their attempts are in doubt and resolved as such.
            tracing::error!(error = %e, n = results.len(), "recording submit outcomes failed");
            let back: Vec<(i64, Duration)> = acks
                .iter()
                .map(|t| (*t, Duration::from_secs(1)))
                .chain(retries)
                .collect();
            if let Err(e) = p.queue.retry(queue, &back).await {
                tracing::error!(error = %e, "handing send jobs back failed");
            }
            continue;
        }
        if let Err(e) = p.queue.ack(queue, &acks).await {
            tracing::error!(error = %e, "acknowledging send jobs failed");
        }
        if let Err(e) = p.queue.retry(queue, &retries).await {
            tracing::error!(error = %e, "retrying send jobs failed");
        }
    }
}

/// The results to record and what to do with each job.
fn outcomes(
    p: &Pipeline,
    stage: &'static str,
    batch: Vec<Done>,
) -> (Vec<SendResult>, Vec<i64>, Vec<(i64, Duration)>) {
    let mut results = Vec::with_capacity(batch.len());
    let mut acks = Vec::new();
    let mut retries = Vec::new();
    for d in batch {
        let (o, r, tag, deliveries) = match d {
            Done::Ack(tag) => {
                acks.push(tag);
                continue;
            }
            Done::Retry(tag, wait) => {
                retries.push((tag, wait));
                continue;
            }
            Done::Sent {
                outgoing,
                reply,
                tag,
                deliveries,
            } => (outgoing, reply, tag, deliveries),
        };
        let outcome = match r {
            Ok((provider_ids, raw_status)) => {
                metrics::counter!("hermod_messages_total", "stage" => stage, "status" => "sent")
                    .increment(1);
                acks.push(tag);
                SendOutcome::Sent {
                    provider_ids,
                    raw_status,
                }
            }
            Err(SendError::Permanent { code }) => {
                metrics::counter!("hermod_messages_total", "stage" => stage, "status" => "failed")
                    .increment(1);
                acks.push(tag);
                SendOutcome::Failed {
                    code,
                    permanent: true,
                }
            }
            Err(SendError::InDoubt { code }) => {
                // Nothing to record: the attempt stays `sending`, and the job comes back
                // as in doubt, to be resolved by a receipt or resent after the grace.
                tracing::debug!(attempt = %o.attempt_id, %code, "send outcome unknown");
                metrics::counter!("hermod_messages_total", "stage" => stage, "status" => "in_doubt")
                    .increment(1);
                retries.push((tag, Duration::from_secs(1)));
                continue;
            }
            Err(SendError::Transient { code, retry_after }) => {
                tracing::debug!(attempt = %o.attempt_id, %code, deliveries, "transient send failure");
                if deliveries >= p.settings.max_send_deliveries {
                    metrics::counter!("hermod_messages_total", "stage" => stage, "status" => "failed").increment(1);
                    acks.push(tag);
                    SendOutcome::Failed {
                        code,
                        permanent: false,
                    }
                } else {
                    metrics::counter!("hermod_messages_total", "stage" => stage, "status" => "retry").increment(1);
                    retries.push((tag, retry_after.unwrap_or_else(|| backoff(deliveries))));
                    SendOutcome::Retry { code }
                }
            }
        };
        results.push(SendResult {
            attempt_id: o.attempt_id.clone(),
            outcome,
        });
    }
    (results, acks, retries)
}
