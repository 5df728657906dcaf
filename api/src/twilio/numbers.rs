//! Twilio's IncomingPhoneNumbers for the tenant's numbers (its senders that are
//! numbers): where inbound messages to each are POSTed (`SmsUrl`).

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use hermod_core::inbound::sender_key;
use hermod_core::twilio::{NumberSettings, number_sid};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Params;
use super::auth::TwilioAuth;
use super::error::TwilioError;
use super::resource::{account_uri, page};
use crate::AppState;

/// A number as Twilio's IncomingPhoneNumber resource.
#[derive(Serialize, ToSchema, Clone)]
pub struct TwilioNumber {
    pub account_sid: String,
    pub api_version: String,
    pub capabilities: serde_json::Value,
    pub date_created: String,
    pub date_updated: String,
    pub friendly_name: String,
    pub phone_number: String,
    /// `PN…`, derived from the tenant and the number.
    pub sid: String,
    pub sms_method: String,
    /// Where inbound messages to the number are POSTed, Twilio's way; its TwiML answer
    /// (`<Message>`) is sent back.
    pub sms_url: Option<String>,
    pub status: String,
    pub uri: String,
}

fn is_number(s: &str) -> bool {
    let d = s.strip_prefix('+').unwrap_or(s);
    !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())
}

/// The tenant's numbers with their settings.
async fn numbers(state: &AppState, auth: &TwilioAuth) -> Result<Vec<TwilioNumber>, TwilioError> {
    let tenant = auth.tenant_id();
    let senders = crate::senders::all(state, Some(tenant))
        .await
        .map_err(TwilioError::from_api)?;
    let settings = state
        .twilio
        .numbers(tenant)
        .await
        .map_err(|e| TwilioError::from_api(e.into()))?;
    let acct = &auth.account.sid;
    Ok(senders
        .into_iter()
        .filter(|s| is_number(&s.sender))
        .map(|s| {
            let key = sender_key(&s.sender);
            let digest = hermod_crypto::sha256_hex(format!("{tenant}|{key}").as_bytes());
            let sid = number_sid(&digest);
            let set = settings.iter().find(|n| sender_key(&n.phone_number) == key);
            let e164 = if s.sender.starts_with('+') {
                s.sender.clone()
            } else {
                format!("+{}", s.sender)
            };
            let created = s
                .created_at
                .as_deref()
                .and_then(hermod_core::parse_rfc3339)
                .unwrap_or(0);
            TwilioNumber {
                account_sid: acct.clone(),
                api_version: hermod_core::twilio::API_VERSION.into(),
                capabilities: serde_json::json!({"sms": true, "mms": true, "voice": false, "fax": false}),
                date_created: hermod_core::twilio::rfc2822(created),
                date_updated: hermod_core::twilio::rfc2822(set.map_or(created, |n| n.updated_at)),
                friendly_name: set
                    .and_then(|n| n.friendly_name.clone())
                    .unwrap_or_else(|| e164.clone()),
                phone_number: e164,
                uri: format!("{}/IncomingPhoneNumbers/{sid}.json", account_uri(acct)),
                sid,
                sms_method: set.map_or("POST".into(), |n| n.sms_method.clone()),
                sms_url: set.and_then(|n| n.sms_url.clone()),
                status: "in-use".into(),
            }
        })
        .collect())
}

#[utoipa::path(tag = "twilio",
    params(("AccountSid" = String, Path, description = "the tenant's account SID"),
           ("PhoneNumber" = Option<String>, Query, description = "only this number"),
           ("PageSize" = Option<u32>, Query, description = "1 to 1000 (default 50)")),
    responses((status = 200, description = "`{incoming_phone_numbers: [...], page, page_size, ...}`"), (status = 401)))]
#[get("/2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers.json")]
pub(crate) async fn list_numbers(
    req: HttpRequest,
    auth: TwilioAuth,
    state: web::Data<AppState>,
) -> Result<HttpResponse, TwilioError> {
    let p = Params::parse(req.query_string().as_bytes());
    p.check(&[
        "PhoneNumber",
        "FriendlyName",
        "Beta",
        "Origin",
        "PageSize",
        "Page",
        "PageToken",
    ])?;
    let mut all = numbers(&state, &auth).await?;
    if let Some(n) = p.one("PhoneNumber").filter(|n| !n.is_empty()) {
        let key = sender_key(n);
        all.retain(|x| sender_key(&x.phone_number) == key);
    }
    let size = p
        .one("PageSize")
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| (1..=1000).contains(n))
        .unwrap_or(50);
    all.truncate(size);
    let uri = format!(
        "{}/IncomingPhoneNumbers.json",
        account_uri(&auth.account.sid)
    );
    Ok(HttpResponse::Ok().json(page(
        "incoming_phone_numbers",
        all,
        &uri,
        &uri,
        None,
        0,
        size,
    )))
}

async fn one(
    state: &AppState,
    auth: &TwilioAuth,
    sid: &str,
    path: &str,
) -> Result<TwilioNumber, TwilioError> {
    numbers(state, auth)
        .await?
        .into_iter()
        .find(|n| n.sid == sid)
        .ok_or_else(|| TwilioError::not_found(path))
}

#[utoipa::path(tag = "twilio",
    params(("AccountSid" = String, Path, description = "the tenant's account SID"),
           ("Sid" = String, Path, description = "the number's SID (`PN…`)")),
    responses((status = 200, body = TwilioNumber), (status = 401), (status = 404)))]
#[get("/2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers/{Sid}.json")]
pub(crate) async fn fetch_number(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    auth: TwilioAuth,
    state: web::Data<AppState>,
) -> Result<HttpResponse, TwilioError> {
    Ok(HttpResponse::Ok().json(one(&state, &auth, &path.1, req.path()).await?))
}

/// `POST IncomingPhoneNumbers/{Sid}.json`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
#[allow(dead_code)]
pub struct UpdateNumberForm {
    /// http(s) URL for inbound messages (empty: none).
    sms_url: Option<String>,
    /// `POST` (the only method offered).
    sms_method: Option<String>,
    friendly_name: Option<String>,
}

#[utoipa::path(tag = "twilio",
    params(("AccountSid" = String, Path, description = "the tenant's account SID"),
           ("Sid" = String, Path, description = "the number's SID")),
    request_body(content = UpdateNumberForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = TwilioNumber), (status = 400, description = "`20001`: an SmsUrl that is not an http(s) URL or points at an internal address, or an SmsMethod other than POST"),
              (status = 401), (status = 404)))]
#[post("/2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers/{Sid}.json")]
pub(crate) async fn update_number(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    auth: TwilioAuth,
    state: web::Data<AppState>,
) -> Result<HttpResponse, TwilioError> {
    let p = Params::parse(&body);
    p.check(&["SmsUrl", "SmsMethod", "FriendlyName"])?;
    let current = one(&state, &auth, &path.1, req.path()).await?;
    let sms_url = match p.one("SmsUrl") {
        None => current.sms_url.clone(),
        Some("") => None,
        Some(u) => {
            if !hermod_core::content::is_http_url(u) || state.address_policy.refuses_url(u) {
                return Err(TwilioError::param(
                    20001,
                    format!(
                        "SmsUrl is not a valid URL here: {}",
                        crate::json::INTERNAL_URL
                    ),
                ));
            }
            Some(u.to_owned())
        }
    };
    let sms_method = match p.one("SmsMethod") {
        None => current.sms_method.clone(),
        Some(m) if m.eq_ignore_ascii_case("POST") => "POST".to_owned(),
        Some(_) => {
            return Err(TwilioError::param(
                20001,
                "SmsMethod must be POST (a message body does not belong in a URL).",
            ));
        }
    };
    let friendly_name = p
        .one("FriendlyName")
        .map(str::to_owned)
        .or(Some(current.friendly_name.clone()));
    state
        .twilio
        .put_number(&NumberSettings {
            tenant_id: auth.tenant_id().clone(),
            phone_number: current.phone_number.clone(),
            sms_url,
            sms_method,
            friendly_name,
            updated_at: hermod_core::now_ms(),
        })
        .await
        .map_err(|e| TwilioError::from_api(e.into()))?;
    Ok(HttpResponse::Ok().json(one(&state, &auth, &path.1, req.path()).await?))
}
