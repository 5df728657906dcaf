//! The audit stage: chains pending facts as they come, signs moved heads every
//! `checkpoint_interval`, and shreds content past its tenant's retention period.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hermod_core::audit::{AuditLog, CheckpointSigning, chain_all, checkpoint_all};
use tokio_util::sync::CancellationToken;

/// How often pending facts are looked for.
const POLL: Duration = Duration::from_millis(250);
/// Messages shredded per round.
const SHRED_BATCH: usize = 1000;

pub async fn run(
    log: Arc<dyn AuditLog>,
    signer: Arc<dyn CheckpointSigning>,
    checkpoint_every: Duration,
    retention_every: Duration,
    cancel: CancellationToken,
) {
    let mut last_checkpoint = Instant::now();
    let mut last_sweep: Option<Instant> = None;
    loop {
        if let Err(e) = chain_all(log.as_ref()).await {
            tracing::warn!(error = %e, "chaining audit facts failed; retrying");
        }
        if last_checkpoint.elapsed() >= checkpoint_every {
            last_checkpoint = Instant::now();
            match checkpoint_all(log.as_ref(), signer.as_ref()).await {
                Ok(n) if n > 0 => tracing::debug!(heads = n, "audit checkpoints signed"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "signing audit checkpoints failed"),
            }
        }
        if last_sweep.is_none_or(|t| t.elapsed() >= retention_every) {
            last_sweep = Some(Instant::now());
            loop {
                match log.shred_expired(SHRED_BATCH).await {
                    Ok(n) if n > 0 => {
                        tracing::info!(messages = n, "shredded content past retention");
                        if n < SHRED_BATCH {
                            break;
                        }
                    }
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "retention sweep failed");
                        break;
                    }
                }
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(POLL) => {}
        }
    }
    // What was recorded until the end is chained and signed before exit.
    let _ = chain_all(log.as_ref()).await;
    let _ = checkpoint_all(log.as_ref(), signer.as_ref()).await;
}
