//! The Twilio API's records (see `hermod_core::twilio`): accounts with their sealed
//! auth tokens, numbers' `SmsUrl`, and removing messages' bodies or messages.

use async_trait::async_trait;
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel_async::RunQueryDsl;
use hermod_core::ports::{PortError, PortResult};
use hermod_core::twilio::{Account, NumberSettings, Removal, TwilioStore};
use hermod_core::{MessageId, Secret, Status, TenantId, now_ms};

use crate::sql::batch::BatchInsert as _;
use crate::sql::chain::fact;
use crate::sql::common::parse_status;
use crate::sql::rows::MessageRow;
use crate::sql::schema::*;
use crate::sql::seal::{SubjectKeys as _, message_subject, open_message, seal_message};
use crate::{SqlStore, backend, with_conn, write_tx};

/// The sealed-field name of auth tokens.
pub(crate) const TOKEN: &str = "twilio.auth_token";

type AccountRow = (String, String, String, i64, i64);

impl SqlStore {
    fn account(&self, r: AccountRow) -> PortResult<Account> {
        let token = self
            .vault
            .open_secret(TOKEN, &r.2)
            .map_err(|e| PortError::Backend(Box::new(e)))?;
        Ok(Account {
            tenant_id: TenantId::from_trusted(r.0),
            sid: r.1,
            auth_token: Secret(token),
            created_at: r.3,
            updated_at: r.4,
        })
    }

    /// The account of a tenant, or with a SID.
    async fn find_account(
        &self,
        tenant: Option<&TenantId>,
        sid: Option<&str>,
    ) -> PortResult<Option<Account>> {
        let (t, sid) = (tenant.map(|t| t.to_string()), sid.map(str::to_owned));
        let row: Option<AccountRow> = with_conn!(&self.db, |c| {
            let mut q = twilio_accounts::table
                .select((
                    twilio_accounts::tenant_id,
                    twilio_accounts::account_sid,
                    twilio_accounts::auth_token,
                    twilio_accounts::created_at,
                    twilio_accounts::updated_at,
                ))
                .into_boxed();
            if let Some(t) = &t {
                q = q.filter(twilio_accounts::tenant_id.eq(t.clone()));
            }
            if let Some(s) = &sid {
                q = q.filter(twilio_accounts::account_sid.eq(s.clone()));
            }
            q.first(c).await.optional().map_err(backend)?
        });
        row.map(|r| self.account(r)).transpose()
    }

    /// Blanks a finished message's body and content, sealed again under its key;
    /// `delete` also hides it.
    async fn remove(&self, tenant: &TenantId, id: &MessageId, delete: bool) -> PortResult<Removal> {
        let vault = self.vault.clone();
        let t = tenant.to_string();
        let id = id.to_string();
        let now = now_ms();
        write_tx!(&self.db, |c| {
            let row: Option<MessageRow> = messages::table
                .filter(messages::id.eq(&id))
                .filter(messages::tenant_id.eq(&t))
                .filter(messages::deleted_at.is_null())
                .select(MessageRow::as_select())
                .first(c)
                .await
                .optional()?;
            let Some(mut row) = row else {
                return Ok::<_, DieselError>(Removal::NotFound);
            };
            let status = parse_status(&row.status);
            if !finished(status) {
                return Ok(Removal::InProgress(status));
            }
            let pairs: Vec<(String, String)> = message_subject(&row).into_iter().collect();
            let keys = c.load_keys(&vault, &pairs).await?;
            open_message(&keys, &mut row);
            row.body = String::new();
            row.content = None;
            if let Some((_, key)) = <[_]>::first(&pairs).and_then(|p| keys.get(p)) {
                seal_message(&vault, key, &mut row)?;
            }
            diesel::update(messages::table.filter(messages::id.eq(&id)))
                .set((
                    messages::body.eq(&row.body),
                    messages::content.eq(None::<String>),
                    delete.then(|| messages::metadata.eq(None::<String>)),
                    messages::deleted_at.eq(delete.then_some(now)),
                    messages::updated_at.eq(now),
                ))
                .execute(c)
                .await?;
            c.insert_audit(vec![fact(
                &t,
                now,
                if delete {
                    "message.deleted"
                } else {
                    "message.redacted"
                },
                Some(&id),
                serde_json::json!({ "via": "twilio" }),
            )])
            .await?;
            Ok(Removal::Done)
        })
        .map_err(backend)
    }
}

/// Past the point where its body is still needed.
fn finished(s: Status) -> bool {
    s.is_failure() || matches!(s, Status::Sent | Status::Delivered | Status::Read)
}

#[async_trait]
impl TwilioStore for SqlStore {
    async fn account_of(&self, tenant: &TenantId) -> PortResult<Option<Account>> {
        self.find_account(Some(tenant), None).await
    }

    async fn account_by_sid(&self, sid: &str) -> PortResult<Option<Account>> {
        self.find_account(None, Some(sid)).await
    }

    async fn put_account(
        &self,
        tenant: &TenantId,
        sid: &str,
        token: &str,
        now: i64,
    ) -> PortResult<Option<Account>> {
        let sealed = self
            .vault
            .seal_secret(TOKEN, token)
            .map_err(|e| PortError::Backend(Box::new(e)))?;
        let t = tenant.to_string();
        let sid = sid.to_owned();
        let stored: Option<(String, i64)> = write_tx!(&self.db, |c| {
            let known: i64 = tenants::table
                .filter(tenants::id.eq(&t))
                .filter(tenants::deleted_at.is_null())
                .count()
                .get_result(c)
                .await?;
            if known == 0 {
                return Ok::<_, DieselError>(None);
            }
            let existing: Option<(String, i64)> = twilio_accounts::table
                .find(&t)
                .select((twilio_accounts::account_sid, twilio_accounts::created_at))
                .first(c)
                .await
                .optional()?;
            let (kind, stored) = match existing {
                Some((old_sid, created)) => {
                    diesel::update(twilio_accounts::table.find(&t))
                        .set((
                            twilio_accounts::auth_token.eq(&sealed),
                            twilio_accounts::updated_at.eq(now),
                        ))
                        .execute(c)
                        .await?;
                    ("twilio.token_rotated", (old_sid, created))
                }
                None => {
                    diesel::insert_into(twilio_accounts::table)
                        .values((
                            twilio_accounts::tenant_id.eq(&t),
                            twilio_accounts::account_sid.eq(&sid),
                            twilio_accounts::auth_token.eq(&sealed),
                            twilio_accounts::created_at.eq(now),
                            twilio_accounts::updated_at.eq(now),
                        ))
                        .execute(c)
                        .await?;
                    ("twilio.account_created", (sid.clone(), now))
                }
            };
            c.insert_audit(vec![fact(
                &t,
                now,
                kind,
                Some(&stored.0),
                serde_json::json!({}),
            )])
            .await?;
            Ok(Some(stored))
        })
        .map_err(backend)?;
        Ok(stored.map(|(sid, created_at)| Account {
            tenant_id: tenant.clone(),
            sid,
            auth_token: Secret(token.to_owned()),
            created_at,
            updated_at: now,
        }))
    }

    async fn numbers(&self, tenant: &TenantId) -> PortResult<Vec<NumberSettings>> {
        let t = tenant.to_string();
        let rows: Vec<(String, Option<String>, String, Option<String>, i64)> =
            with_conn!(&self.db, |c| {
                twilio_numbers::table
                    .filter(twilio_numbers::tenant_id.eq(&t))
                    .order(twilio_numbers::phone_number.asc())
                    .select((
                        twilio_numbers::phone_number,
                        twilio_numbers::sms_url,
                        twilio_numbers::sms_method,
                        twilio_numbers::friendly_name,
                        twilio_numbers::updated_at,
                    ))
                    .load(c)
                    .await
                    .map_err(backend)?
            });
        Ok(rows
            .into_iter()
            .map(
                |(phone_number, sms_url, sms_method, friendly_name, updated_at)| NumberSettings {
                    tenant_id: tenant.clone(),
                    phone_number,
                    sms_url,
                    sms_method,
                    friendly_name,
                    updated_at,
                },
            )
            .collect())
    }

    async fn put_number(&self, n: &NumberSettings) -> PortResult<()> {
        let n = n.clone();
        write_tx!(&self.db, |c| {
            diesel::delete(
                twilio_numbers::table
                    .filter(twilio_numbers::tenant_id.eq(n.tenant_id.as_str()))
                    .filter(twilio_numbers::phone_number.eq(&n.phone_number)),
            )
            .execute(c)
            .await?;
            diesel::insert_into(twilio_numbers::table)
                .values((
                    twilio_numbers::tenant_id.eq(n.tenant_id.as_str()),
                    twilio_numbers::phone_number.eq(&n.phone_number),
                    twilio_numbers::sms_url.eq(&n.sms_url),
                    twilio_numbers::sms_method.eq(&n.sms_method),
                    twilio_numbers::friendly_name.eq(&n.friendly_name),
                    twilio_numbers::updated_at.eq(n.updated_at),
                ))
                .execute(c)
                .await?;
            Ok::<_, DieselError>(())
        })
        .map_err(backend)
    }

    async fn redact_message(&self, tenant: &TenantId, id: &MessageId) -> PortResult<Removal> {
        self.remove(tenant, id, false).await
    }

    async fn delete_message(&self, tenant: &TenantId, id: &MessageId) -> PortResult<Removal> {
        self.remove(tenant, id, true).await
    }
}
