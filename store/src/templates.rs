//! Templates and alert hooks.

use async_trait::async_trait;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use hermod_core::ports::{PortError, PortResult, Templates};
use hermod_core::template::Template;
use hermod_core::{TenantId, now_ms};

use crate::sql::common::is_unique_violation;
use crate::sql::schema::*;
use crate::{SqlStore, backend, with_conn, write_tx};

#[async_trait]
impl Templates for SqlStore {
    async fn put_template(&self, tenant: &TenantId, t: &Template, replace: bool) -> PortResult<()> {
        let body = serde_json::to_string(t).map_err(backend)?;
        let now = now_ms();
        let r = write_tx!(&self.db, |c| {
            let existing: Option<i64> = templates::table
                .filter(templates::tenant_id.eq(tenant.as_str()))
                .filter(templates::id.eq(&t.id))
                .select(templates::created_at)
                .first(c)
                .await
                .optional()?;
            match existing {
                Some(_) if !replace => Ok(false),
                Some(_) => {
                    diesel::update(
                        templates::table
                            .filter(templates::tenant_id.eq(tenant.as_str()))
                            .filter(templates::id.eq(&t.id)),
                    )
                    .set((templates::body.eq(&body), templates::updated_at.eq(now)))
                    .execute(c)
                    .await?;
                    Ok(true)
                }
                None => {
                    diesel::insert_into(templates::table)
                        .values((
                            templates::tenant_id.eq(tenant.as_str()),
                            templates::id.eq(&t.id),
                            templates::body.eq(&body),
                            templates::created_at.eq(now),
                            templates::updated_at.eq(now),
                        ))
                        .execute(c)
                        .await?;
                    Ok::<_, diesel::result::Error>(true)
                }
            }
        });
        match r {
            Ok(true) => Ok(()),
            Ok(false) => Err(PortError::Conflict(format!("template '{}' exists", t.id))),
            Err(e) if is_unique_violation(&e) => {
                Err(PortError::Conflict(format!("template '{}' exists", t.id)))
            }
            Err(e) => Err(backend(e)),
        }
    }

    async fn template(&self, tenant: &TenantId, id: &str) -> PortResult<Option<Template>> {
        let row: Option<(String, i64, i64)> = with_conn!(&self.db, |c| {
            templates::table
                .filter(templates::tenant_id.eq(tenant.as_str()))
                .filter(templates::id.eq(id))
                .select((
                    templates::body,
                    templates::created_at,
                    templates::updated_at,
                ))
                .first(c)
                .await
                .optional()
                .map_err(backend)?
        });
        row.map(to_template).transpose()
    }

    async fn list_templates(&self, tenant: &TenantId) -> PortResult<Vec<Template>> {
        let rows: Vec<(String, i64, i64)> = with_conn!(&self.db, |c| {
            templates::table
                .filter(templates::tenant_id.eq(tenant.as_str()))
                .order(templates::id.asc())
                .select((
                    templates::body,
                    templates::created_at,
                    templates::updated_at,
                ))
                .load(c)
                .await
                .map_err(backend)?
        });
        rows.into_iter().map(to_template).collect()
    }

    async fn delete_template(&self, tenant: &TenantId, id: &str) -> PortResult<bool> {
        let n = write_tx!(&self.db, |c| {
            diesel::delete(
                templates::table
                    .filter(templates::tenant_id.eq(tenant.as_str()))
                    .filter(templates::id.eq(id)),
            )
            .execute(c)
            .await
        })
        .map_err(backend)?;
        Ok(n > 0)
    }
}

fn to_template((body, created_at, updated_at): (String, i64, i64)) -> PortResult<Template> {
    let mut t: Template = serde_json::from_str(&body).map_err(backend)?;
    t.created_at = created_at;
    t.updated_at = updated_at;
    Ok(t)
}
