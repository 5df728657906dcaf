//! Customer webhooks (endpoints, deliveries, the callback secret) and the tenant's
//! defaults for channel order and fallback.

use actix_web::{delete, get, post, put};
use std::collections::HashMap;

use actix_web::{HttpResponse, web};
use hermod_core::model::ChannelKind;
use hermod_core::plan::TenantDefaults;
use hermod_core::webhook::*;
use hermod_core::{EndpointId, now_ms};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Tenant;
use crate::json::{INTERNAL_URL, parse_fallback};
use crate::json::{parse_json, rfc3339};
use crate::{ApiError, AppState};

/// `POST /v1/webhook-endpoints` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEndpoint {
    /// http(s) URL that receives the signed POSTs.
    pub url: String,
    /// Event types (`message.delivered`, `message.inbound` ...) or `["*"]`.
    pub events: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct EndpointResource {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub created_at: String,
    /// The signing secret: shown once, at creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// `GET /v1/webhook-endpoints`: the tenant's endpoints.
#[derive(Serialize, ToSchema)]
pub struct EndpointList {
    pub data: Vec<EndpointResource>,
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryResource {
    pub id: i64,
    pub endpoint_id: Option<String>,
    pub url: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub message_id: Option<String>,
    /// `pending`, `delivered` or `failed` (given up after 25 hours of retries).
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: Option<String>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// `GET /v1/webhook-deliveries`: a page of deliveries, newest first.
#[derive(Serialize, ToSchema)]
pub struct DeliveryList {
    pub data: Vec<DeliveryResource>,
    /// Pass as `cursor` for the next page; null on the last one.
    pub next_cursor: Option<i64>,
}

/// `PUT /v1/tenant/defaults` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DefaultsBody {
    /// Channel order for messages that name none, e.g. `["app", "rcs", "sms"]`.
    pub channels: Option<Vec<String>>,
    /// `{"after": "90s", "until": "delivered", "duplicates": "avoid"}`.
    #[schema(value_type = Option<Object>)]
    pub fallback: Option<serde_json::Value>,
    /// `{"start": "21:00", "end": "08:00", "timezones": {"+1808": "Pacific/Honolulu"}}`:
    /// messages that are not `high` priority wait while it is quiet where the
    /// recipient is (time zone from the number's country code unless overridden).
    #[schema(value_type = Option<Object>)]
    pub quiet_hours: Option<serde_json::Value>,
}

fn hooks(state: &AppState) -> Result<&std::sync::Arc<dyn Webhooks>, ApiError> {
    state
        .webhooks
        .as_ref()
        .ok_or_else(|| ApiError::NotFound("webhooks are not available here".into()))
}

fn endpoint(e: &WebhookEndpoint, secret: Option<String>) -> EndpointResource {
    EndpointResource {
        id: e.id.clone(),
        url: e.url.clone(),
        events: e.events.clone(),
        created_at: rfc3339(e.created_at),
        secret,
    }
}

fn new_secret() -> Result<String, ApiError> {
    hermod_crypto::webhook::generate_secret()
        .map_err(|e| ApiError::Internal(hermod_core::ports::PortError::Backend(Box::new(e))))
}

#[utoipa::path(request_body = NewEndpoint,
    responses((status = 201, body = EndpointResource, description = "with its signing secret, shown once"), (status = 400), (status = 401)))]
#[post("/v1/webhook-endpoints")]
pub(crate) async fn create_endpoint(
    tenant: Tenant,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let store = hooks(&state)?;
    let req: NewEndpoint = parse_json(&body)?;
    if !hermod_core::content::is_http_url(&req.url) {
        return Err(ApiError::field("url", "url must be an http(s) URL"));
    }
    if state.address_policy.refuses_url(&req.url) {
        return Err(ApiError::field("url", INTERNAL_URL));
    }
    if req.events.is_empty() {
        return Err(ApiError::field(
            "events",
            "events must name at least one event type or \"*\"",
        ));
    }
    for (i, e) in req.events.iter().enumerate() {
        if e != "*" && !EVENT_TYPES.contains(&e.as_str()) {
            return Err(ApiError::field(
                format!("events[{i}]"),
                format!(
                    "unknown event type '{e}' (one of {}, or \"*\")",
                    EVENT_TYPES.join(", ")
                ),
            ));
        }
    }
    let secret = new_secret()?;
    let e = WebhookEndpoint {
        id: EndpointId::generate().to_string(),
        tenant_id: tenant.0.clone(),
        url: req.url,
        events: req.events,
        created_at: now_ms(),
    };
    store.create_endpoint(&e, &secret).await?;
    Ok(HttpResponse::Created().json(endpoint(&e, Some(secret))))
}

#[utoipa::path(responses((status = 200, body = EndpointList), (status = 401)))]
#[get("/v1/webhook-endpoints")]
pub(crate) async fn list_endpoints(
    tenant: Tenant,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let list = hooks(&state)?.list_endpoints(&tenant.0).await?;
    let data: Vec<EndpointResource> = list.iter().map(|e| endpoint(e, None)).collect();
    Ok(HttpResponse::Ok().json(crate::json::keys_sorted(&EndpointList { data })))
}

#[utoipa::path(responses((status = 204), (status = 404)))]
#[delete("/v1/webhook-endpoints/{id}")]
pub(crate) async fn delete_endpoint(
    tenant: Tenant,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    if hooks(&state)?.delete_endpoint(&tenant.0, &id).await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::NotFound("no such webhook endpoint".into()))
    }
}

/// `POST /v1/webhook-secret`: a new secret for deliveries to per-message
/// `callback_url`s (replacing any earlier one); shown once.
#[utoipa::path(responses((status = 201, description = "`{\"secret\": \"whsec_...\"}`"), (status = 401)))]
#[post("/v1/webhook-secret")]
pub(crate) async fn rotate_callback_secret(
    tenant: Tenant,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let secret = new_secret()?;
    hooks(&state)?
        .set_callback_secret(&tenant.0, &secret)
        .await?;
    Ok(HttpResponse::Created().json(serde_json::json!({ "secret": secret })))
}

#[utoipa::path(params(("status" = Option<String>, Query, description = "pending, delivered or failed"),
           ("before" = Option<i64>, Query, description = "cursor: the last id of the previous page"),
           ("limit" = Option<i64>, Query)),
    responses((status = 200, body = DeliveryList), (status = 400), (status = 401)))]
#[get("/v1/webhook-deliveries")]
pub(crate) async fn list_deliveries(
    tenant: Tenant,
    state: web::Data<AppState>,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let (mut status, mut before, mut limit) = (None, None, 100);
    for (k, v) in query.iter() {
        match k.as_str() {
            "status" => {
                status = Some(DeliveryStatus::parse(v).ok_or_else(|| {
                    ApiError::field("status", "status must be pending, delivered or failed")
                })?)
            }
            "before" => {
                before = Some(
                    v.parse::<i64>()
                        .map_err(|_| ApiError::field("before", "before must be a delivery id"))?,
                )
            }
            "limit" => limit = ApiError::parse_limit(v)?,
            other => return Err(ApiError::unknown_param(other)),
        }
    }
    let list = hooks(&state)?
        .list_deliveries(&tenant.0, status, before, limit)
        .await?;
    let next = (list.len() as i64 == limit)
        .then(|| list.last().map(|d| d.id))
        .flatten();
    let data: Vec<DeliveryResource> = list
        .into_iter()
        .map(|d| DeliveryResource {
            id: d.id,
            endpoint_id: d.endpoint_id,
            url: d.url,
            event_type: d.event_type,
            message_id: d.message_id,
            status: d.status.as_str().to_owned(),
            attempts: d.attempts,
            next_attempt_at: (d.status == DeliveryStatus::Pending).then(|| rfc3339(d.next_at)),
            last_status: d.last_status,
            last_error: d.last_error,
            created_at: rfc3339(d.created_at),
            updated_at: rfc3339(d.updated_at),
        })
        .collect();
    Ok(
        HttpResponse::Ok().json(crate::json::keys_sorted(&DeliveryList {
            data,
            next_cursor: next,
        })),
    )
}

#[utoipa::path(responses((status = 202, description = "queued again now"), (status = 404)))]
#[post("/v1/webhook-deliveries/{id}/retry")]
pub(crate) async fn retry_delivery(
    tenant: Tenant,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::NotFound("no such delivery".into()))?;
    if hooks(&state)?.retry_delivery(&tenant.0, id).await? {
        Ok(HttpResponse::Accepted().json(serde_json::json!({ "id": id, "status": "pending" })))
    } else {
        Err(ApiError::NotFound("no such delivery".into()))
    }
}

#[utoipa::path(responses((status = 200, description = "`{channels, fallback}` as set (unset = built-in defaults)"), (status = 401)))]
#[get("/v1/tenant/defaults")]
pub(crate) async fn get_defaults(
    tenant: Tenant,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let d = state.tenants.tenant_defaults(&tenant.0).await?;
    Ok(HttpResponse::Ok().json(d))
}

#[utoipa::path(request_body = DefaultsBody,
    responses((status = 200, description = "the defaults now in force"), (status = 400), (status = 401)))]
#[put("/v1/tenant/defaults")]
pub(crate) async fn put_defaults(
    tenant: Tenant,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let req: DefaultsBody = parse_json(&body)?;
    let channels = match req.channels {
        None => None,
        Some(list) if list.is_empty() => {
            return Err(ApiError::field("channels", "channels must not be empty"));
        }
        Some(list) => Some(
            list.iter()
                .enumerate()
                .map(|(i, c)| {
                    ChannelKind::parse(c).ok_or_else(|| {
                        ApiError::field(
                            format!("channels[{i}]"),
                            format!(
                                "unsupported channel '{c}' (supported: {})",
                                ChannelKind::names()
                            ),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let fallback = match req.fallback {
        None => None,
        Some(v) => Some(parse_fallback(v, "fallback")?),
    };
    let quiet_hours = match req.quiet_hours {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => {
            let q: hermod_core::quiet::QuietHours = crate::json::parse_value(v, "quiet_hours.")?;
            q.validate()
                .map_err(|(f, m)| ApiError::field(format!("quiet_hours.{f}"), m))?;
            Some(q)
        }
    };
    let d = TenantDefaults {
        channels,
        fallback,
        quiet_hours,
    };
    state.tenants.set_tenant_defaults(&tenant.0, &d).await?;
    state.forget_quiet_hours(&tenant.0);
    Ok(HttpResponse::Ok().json(d))
}
