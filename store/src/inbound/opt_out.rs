//! Opt-outs: listed, added and removed (each an audit fact).

use crate::sql::batch::BatchInsert as _;
use crate::sql::chain::fact;
use crate::sql::rows::*;
use crate::sql::schema::*;
use crate::sql::seal::{OPT_NUMBER, SubjectKeys as _};
use crate::{Db, backend, with_conn, write_tx};
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel_async::RunQueryDsl;
use hermod_core::inbound::{ALL_SENDERS, OptOut, sender_key};
use hermod_core::ports::PortResult;
use hermod_core::{TenantId, now_ms};
use hermod_crypto::vault::Vault;

/// An opt-out change for the audit chain: the number's HMAC, not the number.
pub(super) fn opt_fact(
    tenant: &str,
    at: i64,
    kind: &str,
    subject: &str,
    source: &str,
) -> NewAuditRow {
    fact(
        tenant,
        at,
        kind,
        Some(subject),
        serde_json::json!({ "source": source }),
    )
}

pub(super) async fn list_opt_outs(
    db: &Db,
    vault: &Vault,
    tenant: &TenantId,
    recipient: Option<&str>,
) -> PortResult<Vec<OptOut>> {
    let t = tenant.to_string();
    let r = recipient.map(|r| vec![vault.lookup(r), r.to_owned()]);
    let (rows, keys) = with_conn!(db, |c| {
        let mut q = opt_outs::table
            .filter(opt_outs::tenant_id.eq(&t))
            .into_boxed();
        if let Some(r) = &r {
            q = q.filter(opt_outs::recipient.eq_any(r.clone()));
        }
        let rows: Vec<OptOutRow> = q
            .order((opt_outs::created_at.asc(), opt_outs::sender.asc()))
            .limit(10_000)
            .select(OptOutRow::as_select())
            .load(c)
            .await
            .map_err(backend)?;
        let pairs: Vec<(String, String)> = rows
            .iter()
            .filter(|o| o.number.is_some())
            .map(|o| (o.tenant_id.clone(), o.recipient.clone()))
            .collect();
        let keys = c.load_keys(vault, &pairs).await.map_err(backend)?;
        (rows, keys)
    });
    Ok(rows
        .into_iter()
        .map(|o| {
            // Sealed: opened with the subject's key ("" once erased). Older rows hold
            // the number itself.
            let recipient = match &o.number {
                Some(sealed) => keys
                    .get(&(o.tenant_id.clone(), o.recipient.clone()))
                    .and_then(|(_, k)| k.open(OPT_NUMBER, sealed).ok())
                    .unwrap_or_default(),
                None => o.recipient.clone(),
            };
            OptOut {
                recipient,
                sender: o.sender,
                source: o.source,
                created_at: o.created_at,
            }
        })
        .collect())
}

/// Records an opt-out (`sender` `*` = all senders); true when it is new.
pub(super) async fn add_opt_out(
    db: &Db,
    vault: &Vault,
    tenant: &TenantId,
    recipient: &str,
    sender: &str,
    source: &str,
) -> PortResult<bool> {
    let subject = vault.lookup(recipient);
    let mut row = OptOutRow {
        tenant_id: tenant.to_string(),
        recipient: subject.clone(),
        sender: if sender == ALL_SENDERS {
            ALL_SENDERS.to_owned()
        } else {
            sender_key(sender)
        },
        source: source.to_owned(),
        created_at: now_ms(),
        number: None,
    };
    let number = recipient.to_owned();
    write_tx!(db, |c| {
        let pair = (row.tenant_id.clone(), subject.clone());
        let keys = c
            .ensure_keys(vault, std::slice::from_ref(&pair), row.created_at)
            .await?;
        if let Some((_, k)) = keys.get(&pair) {
            row.number = Some(
                vault
                    .seal(k, OPT_NUMBER, &number)
                    .map_err(|e| DieselError::QueryBuilderError(Box::new(e)))?,
            );
        }
        let n = diesel::insert_into(opt_outs::table)
            .values(&row)
            .on_conflict_do_nothing()
            .execute(c)
            .await?;
        if n > 0 {
            let f = opt_fact(
                &row.tenant_id,
                row.created_at,
                "opt_out.added",
                &subject,
                &row.source,
            );
            c.insert_audit(vec![f]).await?;
        }
        Ok::<_, DieselError>(n)
    })
    .map(|n| n > 0)
    .map_err(backend)
}

/// Removes opt-outs of a recipient: one sender's, or every one when `sender` is None.
pub(super) async fn remove_opt_out(
    db: &Db,
    vault: &Vault,
    tenant: &TenantId,
    recipient: &str,
    sender: Option<&str>,
) -> PortResult<usize> {
    let t = tenant.to_string();
    let r = recipient.to_owned();
    let s = sender.map(|s| {
        if s == ALL_SENDERS {
            ALL_SENDERS.to_owned()
        } else {
            sender_key(s)
        }
    });
    let subject = vault.lookup(recipient);
    let now = now_ms();
    write_tx!(db, |c| {
        let base = opt_outs::tenant_id
            .eq(t.clone())
            .and(opt_outs::recipient.eq_any([subject.clone(), r.clone()]));
        let n = match &s {
            Some(s) => {
                diesel::delete(opt_outs::table.filter(base.and(opt_outs::sender.eq(s.clone()))))
                    .execute(c)
                    .await?
            }
            None => {
                diesel::delete(opt_outs::table.filter(base))
                    .execute(c)
                    .await?
            }
        };
        if n > 0 {
            c.insert_audit(vec![opt_fact(&t, now, "opt_out.removed", &subject, "api")])
                .await?;
        }
        Ok::<_, DieselError>(n)
    })
    .map_err(backend)
}
