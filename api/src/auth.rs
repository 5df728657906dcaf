use std::future::Future;
use std::pin::Pin;

use actix_web::{FromRequest, HttpRequest, web};
use hermod_core::TenantId;
use hermod_crypto::ApiKeys;

use crate::{ApiError, AppState};

/// The app state and the token of `Authorization: Bearer <token>`, taken from the
/// request before the extractor's future runs.
fn bearer(req: &HttpRequest) -> Result<(web::Data<AppState>, String), ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or(ApiError::Unauthorized)?;
    let token = req
        .headers()
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(|t| t.trim().to_owned())
        .ok_or(ApiError::Unauthorized)?;
    Ok((state, token))
}

/// Verified API keys by key id: the tenant, the stored hash and when it was read.
/// A key is read from the store again after [`KEY_TTL`], so a key revoked in
/// another process stops working within that; the hash is checked on every request.
#[derive(Default)]
pub struct KeyCache(
    std::sync::Mutex<std::collections::HashMap<String, (TenantId, String, std::time::Instant)>>,
);

/// How long a looked-up key is trusted before it is read again.
pub const KEY_TTL: std::time::Duration = std::time::Duration::from_secs(5);
/// Keys kept at most (the cache starts over beyond it).
const KEYS_MAX: usize = 10_000;

impl KeyCache {
    fn get(&self, id: &str) -> Option<(TenantId, String)> {
        let c = self.0.lock().ok()?;
        let (t, h, at) = c.get(id)?;
        (at.elapsed() < KEY_TTL).then(|| (t.clone(), h.clone()))
    }

    fn put(&self, id: &str, tenant: &TenantId, hash: &str) {
        if let Ok(mut c) = self.0.lock() {
            if c.len() >= KEYS_MAX {
                c.clear();
            }
            c.insert(
                id.to_owned(),
                (tenant.clone(), hash.to_owned(), std::time::Instant::now()),
            );
        }
    }

    /// Forgets a key (revoked in this process).
    pub fn forget(&self, id: &str) {
        if let Ok(mut c) = self.0.lock() {
            c.remove(id);
        }
    }
}

/// The tenant behind `Authorization: Bearer <key>`.
pub struct Tenant(pub TenantId);

impl FromRequest for Tenant {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let found = bearer(req);
        Box::pin(async move {
            let (state, key) = found?;
            let (id, secret) = ApiKeys::split(&key).map_err(|_| ApiError::Unauthorized)?;
            let (tenant, hash) = match state.key_cache.get(id) {
                Some(found) => found,
                None => {
                    let (tenant, hash) = state
                        .tenants
                        .api_key(id)
                        .await?
                        .ok_or(ApiError::Unauthorized)?;
                    state.key_cache.put(id, &tenant, &hash);
                    (tenant, hash)
                }
            };
            if state.keys.verify(secret, &hash) {
                Ok(Tenant(tenant))
            } else {
                Err(ApiError::Unauthorized)
            }
        })
    }
}

/// The app device behind `Authorization: Bearer <device token>` (`hmd_...`).
pub struct DeviceAuth(pub hermod_core::app::Device);

impl FromRequest for DeviceAuth {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let found = bearer(req);
        Box::pin(async move {
            let (state, token) = found?;
            let devices = state.devices.as_ref().ok_or(ApiError::Unauthorized)?;
            let (id, secret) =
                ApiKeys::split_token("hmd", &token).map_err(|_| ApiError::Unauthorized)?;
            let device = devices
                .device(&format!("dev_{id}"))
                .await?
                .filter(|d| d.revoked_at.is_none())
                .ok_or(ApiError::Unauthorized)?;
            if state.keys.verify(secret, &device.token_hash) {
                Ok(DeviceAuth(device))
            } else {
                Err(ApiError::Unauthorized)
            }
        })
    }
}
