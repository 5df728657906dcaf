//! Twilio's resources as its API writes them: field names, string counts, RFC 2822
//! dates, `uri` and `subresource_uris`, pages.

use std::collections::BTreeMap;

use hermod_core::model::{Attempt, Message};
use hermod_core::twilio::{self, MessageExtras};
use hermod_core::{MessageId, Status};
use serde::Serialize;
use utoipa::ToSchema;

/// A message as Twilio's Message resource.
#[derive(Serialize, ToSchema)]
pub struct TwilioMessage {
    pub account_sid: String,
    pub api_version: String,
    pub body: String,
    pub date_created: String,
    pub date_sent: Option<String>,
    pub date_updated: String,
    /// `outbound-api`, or `outbound-reply` for a TwiML answer.
    pub direction: String,
    pub error_code: Option<u32>,
    pub error_message: Option<String>,
    pub from: Option<String>,
    pub messaging_service_sid: Option<String>,
    pub num_media: String,
    pub num_segments: String,
    pub price: Option<String>,
    pub price_unit: String,
    /// `SM…`, or `MM…` with media: Hermod's message id underneath.
    pub sid: String,
    /// `accepted`, `scheduled`, `queued`, `sending`, `sent`, `delivered`, `read`,
    /// `undelivered`, `failed` or `canceled`.
    pub status: String,
    pub subresource_uris: BTreeMap<String, String>,
    pub to: String,
    pub uri: String,
}

/// The base of an account's resources.
pub fn account_uri(account: &str) -> String {
    format!("/{}/Accounts/{account}", twilio::API_VERSION)
}

fn message_uri(account: &str, sid: &str) -> String {
    format!("{}/Messages/{sid}.json", account_uri(account))
}

/// What Twilio writes for an error code.
pub fn error_message(code: u32) -> &'static str {
    match code {
        21610 => "Attempt to send to unsubscribed recipient",
        30001 => "Queue overflow",
        30003 => "Unreachable destination handset",
        30005 => "Unknown destination handset",
        30006 => "Landline or unreachable carrier",
        30007 => "Message filtered",
        _ => "Unknown error",
    }
}

/// The resource of a message; `attempts` (when read) give the carrier's verdict.
pub fn message(account: &str, m: &Message, attempts: &[Attempt]) -> TwilioMessage {
    let extras = m.twilio.clone().unwrap_or_default();
    let media = extras.media
        || matches!(
            m.content.as_ref().map(|c| &c.content),
            Some(hermod_core::content::Content::Media(_))
        );
    let sid = twilio::message_sid(&m.id, media);
    let last = attempts.last();
    let raw = last.and_then(|a| a.raw_status.as_deref());
    let attempt_error = last.and_then(|a| a.error.as_ref()).map(|e| e.code.as_str());
    let carrier = raw.is_some() && m.status.is_failure();
    let error_code = twilio::error_code(m.status, m.reason.as_deref(), attempt_error, raw);
    let gone_out = !matches!(
        m.status,
        Status::Accepted | Status::Scheduled | Status::Queued | Status::Canceled
    );
    let uri = message_uri(account, &sid);
    let base = uri.trim_end_matches(".json").to_owned();
    let reply = m
        .metadata
        .as_ref()
        .and_then(|v| v.get("reply_to"))
        .is_some();
    TwilioMessage {
        account_sid: account.to_owned(),
        api_version: twilio::API_VERSION.to_owned(),
        body: m.text.clone(),
        date_created: twilio::rfc2822(m.created_at),
        date_sent: gone_out.then(|| twilio::rfc2822(m.send_at.unwrap_or(m.created_at))),
        date_updated: twilio::rfc2822(m.updated_at),
        direction: if reply {
            "outbound-reply"
        } else {
            "outbound-api"
        }
        .to_owned(),
        error_code,
        error_message: error_code.map(|c| error_message(c).to_owned()),
        from: m.from.clone(),
        messaging_service_sid: extras.service_sid.clone(),
        num_media: usize::from(media).to_string(),
        num_segments: twilio::segments(&m.text).to_string(),
        price: None,
        price_unit: "USD".to_owned(),
        sid,
        status: twilio::status_name(m.status, carrier, accepted_as(&extras)).to_owned(),
        subresource_uris: BTreeMap::from([
            ("media".to_owned(), format!("{base}/Media.json")),
            ("feedback".to_owned(), format!("{base}/Feedback.json")),
        ]),
        to: m.to.clone(),
        uri,
    }
}

/// What a just-stored message is called: `accepted` through a Messaging Service,
/// else `queued`.
pub fn accepted_as(extras: &MessageExtras) -> &'static str {
    if extras.service_sid.is_some() {
        "accepted"
    } else {
        "queued"
    }
}

/// A page of a list: the items under `key` and Twilio's paging fields.
pub fn page<T: Serialize>(
    key: &str,
    items: Vec<T>,
    uri: &str,
    first: &str,
    next: Option<String>,
    page: u32,
    page_size: usize,
) -> serde_json::Value {
    let n = items.len();
    let start = page as usize * page_size;
    serde_json::json!({
        key: items,
        "end": if n == 0 { start } else { start + n - 1 },
        "first_page_uri": first,
        "next_page_uri": next,
        "page": page,
        "page_size": page_size,
        "previous_page_uri": serde_json::Value::Null,
        "start": start,
        "uri": uri,
    })
}

/// The page token of a cursor (`PA` + the last message's SID) and back.
pub fn page_token(last: &MessageId) -> String {
    format!("PA{}", twilio::message_sid(last, false))
}

pub fn parse_page_token(t: &str) -> Option<MessageId> {
    twilio::parse_message_sid(t.strip_prefix("PA")?)
}
