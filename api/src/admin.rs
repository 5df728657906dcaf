//! The operator's tenant administration (`/v1/admin/tenants`, admin token): create,
//! list, change, suspend and delete tenants, issue their first keys, and verify every
//! audit chain. Senders and RCS agents are assigned with `/v1/admin/senders`.

use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};
use hermod_core::TenantId;
use hermod_core::model::ChannelKind;
use hermod_core::tenant::{TenantInfo, TenantLimits, TenantPatch};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use crate::json::{parse_json, rfc3339};
use crate::keys::{CreatedKey, NewKey, check_new_key, issue_key};
use crate::ops::require_admin;
use crate::{ApiError, AppState};

/// A field that may be absent (unchanged), `null` (cleared) or set.
fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// `POST /v1/admin/tenants` and `PATCH /v1/admin/tenants/{id}` body. In a `PATCH`, a
/// field left out stays as it is and `null` clears it.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct TenantBody {
    /// Unique, 1 to 100 characters (create only).
    #[serde(default)]
    pub name: Option<String>,
    /// Messages per second it may create (over it: `429 rate_limited`); default: the
    /// configuration's `[api] rate_limit`.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<f64>)]
    pub rate_limit_per_sec: Option<Option<f64>>,
    /// Messages per UTC day (over it: `429 quota_exceeded`).
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<u64>)]
    pub daily_quota: Option<Option<u64>>,
    /// Its default channel order (`["rcs", "sms"]`), for messages that name none.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Vec<String>>)]
    pub channels: Option<Option<Vec<String>>>,
    /// Days its messages are kept before their content is shredded (1 to 3650).
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>)]
    pub retention_days: Option<Option<i64>>,
    /// `true`: its keys answer `403 tenant_suspended` (its console too); `false`: resumed.
    #[serde(default)]
    pub suspended: Option<bool>,
}

#[derive(Serialize, ToSchema)]
pub struct TenantResource {
    pub id: String,
    pub name: String,
    pub created_at: String,
    pub suspended: bool,
    pub suspended_at: Option<String>,
    pub rate_limit_per_sec: Option<f64>,
    pub daily_quota: Option<u64>,
    /// Its default channel order; null: the configuration's.
    pub channels: Option<Vec<String>>,
    pub retention_days: Option<i64>,
    /// Keys not revoked.
    pub keys: i64,
    /// Senders and RCS agents it owns (`/v1/admin/senders`).
    pub senders: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct TenantList {
    pub data: Vec<TenantResource>,
}

/// `POST /v1/admin/tenants/{id}/keys` answer: the tenant and its new key.
#[derive(Serialize, ToSchema)]
pub struct TenantKey {
    pub tenant_id: String,
    #[serde(flatten)]
    pub key: CreatedKey,
}

pub(crate) async fn tenant_resource(
    state: &AppState,
    t: &TenantInfo,
) -> Result<TenantResource, ApiError> {
    let senders = crate::senders::all(state, Some(&t.id))
        .await?
        .into_iter()
        .map(|s| s.sender)
        .collect();
    Ok(TenantResource {
        id: t.id.to_string(),
        name: t.name.clone(),
        created_at: rfc3339(t.created_at),
        suspended: t.suspended_at.is_some(),
        suspended_at: t.suspended_at.map(rfc3339),
        rate_limit_per_sec: t.limits.rate_limit_per_sec,
        daily_quota: t.limits.daily_quota,
        channels: t
            .defaults
            .channels
            .as_ref()
            .map(|c| c.iter().map(|k| k.as_str().to_owned()).collect()),
        retention_days: t.retention_days,
        keys: t.keys,
        senders,
    })
}

/// Turns a body into a patch over `current` (None: a new tenant).
pub(crate) fn patch_of(
    state: &AppState,
    body: &TenantBody,
    current: Option<&TenantInfo>,
) -> Result<TenantPatch, ApiError> {
    let mut patch = TenantPatch::default();
    if body.rate_limit_per_sec.is_some() || body.daily_quota.is_some() {
        let mut limits: TenantLimits = current.map(|t| t.limits.clone()).unwrap_or_default();
        if let Some(r) = body.rate_limit_per_sec {
            if r.is_some_and(|r| !(r > 0.0 && r <= 1_000_000.0)) {
                return Err(ApiError::field(
                    "rate_limit_per_sec",
                    "rate_limit_per_sec must be above 0 and at most 1000000",
                ));
            }
            limits.rate_limit_per_sec = r;
        }
        if let Some(q) = body.daily_quota {
            if q == Some(0) {
                return Err(ApiError::field(
                    "daily_quota",
                    "daily_quota must be 1 or more",
                ));
            }
            limits.daily_quota = q;
        }
        patch.limits = Some(limits);
    }
    if let Some(channels) = &body.channels {
        let mut defaults = current.map(|t| t.defaults.clone()).unwrap_or_default();
        defaults.channels = match channels {
            None => None,
            Some(list) => {
                if list.is_empty() {
                    return Err(ApiError::field(
                        "channels",
                        "channels must name at least one channel",
                    ));
                }
                let mut kinds: Vec<ChannelKind> = Vec::new();
                for (i, c) in list.iter().enumerate() {
                    let k = state
                        .channels
                        .iter()
                        .find(|k| k.as_str() == c)
                        .copied()
                        .ok_or_else(|| {
                            ApiError::field(
                                format!("channels[{i}]"),
                                format!("unknown channel '{c}'"),
                            )
                        })?;
                    if kinds.contains(&k) {
                        return Err(ApiError::field(
                            format!("channels[{i}]"),
                            "a channel is named twice",
                        ));
                    }
                    kinds.push(k);
                }
                Some(kinds)
            }
        };
        patch.defaults = Some(defaults);
    }
    if let Some(days) = body.retention_days {
        if days.is_some_and(|d| !(1..=3650).contains(&d)) {
            return Err(ApiError::field(
                "retention_days",
                "retention_days must be 1 to 3650",
            ));
        }
        patch.retention_days = Some(days);
    }
    patch.suspended = body.suspended;
    Ok(patch)
}

/// Creates the tenant a body describes (the API's and the console's).
pub(crate) async fn new_tenant(
    state: &AppState,
    body: &TenantBody,
) -> Result<TenantInfo, ApiError> {
    let name = body
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty() && n.chars().count() <= 100)
        .ok_or_else(|| ApiError::field("name", "name must be 1 to 100 characters"))?;
    if body.suspended == Some(true) {
        return Err(ApiError::field(
            "suspended",
            "a new tenant cannot be suspended",
        ));
    }
    let patch = patch_of(state, body, None)?;
    Ok(state.admin.create_tenant(name, &patch).await?)
}

fn tenant_id(id: &str) -> Result<TenantId, ApiError> {
    TenantId::parse(id).ok_or_else(|| ApiError::NotFound("no such tenant".into()))
}

/// Creates a tenant (then give it a key: `POST /v1/admin/tenants/{id}/keys`).
#[utoipa::path(tag = "admin", request_body = TenantBody,
    responses((status = 201, body = TenantResource), (status = 400), (status = 401), (status = 403, description = "no admin token configured"), (status = 409, description = "the name is taken")))]
#[post("/v1/admin/tenants")]
pub(crate) async fn create_tenant(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    require_admin(&req, &state)?;
    let body: TenantBody = parse_json(&body)?;
    let t = new_tenant(&state, &body).await?;
    Ok(HttpResponse::Created().json(tenant_resource(&state, &t).await?))
}

/// Every tenant, by name.
#[utoipa::path(tag = "admin",
    responses((status = 200, body = TenantList), (status = 401), (status = 403, description = "no admin token configured")))]
#[get("/v1/admin/tenants")]
pub(crate) async fn list_tenants(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&req, &state)?;
    let mut data = Vec::new();
    for t in state.admin.list_tenants().await? {
        data.push(tenant_resource(&state, &t).await?);
    }
    Ok(HttpResponse::Ok().json(TenantList { data }))
}

/// One tenant.
#[utoipa::path(tag = "admin", params(("id" = String, Path, description = "`ten_…`")),
    responses((status = 200, body = TenantResource), (status = 401), (status = 403, description = "no admin token configured"), (status = 404)))]
#[get("/v1/admin/tenants/{id}")]
pub(crate) async fn get_tenant(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&req, &state)?;
    let t = state
        .admin
        .tenant(&tenant_id(&id)?)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such tenant".into()))?;
    Ok(HttpResponse::Ok().json(tenant_resource(&state, &t).await?))
}

/// Changes a tenant's limits, default channels or retention, or suspends / resumes it.
#[utoipa::path(tag = "admin", request_body = TenantBody, params(("id" = String, Path, description = "`ten_…`")),
    responses((status = 200, body = TenantResource), (status = 400), (status = 401), (status = 403, description = "no admin token configured"), (status = 404)))]
#[patch("/v1/admin/tenants/{id}")]
pub(crate) async fn update_tenant(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    require_admin(&req, &state)?;
    let body: TenantBody = parse_json(&body)?;
    if body.name.is_some() {
        return Err(ApiError::field("name", "a tenant's name cannot change"));
    }
    let id = tenant_id(&id)?;
    let current = state
        .admin
        .tenant(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such tenant".into()))?;
    let patch = patch_of(&state, &body, Some(&current))?;
    let t = state
        .admin
        .update_tenant(&id, &patch)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such tenant".into()))?;
    // Keys carry their tenant's state: this process sees the change at once.
    state.key_cache.clear();
    state.forget_quiet_hours(&id);
    Ok(HttpResponse::Ok().json(tenant_resource(&state, &t).await?))
}

/// Deletes a tenant: its keys are revoked and its console sessions end; its messages
/// stay until its retention removes them, and its audit chain stays verifiable.
#[utoipa::path(tag = "admin", params(("id" = String, Path, description = "`ten_…`")),
    responses((status = 204, description = "deleted"), (status = 401), (status = 403, description = "no admin token configured"), (status = 404)))]
#[delete("/v1/admin/tenants/{id}")]
pub(crate) async fn delete_tenant(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&req, &state)?;
    if !state.admin.delete_tenant(&tenant_id(&id)?).await? {
        return Err(ApiError::NotFound("no such tenant".into()));
    }
    state.key_cache.clear();
    Ok(HttpResponse::NoContent().finish())
}

/// Issues a key of a tenant (its first one, typically an `admin` key).
#[utoipa::path(tag = "admin", request_body = NewKey, params(("id" = String, Path, description = "`ten_…`")),
    responses((status = 201, body = TenantKey, description = "the key; its secret `key` is shown this once"), (status = 400), (status = 401), (status = 403, description = "no admin token configured"), (status = 404)))]
#[post("/v1/admin/tenants/{id}/keys")]
pub(crate) async fn create_tenant_key(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    require_admin(&req, &state)?;
    let body: NewKey = parse_json(&body)?;
    let (name, role, expires_at) = check_new_key(&body)?;
    let id = tenant_id(&id)?;
    let key = issue_key(&state, &id, name, role, expires_at)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such tenant".into()))?;
    Ok(HttpResponse::Created().json(TenantKey {
        tenant_id: id.to_string(),
        key,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct AuditVerification {
    /// True when every chain verified.
    pub ok: bool,
    /// One per tenant with an audit chain.
    pub chains: Vec<crate::audit::VerifyResource>,
}

/// Verifies every tenant's audit chain now (and chains what is pending first).
#[utoipa::path(tag = "admin",
    responses((status = 200, body = AuditVerification), (status = 401), (status = 403, description = "no admin token configured"), (status = 503, description = "no audit log on this server")))]
#[post("/v1/admin/audit/verify")]
pub(crate) async fn verify_audit(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&req, &state)?;
    Ok(HttpResponse::Ok().json(verify_all(&state).await?))
}

/// Every chain's verification.
pub(crate) async fn verify_all(state: &AppState) -> Result<AuditVerification, ApiError> {
    let (log, signer) = crate::audit::parts(state)?;
    hermod_core::audit::chain_all(log.as_ref()).await?;
    let mut chains = Vec::new();
    for t in log.audit_tenants().await? {
        let report = crate::audit::verify_tenant(log.as_ref(), signer.as_ref(), &t).await?;
        let head = log.audit_head(&t).await?.map_or(0, |h| h.0);
        chains.push(crate::audit::verify_resource(&report, head));
    }
    Ok(AuditVerification {
        ok: chains.iter().all(|c| c.ok),
        chains,
    })
}
