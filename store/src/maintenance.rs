//! Housekeeping: records past their retention deleted in small batches.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use hermod_core::now_ms;
use hermod_core::ports::PortResult;

use crate::sql::schema::*;
use crate::{SqlStore, backend, write_tx};

/// Deletes up to `$batch` rows of `$table` whose `$at` is older than `$older_than`,
/// picked by `$key` (a row sharing the key goes only if it is as old).
macro_rules! purge_before {
    ($db:expr, $table:ident, $at:ident, $key:ident, $older_than:expr, $batch:expr) => {{
        let cutoff = now_ms() - i64::try_from($older_than.as_millis()).unwrap_or(i64::MAX);
        let batch: i64 = $batch;
        write_tx!($db, |c| {
            let old: Vec<String> = $table::table
                .filter($table::$at.lt(cutoff))
                .select($table::$key)
                .limit(batch)
                .load(c)
                .await?;
            if old.is_empty() {
                return Ok(0);
            }
            diesel::delete(
                $table::table
                    .filter($table::$at.lt(cutoff))
                    .filter($table::$key.eq_any(&old)),
            )
            .execute(c)
            .await
        })
        .map_err(backend)
    }};
}

impl SqlStore {
    /// Deletes up to `batch` idempotency records older than `older_than`; returns how
    /// many (call again while it returns `batch`). A key past its retention can be
    /// used again as a new request. (The same key of another tenant goes too only if
    /// it is as old.)
    pub async fn purge_idempotency(
        &self,
        older_than: std::time::Duration,
        batch: i64,
    ) -> PortResult<usize> {
        purge_before!(
            &self.db,
            idempotency_keys,
            created_at,
            key,
            older_than,
            batch
        )
    }

    /// Deletes up to `batch` provider-event markers (RBM event ids seen) older than
    /// `older_than`, like [`Self::purge_idempotency`]. A provider retries an event
    /// for days (RBM: up to 7), not for ever.
    pub async fn purge_event_markers(
        &self,
        older_than: std::time::Duration,
        batch: i64,
    ) -> PortResult<usize> {
        purge_before!(
            &self.db,
            webhook_events,
            received_at,
            event_id,
            older_than,
            batch
        )
    }

    /// Deletes up to `batch` kept receipts (receipts no attempt claimed) older than
    /// `older_than`, like [`Self::purge_idempotency`]. One is adopted within seconds
    /// when it came before its submit response, or resolves an in-doubt submit within
    /// `in_doubt_grace_secs`; one still kept a day later belongs to nothing here.
    pub async fn purge_orphan_receipts(
        &self,
        older_than: std::time::Duration,
        batch: i64,
    ) -> PortResult<usize> {
        purge_before!(
            &self.db,
            orphan_receipts,
            received_at,
            provider_id,
            older_than,
            batch
        )
    }
}
