//! HTTP Basic auth as Twilio takes it: the account SID and its auth token, or an API
//! key's SID (`SK…`) and secret with the account SID in the path.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::{FromRequest, HttpRequest, web};
use base64::Engine;
use hermod_core::TenantId;
use hermod_core::tenant::{Role, TenantLimits};
use hermod_core::twilio::{Account, key_id_of_sid};

use super::error::TwilioError;
use crate::auth::{Caller, Tenant};
use crate::{ApiError, AppState};

/// How long an account read for a request is trusted (a token rotated in another
/// process takes effect within this).
const TTL: Duration = Duration::from_secs(5);
const MAX: usize = 10_000;

/// Accounts by SID as last read, with their tenant's limits and suspension.
#[derive(Default)]
pub struct AccountCache(Mutex<HashMap<String, (Instant, Option<Known>)>>);

#[derive(Clone)]
struct Known {
    account: Account,
    limits: TenantLimits,
    suspended: bool,
}

impl AccountCache {
    /// Forgets every account (a token rotated here).
    pub fn clear(&self) {
        if let Ok(mut c) = self.0.lock() {
            c.clear();
        }
    }
}

async fn known(state: &AppState, sid: &str) -> Result<Option<Known>, ApiError> {
    if let Ok(c) = state.twilio_accounts.0.lock()
        && let Some((at, k)) = c.get(sid)
        && at.elapsed() < TTL
    {
        return Ok(k.clone());
    }
    let found = match state.twilio.account_by_sid(sid).await? {
        None => None,
        Some(account) => match state.admin.tenant(&account.tenant_id).await? {
            None => None,
            Some(t) => Some(Known {
                account,
                limits: t.limits,
                suspended: t.suspended_at.is_some(),
            }),
        },
    };
    if let Ok(mut c) = state.twilio_accounts.0.lock() {
        if c.len() >= MAX {
            c.clear();
        }
        c.insert(sid.to_owned(), (Instant::now(), found.clone()));
    }
    Ok(found)
}

/// The caller of a Twilio route: its tenant (with the limits and role that
/// `/v1/messages` would apply) and the account named in the path.
pub struct TwilioAuth {
    pub tenant: Tenant,
    pub account: Account,
}

impl TwilioAuth {
    pub fn tenant_id(&self) -> &TenantId {
        &self.tenant.0
    }
}

fn basic(req: &HttpRequest) -> Option<(String, String)> {
    let h = req.headers().get("authorization")?.to_str().ok()?;
    let b64 = h
        .strip_prefix("Basic ")
        .or_else(|| h.strip_prefix("basic "))?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (u, p) = s.split_once(':')?;
    Some((u.to_owned(), p.to_owned()))
}

async fn authenticate(
    state: &AppState,
    path_sid: &str,
    user: &str,
    password: &str,
    need: Role,
) -> Result<TwilioAuth, TwilioError> {
    let denied = || TwilioError::auth();
    let (tenant, caller, account) = if user.starts_with("AC") {
        if user != path_sid {
            return Err(denied());
        }
        let k = known(state, user)
            .await
            .map_err(TwilioError::from_api)?
            .ok_or_else(denied)?;
        if !hermod_crypto::constant_time_eq(k.account.auth_token.0.as_bytes(), password.as_bytes())
        {
            return Err(denied());
        }
        if k.suspended {
            return Err(TwilioError::from_api(ApiError::Suspended));
        }
        let caller = Caller {
            key_id: format!("twilio:{}", k.account.sid),
            role: Role::Admin,
            limits: k.limits,
        };
        (k.account.tenant_id.clone(), caller, k.account)
    } else if let Some(key_id) = key_id_of_sid(user) {
        if user != super::key_sid(key_id) {
            return Err(denied());
        }
        let (tenant, caller) = crate::auth::verify_key(state, &format!("hmk_{key_id}_{password}"))
            .await
            .map_err(|e| match e {
                ApiError::Unauthorized => denied(),
                e => TwilioError::from_api(e),
            })?;
        let account = known(state, path_sid)
            .await
            .map_err(TwilioError::from_api)?
            .map(|k| k.account)
            .filter(|a| a.tenant_id == tenant)
            .ok_or_else(denied)?;
        (tenant, caller, account)
    } else {
        return Err(denied());
    };
    if !caller.role.allows(need) {
        return Err(TwilioError::new(
            403,
            20403,
            format!(
                "this key's role is {}; this resource needs {}",
                caller.role.as_str(),
                need.as_str()
            ),
        ));
    }
    Ok(TwilioAuth {
        tenant: Tenant(tenant, caller),
        account,
    })
}

impl FromRequest for TwilioAuth {
    type Error = TwilioError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let creds = basic(req);
        let path_sid = req.match_info().get("AccountSid").map(str::to_owned);
        let need = match crate::access_of(req.method().as_str(), req.match_pattern().as_deref()) {
            Some(crate::Access::Twilio(role)) => Some(role),
            _ => None,
        };
        Box::pin(async move {
            let (Some(state), Some((user, password)), Some(path_sid), Some(need)) =
                (state, creds, path_sid, need)
            else {
                return Err(TwilioError::auth());
            };
            authenticate(&state, &path_sid, &user, &password, need).await
        })
    }
}
