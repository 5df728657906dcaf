//! Pools, connection setup and migrations for both backends.

use std::sync::Arc;

use diesel::{Connection as _, SqliteConnection};
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use futures::FutureExt;

use super::conn::Lite;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/sqlite");
const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/postgres");

// busy_timeout first: it must already apply when journal_mode takes its lock (a
// connection closing elsewhere in the process checkpoints the WAL at that moment).
// The WAL is checkpointed in the background (see `writer`); a commit checkpoints only
// if that falls far behind (40 MB of WAL).
const SQLITE_PRAGMAS: &str = "PRAGMA busy_timeout=5000; PRAGMA journal_mode=WAL; \
     PRAGMA foreign_keys=ON; PRAGMA cache_size=-32768; \
     PRAGMA temp_store=MEMORY; PRAGMA wal_autocheckpoint=10000;";

/// When a SQLite commit is on disk. `Full` (the default): the WAL is synced at every
/// commit, so an answered 202 or an acknowledged receipt survives a power cut or an
/// OS crash (group commit shares one sync among the operations of a transaction).
/// `Normal`: synced at checkpoints only; a crash of the process loses nothing, a power
/// cut may lose the last commits.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    #[default]
    Full,
    Normal,
}

impl Synchronous {
    fn pragmas(self) -> String {
        let mode = match self {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        };
        format!("{SQLITE_PRAGMAS} PRAGMA synchronous={mode};")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("could not build the connection pool")]
    Pool(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("could not connect to the database")]
    Connect(#[source] diesel::ConnectionError),
    #[error("migrations failed")]
    Migrate(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("database task failed")]
    Join(#[source] tokio::task::JoinError),
}

/// A database handle: one of two pools. Cheap to clone.
#[derive(Clone)]
pub enum Db {
    Pg(Pool<AsyncPgConnection>),
    Lite {
        pool: Pool<Lite>,
        /// SQLite allows one writer; this gate keeps our writers in line instead of
        /// letting them spin on `SQLITE_BUSY`.
        write: Arc<tokio::sync::Mutex<()>>,
        /// The writer thread the hot paths hand their writes to (see `writer`).
        writer: super::writer::Writer,
        /// Woken after each of the writer's commits (the embedded queue waits on it).
        committed: Arc<tokio::sync::Notify>,
    },
}

pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

impl Db {
    /// Opens a pool for a `postgres://` URL or a SQLite file path (or `sqlite://path`),
    /// SQLite with `synchronous=FULL`.
    pub async fn open(url: &str, max_conns: usize) -> Result<Db, DbError> {
        Self::open_with(url, max_conns, Synchronous::Full).await
    }

    /// [`Db::open`] with SQLite's durability chosen.
    pub async fn open_with(url: &str, max_conns: usize, sync: Synchronous) -> Result<Db, DbError> {
        let pragmas = sync.pragmas();
        if is_postgres_url(url) {
            let mut cfg = ManagerConfig::<AsyncPgConnection>::default();
            cfg.custom_setup = Box::new(|url| super::pg_tls::connect(url).boxed());
            let mgr = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(url, cfg);
            let pool = Pool::builder(mgr)
                .max_size(max_conns)
                .build()
                .map_err(|e| DbError::Pool(Box::new(e)))?;
            // Fail fast on a wrong URL instead of on the first request.
            drop(pool.get().await.map_err(|e| DbError::Pool(Box::new(e)))?);
            Ok(Db::Pg(pool))
        } else {
            let path = url.strip_prefix("sqlite://").unwrap_or(url).to_owned();
            let setup = move |url: String, pragmas: String| async move {
                let mut c = Lite::establish(&url).await?;
                #[cfg(feature = "sqlprof")]
                if let Some(i) = super::sqlprof::instrument() {
                    c.set_instrumentation(i);
                }
                c.batch_execute(&pragmas)
                    .await
                    .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                Ok::<_, diesel::ConnectionError>(c)
            };
            let mut cfg = ManagerConfig::<Lite>::default();
            // A file connection cannot go stale: no test query on every checkout.
            cfg.recycling_method = diesel_async::pooled_connection::RecyclingMethod::Fast;
            let p = pragmas.clone();
            cfg.custom_setup = Box::new(move |url| setup(url.to_owned(), p.clone()).boxed());
            let writer_conn = setup(path.clone(), pragmas.clone())
                .await
                .map_err(DbError::Connect)?;
            let mut checkpoints = SqliteConnection::establish(&path).map_err(DbError::Connect)?;
            diesel::connection::SimpleConnection::batch_execute(&mut checkpoints, &pragmas)
                .map_err(|e| {
                    DbError::Connect(diesel::ConnectionError::CouldntSetupConfiguration(e))
                })?;
            let mgr = AsyncDieselConnectionManager::<Lite>::new_with_config(path, cfg);
            let pool = Pool::builder(mgr)
                .max_size(max_conns.clamp(1, 8))
                .build()
                .map_err(|e| DbError::Pool(Box::new(e)))?;
            drop(pool.get().await.map_err(|e| DbError::Pool(Box::new(e)))?);
            let write = Arc::new(tokio::sync::Mutex::new(()));
            let committed = Arc::new(tokio::sync::Notify::new());
            let writer = super::writer::Writer::start(
                writer_conn,
                checkpoints,
                write.clone(),
                committed.clone(),
            )
            .map_err(|e| DbError::Pool(Box::new(e)))?;
            Ok(Db::Lite {
                pool,
                write,
                writer,
                committed,
            })
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Db::Pg(_))
    }

    /// Woken after each commit of SQLite's writer thread (None on PostgreSQL).
    pub fn committed(&self) -> Option<&Arc<tokio::sync::Notify>> {
        match self {
            Db::Lite { committed, .. } => Some(committed),
            Db::Pg(_) => None,
        }
    }

    /// Creates database `name` on the PostgreSQL server of `admin_url` and returns its
    /// URL (benchmarks and tests).
    pub async fn create_database(admin_url: &str, name: &str) -> Result<String, DbError> {
        use diesel_async::RunQueryDsl;
        if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(DbError::Connect(
                diesel::ConnectionError::InvalidConnectionUrl(
                    "database names are letters, digits and _".into(),
                ),
            ));
        }
        let mut c = super::pg_tls::connect(admin_url)
            .await
            .map_err(DbError::Connect)?;
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut c)
            .await
            .map_err(|e| DbError::Migrate(Box::new(e)))?;
        let (path, query) = admin_url
            .split_once('?')
            .map_or((admin_url, None), |(b, q)| (b, Some(q)));
        let base = path.rsplit_once('/').map_or(path, |(b, _)| b);
        Ok(match query {
            Some(q) => format!("{base}/{name}?{q}"),
            None => format!("{base}/{name}"),
        })
    }

    /// Drops a database made by [`Db::create_database`].
    pub async fn drop_database(admin_url: &str, name: &str) -> Result<(), DbError> {
        use diesel_async::RunQueryDsl;
        if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Ok(());
        }
        let mut c = super::pg_tls::connect(admin_url)
            .await
            .map_err(DbError::Connect)?;
        diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut c)
            .await
            .map_err(|e| DbError::Migrate(Box::new(e)))?;
        Ok(())
    }

    /// Applies pending migrations for the backend `url` names.
    pub async fn migrate(url: &str) -> Result<Vec<String>, DbError> {
        if is_postgres_url(url) {
            let mut conn = super::pg_tls::connect(url)
                .await
                .map_err(DbError::Connect)?;
            // Processes that start together migrate one after the other: the lock is
            // the session's, released when the harness drops the connection.
            diesel_async::RunQueryDsl::execute(
                diesel::sql_query("SELECT pg_advisory_lock(7411003)"),
                &mut conn,
            )
            .await
            .map_err(|e| DbError::Migrate(Box::new(e)))?;
            let url = url.to_owned();
            // The harness blocks; keep it off the async workers.
            tokio::task::spawn_blocking(move || {
                let _ = url;
                let mut harness = diesel_async::AsyncMigrationHarness::new(conn);
                harness
                    .run_pending_migrations(PG_MIGRATIONS)
                    .map(|v| v.iter().map(|m| m.to_string()).collect())
                    .map_err(DbError::Migrate)
            })
            .await
            .map_err(DbError::Join)?
        } else {
            let path = url.strip_prefix("sqlite://").unwrap_or(url).to_owned();
            tokio::task::spawn_blocking(move || {
                let mut c = SqliteConnection::establish(&path).map_err(DbError::Connect)?;
                diesel::connection::SimpleConnection::batch_execute(&mut c, SQLITE_PRAGMAS)
                    .map_err(|e| DbError::Migrate(Box::new(e)))?;
                c.run_pending_migrations(SQLITE_MIGRATIONS)
                    .map(|v| v.iter().map(|m| m.to_string()).collect())
                    .map_err(DbError::Migrate)
            })
            .await
            .map_err(DbError::Join)?
        }
    }

    /// Reverts every migration (used by the migration round-trip test).
    pub async fn revert_all(url: &str) -> Result<(), DbError> {
        if is_postgres_url(url) {
            let conn = super::pg_tls::connect(url)
                .await
                .map_err(DbError::Connect)?;
            tokio::task::spawn_blocking(move || {
                let mut harness = diesel_async::AsyncMigrationHarness::new(conn);
                harness
                    .revert_all_migrations(PG_MIGRATIONS)
                    .map(|_| ())
                    .map_err(DbError::Migrate)
            })
            .await
            .map_err(DbError::Join)?
        } else {
            let path = url.strip_prefix("sqlite://").unwrap_or(url).to_owned();
            tokio::task::spawn_blocking(move || {
                let mut c = SqliteConnection::establish(&path).map_err(DbError::Connect)?;
                c.revert_all_migrations(SQLITE_MIGRATIONS)
                    .map(|_| ())
                    .map_err(DbError::Migrate)
            })
            .await
            .map_err(DbError::Join)?
        }
    }
}
