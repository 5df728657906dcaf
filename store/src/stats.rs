//! What the database holds and how much was written, for `hermod bench`: rows per
//! table, and rows inserted, updated or deleted, read from the database itself
//! (PostgreSQL's `pg_stat_user_tables`; on SQLite, `total_changes()` of the writer's
//! connection, which makes every write of the message path, is counted by the writer
//! thread into the `hermod_db_rows_written_total` metric).

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel_async::RunQueryDsl;
use hermod_core::ports::PortResult;

use crate::sql::conn::N;
use crate::{Db, backend, with_conn};

/// The tables of the message path.
pub const TABLES: [&str; 12] = [
    "messages",
    "attempts",
    "attempt_parts",
    "events",
    "audit_entries",
    "subject_keys",
    "jobs",
    "webhook_deliveries",
    "orphan_receipts",
    "idempotency_keys",
    "fallback_timers",
    "audit_outbox",
];

/// Rows in a table now, and (PostgreSQL) inserted, updated and deleted so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableCount {
    pub table: String,
    pub rows: i64,
    pub changed: Option<(i64, i64, i64)>,
}

/// A snapshot of the counts.
#[derive(Clone, Debug, Default)]
pub struct WriteCounts {
    pub tables: Vec<TableCount>,
    /// Rows inserted, updated or deleted so far (all tables; PostgreSQL).
    pub changed: Option<i64>,
}

#[derive(QueryableByName)]
struct PgStat {
    #[diesel(sql_type = Text)]
    relname: String,
    #[diesel(sql_type = BigInt)]
    ins: i64,
    #[diesel(sql_type = BigInt)]
    upd: i64,
    #[diesel(sql_type = BigInt)]
    del: i64,
}

impl crate::SqlStore {
    /// Rows per table and rows written so far.
    pub async fn write_counts(&self) -> PortResult<WriteCounts> {
        let mut tables = Vec::with_capacity(TABLES.len());
        for t in TABLES {
            // The names are ours, not input.
            let q = format!("SELECT COUNT(*) AS n FROM {t}");
            let rows: N = with_conn!(&self.db, |c| {
                diesel::sql_query(&q).get_result(c).await.map_err(backend)?
            });
            tables.push(TableCount {
                table: t.to_owned(),
                rows: rows.n,
                changed: None,
            });
        }
        let changed = match &self.db {
            Db::Pg(_) => {
                let stats: Vec<PgStat> = with_conn!(&self.db, |c| {
                    diesel::sql_query(
                        "SELECT relname::text AS relname, n_tup_ins AS ins, \
                         n_tup_upd AS upd, n_tup_del AS del FROM pg_stat_user_tables",
                    )
                    .load(c)
                    .await
                    .map_err(backend)?
                });
                for t in &mut tables {
                    if let Some(s) = stats.iter().find(|s| s.relname == t.table) {
                        t.changed = Some((s.ins, s.upd, s.del));
                    }
                }
                Some(stats.iter().map(|s| s.ins + s.upd + s.del).sum())
            }
            Db::Lite { .. } => None,
        };
        Ok(WriteCounts { tables, changed })
    }
}
