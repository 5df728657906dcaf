//! Tenant administration (see `hermod_core::tenant`): tenants with the operator's
//! limits, keys with roles, and the console's sessions. Every change to a tenant or a
//! key is a fact of the tenant's audit chain.

use async_trait::async_trait;
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel_async::RunQueryDsl;
use hermod_core::plan::TenantDefaults;
use hermod_core::ports::{PortError, PortResult};
use hermod_core::tenant::*;
use hermod_core::{TenantId, now_ms};
use serde_json::json;

use crate::sql::batch::BatchInsert as _;
use crate::sql::chain::fact;
use crate::sql::schema::*;
use crate::{SqlStore, backend, with_conn, write_tx};

type TenantRow = (
    String,
    String,
    i64,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<i64>,
);

type KeyRow = (
    String,
    String,
    Option<String>,
    String,
    i64,
    Option<i64>,
    Option<i64>,
);

fn limits_of(raw: Option<&str>) -> TenantLimits {
    raw.and_then(|r| serde_json::from_str(r).ok())
        .unwrap_or_default()
}

fn to_key(r: KeyRow) -> ApiKeyInfo {
    ApiKeyInfo {
        id: r.0,
        tenant_id: TenantId::from_trusted(r.1),
        name: r.2,
        role: Role::parse(&r.3).unwrap_or(Role::Read),
        created_at: r.4,
        expires_at: r.5,
        last_used_at: r.6,
    }
}

macro_rules! key_columns {
    () => {
        (
            api_keys::id,
            api_keys::tenant_id,
            api_keys::name,
            api_keys::role,
            api_keys::created_at,
            api_keys::expires_at,
            api_keys::last_used_at,
        )
    };
}

macro_rules! tenant_columns {
    () => {
        (
            tenants::id,
            tenants::name,
            tenants::created_at,
            tenants::limits,
            tenants::suspended_at,
            tenants::defaults,
            tenants::retention_days,
        )
    };
}

impl SqlStore {
    async fn tenants_where(&self, id: Option<&str>) -> PortResult<Vec<TenantInfo>> {
        let id = id.map(str::to_owned);
        let (rows, counts): (Vec<TenantRow>, Vec<(String, i64)>) = with_conn!(&self.db, |c| {
            let mut q = tenants::table
                .filter(tenants::deleted_at.is_null())
                .select(tenant_columns!())
                .order(tenants::name.asc())
                .into_boxed();
            let mut k = api_keys::table
                .filter(api_keys::revoked_at.is_null())
                .group_by(api_keys::tenant_id)
                .select((api_keys::tenant_id, diesel::dsl::count_star()))
                .into_boxed();
            if let Some(id) = &id {
                q = q.filter(tenants::id.eq(id.clone()));
                k = k.filter(api_keys::tenant_id.eq(id.clone()));
            }
            let rows = q.load(c).await.map_err(backend)?;
            let counts = k.load(c).await.map_err(backend)?;
            (rows, counts)
        });
        Ok(rows
            .into_iter()
            .map(|r| TenantInfo {
                keys: counts
                    .iter()
                    .find(|(t, _)| *t == r.0)
                    .map_or(0, |(_, n)| *n),
                id: TenantId::from_trusted(r.0),
                name: r.1,
                created_at: r.2,
                limits: limits_of(r.3.as_deref()),
                suspended_at: r.4,
                defaults: r
                    .5
                    .as_deref()
                    .and_then(|d| serde_json::from_str::<TenantDefaults>(d).ok())
                    .unwrap_or_default(),
                retention_days: r.6,
            })
            .collect())
    }
}

/// The facts a patch makes (one per setting it changes).
fn patch_facts(tenant: &str, patch: &TenantPatch, now: i64) -> Vec<crate::sql::rows::NewAuditRow> {
    let mut facts = Vec::new();
    if let Some(l) = &patch.limits {
        facts.push(fact(tenant, now, "tenant.limits_set", None, json!(l)));
    }
    if let Some(d) = &patch.defaults {
        facts.push(fact(tenant, now, "tenant.defaults_set", None, json!(d)));
    }
    if let Some(r) = &patch.retention_days {
        facts.push(fact(
            tenant,
            now,
            "tenant.retention_set",
            None,
            json!({ "days": r }),
        ));
    }
    match patch.suspended {
        Some(true) => facts.push(fact(tenant, now, "tenant.suspended", None, json!({}))),
        Some(false) => facts.push(fact(tenant, now, "tenant.resumed", None, json!({}))),
        None => {}
    }
    facts
}

/// Runs a tenant patch's updates on connection `$c` (either backend) in the current
/// transaction.
macro_rules! apply_patch {
    ($c:expr, $id:expr, $patch:expr, $now:expr) => {{
        let target = tenants::table.filter(tenants::id.eq($id));
        if let Some(l) = &$patch.limits {
            let raw = serde_json::to_string(l).ok();
            diesel::update(target)
                .set(tenants::limits.eq(raw))
                .execute($c)
                .await?;
        }
        if let Some(d) = &$patch.defaults {
            let raw = serde_json::to_string(d).ok();
            diesel::update(target)
                .set(tenants::defaults.eq(raw))
                .execute($c)
                .await?;
        }
        if let Some(r) = $patch.retention_days {
            diesel::update(target)
                .set(tenants::retention_days.eq(r))
                .execute($c)
                .await?;
        }
        match $patch.suspended {
            Some(true) => {
                diesel::update(target.filter(tenants::suspended_at.is_null()))
                    .set(tenants::suspended_at.eq(Some($now)))
                    .execute($c)
                    .await?;
            }
            Some(false) => {
                diesel::update(target)
                    .set(tenants::suspended_at.eq(None::<i64>))
                    .execute($c)
                    .await?;
            }
            None => {}
        }
    }};
}

#[async_trait]
impl TenantAdmin for SqlStore {
    async fn key_auth(&self, key_id: &str) -> PortResult<Option<KeyAuth>> {
        #[allow(clippy::type_complexity)]
        let row: Option<(
            String,
            String,
            String,
            Option<i64>,
            Option<String>,
            Option<i64>,
        )> = with_conn!(&self.db, |c| {
            api_keys::table
                .inner_join(tenants::table.on(tenants::id.eq(api_keys::tenant_id)))
                .filter(api_keys::id.eq(key_id))
                .filter(api_keys::revoked_at.is_null())
                .filter(tenants::deleted_at.is_null())
                .select((
                    api_keys::tenant_id,
                    api_keys::hash,
                    api_keys::role,
                    api_keys::expires_at,
                    tenants::limits,
                    tenants::suspended_at,
                ))
                .first(c)
                .await
                .optional()
                .map_err(backend)?
        });
        Ok(row.map(
            |(tenant, hash, role, expires_at, limits, suspended)| KeyAuth {
                tenant: TenantId::from_trusted(tenant),
                hash,
                role: Role::parse(&role).unwrap_or(Role::Read),
                expires_at,
                suspended: suspended.is_some(),
                limits: limits_of(limits.as_deref()),
            },
        ))
    }

    async fn touch_keys(&self, used: &[(String, i64)]) -> PortResult<()> {
        if used.is_empty() {
            return Ok(());
        }
        let used = used.to_vec();
        write_tx!(&self.db, |c| {
            for (id, at) in &used {
                diesel::update(api_keys::table.filter(api_keys::id.eq(id)))
                    .set(api_keys::last_used_at.eq(Some(*at)))
                    .execute(c)
                    .await?;
            }
            Ok::<_, DieselError>(())
        })
        .map_err(backend)
    }

    async fn create_tenant(&self, name: &str, patch: &TenantPatch) -> PortResult<TenantInfo> {
        let now = now_ms();
        let id = TenantId::generate().to_string();
        let created = write_tx!(&self.db, |c| {
            let taken: i64 = tenants::table
                .filter(tenants::name.eq(name))
                .count()
                .get_result(c)
                .await?;
            if taken > 0 {
                return Ok(false);
            }
            diesel::insert_into(tenants::table)
                .values((
                    tenants::id.eq(&id),
                    tenants::name.eq(name),
                    tenants::created_at.eq(now),
                ))
                .execute(c)
                .await?;
            apply_patch!(c, id.as_str(), patch, now);
            let mut facts = vec![fact(
                &id,
                now,
                "tenant.created",
                None,
                json!({ "name": name }),
            )];
            facts.extend(patch_facts(&id, patch, now));
            c.insert_audit(facts).await?;
            Ok::<_, DieselError>(true)
        })
        .map_err(backend)?;
        if !created {
            return Err(PortError::Conflict(format!(
                "a tenant named '{name}' exists"
            )));
        }
        self.tenants_where(Some(&id))
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| PortError::Conflict("the tenant was deleted meanwhile".into()))
    }

    async fn list_tenants(&self) -> PortResult<Vec<TenantInfo>> {
        self.tenants_where(None).await
    }

    async fn tenant(&self, id: &TenantId) -> PortResult<Option<TenantInfo>> {
        Ok(self
            .tenants_where(Some(id.as_str()))
            .await?
            .into_iter()
            .next())
    }

    async fn update_tenant(
        &self,
        id: &TenantId,
        patch: &TenantPatch,
    ) -> PortResult<Option<TenantInfo>> {
        let now = now_ms();
        let found = write_tx!(&self.db, |c| {
            let n: i64 = tenants::table
                .filter(tenants::id.eq(id.as_str()))
                .filter(tenants::deleted_at.is_null())
                .count()
                .get_result(c)
                .await?;
            if n == 0 {
                return Ok(false);
            }
            apply_patch!(c, id.as_str(), patch, now);
            c.insert_audit(patch_facts(id.as_str(), patch, now)).await?;
            Ok::<_, DieselError>(true)
        })
        .map_err(backend)?;
        if !found {
            return Ok(None);
        }
        self.tenant(id).await
    }

    async fn delete_tenant(&self, id: &TenantId) -> PortResult<bool> {
        let now = now_ms();
        write_tx!(&self.db, |c| {
            let live = tenants::table
                .filter(tenants::id.eq(id.as_str()))
                .filter(tenants::deleted_at.is_null());
            let name: Option<String> = live.select(tenants::name).first(c).await.optional()?;
            let Some(name) = name else {
                return Ok(false);
            };
            // The name is free again for a new tenant.
            diesel::update(live)
                .set((
                    tenants::deleted_at.eq(Some(now)),
                    tenants::name.eq(format!("{name}~deleted-{now}")),
                ))
                .execute(c)
                .await?;
            diesel::update(
                api_keys::table
                    .filter(api_keys::tenant_id.eq(id.as_str()))
                    .filter(api_keys::revoked_at.is_null()),
            )
            .set(api_keys::revoked_at.eq(Some(now)))
            .execute(c)
            .await?;
            diesel::delete(
                console_sessions::table.filter(console_sessions::tenant_id.eq(id.as_str())),
            )
            .execute(c)
            .await?;
            c.insert_audit(vec![fact(
                id.as_str(),
                now,
                "tenant.deleted",
                None,
                json!({}),
            )])
            .await?;
            Ok::<_, DieselError>(true)
        })
        .map_err(backend)
    }

    async fn add_key(&self, tenant: &TenantId, key: &NewApiKey) -> PortResult<bool> {
        let now = now_ms();
        write_tx!(&self.db, |c| {
            let n: i64 = tenants::table
                .filter(tenants::id.eq(tenant.as_str()))
                .filter(tenants::deleted_at.is_null())
                .count()
                .get_result(c)
                .await?;
            if n == 0 {
                return Ok(false);
            }
            diesel::insert_into(api_keys::table)
                .values((
                    api_keys::id.eq(&key.id),
                    api_keys::tenant_id.eq(tenant.as_str()),
                    api_keys::hash.eq(&key.hash),
                    api_keys::created_at.eq(now),
                    api_keys::name.eq(key.name.as_deref()),
                    api_keys::role.eq(key.role.as_str()),
                    api_keys::expires_at.eq(key.expires_at),
                ))
                .execute(c)
                .await?;
            c.insert_audit(vec![fact(
                tenant.as_str(),
                now,
                "api_key.created",
                Some(&key.id),
                json!({ "key_id": key.id, "role": key.role.as_str(), "name": key.name,
                        "expires_at": key.expires_at }),
            )])
            .await?;
            Ok::<_, DieselError>(true)
        })
        .map_err(backend)
    }

    async fn list_keys(&self, tenant: &TenantId) -> PortResult<Vec<ApiKeyInfo>> {
        let rows: Vec<KeyRow> = with_conn!(&self.db, |c| {
            api_keys::table
                .filter(api_keys::tenant_id.eq(tenant.as_str()))
                .filter(api_keys::revoked_at.is_null())
                .order((api_keys::created_at.desc(), api_keys::id.desc()))
                .select(key_columns!())
                .load(c)
                .await
                .map_err(backend)?
        });
        Ok(rows.into_iter().map(to_key).collect())
    }

    async fn revoke_key(&self, tenant: &TenantId, key_id: &str) -> PortResult<bool> {
        let now = now_ms();
        write_tx!(&self.db, |c| {
            let n = diesel::update(
                api_keys::table
                    .filter(api_keys::id.eq(key_id))
                    .filter(api_keys::tenant_id.eq(tenant.as_str()))
                    .filter(api_keys::revoked_at.is_null()),
            )
            .set(api_keys::revoked_at.eq(Some(now)))
            .execute(c)
            .await?;
            if n == 0 {
                return Ok(false);
            }
            diesel::delete(console_sessions::table.filter(console_sessions::key_id.eq(key_id)))
                .execute(c)
                .await?;
            c.insert_audit(vec![fact(
                tenant.as_str(),
                now,
                "api_key.revoked",
                Some(key_id),
                json!({ "key_id": key_id }),
            )])
            .await?;
            Ok::<_, DieselError>(true)
        })
        .map_err(backend)
    }

    async fn rotate_key(
        &self,
        tenant: &TenantId,
        key_id: &str,
        new_id: &str,
        new_hash: &str,
    ) -> PortResult<Option<ApiKeyInfo>> {
        let now = now_ms();
        let rotated = write_tx!(&self.db, |c| {
            let old: Option<(Option<String>, String, Option<i64>)> = diesel::update(
                api_keys::table
                    .filter(api_keys::id.eq(key_id))
                    .filter(api_keys::tenant_id.eq(tenant.as_str()))
                    .filter(api_keys::revoked_at.is_null()),
            )
            .set(api_keys::revoked_at.eq(Some(now)))
            .returning((api_keys::name, api_keys::role, api_keys::expires_at))
            .get_result(c)
            .await
            .optional()?;
            let Some((name, role, expires_at)) = old else {
                return Ok(false);
            };
            diesel::insert_into(api_keys::table)
                .values((
                    api_keys::id.eq(new_id),
                    api_keys::tenant_id.eq(tenant.as_str()),
                    api_keys::hash.eq(new_hash),
                    api_keys::created_at.eq(now),
                    api_keys::name.eq(name),
                    api_keys::role.eq(role),
                    api_keys::expires_at.eq(expires_at),
                ))
                .execute(c)
                .await?;
            diesel::delete(console_sessions::table.filter(console_sessions::key_id.eq(key_id)))
                .execute(c)
                .await?;
            c.insert_audit(vec![fact(
                tenant.as_str(),
                now,
                "api_key.rotated",
                Some(new_id),
                json!({ "key_id": new_id, "replaces": key_id }),
            )])
            .await?;
            Ok::<_, DieselError>(true)
        })
        .map_err(backend)?;
        if !rotated {
            return Ok(None);
        }
        let row: Option<KeyRow> = with_conn!(&self.db, |c| {
            api_keys::table
                .filter(api_keys::id.eq(new_id))
                .select(key_columns!())
                .first(c)
                .await
                .optional()
                .map_err(backend)?
        });
        Ok(row.map(to_key))
    }

    async fn messages_since(&self, tenant: &TenantId, since: i64) -> PortResult<u64> {
        let n: i64 = with_conn!(&self.db, |c| {
            // Index-only: (tenant_id, status, id), ids start with their time.
            messages::table
                .filter(messages::tenant_id.eq(tenant.as_str()))
                .filter(messages::status.eq_any(all_statuses()))
                .filter(messages::id.ge(hermod_core::insights::message_id_at(since)))
                .count()
                .get_result(c)
                .await
                .map_err(backend)?
        });
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn create_session(&self, s: &ConsoleSession) -> PortResult<()> {
        let (tenant, key, role) = match &s.principal {
            Principal::Operator { token_hash } => {
                (None, Some(token_hash.clone()), "operator".to_owned())
            }
            Principal::Tenant {
                tenant,
                key_id,
                role,
            } => (
                Some(tenant.to_string()),
                Some(key_id.clone()),
                role.as_str().to_owned(),
            ),
        };
        let s = s.clone();
        write_tx!(&self.db, |c| {
            diesel::delete(
                console_sessions::table.filter(console_sessions::expires_at.lt(s.created_at)),
            )
            .execute(c)
            .await?;
            diesel::insert_into(console_sessions::table)
                .values((
                    console_sessions::id.eq(&s.id),
                    console_sessions::tenant_id.eq(&tenant),
                    console_sessions::key_id.eq(&key),
                    console_sessions::role.eq(&role),
                    console_sessions::csrf.eq(&s.csrf),
                    console_sessions::created_at.eq(s.created_at),
                    console_sessions::expires_at.eq(s.expires_at),
                ))
                .execute(c)
                .await?;
            Ok::<_, DieselError>(())
        })
        .map_err(backend)
    }

    async fn session(&self, id: &str) -> PortResult<Option<ConsoleSession>> {
        let now = now_ms();
        #[allow(clippy::type_complexity)]
        let row: Option<(
            String,
            Option<String>,
            Option<String>,
            String,
            String,
            i64,
            i64,
        )> = with_conn!(&self.db, |c| {
            console_sessions::table
                .filter(console_sessions::id.eq(id))
                .filter(console_sessions::expires_at.gt(now))
                .select((
                    console_sessions::id,
                    console_sessions::tenant_id,
                    console_sessions::key_id,
                    console_sessions::role,
                    console_sessions::csrf,
                    console_sessions::created_at,
                    console_sessions::expires_at,
                ))
                .first(c)
                .await
                .optional()
                .map_err(backend)?
        });
        let Some((id, tenant, key_id, role, csrf, created_at, expires_at)) = row else {
            return Ok(None);
        };
        let principal = match (tenant, key_id) {
            (None, Some(token_hash)) if role == "operator" => Principal::Operator { token_hash },
            (Some(t), Some(k)) => Principal::Tenant {
                tenant: TenantId::from_trusted(t),
                key_id: k,
                role: Role::parse(&role).unwrap_or(Role::Read),
            },
            _ => return Ok(None),
        };
        Ok(Some(ConsoleSession {
            id,
            principal,
            csrf,
            created_at,
            expires_at,
        }))
    }

    async fn end_session(&self, id: &str) -> PortResult<()> {
        write_tx!(&self.db, |c| {
            diesel::delete(console_sessions::table.filter(console_sessions::id.eq(id)))
                .execute(c)
                .await
        })
        .map_err(backend)?;
        Ok(())
    }
}

/// Every status, so that a query on `(tenant_id, status, id)` needs only the index.
pub(crate) fn all_statuses() -> Vec<&'static str> {
    hermod_core::Status::ALL
        .iter()
        .map(|s| s.as_str())
        .collect()
}
