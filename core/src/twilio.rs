//! Twilio's Messages API as Hermod speaks it: SIDs that map onto Hermod's ids, Twilio's
//! status vocabulary and error codes, RFC 2822 dates, the form POSTs Twilio sends
//! (status callbacks, inbound messages) and the TwiML `<Message>` replies it reads.
//! No I/O here; the API, the store and the webhook stage use it.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::ports::PortResult;
use crate::{MessageId, Status, TenantId};

/// The API version in every path and callback.
pub const API_VERSION: &str = "2010-04-01";

/// A tenant's Twilio-style account: the SID in URLs and Basic auth, and the auth token
/// that authenticates requests and signs what Hermod POSTs.
#[derive(Clone, PartialEq, Eq)]
pub struct Account {
    pub tenant_id: TenantId,
    pub sid: String,
    pub auth_token: crate::Secret,
    pub created_at: i64,
    pub updated_at: i64,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("tenant_id", &self.tenant_id)
            .field("sid", &self.sid)
            .finish_non_exhaustive()
    }
}

/// A number's settings as Twilio's IncomingPhoneNumbers resource shows them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NumberSettings {
    pub tenant_id: TenantId,
    /// E.164 with `+`, as the operator assigned it.
    pub phone_number: String,
    /// Where inbound messages to the number are POSTed (none: only Hermod's own
    /// `message.inbound` webhooks).
    pub sms_url: Option<String>,
    /// `POST` (Twilio's `GET` is not offered: a message body does not belong in a URL).
    pub sms_method: String,
    pub friendly_name: Option<String>,
    pub updated_at: i64,
}

/// What a message created through the Twilio API keeps beyond Hermod's fields (the
/// `twilio` column): its presence also makes its status callbacks Twilio's form POSTs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageExtras {
    /// Sent with `MediaUrl`: its SID starts `MM`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub media: bool,
    /// The `MessagingServiceSid` it was sent with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_sid: Option<String>,
}

/// What `redact`/`delete` found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Removal {
    Done,
    NotFound,
    /// Still on its way (this status): Twilio's `20009`.
    InProgress(Status),
}

/// The Twilio API's own records: accounts, numbers' settings, and the removal of
/// messages' bodies (redaction) or of messages.
#[async_trait]
pub trait TwilioStore: Send + Sync {
    async fn account_of(&self, tenant: &TenantId) -> PortResult<Option<Account>>;
    async fn account_by_sid(&self, sid: &str) -> PortResult<Option<Account>>;
    /// Creates the tenant's account with `sid` and `token`, or gives the existing one
    /// the new token (its SID stays). Returns the account as stored; None when there
    /// is no such tenant.
    async fn put_account(
        &self,
        tenant: &TenantId,
        sid: &str,
        token: &str,
        now: i64,
    ) -> PortResult<Option<Account>>;
    async fn numbers(&self, tenant: &TenantId) -> PortResult<Vec<NumberSettings>>;
    async fn put_number(&self, settings: &NumberSettings) -> PortResult<()>;
    /// Blanks a finished message's body and content (Twilio's `Body=""`).
    async fn redact_message(&self, tenant: &TenantId, id: &MessageId) -> PortResult<Removal>;
    /// Blanks a finished message and hides it from both APIs; its timeline stays for
    /// the audit log.
    async fn delete_message(&self, tenant: &TenantId, id: &MessageId) -> PortResult<Removal>;
}

/// Sends the `<Message>` verbs of a number's TwiML answer to an inbound message.
#[async_trait]
pub trait TwimlReplies: Send + Sync {
    /// Stores the replies to `inbound` (its form POST) that `twiml` asks for; false
    /// when they could not be stored now (the POST is retried, and a reply already
    /// stored is not stored twice).
    async fn reply(&self, tenant: &TenantId, inbound: &FormPost, twiml: &str) -> bool;
}

/// Whether `s` is an account SID: `AC` and 32 hex digits.
pub fn is_account_sid(s: &str) -> bool {
    sid_hex(s, "AC").is_some()
}

fn sid_hex<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = s.strip_prefix(prefix)?;
    (rest.len() == 32 && rest.bytes().all(|b| b.is_ascii_hexdigit())).then_some(rest)
}

/// The SID of a message: `SM` (or `MM` with media) and its id's 32 hex digits.
pub fn message_sid(id: &MessageId, media: bool) -> String {
    let hex = id.as_str().strip_prefix("msg_").unwrap_or(id.as_str());
    format!("{}{hex}", if media { "MM" } else { "SM" })
}

/// The message a SID names (`SM…` or `MM…`).
pub fn parse_message_sid(sid: &str) -> Option<MessageId> {
    let hex = sid_hex(sid, "SM").or_else(|| sid_hex(sid, "MM"))?;
    MessageId::parse(&format!("msg_{}", hex.to_ascii_lowercase()))
}

/// The SID of an inbound message (`in_<hex>` → `SM<hex>`).
pub fn inbound_sid(id: &str) -> String {
    format!("SM{}", id.strip_prefix("in_").unwrap_or(id))
}

/// The SID Twilio's API shows for a key (`SK`, its 16 hex digits, then 16 more derived
/// from them, 34 characters in all like Twilio's).
pub fn key_sid(key_id: &str, check: &str) -> String {
    format!("SK{key_id}{}", &check[..check.len().min(16)])
}

/// The key id inside an `SK…` SID.
pub fn key_id_of_sid(sid: &str) -> Option<&str> {
    let hex = sid_hex(sid, "SK")?;
    hex.get(..16)
}

/// The SID of a number in IncomingPhoneNumbers: `PN` and 32 hex digits derived from
/// the tenant and the number (`digest` is a hex SHA-256 of them).
pub fn number_sid(digest: &str) -> String {
    format!("PN{}", &digest[..digest.len().min(32)])
}

/// A status as Twilio names it. `carrier` says a carrier's receipt reported the
/// failure (Twilio's `undelivered`), rather than the message never leaving.
pub fn status_name(status: Status, carrier: bool, accepted_as: &'static str) -> &'static str {
    match status {
        Status::Accepted => accepted_as,
        Status::Scheduled => "scheduled",
        Status::Queued => "queued",
        Status::Sending => "sending",
        Status::Sent => "sent",
        Status::Delivered => "delivered",
        Status::Read => "read",
        Status::Failed | Status::Expired | Status::Rejected if carrier => "undelivered",
        Status::Failed | Status::Expired | Status::Rejected => "failed",
        Status::Canceled => "canceled",
    }
}

/// Twilio's error code for a failed message: from the reason it ended, the error of
/// its last attempt and the carrier's receipt status.
pub fn error_code(
    status: Status,
    reason: Option<&str>,
    attempt_error: Option<&str>,
    raw_status: Option<&str>,
) -> Option<u32> {
    if !status.is_failure() || status == Status::Canceled {
        return None;
    }
    if reason == Some("recipient_opted_out") {
        return Some(21610);
    }
    let code = match (raw_status, attempt_error) {
        (Some("REJECTD"), _) => 30007,
        (Some("UNDELIV"), _) => 30003,
        (Some("EXPIRED"), _) => 30003,
        (Some("UNKNOWN"), _) => 30008,
        (_, Some("ttl_expired")) => 30001,
        // ESME_RINVDSTADR: the destination is not a handset the carrier knows.
        (_, Some("smpp:0x0000000B")) => 30005,
        (_, Some("no_route")) => 30006,
        _ if status == Status::Expired => 30001,
        _ if status == Status::Rejected => 30007,
        _ => 30008,
    };
    Some(code)
}

/// Twilio's date format (RFC 2822): `Thu, 30 Jul 2015 20:12:31 +0000`.
pub fn rfc2822(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc2822)
                .ok()
        })
        .unwrap_or_default()
}

/// How many SMS parts the text takes (GSM 03.38: 160/153, else UCS-2: 70/67).
pub fn segments(text: &str) -> usize {
    crate::gsm::segment(text).parts.len().max(1)
}

/// A form POST Hermod makes the way Twilio does: a status callback or an inbound
/// message. Carried through the webhook stage as the delivery's payload
/// (`{"twilio_form": {...}}`), which keeps it through retries; the poster form-encodes
/// the parameters and signs them with the account's auth token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormPost {
    pub kind: FormKind,
    pub account_sid: String,
    pub params: Vec<(String, String)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FormKind {
    /// A `StatusCallback`.
    Status,
    /// An inbound message to a number's `SmsUrl`; the answer may be TwiML to send.
    Inbound,
}

impl FormPost {
    /// The delivery payload.
    pub fn to_payload(&self) -> String {
        serde_json::json!({ "twilio_form": self }).to_string()
    }

    /// Whether a delivery payload is a form POST (no parse).
    pub fn is_payload(payload: &str) -> bool {
        payload.starts_with("{\"twilio_form\"")
    }

    /// The form POST a delivery payload carries, if it is one.
    pub fn from_payload(payload: &str) -> Option<Self> {
        if !Self::is_payload(payload) {
            return None;
        }
        #[derive(Deserialize)]
        struct Wrapped {
            twilio_form: FormPost,
        }
        serde_json::from_str::<Wrapped>(payload)
            .ok()
            .map(|w| w.twilio_form)
    }

    /// A parameter's value.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The form body.
    pub fn encoded(&self) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(self.params.iter())
            .finish()
    }
}

/// The parameters of a status callback, as Twilio sends them.
pub struct StatusCallback<'a> {
    pub account_sid: &'a str,
    pub message_sid: &'a str,
    pub status: &'a str,
    pub from: Option<&'a str>,
    pub to: &'a str,
    pub error_code: Option<u32>,
    pub service_sid: Option<&'a str>,
    /// Hermod's channel for the attempt (`sms`, `rcs`, `app`).
    pub channel: Option<&'a str>,
    pub raw_status: Option<&'a str>,
}

impl StatusCallback<'_> {
    pub fn form(&self) -> FormPost {
        let mut p: Vec<(String, String)> = vec![
            ("AccountSid".into(), self.account_sid.into()),
            ("ApiVersion".into(), API_VERSION.into()),
            ("MessageSid".into(), self.message_sid.into()),
            ("MessageStatus".into(), self.status.into()),
            ("SmsSid".into(), self.message_sid.into()),
            ("SmsStatus".into(), self.status.into()),
            ("To".into(), self.to.into()),
        ];
        if let Some(f) = self.from {
            p.push(("From".into(), f.into()));
        }
        if let Some(c) = self.error_code {
            p.push(("ErrorCode".into(), c.to_string()));
        }
        if let Some(s) = self.service_sid {
            p.push(("MessagingServiceSid".into(), s.into()));
        }
        if let Some(c) = self.channel {
            p.push(("ChannelPrefix".into(), c.into()));
        }
        if let Some(r) = self.raw_status {
            p.push(("ChannelStatusMessage".into(), r.into()));
        }
        FormPost {
            kind: FormKind::Status,
            account_sid: self.account_sid.into(),
            params: p,
        }
    }
}

/// The parameters of an inbound message POSTed to a number's `SmsUrl`.
pub fn inbound_form(
    account_sid: &str,
    inbound_id: &str,
    from: &str,
    to: &str,
    body: &str,
) -> FormPost {
    let sid = inbound_sid(inbound_id);
    let params: Vec<(String, String)> = vec![
        ("AccountSid".into(), account_sid.into()),
        ("ApiVersion".into(), API_VERSION.into()),
        ("Body".into(), body.into()),
        ("From".into(), from.into()),
        ("MessageSid".into(), sid.clone()),
        ("NumMedia".into(), "0".into()),
        ("NumSegments".into(), segments(body).to_string()),
        ("SmsMessageSid".into(), sid.clone()),
        ("SmsSid".into(), sid),
        ("SmsStatus".into(), "received".into()),
        ("To".into(), to.into()),
    ];
    FormPost {
        kind: FormKind::Inbound,
        account_sid: account_sid.into(),
        params,
    }
}

/// One `<Message>` of a TwiML answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TwimlMessage {
    /// The `to` attribute (default: the sender of the inbound message).
    pub to: Option<String>,
    /// The `from` attribute (default: the number it was sent to).
    pub from: Option<String>,
    pub body: String,
    pub media: Vec<String>,
}

/// Why a TwiML answer was not used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TwimlError {
    #[error("not XML: {0}")]
    Xml(String),
    #[error("the root element is not <Response>")]
    NoResponse,
}

/// The `<Message>` verbs of a TwiML answer (an empty answer, or one without
/// `<Response>` content, sends nothing). `<Message>text</Message>` and
/// `<Message><Body>text</Body><Media>url</Media></Message>` are both read; other verbs
/// (`<Redirect>`) are ignored.
pub fn parse_twiml(xml: &str) -> Result<Vec<TwimlMessage>, TwimlError> {
    use quick_xml::events::Event;
    if xml.trim().is_empty() {
        return Ok(Vec::new());
    }
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut out = Vec::new();
    // Element names from the root down.
    let mut path: Vec<String> = Vec::new();
    let mut current: Option<TwimlMessage> = None;
    let mut media: Option<String> = None;
    let mut seen_root = false;
    loop {
        let ev = reader
            .read_event()
            .map_err(|e| TwimlError::Xml(e.to_string()))?;
        match ev {
            // `<Response/>`: nothing to send; an empty element inside is no verb.
            Event::Empty(e) if path.is_empty() => {
                if e.name().as_ref() != b"Response" {
                    return Err(TwimlError::NoResponse);
                }
                seen_root = true;
            }
            Event::Start(e) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                if path.is_empty() {
                    if name != "Response" {
                        return Err(TwimlError::NoResponse);
                    }
                    seen_root = true;
                }
                if path.len() == 1 && name == "Message" {
                    let mut m = TwimlMessage {
                        to: None,
                        from: None,
                        body: String::new(),
                        media: Vec::new(),
                    };
                    for a in e.attributes().flatten() {
                        let v = a
                            .unescape_value()
                            .map_err(|e| TwimlError::Xml(e.to_string()))?
                            .into_owned();
                        match a.key.as_ref() {
                            b"to" => m.to = Some(v),
                            b"from" => m.from = Some(v),
                            _ => {}
                        }
                    }
                    current = Some(m);
                }
                if path.len() == 2 && name == "Media" && current.is_some() {
                    media = Some(String::new());
                }
                path.push(name);
            }
            Event::End(_) => {
                let name = path.pop().unwrap_or_default();
                if path.len() == 1 && name == "Message" {
                    if let Some(mut m) = current.take() {
                        m.body = m.body.trim().to_owned();
                        out.push(m);
                    }
                } else if path.len() == 2
                    && name == "Media"
                    && let (Some(u), Some(m)) = (media.take(), current.as_mut())
                {
                    m.media.push(u.trim().to_owned());
                }
            }
            Event::Text(t) => {
                let text = t
                    .decode()
                    .map_err(|e| TwimlError::Xml(e.to_string()))?
                    .into_owned();
                let text = quick_xml::escape::unescape(&text)
                    .map_err(|e| TwimlError::Xml(e.to_string()))?
                    .into_owned();
                push_text(&path, &mut current, &mut media, &text);
            }
            Event::CData(t) => {
                let text = String::from_utf8_lossy(&t).into_owned();
                push_text(&path, &mut current, &mut media, &text);
            }
            Event::GeneralRef(r) => {
                let name = String::from_utf8_lossy(&r).into_owned();
                let text = match name.as_str() {
                    "amp" => "&".to_owned(),
                    "lt" => "<".to_owned(),
                    "gt" => ">".to_owned(),
                    "quot" => "\"".to_owned(),
                    "apos" => "'".to_owned(),
                    n => r
                        .resolve_char_ref()
                        .ok()
                        .flatten()
                        .map(String::from)
                        .unwrap_or_else(|| format!("&{n};")),
                };
                push_text(&path, &mut current, &mut media, &text);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !seen_root {
        return Err(TwimlError::NoResponse);
    }
    Ok(out)
}

fn push_text(
    path: &[String],
    current: &mut Option<TwimlMessage>,
    media: &mut Option<String>,
    text: &str,
) {
    let Some(m) = current.as_mut() else { return };
    match path {
        [_, msg] if msg == "Message" => m.body.push_str(text),
        [_, _, body] if body == "Body" => m.body.push_str(text),
        [_, _, el] if el == "Media" => {
            if let Some(u) = media.as_mut() {
                u.push_str(text);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sids_map_onto_message_ids_both_ways() {
        let id = MessageId::generate();
        let sid = message_sid(&id, false);
        assert_eq!(sid.len(), 34);
        assert!(sid.starts_with("SM"));
        assert_eq!(parse_message_sid(&sid), Some(id.clone()));
        let mm = message_sid(&id, true);
        assert!(mm.starts_with("MM"));
        assert_eq!(parse_message_sid(&mm), Some(id.clone()));
        assert_eq!(parse_message_sid(&sid.to_uppercase()), Some(id));
        assert_eq!(parse_message_sid("SM123"), None);
        assert_eq!(
            parse_message_sid("AC00000000000000000000000000000000"),
            None
        );
        assert!(is_account_sid("AC0123456789abcdef0123456789abcdef"));
        assert!(!is_account_sid("AC0123"));
        let sk = key_sid("0123456789abcdef", "fedcba9876543210ffff");
        assert_eq!(sk.len(), 34);
        assert_eq!(key_id_of_sid(&sk), Some("0123456789abcdef"));
    }

    #[test]
    fn statuses_and_error_codes_in_twilio_terms() {
        assert_eq!(status_name(Status::Accepted, false, "queued"), "queued");
        assert_eq!(status_name(Status::Accepted, false, "accepted"), "accepted");
        assert_eq!(status_name(Status::Failed, true, "queued"), "undelivered");
        assert_eq!(status_name(Status::Failed, false, "queued"), "failed");
        assert_eq!(status_name(Status::Read, false, "queued"), "read");
        assert_eq!(
            error_code(Status::Rejected, Some("recipient_opted_out"), None, None),
            Some(21610)
        );
        assert_eq!(
            error_code(Status::Failed, None, None, Some("UNDELIV")),
            Some(30003)
        );
        assert_eq!(
            error_code(Status::Failed, None, None, Some("REJECTD")),
            Some(30007)
        );
        assert_eq!(error_code(Status::Delivered, None, None, None), None);
        assert_eq!(error_code(Status::Canceled, None, None, None), None);
    }

    #[test]
    fn dates_are_rfc_2822_like_twilio() {
        assert_eq!(
            rfc2822(1_438_287_151_000),
            "Thu, 30 Jul 2015 20:12:31 +0000"
        );
    }

    #[test]
    fn segments_follow_the_encoding() {
        assert_eq!(segments(&"a".repeat(160)), 1);
        assert_eq!(segments(&"a".repeat(161)), 2);
        assert_eq!(segments(&"é".repeat(70)), 1, "é is in GSM 03.38");
        assert_eq!(segments(&"ж".repeat(71)), 2, "UCS-2: 70, then 67 per part");
    }

    #[test]
    fn form_posts_survive_the_delivery_payload() {
        let f = inbound_form("AC1", "in_abc", "+4917", "+4930", "hi & bye");
        let p = f.to_payload();
        assert_eq!(FormPost::from_payload(&p), Some(f.clone()));
        assert_eq!(FormPost::from_payload("{\"id\":\"evt_1\"}"), None);
        assert!(f.encoded().contains("Body=hi+%26+bye"));
        assert_eq!(f.param("MessageSid"), Some("SMabc"));
    }

    #[test]
    fn twiml_messages_are_read() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<Response><Message>Thanks &amp; see you</Message><Message to="+4911" from="+4922"><Body>Second</Body><Media>https://example.com/a.png</Media></Message><Redirect>https://x</Redirect></Response>"#;
        let m = parse_twiml(xml).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].body, "Thanks & see you");
        assert_eq!(m[1].to.as_deref(), Some("+4911"));
        assert_eq!(m[1].from.as_deref(), Some("+4922"));
        assert_eq!(m[1].body, "Second");
        assert_eq!(m[1].media, vec!["https://example.com/a.png".to_owned()]);
        assert_eq!(parse_twiml("<Response/>").unwrap(), vec![]);
        assert_eq!(parse_twiml("").unwrap(), vec![]);
        assert_eq!(parse_twiml("<Other/>"), Err(TwimlError::NoResponse));
        assert!(parse_twiml("<Response><Message>x</Other></Response>").is_err());
    }
}
