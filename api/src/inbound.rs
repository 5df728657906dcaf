//! `GET /v1/inbound` and `/v1/opt-outs`.

use actix_web::{delete, get, post};
use std::collections::HashMap;

use actix_web::{HttpResponse, web};
use hermod_core::Msisdn;
use hermod_core::inbound::{ALL_SENDERS, InboundMessage};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Tenant;
use crate::json::{parse_json, rfc3339};
use crate::{ApiError, AppState};

#[derive(Serialize, ToSchema)]
pub struct InboundResource {
    pub id: String,
    pub from: String,
    pub to: String,
    pub text: String,
    pub parts: i32,
    pub connector: String,
    /// `stop`, `stop_all`, `start` or `help` when the message was one.
    pub keyword: Option<String>,
    pub received_at: String,
    /// What a rich channel added: `{"type": "suggestion_response", "postback_data"}`,
    /// `{"type": "location", latitude, longitude}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub payload: Option<serde_json::Value>,
}

#[derive(Serialize, ToSchema)]
pub struct InboundList {
    pub data: Vec<InboundResource>,
    pub next_cursor: Option<String>,
}

fn inbound_resource(m: &InboundMessage) -> InboundResource {
    InboundResource {
        id: m.id.clone(),
        from: m.from.clone(),
        to: m.to.clone(),
        text: m.text.clone(),
        parts: m.parts,
        connector: m.connector.clone(),
        keyword: m.keyword.map(|k| k.as_str().to_owned()),
        received_at: rfc3339(m.received_at),
        payload: m.payload.clone(),
    }
}

#[utoipa::path(params(("limit" = Option<i64>, Query, description = "1 to 1000, default 50"), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = InboundList), (status = 400), (status = 401)))]
#[get("/v1/inbound")]
pub(crate) async fn list_inbound(
    query: web::Query<HashMap<String, String>>,
    tenant: Tenant,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (limit, cursor) = page_params(&query)?;
    let rows = state
        .inbound
        .list_inbound(&tenant.0, cursor.as_deref(), limit)
        .await?;
    Ok(HttpResponse::Ok().json(inbound_page(&rows, limit)))
}

/// What `POST /v1/inbound/{id}/read` and `/typing` answer.
#[derive(Serialize, ToSchema)]
pub struct AgentEventSent {
    /// The inbound message.
    pub id: String,
    /// `read` or `typing`.
    pub event: String,
    /// The connector it went through (`rbm:<agent>`).
    pub connector: String,
}

/// Sends an agent event about one of the tenant's inbound messages, to its sender.
async fn agent_event(
    id: &str,
    tenant: &Tenant,
    state: &AppState,
    kind: hermod_core::ports::AgentEventKind,
) -> Result<HttpResponse, ApiError> {
    use hermod_core::ports::{AgentEventError, AgentEventKind};
    let m = state
        .inbound
        .get_inbound(&tenant.0, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no inbound message {id}")))?;
    let events = state.agent_events.get(&m.channel).ok_or_else(|| {
        ApiError::Conflict(format!(
            "{} has no agent events here: only messages that came over a channel that has them do",
            m.connector
        ))
    })?;
    let name = match kind {
        AgentEventKind::Read => "read",
        AgentEventKind::Typing => "typing",
    };
    events
        .send_agent_event(&m.connector, &m.from, kind, m.provider_id.as_deref())
        .await
        .map_err(|e| match e {
            AgentEventError::NotSupported(e) => ApiError::Conflict(e),
            AgentEventError::Provider(e) => {
                tracing::warn!(error = %e, "an RBM agent event failed");
                ApiError::Upstream(format!("RBM refused or did not answer: {e}"))
            }
        })?;
    Ok(HttpResponse::Ok().json(AgentEventSent {
        id: m.id,
        event: name.into(),
        connector: m.connector,
    }))
}

/// Marks a user's RCS message read: RBM shows it as read on their phone
/// (`phones.agentEvents` READ). 409 for a message that did not come over RCS.
#[utoipa::path(params(("id" = String, Path)),
    responses((status = 200, body = AgentEventSent), (status = 401), (status = 404), (status = 409), (status = 502)))]
#[post("/v1/inbound/{id}/read")]
pub(crate) async fn mark_read(
    path: web::Path<String>,
    tenant: Tenant,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    agent_event(
        &path,
        &tenant,
        &state,
        hermod_core::ports::AgentEventKind::Read,
    )
    .await
}

/// Shows the user of an RCS message that the agent is typing (`phones.agentEvents`
/// IS_TYPING). 409 for a message that did not come over RCS.
#[utoipa::path(params(("id" = String, Path)),
    responses((status = 200, body = AgentEventSent), (status = 401), (status = 404), (status = 409), (status = 502)))]
#[post("/v1/inbound/{id}/typing")]
pub(crate) async fn show_typing(
    path: web::Path<String>,
    tenant: Tenant,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    agent_event(
        &path,
        &tenant,
        &state,
        hermod_core::ports::AgentEventKind::Typing,
    )
    .await
}

/// `limit` (1 to 1000, default 50) and `cursor` (an inbound id) of an inbound listing.
pub(crate) fn page_params(
    query: &HashMap<String, String>,
) -> Result<(i64, Option<String>), ApiError> {
    let mut limit = 50i64;
    let mut cursor = None;
    for (k, v) in query {
        match k.as_str() {
            "limit" => limit = ApiError::parse_limit(v)?,
            "cursor" => {
                if !v.starts_with("in_") {
                    return Err(ApiError::field("cursor", "invalid cursor"));
                }
                cursor = Some(v.clone());
            }
            other => return Err(ApiError::unknown_param(other)),
        }
    }
    Ok((limit, cursor))
}

/// One page of inbound messages, with the cursor of the next when it is full.
pub(crate) fn inbound_page(rows: &[InboundMessage], limit: i64) -> InboundList {
    let next_cursor = (i64::try_from(rows.len()).unwrap_or(0) == limit)
        .then(|| rows.last().map(|m| m.id.clone()))
        .flatten();
    InboundList {
        data: rows.iter().map(inbound_resource).collect(),
        next_cursor,
    }
}

/// `POST /v1/opt-outs` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOptOut {
    /// E.164 number.
    pub recipient: String,
    /// The sender it applies to; omitted or `*` = every sender of the tenant.
    pub sender: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct OptOutResource {
    pub recipient: String,
    pub sender: String,
    /// `keyword` (the recipient sent STOP) or `api`.
    pub source: String,
    pub created_at: String,
}

fn recipient(v: &str, field: &str) -> Result<String, ApiError> {
    Msisdn::parse(v.trim())
        .map(|m| m.as_str().to_owned())
        .map_err(|e| ApiError::field(field, format!("{field} {e}")))
}

fn sender(v: Option<&str>) -> Result<String, ApiError> {
    match v.map(str::trim) {
        None | Some("*") => Ok(ALL_SENDERS.to_owned()),
        Some(s) if !s.is_empty() && s.len() <= 16 => Ok(s.to_owned()),
        Some(_) => Err(ApiError::field(
            "sender",
            "sender must be 1 to 16 characters or *",
        )),
    }
}

#[utoipa::path(params(("recipient" = Option<String>, Query)),
    responses((status = 200, description = "the tenant's opt-outs"), (status = 400), (status = 401)))]
#[get("/v1/opt-outs")]
pub(crate) async fn list_opt_outs(
    query: web::Query<HashMap<String, String>>,
    tenant: Tenant,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let mut r = None;
    for (k, v) in query.iter() {
        match k.as_str() {
            "recipient" => r = Some(recipient(v, "recipient")?),
            other => return Err(ApiError::unknown_param(other)),
        }
    }
    let rows = state.inbound.list_opt_outs(&tenant.0, r.as_deref()).await?;
    let data: Vec<OptOutResource> = rows
        .into_iter()
        .map(|o| OptOutResource {
            recipient: o.recipient,
            sender: o.sender,
            source: o.source,
            created_at: rfc3339(o.created_at),
        })
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "data": data })))
}

#[utoipa::path(request_body = NewOptOut,
    responses((status = 201, body = OptOutResource), (status = 200, description = "already recorded"), (status = 400)))]
#[post("/v1/opt-outs")]
pub(crate) async fn add_opt_out(
    body: web::Bytes,
    tenant: Tenant,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let req: NewOptOut = parse_json(&body)?;
    let r = recipient(&req.recipient, "recipient")?;
    let s = sender(req.sender.as_deref())?;
    let created = state.inbound.add_opt_out(&tenant.0, &r, &s, "api").await?;
    let stored = state
        .inbound
        .list_opt_outs(&tenant.0, Some(&r))
        .await?
        .into_iter()
        .find(|o| o.sender == hermod_core::inbound::sender_key(&s) || o.sender == s);
    let res = stored.map(|o| OptOutResource {
        recipient: o.recipient,
        sender: o.sender,
        source: o.source,
        created_at: rfc3339(o.created_at),
    });
    let mut resp = if created {
        HttpResponse::Created()
    } else {
        HttpResponse::Ok()
    };
    Ok(resp.json(res))
}

#[utoipa::path(params(("sender" = Option<String>, Query, description = "only this sender's opt-out (`*` for the all-senders one); default all")),
    responses((status = 204), (status = 404)))]
#[delete("/v1/opt-outs/{recipient}")]
pub(crate) async fn remove_opt_out(
    path: web::Path<String>,
    query: web::Query<HashMap<String, String>>,
    tenant: Tenant,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let r = recipient(&path, "recipient")?;
    let mut s = None;
    for (k, v) in query.iter() {
        match k.as_str() {
            "sender" => s = Some(sender(Some(v))?),
            other => return Err(ApiError::unknown_param(other)),
        }
    }
    let n = state
        .inbound
        .remove_opt_out(&tenant.0, &r, s.as_deref())
        .await?;
    if n == 0 {
        return Err(ApiError::NotFound("no such opt-out".into()));
    }
    Ok(HttpResponse::NoContent().finish())
}
