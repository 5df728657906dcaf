//! `/v1/hooks`: alert hooks. A hook's URL carries an unguessable token and takes
//! Alertmanager webhooks (version 4) or a device's JSON without an API key; the alerts
//! become messages (in the fast lane unless the hook says otherwise), a repeat inside
//! the hook's window is not sent again, and the answer is 2xx only once they are stored.

use actix_web::{delete, get, post};
use std::collections::{HashMap, HashSet};

use actix_web::{HttpRequest, HttpResponse, web};
use hermod_core::alert::{self, Hook, HookConfig, OnCall};
use hermod_core::model::{AlertRef, NewMessage, Priority};
use hermod_core::ports::Hooks;
use hermod_core::{MessageId, Msisdn, now_ms};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Tenant;
use crate::json::{json_body, parse_json, rfc3339, to_json};
use crate::messages::{Prep, check_prior, sender_for, store_and_answer};
use crate::{ApiError, AppState};

/// Alerts one payload may carry (Alertmanager groups are far smaller).
pub const MAX_ALERTS: usize = 100;
/// Numbers a hook may alert: `recipients` and `on_call.numbers` each.
pub const MAX_TARGETS: usize = 20;

/// `POST /v1/hooks` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HookBody {
    /// Shown in default texts (≤ 100 characters).
    pub name: String,
    /// Numbers every alert goes to (E.164).
    #[serde(default)]
    pub recipients: Vec<String>,
    /// `{"numbers": [...], "shift_hours": 168, "starts_at": "2026-11-23T09:00:00Z"}`:
    /// the number on call now gets the alert too.
    #[schema(value_type = Option<Object>)]
    pub on_call: Option<serde_json::Value>,
    /// A template id; its variables come from the alert (Alertmanager: `labels`,
    /// `annotations`, `status`, `fingerprint`, `startsAt`, `commonLabels`, ...; a
    /// device: its JSON fields and `payload`). Default: a text naming the alert.
    pub template: Option<String>,
    pub locale: Option<String>,
    pub channels: Option<Vec<String>>,
    pub from: Option<String>,
    /// Alerts overtake bulk traffic and ignore quiet hours (default true).
    pub fast_lane: Option<bool>,
    /// Send a message when an alert resolves (default true).
    pub send_resolved: Option<bool>,
    /// A repeat with the same fingerprint and status inside this window is sent once:
    /// `"5m"` (default), `"90s"`, `"1h"`.
    #[schema(value_type = Option<String>)]
    pub dedupe_window: Option<serde_json::Value>,
}

#[derive(Serialize, ToSchema)]
pub struct HookResource {
    pub id: String,
    pub name: String,
    /// Where to post alerts; shown once, at creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    pub recipients: Vec<String>,
    #[schema(value_type = Option<Object>)]
    pub on_call: Option<serde_json::Value>,
    pub template: Option<String>,
    pub locale: Option<String>,
    pub channels: Option<Vec<String>>,
    pub fast_lane: bool,
    pub send_resolved: bool,
    pub dedupe_window_secs: i64,
    pub created_at: String,
}

/// `GET /v1/hooks`: the tenant's alert hooks.
#[derive(Serialize, ToSchema)]
pub struct HookList {
    pub data: Vec<HookResource>,
}

fn resource(h: &Hook, url: Option<String>) -> HookResource {
    let c = &h.config;
    HookResource {
        id: h.id.clone(),
        name: c.name.clone(),
        url,
        recipients: c.recipients.clone(),
        on_call: c
            .on_call
            .as_ref()
            .and_then(|o| serde_json::to_value(o).ok()),
        template: c.template.clone(),
        locale: c.locale.clone(),
        channels: c
            .channels
            .as_ref()
            .map(|cs| cs.iter().map(|k| k.as_str().to_owned()).collect()),
        fast_lane: c.fast_lane,
        send_resolved: c.send_resolved,
        dedupe_window_secs: c.dedupe_window_secs,
        created_at: rfc3339(h.created_at),
    }
}

fn store(state: &AppState) -> Result<&dyn Hooks, ApiError> {
    state
        .hooks
        .as_deref()
        .ok_or_else(|| ApiError::NotFound("alert hooks are not available here".into()))
}

fn number(field: String, v: &str) -> Result<String, ApiError> {
    Msisdn::parse(v.trim())
        .map(|m| m.as_str().to_owned())
        .map_err(|e| ApiError::field(field, format!("number {e}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OnCallBody {
    numbers: Vec<String>,
    shift_hours: Option<u32>,
    starts_at: Option<String>,
}

async fn config(state: &AppState, tenant: &Tenant, b: HookBody) -> Result<HookConfig, ApiError> {
    if b.name.trim().is_empty() || b.name.chars().count() > 100 {
        return Err(ApiError::field("name", "name must be 1 to 100 characters"));
    }
    if b.recipients.len() > MAX_TARGETS {
        return Err(ApiError::field(
            "recipients",
            format!("a hook alerts at most {MAX_TARGETS} recipients"),
        ));
    }
    let recipients = b
        .recipients
        .iter()
        .enumerate()
        .map(|(i, r)| number(format!("recipients[{i}]"), r))
        .collect::<Result<Vec<_>, _>>()?;
    let on_call = match b.on_call {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => {
            let o: OnCallBody = crate::json::parse_value(v, "on_call.")?;
            if o.numbers.is_empty() || o.numbers.len() > MAX_TARGETS {
                return Err(ApiError::field(
                    "on_call.numbers",
                    format!("on_call needs 1 to {MAX_TARGETS} numbers"),
                ));
            }
            let shift = o.shift_hours.unwrap_or(168);
            if !(1..=8760).contains(&shift) {
                return Err(ApiError::field(
                    "on_call.shift_hours",
                    "shift_hours must be 1 to 8760",
                ));
            }
            let starts_at =
                match &o.starts_at {
                    None => now_ms(),
                    Some(t) => time::OffsetDateTime::parse(
                        t,
                        &time::format_description::well_known::Rfc3339,
                    )
                    .ok()
                    .and_then(|t| i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok())
                    .ok_or_else(|| {
                        ApiError::field("on_call.starts_at", "starts_at must be an RFC 3339 time")
                    })?,
                };
            Some(OnCall {
                numbers: o
                    .numbers
                    .iter()
                    .enumerate()
                    .map(|(i, n)| number(format!("on_call.numbers[{i}]"), n))
                    .collect::<Result<_, _>>()?,
                shift_hours: shift,
                starts_at,
            })
        }
    };
    if recipients.is_empty() && on_call.is_none() {
        return Err(ApiError::field(
            "recipients",
            "a hook needs recipients or an on_call rotation",
        ));
    }
    if let Some(t) = &b.template {
        let found = match &state.templates {
            Some(s) => s.template(&tenant.0, t).await?.is_some(),
            None => false,
        };
        if !found {
            return Err(ApiError::field("template", format!("no template '{t}'")));
        }
    }
    if let Some(l) = &b.locale
        && !hermod_core::template::valid_locale(l)
    {
        return Err(ApiError::field(
            "locale",
            format!("'{l}' is not a locale (e.g. en, de-DE)"),
        ));
    }
    let channels = b
        .channels
        .as_deref()
        .map(|l| crate::messages::parse_channels(l, &state.channels, str::to_owned))
        .transpose()?;
    let window = match &b.dedupe_window {
        None => 300,
        Some(v) => hermod_core::plan::parse_after(v).map_err(|_| {
            ApiError::field(
                "dedupe_window",
                "dedupe_window must be a duration like \"90s\", \"5m\" or \"1h\" (1 s to 7 days)",
            )
        })?,
    };
    // A hook sends from one of the tenant's senders only.
    let owners = state.senders.owners().await?;
    sender_for(state, &owners, &tenant.0, b.from.as_deref(), "from")?;
    Ok(HookConfig {
        name: b.name.trim().to_owned(),
        recipients,
        on_call,
        template: b.template,
        locale: b.locale,
        channels,
        from: b.from,
        fast_lane: b.fast_lane.unwrap_or(true),
        send_resolved: b.send_resolved.unwrap_or(true),
        dedupe_window_secs: i64::try_from(window).unwrap_or(300),
    })
}

#[utoipa::path(request_body = HookBody,
    responses((status = 201, body = HookResource, description = "`url` is shown only now"), (status = 400)))]
#[post("/v1/hooks")]
pub(crate) async fn create(
    req: HttpRequest,
    tenant: Tenant,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let b: HookBody = parse_json(&body)?;
    let cfg = config(&state, &tenant, b).await?;
    let token = state
        .keys
        .generate_token("hmh")
        .map_err(|e| ApiError::Internal(hermod_core::ports::PortError::Backend(Box::new(e))))?;
    let hook = Hook {
        id: format!("hook_{}", token.key_id),
        tenant_id: tenant.0.clone(),
        config: cfg,
        created_at: now_ms(),
    };
    store(&state)?
        .create_hook(&hook, &hermod_crypto::sha256_hex(token.full.as_bytes()))
        .await?;
    let info = req.connection_info();
    let url = format!(
        "{}://{}/v1/hooks/{}",
        info.scheme(),
        info.host(),
        token.full
    );
    Ok(HttpResponse::Created().json(resource(&hook, Some(url))))
}

#[utoipa::path(responses((status = 200, body = HookList)))]
#[get("/v1/hooks")]
pub(crate) async fn list(
    tenant: Tenant,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let all = store(&state)?.list_hooks(&tenant.0).await?;
    Ok(HttpResponse::Ok().json(crate::json::keys_sorted(&HookList {
        data: all.iter().map(|h| resource(h, None)).collect(),
    })))
}

#[utoipa::path(responses((status = 204), (status = 404)))]
#[delete("/v1/hooks/{id}")]
pub(crate) async fn delete(
    path: web::Path<String>,
    tenant: Tenant,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if store(&state)?.delete_hook(&tenant.0, &path).await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::NotFound("no such hook".into()))
    }
}

#[derive(Serialize)]
struct AlertOutcome {
    fingerprint: String,
    status: String,
    /// `sent`, or why not: `duplicate` (inside the window), `resolved_not_sent`.
    outcome: &'static str,
    messages: Vec<String>,
}

/// `POST /v1/hooks/{id}` where `id` is the hook's token: no API key; the token in the
/// URL is the credential. (One path with `DELETE /v1/hooks/{id}`: OpenAPI forbids two
/// templates that differ only in a parameter's name.)
#[utoipa::path(security(()),
    params(("id" = String, Path, description = "the hook's token (`hmh_…`, the last part of the URL `POST /v1/hooks` returned), not its `hook_…` id")),
    request_body(content = Object, description = "an Alertmanager webhook (version 4) or a device's JSON object"),
    responses((status = 200, description = "stored: `{accepted, suppressed, alerts: [{fingerprint, status, outcome, messages}]}`; a retry of the same body replays it"),
              (status = 400), (status = 404, description = "no hook has this token"), (status = 503)))]
#[post("/v1/hooks/{id}")]
pub(crate) async fn ingest(
    path: web::Path<String>,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let hook = store(&state)?
        .hook_by_token(&hermod_crypto::sha256_hex(path.as_bytes()))
        .await?
        .ok_or_else(|| ApiError::NotFound("no such hook".into()))?;
    let tenant = hook.tenant_id.clone();
    let value = json_body(&body)?;
    // Alertmanager retries a notification it got no 2xx for: the same body replays
    // the first answer.
    let hash = hermod_crypto::sha256_hex(&body);
    let key = Some(format!("hook:{}:{hash}", hook.id));
    if let Some(r) = check_prior(&state, &tenant, &key, &hash).await? {
        return Ok(r);
    }
    let cfg = &hook.config;
    let items = alert::parse(&value, &cfg.name, &|b| hermod_crypto::sha256_hex(b))
        .map_err(|(f, m)| ApiError::field(f, m))?;
    if items.len() > MAX_ALERTS {
        return Err(ApiError::field(
            "alerts",
            format!("a payload holds at most {MAX_ALERTS} alerts"),
        ));
    }
    let keys: Vec<String> = items
        .iter()
        .map(|a| hermod_crypto::sha256_hex(format!("{}\n{}", hook.id, a.fingerprint).as_bytes()))
        .collect();
    let last: HashMap<String, (String, i64)> = store(&state)?
        .last_alerts(&keys)
        .await?
        .into_iter()
        .map(|(k, s, at)| (k, (s, at)))
        .collect();
    // The sender is checked again: its owner may have changed since the hook was made.
    let mut prep = Prep::load(&state, &tenant).await?;
    let from = prep.sender(&state, cfg.from.as_deref(), "from")?;
    let mut decided: HashSet<(&str, &str)> = HashSet::new();
    let now = now_ms();
    let template = match &cfg.template {
        Some(id) => prep.template(&state, id, "template").await.ok().cloned(),
        None => None,
    };
    let mut msgs = Vec::new();
    let mut outcomes = Vec::new();
    let mut suppressed = 0;
    for (item, key) in items.iter().zip(&keys) {
        let prior = last.get(key).map(|(s, at)| (s.as_str(), *at));
        // Two alerts of one payload with one fingerprint: the first decides.
        let earlier = !decided.insert((key.as_str(), item.status.as_str()));
        if earlier || !alert::should_send(cfg, &item.status, prior, now) {
            suppressed += 1;
            outcomes.push(AlertOutcome {
                fingerprint: item.fingerprint.clone(),
                status: item.status.clone(),
                outcome: if item.status == "resolved" && (!cfg.send_resolved || prior.is_none()) {
                    "resolved_not_sent"
                } else {
                    "duplicate"
                },
                messages: Vec::new(),
            });
            continue;
        }
        let mut ids = Vec::new();
        for to in cfg.targets(now) {
            let Ok(to) = Msisdn::parse(&to) else { continue };
            let zone = crate::templates::zone(None, Some(&to), None);
            let (text, content, template_error) = match &template {
                Some(t) => match t.render(cfg.locale.as_deref(), &item.vars, zone.as_deref()) {
                    Ok(r) => (r.text, r.content, None),
                    // A payload the template does not fit still alerts someone.
                    Err(e) => (item.text.clone(), None, Some(e.to_string())),
                },
                None => (item.text.clone(), None, None),
            };
            if text.is_empty() {
                continue;
            }
            let mut metadata = serde_json::json!({
                "hook": hook.id,
                "alert": {"fingerprint": item.fingerprint, "status": item.status},
            });
            if let Some(e) = template_error {
                tracing::warn!(hook = %hook.id, "alert template failed; sent the default text");
                metadata["template_error"] = e.into();
            }
            let mut m = NewMessage {
                id: MessageId::generate(),
                tenant_id: tenant.clone(),
                to,
                from: from.clone(),
                text,
                channels: cfg.channels.clone().unwrap_or_default(),
                ttl_secs: None,
                metadata: Some(metadata),
                callback_url: None,
                callback_events: None,
                created_at: now,
                send_at: None,
                content,
                user_id: None,
                fallback: None,
                priority: if cfg.fast_lane {
                    Priority::High
                } else {
                    Priority::Normal
                },
                alert: Some(AlertRef {
                    key: key.clone(),
                    status: item.status.clone(),
                }),
                deferred: None,
                traffic_type: template.as_ref().and_then(|t| t.traffic_type),
                twilio: None,
                smpp: None,
            };
            prep.defer(&mut m, zone.as_deref(), now);
            ids.push(m.id.to_string());
            msgs.push(m);
        }
        outcomes.push(AlertOutcome {
            fingerprint: item.fingerprint.clone(),
            status: item.status.clone(),
            outcome: "sent",
            messages: ids,
        });
    }
    let answer = to_json(&serde_json::json!({
        "accepted": msgs.len(),
        "suppressed": suppressed,
        "alerts": outcomes,
    }))?;
    if msgs.is_empty() {
        return Ok(HttpResponse::Ok()
            .content_type("application/json")
            .body(answer));
    }
    // Each hook spends its own budget (repeats are already suppressed): a flood on
    // one hook is held back without eating the tenant's rate for its other traffic.
    state
        .budgets
        .hooks
        .check(&hook.id, u32::try_from(msgs.len()).unwrap_or(u32::MAX))
        .map_err(|wait| {
            metrics::counter!("hermod_hook_rate_limited_total").increment(1);
            ApiError::RateLimited(wait)
        })?;
    store_and_answer(&state, &tenant, key, hash, msgs, 200, answer).await
}
