//! Inbound messages read back (opened from their sealed form).

use crate::sql::rows::*;
use crate::sql::schema::*;
use crate::sql::seal::{SubjectKeys as _, inbound_subject, open_inbound};
use crate::{Db, backend, with_conn};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use hermod_core::TenantId;
use hermod_core::inbound::{InboundMessage, Keyword};
use hermod_core::ports::PortResult;

use crate::sql::common::channel_of;
use hermod_crypto::vault::Vault;

pub(super) fn to_inbound(r: InboundRow) -> InboundMessage {
    InboundMessage {
        id: r.id,
        tenant_id: r.tenant_id.map(TenantId::from_trusted),
        from: r.from_number,
        to: r.to_addr,
        text: r.body,
        parts: r.parts,
        channel: channel_of(&r.channel),
        connector: r.connector,
        keyword: r.keyword.as_deref().and_then(|k| match k {
            "stop" => Some(Keyword::Stop),
            "stop_all" => Some(Keyword::StopAll),
            "start" => Some(Keyword::Start),
            "help" => Some(Keyword::Help),
            _ => None,
        }),
        received_at: r.received_at,
        payload: r.payload.and_then(|p| serde_json::from_str(&p).ok()),
        provider_id: r.provider_id,
    }
}

/// A tenant's inbound messages (or, for `None`, those no tenant owns), newest first,
/// after `cursor` (an id).
pub(super) async fn list(
    db: &Db,
    vault: &Vault,
    tenant: Option<&TenantId>,
    cursor: Option<&str>,
    limit: i64,
) -> PortResult<Vec<InboundMessage>> {
    let t = tenant.map(|t| t.to_string());
    let cursor = cursor.map(str::to_owned);
    with_conn!(db, |c| {
        let mut q = inbound_messages::table.into_boxed();
        q = match &t {
            Some(t) => q.filter(inbound_messages::tenant_id.eq(t.clone())),
            None => q.filter(inbound_messages::tenant_id.is_null()),
        };
        if let Some(cur) = &cursor {
            q = q.filter(inbound_messages::id.lt(cur.clone()));
        }
        let mut rows: Vec<InboundRow> = q
            .order(inbound_messages::id.desc())
            .limit(limit)
            .select(InboundRow::as_select())
            .load(c)
            .await
            .map_err(backend)?;
        let pairs: Vec<(String, String)> = rows.iter().filter_map(inbound_subject).collect();
        let keys = c.load_keys(vault, &pairs).await.map_err(backend)?;
        for r in &mut rows {
            open_inbound(&keys, r);
        }
        Ok(rows.into_iter().map(to_inbound).collect())
    })
}

pub(super) async fn get(
    db: &Db,
    vault: &Vault,
    tenant: &TenantId,
    id: &str,
) -> PortResult<Option<InboundMessage>> {
    let (t, id) = (tenant.to_string(), id.to_owned());
    with_conn!(db, |c| {
        let row: Option<InboundRow> = inbound_messages::table
            .filter(inbound_messages::id.eq(&id))
            .filter(inbound_messages::tenant_id.eq(&t))
            .select(InboundRow::as_select())
            .first(c)
            .await
            .optional()
            .map_err(backend)?;
        let Some(mut r) = row else {
            return Ok(None);
        };
        let pairs: Vec<(String, String)> = inbound_subject(&r).into_iter().collect();
        let keys = c.load_keys(vault, &pairs).await.map_err(backend)?;
        open_inbound(&keys, &mut r);
        Ok(Some(to_inbound(r)))
    })
}
