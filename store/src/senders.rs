//! Sender assignments (see `hermod_core::sender`).

use async_trait::async_trait;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use hermod_core::inbound::sender_key;
use hermod_core::ports::{PortError, PortResult};
use hermod_core::sender::{Sender, Senders};
use hermod_core::{TenantId, now_ms};

use crate::sql::batch::BatchInsert as _;
use crate::sql::chain::fact;
use crate::sql::schema::*;
use crate::{SqlStore, backend, with_conn, write_tx};

/// What an assignment came to.
enum Assigned {
    Done,
    NoSuchTenant,
    /// Another tenant owns the sender.
    Taken,
}

#[async_trait]
impl Senders for SqlStore {
    async fn list_senders(&self, tenant: Option<&TenantId>) -> PortResult<Vec<Sender>> {
        let t = tenant.map(|t| t.to_string());
        let rows: Vec<(String, String, bool, i64)> = with_conn!(&self.db, |c| {
            let mut q = senders::table.into_boxed();
            if let Some(t) = &t {
                q = q.filter(senders::tenant_id.eq(t.clone()));
            }
            q.order(senders::sender.asc())
                .select((
                    senders::display,
                    senders::tenant_id,
                    senders::is_default,
                    senders::created_at,
                ))
                .load(c)
                .await
                .map_err(backend)?
        });
        Ok(rows
            .into_iter()
            .map(|(sender, t, default, created_at)| Sender {
                sender,
                tenant_id: TenantId::from_trusted(t),
                default,
                created_at,
            })
            .collect())
    }

    async fn assign_sender(&self, s: &Sender) -> PortResult<bool> {
        let key = sender_key(&s.sender);
        let tenant = s.tenant_id.to_string();
        let now = now_ms();
        let r = write_tx!(&self.db, |c| {
            let known: i64 = tenants::table
                .filter(tenants::id.eq(&tenant))
                .count()
                .get_result(c)
                .await?;
            if known == 0 {
                return Ok::<_, diesel::result::Error>(Assigned::NoSuchTenant);
            }
            let owner: Option<String> = senders::table
                .find(&key)
                .select(senders::tenant_id)
                .first(c)
                .await
                .optional()?;
            if owner.is_some_and(|o| o != tenant) {
                return Ok(Assigned::Taken);
            }
            if s.default {
                diesel::update(senders::table.filter(senders::tenant_id.eq(&tenant)))
                    .set(senders::is_default.eq(false))
                    .execute(c)
                    .await?;
            }
            diesel::insert_into(senders::table)
                .values((
                    senders::sender.eq(&key),
                    senders::display.eq(s.sender.trim()),
                    senders::tenant_id.eq(&tenant),
                    senders::is_default.eq(s.default),
                    senders::created_at.eq(now),
                ))
                .on_conflict(senders::sender)
                .do_update()
                .set((
                    senders::display.eq(s.sender.trim()),
                    senders::is_default.eq(s.default),
                ))
                .execute(c)
                .await?;
            c.insert_audit(vec![fact(
                &tenant,
                now,
                "sender.assigned",
                None,
                serde_json::json!({"sender": s.sender.trim(), "default": s.default}),
            )])
            .await?;
            Ok(Assigned::Done)
        })
        .map_err(backend)?;
        match r {
            Assigned::Done => Ok(true),
            Assigned::NoSuchTenant => Ok(false),
            Assigned::Taken => Err(PortError::Conflict(format!(
                "'{}' belongs to another tenant",
                s.sender
            ))),
        }
    }

    async fn remove_sender(&self, sender: &str) -> PortResult<bool> {
        let key = sender_key(sender);
        let now = now_ms();
        write_tx!(&self.db, |c| {
            let owner: Option<String> = diesel::delete(senders::table.find(&key))
                .returning(senders::tenant_id)
                .get_result(c)
                .await
                .optional()?;
            if let Some(t) = &owner {
                c.insert_audit(vec![fact(
                    t,
                    now,
                    "sender.removed",
                    None,
                    serde_json::json!({"sender": key}),
                )])
                .await?;
            }
            Ok::<_, diesel::result::Error>(owner.is_some())
        })
        .map_err(backend)
    }
}
