//! Accepting messages: senders, templates, quiet hours, rate limits, idempotency.

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse};
use hermod_core::model::*;
use hermod_core::quiet::QuietHours;
use hermod_core::sender::Owners;
use hermod_core::template::Template;
use hermod_core::{Msisdn, Status, TenantId, now_ms};

use super::dto::*;
use super::validate::*;
use crate::json::json_body;
use crate::{ApiError, AppState};

/// What preparing a request's messages needs once per request: the tenant's quiet
/// hours and the templates used so far.
pub(crate) struct Prep {
    tenant: TenantId,
    quiet: Option<QuietHours>,
    templates: HashMap<String, Template>,
    senders: Arc<Owners>,
}

impl Prep {
    pub(crate) async fn load(state: &AppState, tenant: &TenantId) -> Result<Self, ApiError> {
        Ok(Self {
            tenant: tenant.clone(),
            quiet: state.quiet_hours(tenant).await?,
            templates: HashMap::new(),
            senders: state.senders.owners().await?,
        })
    }

    /// A template by id, fetched once per request; `field` names the reference.
    pub(crate) async fn template(
        &mut self,
        state: &AppState,
        id: &str,
        field: &str,
    ) -> Result<&Template, ApiError> {
        if !self.templates.contains_key(id) {
            let store = state
                .templates
                .as_ref()
                .ok_or_else(|| ApiError::field(field, "templates are not available here"))?;
            let t = store
                .template(&self.tenant, id)
                .await?
                .ok_or_else(|| ApiError::field(field, format!("no template '{id}'")))?;
            self.templates.insert(id.to_owned(), t);
        }
        self.templates
            .get(id)
            .ok_or_else(|| ApiError::field(field, format!("no template '{id}'")))
    }

    /// Validates a request into a message: its template rendered, quiet hours applied.
    pub(crate) async fn message(
        &mut self,
        state: &AppState,
        mut req: SendMessage,
        prefix: &str,
        now: i64,
    ) -> Result<NewMessage, ApiError> {
        let f = |name: &str| format!("{prefix}{name}");
        if let Some(z) = &req.timezone
            && !hermod_core::quiet::valid_zone(z)
        {
            return Err(ApiError::field(
                f("timezone"),
                format!("unknown time zone '{z}'"),
            ));
        }
        let to = Msisdn::parse(req.to.trim()).ok();
        let zone =
            crate::templates::zone(req.timezone.as_deref(), to.as_ref(), self.quiet.as_ref());
        if let Some(tr) = req.template.take() {
            if req.text.is_some() || req.content.is_some() || req.suggestions.is_some() {
                return Err(ApiError::field(
                    f("template"),
                    "template replaces text, content and suggestions: give one or the other",
                ));
            }
            let vars = tr.vars.unwrap_or_else(|| serde_json::json!({}));
            if vars.to_string().len() > hermod_core::template::MAX_OUTPUT {
                return Err(ApiError::field(
                    f("template.vars"),
                    format!(
                        "template.vars must be at most {} bytes of JSON",
                        hermod_core::template::MAX_OUTPUT
                    ),
                ));
            }
            let t = self.template(state, &tr.id, &f("template.id")).await?;
            if req.traffic_type.is_none() {
                req.traffic_type = t.traffic_type.map(|t| t.as_str().to_owned());
            }
            let r = t
                .render(tr.locale.as_deref(), &vars, zone.as_deref())
                .map_err(|e| crate::templates::template_error(&f("template."), e))?;
            req.text = Some(r.text);
            if let Some(rich) = r.content {
                req.content = serde_json::to_value(&rich.content).ok();
                if !rich.suggestions.is_empty() {
                    req.suggestions = serde_json::to_value(&rich.suggestions)
                        .ok()
                        .and_then(|v| serde_json::from_value(v).ok());
                }
            }
        }
        let mut msg = validate(
            req,
            &self.tenant,
            prefix,
            now,
            &state.channels,
            &state.address_policy,
        )?;
        msg.from = self.sender(state, msg.from.as_deref(), &f("from"))?;
        self.defer(&mut msg, zone.as_deref(), now);
        Ok(msg)
    }

    /// The sender a message goes out with: `from` if the tenant may use it (403
    /// naming `field` otherwise), else the tenant's default.
    pub(crate) fn sender(
        &self,
        state: &AppState,
        from: Option<&str>,
        field: &str,
    ) -> Result<Option<String>, ApiError> {
        sender_for(state, &self.senders, &self.tenant, from, field)
    }

    /// Holds a non-urgent message until the recipient's quiet hours end.
    pub(crate) fn defer(&self, msg: &mut NewMessage, zone: Option<&str>, now: i64) {
        let (Some(q), Some(zone)) = (&self.quiet, zone) else {
            return;
        };
        if msg.priority.is_high() {
            return;
        }
        if let Some(end) = q.defer(zone, msg.send_at.unwrap_or(now)) {
            msg.send_at = Some(end);
            msg.deferred = Some("quiet_hours".into());
        }
    }
}

/// `from` if `tenant` may use it (403 naming `field` otherwise), else the tenant's
/// default sender.
pub(crate) fn sender_for(
    state: &AppState,
    owners: &Owners,
    tenant: &TenantId,
    from: Option<&str>,
    field: &str,
) -> Result<Option<String>, ApiError> {
    owners
        .resolve(tenant, from, state.senders.allow_unowned)
        .map_err(|r| ApiError::ForbiddenField {
            field: field.to_owned(),
            message: r.message(from.unwrap_or_default()),
        })
}

/// Whether the message's recipient opted out (STOP) of its sender or of the whole tenant:
/// the Twilio API and the SMPP server refuse such a message when it is created.
pub(crate) async fn opted_out(state: &AppState, m: &NewMessage) -> Result<bool, ApiError> {
    let opted = state
        .inbound
        .list_opt_outs(&m.tenant_id, Some(m.to.as_str()))
        .await?;
    let key = |s: &str| hermod_core::inbound::sender_key(s);
    Ok(opted
        .iter()
        .any(|o| o.sender == "*" || m.from.as_deref().is_some_and(|f| key(f) == key(&o.sender))))
}

pub(crate) fn accepted_view(m: &NewMessage) -> Message {
    Message {
        id: m.id.clone(),
        tenant_id: m.tenant_id.clone(),
        to: m.to.as_str().to_owned(),
        from: m.from.clone(),
        text: m.text.clone(),
        channels: m.channels.iter().map(|c| c.as_str().to_owned()).collect(),
        ttl_secs: m.ttl_secs,
        metadata: m.metadata.clone(),
        callback_url: m.callback_url.clone(),
        callback_events: m.callback_events.clone(),
        status: if m.send_at.is_some() {
            Status::Scheduled
        } else {
            Status::Accepted
        },
        created_at: m.created_at,
        updated_at: m.created_at,
        send_at: m.send_at,
        reason: None,
        content: m.content.clone(),
        user_id: m.user_id.clone(),
        fallback: m.fallback.clone(),
        plan: None,
        priority: m.priority,
        traffic_type: m.traffic_type,
        twilio: m.twilio.clone(),
    }
}

/// Charges the tenant's rate limit `n` messages.
/// The tenant's rate (the operator's for it, else the configuration's) and its daily
/// quota, for `n` new messages.
pub(crate) async fn rate_limit(
    state: &AppState,
    tenant: &crate::auth::Tenant,
    n: usize,
) -> Result<(), ApiError> {
    let count = u32::try_from(n).unwrap_or(u32::MAX);
    state
        .limits
        .check_own(&tenant.0, count, tenant.1.limits.rate_limit_per_sec)
        .map_err(|wait| {
            metrics::counter!("hermod_api_rate_limited_total").increment(1);
            ApiError::RateLimited(wait)
        })?;
    let Some(quota) = tenant.1.limits.daily_quota else {
        return Ok(());
    };
    let now = now_ms();
    let mut check = state.quotas.check(&tenant.0, quota, u64::from(count), now);
    if let crate::limits::QuotaCheck::Read { since } = check {
        let used = state.admin.messages_since(&tenant.0, since).await?;
        state.quotas.set(&tenant.0, since, used);
        check = state.quotas.check(&tenant.0, quota, u64::from(count), now);
    }
    match check {
        crate::limits::QuotaCheck::Spent(wait) => {
            metrics::counter!("hermod_api_quota_exceeded_total").increment(1);
            Err(ApiError::QuotaExceeded {
                message: format!(
                    "the daily quota of {quota} messages is spent; it starts again at 00:00 UTC"
                ),
                retry_after: wait,
            })
        }
        _ => Ok(()),
    }
}

pub(crate) fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(h) = req.headers().get("idempotency-key") else {
        return Ok(None);
    };
    let k = h
        .to_str()
        .map_err(|_| ApiError::field("Idempotency-Key", "must be visible ASCII"))?;
    if k.is_empty() || k.len() > 255 {
        return Err(ApiError::field(
            "Idempotency-Key",
            "must be 1 to 255 characters",
        ));
    }
    Ok(Some(k.to_owned()))
}

pub(crate) fn replay(rec: &IdempotencyRecord, hash: &str) -> Result<HttpResponse, ApiError> {
    if rec.request_hash != hash {
        return Err(ApiError::IdempotencyMismatch(
            "this Idempotency-Key was used with a different request body".into(),
        ));
    }
    let status = actix_web::http::StatusCode::from_u16(rec.status_code)
        .unwrap_or(actix_web::http::StatusCode::ACCEPTED);
    Ok(HttpResponse::build(status)
        .insert_header(("Idempotent-Replayed", "true"))
        .content_type("application/json")
        .body(rec.body.clone()))
}

/// Stores messages with their response under the idempotency key, or replays.
pub(crate) async fn store_and_answer(
    state: &AppState,
    tenant: &TenantId,
    key: Option<String>,
    hash: String,
    msgs: Vec<NewMessage>,
    status: u16,
    body: String,
) -> Result<HttpResponse, ApiError> {
    let rec = key.map(|key| IdempotencyRecord {
        key,
        request_hash: hash.clone(),
        status_code: status,
        body: body.clone(),
    });
    let outcome = match state.messages.accept(tenant, &msgs, rec.as_ref()).await {
        Err(hermod_core::ports::PortError::Conflict(_)) if rec.is_some() => {
            // A concurrent request with the same key won the race.
            let key = rec.as_ref().map(|r| r.key.as_str()).unwrap_or_default();
            match state.messages.idempotency(tenant, key).await? {
                Some(prior) => AcceptOutcome::Replay(prior),
                None => return Err(ApiError::Conflict("retry the request".into())),
            }
        }
        other => other?,
    };
    match outcome {
        AcceptOutcome::Replay(prior) => replay(&prior, &hash),
        AcceptOutcome::Accepted => {
            metrics::counter!("hermod_messages_total", "stage" => "api", "status" => "accepted")
                .increment(msgs.len() as u64);
            for m in &msgs {
                tracing::debug!(message_id = %m.id, tenant = %tenant, "accepted");
            }
            let status = actix_web::http::StatusCode::from_u16(status)
                .unwrap_or(actix_web::http::StatusCode::ACCEPTED);
            Ok(HttpResponse::build(status)
                .content_type("application/json")
                .body(body))
        }
    }
}

pub(crate) async fn check_prior(
    state: &AppState,
    tenant: &TenantId,
    key: &Option<String>,
    hash: &str,
) -> Result<Option<HttpResponse>, ApiError> {
    if let Some(k) = key
        && let Some(prior) = state.messages.idempotency(tenant, k).await?
    {
        return replay(&prior, hash).map(Some);
    }
    Ok(None)
}

/// A `POST` that creates messages: its body as JSON, the hash a replay is checked
/// against and its `Idempotency-Key` — or the first answer when the key was used.
pub(crate) enum Keyed {
    Replay(HttpResponse),
    Fresh {
        value: serde_json::Value,
        hash: String,
        key: Option<String>,
    },
}

pub(crate) async fn keyed_body(
    req: &HttpRequest,
    body: &[u8],
    state: &AppState,
    tenant: &TenantId,
) -> Result<Keyed, ApiError> {
    let value = json_body(body)?;
    let hash = hermod_crypto::sha256_hex(value.to_string().as_bytes());
    let key = idempotency_key(req)?;
    Ok(match check_prior(state, tenant, &key, &hash).await? {
        Some(r) => Keyed::Replay(r),
        None => Keyed::Fresh { value, hash, key },
    })
}
