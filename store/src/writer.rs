//! SQLite's one writer. The hot paths (accepting messages, planning, claiming and
//! recording sends, receipts, the queue, the webhook cursor) hand their write to one
//! thread, which runs whatever has come in meanwhile in one transaction, each write
//! in its own savepoint (one failing undoes only itself), and answers each once the
//! transaction is committed. Many writers cost one commit, and no async worker thread
//! blocks on SQLite for a write.

use std::sync::Arc;
use std::sync::mpsc;

use diesel::result::Error as DieselError;
use diesel_async::AsyncConnection;
use futures::future::BoxFuture;
use tokio::sync::{Mutex, Notify, oneshot};

use crate::db::{Lite, complete_inline};

/// Writes run in one transaction at most.
const GROUP_MAX: usize = 64;

/// What an op leaves to do once the transaction's fate is known.
type Finish = Box<dyn FnOnce(Result<(), String>) + Send>;
type Op = Box<dyn for<'c> FnOnce(&'c mut Lite) -> BoxFuture<'c, Finish> + Send>;

/// Handle to the writer thread; cheap to clone.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Op>,
}

impl Writer {
    /// Starts the thread on `conn`; it takes `gate` for each transaction (the other
    /// writers of the process take it too) and wakes `committed` after each commit.
    pub(crate) fn start(
        mut conn: Lite,
        gate: Arc<Mutex<()>>,
        committed: Arc<Notify>,
    ) -> std::io::Result<Writer> {
        let (tx, rx) = mpsc::channel::<Op>();
        std::thread::Builder::new()
            .name("hermod-sqlite-writer".into())
            .spawn(move || {
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
                    let done = complete_inline(conn.transaction(async |c| {
                        for op in ops {
                            finish.push(op(c).await);
                        }
                        Ok::<_, DieselError>(())
                    }));
                    drop(guard);
                    crate::sqlprof::gate("writer", got - asked, got.elapsed());
                    let done = done.map_err(|e| e.to_string());
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
                let finish: Finish = Box::new(move |committed: Result<(), String>| {
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
        let gone = || DieselError::QueryBuilderError("the SQLite writer stopped".into());
        self.tx.send(op).map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}
