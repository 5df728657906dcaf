//! The encrypted app channel's API: the device registry (tenant API key), and the
//! device's side (device token): inbox polling, a WebSocket stream of sealed envelopes,
//! and acknowledgements that become unified receipts.

use actix_web::{delete, get, post};
use std::collections::HashMap;
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hermod_core::app::{AppAck, Device};
use hermod_core::model::{ChannelKind, Receipt};
use hermod_core::ports::Devices;
use hermod_core::{MessageId, Msisdn, Status, now_ms};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{DeviceAuth, Tenant};
use crate::json::{parse_json, rfc3339};
use crate::{ApiError, AppState};

/// `POST /v1/devices` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDevice {
    /// The recipient's number (E.164); messages to it reach this device.
    pub recipient: Option<String>,
    /// Your own id of the user (at least one of `recipient`, `user_id`).
    pub user_id: Option<String>,
    /// The device's X25519 public key: 32 bytes, base64url (or base64).
    pub public_key: String,
    /// `chacha20poly1305` (default) or `aes256gcm`.
    pub aead: Option<String>,
    /// `ios`, `android`, `web` ... (≤ 32 characters).
    pub platform: String,
    pub label: Option<String>,
}

/// `POST /v1/devices/{id}/key` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKey {
    pub public_key: String,
    pub aead: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct DeviceResource {
    pub id: String,
    /// Part of the envelopes' `info`, which the app rebuilds to open them.
    pub tenant_id: String,
    pub recipient: Option<String>,
    pub user_id: Option<String>,
    pub public_key: String,
    pub aead: String,
    pub platform: String,
    pub label: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// Shown once, at registration: the app authenticates with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_token: Option<String>,
}

/// `GET /v1/devices`: the tenant's devices.
#[derive(Serialize, ToSchema)]
pub struct DeviceList {
    pub data: Vec<DeviceResource>,
}

/// `POST /v1/app/receipts` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppReceipt {
    pub message_id: String,
    /// `delivered` or `read`.
    #[schema(value_type = String)]
    pub status: AppAck,
}

fn resource(d: &Device, token: Option<String>) -> DeviceResource {
    DeviceResource {
        id: d.id.clone(),
        tenant_id: d.tenant_id.to_string(),
        recipient: d.recipient.clone(),
        user_id: d.user_id.clone(),
        public_key: d.public_key.clone(),
        aead: d.aead.clone(),
        platform: d.platform.clone(),
        label: d.label.clone(),
        created_at: rfc3339(d.created_at),
        updated_at: rfc3339(d.updated_at),
        device_token: token,
    }
}

fn devices(state: &AppState) -> Result<&std::sync::Arc<dyn Devices>, ApiError> {
    state
        .devices
        .as_ref()
        .ok_or_else(|| ApiError::NotFound("the app channel is not enabled".into()))
}

/// A 32-byte X25519 public key in base64url or base64, as stored (base64url).
fn public_key(field: &str, v: &str) -> Result<String, ApiError> {
    let v = v.trim();
    let bytes = URL_SAFE_NO_PAD
        .decode(v.trim_end_matches('='))
        .or_else(|_| STANDARD.decode(v))
        .map_err(|_| ApiError::field(field, "public_key must be base64url (or base64)"))?;
    if bytes.len() != 32 || bytes.iter().all(|b| *b == 0) {
        return Err(ApiError::field(
            field,
            "public_key must be a 32-byte X25519 public key",
        ));
    }
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

fn aead(v: Option<&str>) -> Result<String, ApiError> {
    match v.unwrap_or("chacha20poly1305") {
        a @ ("chacha20poly1305" | "aes256gcm") => Ok(a.to_owned()),
        _ => Err(ApiError::field(
            "aead",
            "aead must be chacha20poly1305 or aes256gcm",
        )),
    }
}

#[utoipa::path(request_body = NewDevice,
    responses((status = 201, body = DeviceResource), (status = 400), (status = 401)))]
#[post("/v1/devices")]
pub(crate) async fn register(
    tenant: Tenant,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let store = devices(&state)?;
    let req: NewDevice = parse_json(&body)?;
    let recipient = match &req.recipient {
        Some(r) => Some(
            Msisdn::parse(r.trim())
                .map_err(|e| ApiError::field("recipient", format!("recipient {e}")))?
                .as_str()
                .to_owned(),
        ),
        None => None,
    };
    if let Some(u) = &req.user_id
        && (u.is_empty() || u.len() > 200)
    {
        return Err(ApiError::field(
            "user_id",
            "user_id must be 1 to 200 characters",
        ));
    }
    if recipient.is_none() && req.user_id.is_none() {
        return Err(ApiError::field(
            "recipient",
            "give recipient (E.164) and/or user_id",
        ));
    }
    if req.platform.is_empty() || req.platform.len() > 32 {
        return Err(ApiError::field(
            "platform",
            "platform must be 1 to 32 characters",
        ));
    }
    if req.label.as_ref().is_some_and(|l| l.chars().count() > 100) {
        return Err(ApiError::field(
            "label",
            "label must be at most 100 characters",
        ));
    }
    let pk = public_key("public_key", &req.public_key)?;
    let aead = aead(req.aead.as_deref())?;
    let token = state
        .keys
        .generate_token("hmd")
        .map_err(|e| ApiError::Internal(hermod_core::ports::PortError::Backend(Box::new(e))))?;
    let now = now_ms();
    let d = Device {
        id: format!("dev_{}", token.key_id),
        tenant_id: tenant.0,
        recipient,
        user_id: req.user_id,
        public_key: pk,
        aead,
        platform: req.platform,
        label: req.label,
        token_hash: token.hash,
        created_at: now,
        updated_at: now,
        revoked_at: None,
    };
    store.register_device(&d).await?;
    Ok(HttpResponse::Created().json(resource(&d, Some(token.full))))
}

#[utoipa::path(params(("recipient" = Option<String>, Query), ("user_id" = Option<String>, Query)),
    responses((status = 200, body = DeviceList), (status = 401)))]
#[get("/v1/devices")]
pub(crate) async fn list(
    tenant: Tenant,
    state: web::Data<AppState>,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let store = devices(&state)?;
    for k in query.keys() {
        if k != "recipient" && k != "user_id" {
            return Err(ApiError::unknown_param(k));
        }
    }
    let list = store
        .list_devices(
            &tenant.0,
            query.get("recipient").map(|s| s.trim()),
            query.get("user_id").map(String::as_str),
        )
        .await?;
    let data: Vec<DeviceResource> = list.iter().map(|d| resource(d, None)).collect();
    Ok(HttpResponse::Ok().json(crate::json::keys_sorted(&DeviceList { data })))
}

#[utoipa::path(request_body = RotateKey,
    responses((status = 200, body = DeviceResource), (status = 400), (status = 404)))]
#[post("/v1/devices/{id}/key")]
pub(crate) async fn rotate(
    tenant: Tenant,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let store = devices(&state)?;
    let req: RotateKey = parse_json(&body)?;
    let pk = public_key("public_key", &req.public_key)?;
    let aead = aead(req.aead.as_deref())?;
    if !store.rotate_device_key(&tenant.0, &id, &pk, &aead).await? {
        return Err(ApiError::NotFound("no such device".into()));
    }
    let d = store
        .device(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such device".into()))?;
    Ok(HttpResponse::Ok().json(resource(&d, None)))
}

#[utoipa::path(responses((status = 204), (status = 404)))]
#[delete("/v1/devices/{id}")]
pub(crate) async fn revoke(
    tenant: Tenant,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    if devices(&state)?.revoke_device(&tenant.0, &id).await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::NotFound("no such device".into()))
    }
}

fn after_param(query: &HashMap<String, String>) -> Result<(i64, i64), ApiError> {
    let mut after = 0;
    let mut limit = 100;
    for (k, v) in query {
        match k.as_str() {
            "after" => {
                after =
                    v.parse::<i64>().ok().filter(|a| *a >= 0).ok_or_else(|| {
                        ApiError::field("after", "after must be a cursor (a number)")
                    })?;
            }
            "limit" => limit = ApiError::parse_limit(v)?,
            other => return Err(ApiError::unknown_param(other)),
        }
    }
    Ok((after, limit))
}

#[utoipa::path(params(("after" = Option<i64>, Query, description = "the last `seq` seen"), ("limit" = Option<i64>, Query)),
    responses((status = 200, description = "sealed envelopes waiting for this device"), (status = 401)))]
#[get("/v1/app/inbox")]
pub(crate) async fn inbox(
    device: DeviceAuth,
    state: web::Data<AppState>,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let (after, limit) = after_param(&query)?;
    let waiting = devices(&state)?.inbox(&device.0.id, after, limit).await?;
    let next = waiting.last().map(|e| e.seq).unwrap_or(after);
    Ok(HttpResponse::Ok().json(serde_json::json!({ "data": waiting, "next_after": next })))
}

/// `GET /v1/app/stream`: a WebSocket; each text frame is one sealed envelope (JSON),
/// waiting ones first. New ones come as they are sealed (this process wakes the
/// stream at once; others are found by a poll every second).
#[utoipa::path(params(("after" = Option<i64>, Query, description = "the last `seq` seen")),
    responses((status = 101, description = "a WebSocket: each text frame is one sealed envelope"), (status = 401, description = "no valid device token"), (status = 429, description = "over `stream_opens_per_sec`")))]
#[get("/v1/app/stream")]
pub(crate) async fn stream(
    device: DeviceAuth,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let (mut after, _) = after_param(&query)?;
    // Each socket polls the inbox: a device opens few.
    state
        .budgets
        .streams
        .check(&device.0.id, 1)
        .map_err(ApiError::RateLimited)?;
    let store = devices(&state)?.clone();
    let (resp, mut session, mut incoming) =
        actix_ws::handle(&req, body).map_err(|e| ApiError::field("upgrade", e.to_string()))?;
    let id = device.0.id;
    let mut wake = state.app_wake.as_ref().map(|w| w.subscribe());
    actix_web::rt::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            match store.inbox(&id, after, 100).await {
                Ok(waiting) => {
                    for e in waiting {
                        after = after.max(e.seq);
                        let Ok(text) = serde_json::to_string(&e) else {
                            continue;
                        };
                        if session.text(text).await.is_err() {
                            return;
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "app stream: inbox unavailable"),
            }
            let woken = async {
                match wake.as_mut() {
                    Some(w) => loop {
                        match w.recv().await {
                            Ok(d) if d == id => return,
                            Ok(_) => {}
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => return,
                            Err(_) => std::future::pending::<()>().await,
                        }
                    },
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = woken => {}
                _ = tick.tick() => {}
                m = incoming.recv() => match m {
                    Some(Ok(actix_ws::Message::Ping(p))) => {
                        if session.pong(&p).await.is_err() { return; }
                    }
                    Some(Ok(actix_ws::Message::Close(_))) | None | Some(Err(_)) => {
                        let _ = session.close(None).await;
                        return;
                    }
                    Some(Ok(_)) => {}
                },
            }
        }
    });
    Ok(resp)
}

#[utoipa::path(request_body = AppReceipt,
    responses((status = 202), (status = 400), (status = 401), (status = 404, description = "no such message for this device")))]
#[post("/v1/app/receipts")]
pub(crate) async fn receipt(
    device: DeviceAuth,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let req: AppReceipt = parse_json(&body)?;
    let mid = MessageId::parse(&req.message_id)
        .ok_or_else(|| ApiError::field("message_id", "message_id must be a msg_ id"))?;
    let store = devices(&state)?;
    // Only an envelope sealed for this very device can be acknowledged by it. The
    // message's plaintext goes in the same transaction: delivered to the app, no
    // fallback will need it.
    let Some(attempt) = store.ack_envelope(&device.0.id, mid.as_str()).await? else {
        return Err(ApiError::NotFound("no such message for this device".into()));
    };
    let (status, raw) = match req.status {
        AppAck::Delivered => (Status::Delivered, "APP_DELIVERED"),
        AppAck::Read => (Status::Read, "APP_READ"),
    };
    let stored = state
        .receipts
        .deliver(Receipt {
            channel: ChannelKind::App,
            provider_id: format!("app:{attempt}"),
            status,
            raw_status: raw.into(),
            error_code: None,
            user_ref: None,
            recipient: None,
            echo: None,
            event: None,
        })
        .await;
    if !stored {
        return Err(ApiError::Unavailable(
            hermod_core::ports::PortError::Backend("receipt not stored".into()),
        ));
    }
    Ok(HttpResponse::Accepted().json(serde_json::json!({ "status": "recorded" })))
}
