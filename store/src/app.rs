//! Devices of the app channel and their inboxes of sealed envelopes (ciphertext only).

use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel_async::RunQueryDsl;
use hermod_core::app::{Device, Envelope};
use hermod_core::plan::Withdrawal;
use hermod_core::ports::PortResult;
use hermod_core::{AttemptId, TenantId, now_ms};

use crate::sql::batch::BatchInsert as _;
use crate::sql::rows::*;
use crate::sql::schema::*;
use crate::{Db, SqlStore, backend, with_conn, write_tx};
use async_trait::async_trait;

fn to_device(r: DeviceRow) -> Device {
    Device {
        id: r.id,
        tenant_id: TenantId::from_trusted(r.tenant_id),
        recipient: r.recipient,
        user_id: r.user_id,
        public_key: r.public_key,
        aead: r.aead,
        platform: r.platform,
        label: r.label,
        token_hash: r.token_hash,
        created_at: r.created_at,
        updated_at: r.updated_at,
        revoked_at: r.revoked_at,
    }
}

async fn register(db: &Db, d: &Device) -> PortResult<()> {
    let row = DeviceRow {
        id: d.id.clone(),
        tenant_id: d.tenant_id.to_string(),
        recipient: d.recipient.clone(),
        user_id: d.user_id.clone(),
        public_key: d.public_key.clone(),
        aead: d.aead.clone(),
        platform: d.platform.clone(),
        label: d.label.clone(),
        token_hash: d.token_hash.clone(),
        created_at: d.created_at,
        updated_at: d.updated_at,
        revoked_at: None,
    };
    write_tx!(db, |c| {
        diesel::insert_into(devices::table)
            .values(&row)
            .execute(c)
            .await
    })
    .map(|_| ())
    .map_err(backend)
}

async fn get(db: &Db, id: &str) -> PortResult<Option<Device>> {
    let id = id.to_owned();
    with_conn!(db, |c| {
        devices::table
            .find(&id)
            .select(DeviceRow::as_select())
            .first(c)
            .await
            .optional()
    })
    .map(|r| r.map(to_device))
    .map_err(backend)
}

async fn list(
    db: &Db,
    tenant: &TenantId,
    recipient: Option<&str>,
    user_id: Option<&str>,
) -> PortResult<Vec<Device>> {
    let t = tenant.to_string();
    let (r, u) = (recipient.map(str::to_owned), user_id.map(str::to_owned));
    with_conn!(db, |c| {
        let mut q = devices::table
            .filter(devices::tenant_id.eq(&t))
            .filter(devices::revoked_at.is_null())
            .into_boxed();
        if let Some(r) = &r {
            q = q.filter(devices::recipient.eq(r.clone()));
        }
        if let Some(u) = &u {
            q = q.filter(devices::user_id.eq(u.clone()));
        }
        q.order(devices::id.asc())
            .limit(1000)
            .select(DeviceRow::as_select())
            .load(c)
            .await
    })
    .map(|rows| rows.into_iter().map(to_device).collect())
    .map_err(backend)
}

async fn rotate(
    db: &Db,
    tenant: &TenantId,
    id: &str,
    public_key: &str,
    aead: &str,
) -> PortResult<bool> {
    let (t, id, pk, aead) = (
        tenant.to_string(),
        id.to_owned(),
        public_key.to_owned(),
        aead.to_owned(),
    );
    let now = now_ms();
    write_tx!(db, |c| {
        diesel::update(
            devices::table
                .filter(devices::id.eq(&id))
                .filter(devices::tenant_id.eq(&t))
                .filter(devices::revoked_at.is_null()),
        )
        .set((
            devices::public_key.eq(&pk),
            devices::aead.eq(&aead),
            devices::updated_at.eq(now),
        ))
        .execute(c)
        .await
    })
    .map(|n| n > 0)
    .map_err(backend)
}

async fn revoke(db: &Db, tenant: &TenantId, id: &str) -> PortResult<bool> {
    let (t, id) = (tenant.to_string(), id.to_owned());
    let now = now_ms();
    write_tx!(db, |c| {
        let n = diesel::update(
            devices::table
                .filter(devices::id.eq(&id))
                .filter(devices::tenant_id.eq(&t))
                .filter(devices::revoked_at.is_null()),
        )
        .set((devices::revoked_at.eq(now), devices::updated_at.eq(now)))
        .execute(c)
        .await?;
        if n > 0 {
            diesel::delete(app_inbox::table.filter(app_inbox::device_id.eq(&id)))
                .execute(c)
                .await?;
        }
        Ok::<_, DieselError>(n > 0)
    })
    .map_err(backend)
}

async fn put(db: &Db, envs: &[(AttemptId, Envelope)]) -> PortResult<()> {
    let rows: Vec<NewInboxRow> = envs
        .iter()
        .map(|(attempt, e)| {
            Ok(NewInboxRow {
                device_id: e.device_id.clone(),
                message_id: e.message_id.clone(),
                attempt_id: attempt.to_string(),
                envelope: serde_json::to_string(e)?,
                created_at: e.created_at,
                expires_at: e.expires_at,
                acked_at: None,
            })
        })
        .collect::<Result<_, serde_json::Error>>()
        .map_err(backend)?;
    write_tx!(db, |c| c.insert_envelopes(rows).await.map(|_| ())).map_err(backend)
}

async fn inbox(db: &Db, device: &str, after: i64, limit: i64) -> PortResult<Vec<Envelope>> {
    let device = device.to_owned();
    let now = now_ms();
    let rows: Vec<(i64, String)> = with_conn!(db, |c| {
        app_inbox::table
            .filter(app_inbox::device_id.eq(&device))
            .filter(app_inbox::seq.gt(after))
            .filter(app_inbox::acked_at.is_null())
            .filter(
                app_inbox::expires_at
                    .is_null()
                    .or(app_inbox::expires_at.gt(now)),
            )
            .order(app_inbox::seq.asc())
            .limit(limit)
            .select((app_inbox::seq, app_inbox::envelope))
            .load(c)
            .await
    })
    .map_err(backend)?;
    Ok(rows
        .into_iter()
        .filter_map(|(seq, json)| {
            let mut e: Envelope = serde_json::from_str(&json).ok()?;
            e.seq = seq;
            Some(e)
        })
        .collect())
}

async fn ack(db: &Db, device: &str, message_id: &str) -> PortResult<Option<AttemptId>> {
    let (device, message_id) = (device.to_owned(), message_id.to_owned());
    let now = now_ms();
    write_tx!(db, |c| {
        let att: Option<String> = app_inbox::table
            .filter(app_inbox::device_id.eq(&device))
            .filter(app_inbox::message_id.eq(&message_id))
            .select(app_inbox::attempt_id)
            .first(c)
            .await
            .optional()?;
        if att.is_some() {
            let n = diesel::update(
                app_inbox::table
                    .filter(app_inbox::device_id.eq(&device))
                    .filter(app_inbox::message_id.eq(&message_id))
                    .filter(app_inbox::acked_at.is_null()),
            )
            .set(app_inbox::acked_at.eq(now))
            .execute(c)
            .await?;
            if n > 0 {
                diesel::update(messages::table.filter(messages::id.eq(&message_id)))
                    .set((messages::body.eq(""), messages::content.eq(None::<String>)))
                    .execute(c)
                    .await?;
            }
        }
        Ok::<_, DieselError>(att.map(AttemptId::from_trusted))
    })
    .map_err(backend)
}

async fn sweep(db: &Db) -> PortResult<(usize, usize)> {
    let now = now_ms();
    let finals: Vec<&str> = ["failed", "expired", "canceled", "rejected", "read"].into();
    write_tx!(db, |c| {
        let m = diesel::update(
            messages::table
                .filter(messages::channels.like("%\"app\"%"))
                .filter(messages::status.eq_any(&finals))
                .filter(messages::body.ne("").or(messages::content.is_not_null())),
        )
        .set((messages::body.eq(""), messages::content.eq(None::<String>)))
        .execute(c)
        .await?;
        let e = diesel::delete(
            app_inbox::table.filter(
                app_inbox::expires_at
                    .lt(now)
                    .or(app_inbox::acked_at.lt(now - 86_400_000)),
            ),
        )
        .execute(c)
        .await?;
        Ok::<_, DieselError>((m, e))
    })
    .map_err(backend)
}

async fn has_devices(db: &Db, who: &[(TenantId, String, Option<String>)]) -> PortResult<Vec<bool>> {
    if who.is_empty() {
        return Ok(Vec::new());
    }
    let tenants: Vec<&str> = who.iter().map(|(t, _, _)| t.as_str()).collect();
    let numbers: Vec<&str> = who.iter().map(|(_, r, _)| r.as_str()).collect();
    let users: Vec<&str> = who.iter().filter_map(|(_, _, u)| u.as_deref()).collect();
    let found: Vec<(String, Option<String>, Option<String>)> = with_conn!(db, |c| {
        devices::table
            .filter(devices::tenant_id.eq_any(&tenants))
            .filter(devices::revoked_at.is_null())
            .filter(
                devices::recipient
                    .eq_any(&numbers)
                    .or(devices::user_id.eq_any(&users)),
            )
            .select((devices::tenant_id, devices::recipient, devices::user_id))
            .load(c)
            .await
            .map_err(backend)?
    });
    Ok(who
        .iter()
        .map(|(t, r, u)| {
            found.iter().any(|(ft, fr, fu)| {
                ft == t.as_str()
                    && (fr.as_deref() == Some(r.as_str())
                        || (u.is_some() && fu.as_deref() == u.as_deref()))
            })
        })
        .collect())
}

/// Deletes an attempt's unacknowledged envelopes; `AlreadyDelivered` when a device
/// acknowledged one (then nothing is deleted: the message reached the user).
async fn withdraw(db: &Db, attempt: &AttemptId) -> PortResult<Withdrawal> {
    let aid = attempt.to_string();
    write_tx!(db, |c| {
        let acked: i64 = app_inbox::table
            .filter(app_inbox::attempt_id.eq(&aid))
            .filter(app_inbox::acked_at.is_not_null())
            .count()
            .get_result(c)
            .await?;
        if acked > 0 {
            return Ok(Withdrawal::AlreadyDelivered);
        }
        diesel::delete(app_inbox::table.filter(app_inbox::attempt_id.eq(&aid)))
            .execute(c)
            .await?;
        Ok::<_, DieselError>(Withdrawal::Withdrawn)
    })
    .map_err(backend)
}

#[async_trait]
impl hermod_core::ports::Devices for SqlStore {
    async fn register_device(&self, device: &hermod_core::app::Device) -> PortResult<()> {
        register(&self.db, device).await
    }
    async fn device(&self, id: &str) -> PortResult<Option<hermod_core::app::Device>> {
        get(&self.db, id).await
    }
    async fn list_devices(
        &self,
        tenant: &TenantId,
        recipient: Option<&str>,
        user_id: Option<&str>,
    ) -> PortResult<Vec<hermod_core::app::Device>> {
        list(&self.db, tenant, recipient, user_id).await
    }
    async fn rotate_device_key(
        &self,
        tenant: &TenantId,
        id: &str,
        public_key: &str,
        aead: &str,
    ) -> PortResult<bool> {
        rotate(&self.db, tenant, id, public_key, aead).await
    }
    async fn revoke_device(&self, tenant: &TenantId, id: &str) -> PortResult<bool> {
        revoke(&self.db, tenant, id).await
    }
    async fn put_envelopes(
        &self,
        envelopes: &[(AttemptId, hermod_core::app::Envelope)],
    ) -> PortResult<()> {
        put(&self.db, envelopes).await
    }
    async fn inbox(
        &self,
        device: &str,
        after: i64,
        limit: i64,
    ) -> PortResult<Vec<hermod_core::app::Envelope>> {
        inbox(&self.db, device, after, limit).await
    }
    async fn ack_envelope(&self, device: &str, message_id: &str) -> PortResult<Option<AttemptId>> {
        ack(&self.db, device, message_id).await
    }
    async fn sweep_app(&self) -> PortResult<(usize, usize)> {
        sweep(&self.db).await
    }

    async fn has_devices(
        &self,
        who: &[(TenantId, String, Option<String>)],
    ) -> PortResult<Vec<bool>> {
        has_devices(&self.db, who).await
    }

    async fn withdraw_envelopes(
        &self,
        attempt: &AttemptId,
    ) -> PortResult<hermod_core::plan::Withdrawal> {
        withdraw(&self.db, attempt).await
    }
}
