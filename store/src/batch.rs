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
    async fn insert_events(&mut self, rows: Vec<NewEventRow>) -> QueryResult<usize>;
    async fn insert_jobs(&mut self, rows: Vec<NewJobRow>) -> QueryResult<usize>;
    /// Ignores provider ids already stored (a redelivered outcome).
    async fn insert_parts(&mut self, rows: Vec<PartRow>) -> QueryResult<usize>;
    /// Keeps the first copy of a receipt delivered twice.
    async fn insert_orphans(&mut self, rows: Vec<OrphanRow>) -> QueryResult<usize>;
    /// App inbox rows; one already there (same device and message) is left alone.
    async fn insert_envelopes(&mut self, rows: Vec<NewInboxRow>) -> QueryResult<usize>;
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

impl BatchInsert for AsyncPgConnection {
    async fn insert_messages(&mut self, rows: Vec<MessageRow>) -> QueryResult<usize> {
        pg_insert!(self, messages::table, rows)
    }
    async fn insert_attempts(&mut self, rows: Vec<AttemptRow>) -> QueryResult<usize> {
        pg_insert!(self, attempts::table, rows)
    }
    async fn insert_events(&mut self, rows: Vec<NewEventRow>) -> QueryResult<usize> {
        pg_insert!(self, events::table, rows)
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
}

impl BatchInsert for Lite {
    async fn insert_messages(&mut self, rows: Vec<MessageRow>) -> QueryResult<usize> {
        lite_insert!(self, messages::table, rows)
    }
    async fn insert_attempts(&mut self, rows: Vec<AttemptRow>) -> QueryResult<usize> {
        lite_insert!(self, attempts::table, rows)
    }
    async fn insert_events(&mut self, rows: Vec<NewEventRow>) -> QueryResult<usize> {
        lite_insert!(self, events::table, rows)
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
}
