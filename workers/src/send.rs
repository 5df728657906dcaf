use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tracing::Instrument;

use hermod_core::model::{Claim, Delivery, Job, Outgoing, ReceiptTiming, SendOutcome, SendResult};
use hermod_core::ports::{Channel, ChannelError, PortError};
use hermod_core::{AttemptId, now_ms};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::{Pipeline, backoff, pause};

/// Records of one batch at most.
const RECORD_MAX: usize = 512;

type SendReply = Result<(Vec<String>, String), ChannelError>;

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
    let claims = p.dispatch.claim_attempts(&ids).await?;
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
    let now = now_ms();
    let looked = futures::stream::iter(in_doubt)
        .map(|(o, since)| {
            let mut look = channel.in_doubt_look(&o, since);
            let deadline = in_doubt_deadline(&p.settings, look.timing, since);
            look.last_look = now >= deadline;
            async move {
                let resolved = p.dispatch.resolve_in_doubt(&o, &look).await;
                (o, deadline, resolved)
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    for (outgoing, deadline, resolved) in looked {
        let (tag, _) = tag_of(&outgoing.attempt_id);
        if resolved? {
            tracing::info!(attempt = %outgoing.attempt_id, "in-doubt submit resolved by its receipt");
            decided.push(Done::Ack(tag));
        } else if now < deadline {
            let wait = u64::try_from(deadline - now).unwrap_or(0).clamp(200, 1000);
            decided.push(Done::Retry(tag, Duration::from_millis(wait)));
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
        // One span per submit: what the channel logs about it names the message.
        let span = tracing::info_span!(
            "send",
            channel = channel.kind().as_str(),
            message_id = %o.message_id,
            attempt = %o.attempt_id,
        );
        tokio::spawn(
            async move {
                let reply = channel.send(&o).await;
                match &reply {
                    Ok((ids, raw)) => tracing::debug!(provider_ids = ?ids, %raw, "submitted"),
                    Err(e) => tracing::debug!(error = %e, "not submitted"),
                }
                let _ = done.send(Done::Sent {
                    outgoing: Box::new(o),
                    reply,
                    tag,
                    deliveries,
                });
                drop(permit);
            }
            .instrument(span),
        );
    }
    Ok(())
}

/// When an in-doubt submit (claimed at `since`) is sent again if no receipt has
/// recognised it. Once the channel has timed its receipts: from the later of the claim
/// and the moment receipts could flow again (an SMSC holds them while no receiver is
/// bound), three times the slowest recent receipt plus a second, at least
/// `in_doubt_min_grace`, at most `in_doubt_grace`. Before that: `in_doubt_grace`
/// after the claim, and at least `in_doubt_min_grace` after receipts could flow.
fn in_doubt_deadline(s: &crate::WorkerSettings, timing: Option<ReceiptTiming>, since: i64) -> i64 {
    let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    let (cap, min) = (ms(s.in_doubt_grace), ms(s.in_doubt_min_grace));
    match timing {
        None => since.saturating_add(cap),
        Some(t) => match t.slowest_recent {
            Some(slow) => {
                let wait = ms(slow)
                    .saturating_mul(3)
                    .saturating_add(1000)
                    .clamp(min.min(cap), cap);
                since.max(t.receipts_since).saturating_add(wait)
            }
            None => since
                .saturating_add(cap)
                .max(t.receipts_since.saturating_add(min.min(cap))),
        },
    }
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
            && let Err(e) = p.dispatch.record_sends(&results).await
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
            Err(ChannelError::Permanent { code }) => {
                metrics::counter!("hermod_messages_total", "stage" => stage, "status" => "failed")
                    .increment(1);
                acks.push(tag);
                SendOutcome::Failed {
                    code,
                    permanent: true,
                }
            }
            Err(ChannelError::InDoubt { code }) => {
                // Nothing to record: the attempt stays `sending`, and the job comes back
                // as in doubt, to be resolved by a receipt or resent after the grace.
                tracing::debug!(attempt = %o.attempt_id, %code, "send outcome unknown");
                metrics::counter!("hermod_messages_total", "stage" => stage, "status" => "in_doubt")
                    .increment(1);
                retries.push((tag, Duration::from_secs(1)));
                continue;
            }
            Err(ChannelError::Transient { code, retry_after }) => {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_doubt_submits_wait_for_receipts_as_long_as_they_take() {
        let s = crate::WorkerSettings::default(); // 2 s .. 30 s
        let t = |since, slow: Option<u64>| {
            Some(ReceiptTiming {
                receipts_since: since,
                slowest_recent: slow.map(Duration::from_millis),
            })
        };
        assert_eq!(in_doubt_deadline(&s, None, 1_000), 31_000, "nothing known");
        assert_eq!(
            in_doubt_deadline(&s, t(0, Some(100)), 1_000),
            3_000,
            "quick receipts"
        );
        assert_eq!(in_doubt_deadline(&s, t(0, Some(2_000)), 1_000), 8_000);
        assert_eq!(
            in_doubt_deadline(&s, t(0, Some(60_000)), 1_000),
            31_000,
            "capped"
        );
        assert_eq!(
            in_doubt_deadline(&s, t(5_000, Some(100)), 1_000),
            7_000,
            "counted from the rebind"
        );
        assert_eq!(
            in_doubt_deadline(&s, t(5_000, None), 1_000),
            31_000,
            "not timed yet"
        );
        assert_eq!(
            in_doubt_deadline(&s, t(40_000, None), 1_000),
            42_000,
            "never before receipts could come"
        );
    }
}
