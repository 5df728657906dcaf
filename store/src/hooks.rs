//! Alert hooks (found by the hash of their URL token) and what they last raised.

use crate::sql::schema::*;
use crate::{SqlStore, backend, with_conn, write_tx};
use async_trait::async_trait;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use hermod_core::TenantId;
use hermod_core::alert::{Hook, HookConfig};
use hermod_core::ports::{Hooks, PortResult};

/// The field hook configurations are sealed under (AAD).
const HOOK_FIELD: &str = "hook.config";

impl SqlStore {
    fn hook_of(
        &self,
        (id, tenant, config, created_at): (String, String, String, i64),
    ) -> PortResult<Hook> {
        let plain = self
            .vault
            .open_secret(HOOK_FIELD, &config)
            .map_err(backend)?;
        Ok(Hook {
            id,
            tenant_id: TenantId::from_trusted(tenant),
            config: serde_json::from_str::<HookConfig>(&plain).map_err(backend)?,
            created_at,
        })
    }
}

#[async_trait]
impl Hooks for SqlStore {
    async fn create_hook(&self, hook: &Hook, token_hash: &str) -> PortResult<()> {
        let plain = serde_json::to_string(&hook.config).map_err(backend)?;
        let sealed = self
            .vault
            .seal_secret(HOOK_FIELD, &plain)
            .map_err(backend)?;
        write_tx!(&self.db, |c| {
            diesel::insert_into(hooks::table)
                .values((
                    hooks::id.eq(&hook.id),
                    hooks::tenant_id.eq(hook.tenant_id.as_str()),
                    hooks::token_hash.eq(token_hash),
                    hooks::config.eq(&sealed),
                    hooks::created_at.eq(hook.created_at),
                ))
                .execute(c)
                .await
        })
        .map_err(backend)?;
        Ok(())
    }

    async fn hook_by_token(&self, token_hash: &str) -> PortResult<Option<Hook>> {
        let row: Option<(String, String, String, i64)> = with_conn!(&self.db, |c| {
            hooks::table
                .filter(hooks::token_hash.eq(token_hash))
                .select((
                    hooks::id,
                    hooks::tenant_id,
                    hooks::config,
                    hooks::created_at,
                ))
                .first(c)
                .await
                .optional()
                .map_err(backend)?
        });
        row.map(|r| self.hook_of(r)).transpose()
    }

    async fn list_hooks(&self, tenant: &TenantId) -> PortResult<Vec<Hook>> {
        let rows: Vec<(String, String, String, i64)> = with_conn!(&self.db, |c| {
            hooks::table
                .filter(hooks::tenant_id.eq(tenant.as_str()))
                .order(hooks::created_at.asc())
                .select((
                    hooks::id,
                    hooks::tenant_id,
                    hooks::config,
                    hooks::created_at,
                ))
                .load(c)
                .await
                .map_err(backend)?
        });
        rows.into_iter().map(|r| self.hook_of(r)).collect()
    }

    async fn delete_hook(&self, tenant: &TenantId, id: &str) -> PortResult<bool> {
        let n = write_tx!(&self.db, |c| {
            diesel::delete(
                hooks::table
                    .filter(hooks::tenant_id.eq(tenant.as_str()))
                    .filter(hooks::id.eq(id)),
            )
            .execute(c)
            .await
        })
        .map_err(backend)?;
        Ok(n > 0)
    }

    async fn last_alerts(&self, keys: &[String]) -> PortResult<Vec<(String, String, i64)>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<(Option<String>, Option<String>, i64)> = with_conn!(&self.db, |c| {
            messages::table
                .filter(messages::alert_key.eq_any(keys))
                .select((
                    messages::alert_key,
                    messages::alert_status,
                    messages::created_at,
                ))
                .order(messages::created_at.desc())
                .limit(10_000)
                .load(c)
                .await
                .map_err(backend)?
        });
        let mut out: Vec<(String, String, i64)> = Vec::new();
        for (k, s, at) in rows {
            if let (Some(k), Some(s)) = (k, s)
                && !out.iter().any(|(seen, _, _)| *seen == k)
            {
                out.push((k, s, at));
            }
        }
        Ok(out)
    }
}
