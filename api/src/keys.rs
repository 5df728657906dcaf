//! `/v1/keys`: a tenant's API keys with roles (an `admin` key manages them). The secret
//! is in the answer that creates (or rotates) a key, and nowhere else.

use actix_web::{HttpResponse, delete, get, post, web};
use hermod_core::tenant::{ApiKeyInfo, NewApiKey, Role};
use hermod_core::{TenantId, now_ms};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Tenant;
use crate::json::{parse_json, rfc3339};
use crate::{ApiError, AppState};

/// `POST /v1/keys` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// What the key is for (`checkout service`), 1 to 100 characters.
    pub name: String,
    /// `admin` (everything of the tenant), `send` (create messages and read them) or
    /// `read` (read only).
    #[schema(value_type = String, example = "send")]
    pub role: String,
    /// RFC 3339; the key stops working then.
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// A key as listed: never its secret.
#[derive(Serialize, ToSchema)]
pub struct KeyResource {
    pub id: String,
    pub name: Option<String>,
    /// `admin`, `send` or `read`.
    pub role: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    /// When a request last used it (written at most every few seconds).
    pub last_used_at: Option<String>,
    /// The key as a Twilio API key (`SK…`), for HTTP Basic on `/2010-04-01/...` with
    /// the part of the key after its second `_` as the password.
    pub twilio_sid: String,
}

/// A key just created or rotated: its secret `key`, shown this once.
#[derive(Serialize, ToSchema)]
pub struct CreatedKey {
    #[serde(flatten)]
    pub resource: KeyResource,
    /// `Authorization: Bearer <key>`. Stored only as a hash: keep it now.
    pub key: String,
}

#[derive(Serialize, ToSchema)]
pub struct KeyList {
    pub data: Vec<KeyResource>,
}

pub(crate) fn key_resource(k: &ApiKeyInfo) -> KeyResource {
    KeyResource {
        id: k.id.clone(),
        name: k.name.clone(),
        role: k.role.as_str().to_owned(),
        created_at: rfc3339(k.created_at),
        expires_at: k.expires_at.map(rfc3339),
        last_used_at: k.last_used_at.map(rfc3339),
        twilio_sid: crate::twilio::key_sid(&k.id),
    }
}

/// Validates a new key's fields: its name, role and expiry (in the future).
pub(crate) fn check_new_key(body: &NewKey) -> Result<(String, Role, Option<i64>), ApiError> {
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::field("name", "name must be 1 to 100 characters"));
    }
    let role = Role::parse(&body.role)
        .ok_or_else(|| ApiError::field("role", "role must be admin, send or read"))?;
    let expires_at = match &body.expires_at {
        None => None,
        Some(s) => {
            let at = hermod_core::parse_rfc3339(s)
                .ok_or_else(|| ApiError::field("expires_at", "expires_at must be RFC 3339"))?;
            if at <= now_ms() {
                return Err(ApiError::field(
                    "expires_at",
                    "expires_at must be in the future",
                ));
            }
            Some(at)
        }
    };
    Ok((name.to_owned(), role, expires_at))
}

/// Generates and stores a key for `tenant`; None when there is no such tenant.
pub(crate) async fn issue_key(
    state: &AppState,
    tenant: &TenantId,
    name: String,
    role: Role,
    expires_at: Option<i64>,
) -> Result<Option<CreatedKey>, ApiError> {
    let k = state
        .keys
        .generate()
        .map_err(|_| ApiError::Forbidden("no randomness for a key".into()))?;
    let new = NewApiKey {
        id: k.key_id.clone(),
        hash: k.hash,
        name: Some(name.clone()),
        role,
        expires_at,
    };
    if !state.admin.add_key(tenant, &new).await? {
        return Ok(None);
    }
    Ok(Some(CreatedKey {
        resource: KeyResource {
            twilio_sid: crate::twilio::key_sid(&k.key_id),
            id: k.key_id,
            name: Some(name),
            role: role.as_str().to_owned(),
            created_at: rfc3339(now_ms()),
            expires_at: expires_at.map(rfc3339),
            last_used_at: None,
        },
        key: k.full,
    }))
}

/// Creates a key of this tenant.
#[utoipa::path(request_body = NewKey,
    responses((status = 201, body = CreatedKey, description = "the key; its secret `key` is shown this once"),
              (status = 400), (status = 401)))]
#[post("/v1/keys")]
pub(crate) async fn create(
    tenant: Tenant,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let body: NewKey = parse_json(&body)?;
    let (name, role, expires_at) = check_new_key(&body)?;
    let created = issue_key(&state, &tenant.0, name, role, expires_at)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    Ok(HttpResponse::Created().json(created))
}

/// This tenant's keys that are not revoked, newest first.
#[utoipa::path(responses((status = 200, body = KeyList), (status = 401)))]
#[get("/v1/keys")]
pub(crate) async fn list(
    tenant: Tenant,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let keys = state.admin.list_keys(&tenant.0).await?;
    Ok(HttpResponse::Ok().json(KeyList {
        data: keys.iter().map(key_resource).collect(),
    }))
}

/// Revokes a key: it stops working at once in this process, within seconds in others.
#[utoipa::path(params(("id" = String, Path, description = "the key's id (`hmk_<id>_…`)")),
    responses((status = 204, description = "revoked"), (status = 401), (status = 404)))]
#[delete("/v1/keys/{id}")]
pub(crate) async fn revoke(
    tenant: Tenant,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    if !state.admin.revoke_key(&tenant.0, &id).await? {
        return Err(ApiError::NotFound("no such key".into()));
    }
    state.key_cache.forget(&id);
    Ok(HttpResponse::NoContent().finish())
}

/// Replaces a key by a new one with the same name, role and expiry; the old one is
/// revoked in the same transaction.
#[utoipa::path(params(("id" = String, Path, description = "the key to replace")),
    responses((status = 201, body = CreatedKey, description = "the new key; its secret `key` is shown this once"),
              (status = 401), (status = 404)))]
#[post("/v1/keys/{id}/rotate")]
pub(crate) async fn rotate(
    tenant: Tenant,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let k = state
        .keys
        .generate()
        .map_err(|_| ApiError::Forbidden("no randomness for a key".into()))?;
    let info = state
        .admin
        .rotate_key(&tenant.0, &id, &k.key_id, &k.hash)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such key".into()))?;
    state.key_cache.forget(&id);
    Ok(HttpResponse::Created().json(CreatedKey {
        resource: key_resource(&info),
        key: k.full,
    }))
}
