//! Batch inserts for both backends: multi-row INSERTs on PostgreSQL (one round trip per
//! chunk), and on SQLite one cached prepared statement per row, run as one synchronous
//! section over the whole batch.

use diesel::QueryResult;
use diesel_async::AsyncPgConnection;

use super::conn::Lite;
use super::rows::*;
use super::schema::*;

pub(crate) trait BatchInsert {
    async fn insert_messages(&mut self, rows: Vec<MessageRow>) -> QueryResult<usize>;
    async fn insert_attempts(&mut self, rows: Vec<AttemptRow>) -> QueryResult<usize>;
    /// Events with the audit facts derived from them.
    async fn insert_events(&mut self, rows: Vec<NewEventRow>) -> QueryResult<usize> {
        let facts = super::chain::event_facts(&rows);
        self.insert_events_audited(rows, facts).await
    }
    async fn insert_jobs(&mut self, rows: Vec<NewJobRow>) -> QueryResult<usize>;
    /// Locks attempt rows for the rest of the transaction, in id order (so two writers
    /// never wait on each other in a circle). On PostgreSQL a status read after this is
    /// the latest one, and no concurrent transaction can change it before commit:
    /// without it, a submit outcome and a receipt recorded side by side (the receipt
    /// overtook the outcome, or resolved the attempt as in doubt) could each decide
    /// from the status before the other and the later commit would undo the earlier.
    /// SQLite has one writer at a time: nothing to lock. True when rows were locked
    /// (what was read before may have changed meanwhile).
    async fn lock_attempts(&mut self, ids: &[String]) -> QueryResult<bool>;
    /// Ignores provider ids already stored (a redelivered outcome).
    async fn insert_parts(&mut self, rows: Vec<PartRow>) -> QueryResult<usize>;
    /// Keeps the first copy of a receipt delivered twice.
    async fn insert_orphans(&mut self, rows: Vec<OrphanRow>) -> QueryResult<usize>;
    /// App inbox rows; one already there (same device and message) is left alone.
    async fn insert_envelopes(&mut self, rows: Vec<NewInboxRow>) -> QueryResult<usize>;
    /// Fallback timers; one already set for the attempt is left alone.
    async fn insert_timers(&mut self, rows: Vec<TimerRow>) -> QueryResult<usize>;
    async fn insert_deliveries(&mut self, rows: Vec<NewDeliveryRow>) -> QueryResult<usize>;
    /// SMPP outbox rows; one written before (same dedupe key) is left alone.
    async fn insert_outbox(&mut self, rows: Vec<NewOutboxRow>) -> QueryResult<usize>;
    /// Data keys; one already there (created concurrently) wins.
    async fn insert_subject_keys(&mut self, rows: Vec<SubjectKeyRow>) -> QueryResult<usize>;
    /// Facts for the audit chain: chained in this transaction on SQLite, through the
    /// outbox (and the audit stage) on PostgreSQL.
    async fn insert_audit(&mut self, rows: Vec<NewAuditRow>) -> QueryResult<usize>;
    async fn insert_audit_entries(&mut self, rows: Vec<AuditEntryRow>) -> QueryResult<usize>;
    /// Appends facts (in order) to their tenants' chains in this transaction: reads
    /// the heads, hashes, inserts the entries and moves the heads. The caller makes
    /// sure it is the only chainer (`ChainLock`, or SQLite's one writer).
    async fn append_audit(&mut self, facts: &[NewAuditRow]) -> QueryResult<usize>;
    /// Events with the audit facts given instead of the ones derived from them.
    async fn insert_events_audited(
        &mut self,
        rows: Vec<NewEventRow>,
        facts: Vec<NewAuditRow>,
    ) -> QueryResult<usize>;
}

/// Appends facts (in order) to their tenants' chains: reads the heads, hashes, inserts
/// the entries and moves the heads, all in the caller's transaction.
macro_rules! append_facts {
    ($c:expr, $facts:expr) => {{
        use diesel::{ExpressionMethods as _, QueryDsl as _};
        use diesel_async::RunQueryDsl as _;
        use $crate::sql::schema::audit_heads as h;
        let facts: &[$crate::sql::rows::NewAuditRow] = $facts;
        let tenants: std::collections::HashSet<&str> =
            facts.iter().map(|r| r.tenant_id.as_str()).collect();
        let stored: Vec<(String, i64, String)> = h::table
            .filter(h::tenant_id.eq_any(&tenants))
            .select((h::tenant_id, h::seq, h::hash))
            .load($c)
            .await?;
        let (entries, heads) = $crate::sql::chain::chain(facts, stored);
        $c.insert_audit_entries(entries).await?;
        for (t, (seq, hash)) in &heads {
            diesel::insert_into(h::table)
                .values((
                    h::tenant_id.eq(t),
                    h::seq.eq(seq),
                    h::hash.eq(hash),
                    h::checkpointed_seq.eq(0i64),
                ))
                .on_conflict(h::tenant_id)
                .do_update()
                .set((h::seq.eq(seq), h::hash.eq(hash)))
                .execute($c)
                .await?;
        }
        Ok(facts.len())
    }};
}

const CHUNK: usize = 500;

macro_rules! pg_insert {
    ($c:expr, $table:expr, $rows:expr) => {{
        use diesel_async::RunQueryDsl;
        let mut n = 0;
        for chunk in $rows.chunks(CHUNK) {
            n += diesel::insert_into($table)
                .values(chunk)
                .execute($c)
                .await?;
        }
        Ok(n)
    }};
    ($c:expr, $table:expr, $rows:expr, ignore) => {{
        use diesel_async::RunQueryDsl;
        let mut n = 0;
        for chunk in $rows.chunks(CHUNK) {
            n += diesel::insert_into($table)
                .values(chunk)
                .on_conflict_do_nothing()
                .execute($c)
                .await?;
        }
        Ok(n)
    }};
}

// SQLite runs in-process: one cached prepared statement executed per row costs less
// than a multi-row INSERT, whose SQL differs with its length and is parsed afresh
// every time.
macro_rules! lite_insert {
    ($c:expr, $table:expr, $rows:expr) => {{
        if $rows.is_empty() {
            return Ok(0);
        }
        $c.spawn_blocking(move |c| {
            use diesel::RunQueryDsl;
            let mut n = 0;
            for row in &$rows {
                n += diesel::insert_into($table).values(row).execute(c)?;
            }
            Ok(n)
        })
        .await
    }};
    ($c:expr, $table:expr, $rows:expr, ignore) => {{
        if $rows.is_empty() {
            return Ok(0);
        }
        $c.spawn_blocking(move |c| {
            use diesel::RunQueryDsl;
            let mut n = 0;
            for row in &$rows {
                n += diesel::insert_or_ignore_into($table)
                    .values(row)
                    .execute(c)?;
            }
            Ok(n)
        })
        .await
    }};
}

impl BatchInsert for AsyncPgConnection {
    async fn insert_messages(&mut self, rows: Vec<MessageRow>) -> QueryResult<usize> {
        pg_insert!(self, messages::table, rows)
    }
    async fn insert_attempts(&mut self, rows: Vec<AttemptRow>) -> QueryResult<usize> {
        pg_insert!(self, attempts::table, rows)
    }
    async fn insert_events_audited(
        &mut self,
        rows: Vec<NewEventRow>,
        facts: Vec<NewAuditRow>,
    ) -> QueryResult<usize> {
        self.insert_audit(facts).await?;
        pg_insert!(self, events::table, rows)
    }
    async fn insert_jobs(&mut self, rows: Vec<NewJobRow>) -> QueryResult<usize> {
        pg_insert!(self, jobs::table, rows)
    }
    async fn lock_attempts(&mut self, ids: &[String]) -> QueryResult<bool> {
        use diesel::prelude::*;
        use diesel_async::RunQueryDsl;
        if ids.is_empty() {
            return Ok(false);
        }
        attempts::table
            .filter(attempts::id.eq_any(ids))
            .order(attempts::id)
            .select(attempts::id)
            .for_update()
            .load::<String>(self)
            .await
            .map(|_| true)
    }
    async fn insert_parts(&mut self, rows: Vec<PartRow>) -> QueryResult<usize> {
        pg_insert!(self, attempt_parts::table, rows, ignore)
    }
    async fn insert_orphans(&mut self, rows: Vec<OrphanRow>) -> QueryResult<usize> {
        pg_insert!(self, orphan_receipts::table, rows, ignore)
    }
    async fn insert_envelopes(&mut self, rows: Vec<NewInboxRow>) -> QueryResult<usize> {
        pg_insert!(self, app_inbox::table, rows, ignore)
    }
    async fn insert_timers(&mut self, rows: Vec<TimerRow>) -> QueryResult<usize> {
        pg_insert!(self, fallback_timers::table, rows, ignore)
    }
    async fn insert_deliveries(&mut self, rows: Vec<NewDeliveryRow>) -> QueryResult<usize> {
        pg_insert!(self, webhook_deliveries::table, rows)
    }
    async fn insert_outbox(&mut self, rows: Vec<NewOutboxRow>) -> QueryResult<usize> {
        pg_insert!(self, smpp_outbox::table, rows, ignore)
    }
    async fn insert_subject_keys(&mut self, rows: Vec<SubjectKeyRow>) -> QueryResult<usize> {
        pg_insert!(self, subject_keys::table, rows, ignore)
    }
    async fn insert_audit(&mut self, rows: Vec<NewAuditRow>) -> QueryResult<usize> {
        pg_insert!(self, audit_outbox::table, rows)
    }
    async fn insert_audit_entries(&mut self, rows: Vec<AuditEntryRow>) -> QueryResult<usize> {
        pg_insert!(self, audit_entries::table, rows)
    }
    async fn append_audit(&mut self, facts: &[NewAuditRow]) -> QueryResult<usize> {
        if facts.is_empty() {
            return Ok(0);
        }
        append_facts!(self, facts)
    }
}

impl BatchInsert for Lite {
    async fn insert_messages(&mut self, rows: Vec<MessageRow>) -> QueryResult<usize> {
        lite_insert!(self, messages::table, rows)
    }
    async fn insert_attempts(&mut self, rows: Vec<AttemptRow>) -> QueryResult<usize> {
        lite_insert!(self, attempts::table, rows)
    }
    async fn insert_events_audited(
        &mut self,
        rows: Vec<NewEventRow>,
        facts: Vec<NewAuditRow>,
    ) -> QueryResult<usize> {
        self.insert_audit(facts).await?;
        lite_insert!(self, events::table, rows)
    }
    async fn insert_jobs(&mut self, rows: Vec<NewJobRow>) -> QueryResult<usize> {
        lite_insert!(self, jobs::table, rows)
    }
    async fn lock_attempts(&mut self, _ids: &[String]) -> QueryResult<bool> {
        Ok(false)
    }
    async fn insert_parts(&mut self, rows: Vec<PartRow>) -> QueryResult<usize> {
        lite_insert!(self, attempt_parts::table, rows, ignore)
    }
    async fn insert_orphans(&mut self, rows: Vec<OrphanRow>) -> QueryResult<usize> {
        lite_insert!(self, orphan_receipts::table, rows, ignore)
    }
    async fn insert_envelopes(&mut self, rows: Vec<NewInboxRow>) -> QueryResult<usize> {
        lite_insert!(self, app_inbox::table, rows, ignore)
    }
    async fn insert_timers(&mut self, rows: Vec<TimerRow>) -> QueryResult<usize> {
        lite_insert!(self, fallback_timers::table, rows, ignore)
    }
    async fn insert_deliveries(&mut self, rows: Vec<NewDeliveryRow>) -> QueryResult<usize> {
        lite_insert!(self, webhook_deliveries::table, rows)
    }
    async fn insert_outbox(&mut self, rows: Vec<NewOutboxRow>) -> QueryResult<usize> {
        lite_insert!(self, smpp_outbox::table, rows, ignore)
    }
    async fn insert_subject_keys(&mut self, rows: Vec<SubjectKeyRow>) -> QueryResult<usize> {
        lite_insert!(self, subject_keys::table, rows, ignore)
    }
    async fn insert_audit(&mut self, rows: Vec<NewAuditRow>) -> QueryResult<usize> {
        // The writer gate already puts transactions in one order: facts are chained
        // in the transaction that records them (no outbox round trip).
        self.append_audit(&rows).await
    }
    async fn insert_audit_entries(&mut self, rows: Vec<AuditEntryRow>) -> QueryResult<usize> {
        lite_insert!(self, audit_entries::table, rows)
    }
    async fn append_audit(&mut self, facts: &[NewAuditRow]) -> QueryResult<usize> {
        if facts.is_empty() {
            return Ok(0);
        }
        append_facts!(self, facts)
    }
}
