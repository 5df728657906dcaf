//! Console sign-in, sessions and CSRF.

use std::future::Future;
use std::pin::Pin;

use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use hermod_core::now_ms;
use hermod_core::tenant::{ConsoleSession, Principal, Role};
use maud::html;
use serde::Deserialize;

use super::ConsoleError;
use super::layout::{Flash, page_bare};
use super::see_other;
use crate::auth::{Caller, Tenant};
use crate::{ApiError, AppState};

/// The session cookie's name.
pub const COOKIE: &str = "hermod-console";

/// The console's settings.
#[derive(Clone, Debug)]
pub struct ConsoleOptions {
    /// Serve `/console` at all.
    pub enabled: bool,
    /// Mark the cookie `Secure` (the console is reached over HTTPS).
    pub secure_cookie: bool,
    /// How long a session lasts.
    pub session_ttl: std::time::Duration,
    /// `hermod demo`: the demo tenant's key, for the one-click sign-in.
    pub demo_key: Option<String>,
}

impl Default for ConsoleOptions {
    fn default() -> Self {
        Self {
            enabled: true,
            secure_cookie: false,
            session_ttl: std::time::Duration::from_secs(12 * 3600),
            demo_key: None,
        }
    }
}

/// The cookie's token from `Cookie:`.
fn cookie_token(req: &HttpRequest) -> Option<String> {
    for h in req.headers().get_all(actix_web::http::header::COOKIE) {
        let Ok(h) = h.to_str() else { continue };
        for pair in h.split(';') {
            if let Some((k, v)) = pair.trim().split_once('=')
                && k == COOKIE
                && !v.is_empty()
            {
                return Some(v.to_owned());
            }
        }
    }
    None
}

/// The session's id as stored: the SHA-256 of the cookie's token.
fn session_id(token: &str) -> String {
    hermod_crypto::sha256_hex(token.as_bytes())
}

/// A signed-in console user: the session, and for a tenant its key as the API sees it.
pub(crate) struct Signed {
    pub(crate) session: ConsoleSession,
    /// None: the operator.
    pub(crate) tenant: Option<Tenant>,
    pub(crate) state: web::Data<AppState>,
}

impl Signed {
    pub(crate) fn role(&self) -> Option<Role> {
        self.tenant.as_ref().map(|t| t.1.role)
    }

    /// The tenant, or a page that says this is a tenant's page.
    pub(crate) fn tenant(&self) -> Result<&Tenant, ApiError> {
        self.tenant
            .as_ref()
            .ok_or_else(|| ApiError::NotFound("this page is a tenant's".into()))
    }

    /// The tenant, when the key's role allows `need`.
    pub(crate) fn tenant_as(&self, need: Role) -> Result<&Tenant, ApiError> {
        let t = self.tenant()?;
        if t.1.role.allows(need) {
            Ok(t)
        } else {
            Err(ApiError::Forbidden(format!(
                "this key's role is {}; this needs {}",
                t.1.role.as_str(),
                need.as_str()
            )))
        }
    }

    pub(crate) fn operator(&self) -> Result<(), ApiError> {
        match self.session.principal {
            Principal::Operator { .. } => Ok(()),
            _ => Err(ApiError::NotFound("this page is the operator's".into())),
        }
    }

    /// Checks a form's CSRF token against the session's.
    pub(crate) fn check_csrf(&self, got: &str) -> Result<(), ApiError> {
        if hermod_crypto::constant_time_eq(got.as_bytes(), self.session.csrf.as_bytes()) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "the form is stale or not from this console: reload the page".into(),
            ))
        }
    }
}

/// Why a console request has no session.
pub(crate) struct NotSigned;

impl actix_web::ResponseError for NotSigned {
    fn status_code(&self) -> actix_web::http::StatusCode {
        actix_web::http::StatusCode::SEE_OTHER
    }
    fn error_response(&self) -> HttpResponse {
        see_other("/console/login")
    }
}

impl std::fmt::Debug for NotSigned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not signed in")
    }
}

impl std::fmt::Display for NotSigned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not signed in")
    }
}

impl FromRequest for Signed {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = cookie_token(req);
        Box::pin(async move {
            let (Some(state), Some(token)) = (state, token) else {
                return Err(NotSigned.into());
            };
            let Some(session) = state
                .admin
                .session(&session_id(&token))
                .await
                .map_err(ApiError::from)?
            else {
                return Err(NotSigned.into());
            };
            let tenant = match &session.principal {
                // The admin token it signed in with, still the configured one.
                Principal::Operator { token_hash } => {
                    let current = state.admin_token.as_deref().filter(|t| !t.is_empty());
                    if !current.is_some_and(|t| {
                        hermod_crypto::constant_time_eq(
                            session_id(t).as_bytes(),
                            token_hash.as_bytes(),
                        )
                    }) {
                        return Err(NotSigned.into());
                    }
                    None
                }
                Principal::Tenant { key_id, .. } => {
                    // The key as the API sees it: revoked, expired or suspended ends
                    // the session too.
                    match crate::auth::key_state(&state, key_id).await? {
                        Some((t, caller)) => Some(Tenant(t, caller)),
                        None => return Err(NotSigned.into()),
                    }
                }
            };
            Ok(Signed {
                session,
                tenant,
                state,
            })
        })
    }
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    /// A tenant's API key …
    #[serde(default)]
    key: String,
    /// … or the operator's admin token.
    #[serde(default)]
    token: String,
}

/// `GET /console/login`.
pub(crate) async fn login_page(state: web::Data<AppState>) -> HttpResponse {
    login_form(&state, None)
}

fn login_form(state: &AppState, error: Option<&str>) -> HttpResponse {
    let body = html! {
        main.login {
            h1 { "Hermod console" }
            @if let Some(e) = error { (Flash::Error(e.to_owned())) }
            @if let Some(k) = &state.console.demo_key {
                form.card method="post" action="/console/login" {
                    h2 { "Demo" }
                    input type="hidden" name="key" value=(k);
                    button #demo-login type="submit" { "Sign in as the demo tenant" }
                }
            }
            form.card method="post" action="/console/login" {
                h2 { "Tenant" }
                label for="key" { "API key" }
                input #key type="password" name="key" autocomplete="off" placeholder="hmk_…" required;
                button #tenant-login type="submit" { "Sign in" }
            }
            form.card method="post" action="/console/login" {
                h2 { "Operator" }
                label for="token" { "Admin token" }
                input #token type="password" name="token" autocomplete="off" required;
                button #operator-login type="submit" { "Sign in" }
            }
        }
    };
    let status = if error.is_some() {
        actix_web::http::StatusCode::UNAUTHORIZED
    } else {
        actix_web::http::StatusCode::OK
    };
    page_bare("Sign in", body, status)
}

/// True when a request's `Origin` (if any) is this host: a sign-in posted from another
/// site is refused.
fn same_origin(req: &HttpRequest) -> bool {
    let Some(origin) = req.headers().get("origin").and_then(|o| o.to_str().ok()) else {
        return true;
    };
    let host = req.connection_info().host().to_owned();
    origin
        .split_once("://")
        .is_some_and(|(_, h)| h.eq_ignore_ascii_case(&host))
}

/// `POST /console/login`: starts a session and sets the cookie.
pub(crate) async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse, ConsoleError> {
    if !same_origin(&req) {
        return Err(ApiError::Forbidden("sign in from the console's own page".into()).into());
    }
    // Guessing is slow: after 10 failed sign-ins from an address, one per 30 seconds.
    let client = req
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    if let Some(wait) = state.budgets.sign_ins.exhausted(&client) {
        return Err(ApiError::RateLimited(wait).into());
    }
    let failed = |state: &AppState, message: &str| {
        let _ = state.budgets.sign_ins.check(&client, 1);
        login_form(state, Some(message))
    };
    let principal = if !form.key.trim().is_empty() {
        match crate::auth::verify_key(&state, form.key.trim()).await {
            Ok((tenant, Caller { key_id, role, .. })) => Principal::Tenant {
                tenant,
                key_id,
                role,
            },
            Err(ApiError::Suspended) => {
                return Ok(login_form(&state, Some("This tenant is suspended.")));
            }
            Err(ApiError::Unauthorized) => {
                return Ok(failed(&state, "That key is not valid."));
            }
            Err(e) => return Err(e.into()),
        }
    } else {
        let ok = match state.admin_token.as_deref() {
            Some(want) if !want.is_empty() => {
                hermod_crypto::constant_time_eq(want.as_bytes(), form.token.trim().as_bytes())
            }
            _ => false,
        };
        if !ok {
            return Ok(failed(&state, "That is not the admin token."));
        }
        Principal::Operator {
            token_hash: session_id(form.token.trim()),
        }
    };
    let token = random(&state, "hcs")?;
    let now = now_ms();
    let ttl = i64::try_from(state.console.session_ttl.as_millis()).unwrap_or(i64::MAX);
    let session = ConsoleSession {
        id: session_id(&token),
        principal,
        csrf: random(&state, "csrf")?,
        created_at: now,
        expires_at: now.saturating_add(ttl),
    };
    state.admin.create_session(&session).await?;
    let cookie = format!(
        "{COOKIE}={token}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}{}",
        state.console.session_ttl.as_secs(),
        if state.console.secure_cookie {
            "; Secure"
        } else {
            ""
        }
    );
    let to = match session.principal {
        Principal::Operator { .. } => "/console/overview",
        Principal::Tenant { .. } => "/console/messages",
    };
    Ok(HttpResponse::SeeOther()
        .insert_header((actix_web::http::header::LOCATION, to))
        .insert_header((actix_web::http::header::SET_COOKIE, cookie))
        .finish())
}

/// A random token (`<prefix>_<id>_<secret>`).
fn random(state: &AppState, prefix: &str) -> Result<String, ApiError> {
    state
        .keys
        .generate_token(prefix)
        .map(|k| k.full)
        .map_err(|_| ApiError::Forbidden("no randomness for a session".into()))
}

#[derive(Deserialize)]
pub(crate) struct CsrfForm {
    pub(crate) csrf: String,
}

/// `POST /console/logout`: ends the session (the row is deleted) and clears the cookie.
pub(crate) async fn logout(
    signed: Signed,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, ConsoleError> {
    signed.check_csrf(&form.csrf)?;
    signed.state.admin.end_session(&signed.session.id).await?;
    Ok(HttpResponse::SeeOther()
        .insert_header((actix_web::http::header::LOCATION, "/console/login"))
        .insert_header((
            actix_web::http::header::SET_COOKIE,
            format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0"),
        ))
        .finish())
}
