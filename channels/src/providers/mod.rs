//! SMS through HTTP providers (`[[sms.providers]]`): each provider is one folder here
//! and one line in [`providers!`], and implements [`Provider`] — the submit request,
//! its answer, and the provider's callbacks (receipts, inbound). What they share — the
//! HTTP client, the token bucket and window, errors → permanent or transient, health
//! and failover, the webhook routes — is in `connector.rs` and `ingress.rs`. The SMS
//! router sends through them exactly as through SMPP connectors.

mod config;
mod connector;
mod ingress;

pub mod http;
pub mod infobip;
pub mod sinch;
pub mod twilio;
pub mod vonage;

use std::sync::Arc;

use hermod_core::Status;
use hermod_core::ports::{ChannelError, ConfigError, WebhookReply};

pub use config::{FieldMap, GenericHttp, ProviderConfig, SmsSettings};
pub use connector::HttpConnector;
pub use ingress::ProviderIngress;

/// Calls `$then!` with every provider: `Kind, folder, "name", "what it is";`.
macro_rules! providers {
    ($then:ident) => {
        $then! {
            Twilio, twilio, "twilio", "Twilio Messages API (form POST, Basic auth, StatusCallback signed with X-Twilio-Signature).";
            Vonage, vonage, "vonage", "Vonage SMS API (`/sms/json`, receipts and inbound signed with the signature secret).";
            Infobip, infobip, "infobip", "Infobip SMS API (`/sms/2/text/advanced`, `App` API key, notifyUrl reports).";
            Sinch, sinch, "sinch", "Sinch SMS REST (`/xms/v1/{plan}/batches`, bearer token, delivery report callbacks).";
            Http, http, "http", "A generic HTTP upstream described in settings (`[sms.providers.http]`).";
        }
    };
}

macro_rules! provider_kinds {
    ($($kind:ident, $folder:ident, $name:literal, $doc:literal;)+) => {
        /// The providers Hermod has a connector for.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum ProviderKind {
            #[default]
            $(#[doc = $doc] $kind,)+
        }

        impl ProviderKind {
            pub const ALL: &'static [ProviderKind] = &[$(ProviderKind::$kind),+];

            /// Its name in settings and in its webhook path `/v1/webhooks/<name>/{connector}`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ProviderKind::$kind => $name,)+
                }
            }

            /// Where its API is when `base_url` is not set (`None`: it must be set).
            pub fn default_base_url(self) -> Option<&'static str> {
                match self {
                    $(ProviderKind::$kind => $folder::DEFAULT_BASE_URL,)+
                }
            }

            /// The provider's implementation for one connector.
            fn build(self, cfg: &ProviderConfig) -> Result<Arc<dyn Provider>, ConfigError> {
                match self {
                    $(ProviderKind::$kind => Ok(Arc::new($folder::Api::new(cfg)?)),)+
                }
            }
        }
    };
}

providers!(provider_kinds);

/// One message as a provider's request carries it.
#[derive(Clone, Debug)]
pub struct Submit<'a> {
    /// E.164 with `+`.
    pub to: &'a str,
    /// The sender: `+digits`, digits (short code) or alphanumeric; empty = the
    /// provider's default.
    pub from: &'a str,
    pub text: &'a str,
    /// Where its receipts go: Hermod's webhook for this connector, with the message's
    /// reference (and the callback token where the provider signs nothing).
    pub callback: &'a str,
    /// The message's reference (`user_ref`), echoed by the receipts.
    pub reference: String,
    /// Seconds the message may wait for delivery.
    pub validity_secs: Option<i64>,
}

/// The body of a provider request.
#[derive(Clone, Debug)]
pub enum Body {
    Form(Vec<(String, String)>),
    Json(serde_json::Value),
    Raw { content_type: String, body: String },
}

/// A request to a provider's API.
#[derive(Clone, Debug)]
pub struct Call {
    pub method: reqwest::Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub basic: Option<(String, String)>,
    pub body: Body,
}

impl Call {
    pub fn post(url: String, body: Body) -> Call {
        Call {
            method: reqwest::Method::POST,
            url,
            headers: Vec::new(),
            basic: None,
            body,
        }
    }
}

/// What a callback told.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    Receipt(ReceiptEvent),
    Inbound(InboundEvent),
}

/// A delivery report.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceiptEvent {
    /// The provider's id of the message (or part), as its submit answer gave it.
    pub id: String,
    pub status: Status,
    /// The provider's own status word.
    pub raw_status: String,
    pub error: Option<String>,
    /// The recipient, when the report names it (any format; digits are kept).
    pub to: Option<String>,
    /// Our reference, when the report echoes it.
    pub reference: Option<String>,
}

/// A message from a phone to one of our numbers.
#[derive(Clone, Debug, PartialEq)]
pub struct InboundEvent {
    /// The provider's id, when it has one (a redelivery is recognised by it).
    pub id: Option<String>,
    pub from: String,
    pub to: String,
    pub text: String,
    /// Part of a concatenated message the provider did not join.
    pub concat: Option<hermod_core::inbound::Concat>,
}

/// A provider's call to its webhook, as the connector sees it.
pub struct Callback<'a> {
    /// The URL it was posted to, as the provider was given it (its signatures cover it).
    pub url: &'a str,
    pub req: &'a hermod_core::ports::WebhookRequest,
}

impl Callback<'_> {
    /// The body's (or, empty, the query's) form parameters.
    pub fn form(&self) -> Vec<(String, String)> {
        let body = if self.req.body.is_empty() {
            self.req.query.as_bytes()
        } else {
            &self.req.body[..]
        };
        url::form_urlencoded::parse(body).into_owned().collect()
    }

    /// The query's parameters.
    pub fn query(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(self.req.query.as_bytes())
            .into_owned()
            .collect()
    }

    /// The body as JSON, or its form parameters as a JSON object of strings.
    pub fn fields(&self) -> serde_json::Value {
        let ct = self.req.header("content-type").unwrap_or_default();
        if ct.contains("json") || self.req.body.first() == Some(&b'{') {
            serde_json::from_slice(&self.req.body).unwrap_or(serde_json::Value::Null)
        } else {
            serde_json::Value::Object(
                self.form()
                    .into_iter()
                    .map(|(k, v)| (k, serde_json::Value::String(v)))
                    .collect(),
            )
        }
    }

    /// A query parameter.
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

/// Why a callback was not taken.
#[derive(Clone, Debug, PartialEq)]
pub enum Refusal {
    /// Bad or missing signature / credentials: 401.
    Unauthenticated,
    /// Not a callback of this provider: 400.
    Malformed(String),
}

/// One HTTP SMS provider: what its API takes and answers, and what its callbacks say.
pub trait Provider: Send + Sync {
    /// The request that submits `m`.
    fn request(&self, m: &Submit<'_>) -> Result<Call, ChannelError>;
    /// Reads an answer that is neither 429 nor 5xx (those are retried by the
    /// connector): the provider's ids (one per part, or one) and its status word.
    fn answer(&self, status: u16, body: &[u8]) -> Result<(Vec<String>, String), ChannelError>;
    /// Authenticates a callback and reads its events.
    fn callback(&self, cb: &Callback<'_>) -> Result<Vec<Event>, Refusal>;
    /// What a recorded callback is answered with.
    fn reply(&self, _events: &[Event]) -> WebhookReply {
        WebhookReply::json(200, serde_json::json!({"status": "ok"}))
    }
    /// Whether its receipts carry the secret in the callback URL's `token` parameter
    /// (providers that sign nothing).
    fn token_in_callback(&self) -> bool {
        false
    }
    /// Whether its callbacks cannot be authenticated without `webhook_secret` (then a
    /// connector asking for callbacks must have one).
    fn needs_webhook_secret(&self) -> bool {
        self.token_in_callback()
    }
}

/// A permanent error named after the provider and its code.
pub fn permanent(provider: &str, code: impl std::fmt::Display) -> ChannelError {
    ChannelError::Permanent {
        code: format!("{provider}:{code}"),
    }
}

/// A transient error named after the provider and its code.
pub fn transient(provider: &str, code: impl std::fmt::Display) -> ChannelError {
    ChannelError::Transient {
        code: format!("{provider}:{code}"),
        retry_after: None,
    }
}

/// The code the connector gives a throttled request (429 or the provider's own).
pub fn throttled(provider: &str) -> ChannelError {
    ChannelError::Transient {
        code: format!("{provider}:throttled"),
        retry_after: None,
    }
}

/// True for the codes [`throttled`] gives.
pub fn is_throttled(code: &str) -> bool {
    code.ends_with(":throttled")
}

/// A JSON answer, or a permanent `bad_answer` error.
pub fn json_answer(provider: &str, body: &[u8]) -> Result<serde_json::Value, ChannelError> {
    serde_json::from_slice(body).map_err(|_| permanent(provider, "bad_answer"))
}

/// The field as a string (JSON strings as they are, numbers written out).
pub fn text_of(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A named form parameter.
pub fn param<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Digits of a phone number (`+44 7911…` → `447911…`); non-numbers as they are.
pub fn digits(s: &str) -> String {
    let t = s.trim().trim_start_matches('+');
    if t.bytes()
        .all(|b| b.is_ascii_digit() || b == b' ' || b == b'-')
    {
        t.chars().filter(char::is_ascii_digit).collect()
    } else {
        t.to_owned()
    }
}
