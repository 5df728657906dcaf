//! Multi-row inserts for both backends. diesel-async cannot express a SQLite batch
//! insert through the DSL, so the SQLite side runs diesel's synchronous batch insert in
//! one blocking task: one thread hop for the whole batch instead of one per row.

use diesel::QueryResult;
use diesel_async::AsyncPgConnection;

use crate::db::Lite;
use crate::rows::*;
use crate::schema::*;

pub(crate) trait BatchInsert {
    async fn insert_messages(&mut self, rows: Vec<MessageRow>) -> QueryResult<usize>;
    async fn insert_attempts(&mut self, rows: Vec<AttemptRow>) -> QueryResult<usize>;
    /// Events with the audit facts derived from them.
    async fn insert_events(&mut self, rows: Vec<NewEventRow>) -> QueryResult<usize> {
        let facts = crate::audit::event_facts(&rows);
        self.insert_events_audited(rows, facts).await
    }
    async fn insert_jobs(&mut self, rows: Vec<NewJobRow>) -> QueryResult<usize>;
    /// Ignores provider ids already stored (a redelivered outcome).
    async fn insert_parts(&mut self, rows: Vec<PartRow>) -> QueryResult<usize>;
    /// Keeps the first copy of a receipt delivered twice.
    async fn insert_orphans(&mut self, rows: Vec<OrphanRow>) -> QueryResult<usize>;
    /// App inbox rows; one already there (same device and message) is left alone.
    async fn insert_envelopes(&mut self, rows: Vec<NewInboxRow>) -> QueryResult<usize>;
    /// Fallback timers; one already set for the attempt is left alone.
    async fn insert_timers(&mut self, rows: Vec<TimerRow>) -> QueryResult<usize>;
    async fn insert_deliveries(&mut self, rows: Vec<NewDeliveryRow>) -> QueryResult<usize>;
    /// Data keys; one already there (created concurrently) wins.
    async fn insert_subject_keys(&mut self, rows: Vec<SubjectKeyRow>) -> QueryResult<usize>;
    /// Facts for the audit chain: chained in this transaction on SQLite, through the
    /// outbox (and the audit stage) on PostgreSQL.
    async fn insert_audit(&mut self, rows: Vec<NewAuditRow>) -> QueryResult<usize>;
    async fn insert_audit_entries(&mut self, rows: Vec<AuditEntryRow>) -> QueryResult<usize>;
    /// Events with the audit facts given instead of the ones derived from them.
    async fn insert_events_audited(
        &mut self,
        rows: Vec<NewEventRow>,
        facts: Vec<NewAuditRow>,
    ) -> QueryResult<usize>;
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

macro_rules! lite_insert {
    ($c:expr, $table:expr, $rows:expr) => {{
        if $rows.is_empty() {
            return Ok(0);
        }
        $c.spawn_blocking(move |c| {
            use diesel::RunQueryDsl;
            let mut n = 0;
            for chunk in $rows.chunks(CHUNK) {
                n += diesel::insert_into($table)
                    .values(chunk.to_vec())
                    .execute(c)?;
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
            for chunk in $rows.chunks(CHUNK) {
                n += diesel::insert_or_ignore_into($table)
                    .values(chunk.to_vec())
                    .execute(c)?;
            }
            Ok(n)
        })
        .await
    }};
}

/// Inserts timeline events and, in the same transaction, one webhook delivery per
/// event and destination (subscribed endpoints, the message's callback URL). The
/// extra reads happen only for event kinds that go out as webhooks.
macro_rules! events_with_webhooks {
    ($c:ident, $rows:ident, $facts:ident, |$chunk:ident| $insert_returning:expr) => {{
        use diesel::prelude::*;
        use diesel_async::RunQueryDsl;
        if $rows.is_empty() {
            return Ok(0);
        }
        $c.insert_audit($facts).await?;
        let (tenants, msgs) = crate::webhooks::published(&$rows);
        // One indexed read in the common case: the messages that have a callback URL
        // or whose tenant has an endpoint. Nothing found: a plain insert.
        let targets: crate::webhooks::MessageTargets = if msgs.is_empty() {
            Vec::new()
        } else {
            messages::table
                .filter(messages::id.eq_any(&msgs))
                .filter(
                    messages::callback_url.is_not_null().or(messages::tenant_id
                        .eq_any(webhook_endpoints::table.select(webhook_endpoints::tenant_id))),
                )
                .select((messages::id, messages::callback_url, messages::metadata))
                .load($c)
                .await?
        };
        if targets.is_empty() {
            return $c.insert_plain_events($rows).await;
        }
        let endpoints: Vec<EndpointRow> = webhook_endpoints::table
            .filter(webhook_endpoints::tenant_id.eq_any(&tenants))
            .select(EndpointRow::as_select())
            .load($c)
            .await?;
        let mut inserted: Vec<EventRow> = Vec::with_capacity($rows.len());
        for $chunk in $rows.chunks(CHUNK) {
            inserted.extend($insert_returning);
        }
        let deliveries =
            crate::webhooks::deliveries(&inserted, &endpoints, &targets, hermod_core::now_ms());
        $c.insert_deliveries(deliveries).await?;
        Ok(inserted.len())
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
        let c = self;
        events_with_webhooks!(c, rows, facts, |chunk| {
            diesel::insert_into(events::table)
                .values(chunk)
                .returning(EventRow::as_returning())
                .get_results::<EventRow>(c)
                .await?
        })
    }
    async fn insert_jobs(&mut self, rows: Vec<NewJobRow>) -> QueryResult<usize> {
        pg_insert!(self, jobs::table, rows)
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
    async fn insert_subject_keys(&mut self, rows: Vec<SubjectKeyRow>) -> QueryResult<usize> {
        pg_insert!(self, subject_keys::table, rows, ignore)
    }
    async fn insert_audit(&mut self, rows: Vec<NewAuditRow>) -> QueryResult<usize> {
        pg_insert!(self, audit_outbox::table, rows)
    }
    async fn insert_audit_entries(&mut self, rows: Vec<AuditEntryRow>) -> QueryResult<usize> {
        pg_insert!(self, audit_entries::table, rows)
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
        let c = self;
        // One writer at a time (the gate), so the rows after the current maximum are
        // exactly the ones inserted here.
        events_with_webhooks!(c, rows, facts, |chunk| {
            let before: Option<i64> = events::table
                .select(diesel::dsl::max(events::seq))
                .first(c)
                .await?;
            c.insert_plain_events(chunk.to_vec()).await?;
            events::table
                .filter(events::seq.gt(before.unwrap_or(0)))
                .order(events::seq.asc())
                .select(EventRow::as_select())
                .load::<EventRow>(c)
                .await?
        })
    }
    async fn insert_jobs(&mut self, rows: Vec<NewJobRow>) -> QueryResult<usize> {
        lite_insert!(self, jobs::table, rows)
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
    async fn insert_subject_keys(&mut self, rows: Vec<SubjectKeyRow>) -> QueryResult<usize> {
        lite_insert!(self, subject_keys::table, rows, ignore)
    }
    async fn insert_audit(&mut self, rows: Vec<NewAuditRow>) -> QueryResult<usize> {
        crate::audit::append_now(self, rows).await
    }
    async fn insert_audit_entries(&mut self, rows: Vec<AuditEntryRow>) -> QueryResult<usize> {
        lite_insert!(self, audit_entries::table, rows)
    }
}

/// The events-only half of `insert_events`.
trait PlainEvents {
    async fn insert_plain_events(&mut self, rows: Vec<NewEventRow>) -> QueryResult<usize>;
}

impl PlainEvents for AsyncPgConnection {
    async fn insert_plain_events(&mut self, rows: Vec<NewEventRow>) -> QueryResult<usize> {
        pg_insert!(self, events::table, rows)
    }
}

impl PlainEvents for Lite {
    async fn insert_plain_events(&mut self, rows: Vec<NewEventRow>) -> QueryResult<usize> {
        lite_insert!(self, events::table, rows)
    }
}
