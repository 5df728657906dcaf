//! A tenant's Twilio-style credentials, created and rotated through Hermod's API (the
//! tenant's admin key, or the operator for a tenant) and `hermod twilio-account`.

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use hermod_core::TenantId;
use hermod_core::twilio::Account;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Tenant;
use crate::ops::require_admin;
use crate::{ApiError, AppState};

/// A new account SID and auth token (`AC` + 32 hex digits, 32 hex digits).
pub fn new_credentials() -> Result<(String, String), ApiError> {
    let rng = |n| {
        hermod_crypto::twilio::random_hex(n)
            .map_err(|e| ApiError::Internal(hermod_core::ports::PortError::Backend(Box::new(e))))
    };
    Ok((format!("AC{}", rng(16)?), rng(16)?))
}

/// The tenant's account; created now if it has none, else given a new auth token
/// (the old one stops working). True when created.
pub(crate) async fn put_account(
    state: &AppState,
    tenant: &TenantId,
) -> Result<(Account, bool), ApiError> {
    let existed = state.twilio.account_of(tenant).await?.is_some();
    let (sid, token) = new_credentials()?;
    let account = state
        .twilio
        .put_account(tenant, &sid, &token, hermod_core::now_ms())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no tenant {tenant}")))?;
    state.twilio_accounts.clear();
    Ok((account, !existed))
}

/// A tenant's Twilio-compatible account.
#[derive(Serialize, ToSchema)]
pub struct TwilioAccount {
    /// `AC…`: the username of HTTP Basic, and the `{AccountSid}` of the paths.
    pub account_sid: String,
    /// The password; shown only when created or rotated. It also signs status
    /// callbacks and inbound POSTs (`X-Twilio-Signature`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_token: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

fn view(a: &Account, with_token: bool) -> TwilioAccount {
    TwilioAccount {
        account_sid: a.sid.clone(),
        auth_token: with_token.then(|| a.auth_token.0.clone()),
        created_at: hermod_core::rfc3339(a.created_at),
        updated_at: hermod_core::rfc3339(a.updated_at),
    }
}

fn answer(account: &Account, created: bool) -> HttpResponse {
    let mut r = if created {
        HttpResponse::Created()
    } else {
        HttpResponse::Ok()
    };
    r.json(view(account, true))
}

#[utoipa::path(tag = "twilio",
    responses((status = 201, body = TwilioAccount, description = "created, with its auth token"),
              (status = 200, body = TwilioAccount, description = "a new auth token for the account (the old one stops working)"),
              (status = 401), (status = 403)))]
#[post("/v1/twilio/account")]
pub(crate) async fn put_own_account(
    tenant: Tenant,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (a, created) = put_account(&state, &tenant.0).await?;
    Ok(answer(&a, created))
}

#[utoipa::path(tag = "twilio",
    responses((status = 200, body = TwilioAccount, description = "the account (never its token)"),
              (status = 401), (status = 404, description = "no account yet: `POST /v1/twilio/account`")))]
#[get("/v1/twilio/account")]
pub(crate) async fn get_own_account(
    tenant: Tenant,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let a = state.twilio.account_of(&tenant.0).await?.ok_or_else(|| {
        ApiError::NotFound("no Twilio account yet: POST /v1/twilio/account".into())
    })?;
    Ok(HttpResponse::Ok().json(view(&a, false)))
}

#[utoipa::path(tag = "twilio",
    params(("id" = String, Path, description = "tenant id")),
    responses((status = 201, body = TwilioAccount), (status = 200, body = TwilioAccount),
              (status = 401), (status = 404)))]
#[post("/v1/admin/tenants/{id}/twilio")]
pub(crate) async fn put_tenant_account(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&req, &state)?;
    let tenant =
        TenantId::parse(&id).ok_or_else(|| ApiError::NotFound(format!("no tenant {id}")))?;
    let (a, created) = put_account(&state, &tenant).await?;
    Ok(answer(&a, created))
}
