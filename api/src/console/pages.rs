//! The pages a tenant (and, where they are shared, the operator) sees, but messages
//! (`messages.rs`).

use std::collections::HashMap;

use actix_web::{HttpRequest, HttpResponse, web};
use hermod_core::tenant::{Principal, Role};
use maud::html;
use serde::Deserialize;

use super::ConsoleError;
use super::layout::{badge, csrf, page, page_with, when};
use super::session::{CsrfForm, Signed};
use super::{back_with, encode, flash, see_other};
use crate::ApiError;

type Query = web::Query<HashMap<String, String>>;

/// `GET /console`.
pub(crate) async fn home(signed: Signed) -> HttpResponse {
    match signed.session.principal {
        Principal::Operator { .. } => see_other("/console/overview"),
        Principal::Tenant { .. } => see_other("/console/messages"),
    }
}

/// `GET /console/channels`: the operator sees every connector and bind (live); a tenant
/// its channels, senders, RCS agents and app devices.
pub(crate) async fn channels(signed: Signed, q: Query) -> Result<HttpResponse, ConsoleError> {
    let state = &signed.state;
    if signed.tenant.is_none() {
        let connectors = match &state.ops {
            Some(ops) => ops.connectors().await?,
            None => serde_json::json!([]),
        };
        let list = connectors.as_array().cloned().unwrap_or_default();
        let body = html! {
            p.hint { "Live: this page reloads every 5 seconds." }
            table #connectors {
                tr { th { "Connector" } th { "Channel" } th { "Health" } th { "Binds: state, mode, sent/s, in flight, last error" } }
                @for c in &list {
                    @let str_of = |k: &str| c.get(k).and_then(|v| v.as_str()).unwrap_or("").to_owned();
                    tr {
                        td { (str_of("name")) @if c.get("host").is_some() { div.hint { (str_of("host")) ":" (c.get("port").map(|p| p.to_string()).unwrap_or_default()) } } @if c.get("base_url").is_some() { div.hint { (str_of("base_url")) } } }
                        td { @if c.get("base_url").is_some() || str_of("kind") == "smpp" { "sms · " (str_of("kind")) } @else if c.get("kind").is_some() { (str_of("kind")) } @else { "sms" } }
                        td { @match c.get("healthy").and_then(|h| h.as_bool()) {
                            Some(true) => span.badge.s-delivered { "healthy" },
                            Some(false) => span.badge.s-failed { "failing" },
                            None => span.muted { "–" },
                        } @if let Some(t) = c.get("tps_limit").filter(|t| !t.is_null()) { div.hint { "limit " (t) "/s" } } }
                        td {
                            @if c.get("base_url").is_some() {
                                @let field = |k: &str| c.get(k).map(|v| match v { serde_json::Value::String(s) => s.clone(), serde_json::Value::Null => String::new(), v => v.to_string() }).unwrap_or_default();
                                table.binds {
                                    tr { td { code { "HTTP API" } } td { (badge("ready")) } td { "window " (field("window")) }
                                         td { (field("sent_total")) " sent" } td { (field("in_flight")) } td { code { (field("last_error")) } } }
                                }
                            } @else if let Some(binds) = c.get("binds").and_then(|b| b.as_array()) {
                                table.binds {
                                    @for b in binds {
                                        @let field = |k: &str| b.get(k).map(|v| match v { serde_json::Value::String(s) => s.clone(), serde_json::Value::Null => String::new(), v => v.to_string() }).unwrap_or_default();
                                        tr { td { code { (field("id")) } } td { (badge(&field("state"))) } td { (field("mode")) }
                                             td { (field("sent_per_sec")) "/s" } td { (field("in_flight")) } td { code { (field("last_error")) } } }
                                    }
                                }
                            } @else {
                                pre { (serde_json::to_string_pretty(c).unwrap_or_default()) }
                            }
                        }
                    }
                }
            }
            @if list.is_empty() { p.muted { "This process runs no channels." } }
        };
        return Ok(page_with(
            &signed,
            "channels",
            "Channels and connectors",
            flash(&q),
            body,
            Some(5),
        ));
    }
    let tenant = signed.tenant()?;
    let senders = crate::senders::all(state, Some(&tenant.0)).await?;
    let devices = match &state.devices {
        Some(d) => d
            .list_devices(&tenant.0, None, None)
            .await?
            .iter()
            .filter(|d| d.revoked_at.is_none())
            .count(),
        None => 0,
    };
    let defaults = state.tenants.tenant_defaults(&tenant.0).await?;
    let body = html! {
        div.grid {
            div.card { div.muted { "Channels offered" } div #offered { @for c in &state.channels { (badge(c.as_str())) " " } } }
            div.card { div.muted { "Default order" } div { (defaults.channels.as_ref().map(|c| c.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(" → ")).unwrap_or_else(|| "the server's".into())) } }
            div.card { div.muted { "App devices" } div.stat #devices { (devices) } }
        }
        h2 { "Senders and RCS agents" }
        table #senders {
            tr { th { "Sender" } th { "Default" } th { "Source" } }
            @for s in &senders { tr { td { (s.sender) } td { (s.default) } td { (s.source) } } }
        }
        @if senders.is_empty() { p.muted { "None: the operator assigns senders." } }
    };
    Ok(page(&signed, "channels", "Channels", flash(&q), body))
}

/// `GET /console/webhooks`: endpoints and recent deliveries.
pub(crate) async fn webhooks(signed: Signed, q: Query) -> Result<HttpResponse, ConsoleError> {
    let tenant = signed.tenant()?;
    let Some(w) = &signed.state.webhooks else {
        return Err(ApiError::NotFound("webhooks are off here".into()).into());
    };
    let endpoints = w.list_endpoints(&tenant.0).await?;
    let deliveries = w.list_deliveries(&tenant.0, None, None, 100).await?;
    let body = html! {
        h2 { "Endpoints" }
        table #endpoints {
            tr { th { "Id" } th { "URL" } th { "Events" } th { "Created" } }
            @for e in &endpoints { tr { td { code { (e.id) } } td { code { (e.url) } } td { (e.events.join(", ")) } td { (when(e.created_at)) } } }
        }
        @if endpoints.is_empty() { p.muted { "None (messages' own callback_url still get deliveries)." } }
        h2 { "Recent deliveries" }
        div #deliveries { (super::messages::deliveries_table(&signed, &deliveries, "/console/webhooks")) }
    };
    Ok(page(&signed, "webhooks", "Webhooks", flash(&q), body))
}

#[derive(Deserialize)]
pub(crate) struct RetryForm {
    csrf: String,
    #[serde(default)]
    back: String,
}

/// `POST /console/webhooks/deliveries/{id}/retry`.
pub(crate) async fn retry_delivery(
    signed: Signed,
    id: web::Path<String>,
    form: web::Form<RetryForm>,
) -> Result<HttpResponse, ConsoleError> {
    signed.check_csrf(&form.csrf)?;
    // Back to a console page only.
    let back = if form.back.starts_with("/console/") && !form.back.contains("//") {
        form.back.clone()
    } else {
        "/console/webhooks".to_owned()
    };
    let tenant = match signed.tenant_as(Role::Admin) {
        Ok(t) => t,
        Err(e) => return Ok(back_with(&back, &e)),
    };
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::NotFound("no such delivery".into()))?;
    let w = signed
        .state
        .webhooks
        .as_ref()
        .ok_or_else(|| ApiError::NotFound("webhooks are off here".into()))?;
    if !w.retry_delivery(&tenant.0, id).await? {
        return Err(ApiError::NotFound("no such delivery".into()).into());
    }
    Ok(see_other(&format!(
        "{back}?ok={}",
        encode(&format!("Delivery {id} queued again"))
    )))
}

/// `GET /console/templates`: each template with a live preview.
pub(crate) async fn templates(signed: Signed, q: Query) -> Result<HttpResponse, ConsoleError> {
    let tenant = signed.tenant()?;
    let Some(store) = &signed.state.templates else {
        return Err(ApiError::NotFound("templates are off here".into()).into());
    };
    let list = store.list_templates(&tenant.0).await?;
    let body = html! {
        @if list.is_empty() { p.muted { "No templates yet (POST /v1/templates)." } }
        @for t in &list {
            section.card.template {
                h2 { code { (t.id) } }
                p.hint { "Locales: " (t.variants.keys().cloned().collect::<Vec<_>>().join(", ")) " · variables: " (t.variables.join(", ")) }
                form.preview method="post" action={ "/console/templates/" (encode(&t.id)) "/preview" } {
                    label { "Variables (JSON)" }
                    textarea name="vars" { (sample_vars(&t.variables)) }
                    label { "Locale" } input name="locale" value=(t.default_locale);
                    button type="submit" { "Preview" }
                    pre.preview-out aria-live="polite" {}
                }
            }
        }
    };
    Ok(page(&signed, "templates", "Templates", flash(&q), body))
}

/// `{"order": {"id": "…"}}` for variables `order.id`: a starting point to edit.
fn sample_vars(vars: &[String]) -> String {
    let mut root = serde_json::Map::new();
    for v in vars {
        let mut node = &mut root;
        let parts: Vec<&str> = v.split('.').collect();
        for (i, p) in parts.iter().enumerate() {
            if i + 1 == parts.len() {
                node.entry((*p).to_owned())
                    .or_insert_with(|| serde_json::json!("…"));
            } else {
                let next = node
                    .entry((*p).to_owned())
                    .or_insert_with(|| serde_json::json!({}));
                if !next.is_object() {
                    *next = serde_json::json!({});
                }
                let Some(obj) = next.as_object_mut() else {
                    break;
                };
                node = obj;
            }
        }
    }
    serde_json::to_string_pretty(&root).unwrap_or_default()
}

/// `POST /console/templates/{id}/preview` (the page's script; `X-CSRF-Token`): the
/// API's preview.
pub(crate) async fn preview(
    signed: Signed,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ConsoleError> {
    let token = req
        .headers()
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    signed.check_csrf(token)?;
    let tenant = signed.tenant()?;
    let b: crate::templates::PreviewBody = crate::json::parse_json(&body)?;
    Ok(HttpResponse::Ok()
        .json(crate::templates::render_preview(&signed.state, tenant, &id, b).await?))
}

/// `GET /console/hooks`.
pub(crate) async fn hooks(signed: Signed, q: Query) -> Result<HttpResponse, ConsoleError> {
    let tenant = signed.tenant()?;
    let Some(store) = &signed.state.hooks else {
        return Err(ApiError::NotFound("alert hooks are off here".into()).into());
    };
    let list = store.list_hooks(&tenant.0).await?;
    let body = html! {
        @if list.is_empty() { p.muted { "No alert hooks (POST /v1/hooks)." } }
        table #hooks {
            tr { th { "Id" } th { "Configuration" } th { "Created" } }
            @for h in &list { tr { td { code { (h.id) } } td { pre { (serde_json::to_string_pretty(&h.config).unwrap_or_default()) } } td { (when(h.created_at)) } } }
        }
    };
    Ok(page(&signed, "hooks", "Alert hooks", flash(&q), body))
}

/// `GET /console/opt-outs`.
pub(crate) async fn opt_outs(signed: Signed, q: Query) -> Result<HttpResponse, ConsoleError> {
    let tenant = signed.tenant()?;
    let list = signed.state.inbound.list_opt_outs(&tenant.0, None).await?;
    let body = html! {
        @if list.is_empty() { p.muted { "Nobody has opted out." } }
        table #opt-outs {
            tr { th { "Recipient" } th { "Sender" } th { "Source" } th { "Since" } }
            @for o in &list { tr { td { (o.recipient) } td { (o.sender) } td { (o.source) } td { (when(o.created_at)) } } }
        }
    };
    Ok(page(&signed, "opt-outs", "Opt-outs", flash(&q), body))
}

/// `GET /console/keys`: the tenant's keys; an admin key creates and revokes them.
pub(crate) async fn keys(signed: Signed, q: Query) -> Result<HttpResponse, ConsoleError> {
    let tenant = signed.tenant()?;
    let admin = tenant.1.role.allows(Role::Admin);
    let list = if admin {
        signed.state.admin.list_keys(&tenant.0).await?
    } else {
        Vec::new()
    };
    let body = html! {
        @if !admin { p.hint #keys-forbidden { "Only an admin key manages keys." } } @else {
            form.row #new-key method="post" action="/console/keys" {
                (csrf(&signed))
                div { label for="key-name" { "Name" } input #key-name name="name" required; }
                div { label for="key-role" { "Role" } select #key-role name="role" {
                    option value="send" { "send" } option value="read" { "read" } option value="admin" { "admin" } } }
                div { label for="key-expires" { "Expires (UTC, optional)" } input #key-expires type="datetime-local" name="expires_at"; }
                button #create-key type="submit" { "Create key" }
            }
            table #keys {
                tr { th { "Id" } th { "Name" } th { "Role" } th { "Created" } th { "Expires" } th { "Last used" } th {} }
                @for k in &list {
                    tr {
                        td { code { (k.id) } } td { (k.name.as_deref().unwrap_or("")) } td { (k.role.as_str()) }
                        td { (when(k.created_at)) } td { (k.expires_at.map(when).unwrap_or_default()) }
                        td { (k.last_used_at.map(when).unwrap_or_else(|| "never".into())) }
                        td { @if k.id != tenant.1.key_id {
                            form.inline method="post" action={ "/console/keys/" (k.id) "/revoke" } {
                                (csrf(&signed)) button.danger type="submit" { "Revoke" } }
                        } @else { span.muted { "this session's" } } }
                    }
                }
            }
        }
    };
    Ok(page(&signed, "keys", "API keys", flash(&q), body))
}

#[derive(Deserialize)]
pub(crate) struct KeyForm {
    csrf: String,
    name: String,
    role: String,
    #[serde(default)]
    expires_at: String,
}

/// `POST /console/keys`: creates a key and shows its secret once.
pub(crate) async fn create_key(
    signed: Signed,
    form: web::Form<KeyForm>,
) -> Result<HttpResponse, ConsoleError> {
    signed.check_csrf(&form.csrf)?;
    let tenant = match signed.tenant_as(Role::Admin) {
        Ok(t) => t,
        Err(e) => return Ok(back_with("/console/keys", &e)),
    };
    let expires = form.expires_at.trim();
    let body = crate::keys::NewKey {
        name: form.name.clone(),
        role: form.role.clone(),
        expires_at: (!expires.is_empty()).then(|| {
            if expires.len() == 16 {
                format!("{expires}:00Z")
            } else {
                format!("{expires}Z")
            }
        }),
    };
    let (name, role, expires_at) = match crate::keys::check_new_key(&body) {
        Ok(v) => v,
        Err(e) => return Ok(back_with("/console/keys", &e)),
    };
    let created = crate::keys::issue_key(&signed.state, &tenant.0, name, role, expires_at)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    let body = html! {
        p { "Key " code { (created.resource.id) } " (" (created.resource.role) ") is ready. Copy it now: it is not shown again." }
        p.secret #new-secret { (created.key) }
        p { a href="/console/keys" { "Back to the keys" } }
    };
    Ok(page(&signed, "keys", "New API key", None, body))
}

/// `POST /console/keys/{id}/revoke`.
pub(crate) async fn revoke_key(
    signed: Signed,
    id: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, ConsoleError> {
    signed.check_csrf(&form.csrf)?;
    let tenant = match signed.tenant_as(Role::Admin) {
        Ok(t) => t,
        Err(e) => return Ok(back_with("/console/keys", &e)),
    };
    if !signed.state.admin.revoke_key(&tenant.0, &id).await? {
        return Err(ApiError::NotFound("no such key".into()).into());
    }
    signed.state.key_cache.forget(&id);
    Ok(see_other(&format!(
        "/console/keys?ok={}",
        encode(&format!("Key {id} revoked"))
    )))
}

/// `GET /console/audit`: the chain's state (verified on `?verify=1`), the last
/// checkpoint, the export. The operator's verifies every chain.
pub(crate) async fn audit(signed: Signed, q: Query) -> Result<HttpResponse, ConsoleError> {
    let state = &signed.state;
    let verify = q.get("verify").is_some_and(|v| v == "1");
    if signed.tenant.is_none() {
        let report = if verify {
            Some(crate::admin::verify_all(state).await?)
        } else {
            None
        };
        let body = html! {
            p { a #verify href="/console/audit?verify=1" { "Verify every chain now" } }
            @if let Some(r) = &report {
                p #chain-status { @if r.ok { "Every chain verifies." } @else { "A chain is broken." } }
                table #chains {
                    tr { th { "Tenant" } th { "OK" } th { "Entries" } th { "Checkpoints" } th { "Head" } th { "Break" } }
                    @for c in &r.chains {
                        tr { td { code { (c.tenant) } } td { (c.ok) } td { (c.entries) } td { (c.checkpoints) } td { (c.head_seq) }
                             td { @if let Some(b) = &c.broken { (b.seq) " " (b.reason) } } }
                    }
                }
            }
        };
        return Ok(page(&signed, "audit", "Audit", flash(&q), body));
    }
    let tenant = signed.tenant()?;
    let (log, _) = crate::audit::parts(state)?;
    let t = tenant.0.to_string();
    let head = log.audit_head(&t).await?;
    let last = log
        .audit_checkpoints(&t, 0, i64::MAX)
        .await?
        .into_iter()
        .last();
    let report = if verify {
        Some(crate::audit::verify_chain(state, tenant).await?)
    } else {
        None
    };
    let body = html! {
        div.grid {
            div.card { div.muted { "Entries" } div.stat { (head.as_ref().map_or(0, |h| h.0)) } }
            div.card { div.muted { "Last checkpoint" }
                @match &last { Some(c) => div #last-checkpoint { "seq " (c.seq) " at " (when(c.at)) div.hint { "signed by key " code { (c.key_id) } } },
                               None => div.muted { "none yet" } } }
            div.card { div.muted { "Chain" }
                @match &report {
                    Some(r) => {
                        div.stat #chain-status { @if r.ok { "verified" } @else { "BROKEN" } }
                        div.hint { (r.entries) " entries, " (r.checkpoints) " checkpoints" }
                    },
                    None => a #verify href="/console/audit?verify=1" { "Verify now" },
                } }
        }
        p { a #export href="/console/audit/export" { "Export (JSON Lines, verifiable offline)" } }
    };
    Ok(page(&signed, "audit", "Audit", flash(&q), body))
}

/// `GET /console/audit/export`: the tenant's whole chain, as `GET /v1/audit/export`.
pub(crate) async fn audit_export(signed: Signed) -> Result<HttpResponse, ConsoleError> {
    let tenant = signed.tenant_as(Role::Admin)?;
    let mut r = crate::audit::export_stream(&signed.state, &tenant.0, 1, i64::MAX).await?;
    r.headers_mut().insert(
        actix_web::http::header::CONTENT_DISPOSITION,
        actix_web::http::header::HeaderValue::from_static(
            "attachment; filename=\"hermod-audit.jsonl\"",
        ),
    );
    Ok(r)
}
