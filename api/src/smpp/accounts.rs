//! SMPP accounts, managed by the operator (`/v1/admin/tenants/{id}/smpp-accounts`)
//! and `hermod smpp-accounts`.

use actix_web::{HttpRequest, HttpResponse, delete, get, post, web};
use hermod_core::TenantId;
use hermod_core::ports::PortError;
use hermod_core::smpp::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ops::require_admin;
use crate::{ApiError, AppState};

/// What creating or changing an account asks for; what is left out keeps its value
/// (or the default, for a new account).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountRequest {
    /// 1–15 letters, digits, `_` or `-`; a new one is made up when left out.
    pub system_id: Option<String>,
    /// 1–8 characters (SMPP 3.4's limit); a new account without one gets a random
    /// password, shown once.
    pub password: Option<String>,
    /// CIDRs the account may bind from (`["10.0.0.0/8"]`); empty: anywhere.
    pub networks: Option<Vec<String>>,
    /// Binds open at once, per process (default 4).
    pub max_binds: Option<u32>,
    /// Submits in flight per bind before `ESME_RMSGQFUL` (default 50).
    pub window: Option<u32>,
    /// Submits per second over the account's binds, per process, before
    /// `ESME_RTHROTTLED`; 0 (default): only the tenant's rate limit.
    pub throughput: Option<u32>,
    /// Reads on RCS or the app also come as a second receipt (`stat:ACCEPTD`).
    pub read_receipts: Option<bool>,
}

/// An SMPP account.
#[derive(Serialize, ToSchema)]
pub struct AccountView {
    pub system_id: String,
    pub tenant_id: String,
    /// Shown only when set by this request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    pub networks: Vec<String>,
    pub max_binds: u32,
    pub window: u32,
    pub throughput: u32,
    pub read_receipts: bool,
    pub created_at: String,
    pub updated_at: String,
}

pub fn view(a: &SmppAccount, password: Option<String>) -> AccountView {
    AccountView {
        system_id: a.system_id.clone(),
        tenant_id: a.tenant_id.to_string(),
        password,
        networks: a.networks.clone(),
        max_binds: a.max_binds,
        window: a.window,
        throughput: a.throughput,
        read_receipts: a.read_receipts,
        created_at: hermod_core::rfc3339(a.created_at),
        updated_at: hermod_core::rfc3339(a.updated_at),
    }
}

fn internal(e: impl std::error::Error + Send + Sync + 'static) -> ApiError {
    ApiError::Internal(PortError::Backend(Box::new(e)))
}

/// Creates or changes a tenant's account; the password it was given (or made up)
/// when it was set now. True when created.
pub async fn put_account(
    store: &dyn SmppStore,
    tenant: &TenantId,
    req: AccountRequest,
) -> Result<(SmppAccount, Option<String>, bool), ApiError> {
    let system_id = match req.system_id {
        Some(s) => s,
        None => format!(
            "h{}",
            &hermod_crypto::twilio::random_hex(5).map_err(internal)?[..9]
        ),
    };
    if !valid_system_id(&system_id) {
        return Err(ApiError::field(
            "system_id",
            "system_id must be 1 to 15 letters, digits, '_' or '-'",
        ));
    }
    if let Some(p) = &req.password
        && (p.is_empty() || p.len() > MAX_PASSWORD || !p.is_ascii())
    {
        return Err(ApiError::field(
            "password",
            "password must be 1 to 8 ASCII characters (SMPP 3.4's limit)",
        ));
    }
    if let Some(n) = &req.networks {
        parse_networks(n).map_err(|e| ApiError::field("networks", e))?;
    }
    if req.max_binds == Some(0) || req.max_binds.is_some_and(|n| n > 1000) {
        return Err(ApiError::field("max_binds", "max_binds must be 1 to 1000"));
    }
    if req.window == Some(0) || req.window.is_some_and(|n| n > 10_000) {
        return Err(ApiError::field("window", "window must be 1 to 10000"));
    }
    let existing = store
        .accounts(Some(tenant))
        .await?
        .into_iter()
        .find(|a| a.system_id == system_id);
    let created = existing.is_none();
    let password = match (&req.password, created) {
        (Some(p), _) => Some(p.clone()),
        (None, true) => Some(
            hermod_crypto::password::generate(MAX_PASSWORD)
                .map_err(|_| ApiError::Internal(PortError::Backend("no randomness".into())))?,
        ),
        (None, false) => None,
    };
    let hash = match &password {
        Some(p) => {
            let p = p.clone();
            tokio::task::spawn_blocking(move || hermod_crypto::password::hash(&p))
                .await
                .map_err(internal)?
                .map_err(|_| ApiError::Internal(PortError::Backend("no randomness".into())))?
        }
        None => existing
            .as_ref()
            .map(|a| a.password_hash.clone())
            .unwrap_or_default(),
    };
    let now = hermod_core::now_ms();
    let base = existing.unwrap_or(SmppAccount {
        system_id: system_id.clone(),
        tenant_id: tenant.clone(),
        password_hash: String::new(),
        networks: Vec::new(),
        max_binds: DEFAULT_MAX_BINDS,
        window: DEFAULT_WINDOW,
        throughput: 0,
        read_receipts: false,
        created_at: now,
        updated_at: now,
    });
    let account = SmppAccount {
        password_hash: hash,
        networks: req.networks.unwrap_or(base.networks),
        max_binds: req.max_binds.unwrap_or(base.max_binds),
        window: req.window.unwrap_or(base.window),
        throughput: req.throughput.unwrap_or(base.throughput),
        read_receipts: req.read_receipts.unwrap_or(base.read_receipts),
        updated_at: now,
        ..base
    };
    let saved = store
        .put_account(&account)
        .await
        .map_err(|e| match e {
            PortError::Conflict(m) => ApiError::Conflict(m),
            e => e.into(),
        })?
        .ok_or_else(|| ApiError::NotFound(format!("no tenant {tenant}")))?;
    Ok((saved, password, created))
}

fn tenant_of(id: &str) -> Result<TenantId, ApiError> {
    TenantId::parse(id).ok_or_else(|| ApiError::NotFound(format!("no tenant {id}")))
}

#[utoipa::path(tag = "smpp",
    params(("id" = String, Path, description = "tenant id")),
    request_body = AccountRequest,
    responses((status = 201, body = AccountView, description = "created, with its password (shown once)"),
              (status = 200, body = AccountView, description = "changed (the password shown when set by this request)"),
              (status = 400, description = "a field is invalid (named in the body)"),
              (status = 401), (status = 404), (status = 409, description = "another tenant holds the system_id")))]
#[post("/v1/admin/tenants/{id}/smpp-accounts")]
pub(crate) async fn put_tenant_account(
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&req, &state)?;
    let tenant = tenant_of(&id)?;
    let body: AccountRequest = if body.is_empty() {
        AccountRequest::default()
    } else {
        crate::json::parse_json(&body)?
    };
    let (a, password, created) = put_account(state.smpp.as_ref(), &tenant, body).await?;
    let mut r = if created {
        HttpResponse::Created()
    } else {
        HttpResponse::Ok()
    };
    Ok(r.json(view(&a, password)))
}

#[utoipa::path(tag = "smpp",
    params(("id" = String, Path, description = "tenant id")),
    responses((status = 200, body = Vec<AccountView>, description = "the tenant's accounts (never their passwords)"),
              (status = 401), (status = 404)))]
#[get("/v1/admin/tenants/{id}/smpp-accounts")]
pub(crate) async fn list_tenant_accounts(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&req, &state)?;
    let tenant = tenant_of(&id)?;
    let list: Vec<AccountView> = state
        .smpp
        .accounts(Some(&tenant))
        .await?
        .iter()
        .map(|a| view(a, None))
        .collect();
    Ok(HttpResponse::Ok().json(list))
}

#[utoipa::path(tag = "smpp",
    params(("id" = String, Path, description = "tenant id"),
           ("system_id" = String, Path, description = "the account's system_id")),
    responses((status = 204, description = "deleted, with the receipts waiting for it; its open binds are asked to unbind within 5 s"),
              (status = 401), (status = 404)))]
#[delete("/v1/admin/tenants/{id}/smpp-accounts/{system_id}")]
pub(crate) async fn delete_tenant_account(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&req, &state)?;
    let (id, system_id) = path.into_inner();
    let tenant = tenant_of(&id)?;
    if !state.smpp.delete_account(&tenant, &system_id).await? {
        return Err(ApiError::NotFound(format!("no SMPP account '{system_id}'")));
    }
    Ok(HttpResponse::NoContent().finish())
}
