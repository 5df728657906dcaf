//! Connections: SQLite run inline on the calling thread (one write transaction is one
//! blocking section), and `BEGIN IMMEDIATE` write transactions.

use diesel::QueryableByName;
use diesel::SqliteConnection;
use diesel::sql_types::BigInt;
use diesel_async::AsyncConnection;
use diesel_async::sync_connection_wrapper::{SpawnBlocking, SyncConnectionWrapper};
use futures::FutureExt;

/// SQLite behind diesel-async, with statements run on the calling thread: a write
/// transaction moves to a blocking context once as a whole (see `write_tx!`) instead of
/// hopping to the blocking pool for every statement while holding the writer gate.
pub type Lite = SyncConnectionWrapper<SqliteConnection, Inline>;

/// Runs "blocking" diesel work immediately on the current thread.
pub struct Inline;

impl SpawnBlocking for Inline {
    fn spawn_blocking<'a, R>(
        &mut self,
        task: impl FnOnce() -> R + Send + 'static,
    ) -> futures::future::BoxFuture<'a, Result<R, Box<dyn std::error::Error + Send + Sync + 'static>>>
    where
        R: Send + 'static,
    {
        futures::future::ready(Ok(task())).boxed()
    }

    fn get_runtime() -> Self {
        Inline
    }
}

/// Drives a future over [`Lite`] connections to completion on this thread: its
/// statements complete inline, so this blocks for the length of one transaction.
/// Only the writer holding the gate does so at a time, and measured faster than
/// `block_in_place` (which hands the worker's other tasks to a new thread each time).
pub fn complete_inline<F: std::future::Future>(fut: F) -> F::Output {
    futures::executor::block_on(fut)
}

/// Runs `body` in a SQLite write transaction begun `IMMEDIATE`, which takes the write
/// lock before the first statement, and commits it when `body` returns `Ok` (rolls it
/// back otherwise). A deferred `BEGIN` takes the lock at the first write: when another
/// process (a `hermod keys create` beside a running server) committed after the
/// transaction's first read, that upgrade fails at once with "database is locked"
/// (`SQLITE_BUSY_SNAPSHOT`, which `busy_timeout` does not wait out). Immediate
/// transactions wait their turn instead.
pub fn immediate<T, E: From<diesel::result::Error>>(
    conn: &mut Lite,
    body: impl FnOnce(&mut Lite) -> Result<T, E>,
) -> Result<T, E> {
    use diesel_async::TransactionManager as _;
    type Tm = <Lite as AsyncConnection>::TransactionManager;
    complete_inline(conn.spawn_blocking(|c| {
        diesel::connection::AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")
    }))?;
    let r = body(conn);
    let end = if r.is_ok() {
        complete_inline(Tm::commit_transaction(conn))
    } else {
        complete_inline(Tm::rollback_transaction(conn))
    };
    match (r, end) {
        (Ok(v), Ok(())) => Ok(v),
        (Ok(_), Err(e)) => Err(e.into()),
        (Err(e), _) => Err(e),
    }
}

/// One count (`SELECT COUNT(*) AS n`, `total_changes() AS n`).
#[derive(QueryableByName)]
pub(crate) struct N {
    #[diesel(sql_type = BigInt)]
    pub(crate) n: i64,
}
