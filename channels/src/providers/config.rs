//! `[[sms.providers]]`, as it appears in `hermod.toml`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use hermod_core::Secret;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ProviderKind;

/// `[sms]`: SMS through HTTP providers, beside the SMPP connectors of `[smpp]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SmsSettings {
    /// HTTP SMS providers (`[[sms.providers]]`). Routes (`[[smpp.routes]]`) name them
    /// like SMPP connectors.
    pub providers: Vec<ProviderConfig>,
}

/// One account with an HTTP SMS provider.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ProviderConfig {
    /// Its name in routes, metrics, `GET /v1/connectors` and its webhook path
    /// `/v1/webhooks/<kind>/<name>`: 1 to 32 letters, digits, `-` or `_`; unique
    /// among `[[smpp.connectors]]` and `[[sms.providers]]`.
    pub name: String,
    /// `twilio`, `vonage`, `infobip`, `sinch` or `http` (generic, `[sms.providers.http]`).
    pub kind: ProviderKind,
    /// The provider's API base URL. Defaults: Twilio `https://api.twilio.com`, Vonage
    /// `https://rest.nexmo.com`, Sinch `https://us.sms.api.sinch.com`; Infobip (your
    /// account's `https://xxxxx.api.infobip.com`) and `http` must set it.
    pub base_url: Option<String>,
    /// Twilio: the Account SID. Vonage: the API key. Sinch: the service plan id.
    pub account: String,
    /// Twilio: the auth token. Vonage: the API secret. Infobip: the API key. Sinch: the
    /// API token. `http`: `{{token}}` in the request template.
    pub token: Secret,
    /// Vonage: the signature secret its receipts and inbound messages are signed
    /// with. Infobip, Sinch and `http`: the secret their callbacks must carry (Infobip
    /// and `http` as `?token=`, Sinch as Basic auth password). Twilio signs with the
    /// auth token.
    pub webhook_secret: Secret,
    /// Vonage: the signature method set in its dashboard, `sha256` or `sha512` (HMAC).
    pub signature_method: String,
    /// Hermod's public base URL as the provider reaches it (`https://hermod.example.com`):
    /// receipt callbacks go to `<public_url>/v1/webhooks/<kind>/<name>`. Unset: no
    /// receipt is asked for (messages stay `sent`).
    pub public_url: Option<String>,
    /// Sender when a message names none (else `smpp.default_source`).
    pub default_source: Option<String>,
    /// Messages per second this account may send; 0 = unlimited.
    pub tps: f64,
    /// Requests in flight at once.
    pub window: usize,
    /// Seconds to wait for an answer; after that the outcome is in doubt.
    pub timeout_secs: u64,
    /// Failed requests in a row after which routing avoids it for `failure_cooldown_secs`.
    pub failure_threshold: u32,
    /// Seconds routing avoids it after `failure_threshold` failures.
    pub failure_cooldown_secs: u64,
    /// PEM roots the provider's certificate must chain to; the webpki roots when unset.
    pub ca_file: Option<PathBuf>,
    /// `kind = "http"`: the request and callbacks, described.
    pub http: Option<GenericHttp>,
}

impl Default for ProviderConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            kind: ProviderKind::default(),
            base_url: None,
            account: String::new(),
            token: Secret::default(),
            webhook_secret: Secret::default(),
            signature_method: "sha256".into(),
            public_url: None,
            default_source: None,
            tps: 0.0,
            window: 16,
            timeout_secs: 10,
            failure_threshold: 5,
            failure_cooldown_secs: 30,
            ca_file: None,
            http: None,
        }
    }
}

impl ProviderConfig {
    /// The API base URL, without a trailing `/`.
    pub fn base(&self) -> Option<String> {
        self.base_url
            .clone()
            .or_else(|| self.kind.default_base_url().map(str::to_owned))
            .map(|u| u.trim_end_matches('/').to_owned())
    }
}

/// `[sms.providers.http]`: a provider without a built-in connector. Templates replace
/// `{{to}}` (E.164 with `+`), `{{to_digits}}`, `{{from}}`, `{{text}}`,
/// `{{callback_url}}`, `{{reference}}`, `{{account}}`, `{{token}}` and
/// `{{base_url}}`; in a JSON body each is written as JSON string content, in a form
/// body and the URL percent-encoded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct GenericHttp {
    /// `POST` (default), `PUT` or `GET`.
    pub method: String,
    /// The request URL (a template), e.g. `{{base_url}}/v1/sms`.
    pub url: String,
    /// `application/json` (default) or `application/x-www-form-urlencoded`.
    pub content_type: String,
    /// The request body (a template).
    pub body: String,
    /// Request headers (templates), e.g. `Authorization = "Bearer {{token}}"`.
    pub headers: BTreeMap<String, String>,
    /// JSON pointer to the provider's message id in a 2xx answer, e.g. `/messages/0/id`.
    pub id_pointer: String,
    /// Answer statuses (besides 429 and 5xx, always retried) that mean "try again
    /// later"; any other non-2xx is a permanent failure.
    pub transient_statuses: Vec<u16>,
    /// How a receipt callback is read.
    pub receipt: FieldMap,
    /// How an inbound message callback is read.
    pub inbound: FieldMap,
    /// Provider status words that mean delivered, failed, expired, rejected (any other
    /// is `sent`); compared without regard to case.
    pub delivered: Vec<String>,
    /// Status words that mean failed.
    pub failed: Vec<String>,
    /// Status words that mean expired.
    pub expired: Vec<String>,
    /// Status words that mean rejected.
    pub rejected: Vec<String>,
}

impl Default for GenericHttp {
    fn default() -> Self {
        Self {
            method: "POST".into(),
            url: String::new(),
            content_type: "application/json".into(),
            body: String::new(),
            headers: BTreeMap::new(),
            id_pointer: "/id".into(),
            transient_statuses: vec![408],
            receipt: FieldMap {
                id: "/id".into(),
                status: "/status".into(),
                to: "/to".into(),
                reference: "/reference".into(),
                error: "/error".into(),
                ..FieldMap::default()
            },
            inbound: FieldMap {
                id: "/id".into(),
                from: "/from".into(),
                to: "/to".into(),
                text: "/text".into(),
                ..FieldMap::default()
            },
            delivered: vec!["delivered".into()],
            failed: vec!["failed".into(), "undelivered".into()],
            expired: vec!["expired".into()],
            rejected: vec!["rejected".into()],
        }
    }
}

/// Where a callback's fields are: JSON pointers into a JSON body, or `/name` for a
/// form parameter. A callback with the receipt's `status` is a receipt; one with the
/// inbound `text` is an inbound message.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct FieldMap {
    /// The provider's message id (a receipt's: the id its submit answer gave).
    pub id: String,
    /// A receipt's status word.
    pub status: String,
    /// The recipient (receipts) or our number (inbound).
    pub to: String,
    /// The sender of an inbound message.
    pub from: String,
    /// An inbound message's text.
    pub text: String,
    /// Our reference (`{{reference}}`) a receipt echoes; without it, the callback URL's `ref`.
    pub reference: String,
    /// A receipt's error code.
    pub error: String,
}
