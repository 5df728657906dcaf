//! The pipeline's writes, one module per step: planning attempts, claiming them,
//! recording submit outcomes, applying receipts (and those that came early), resolving
//! submits left in doubt, and fallback timers. Each call is one transaction over a
//! batch and idempotent, so a redelivered job does no harm; statuses only move forward
//! (`Status::can_advance_to`).

mod claim;
mod fallback;
mod in_doubt;
mod plan;
mod receipts;
mod record;
mod rows;

pub use rows::normalize_provider_id;

use async_trait::async_trait;
use hermod_core::model::*;
use hermod_core::ports::{Dispatch, PortResult};
use hermod_core::{AttemptId, MessageId};

use crate::SqlStore;

#[async_trait]
impl Dispatch for SqlStore {
    async fn dispatch_candidates(
        &self,
        ids: &[MessageId],
    ) -> PortResult<Vec<hermod_core::plan::Candidate>> {
        plan::dispatch_candidates(&self.db, &self.vault, ids).await
    }

    async fn plan_attempts(
        &self,
        ids: &[MessageId],
        plans: &[(MessageId, hermod_core::plan::Plan)],
    ) -> PortResult<Vec<(AttemptId, ChannelKind, bool)>> {
        plan::plan_attempts(&self.db, ids, plans).await
    }

    async fn due_fallbacks(
        &self,
        max: usize,
        lease: std::time::Duration,
    ) -> PortResult<Vec<hermod_core::plan::DueFallback>> {
        fallback::due_fallbacks(&self.db, &self.vault, max, lease).await
    }

    async fn fire_fallback(
        &self,
        attempt: &AttemptId,
        outcome: hermod_core::plan::Withdrawal,
    ) -> PortResult<()> {
        fallback::fire_fallback(&self.db, attempt, outcome).await
    }

    async fn postpone_fallback(
        &self,
        attempt: &AttemptId,
        delay: std::time::Duration,
    ) -> PortResult<()> {
        fallback::postpone_fallback(&self.db, attempt, delay).await
    }

    async fn claim_attempts(&self, ids: &[AttemptId]) -> PortResult<Vec<Claim>> {
        claim::claim_attempts(&self.db, &self.vault, ids).await
    }
    async fn record_sends(&self, results: &[SendResult]) -> PortResult<()> {
        record::record_sends(&self.db, results).await
    }
    async fn apply_receipts(&self, receipts: &[Receipt]) -> PortResult<()> {
        receipts::apply_receipts(&self.db, &self.vault, receipts).await
    }
    async fn adopt_orphans(&self) -> PortResult<usize> {
        receipts::adopt_orphans(&self.db).await
    }
    async fn resolve_in_doubt(&self, outgoing: &Outgoing, look: &InDoubtLook) -> PortResult<bool> {
        in_doubt::resolve_in_doubt(&self.db, &self.vault, outgoing, look).await
    }
}

#[cfg(test)]
mod tests {
    use super::rows::normalize_provider_id as n;

    #[test]
    fn a_receipt_counts_as_delivered_after_revoke_only_on_a_withdrawn_attempt_in_the_grace() {
        use super::rows::*;
        use hermod_core::Status;
        use hermod_core::model::ChannelKind;
        let now = 1_700_000_000_000;
        let mut a = attempt_row("msg_x", 1, ChannelKind::Rcs, now);
        a.status = Status::Canceled.as_str().to_owned();
        assert!(
            !delivered_after_revoke(&a, Status::Delivered, now),
            "not withdrawn"
        );
        a.error_code = Some(WITHDRAWN_FOR_FALLBACK.to_owned());
        assert!(delivered_after_revoke(&a, Status::Delivered, now));
        assert!(delivered_after_revoke(
            &a,
            Status::Read,
            now + REVOKE_GRACE_MS
        ));
        assert!(
            !delivered_after_revoke(&a, Status::Failed, now),
            "a failure is no delivery"
        );
        assert!(
            !delivered_after_revoke(&a, Status::Delivered, now + REVOKE_GRACE_MS + 1),
            "past the grace"
        );
    }

    #[test]
    fn submit_dates_fit_in_any_whole_quarter_hour_time_zone() {
        use super::in_doubt::submit_date_fits as fits;
        let since = 1_700_654_430_000; // 12:00:30 UTC
        let now = since + 20_000;
        let minute = |t: i64| t - t.rem_euclid(60_000);
        assert!(fits(minute(since), since, now), "UTC, to the minute");
        assert!(
            fits(minute(since) + 5 * 3_600_000 + 1_800_000, since, now),
            "UTC+5:30"
        );
        assert!(fits(minute(since) - 8 * 3_600_000, since, now), "UTC-8");
        assert!(
            !fits(minute(since) + 7 * 60_000, since, now),
            "seven minutes off"
        );
        assert!(
            !fits(minute(since) - 20 * 3_600_000, since, now),
            "beyond ±14 h"
        );
        assert!(
            fits(since - 3_600_000 * 3, since, since + 20 * 60_000),
            "a long window"
        );
    }

    #[test]
    fn provider_ids_meet_whatever_the_case_and_leading_zeros() {
        assert_eq!(n("0A1B"), "a1b");
        assert_eq!(n(" a1b "), "a1b");
        assert_eq!(n("0000"), "0");
        assert_eq!(n("smsc-1:000042"), "smsc-1:42");
        assert_eq!(n("SMSC-1:0x"), "smsc-1:x");
        assert_ne!(n("a:1"), n("b:1"), "connectors scope their ids");
    }
}
