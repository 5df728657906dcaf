//! Operator endpoints (admin token): `GET /v1/connectors`, `POST /v1/admin/reload`,
//! `GET /v1/admin/dead-letters`; `/metrics` and `/v1/admin/senders` check it too.

use actix_web::{HttpRequest, HttpResponse, web};
use actix_web::{get, post};

use crate::{ApiError, AppState};

/// What the process running the channels can tell and do.
#[async_trait::async_trait]
pub trait Operations: Send + Sync {
    /// Connectors and their binds, as JSON.
    async fn connectors(&self) -> Result<serde_json::Value, ApiError>;
    /// Re-reads the configuration and applies what can change live (routes).
    fn reload(&self) -> Result<serde_json::Value, hermod_core::ports::ConfigError>;
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

#[utoipa::path(responses((status = 200, description = "SMPP connectors and the state of each bind (SMSC hosts, last errors): the operator's"), (status = 401), (status = 403)))]
#[get("/v1/connectors")]
pub(crate) async fn connectors(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&req, &state)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "data": ops(&state)?.connectors().await? })))
}

#[utoipa::path(params(("limit" = Option<usize>, Query, description = "1 to 1000, default 100")),
    responses((status = 200, description = "jobs moved aside after too many deliveries"), (status = 401), (status = 403)))]
#[get("/v1/admin/dead-letters")]
pub(crate) async fn dead_letters(
    req: HttpRequest,
    query: web::Query<std::collections::HashMap<String, String>>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&req, &state)?;
    let mut limit = 100usize;
    for (k, v) in query.iter() {
        match k.as_str() {
            "limit" => limit = ApiError::parse_limit(v)?,
            other => return Err(ApiError::unknown_param(other)),
        }
    }
    let q = state
        .queue
        .as_ref()
        .ok_or_else(|| ApiError::NotFound("this process has no queue".into()))?;
    let dead = q.dead_letters(limit).await?;
    let data: Vec<serde_json::Value> = dead
        .into_iter()
        .map(|d| {
            serde_json::json!({
                "queue": d.queue,
                "deliveries": d.deliveries,
                "dead_at": crate::json::rfc3339(d.dead_at),
                "job": serde_json::from_str::<serde_json::Value>(&d.payload)
                    .unwrap_or(serde_json::Value::String(d.payload)),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "data": data })))
}

pub(crate) fn require_admin(req: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    if state.admin_token.as_deref().is_none_or(str::is_empty) {
        return Err(ApiError::Forbidden(
            "the admin API is off: set admin_token in the configuration".into(),
        ));
    }
    if !is_admin(req, state) {
        return Err(ApiError::Unauthorized);
    }
    Ok(())
}

#[utoipa::path(responses((status = 200, description = "configuration re-read; routes applied"), (status = 400), (status = 403)))]
#[post("/v1/admin/reload")]
pub(crate) async fn reload(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&req, &state)?;
    let applied = ops(&state)?.reload().map_err(|e| ApiError::Invalid {
        code: "invalid_config",
        message: e.to_string(),
        field: None,
    })?;
    Ok(HttpResponse::Ok().json(applied))
}
