//! Bind leases: one row per lease, taken with an upsert that only wins when the lease
//! is free, expired, or already ours.

use std::time::Duration;

use diesel::sql_types::{BigInt, Text};
use diesel_async::RunQueryDsl;
use hermod_core::now_ms;
use hermod_core::ports::PortResult;

use crate::{Db, SqlStore, backend, write_tx};
use async_trait::async_trait;

#[derive(diesel::QueryableByName)]
struct Holder {
    #[diesel(sql_type = Text)]
    holder: String,
}

const ACQUIRE_SQLITE: &str = "INSERT INTO bind_leases (bind_id, holder, expires_at, status) VALUES (?, ?, ?, ?) \
     ON CONFLICT (bind_id) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at, status = excluded.status \
     WHERE bind_leases.holder = excluded.holder OR bind_leases.expires_at < ? RETURNING holder";
const ACQUIRE_PG: &str = "INSERT INTO bind_leases (bind_id, holder, expires_at, status) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (bind_id) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at, status = EXCLUDED.status \
     WHERE bind_leases.holder = EXCLUDED.holder OR bind_leases.expires_at < $5 RETURNING holder";

async fn acquire(
    db: &Db,
    key: &str,
    holder: &str,
    ttl: Duration,
    status: Option<&str>,
) -> PortResult<bool> {
    let now = now_ms();
    let until = now + i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2);
    let sql = if db.is_postgres() {
        ACQUIRE_PG
    } else {
        ACQUIRE_SQLITE
    };
    let rows: Vec<Holder> = write_tx!(db, |c| {
        diesel::sql_query(sql)
            .bind::<Text, _>(key)
            .bind::<Text, _>(holder)
            .bind::<BigInt, _>(until)
            .bind::<diesel::sql_types::Nullable<Text>, _>(status)
            .bind::<BigInt, _>(now)
            .load::<Holder>(c)
            .await
    })
    .map_err(backend)?;
    Ok(rows.iter().any(|r| r.holder == holder))
}

async fn live(db: &Db) -> PortResult<Vec<(String, String, i64, Option<String>)>> {
    use crate::sql::schema::bind_leases::dsl as l;
    use diesel::{ExpressionMethods, QueryDsl};
    let now = now_ms();
    crate::with_conn!(db, |c| {
        l::bind_leases
            .filter(l::expires_at.gt(now))
            .order(l::bind_id.asc())
            .select((l::bind_id, l::holder, l::expires_at, l::status))
            .load(c)
            .await
    })
    .map_err(backend)
}

async fn release(db: &Db, key: &str, holder: &str) -> PortResult<()> {
    let sql = if db.is_postgres() {
        "DELETE FROM bind_leases WHERE bind_id = $1 AND holder = $2"
    } else {
        "DELETE FROM bind_leases WHERE bind_id = ? AND holder = ?"
    };
    write_tx!(db, |c| {
        diesel::sql_query(sql)
            .bind::<Text, _>(key)
            .bind::<Text, _>(holder)
            .execute(c)
            .await
    })
    .map(drop)
    .map_err(backend)
}

#[async_trait]
impl hermod_core::ports::Leases for SqlStore {
    async fn acquire_lease(
        &self,
        key: &str,
        holder: &str,
        ttl: std::time::Duration,
        status: Option<&str>,
    ) -> PortResult<bool> {
        acquire(&self.db, key, holder, ttl, status).await
    }

    async fn live_leases(&self) -> PortResult<Vec<(String, String, i64, Option<String>)>> {
        live(&self.db).await
    }

    async fn release_lease(&self, key: &str, holder: &str) -> PortResult<()> {
        release(&self.db, key, holder).await
    }
}
