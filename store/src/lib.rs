//! Diesel models and queries for SQLite (embedded) and PostgreSQL (distributed).
//!
//! One code path for both: [`Db`] is an enum of two pools and the `with_conn!` /
//! `write_tx!` macros type-check each query body once per backend. SQLite writes go
//! through one in-process gate, so a single node never sees `SQLITE_BUSY`, and each
//! write transaction runs as one blocking section; reads run in parallel thanks to WAL.

pub mod sql;

mod admin;
mod app;
mod compliance;
mod dispatch;
mod hooks;
mod inbound;
mod insights;
mod leases;
mod maintenance;
mod messages;
mod outbox;
mod senders;
mod smpp;
mod stats;
mod templates;
mod tenants;
mod twilio;
mod webhooks;

pub use dispatch::normalize_provider_id;
pub use hermod_crypto::vault::Vault;
pub use sql::conn::{Inline, Lite};
#[doc(hidden)]
pub use sql::conn::{complete_inline, immediate};
pub use sql::db::{Db, DbError, Synchronous, is_postgres_url};
pub use sql::writer::Writer;
pub use sql::{pg_tls, rows, schema, sqlprof};
pub use stats::{TableCount, WriteCounts};

use hermod_core::ports::PortError;

/// The diesel-backed store: every port of `hermod_core::ports` that is about durable
/// state is implemented on it, each in its own module.
#[derive(Clone)]
pub struct SqlStore {
    pub(crate) db: Db,
    accepts: messages::Committer,
    /// Seals numbers and bodies at rest (see `seal`).
    pub(crate) vault: std::sync::Arc<hermod_crypto::vault::Vault>,
}

impl SqlStore {
    /// Call inside a tokio runtime: it starts the group-commit task for accepts.
    pub fn new(db: Db, vault: std::sync::Arc<hermod_crypto::vault::Vault>) -> Self {
        Self {
            accepts: messages::Committer::start(db.clone(), vault.clone()),
            db,
            vault,
        }
    }
    pub fn vault(&self) -> &hermod_crypto::vault::Vault {
        &self.vault
    }

    pub fn db(&self) -> &Db {
        &self.db
    }
}

pub(crate) fn backend<E: std::error::Error + Send + Sync + 'static>(e: E) -> PortError {
    PortError::Backend(Box::new(e))
}

/// Runs `$body` with `$c` bound to a pooled connection of either backend.
#[macro_export]
macro_rules! with_conn {
    ($db:expr, |$c:ident| $body:expr) => {
        match $db {
            $crate::Db::Pg(pool) => {
                let mut $c = pool.get().await.map_err($crate::unavailable)?;
                let $c = &mut *$c;
                $body
            }
            $crate::Db::Lite { pool, .. } => {
                let mut $c = pool.get().await.map_err($crate::unavailable)?;
                let $c = &mut *$c;
                $body
            }
        }
    };
}

/// Runs `$body` in one write transaction; on SQLite behind the writer gate.
#[macro_export]
macro_rules! write_tx {
    ($db:expr, |$c:ident| $body:expr) => {{
        use diesel_async::AsyncConnection as _;
        match $db {
            $crate::Db::Pg(pool) => {
                let mut conn = pool.get().await.map_err($crate::unavailable)?;
                conn.transaction(async |$c| $body).await
            }
            $crate::Db::Lite { pool, write, .. } => {
                let asked = std::time::Instant::now();
                let _gate = write.lock().await;
                let got = std::time::Instant::now();
                let mut conn = pool.get().await.map_err($crate::unavailable)?;
                // Every statement completes inline, so the whole transaction runs here
                // in one blocking section.
                let r = $crate::immediate(&mut conn, |conn| {
                    $crate::complete_inline((async |$c: &mut $crate::Lite| $body)(conn))
                });
                $crate::sql::sqlprof::gate(
                    concat!(file!(), ":", line!()),
                    got - asked,
                    got.elapsed(),
                );
                r
            }
        }
    }};
}

/// Runs `$body` in one write transaction, like `write_tx!`, but on SQLite in the
/// writer thread's next group transaction (see `writer`). The body owns what it uses
/// (it is moved there): prepare owned inputs before, and do not use them after.
#[macro_export]
macro_rules! write_op {
    ($db:expr, move |$c:ident| $body:expr) => {{
        use diesel_async::AsyncConnection as _;
        match $db {
            $crate::Db::Pg(pool) => {
                let mut conn = pool.get().await.map_err($crate::unavailable)?;
                conn.transaction(async |$c| $body).await
            }
            $crate::Db::Lite { writer, .. } => {
                writer.run(move |$c| Box::pin(async move { $body })).await
            }
        }
    }};
}

#[doc(hidden)]
pub fn unavailable<E: std::error::Error + Send + Sync + 'static>(e: E) -> PortError {
    PortError::Unavailable(Box::new(e))
}
