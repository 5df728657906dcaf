//! The SMPP server's records (see `hermod_core::smpp`): accounts, the parts of
//! concatenated submits, and the outbox of deliver_sm notices (receipts written by the
//! event-log read, inbound messages by `inbound::receive`).

use async_trait::async_trait;
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel_async::RunQueryDsl;
use hermod_core::ports::{PortError, PortResult};
use hermod_core::smpp::*;
use hermod_core::{MessageId, Status, TenantId, now_ms};

use crate::sql::batch::BatchInsert as _;
use crate::sql::chain::fact;
use crate::sql::rows::MessageRow;
use crate::sql::schema::*;
use crate::sql::seal::{SubjectKeys as _, message_subject, open_message, seal_message};
use crate::{SqlStore, backend, with_conn, write_tx};

/// `locked_until` of a row the client acknowledged.
pub(crate) const OUTBOX_DONE: i64 = i64::MAX;

type AccountRow = (String, String, String, String, i32, i32, i32, i32, i64, i64);

fn to_account(r: AccountRow) -> SmppAccount {
    let n = |v: i32| u32::try_from(v).unwrap_or(0);
    SmppAccount {
        system_id: r.0,
        tenant_id: TenantId::from_trusted(r.1),
        password_hash: r.2,
        networks: serde_json::from_str(&r.3).unwrap_or_default(),
        max_binds: n(r.4),
        window: n(r.5),
        throughput: n(r.6),
        read_receipts: r.7 != 0,
        created_at: r.8,
        updated_at: r.9,
    }
}

macro_rules! account_columns {
    () => {
        (
            smpp_accounts::system_id,
            smpp_accounts::tenant_id,
            smpp_accounts::password_hash,
            smpp_accounts::networks,
            smpp_accounts::max_binds,
            smpp_accounts::submit_window,
            smpp_accounts::throughput,
            smpp_accounts::read_receipts,
            smpp_accounts::created_at,
            smpp_accounts::updated_at,
        )
    };
}

/// A notice as an outbox row (None if it cannot be written as JSON).
pub(crate) fn outbox_row(
    system_id: &str,
    dedupe: String,
    notice: &Notice,
    now: i64,
) -> Option<crate::sql::rows::NewOutboxRow> {
    let kind = match notice {
        Notice::Receipt(_) => "receipt",
        Notice::Mo(_) => "mo",
    };
    Some(crate::sql::rows::NewOutboxRow {
        system_id: system_id.to_owned(),
        dedupe,
        kind: kind.to_owned(),
        payload: serde_json::to_string(notice).ok()?,
        created_at: now,
    })
}

fn lock_key(k: &PartKey) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in k
        .system_id
        .bytes()
        .chain([0])
        .chain(k.source.bytes())
        .chain([0])
        .chain(k.dest.bytes())
        .chain(k.reference.to_be_bytes())
        .chain([k.total])
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    i64::from_ne_bytes(h.to_ne_bytes())
}

#[async_trait]
impl SmppStore for SqlStore {
    async fn bind_target(&self, system_id: &str) -> PortResult<Option<BindTarget>> {
        let row: Option<(AccountRow, Option<String>, Option<i64>)> = with_conn!(&self.db, |c| {
            smpp_accounts::table
                .inner_join(tenants::table.on(tenants::id.eq(smpp_accounts::tenant_id)))
                .filter(smpp_accounts::system_id.eq(system_id))
                .filter(tenants::deleted_at.is_null())
                .select((account_columns!(), tenants::limits, tenants::suspended_at))
                .first(c)
                .await
                .optional()
                .map_err(backend)?
        });
        Ok(row.map(|(a, limits, suspended)| BindTarget {
            account: to_account(a),
            limits: limits
                .as_deref()
                .and_then(|l| serde_json::from_str(l).ok())
                .unwrap_or_default(),
            suspended: suspended.is_some(),
        }))
    }

    async fn accounts(&self, tenant: Option<&TenantId>) -> PortResult<Vec<SmppAccount>> {
        let t = tenant.map(|t| t.to_string());
        let rows: Vec<AccountRow> = with_conn!(&self.db, |c| {
            let mut q = smpp_accounts::table
                .select(account_columns!())
                .order(smpp_accounts::system_id.asc())
                .into_boxed();
            if let Some(t) = &t {
                q = q.filter(smpp_accounts::tenant_id.eq(t.clone()));
            }
            q.load(c).await.map_err(backend)?
        });
        Ok(rows.into_iter().map(to_account).collect())
    }

    async fn put_account(&self, a: &SmppAccount) -> PortResult<Option<SmppAccount>> {
        let a = a.clone();
        let networks = serde_json::to_string(&a.networks).map_err(backend)?;
        let i = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
        let t = a.tenant_id.to_string();
        let outcome: Result<bool, PortError> = write_tx!(&self.db, |c| {
            let tenant: Option<String> = tenants::table
                .filter(tenants::id.eq(&t))
                .filter(tenants::deleted_at.is_null())
                .select(tenants::id)
                .first(c)
                .await
                .optional()?;
            if tenant.is_none() {
                return Ok(Ok(false));
            }
            let holder: Option<String> = smpp_accounts::table
                .filter(smpp_accounts::system_id.eq(&a.system_id))
                .select(smpp_accounts::tenant_id)
                .first(c)
                .await
                .optional()?;
            match holder {
                Some(h) if h != t => {
                    return Ok(Err(PortError::Conflict(format!(
                        "system_id '{}' is taken",
                        a.system_id
                    ))));
                }
                Some(_) => {
                    diesel::update(
                        smpp_accounts::table.filter(smpp_accounts::system_id.eq(&a.system_id)),
                    )
                    .set((
                        smpp_accounts::password_hash.eq(&a.password_hash),
                        smpp_accounts::networks.eq(&networks),
                        smpp_accounts::max_binds.eq(i(a.max_binds)),
                        smpp_accounts::submit_window.eq(i(a.window)),
                        smpp_accounts::throughput.eq(i(a.throughput)),
                        smpp_accounts::read_receipts.eq(i32::from(a.read_receipts)),
                        smpp_accounts::updated_at.eq(a.updated_at),
                    ))
                    .execute(c)
                    .await?;
                }
                None => {
                    diesel::insert_into(smpp_accounts::table)
                        .values((
                            smpp_accounts::system_id.eq(&a.system_id),
                            smpp_accounts::tenant_id.eq(&t),
                            smpp_accounts::password_hash.eq(&a.password_hash),
                            smpp_accounts::networks.eq(&networks),
                            smpp_accounts::max_binds.eq(i(a.max_binds)),
                            smpp_accounts::submit_window.eq(i(a.window)),
                            smpp_accounts::throughput.eq(i(a.throughput)),
                            smpp_accounts::read_receipts.eq(i32::from(a.read_receipts)),
                            smpp_accounts::created_at.eq(a.created_at),
                            smpp_accounts::updated_at.eq(a.updated_at),
                        ))
                        .execute(c)
                        .await?;
                }
            }
            c.insert_audit(vec![fact(
                &t,
                a.updated_at,
                "smpp_account.saved",
                None,
                serde_json::json!({ "system_id": a.system_id }),
            )])
            .await?;
            Ok::<_, DieselError>(Ok(true))
        })
        .map_err(backend)?;
        if !outcome? {
            return Ok(None);
        }
        Ok(self.bind_target(&a.system_id).await?.map(|b| b.account))
    }

    async fn delete_account(&self, tenant: &TenantId, system_id: &str) -> PortResult<bool> {
        let t = tenant.to_string();
        let now = now_ms();
        write_tx!(&self.db, |c| {
            let n = diesel::delete(
                smpp_accounts::table
                    .filter(smpp_accounts::system_id.eq(system_id))
                    .filter(smpp_accounts::tenant_id.eq(&t)),
            )
            .execute(c)
            .await?;
            if n == 0 {
                return Ok(false);
            }
            diesel::delete(smpp_outbox::table.filter(smpp_outbox::system_id.eq(system_id)))
                .execute(c)
                .await?;
            diesel::delete(smpp_parts::table.filter(smpp_parts::system_id.eq(system_id)))
                .execute(c)
                .await?;
            c.insert_audit(vec![fact(
                &t,
                now,
                "smpp_account.deleted",
                None,
                serde_json::json!({ "system_id": system_id }),
            )])
            .await?;
            Ok::<_, DieselError>(true)
        })
        .map_err(backend)
    }

    async fn put_part(&self, p: &SubmitPart) -> PortResult<PartOutcome> {
        let p = p.clone();
        let pg = self.db.is_postgres();
        let k = p.key.clone();
        let filter = move || {
            smpp_parts::system_id
                .eq(k.system_id.clone())
                .and(smpp_parts::source_addr.eq(k.source.clone()))
                .and(smpp_parts::dest_addr.eq(k.dest.clone()))
                .and(smpp_parts::ref_num.eq(i32::from(k.reference)))
                .and(smpp_parts::total.eq(i32::from(k.total)))
        };
        write_tx!(&self.db, |c| {
            if pg {
                // Parts arrive on several binds and processes at once.
                diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
                    .bind::<diesel::sql_types::BigInt, _>(lock_key(&p.key))
                    .execute(c)
                    .await?;
            }
            let id: Option<String> = smpp_parts::table
                .filter(filter())
                .select(smpp_parts::message_id)
                .first(c)
                .await
                .optional()?;
            let message_id = id.unwrap_or_else(|| p.new_id.clone());
            diesel::insert_into(smpp_parts::table)
                .values((
                    smpp_parts::system_id.eq(&p.key.system_id),
                    smpp_parts::source_addr.eq(&p.key.source),
                    smpp_parts::dest_addr.eq(&p.key.dest),
                    smpp_parts::ref_num.eq(i32::from(p.key.reference)),
                    smpp_parts::total.eq(i32::from(p.key.total)),
                    smpp_parts::seq.eq(i32::from(p.seq)),
                    smpp_parts::message_id.eq(&message_id),
                    smpp_parts::data_coding.eq(i32::from(p.data_coding)),
                    smpp_parts::body.eq(hex::encode(&p.bytes)),
                    smpp_parts::registered_delivery.eq(i32::from(p.registered_delivery)),
                    smpp_parts::received_at.eq(p.at),
                ))
                .on_conflict_do_nothing()
                .execute(c)
                .await?;
            let have: Vec<(i32, i32, String, i32)> = smpp_parts::table
                .filter(filter())
                .order(smpp_parts::seq.asc())
                .select((
                    smpp_parts::seq,
                    smpp_parts::data_coding,
                    smpp_parts::body,
                    smpp_parts::registered_delivery,
                ))
                .load(c)
                .await?;
            if have.len() < usize::from(p.key.total) {
                return Ok::<_, DieselError>(PartOutcome::Waiting { message_id });
            }
            let rd = have.iter().fold(0u8, |a, r| a | (r.3 as u8));
            Ok(PartOutcome::Complete {
                message_id,
                parts: have
                    .into_iter()
                    .map(|r| (r.1 as u8, hex::decode(r.2).unwrap_or_default()))
                    .collect(),
                registered_delivery: rd,
            })
        })
        .map_err(backend)
    }

    async fn drop_parts(&self, key: &PartKey) -> PortResult<()> {
        let k = key.clone();
        write_tx!(&self.db, |c| {
            diesel::delete(
                smpp_parts::table
                    .filter(smpp_parts::system_id.eq(&k.system_id))
                    .filter(smpp_parts::source_addr.eq(&k.source))
                    .filter(smpp_parts::dest_addr.eq(&k.dest))
                    .filter(smpp_parts::ref_num.eq(i32::from(k.reference)))
                    .filter(smpp_parts::total.eq(i32::from(k.total))),
            )
            .execute(c)
            .await
        })
        .map_err(backend)?;
        Ok(())
    }

    async fn lease_outbox(
        &self,
        system_ids: &[String],
        max: usize,
        lease_ms: i64,
    ) -> PortResult<Vec<OutboxItem>> {
        if system_ids.is_empty() || max == 0 {
            return Ok(Vec::new());
        }
        let now = now_ms();
        let limit = i64::try_from(max).unwrap_or(1000);
        // Most polls find nothing: look before taking the writer.
        let due: Vec<i64> = with_conn!(&self.db, |c| {
            smpp_outbox::table
                .filter(smpp_outbox::system_id.eq_any(system_ids))
                .filter(smpp_outbox::locked_until.le(now))
                .order(smpp_outbox::id.asc())
                .limit(limit)
                .select(smpp_outbox::id)
                .load(c)
                .await
                .map_err(backend)?
        });
        if due.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<(i64, String, String)> = write_tx!(&self.db, |c| {
            diesel::update(
                smpp_outbox::table
                    .filter(smpp_outbox::id.eq_any(&due))
                    .filter(smpp_outbox::locked_until.le(now)),
            )
            .set(smpp_outbox::locked_until.eq(now + lease_ms))
            .returning((
                smpp_outbox::id,
                smpp_outbox::system_id,
                smpp_outbox::payload,
            ))
            .get_results(c)
            .await
        })
        .map_err(backend)?;
        let mut items: Vec<OutboxItem> = rows
            .into_iter()
            .filter_map(
                |(id, system_id, payload)| match serde_json::from_str::<Notice>(&payload) {
                    Ok(notice) => Some(OutboxItem {
                        id,
                        system_id,
                        notice,
                    }),
                    Err(e) => {
                        tracing::error!(id, error = %e, "unreadable SMPP outbox row");
                        None
                    }
                },
            )
            .collect();
        items.sort_by_key(|i| i.id);
        Ok(items)
    }

    async fn ack_outbox(&self, ids: &[i64]) -> PortResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        // Kept a while as done: the event log read again after a crash writes a
        // receipt's row again, and its dedupe key must still be there to stop it.
        write_tx!(&self.db, |c| {
            diesel::update(smpp_outbox::table.filter(smpp_outbox::id.eq_any(ids)))
                .set(smpp_outbox::locked_until.eq(OUTBOX_DONE))
                .execute(c)
                .await
        })
        .map_err(backend)?;
        Ok(())
    }

    async fn purge_outbox(&self, before: i64) -> PortResult<usize> {
        write_tx!(&self.db, |c| {
            diesel::delete(
                smpp_outbox::table
                    .filter(smpp_outbox::locked_until.eq(OUTBOX_DONE))
                    .filter(smpp_outbox::created_at.lt(before)),
            )
            .execute(c)
            .await
        })
        .map_err(backend)
    }

    async fn release_outbox(&self, ids: &[i64], delay_ms: i64) -> PortResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let at = if delay_ms > 0 { now_ms() + delay_ms } else { 0 };
        write_tx!(&self.db, |c| {
            diesel::update(smpp_outbox::table.filter(smpp_outbox::id.eq_any(ids)))
                .set(smpp_outbox::locked_until.eq(at))
                .execute(c)
                .await
        })
        .map_err(backend)?;
        Ok(())
    }

    async fn replace_scheduled(
        &self,
        tenant: &TenantId,
        id: &MessageId,
        text: &str,
        send_at: Option<i64>,
        ttl_secs: Option<i64>,
    ) -> PortResult<bool> {
        let vault = self.vault.clone();
        let (t, id, text) = (tenant.to_string(), id.to_string(), text.to_owned());
        let now = now_ms();
        write_tx!(&self.db, |c| {
            let row: Option<MessageRow> = messages::table
                .filter(messages::id.eq(&id))
                .filter(messages::tenant_id.eq(&t))
                .filter(messages::status.eq(Status::Scheduled.as_str()))
                .select(MessageRow::as_select())
                .first(c)
                .await
                .optional()?;
            let Some(mut row) = row else {
                return Ok::<_, DieselError>(false);
            };
            let pairs: Vec<(String, String)> = message_subject(&row).into_iter().collect();
            let keys = c.load_keys(&vault, &pairs).await?;
            open_message(&keys, &mut row);
            row.body = text.clone();
            row.content = None;
            if let Some((_, key)) = <[_]>::first(&pairs).and_then(|p| keys.get(p)) {
                seal_message(&vault, key, &mut row)?;
            }
            diesel::update(
                messages::table
                    .filter(messages::id.eq(&id))
                    .filter(messages::status.eq(Status::Scheduled.as_str())),
            )
            .set((
                messages::body.eq(&row.body),
                messages::content.eq(None::<String>),
                send_at.map(|s| messages::send_at.eq(Some(s))),
                ttl_secs.map(|s| messages::ttl_secs.eq(Some(s))),
                messages::updated_at.eq(now),
            ))
            .execute(c)
            .await?;
            c.insert_audit(vec![fact(
                &t,
                now,
                "message.replaced",
                Some(&id),
                serde_json::json!({ "via": "smpp" }),
            )])
            .await?;
            Ok(true)
        })
        .map_err(backend)
    }
}
