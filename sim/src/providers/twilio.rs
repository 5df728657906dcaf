//! Twilio's Messages API: `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`, a form
//! with `To`, `From` (or `MessagingServiceSid`), `Body`, `StatusCallback`; HTTP Basic
//! auth with the Account SID and auth token. Answers `201` with the Message resource,
//! or `{code, message, more_info, status}`. Status callbacks (`sent`, then `delivered`;
//! `undelivered` with `ErrorCode` 30003 for numbers ending in `undeliverable_suffix`) are form POSTs
//! signed with `X-Twilio-Signature`; inbound messages likewise.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::{Accepted, Inner, SentCallback, basic, e164, form, hex_id, param, segments};

fn error(status: u16, code: u32, message: &str) -> HttpResponse {
    HttpResponse::build(
        actix_web::http::StatusCode::from_u16(status)
            .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST),
    )
    .json(json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status,
    }))
}

pub(super) async fn create(
    inner: web::Data<Inner>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    if let Some(r) = inner.gate("twilio").await {
        return r;
    }
    let sid = path.into_inner();
    let cfg = &inner.cfg;
    match basic(&req) {
        Some((u, p)) if u == cfg.twilio_sid && p == cfg.twilio_token => {}
        _ => return error(401, 20003, "Authenticate"),
    }
    if sid != cfg.twilio_sid {
        return error(404, 20404, "The requested resource was not found");
    }
    let f = form(&body);
    let to = param(&f, "To").unwrap_or_default().to_owned();
    let from = param(&f, "From").unwrap_or_default().to_owned();
    let text = param(&f, "Body").unwrap_or_default().to_owned();
    if to.is_empty() {
        return error(400, 21604, "A 'To' phone number is required.");
    }
    if !e164(&to) {
        return error(
            400,
            21211,
            &format!("The 'To' number {to} is not a valid phone number."),
        );
    }
    if from.is_empty() && param(&f, "MessagingServiceSid").is_none() {
        return error(400, 21603, "A 'From' phone number is required.");
    }
    if text.is_empty() && param(&f, "MediaUrl").is_none() {
        return error(400, 21602, "Message body is required.");
    }
    if text.chars().count() > 1600 {
        return error(
            400,
            21617,
            "The concatenated message body exceeds the 1600 character limit.",
        );
    }
    let msid = format!("SM{}", hex_id(16));
    let segs = segments(&text);
    inner.accept(Accepted {
        provider: "twilio",
        id: msid.clone(),
        to: to.clone(),
        from: from.clone(),
        text: text.clone(),
    });
    if let Some(cb) = param(&f, "StatusCallback").map(str::to_owned) {
        let inner = inner.clone().into_inner();
        let (msid, to, from) = (msid.clone(), to.clone(), from.clone());
        tokio::spawn(async move {
            tokio::time::sleep(inner.cfg.receipt_delay / 2).await;
            status_callback(&inner, &cb, &msid, &to, &from, "sent", None).await;
            tokio::time::sleep(inner.cfg.receipt_delay / 2).await;
            if inner.cfg.undeliverable(&to) {
                status_callback(&inner, &cb, &msid, &to, &from, "undelivered", Some("30003")).await;
            } else {
                status_callback(&inner, &cb, &msid, &to, &from, "delivered", None).await;
            }
        });
    }
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc2822)
        .unwrap_or_default();
    inner.before_answer("twilio").await;
    HttpResponse::Created().json(json!({
        "account_sid": cfg.twilio_sid,
        "api_version": "2010-04-01",
        "body": text,
        "date_created": now,
        "date_sent": null,
        "date_updated": now,
        "direction": "outbound-api",
        "error_code": null,
        "error_message": null,
        "from": from,
        "messaging_service_sid": null,
        "num_media": "0",
        "num_segments": segs.to_string(),
        "price": null,
        "price_unit": "USD",
        "sid": msid,
        "status": "queued",
        "subresource_uris": {"media": format!("/2010-04-01/Accounts/{}/Messages/{msid}/Media.json", cfg.twilio_sid)},
        "to": to,
        "uri": format!("/2010-04-01/Accounts/{}/Messages/{msid}.json", cfg.twilio_sid),
    }))
}

async fn signed_post(inner: &Inner, url: &str, params: Vec<(String, String)>) -> u16 {
    let sig = hermod_crypto::twilio::signature(&inner.cfg.twilio_token, url, &params);
    let answered = inner
        .post_form(
            url,
            &params,
            &[(hermod_crypto::twilio::HEADER, sig.clone())],
        )
        .await;
    inner.log(SentCallback {
        provider: "twilio",
        url: url.to_owned(),
        params,
        body: None,
        signature: Some(sig),
        answered,
    });
    answered
}

async fn status_callback(
    inner: &Inner,
    url: &str,
    msid: &str,
    to: &str,
    from: &str,
    status: &str,
    error: Option<&str>,
) {
    let mut params: Vec<(String, String)> = [
        ("AccountSid", inner.cfg.twilio_sid.as_str()),
        ("ApiVersion", "2010-04-01"),
        ("From", from),
        ("MessageSid", msid),
        ("MessageStatus", status),
        ("SmsSid", msid),
        ("SmsStatus", status),
        ("To", to),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    if let Some(e) = error {
        params.push(("ErrorCode".into(), e.into()));
    }
    signed_post(inner, url, params).await;
}

pub(super) async fn inbound(inner: &Inner, url: &str, from: &str, to: &str, text: &str) -> u16 {
    let msid = format!("SM{}", hex_id(16));
    let params: Vec<(String, String)> = [
        ("AccountSid", inner.cfg.twilio_sid.as_str()),
        ("ApiVersion", "2010-04-01"),
        ("Body", text),
        ("From", from),
        ("MessageSid", msid.as_str()),
        ("NumMedia", "0"),
        ("NumSegments", "1"),
        ("SmsMessageSid", msid.as_str()),
        ("SmsSid", msid.as_str()),
        ("SmsStatus", "received"),
        ("To", to),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    signed_post(inner, url, params).await
}
