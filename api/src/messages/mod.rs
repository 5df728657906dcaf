//! `/v1/messages`: send one, send a batch, read, list, cancel.

mod accept;
mod dto;
mod validate;

pub(crate) use accept::*;
pub use dto::*;
pub(crate) use validate::*;

use actix_web::{delete, get, post};
use std::collections::HashMap;

use actix_web::{HttpRequest, HttpResponse, web};
use hermod_core::model::*;
use hermod_core::{MessageId, Msisdn, Status, now_ms};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Tenant;
use crate::json::*;
use crate::{ApiError, AppState};

#[utoipa::path(request_body = SendMessage,
    params(("Idempotency-Key" = Option<String>, Header, description = "replays return the first response")),
    responses((status = 202, body = MessageResource), (status = 400), (status = 401), (status = 422)))]
#[post("/v1/messages")]
pub(crate) async fn create(
    req: HttpRequest,
    body: web::Bytes,
    tenant: Tenant,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (value, hash, key) = match keyed_body(&req, &body, &state, &tenant.0).await? {
        Keyed::Replay(r) => return Ok(r),
        Keyed::Fresh { value, hash, key } => (value, hash, key),
    };
    let parsed: SendMessage = parse_value(value, "")?;
    let mut prep = Prep::load(&state, &tenant.0).await?;
    let msg = prep.message(&state, parsed, "", now_ms()).await?;
    rate_limit(&state, &tenant, 1).await?;
    let body = to_json(&resource(&accepted_view(&msg), None))?;
    store_and_answer(&state, &tenant.0, key, hash, vec![msg], 202, body).await
}

/// Sends one message as `POST /v1/messages` does, without an `Idempotency-Key` (the
/// console's form).
pub(crate) async fn send_one(
    state: &AppState,
    tenant: &Tenant,
    value: serde_json::Value,
) -> Result<MessageId, ApiError> {
    let parsed: SendMessage = parse_value(value, "")?;
    let mut prep = Prep::load(state, &tenant.0).await?;
    let msg = prep.message(state, parsed, "", now_ms()).await?;
    rate_limit(state, tenant, 1).await?;
    let id = msg.id.clone();
    state.messages.accept(&tenant.0, &[msg], None).await?;
    metrics::counter!("hermod_messages_total", "stage" => "api", "status" => "accepted")
        .increment(1);
    Ok(id)
}

/// One item of a batch: its message, or why it was refused.
#[derive(Serialize, ToSchema)]
pub struct BatchItem {
    /// Its place in `messages`.
    pub index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<MessageResource>,
    /// `{code, message, field}` as in an error response.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub error: Option<serde_json::Value>,
}

/// `POST /v1/messages/batch`: per-item results (`400` when every item is refused).
#[derive(Serialize, ToSchema)]
pub struct BatchResult {
    pub accepted: usize,
    pub rejected: usize,
    pub results: Vec<BatchItem>,
}

#[utoipa::path(request_body = SendBatch,
    responses((status = 202, body = BatchResult, description = "per-item results; valid items stored in one transaction"),
              (status = 400, body = BatchResult, description = "every item refused (or the body is not a batch)")))]
#[post("/v1/messages/batch")]
pub(crate) async fn create_batch(
    req: HttpRequest,
    body: web::Bytes,
    tenant: Tenant,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (value, hash, key) = match keyed_body(&req, &body, &state, &tenant.0).await? {
        Keyed::Replay(r) => return Ok(r),
        Keyed::Fresh { value, hash, key } => (value, hash, key),
    };
    let batch: SendBatch = parse_value(value, "")?;
    if batch.messages.is_empty() || batch.messages.len() > 1000 {
        return Err(ApiError::field(
            "messages",
            "messages must hold 1 to 1000 items",
        ));
    }
    let now = now_ms();
    let mut msgs = Vec::new();
    let mut items = Vec::new();
    let mut prep = Prep::load(&state, &tenant.0).await?;
    for (i, v) in batch.messages.into_iter().enumerate() {
        let prefix = format!("messages[{i}].");
        let res = match parse_value::<SendMessage>(v, &prefix) {
            Ok(m) => prep.message(&state, m, &prefix, now).await,
            Err(e) => Err(e),
        };
        match res {
            Ok(m) => {
                items.push(BatchItem {
                    index: i,
                    message: Some(resource(&accepted_view(&m), None)),
                    error: None,
                });
                msgs.push(m);
            }
            Err(e) => {
                let detail = match &e {
                    ApiError::Invalid {
                        code,
                        message,
                        field,
                    } => serde_json::json!({"code": code, "message": message, "field": field}),
                    ApiError::ForbiddenField { field, message } => {
                        serde_json::json!({"code": "forbidden", "message": message, "field": field})
                    }
                    other => serde_json::json!({"code": "invalid", "message": other.to_string()}),
                };
                items.push(BatchItem {
                    index: i,
                    message: None,
                    error: Some(detail),
                });
            }
        }
    }
    let accepted = msgs.len();
    if accepted > 0 {
        rate_limit(&state, &tenant, accepted).await?;
    }
    let status = if accepted == 0 { 400 } else { 202 };
    let body = to_json(&BatchResult {
        accepted,
        rejected: items.len() - accepted,
        results: items,
    })?;
    if accepted == 0 {
        return Ok(HttpResponse::BadRequest()
            .content_type("application/json")
            .body(body));
    }
    store_and_answer(&state, &tenant.0, key, hash, msgs, status, body).await
}

#[utoipa::path(responses((status = 200, body = MessageResource), (status = 404)))]
#[get("/v1/messages/{id}")]
pub(crate) async fn get(
    path: web::Path<String>,
    tenant: Tenant,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = MessageId::parse(&path).ok_or_else(|| ApiError::NotFound("no such message".into()))?;
    // Another tenant's message is indistinguishable from a missing one.
    let view = state
        .messages
        .get_message(&tenant.0, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such message".into()))?;
    Ok(HttpResponse::Ok().json(resource(&view.message, Some(&view))))
}

#[utoipa::path(responses((status = 200, body = MessageResource, description = "canceled"), (status = 404), (status = 409, description = "already handed to a channel")))]
#[delete("/v1/messages/{id}")]
pub(crate) async fn cancel(
    path: web::Path<String>,
    tenant: Tenant,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = MessageId::parse(&path).ok_or_else(|| ApiError::NotFound("no such message".into()))?;
    match state.messages.cancel_message(&tenant.0, &id).await? {
        CancelOutcome::NotFound => Err(ApiError::NotFound("no such message".into())),
        CancelOutcome::TooLate(st) => Err(ApiError::Conflict(format!(
            "the message is {} and can no longer be canceled",
            st.as_str()
        ))),
        CancelOutcome::Canceled => {
            let view = state
                .messages
                .get_message(&tenant.0, &id)
                .await?
                .ok_or_else(|| ApiError::NotFound("no such message".into()))?;
            Ok(HttpResponse::Ok().json(resource(&view.message, Some(&view))))
        }
    }
}

#[utoipa::path(params(("status" = Option<String>, Query), ("to" = Option<String>, Query), ("since" = Option<String>, Query, description = "RFC 3339 time or epoch ms"),
           ("until" = Option<String>, Query, description = "created before this: RFC 3339 time or epoch ms"),
           ("channel" = Option<String>, Query, description = "messages that had an attempt on this channel (`sms`, `rcs`, `app`)"),
           ("metadata_key" = Option<String>, Query, description = "messages whose `metadata` has this top-level key"),
           ("limit" = Option<i64>, Query, description = "1 to 1000, default 50"), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = MessageList), (status = 400)))]
#[get("/v1/messages")]
pub(crate) async fn list(
    query: web::Query<HashMap<String, String>>,
    tenant: Tenant,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let mut f = ListFilter {
        limit: 50,
        ..Default::default()
    };
    for (k, v) in query.iter() {
        match k.as_str() {
            "status" => {
                f.status =
                    Some(Status::parse(v).ok_or_else(|| {
                        ApiError::field("status", format!("unknown status '{v}'"))
                    })?)
            }
            "to" => {
                f.to = Some(
                    Msisdn::parse(v)
                        .map_err(|e| ApiError::field("to", format!("to {e}")))?
                        .as_str()
                        .to_owned(),
                )
            }
            "since" => {
                f.since = Some(parse_since(v).ok_or_else(|| {
                    ApiError::field("since", "since must be RFC 3339 or epoch milliseconds")
                })?)
            }
            "until" => {
                f.until = Some(parse_since(v).ok_or_else(|| {
                    ApiError::field("until", "until must be RFC 3339 or epoch milliseconds")
                })?)
            }
            "channel" => {
                f.channel = Some(
                    state
                        .channels
                        .iter()
                        .find(|c| c.as_str() == v)
                        .ok_or_else(|| {
                            ApiError::field("channel", format!("unknown channel '{v}'"))
                        })?
                        .as_str()
                        .to_owned(),
                )
            }
            "metadata_key" => {
                if v.is_empty() || v.len() > 100 {
                    return Err(ApiError::field(
                        "metadata_key",
                        "metadata_key must be 1 to 100 characters",
                    ));
                }
                f.metadata_key = Some(v.clone());
            }
            "limit" => f.limit = ApiError::parse_limit(v)?,
            "cursor" => {
                f.cursor = Some(
                    MessageId::parse(v)
                        .ok_or_else(|| ApiError::field("cursor", "invalid cursor"))?,
                )
            }
            other => return Err(ApiError::unknown_param(other)),
        }
    }
    let rows = state.messages.list_messages(&tenant.0, &f).await?;
    let next_cursor = if i64::try_from(rows.len()).unwrap_or(0) == f.limit {
        rows.last().map(|m| m.id.to_string())
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(MessageList {
        data: rows.iter().map(|m| resource(m, None)).collect(),
        next_cursor,
    }))
}

pub(crate) fn parse_since(v: &str) -> Option<i64> {
    if let Ok(ms) = v.parse::<i64>() {
        return Some(ms);
    }
    let t = time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}
