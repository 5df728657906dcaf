//! The pipeline stages, generic over the traits in `hermod_core::ports`:
//! dispatch (plan an attempt per message), a sender per channel (claim, submit, record),
//! receipts (batched into the store before they are acknowledged), and a sampler that
//! publishes queue depth (messages by stage and status are counters, not a table scan).

pub mod audit;
mod dispatch;
mod fallback;
mod inbound;
mod receipts;
pub mod relay;
mod send;
pub mod twiml;
mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use hermod_core::model::{ChannelKind, ChannelSet, queues};
use hermod_core::ports::{Channel, Dispatch, Queue};
use hermod_core::webhook::{WebhookPoster, Webhooks};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use inbound::InboundHandler;
pub use receipts::ReceiptBatcher;

/// Tuning for the stages.
#[derive(Clone, Debug)]
pub struct WorkerSettings {
    /// Jobs taken per batch.
    pub batch: usize,
    /// Submits in flight per channel: `senders × batch`.
    pub senders: usize,
    /// The longest an in-doubt submit waits for its receipt before it is sent again.
    pub in_doubt_grace: Duration,
    /// The shortest, once the channel has measured how soon its receipts come.
    pub in_doubt_min_grace: Duration,
    /// Deliveries of a send job before the attempt fails.
    pub max_send_deliveries: i32,
    /// How often the fallback stage looks for due timers when there were none.
    pub fallback_poll: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            batch: 128,
            senders: 4,
            in_doubt_grace: Duration::from_secs(30),
            in_doubt_min_grace: Duration::from_secs(2),
            max_send_deliveries: 50,
            fallback_poll: Duration::from_millis(500),
        }
    }
}

/// Which stages a process runs (`hermod worker --stages dispatch,sms`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stages {
    pub dispatch: bool,
    /// The channels whose send stage runs here.
    pub channels: ChannelSet,
    /// Due fallback timers.
    pub fallback: bool,
    /// Customer webhook deliveries.
    pub webhooks: bool,
    /// The audit chain, its checkpoints and retention.
    pub audit: bool,
}

impl Stages {
    /// Every stage.
    pub fn all() -> Stages {
        Stages {
            dispatch: true,
            channels: ChannelSet::all(),
            fallback: true,
            webhooks: true,
            audit: true,
        }
    }

    /// No stage.
    pub const NONE: Stages = Stages {
        dispatch: false,
        channels: ChannelSet::NONE,
        fallback: false,
        webhooks: false,
        audit: false,
    };

    /// The stages' names: `dispatch`, each channel's, `fallback`, `webhooks`,
    /// `audit`.
    pub fn names() -> Vec<&'static str> {
        let mut v = vec!["dispatch"];
        v.extend(ChannelKind::ALL.iter().map(|k| k.as_str()));
        v.extend(["fallback", "webhooks", "audit"]);
        v
    }

    /// Adds the stage called `name`; false when there is none.
    pub fn add(&mut self, name: &str) -> bool {
        match name {
            "dispatch" => self.dispatch = true,
            "fallback" => self.fallback = true,
            "webhooks" => self.webhooks = true,
            "audit" => self.audit = true,
            other => match ChannelKind::parse(other) {
                Some(k) => self.channels = self.channels.with(k),
                None => return false,
            },
        }
        true
    }
}

/// Everything a stage needs.
#[derive(Clone)]
pub struct Pipeline {
    /// The pipeline's writes (plan, claim, record, receipts, fallback).
    pub dispatch: Arc<dyn Dispatch>,
    pub queue: Arc<dyn Queue>,
    /// The channels this process has: to send with (where their stage runs here),
    /// and to assess recipients and withdraw messages (dispatch, fallback).
    pub channels: Vec<Arc<dyn Channel>>,
    /// Customer webhook deliveries and where they are POSTed.
    pub webhooks: Option<(Arc<dyn Webhooks>, Arc<dyn WebhookPoster>)>,
    pub settings: WorkerSettings,
}

impl Pipeline {
    /// The channel of `kind`, when this process has it.
    pub fn channel(&self, kind: ChannelKind) -> Option<&Arc<dyn Channel>> {
        self.channels.iter().find(|c| c.kind() == kind)
    }

    /// Starts every stage; they stop when `cancel` fires.
    pub fn spawn(&self, cancel: CancellationToken) -> Vec<JoinHandle<()>> {
        self.spawn_stages(Stages::all(), cancel)
    }

    /// Starts the chosen stages.
    pub fn spawn_stages(&self, stages: Stages, cancel: CancellationToken) -> Vec<JoinHandle<()>> {
        let mut tasks = Vec::new();
        if stages.dispatch {
            tasks.push(tokio::spawn(dispatch::run(self.clone(), cancel.clone())));
        }
        if stages.fallback {
            tasks.push(tokio::spawn(fallback::run(self.clone(), cancel.clone())));
        }
        if stages.webhooks
            && let Some((store, poster)) = &self.webhooks
        {
            tasks.push(tokio::spawn(webhooks::run(
                store.clone(),
                poster.clone(),
                cancel.clone(),
            )));
        }
        let channels: Vec<&Arc<dyn Channel>> = self
            .channels
            .iter()
            .filter(|c| stages.channels.contains(c.kind()))
            .collect();
        for channel in &channels {
            tasks.push(tokio::spawn(send::run(
                self.clone(),
                (*channel).clone(),
                cancel.clone(),
            )));
        }
        if !channels.is_empty() {
            // Receipts that came before their submit was recorded.
            tasks.push(tokio::spawn(receipts::adopt_loop(
                self.dispatch.clone(),
                cancel.clone(),
            )));
        }
        tasks.push(tokio::spawn(sample(self.clone(), cancel)));
        tasks
    }
}

/// Backoff for the n-th delivery: 1 s, 2 s, 4 s ... capped at 5 minutes.
pub fn backoff(deliveries: i32) -> Duration {
    let exp = u32::try_from(deliveries.clamp(1, 20) - 1).unwrap_or(0);
    Duration::from_secs(1u64 << exp.min(8)).min(Duration::from_secs(300))
}

async fn pause(cancel: &CancellationToken, d: Duration) {
    tokio::select! {
        _ = cancel.cancelled() => {}
        _ = tokio::time::sleep(d) => {}
    }
}

async fn sample(p: Pipeline, cancel: CancellationToken) {
    while !cancel.is_cancelled() {
        let channels = ChannelKind::ALL.iter().map(|k| k.queue());
        for q in std::iter::once(queues::DISPATCH).chain(channels) {
            if let Ok(n) = p.queue.depth(q).await {
                metrics::gauge!("hermod_queue_depth", "queue" => q).set(n as f64);
            }
        }
        pause(&cancel, Duration::from_secs(2)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(4), Duration::from_secs(8));
        assert_eq!(backoff(40), Duration::from_secs(256));
    }
}
