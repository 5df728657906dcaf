//! Tenants, their API keys and their defaults (channel order, fallback, quiet hours,
//! retention).

use crate::SqlStore;
use crate::sql::batch::BatchInsert as _;
use crate::sql::chain::fact;
use crate::sql::common::*;
use crate::sql::schema::*;
use crate::{Db, backend, with_conn, write_tx};
use async_trait::async_trait;
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel_async::RunQueryDsl;
use hermod_core::plan::*;
use hermod_core::ports::PortResult;
use hermod_core::ports::Tenants;
use hermod_core::{TenantId, now_ms};

#[async_trait]
impl Tenants for SqlStore {
    async fn create_api_key(
        &self,
        tenant_name: &str,
        key_id: &str,
        hash: &str,
    ) -> PortResult<TenantId> {
        let now = now_ms();
        let tenant = write_tx!(&self.db, |c| {
            let existing: Option<String> = tenants::table
                .filter(tenants::name.eq(tenant_name))
                .select(tenants::id)
                .first(c)
                .await
                .optional()?;
            let tenant_id = match existing {
                Some(id) => id,
                None => {
                    let id = TenantId::generate().to_string();
                    diesel::insert_into(tenants::table)
                        .values((
                            tenants::id.eq(&id),
                            tenants::name.eq(tenant_name),
                            tenants::created_at.eq(now),
                        ))
                        .execute(c)
                        .await?;
                    id
                }
            };
            diesel::insert_into(api_keys::table)
                .values((
                    api_keys::id.eq(key_id),
                    api_keys::tenant_id.eq(&tenant_id),
                    api_keys::hash.eq(hash),
                    api_keys::created_at.eq(now),
                ))
                .execute(c)
                .await?;
            c.insert_audit(vec![fact(
                &tenant_id,
                now,
                "api_key.created",
                Some(key_id),
                serde_json::json!({ "key_id": key_id }),
            )])
            .await?;
            Ok::<_, DieselError>(tenant_id)
        })
        .map_err(backend)?;
        Ok(TenantId::from_trusted(tenant))
    }

    async fn api_key(&self, key_id: &str) -> PortResult<Option<(TenantId, String)>> {
        let row: Option<(String, String)> = with_conn!(&self.db, |c| {
            api_keys::table
                .filter(api_keys::id.eq(key_id))
                .filter(api_keys::revoked_at.is_null())
                .select((api_keys::tenant_id, api_keys::hash))
                .first(c)
                .await
                .optional()
                .map_err(backend)?
        });
        Ok(row.map(|(t, h)| (TenantId::from_trusted(t), h)))
    }

    async fn tenant_defaults(&self, tenant: &TenantId) -> PortResult<TenantDefaults> {
        tenant_defaults(&self.db, tenant).await
    }

    async fn set_tenant_defaults(
        &self,
        tenant: &TenantId,
        defaults: &TenantDefaults,
    ) -> PortResult<()> {
        set_tenant_defaults(&self.db, tenant, defaults).await
    }
}

impl SqlStore {
    /// Revokes an API key (recorded in its tenant's audit chain); false when there is
    /// no such live key.
    pub async fn revoke_api_key(&self, key_id: &str) -> PortResult<bool> {
        let now = now_ms();
        write_tx!(&self.db, |c| {
            let tenant: Option<String> = diesel::update(
                api_keys::table
                    .filter(api_keys::id.eq(key_id))
                    .filter(api_keys::revoked_at.is_null()),
            )
            .set(api_keys::revoked_at.eq(now))
            .returning(api_keys::tenant_id)
            .get_result(c)
            .await
            .optional()?;
            let Some(t) = tenant else {
                return Ok(false);
            };
            c.insert_audit(vec![fact(
                &t,
                now,
                "api_key.revoked",
                Some(key_id),
                serde_json::json!({ "key_id": key_id }),
            )])
            .await?;
            Ok::<_, DieselError>(true)
        })
        .map_err(backend)
    }
    /// The id of the tenant named `name` (`hermod keys create --tenant NAME`).
    pub async fn tenant_id_by_name(&self, name: &str) -> PortResult<Option<TenantId>> {
        let id: Option<String> = with_conn!(&self.db, |c| {
            tenants::table
                .filter(tenants::name.eq(name))
                .select(tenants::id)
                .first(c)
                .await
                .optional()
                .map_err(backend)?
        });
        Ok(id.map(TenantId::from_trusted))
    }
}

async fn tenant_defaults(db: &Db, tenant: &TenantId) -> PortResult<TenantDefaults> {
    let raw: Option<Option<String>> = with_conn!(db, |c| {
        tenants::table
            .filter(tenants::id.eq(tenant.as_str()))
            .select(tenants::defaults)
            .first(c)
            .await
            .optional()
            .map_err(backend)?
    });
    Ok(defaults_of(raw.flatten().as_deref()))
}

async fn set_tenant_defaults(
    db: &Db,
    tenant: &TenantId,
    defaults: &TenantDefaults,
) -> PortResult<()> {
    let raw = serde_json::to_string(defaults).map_err(backend)?;
    write_tx!(db, |c| {
        diesel::update(tenants::table.filter(tenants::id.eq(tenant.as_str())))
            .set(tenants::defaults.eq(&raw))
            .execute(c)
            .await
    })
    .map_err(backend)?;
    Ok(())
}
