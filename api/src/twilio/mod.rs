//! A Twilio-compatible Messages API under `/2010-04-01/Accounts/{AccountSid}/`: code
//! and SDKs written for Twilio send through Hermod by changing the base URL and the
//! credentials. Messages go through the same pipeline as `/v1/messages` (senders,
//! opt-outs, channel choice and fallback, audit, quotas); statuses, errors, dates and
//! pages come back in Twilio's shapes. Status callbacks and inbound POSTs to a number's
//! `SmsUrl` are Twilio's signed form POSTs (see `hermod_core::twilio`).

mod account;
pub(crate) mod auth;
mod error;
mod numbers;
pub(crate) mod resource;

pub use account::new_credentials;
pub(crate) use account::*;
pub use auth::AccountCache;
pub use error::TwilioError;
pub(crate) use numbers::*;

use actix_web::{HttpRequest, HttpResponse, delete, get, post, web};
use hermod_core::model::ListFilter;
use hermod_core::twilio::{MessageExtras, Removal, parse_message_sid};
use hermod_core::{Msisdn, now_ms};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::messages::{Prep, SendMessage, accepted_view, rate_limit};
use auth::TwilioAuth;
use resource::*;

/// The SID of a Hermod API key as a Twilio API key: `SK`, the key id, and 16 hex
/// digits derived from it (the secret part of the key is the password).
pub fn key_sid(key_id: &str) -> String {
    hermod_core::twilio::key_sid(key_id, &hermod_crypto::sha256_hex(key_id.as_bytes()))
}

/// Form or query parameters, in order (a name may repeat: `MediaUrl`).
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    pub(crate) fn parse(raw: &[u8]) -> Self {
        Params(
            url::form_urlencoded::parse(raw)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The last value of `name`, if given and not empty.
    pub(crate) fn one(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Refuses a parameter that is neither taken nor knowingly ignored.
    pub(crate) fn check(&self, known: &[&str]) -> Result<(), TwilioError> {
        match self.0.iter().find(|(k, _)| !known.contains(&k.as_str())) {
            Some((k, _)) => Err(TwilioError::param(
                20001,
                format!("Unknown parameter '{k}'"),
            )),
            None => Ok(()),
        }
    }
}

/// `POST Messages.json` parameters Hermod uses.
const CREATE: [&str; 11] = [
    "To",
    "From",
    "MessagingServiceSid",
    "Body",
    "MediaUrl",
    "StatusCallback",
    "ValidityPeriod",
    "SendAt",
    "ScheduleType",
    "Attempt",
    "ProvideFeedback",
];

/// Twilio parameters accepted and ignored: they tune Twilio's own services (price
/// caps, link shortening, smart encoding, retention, risk checks).
const IGNORED: [&str; 10] = [
    "MaxPrice",
    "ForceDelivery",
    "ContentRetention",
    "AddressRetention",
    "SmartEncoded",
    "PersistentAction",
    "ShortenUrls",
    "SendAsMms",
    "RiskCheck",
    "ApplicationSid",
];

/// `POST Messages.json` (form-encoded), as Twilio documents it.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
#[allow(dead_code)]
pub struct CreateMessageForm {
    /// Recipient in E.164.
    to: String,
    /// One of the tenant's senders; or give `MessagingServiceSid`.
    from: Option<String>,
    /// `MG…`: sends from the tenant's default sender; the message starts `accepted`.
    messaging_service_sid: Option<String>,
    /// Up to 1,600 characters.
    body: Option<String>,
    /// One public media URL (RCS shows it; SMS falls back to the body).
    media_url: Option<String>,
    /// Where Twilio-style status callbacks go (signed `X-Twilio-Signature`).
    status_callback: Option<String>,
    /// Seconds the message stays worth sending (1 to 36000).
    validity_period: Option<i64>,
    /// ISO 8601 time to send at; needs `ScheduleType=fixed`.
    send_at: Option<String>,
    /// `fixed`, with `SendAt`.
    schedule_type: Option<String>,
    /// Accepted; no effect.
    attempt: Option<i64>,
    /// Accepted; no effect.
    provide_feedback: Option<bool>,
}

fn twilio_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// A Twilio time parameter (ISO 8601 with zone, or a date) as Unix ms.
fn twilio_time(v: &str) -> Option<i64> {
    if let Some(t) = hermod_core::parse_rfc3339(v) {
        return Some(t);
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    let d = time::Date::parse(v, &fmt).ok()?;
    Some(d.midnight().assume_utc().unix_timestamp() * 1000)
}

#[utoipa::path(tag = "twilio",
    params(("AccountSid" = String, Path, description = "the tenant's account SID (`AC…`)")),
    request_body(content = CreateMessageForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 201, body = TwilioMessage, description = "stored: `queued`, `accepted` (Messaging Service) or `scheduled`"),
              (status = 400, description = "Twilio's error JSON: `21211` invalid To, `21212` invalid From, `21602` no Body, `21603` no From, `21606` From not the account's, `21610` recipient opted out, `21617` Body too long, `21609` invalid StatusCallback, `20001` other parameters"),
              (status = 401, description = "`20003`: HTTP Basic with the account SID and auth token, or an API key SID and secret"),
              (status = 429, description = "`20429`: the tenant's rate limit or daily quota")))]
#[post("/2010-04-01/Accounts/{AccountSid}/Messages.json")]
pub(crate) async fn create_message(
    body: web::Bytes,
    auth: TwilioAuth,
    state: web::Data<AppState>,
) -> Result<HttpResponse, TwilioError> {
    let p = Params::parse(&body);
    let mut known: Vec<&str> = CREATE.to_vec();
    known.extend(IGNORED);
    p.check(&known)?;
    let to = p
        .one("To")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| TwilioError::param(21604, "A 'To' phone number is required."))?;
    let from = p.one("From").filter(|f| !f.is_empty());
    let service = p.one("MessagingServiceSid").filter(|s| !s.is_empty());
    if let Some(s) = service
        && !(s.len() == 34 && s.starts_with("MG") && s[2..].bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(TwilioError::param(
            20001,
            format!("The Messaging Service Sid {s} is invalid."),
        ));
    }
    if from.is_none() && service.is_none() {
        return Err(TwilioError::param(
            21603,
            "A 'From' phone number is required.",
        ));
    }
    let text = p.one("Body").unwrap_or("");
    let media = p.all("MediaUrl");
    if text.is_empty() && media.is_empty() {
        return Err(TwilioError::param(21602, "Message body is required."));
    }
    if text.chars().count() > 1600 {
        return Err(TwilioError::param(
            21617,
            "The concatenated message body exceeds the 1600 character limit.",
        ));
    }
    if media.len() > 1 {
        return Err(TwilioError::param(
            20001,
            "Hermod sends one MediaUrl per message.",
        ));
    }
    let mut v = serde_json::json!({ "to": to });
    if !text.is_empty() {
        v["text"] = text.into();
    }
    if let Some(f) = from {
        v["from"] = f.into();
    }
    if let Some(url) = media.first() {
        v["content"] = serde_json::json!({ "media": { "url": url } });
    }
    if let Some(cb) = p.one("StatusCallback").filter(|c| !c.is_empty()) {
        v["callback_url"] = cb.into();
    }
    if let Some(vp) = p.one("ValidityPeriod") {
        let secs: i64 = vp
            .parse()
            .ok()
            .filter(|s| (1..=36_000).contains(s))
            .ok_or_else(|| {
                TwilioError::param(20001, "ValidityPeriod must be 1 to 36000 seconds.")
            })?;
        v["ttl"] = secs.into();
    }
    match (p.one("SendAt"), p.one("ScheduleType")) {
        (Some(at), Some("fixed")) => {
            let ms = twilio_time(at)
                .ok_or_else(|| TwilioError::param(35114, "SendAt must be an ISO 8601 time."))?;
            v["send_at"] = hermod_core::rfc3339(ms).into();
        }
        (Some(_), _) => {
            return Err(TwilioError::param(
                20001,
                "SendAt needs ScheduleType=fixed.",
            ));
        }
        (None, Some(_)) => {
            return Err(TwilioError::param(20001, "ScheduleType needs SendAt."));
        }
        (None, None) => {}
    }
    if let Some(a) = p.one("Attempt")
        && a.parse::<u32>().is_err()
    {
        return Err(TwilioError::param(20001, "Attempt must be a number."));
    }
    if let Some(f) = p.one("ProvideFeedback")
        && twilio_bool(f).is_none()
    {
        return Err(TwilioError::param(
            20001,
            "ProvideFeedback must be true or false.",
        ));
    }
    let req: SendMessage =
        serde_json::from_value(v).map_err(|e| TwilioError::param(20001, e.to_string()))?;
    let tenant = auth.tenant_id().clone();
    let now = now_ms();
    let mut prep = Prep::load(&state, &tenant)
        .await
        .map_err(TwilioError::from_api)?;
    let mut msg = prep
        .message(&state, req, "", now)
        .await
        .map_err(TwilioError::from_api)?;
    // Twilio refuses a recipient who opted out (STOP) when the message is created.
    if crate::messages::opted_out(&state, &msg)
        .await
        .map_err(TwilioError::from_api)?
    {
        return Err(TwilioError::param(
            21610,
            "Attempt to send to unsubscribed recipient",
        ));
    }
    msg.twilio = Some(MessageExtras {
        media: !media.is_empty(),
        service_sid: service.map(str::to_owned),
    });
    rate_limit(&state, &auth.tenant, 1)
        .await
        .map_err(TwilioError::from_api)?;
    state
        .messages
        .accept(&tenant, std::slice::from_ref(&msg), None)
        .await
        .map_err(|e| TwilioError::from_api(e.into()))?;
    metrics::counter!("hermod_messages_total", "stage" => "api", "status" => "accepted")
        .increment(1);
    let view = accepted_view(&msg);
    Ok(HttpResponse::Created().json(message(&auth.account.sid, &view, &[])))
}

/// `GET Messages.json` filters and paging, as Twilio's SDKs send them.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct ListQuery {
    /// Sent to this number.
    #[serde(rename = "To")]
    #[param(rename = "To")]
    to: Option<String>,
    /// Sent from this sender.
    #[serde(rename = "From")]
    #[param(rename = "From")]
    from: Option<String>,
    /// Accepted on this day (`YYYY-MM-DD`) or at this time.
    #[serde(rename = "DateSent")]
    #[param(rename = "DateSent")]
    date_sent: Option<String>,
    /// Accepted before this (Twilio's `DateSent<`).
    #[serde(rename = "DateSent<")]
    #[param(rename = "DateSent<")]
    date_sent_before: Option<String>,
    /// Accepted after this (Twilio's `DateSent>`).
    #[serde(rename = "DateSent>")]
    #[param(rename = "DateSent>")]
    date_sent_after: Option<String>,
    /// 1 to 1000 (default 50).
    #[serde(rename = "PageSize")]
    #[param(rename = "PageSize")]
    page_size: Option<u32>,
    /// The page's number (informational: `PageToken` says where it starts).
    #[serde(rename = "Page")]
    #[param(rename = "Page")]
    page: Option<u32>,
    /// From `next_page_uri`.
    #[serde(rename = "PageToken")]
    #[param(rename = "PageToken")]
    page_token: Option<String>,
}

const LIST: [&str; 8] = [
    "To",
    "From",
    "DateSent",
    "DateSent<",
    "DateSent>",
    "PageSize",
    "Page",
    "PageToken",
];

fn time_param(p: &Params, name: &str) -> Result<Option<i64>, TwilioError> {
    match p.one(name).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => twilio_time(v).map(Some).ok_or_else(|| {
            TwilioError::param(20001, format!("{name} must be a date or an ISO 8601 time."))
        }),
    }
}

#[utoipa::path(tag = "twilio",
    params(("AccountSid" = String, Path, description = "the tenant's account SID"), ListQuery),
    responses((status = 200, description = "`{messages: [...], page, page_size, first_page_uri, next_page_uri, previous_page_uri, start, end, uri}`, newest first"),
              (status = 400), (status = 401)))]
#[get("/2010-04-01/Accounts/{AccountSid}/Messages.json")]
pub(crate) async fn list_messages(
    req: HttpRequest,
    auth: TwilioAuth,
    state: web::Data<AppState>,
) -> Result<HttpResponse, TwilioError> {
    let p = Params::parse(req.query_string().as_bytes());
    p.check(&LIST)?;
    let page_size: u32 = match p.one("PageSize") {
        None => 50,
        Some(v) => v
            .parse()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| TwilioError::param(20001, "PageSize must be 1 to 1000."))?,
    };
    let page_no: u32 = p.one("Page").and_then(|v| v.parse().ok()).unwrap_or(0);
    let cursor = match p.one("PageToken").filter(|t| !t.is_empty()) {
        None => None,
        Some(t) => Some(
            parse_page_token(t)
                .ok_or_else(|| TwilioError::param(20001, "PageToken is not one Hermod gave."))?,
        ),
    };
    let mut since = time_param(&p, "DateSent>")?;
    let mut until = time_param(&p, "DateSent<")?;
    if let Some(day) = p.one("DateSent").filter(|v| !v.is_empty()) {
        // The UTC day of the date or time given (the SDKs send a date as midnight).
        let start = twilio_time(day)
            .ok_or_else(|| TwilioError::param(20001, "DateSent must be a date (YYYY-MM-DD)."))?
            .div_euclid(86_400_000)
            * 86_400_000;
        let end = start + 86_400_000;
        since = Some(since.map_or(start, |s| s.max(start)));
        until = Some(until.map_or(end, |u| u.min(end)));
    }
    let to = match p.one("To").filter(|v| !v.is_empty()) {
        None => None,
        Some(t) => Some(
            Msisdn::parse(t)
                .map_err(|_| {
                    TwilioError::param(
                        21211,
                        format!("The 'To' number {t} is not a valid phone number."),
                    )
                })?
                .as_str()
                .to_owned(),
        ),
    };
    let filter = ListFilter {
        to,
        from: p.one("From").filter(|v| !v.is_empty()).map(str::to_owned),
        since,
        until,
        limit: i64::from(page_size),
        cursor,
        ..Default::default()
    };
    let tenant = auth.tenant_id().clone();
    let found = state
        .messages
        .list_messages(&tenant, &filter)
        .await
        .map_err(|e| TwilioError::from_api(e.into()))?;
    let mut items = Vec::with_capacity(found.len());
    for m in &found {
        // A failure's code needs its attempts (the carrier's verdict).
        let attempts = if m.status.is_failure() {
            state
                .messages
                .get_message(&tenant, &m.id)
                .await
                .map_err(|e| TwilioError::from_api(e.into()))?
                .map(|v| v.attempts)
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        items.push(message(&auth.account.sid, m, &attempts));
    }
    let acct = &auth.account.sid;
    let base = format!("{}/Messages.json", account_uri(acct));
    let query = |extra: &[(&str, String)]| {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for k in ["To", "From", "DateSent", "DateSent<", "DateSent>"] {
            if let Some(v) = p.one(k) {
                s.append_pair(k, v);
            }
        }
        s.append_pair("PageSize", &page_size.to_string());
        for (k, v) in extra {
            s.append_pair(k, v);
        }
        format!("{base}?{}", s.finish())
    };
    let next = (found.len() == page_size as usize)
        .then(|| found.last())
        .flatten()
        .map(|last| {
            query(&[
                ("Page", (page_no + 1).to_string()),
                ("PageToken", page_token(&last.id)),
            ])
        });
    let mut current: Vec<(&str, String)> = vec![("Page", page_no.to_string())];
    if let Some(t) = p.one("PageToken") {
        current.push(("PageToken", t.to_owned()));
    }
    let body = page(
        "messages",
        items,
        &query(&current),
        &query(&[("Page", "0".to_owned())]),
        next,
        page_no,
        page_size as usize,
    );
    Ok(HttpResponse::Ok().json(body))
}

/// The message a SID names, of this account's tenant.
async fn find(
    state: &AppState,
    auth: &TwilioAuth,
    sid: &str,
    path: &str,
) -> Result<hermod_core::model::MessageView, TwilioError> {
    let id = parse_message_sid(sid).ok_or_else(|| TwilioError::not_found(path))?;
    state
        .messages
        .get_message(auth.tenant_id(), &id)
        .await
        .map_err(|e| TwilioError::from_api(e.into()))?
        .ok_or_else(|| TwilioError::not_found(path))
}

#[utoipa::path(tag = "twilio",
    params(("AccountSid" = String, Path, description = "the tenant's account SID"),
           ("Sid" = String, Path, description = "the message's SID (`SM…` or `MM…`)")),
    responses((status = 200, body = TwilioMessage), (status = 401), (status = 404, description = "`20404`")))]
#[get("/2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json")]
pub(crate) async fn fetch_message(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    auth: TwilioAuth,
    state: web::Data<AppState>,
) -> Result<HttpResponse, TwilioError> {
    let v = find(&state, &auth, &path.1, req.path()).await?;
    Ok(HttpResponse::Ok().json(message(&auth.account.sid, &v.message, &v.attempts)))
}

/// `POST Messages/{Sid}.json`: cancel a scheduled message, or redact a body.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
#[allow(dead_code)]
pub struct UpdateMessageForm {
    /// `canceled`: a message not yet handed to a channel (scheduled ones).
    status: Option<String>,
    /// Only the empty string: blanks a finished message's body.
    body: Option<String>,
}

#[utoipa::path(tag = "twilio",
    params(("AccountSid" = String, Path, description = "the tenant's account SID"),
           ("Sid" = String, Path, description = "the message's SID")),
    request_body(content = UpdateMessageForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = TwilioMessage), (status = 400, description = "`30409` too late to cancel; `20009` still in progress (redaction); `20001` other parameters"),
              (status = 401), (status = 404)))]
#[post("/2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json")]
pub(crate) async fn update_message(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    auth: TwilioAuth,
    state: web::Data<AppState>,
) -> Result<HttpResponse, TwilioError> {
    let p = Params::parse(&body);
    p.check(&["Status", "Body"])?;
    let v = find(&state, &auth, &path.1, req.path()).await?;
    let tenant = auth.tenant_id().clone();
    let id = v.message.id.clone();
    match (p.one("Status"), p.one("Body")) {
        (Some("canceled"), None) => {
            match state
                .messages
                .cancel_message(&tenant, &id)
                .await
                .map_err(|e| TwilioError::from_api(e.into()))?
            {
                hermod_core::model::CancelOutcome::Canceled => {}
                hermod_core::model::CancelOutcome::NotFound => {
                    return Err(TwilioError::not_found(req.path()));
                }
                hermod_core::model::CancelOutcome::TooLate(s) => {
                    return Err(TwilioError::param(
                        30409,
                        format!(
                            "The message can no longer be canceled: it is {}.",
                            hermod_core::twilio::status_name(s, false, "queued")
                        ),
                    ));
                }
            }
        }
        (Some(s), None) => {
            return Err(TwilioError::param(
                20001,
                format!("Status may only be 'canceled', not '{s}'."),
            ));
        }
        (None, Some("")) => match state
            .twilio
            .redact_message(&tenant, &id)
            .await
            .map_err(|e| TwilioError::from_api(e.into()))?
        {
            Removal::Done => {}
            Removal::NotFound => return Err(TwilioError::not_found(req.path())),
            Removal::InProgress(_) => {
                return Err(TwilioError::param(
                    20009,
                    "The message is still in progress; its body can be redacted once it is sent or failed.",
                ));
            }
        },
        (None, Some(_)) => {
            return Err(TwilioError::param(
                20001,
                "Body may only be set to the empty string (redaction).",
            ));
        }
        _ => {
            return Err(TwilioError::param(
                20001,
                "Give Status=canceled or Body= (empty).",
            ));
        }
    }
    let v = find(&state, &auth, &path.1, req.path()).await?;
    Ok(HttpResponse::Ok().json(message(&auth.account.sid, &v.message, &v.attempts)))
}

#[utoipa::path(tag = "twilio",
    params(("AccountSid" = String, Path, description = "the tenant's account SID"),
           ("Sid" = String, Path, description = "the message's SID")),
    responses((status = 204, description = "deleted: its content blanked, gone from both APIs; its timeline stays in the audit log"),
              (status = 400, description = "`20009`: still in progress"), (status = 401), (status = 404)))]
#[delete("/2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json")]
pub(crate) async fn delete_message(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    auth: TwilioAuth,
    state: web::Data<AppState>,
) -> Result<HttpResponse, TwilioError> {
    let id = parse_message_sid(&path.1).ok_or_else(|| TwilioError::not_found(req.path()))?;
    match state
        .twilio
        .delete_message(auth.tenant_id(), &id)
        .await
        .map_err(|e| TwilioError::from_api(e.into()))?
    {
        Removal::Done => Ok(HttpResponse::NoContent().finish()),
        Removal::NotFound => Err(TwilioError::not_found(req.path())),
        Removal::InProgress(s) => Err(TwilioError::param(
            20009,
            format!(
                "Cannot delete message because it is still in progress ({}).",
                hermod_core::twilio::status_name(s, false, "queued")
            ),
        )),
    }
}
