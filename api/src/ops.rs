//! Operator endpoints: `GET /v1/connectors` (admin token or any API key) and
//! `POST /v1/admin/reload` (admin token).

use actix_web::{HttpRequest, HttpResponse, web};

use crate::auth::Tenant;
use crate::{ApiError, AppState};

/// What the process running the channels can tell and do.
pub trait Operations: Send + Sync {
    /// Connectors and their binds, as JSON.
    fn connectors(&self) -> serde_json::Value;
    /// Re-reads the configuration and applies what can change live (routes).
    fn reload(&self) -> Result<serde_json::Value, String>;
}

fn bearer(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// True when the request carries the configured admin token.
fn is_admin(req: &HttpRequest, state: &AppState) -> bool {
    match (&state.admin_token, bearer(req)) {
        (Some(want), Some(got)) if !want.is_empty() => {
            hermod_crypto::constant_time_eq(want.as_bytes(), got.as_bytes())
        }
        _ => false,
    }
}

fn ops(state: &AppState) -> Result<&dyn Operations, ApiError> {
    state
        .ops
        .as_deref()
        .ok_or_else(|| ApiError::NotFound("this process runs no channels".into()))
}

#[utoipa::path(get, path = "/v1/connectors",
    responses((status = 200, description = "SMPP connectors and the state of each bind"), (status = 401)))]
pub(crate) async fn connectors(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if !is_admin(&req, &state) {
        // Any tenant's key may look (read-only, no tenant data).
        let mut p = payload.into_inner();
        <Tenant as actix_web::FromRequest>::from_request(&req, &mut p).await?;
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({ "data": ops(&state)?.connectors() })))
}

#[utoipa::path(post, path = "/v1/admin/reload",
    responses((status = 200, description = "configuration re-read; routes applied"), (status = 400), (status = 403)))]
pub(crate) async fn reload(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if state.admin_token.as_deref().is_none_or(str::is_empty) {
        return Err(ApiError::Forbidden(
            "the admin API is off: set admin_token in the configuration".into(),
        ));
    }
    if !is_admin(&req, &state) {
        return Err(ApiError::Unauthorized);
    }
    let applied = ops(&state)?.reload().map_err(|e| ApiError::Invalid {
        code: "invalid_config",
        message: e,
        field: None,
    })?;
    Ok(HttpResponse::Ok().json(applied))
}
