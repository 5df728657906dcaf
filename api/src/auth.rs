use std::future::Future;
use std::pin::Pin;

use actix_web::{FromRequest, HttpRequest, web};
use hermod_core::TenantId;
use hermod_core::tenant::{KeyAuth, Role, TenantLimits};
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

/// API keys as last read, by key id: role, tenant state and the stored hash (checked on
/// every request). A key is read from the store again after [`KEY_TTL`], so a key revoked
/// or a tenant suspended in another process takes effect within that; the time of last
/// use is written at most once per [`KEY_TTL`] per key.
#[derive(Default)]
pub struct KeyCache(std::sync::Mutex<std::collections::HashMap<String, Cached>>);

struct Cached {
    auth: KeyAuth,
    read_at: std::time::Instant,
    touched_at: Option<std::time::Instant>,
}

/// How long a looked-up key is trusted before it is read again.
pub const KEY_TTL: std::time::Duration = std::time::Duration::from_secs(5);
/// Keys kept at most (the cache starts over beyond it).
const KEYS_MAX: usize = 10_000;

impl KeyCache {
    fn get(&self, id: &str) -> Option<KeyAuth> {
        let c = self.0.lock().ok()?;
        let e = c.get(id)?;
        (e.read_at.elapsed() < KEY_TTL).then(|| e.auth.clone())
    }

    fn put(&self, id: &str, auth: &KeyAuth) {
        if let Ok(mut c) = self.0.lock() {
            if c.len() >= KEYS_MAX {
                c.clear();
            }
            let touched_at = c.get(id).and_then(|e| e.touched_at);
            c.insert(
                id.to_owned(),
                Cached {
                    auth: auth.clone(),
                    read_at: std::time::Instant::now(),
                    touched_at,
                },
            );
        }
    }

    /// True when the key's use should be written now (never, or over `KEY_TTL` ago).
    fn touch(&self, id: &str) -> bool {
        let Ok(mut c) = self.0.lock() else {
            return false;
        };
        let Some(e) = c.get_mut(id) else {
            return false;
        };
        if e.touched_at.is_some_and(|t| t.elapsed() < KEY_TTL) {
            return false;
        }
        e.touched_at = Some(std::time::Instant::now());
        true
    }

    /// Forgets a key (revoked or changed in this process).
    pub fn forget(&self, id: &str) {
        if let Ok(mut c) = self.0.lock() {
            c.remove(id);
        }
    }

    /// Forgets every key (a tenant suspended or deleted in this process).
    pub fn clear(&self) {
        if let Ok(mut c) = self.0.lock() {
            c.clear();
        }
    }
}

/// A verified API key: its tenant, id, role and the operator's limits on the tenant.
#[derive(Clone, Debug)]
pub struct Caller {
    pub key_id: String,
    pub role: Role,
    pub limits: TenantLimits,
}

/// The key as last read (from the cache, else the store); None when it is unknown or
/// revoked.
async fn cached_auth(state: &AppState, id: &str) -> Result<Option<KeyAuth>, ApiError> {
    if let Some(found) = state.key_cache.get(id) {
        return Ok(Some(found));
    }
    let auth = state.admin.key_auth(id).await?;
    if let Some(a) = &auth {
        state.key_cache.put(id, a);
    }
    Ok(auth)
}

fn caller(id: &str, auth: KeyAuth) -> (TenantId, Caller) {
    (
        auth.tenant,
        Caller {
            key_id: id.to_owned(),
            role: auth.role,
            limits: auth.limits,
        },
    )
}

/// Checks `Authorization: Bearer <key>`: the key, its expiry, its tenant's suspension.
pub(crate) async fn verify_key(
    state: &AppState,
    key: &str,
) -> Result<(TenantId, Caller), ApiError> {
    let (id, secret) = ApiKeys::split(key).map_err(|_| ApiError::Unauthorized)?;
    let auth = cached_auth(state, id)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    if !state.keys.verify(secret, &auth.hash) {
        return Err(ApiError::Unauthorized);
    }
    let now = hermod_core::now_ms();
    if auth.expires_at.is_some_and(|e| e <= now) {
        return Err(ApiError::Unauthorized);
    }
    if auth.suspended {
        return Err(ApiError::Suspended);
    }
    if state.key_cache.touch(id) {
        let admin = state.admin.clone();
        let used = vec![(id.to_owned(), now)];
        tokio::spawn(async move {
            if let Err(e) = admin.touch_keys(&used).await {
                tracing::warn!(error = %e, "could not record a key's last use");
            }
        });
    }
    Ok(caller(id, auth))
}

/// A key's tenant and role when it is live, not expired and its tenant not suspended
/// (a console session's key, checked on every page).
pub(crate) async fn key_state(
    state: &AppState,
    id: &str,
) -> Result<Option<(TenantId, Caller)>, ApiError> {
    Ok(cached_auth(state, id).await?.and_then(|auth| {
        let live = !auth.suspended && auth.expires_at.is_none_or(|e| e > hermod_core::now_ms());
        live.then(|| caller(id, auth))
    }))
}

/// The tenant behind `Authorization: Bearer <key>`, allowed the route it calls: the
/// role each route needs is in the route table (`crate::access_of`).
pub struct Tenant(pub TenantId, pub Caller);

impl FromRequest for Tenant {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let found = bearer(req);
        let need = crate::access_of(req.method().as_str(), req.match_pattern().as_deref());
        Box::pin(async move {
            let (state, key) = found?;
            let (tenant, caller) = verify_key(&state, &key).await?;
            match need {
                Some(crate::Access::Tenant(role)) if caller.role.allows(role) => {
                    Ok(Tenant(tenant, caller))
                }
                Some(crate::Access::Tenant(role)) => Err(ApiError::Forbidden(format!(
                    "this key's role is {}; this route needs {}",
                    caller.role.as_str(),
                    role.as_str()
                ))),
                // A route that takes a tenant but is not in the table as one.
                _ => Err(ApiError::Forbidden("no role allows this route".into())),
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
