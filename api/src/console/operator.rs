//! The operator's pages: tenants, dead letters and the unattributed inbound traffic.

use std::collections::HashMap;

use actix_web::{HttpResponse, web};
use hermod_core::TenantId;
use maud::html;
use serde::Deserialize;

use super::ConsoleError;
use super::layout::{csrf, page, when};
use super::session::Signed;
use super::{encode, flash, see_other};
use crate::ApiError;
use crate::admin::TenantBody;

type Query = web::Query<HashMap<String, String>>;

fn back(e: &ApiError) -> HttpResponse {
    see_other(&format!(
        "/console/tenants?error={}",
        encode(&e.to_string())
    ))
}

/// `GET /console/tenants`.
pub(crate) async fn tenants(signed: Signed, q: Query) -> Result<HttpResponse, ConsoleError> {
    signed.operator()?;
    let state = &signed.state;
    let mut rows = Vec::new();
    for t in state.admin.list_tenants().await? {
        rows.push(crate::admin::tenant_resource(state, &t).await?);
    }
    let body = html! {
        form.row #new-tenant method="post" action="/console/tenants" {
            (csrf(&signed))
            div { label for="tenant-name" { "Name" } input #tenant-name name="name" required; }
            div { label for="tenant-rate" { "Messages/s (optional)" } input #tenant-rate name="rate_limit_per_sec" size="6"; }
            div { label for="tenant-quota" { "Daily quota (optional)" } input #tenant-quota name="daily_quota" size="8"; }
            button #create-tenant type="submit" { "Create tenant and admin key" }
        }
        table #tenants {
            tr { th { "Tenant" } th { "Id" } th { "State" } th { "Rate /s" } th { "Daily quota" } th { "Channels" } th { "Retention" } th { "Keys" } th { "Senders" } th {} }
            @for t in &rows {
                tr {
                    td { (t.name) } td { code { (t.id) } }
                    td { @if t.suspended { span.badge.s-failed { "suspended" } } @else { span.badge.s-delivered { "active" } } }
                    td { (t.rate_limit_per_sec.map(|r| r.to_string()).unwrap_or_else(|| "default".into())) }
                    td { (t.daily_quota.map(|r| r.to_string()).unwrap_or_else(|| "none".into())) }
                    td { (t.channels.as_ref().map(|c| c.join(" → ")).unwrap_or_else(|| "default".into())) }
                    td { (t.retention_days.map(|d| format!("{d} days")).unwrap_or_else(|| "default".into())) }
                    td { (t.keys) } td { (t.senders.join(", ")) }
                    td {
                        form.inline method="post" action={ "/console/tenants/" (t.id) } {
                            (csrf(&signed))
                            @if t.suspended {
                                input type="hidden" name="action" value="resume";
                                button type="submit" { "Resume" }
                            } @else {
                                input type="hidden" name="action" value="suspend";
                                button.danger type="submit" { "Suspend" }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page(&signed, "tenants", "Tenants", flash(&q), body))
}

#[derive(Deserialize)]
pub(crate) struct NewTenantForm {
    csrf: String,
    name: String,
    #[serde(default)]
    rate_limit_per_sec: String,
    #[serde(default)]
    daily_quota: String,
}

/// `POST /console/tenants`: a tenant and its first (admin) key, shown once.
pub(crate) async fn create_tenant(
    signed: Signed,
    form: web::Form<NewTenantForm>,
) -> Result<HttpResponse, ConsoleError> {
    signed.check_csrf(&form.csrf)?;
    signed.operator()?;
    let state = &signed.state;
    let mut body = TenantBody {
        name: Some(form.name.clone()),
        ..TenantBody::default()
    };
    if !form.rate_limit_per_sec.trim().is_empty() {
        match form.rate_limit_per_sec.trim().parse::<f64>() {
            Ok(r) => body.rate_limit_per_sec = Some(Some(r)),
            Err(_) => return Ok(back(&ApiError::field("rate_limit_per_sec", "not a number"))),
        }
    }
    if !form.daily_quota.trim().is_empty() {
        match form.daily_quota.trim().parse::<u64>() {
            Ok(q) => body.daily_quota = Some(Some(q)),
            Err(_) => return Ok(back(&ApiError::field("daily_quota", "not a whole number"))),
        }
    }
    let t = match crate::admin::new_tenant(state, &body).await {
        Ok(t) => t,
        Err(e @ (ApiError::Invalid { .. } | ApiError::Conflict(_))) => return Ok(back(&e)),
        Err(e) => return Err(e.into()),
    };
    let key = crate::keys::issue_key(
        state,
        &t.id,
        "console".into(),
        hermod_core::tenant::Role::Admin,
        None,
    )
    .await?
    .ok_or_else(|| ApiError::NotFound("the tenant was deleted meanwhile".into()))?;
    let page_body = html! {
        p { "Tenant " (t.name) " (" code { (t.id) } ") is ready. Its admin key — copy it now, it is not shown again:" }
        p.secret #new-secret { (key.key) }
        p { a href="/console/tenants" { "Back to the tenants" } }
    };
    Ok(page(&signed, "tenants", "New tenant", None, page_body))
}

#[derive(Deserialize)]
pub(crate) struct TenantActionForm {
    csrf: String,
    action: String,
}

/// `POST /console/tenants/{id}`: suspend or resume.
pub(crate) async fn update_tenant(
    signed: Signed,
    id: web::Path<String>,
    form: web::Form<TenantActionForm>,
) -> Result<HttpResponse, ConsoleError> {
    signed.check_csrf(&form.csrf)?;
    signed.operator()?;
    let state = &signed.state;
    let id = TenantId::parse(&id).ok_or_else(|| ApiError::NotFound("no such tenant".into()))?;
    let suspended = match form.action.as_str() {
        "suspend" => true,
        "resume" => false,
        _ => return Ok(back(&ApiError::field("action", "suspend or resume"))),
    };
    let patch = hermod_core::tenant::TenantPatch {
        suspended: Some(suspended),
        ..Default::default()
    };
    let t = state
        .admin
        .update_tenant(&id, &patch)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such tenant".into()))?;
    state.key_cache.clear();
    let what = if suspended { "suspended" } else { "resumed" };
    Ok(see_other(&format!(
        "/console/tenants?ok={}",
        encode(&format!("{} {what}", t.name))
    )))
}

/// `GET /console/operations`: dead letters and inbound traffic no tenant owns.
pub(crate) async fn operations(signed: Signed, q: Query) -> Result<HttpResponse, ConsoleError> {
    signed.operator()?;
    let state = &signed.state;
    let dead = match &state.queue {
        Some(queue) => queue.dead_letters(100).await?,
        None => Vec::new(),
    };
    let inbound = state.inbound.unattributed_inbound(100, None).await?;
    let body = html! {
        h2 { "Dead letters" }
        @if dead.is_empty() { p.muted #no-dead-letters { "None." } } @else {
            table #dead-letters {
                tr { th { "Queue" } th { "Deliveries" } th { "Dead since" } th { "Job" } }
                @for d in &dead { tr { td { (d.queue) } td { (d.deliveries) } td { (when(d.dead_at)) } td { code { (d.payload) } } } }
            }
        }
        h2 { "Inbound traffic no tenant owns" }
        @if inbound.is_empty() { p.muted #no-unattributed { "None." } } @else {
            table #unattributed {
                tr { th { "Received" } th { "From" } th { "To" } th { "Channel" } th { "Connector" } th { "Text" } }
                @for m in &inbound { tr { td { (when(m.received_at)) } td { (m.from) } td { (m.to) } td { (m.channel.as_str()) } td { (m.connector) } td { (m.text) } } }
            }
        }
    };
    Ok(page(
        &signed,
        "operations",
        "Dead letters and inbound",
        flash(&q),
        body,
    ))
}
