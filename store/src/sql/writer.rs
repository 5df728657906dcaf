//! SQLite's one writer. The hot paths (accepting messages, planning, claiming and
//! recording sends, receipts, the queue, the webhook cursor) hand their write to one
//! thread, which runs whatever has come in meanwhile in one transaction, each write
//! in its own savepoint (one failing undoes only itself), and answers each once the
//! transaction is committed. Many writers cost one commit, and no async worker thread
//! blocks on SQLite for a write.

use std::sync::Arc;
use std::sync::mpsc;

use diesel::result::Error as DieselError;
use diesel_async::{AsyncConnection, RunQueryDsl};
use futures::future::BoxFuture;
use tokio::sync::{Mutex, Notify, oneshot};

use super::conn::{Lite, N, complete_inline, immediate};

/// Writes run in one transaction at most.
const GROUP_MAX: usize = 64;
/// How often the WAL is checkpointed in the background.
pub(crate) const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

/// What an op leaves to do once the transaction's fate is known.
type Finish = Box<dyn FnOnce(Result<(), NotCommitted>) + Send>;

/// Why a group transaction did not commit (every write in it is told).
#[derive(Clone, Debug, thiserror::Error)]
#[error("{0}")]
struct NotCommitted(String);
type Op = Box<dyn for<'c> FnOnce(&'c mut Lite) -> BoxFuture<'c, Finish> + Send>;

/// Handle to the writer thread; cheap to clone.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Op>,
}

impl Writer {
    /// Starts the thread on `conn`; it takes `gate` for each transaction (the other
    /// writers of the process take it too) and wakes `committed` after each commit.
    ///
    /// A second thread checkpoints the WAL on `checkpoints` every [`CHECKPOINT_EVERY`]
    /// (PASSIVE: it never waits for, nor holds up, readers or the writer), so commits
    /// do not pay for copying pages into the database file and syncing it.
    pub(crate) fn start(
        mut conn: Lite,
        mut checkpoints: diesel::SqliteConnection,
        gate: Arc<Mutex<()>>,
        committed: Arc<Notify>,
    ) -> std::io::Result<Writer> {
        let (tx, rx) = mpsc::channel::<Op>();
        let (stop, stopped) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("hermod-sqlite-ckpt".into())
            .spawn(move || {
                use diesel::connection::SimpleConnection as _;
                while let Err(mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(CHECKPOINT_EVERY)
                {
                    if let Err(e) = checkpoints.batch_execute("PRAGMA wal_checkpoint(PASSIVE)") {
                        tracing::warn!(error = %e, "WAL checkpoint failed");
                    }
                }
            })?;
        std::thread::Builder::new()
            .name("hermod-sqlite-writer".into())
            .spawn(move || {
                let _stop = stop;
                let mut written = 0i64;
                while let Ok(first) = rx.recv() {
                    let mut ops = vec![first];
                    while ops.len() < GROUP_MAX {
                        match rx.try_recv() {
                            Ok(op) => ops.push(op),
                            Err(_) => break,
                        }
                    }
                    let asked = std::time::Instant::now();
                    let guard = gate.blocking_lock();
                    let got = std::time::Instant::now();
                    let mut finish: Vec<Finish> = Vec::with_capacity(ops.len());
                    let done = immediate(&mut conn, |c| {
                        complete_inline(async {
                            for op in ops {
                                finish.push(op(c).await);
                            }
                            Ok::<_, DieselError>(())
                        })
                    });
                    if finish.is_empty() && let Err(e) = &done {
                        // Nothing ran: the ops (and their answers) are dropped, and
                        // each caller gets an error.
                        tracing::warn!(error = %e, "the SQLite writer could not begin a transaction");
                    }
                    // Rows inserted, updated or deleted, as SQLite counts them.
                    if let Ok(n) = complete_inline(
                        diesel::sql_query("SELECT total_changes() AS n")
                            .get_result::<N>(&mut conn),
                    ) {
                        metrics::counter!("hermod_db_rows_written_total")
                            .increment(u64::try_from(n.n - written).unwrap_or(0));
                        written = n.n;
                    }
                    drop(guard);
                    super::sqlprof::gate("writer", got - asked, got.elapsed());
                    let done = done.map_err(|e| NotCommitted(e.to_string()));
                    if done.is_ok() {
                        committed.notify_waiters();
                    }
                    for f in finish {
                        f(done.clone());
                    }
                }
            })?;
        Ok(Writer { tx })
    }

    /// Runs `f` in the writer's next transaction (in a savepoint of its own) and
    /// returns its result once that transaction committed.
    pub async fn run<R, F>(&self, f: F) -> Result<R, DieselError>
    where
        F: for<'c> FnOnce(&'c mut Lite) -> BoxFuture<'c, Result<R, DieselError>> + Send + 'static,
        R: Send + 'static,
    {
        let (done, answer) = oneshot::channel::<Result<R, DieselError>>();
        let op: Op = Box::new(move |c: &mut Lite| {
            Box::pin(async move {
                let r = c.transaction(async |c| f(c).await).await;
                let finish: Finish = Box::new(move |committed: Result<(), NotCommitted>| {
                    let out = match (r, committed) {
                        (Ok(v), Ok(())) => Ok(v),
                        (Err(e), _) => Err(e),
                        (Ok(_), Err(e)) => Err(DieselError::QueryBuilderError(
                            format!("the write was not committed: {e}").into(),
                        )),
                    };
                    let _ = done.send(out);
                });
                finish
            })
        });
        let gone = || {
            DieselError::QueryBuilderError(
                "the write was not committed: the SQLite writer stopped or could not begin".into(),
            )
        };
        self.tx.send(op).map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}
