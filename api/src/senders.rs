//! Sender ownership: the operator assigns numbers, alphanumeric ids and RCS agent names
//! to tenants (`/v1/admin/senders`, admin token); a tenant lists its own
//! (`GET /v1/senders`). Inbound traffic no tenant owns is the operator's
//! (`GET /v1/admin/inbound`).

use actix_web::{delete, get, post};
use std::collections::HashMap;

use actix_web::{HttpRequest, HttpResponse, web};
use hermod_core::TenantId;
use hermod_core::inbound::sender_key;
use hermod_core::sender::Sender;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Tenant;
use crate::inbound::{InboundList, inbound_page, page_params};
use crate::json::{parse_json, rfc3339};
use crate::ops::require_admin;
use crate::{ApiError, AppState};

/// `POST /v1/admin/senders` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSender {
    /// A number (`+447700900123`), an alphanumeric id (`Acme`) or an RCS agent name.
    pub sender: String,
    /// The owner (`ten_…`).
    pub tenant_id: String,
    /// The tenant's sender for messages without `from` (replaces its previous default).
    #[serde(default)]
    pub default: bool,
}

#[derive(Serialize, ToSchema)]
pub struct SenderResource {
    pub sender: String,
    pub tenant_id: String,
    pub default: bool,
    /// `config` (the configuration file) or `api`.
    pub source: &'static str,
    pub created_at: Option<String>,
}

fn resource(s: &Sender, source: &'static str) -> SenderResource {
    SenderResource {
        sender: s.sender.clone(),
        tenant_id: s.tenant_id.to_string(),
        default: s.default,
        source,
        created_at: (source == "api").then(|| rfc3339(s.created_at)),
    }
}

/// A sender as the API accepts it in `from`.
fn valid_sender(s: &str) -> bool {
    let s = s.trim();
    if let Some(d) = s.strip_prefix('+') {
        (3..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit())
    } else {
        (1..=64).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b" -_.@".contains(&b))
    }
}

fn store(state: &AppState) -> Result<&std::sync::Arc<dyn hermod_core::sender::Senders>, ApiError> {
    state
        .senders
        .store()
        .ok_or_else(|| ApiError::NotFound("sender assignments are not available here".into()))
}

/// Configuration assignments and stored ones, the configuration's first.
pub(crate) async fn all(
    state: &AppState,
    tenant: Option<&TenantId>,
) -> Result<Vec<SenderResource>, ApiError> {
    let mut out: Vec<SenderResource> = state
        .senders
        .fixed()
        .iter()
        .filter(|s| tenant.is_none_or(|t| *t == s.tenant_id))
        .map(|s| resource(s, "config"))
        .collect();
    for s in store(state)?.list_senders(tenant).await? {
        if !out
            .iter()
            .any(|o| sender_key(&o.sender) == sender_key(&s.sender))
        {
            out.push(resource(&s, "api"));
        }
    }
    Ok(out)
}

#[utoipa::path(responses((status = 200, description = "every assignment: `{data: [{sender, tenant_id, default, source}]}`"), (status = 401), (status = 403)))]
#[get("/v1/admin/senders")]
pub(crate) async fn admin_list(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&req, &state)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "data": all(&state, None).await? })))
}

#[utoipa::path(request_body = NewSender,
    responses((status = 201, body = SenderResource), (status = 400), (status = 401), (status = 403),
              (status = 409, description = "another tenant owns it")))]
#[post("/v1/admin/senders")]
pub(crate) async fn assign(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&req, &state)?;
    let b: NewSender = parse_json(&body)?;
    if !valid_sender(&b.sender) {
        return Err(ApiError::field(
            "sender",
            "sender must be +digits (3 to 15), or 1 to 64 letters, digits, space, -_.@",
        ));
    }
    let tenant = TenantId::parse(&b.tenant_id)
        .ok_or_else(|| ApiError::field("tenant_id", "tenant_id must be a ten_… id"))?;
    if let Some(owner) = state.senders.fixed_owner(&b.sender) {
        return Err(if *owner == tenant {
            ApiError::Conflict("the configuration already assigns this sender".into())
        } else {
            ApiError::Conflict("the configuration assigns this sender to another tenant".into())
        });
    }
    let s = Sender {
        sender: b.sender.trim().to_owned(),
        tenant_id: tenant,
        default: b.default,
        created_at: hermod_core::now_ms(),
    };
    if !store(&state)?.assign_sender(&s).await? {
        return Err(ApiError::field("tenant_id", "no such tenant"));
    }
    state.senders.invalidate();
    Ok(HttpResponse::Created().json(resource(&s, "api")))
}

#[utoipa::path(params(("sender" = String, Path)),
    responses((status = 204), (status = 401), (status = 403), (status = 404), (status = 409, description = "assigned by the configuration")))]
#[delete("/v1/admin/senders/{sender}")]
pub(crate) async fn remove(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&req, &state)?;
    let sender = path.into_inner();
    if state.senders.fixed_owner(&sender).is_some() {
        return Err(ApiError::Conflict(
            "the configuration assigns this sender; change it there".into(),
        ));
    }
    if !store(&state)?.remove_sender(&sender).await? {
        return Err(ApiError::NotFound("no such sender".into()));
    }
    state.senders.invalidate();
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(params(("limit" = Option<i64>, Query, description = "1 to 1000, default 50"), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = InboundList, description = "inbound messages to senders no tenant owns"), (status = 401), (status = 403)))]
#[get("/v1/admin/inbound")]
pub(crate) async fn unattributed(
    req: HttpRequest,
    query: web::Query<HashMap<String, String>>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&req, &state)?;
    let (limit, cursor) = page_params(&query)?;
    let rows = state
        .inbound
        .unattributed_inbound(limit, cursor.as_deref())
        .await?;
    Ok(HttpResponse::Ok().json(inbound_page(&rows, limit)))
}

#[utoipa::path(responses((status = 200, description = "the caller's senders: `{data: [{sender, tenant_id, default, source}]}`"), (status = 401)))]
#[get("/v1/senders")]
pub(crate) async fn list(
    tenant: Tenant,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(serde_json::json!({ "data": all(&state, Some(&tenant.0)).await? })))
}
