use std::future::Future;
use std::pin::Pin;

use actix_web::{FromRequest, HttpRequest, web};
use hermod_core::TenantId;
use hermod_crypto::ApiKeys;

use crate::{ApiError, AppState};

/// The tenant behind `Authorization: Bearer <key>`.
pub struct Tenant(pub TenantId);

impl FromRequest for Tenant {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let header = req
            .headers()
            .get("authorization")
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned);
        Box::pin(async move {
            let state = state.ok_or(ApiError::Unauthorized)?;
            let header = header.ok_or(ApiError::Unauthorized)?;
            let key = header
                .strip_prefix("Bearer ")
                .ok_or(ApiError::Unauthorized)?
                .trim();
            let (id, secret) = ApiKeys::split(key).map_err(|_| ApiError::Unauthorized)?;
            let (tenant, hash) = state
                .store
                .api_key(id)
                .await?
                .ok_or(ApiError::Unauthorized)?;
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
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let header = req
            .headers()
            .get("authorization")
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned);
        Box::pin(async move {
            let state = state.ok_or(ApiError::Unauthorized)?;
            let devices = state.devices.as_ref().ok_or(ApiError::Unauthorized)?;
            let token = header
                .as_deref()
                .and_then(|h| h.strip_prefix("Bearer "))
                .ok_or(ApiError::Unauthorized)?
                .trim();
            let (id, secret) =
                ApiKeys::split_token("hmd", token).map_err(|_| ApiError::Unauthorized)?;
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
