//! `Store` for both backends: tenants, keys, accepting and reading messages.

use async_trait::async_trait;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::RunQueryDsl;
use hermod_core::inbound::{InboundMessage, InboundPart, OptOut};
use hermod_core::model::*;
use hermod_core::ports::{PortResult, Store};
use hermod_core::{AttemptId, MessageId, Status, TenantId, now_ms};

use crate::batch::BatchInsert as _;
use crate::rows::*;
use crate::schema::*;
use crate::seal::{open_idem_row, open_messages};
use crate::{Db, backend, with_conn, write_tx};

#[async_trait]
impl hermod_core::ports::Leases for SqlStore {
    async fn acquire_lease(
        &self,
        key: &str,
        holder: &str,
        ttl: std::time::Duration,
        status: Option<&str>,
    ) -> PortResult<bool> {
        crate::leases::acquire(&self.db, key, holder, ttl, status).await
    }

    async fn live_leases(&self) -> PortResult<Vec<(String, String, i64, Option<String>)>> {
        crate::leases::live(&self.db).await
    }

    async fn release_lease(&self, key: &str, holder: &str) -> PortResult<()> {
        crate::leases::release(&self.db, key, holder).await
    }
}

/// The diesel-backed [`Store`].
#[derive(Clone)]
pub struct SqlStore {
    pub(crate) db: Db,
    accepts: crate::accept::Committer,
    /// Seals numbers and bodies at rest (see `seal`).
    pub(crate) vault: std::sync::Arc<hermod_crypto::vault::Vault>,
}

/// Deletes up to `$batch` rows of `$table` whose `$at` is older than `$older_than`,
/// picked by `$key` (a row sharing the key goes only if it is as old).
macro_rules! purge_before {
    ($db:expr, $table:ident, $at:ident, $key:ident, $older_than:expr, $batch:expr) => {{
        let cutoff = now_ms() - i64::try_from($older_than.as_millis()).unwrap_or(i64::MAX);
        let batch: i64 = $batch;
        write_tx!($db, |c| {
            let old: Vec<String> = $table::table
                .filter($table::$at.lt(cutoff))
                .select($table::$key)
                .limit(batch)
                .load(c)
                .await?;
            if old.is_empty() {
                return Ok(0);
            }
            diesel::delete(
                $table::table
                    .filter($table::$at.lt(cutoff))
                    .filter($table::$key.eq_any(&old)),
            )
            .execute(c)
            .await
        })
        .map_err(backend)
    }};
}

impl SqlStore {
    /// Deletes up to `batch` idempotency records older than `older_than`; returns how
    /// many (call again while it returns `batch`). A key past its retention can be
    /// used again as a new request. (The same key of another tenant goes too only if
    /// it is as old.)
    pub async fn purge_idempotency(
        &self,
        older_than: std::time::Duration,
        batch: i64,
    ) -> PortResult<usize> {
        purge_before!(
            &self.db,
            idempotency_keys,
            created_at,
            key,
            older_than,
            batch
        )
    }

    /// Deletes up to `batch` provider-event markers (RBM event ids seen) older than
    /// `older_than`, like [`Self::purge_idempotency`]. A provider retries an event
    /// for days (RBM: up to 7), not for ever.
    pub async fn purge_event_markers(
        &self,
        older_than: std::time::Duration,
        batch: i64,
    ) -> PortResult<usize> {
        purge_before!(
            &self.db,
            webhook_events,
            received_at,
            event_id,
            older_than,
            batch
        )
    }

    /// Deletes up to `batch` kept receipts (receipts no attempt claimed) older than
    /// `older_than`, like [`Self::purge_idempotency`]. One is adopted within seconds
    /// when it came before its submit response, or resolves an in-doubt submit within
    /// `in_doubt_grace_secs`; one still kept a day later belongs to nothing here.
    pub async fn purge_orphan_receipts(
        &self,
        older_than: std::time::Duration,
        batch: i64,
    ) -> PortResult<usize> {
        purge_before!(
            &self.db,
            orphan_receipts,
            received_at,
            provider_id,
            older_than,
            batch
        )
    }

    /// Call inside a tokio runtime: it starts the group-commit task for accepts.
    pub fn new(db: Db, vault: std::sync::Arc<hermod_crypto::vault::Vault>) -> Self {
        Self {
            accepts: crate::accept::Committer::start(db.clone(), vault.clone()),
            db,
            vault,
        }
    }
    pub fn vault(&self) -> &hermod_crypto::vault::Vault {
        &self.vault
    }

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
            c.insert_audit(vec![crate::audit::fact(
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
    pub fn db(&self) -> &Db {
        &self.db
    }
}

pub(crate) fn event_row(
    message_id: &str,
    tenant_id: &str,
    status: Status,
    attempt: Option<(i32, &str)>,
    detail: Option<serde_json::Value>,
    at: i64,
) -> NewEventRow {
    NewEventRow {
        message_id: message_id.to_owned(),
        tenant_id: tenant_id.to_owned(),
        kind: format!("message.{}", status.as_str()),
        status: status.as_str().to_owned(),
        attempt_no: attempt.map(|a| a.0),
        channel: attempt.map(|a| a.1.to_owned()),
        detail: detail.map(|d| d.to_string()),
        at,
    }
}

pub(crate) fn parse_status(s: &str) -> Status {
    // Only our own code writes statuses; an unknown one can only come from a newer
    // version, and treating it as failed keeps it from being resent.
    Status::parse(s).unwrap_or(Status::Failed)
}

fn to_message(r: MessageRow) -> Message {
    let traffic_type = r.traffic_type();
    Message {
        id: MessageId::from_trusted(r.id),
        tenant_id: TenantId::from_trusted(r.tenant_id),
        to: r.to_number,
        from: r.from_addr,
        text: r.body,
        channels: serde_json::from_str(&r.channels).unwrap_or_default(),
        ttl_secs: r.ttl_secs,
        metadata: r.metadata.and_then(|m| serde_json::from_str(&m).ok()),
        callback_url: r.callback_url,
        callback_events: r
            .callback_events
            .and_then(|e| serde_json::from_str(&e).ok()),
        status: parse_status(&r.status),
        created_at: r.created_at,
        updated_at: r.updated_at,
        send_at: r.send_at,
        reason: r.reason,
        content: r.content.and_then(|c| serde_json::from_str(&c).ok()),
        user_id: r.user_id,
        fallback: r.fallback.and_then(|c| serde_json::from_str(&c).ok()),
        plan: r.plan.and_then(|c| serde_json::from_str(&c).ok()),
        traffic_type,
        priority: if r.priority > 0 {
            hermod_core::model::Priority::High
        } else {
            hermod_core::model::Priority::Normal
        },
    }
}

pub(crate) fn to_idem(r: IdempotencyRow) -> IdempotencyRecord {
    IdempotencyRecord {
        key: r.key,
        request_hash: r.request_hash,
        status_code: u16::try_from(r.status_code).unwrap_or(500),
        body: r.body,
    }
}

pub(crate) fn is_unique_violation(e: &DieselError) -> bool {
    matches!(
        e,
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)
    )
}

#[async_trait]
impl Store for SqlStore {
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
            c.insert_audit(vec![crate::audit::fact(
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

    async fn accept(
        &self,
        tenant: &TenantId,
        msgs: &[NewMessage],
        idem: Option<&IdempotencyRecord>,
    ) -> PortResult<AcceptOutcome> {
        crate::accept::submit(&self.accepts, tenant, msgs, idem).await
    }

    async fn idempotency(
        &self,
        tenant: &TenantId,
        key: &str,
    ) -> PortResult<Option<IdempotencyRecord>> {
        let row: Option<IdempotencyRow> = with_conn!(&self.db, |c| {
            let row: Option<IdempotencyRow> = idempotency_keys::table
                .filter(idempotency_keys::tenant_id.eq(tenant.as_str()))
                .filter(idempotency_keys::key.eq(key))
                .select(IdempotencyRow::as_select())
                .first(c)
                .await
                .optional()
                .map_err(backend)?;
            match row {
                Some(mut r) => {
                    open_idem_row!(c, &self.vault, r, backend);
                    Some(r)
                }
                None => None,
            }
        });
        Ok(row.map(to_idem))
    }

    async fn get_message(
        &self,
        tenant: &TenantId,
        id: &MessageId,
    ) -> PortResult<Option<MessageView>> {
        let found: Option<(MessageRow, Vec<AttemptRow>, Vec<PartRow>, Vec<EventRow>)> =
            with_conn!(&self.db, |c| {
                let mut m: Option<MessageRow> = messages::table
                    .filter(messages::id.eq(id.as_str()))
                    .filter(messages::tenant_id.eq(tenant.as_str()))
                    .select(MessageRow::as_select())
                    .first(c)
                    .await
                    .optional()
                    .map_err(backend)?;
                open_messages!(c, &self.vault, m.iter_mut(), backend);
                match m {
                    None => None,
                    Some(m) => {
                        let atts: Vec<AttemptRow> = attempts::table
                            .filter(attempts::message_id.eq(id.as_str()))
                            .order(attempts::attempt_no.asc())
                            .select(AttemptRow::as_select())
                            .load(c)
                            .await
                            .map_err(backend)?;
                        let ids: Vec<&str> = atts.iter().map(|a| a.id.as_str()).collect();
                        let parts: Vec<PartRow> = attempt_parts::table
                            .filter(attempt_parts::attempt_id.eq_any(&ids))
                            .order(attempt_parts::part_no.asc())
                            .select(PartRow::as_select())
                            .load(c)
                            .await
                            .map_err(backend)?;
                        let evs: Vec<EventRow> = events::table
                            .filter(events::message_id.eq(id.as_str()))
                            .order(events::seq.asc())
                            .select(EventRow::as_select())
                            .load(c)
                            .await
                            .map_err(backend)?;
                        Some((m, atts, parts, evs))
                    }
                }
            });
        let Some((m, atts, parts, evs)) = found else {
            return Ok(None);
        };
        let attempts = atts
            .into_iter()
            .map(|a| Attempt {
                provider_ids: parts
                    .iter()
                    .filter(|p| p.attempt_id == a.id)
                    .map(|p| p.provider_id.clone())
                    .collect(),
                id: AttemptId::from_trusted(a.id),
                message_id: MessageId::from_trusted(a.message_id),
                attempt_no: a.attempt_no,
                channel: a.channel,
                status: parse_status(&a.status),
                raw_status: a.raw_status,
                error: a.error_code.map(|code| AttemptError {
                    code,
                    permanent: a.error_permanent.unwrap_or(false),
                }),
                parts: a.parts,
                created_at: a.created_at,
                updated_at: a.updated_at,
            })
            .collect();
        let events = evs
            .into_iter()
            .map(|e| Event {
                seq: e.seq,
                message_id: MessageId::from_trusted(e.message_id),
                kind: e.kind,
                status: parse_status(&e.status),
                attempt_no: e.attempt_no,
                channel: e.channel,
                detail: e.detail.and_then(|d| serde_json::from_str(&d).ok()),
                at: e.at,
            })
            .collect();
        Ok(Some(MessageView {
            message: to_message(m),
            attempts,
            events,
        }))
    }

    async fn list_messages(&self, tenant: &TenantId, f: &ListFilter) -> PortResult<Vec<Message>> {
        let rows: Vec<MessageRow> = with_conn!(&self.db, |c| {
            let mut q = messages::table
                .filter(messages::tenant_id.eq(tenant.as_str()))
                .select(MessageRow::as_select())
                .order(messages::id.desc())
                .limit(f.limit)
                .into_boxed();
            if let Some(s) = f.status {
                q = q.filter(messages::status.eq(s.as_str()));
            }
            if let Some(to) = &f.to {
                q = q.filter(messages::to_hash.eq(self.vault.lookup(to)));
            }
            if let Some(since) = f.since {
                q = q.filter(messages::created_at.ge(since));
            }
            if let Some(cursor) = &f.cursor {
                q = q.filter(messages::id.lt(cursor.to_string()));
            }
            let mut rows: Vec<MessageRow> = q.load(c).await.map_err(backend)?;
            open_messages!(c, &self.vault, rows.iter_mut(), backend);
            rows
        });
        Ok(rows.into_iter().map(to_message).collect())
    }

    async fn status_counts(&self) -> PortResult<Vec<(Status, i64)>> {
        let rows: Vec<(String, i64)> = with_conn!(&self.db, |c| {
            messages::table
                .group_by(messages::status)
                .select((messages::status, diesel::dsl::count_star()))
                .load(c)
                .await
                .map_err(backend)?
        });
        Ok(rows
            .into_iter()
            .map(|(s, n)| (parse_status(&s), n))
            .collect())
    }

    async fn dispatch_candidates(
        &self,
        ids: &[MessageId],
    ) -> PortResult<Vec<hermod_core::plan::Candidate>> {
        crate::fallback::dispatch_candidates(&self.db, &self.vault, ids).await
    }

    async fn plan_attempts(
        &self,
        ids: &[MessageId],
        plans: &[(MessageId, hermod_core::plan::Plan)],
    ) -> PortResult<Vec<(AttemptId, ChannelKind, bool)>> {
        crate::pipeline::plan_attempts(&self.db, ids, plans).await
    }

    async fn due_fallbacks(
        &self,
        max: usize,
        lease: std::time::Duration,
    ) -> PortResult<Vec<hermod_core::plan::DueFallback>> {
        crate::fallback::due_fallbacks(&self.db, &self.vault, max, lease).await
    }

    async fn fire_fallback(
        &self,
        attempt: &AttemptId,
        outcome: hermod_core::plan::Withdrawal,
    ) -> PortResult<()> {
        crate::fallback::fire_fallback(&self.db, attempt, outcome).await
    }

    async fn postpone_fallback(
        &self,
        attempt: &AttemptId,
        delay: std::time::Duration,
    ) -> PortResult<()> {
        crate::fallback::postpone_fallback(&self.db, attempt, delay).await
    }

    async fn tenant_defaults(
        &self,
        tenant: &TenantId,
    ) -> PortResult<hermod_core::plan::TenantDefaults> {
        crate::fallback::tenant_defaults(&self.db, tenant).await
    }

    async fn set_tenant_defaults(
        &self,
        tenant: &TenantId,
        defaults: &hermod_core::plan::TenantDefaults,
    ) -> PortResult<()> {
        crate::fallback::set_tenant_defaults(&self.db, tenant, defaults).await
    }
    async fn claim_attempts(&self, ids: &[AttemptId]) -> PortResult<Vec<Claim>> {
        crate::pipeline::claim_attempts(&self.db, &self.vault, ids).await
    }
    async fn record_sends(&self, results: &[SendResult]) -> PortResult<()> {
        crate::pipeline::record_sends(&self.db, results).await
    }
    async fn apply_receipts(&self, receipts: &[Receipt]) -> PortResult<()> {
        crate::pipeline::apply_receipts(&self.db, &self.vault, receipts).await
    }
    async fn adopt_orphans(&self) -> PortResult<usize> {
        crate::pipeline::adopt_orphans(&self.db).await
    }
    async fn resolve_in_doubt(&self, outgoing: &Outgoing, look: &InDoubtLook) -> PortResult<bool> {
        crate::pipeline::resolve_in_doubt(&self.db, &self.vault, outgoing, look).await
    }

    async fn cancel_message(&self, tenant: &TenantId, id: &MessageId) -> PortResult<CancelOutcome> {
        crate::inbound::cancel(&self.db, tenant, id).await
    }

    async fn receive_inbound(&self, part: &InboundPart) -> PortResult<Option<InboundMessage>> {
        crate::inbound::receive(&self.db, &self.vault, part).await
    }

    async fn stale_inbound_parts(&self, before: i64) -> PortResult<Vec<Vec<InboundPart>>> {
        crate::inbound::stale_parts(&self.db, before).await
    }

    async fn list_inbound(
        &self,
        tenant: &TenantId,
        cursor: Option<&str>,
        limit: i64,
    ) -> PortResult<Vec<InboundMessage>> {
        crate::inbound::list(&self.db, &self.vault, Some(tenant), cursor, limit).await
    }

    async fn get_inbound(&self, tenant: &TenantId, id: &str) -> PortResult<Option<InboundMessage>> {
        crate::inbound::get(&self.db, &self.vault, tenant, id).await
    }

    async fn list_opt_outs(
        &self,
        tenant: &TenantId,
        recipient: Option<&str>,
    ) -> PortResult<Vec<OptOut>> {
        crate::inbound::list_opt_outs(&self.db, &self.vault, tenant, recipient).await
    }

    async fn add_opt_out(
        &self,
        tenant: &TenantId,
        recipient: &str,
        sender: &str,
        source: &str,
    ) -> PortResult<bool> {
        crate::inbound::add_opt_out(&self.db, &self.vault, tenant, recipient, sender, source).await
    }

    async fn remove_opt_out(
        &self,
        tenant: &TenantId,
        recipient: &str,
        sender: Option<&str>,
    ) -> PortResult<usize> {
        crate::inbound::remove_opt_out(&self.db, &self.vault, tenant, recipient, sender).await
    }

    async fn record_typing(
        &self,
        tenant: &TenantId,
        connector: &str,
        from: &str,
        at: i64,
        marker: &hermod_core::model::ProviderEvent,
    ) -> PortResult<()> {
        crate::inbound::record_typing(&self.db, &self.vault, tenant, connector, from, at, marker)
            .await
    }

    async fn first_seen_event(
        &self,
        event: &hermod_core::model::ProviderEvent,
    ) -> PortResult<bool> {
        crate::inbound::first_seen_event(&self.db, event).await
    }

    async fn seen_event(&self, event: &hermod_core::model::ProviderEvent) -> PortResult<bool> {
        crate::inbound::seen_event(&self.db, event).await
    }

    async fn record_launch(&self, launch: &hermod_core::model::AgentLaunch) -> PortResult<()> {
        crate::inbound::record_launch(&self.db, launch).await
    }

    async fn launch_states(&self) -> PortResult<Vec<hermod_core::model::AgentLaunch>> {
        crate::inbound::launch_states(&self.db).await
    }
}

#[async_trait]
impl hermod_core::ports::Devices for SqlStore {
    async fn register_device(&self, device: &hermod_core::app::Device) -> PortResult<()> {
        crate::app::register(&self.db, device).await
    }
    async fn device(&self, id: &str) -> PortResult<Option<hermod_core::app::Device>> {
        crate::app::get(&self.db, id).await
    }
    async fn list_devices(
        &self,
        tenant: &TenantId,
        recipient: Option<&str>,
        user_id: Option<&str>,
    ) -> PortResult<Vec<hermod_core::app::Device>> {
        crate::app::list(&self.db, tenant, recipient, user_id).await
    }
    async fn rotate_device_key(
        &self,
        tenant: &TenantId,
        id: &str,
        public_key: &str,
        aead: &str,
    ) -> PortResult<bool> {
        crate::app::rotate(&self.db, tenant, id, public_key, aead).await
    }
    async fn revoke_device(&self, tenant: &TenantId, id: &str) -> PortResult<bool> {
        crate::app::revoke(&self.db, tenant, id).await
    }
    async fn put_envelopes(
        &self,
        envelopes: &[(AttemptId, hermod_core::app::Envelope)],
    ) -> PortResult<()> {
        crate::app::put(&self.db, envelopes).await
    }
    async fn inbox(
        &self,
        device: &str,
        after: i64,
        limit: i64,
    ) -> PortResult<Vec<hermod_core::app::Envelope>> {
        crate::app::inbox(&self.db, device, after, limit).await
    }
    async fn ack_envelope(&self, device: &str, message_id: &str) -> PortResult<Option<AttemptId>> {
        crate::app::ack(&self.db, device, message_id).await
    }
    async fn sweep_app(&self) -> PortResult<(usize, usize)> {
        crate::app::sweep(&self.db).await
    }

    async fn has_devices(
        &self,
        who: &[(TenantId, String, Option<String>)],
    ) -> PortResult<Vec<bool>> {
        crate::app::has_devices(&self.db, who).await
    }

    async fn withdraw_envelopes(
        &self,
        attempt: &AttemptId,
    ) -> PortResult<hermod_core::plan::Withdrawal> {
        crate::app::withdraw(&self.db, attempt).await
    }
}
