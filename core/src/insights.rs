//! What the console's overview shows: the last 24 hours of a tenant's traffic (or every
//! tenant's, for the operator).

use async_trait::async_trait;

use crate::TenantId;
use crate::ports::PortResult;

/// Messages of the last 24 hours per hour are counted exactly; the rest (channels,
/// funnel, fallback, failures, time to delivered) is computed over the newest
/// [`SAMPLE`] messages of the window, so the page stays fast at any volume.
pub const SAMPLE: i64 = 5_000;

/// One hour of the window.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Hour {
    /// Its start, Unix ms.
    pub start: i64,
    /// Messages created in it, by their status now.
    pub by_status: Vec<(String, i64)>,
    /// Sampled messages created in it, by the channel of their last attempt.
    pub by_channel: Vec<(String, i64)>,
}

/// One channel's funnel: attempts on it and how far they got.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Funnel {
    pub channel: String,
    pub attempted: i64,
    pub sent: i64,
    pub delivered: i64,
    pub read: i64,
    pub failed: i64,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Overview {
    /// The window's start (Unix ms): 24 hours before now.
    pub since: i64,
    /// Messages created in the window.
    pub messages: i64,
    /// How many of them the sampled figures are computed over.
    pub sampled: i64,
    /// 24 hours, oldest first.
    pub hours: Vec<Hour>,
    /// Sampled messages by the channel of their last attempt (`none`: no attempt yet).
    pub by_channel: Vec<(String, i64)>,
    pub funnel: Vec<Funnel>,
    /// Sampled messages that tried a rich channel (RCS or app) first …
    pub rich_first: i64,
    /// … and of those, the ones that fell back to SMS.
    pub fell_back: i64,
    /// Time from accepted to delivered of sampled messages whose status is delivered
    /// (ms): median and 95th percentile.
    pub delivered_p50_ms: Option<i64>,
    pub delivered_p95_ms: Option<i64>,
    /// Reasons of failed, expired and rejected sampled messages, most frequent first.
    pub failures: Vec<(String, i64)>,
}

/// The overview's queries.
#[async_trait]
pub trait Insights: Send + Sync {
    /// The 24 hours before `now` of `tenant` (None: every tenant).
    async fn overview(&self, tenant: Option<&TenantId>, now: i64) -> PortResult<Overview>;
}

/// The smallest message id generated at `ms` or later (ids are UUIDv7: they start
/// with their creation time), for index-only time ranges over message ids.
pub fn message_id_at(ms: i64) -> String {
    format!("msg_{:012x}", ms.max(0))
}

/// The `q`-quantile (0..=1) of sorted values.
pub fn quantile(sorted: &[i64], q: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let last = sorted.len() - 1;
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let i = ((last as f64) * q).round() as usize;
    sorted.get(i.min(last)).copied()
}

#[cfg(test)]
mod tests {
    use super::{message_id_at, quantile};

    #[test]
    fn message_ids_sort_by_their_time() {
        let before = message_id_at(crate::now_ms());
        let id = crate::MessageId::generate().to_string();
        let after = message_id_at(crate::now_ms() + 1);
        assert!(
            before.as_str() <= id.as_str() && id.as_str() < after.as_str(),
            "{before} {id} {after}"
        );
    }

    #[test]
    fn quantiles_of_sorted_values() {
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&[7], 0.95), Some(7));
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(quantile(&v, 0.5), Some(51));
        assert_eq!(quantile(&v, 0.95), Some(95));
    }
}
