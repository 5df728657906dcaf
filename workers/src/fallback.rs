//! The fallback stage: due timers (no positive receipt in time) withdraw the rich
//! message, then move the message to the next channel of its plan. Timers live in the
//! database, so they survive restarts; each is leased and fires once.

use std::time::Duration;

use futures::StreamExt;
use hermod_core::plan::{DueFallback, Duplicates, Withdrawal};
use hermod_core::ports::{ChannelError, PortError};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::{Pipeline, backoff, pause};

/// Withdrawal attempts before the fallback goes ahead anyway: a message late twice is
/// better than a message never delivered.
const MAX_WITHDRAW_TRIES: i32 = 10;

pub(crate) async fn run(p: Pipeline, cancel: CancellationToken) {
    while !cancel.is_cancelled() {
        match step(&p).await {
            Ok(0) => pause(&cancel, p.settings.fallback_poll).await,
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "fallback step failed");
                pause(&cancel, Duration::from_secs(1)).await;
            }
        }
    }
}

async fn step(p: &Pipeline) -> Result<usize, PortError> {
    let due = p
        .dispatch
        .due_fallbacks(64, Duration::from_secs(60))
        .await?;
    let n = due.len();
    let results: Vec<Result<(), PortError>> = futures::stream::iter(due)
        .map(|d| {
            let span = tracing::info_span!(
                "fallback",
                message_id = %d.message_id,
                attempt = %d.attempt_id,
                channel = d.channel.as_str(),
            );
            fire(p, d).instrument(span)
        })
        .buffer_unordered(16)
        .collect()
        .await;
    for r in results {
        r?;
    }
    Ok(n)
}

async fn fire(p: &Pipeline, due: DueFallback) -> Result<(), PortError> {
    let outcome = if due.policy.duplicates == Duplicates::Allow {
        // One-time codes: the next channel goes at once; the rich message may still
        // arrive too.
        Ok(Withdrawal::NotSupported)
    } else {
        match p.channel(due.channel) {
            Some(ch) => ch.withdraw(&due).await,
            None => Err(ChannelError::Transient {
                code: "channel_not_in_this_process".into(),
                retry_after: None,
            }),
        }
    };
    let outcome = match outcome {
        Ok(w) => w,
        Err(e) if due.tries < MAX_WITHDRAW_TRIES => {
            tracing::warn!(attempt = %due.attempt_id, error = %e, tries = due.tries, "withdrawal failed; fallback postponed");
            return p
                .dispatch
                .postpone_fallback(&due.attempt_id, backoff(due.tries))
                .await;
        }
        Err(e) => {
            tracing::warn!(attempt = %due.attempt_id, error = %e, "withdrawal kept failing; falling back anyway");
            Withdrawal::NotSupported
        }
    };
    metrics::counter!("hermod_fallbacks_total", "channel" => due.channel.as_str(), "outcome" => match outcome {
        Withdrawal::Withdrawn => "withdrawn",
        Withdrawal::AlreadyDelivered => "already_delivered",
        Withdrawal::NotSupported => "not_withdrawn",
    })
    .increment(1);
    p.dispatch.fire_fallback(&due.attempt_id, outcome).await
}
