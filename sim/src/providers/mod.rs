//! Simulators of the HTTP SMS providers' public APIs, written from their reference
//! documentation (not from Hermod's connectors): Twilio's Messages API, Vonage's SMS
//! API, Infobip's SMS API, Sinch's SMS REST API and a plain JSON "generic" provider.
//! Each checks its own authentication, validates requests and answers with the
//! provider's own success and error bodies, then sends delivery receipts to the
//! callback URL the request named — signed (Twilio `X-Twilio-Signature`, Vonage `sig`)
//! or authenticated (Sinch Basic credentials from the callback URL, Infobip and the
//! generic provider a token in the URL) the way the provider does. Inbound messages
//! are injected with [`ProviderSim::inbound`] (or `POST /sim/inbound`).
//!
//! A destination ending in `undeliverable_suffix` gets a failure receipt from every
//! provider.
//!
//! Failure modes per provider ([`Mode`]): answering 503, answering 429 with
//! `Retry-After`, or holding requests unanswered.

mod generic;
mod infobip;
mod sinch;
mod twilio;
mod vonage;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Credentials and timing of the simulated accounts.
#[derive(Clone, Debug)]
pub struct ProviderSimConfig {
    /// Twilio Account SID and auth token.
    pub twilio_sid: String,
    pub twilio_token: String,
    /// Vonage API key, secret and signature secret (HMAC-SHA256 signatures).
    pub vonage_key: String,
    pub vonage_secret: String,
    pub vonage_signature_secret: String,
    /// Infobip API key.
    pub infobip_key: String,
    /// Sinch service plan id and API token.
    pub sinch_plan: String,
    pub sinch_token: String,
    /// The generic provider's bearer token.
    pub generic_token: String,
    /// From accept to the delivery receipt.
    pub receipt_delay: Duration,
    /// Destinations ending in this get a failure receipt from every provider (none:
    /// every destination is delivered).
    pub undeliverable_suffix: Option<String>,
}

impl ProviderSimConfig {
    /// Whether a destination gets a failure receipt.
    pub fn undeliverable(&self, to: &str) -> bool {
        self.undeliverable_suffix
            .as_deref()
            .is_some_and(|s| !s.is_empty() && to.ends_with(s))
    }
}

impl Default for ProviderSimConfig {
    fn default() -> Self {
        Self {
            twilio_sid: "AC00000000000000000000000000000001".into(),
            twilio_token: "twilio-auth-token".into(),
            vonage_key: "vonagekey".into(),
            vonage_secret: "vonagesecret".into(),
            vonage_signature_secret: "vonage-signature-secret".into(),
            infobip_key: "infobip-api-key".into(),
            sinch_plan: "sinchplan".into(),
            sinch_token: "sinch-api-token".into(),
            generic_token: "generic-token".into(),
            receipt_delay: Duration::from_millis(50),
            undeliverable_suffix: None,
        }
    }
}

/// How a provider answers submits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Ok,
    /// `503 Service Unavailable`.
    Unavailable,
    /// `429 Too Many Requests` with `Retry-After: 1`.
    Throttle,
    /// Holds the request without answering (the client's timeout decides).
    Hang,
    /// Takes the message (and sends its receipts), but answers only after 3 s: a
    /// client with a shorter timeout does not know it was sent.
    SlowAnswer,
}

/// A message a provider accepted.
#[derive(Clone, Debug, Serialize)]
pub struct Accepted {
    pub provider: &'static str,
    pub id: String,
    pub to: String,
    pub from: String,
    pub text: String,
}

/// A callback the simulator sent, as sent.
#[derive(Clone, Debug, Serialize)]
pub struct SentCallback {
    pub provider: &'static str,
    pub url: String,
    /// Form parameters (form callbacks).
    pub params: Vec<(String, String)>,
    /// The JSON body (JSON callbacks).
    pub body: Option<serde_json::Value>,
    /// The signature header or parameter, when the provider signs.
    pub signature: Option<String>,
    /// The HTTP status Hermod answered.
    pub answered: u16,
}

#[derive(Default)]
struct State {
    accepted: Vec<Accepted>,
    callbacks: Vec<SentCallback>,
    modes: HashMap<String, Mode>,
    requests: HashMap<String, u64>,
}

pub(crate) struct Inner {
    cfg: ProviderSimConfig,
    state: Mutex<State>,
    http: reqwest::Client,
}

impl Inner {
    /// Counts the request; the provider's mode decides whether it is served.
    async fn gate(&self, provider: &str) -> Option<HttpResponse> {
        let mode = {
            let Ok(mut s) = self.state.lock() else {
                return Some(HttpResponse::InternalServerError().finish());
            };
            *s.requests.entry(provider.to_owned()).or_default() += 1;
            s.modes.get(provider).copied().unwrap_or_default()
        };
        match mode {
            Mode::Ok | Mode::SlowAnswer => None,
            Mode::Unavailable => Some(
                HttpResponse::ServiceUnavailable()
                    .content_type("application/json")
                    .body(r#"{"error":"service unavailable"}"#),
            ),
            Mode::Throttle => Some(
                HttpResponse::TooManyRequests()
                    .insert_header(("Retry-After", "1"))
                    .content_type("application/json")
                    .body(r#"{"error":"too many requests"}"#),
            ),
            Mode::Hang => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Some(HttpResponse::GatewayTimeout().finish())
            }
        }
    }

    /// Before a served request is answered: [`Mode::SlowAnswer`] waits here.
    async fn before_answer(&self, provider: &str) {
        let slow = self
            .state
            .lock()
            .map(|s| s.modes.get(provider) == Some(&Mode::SlowAnswer))
            .unwrap_or(false);
        if slow {
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
    }

    fn accept(&self, a: Accepted) {
        if let Ok(mut s) = self.state.lock() {
            s.accepted.push(a);
        }
    }

    fn log(&self, c: SentCallback) {
        if let Ok(mut s) = self.state.lock() {
            s.callbacks.push(c);
        }
    }

    /// POSTs a form callback; returns Hermod's status.
    async fn post_form(
        &self,
        url: &str,
        params: &[(String, String)],
        headers: &[(&str, String)],
    ) -> u16 {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        let mut rb = self
            .http
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        for (k, v) in headers {
            rb = rb.header(*k, v);
        }
        send(rb).await
    }

    /// POSTs a JSON callback and logs it; returns Hermod's status.
    async fn callback_json(
        &self,
        provider: &'static str,
        url: &str,
        body: serde_json::Value,
        signature: Option<String>,
    ) -> u16 {
        let answered = self.post_json(url, &body).await;
        self.log(SentCallback {
            provider,
            url: url.to_owned(),
            params: Vec::new(),
            body: Some(body),
            signature,
            answered,
        });
        answered
    }

    /// POSTs a JSON callback (Basic credentials in the URL become the header).
    async fn post_json(&self, url: &str, body: &serde_json::Value) -> u16 {
        let Ok(mut u) = url::Url::parse(url) else {
            return 0;
        };
        let user = u.username().to_owned();
        let pass = u.password().map(str::to_owned);
        let _ = u.set_username("");
        let _ = u.set_password(None);
        let mut rb = self.http.post(u.as_str()).json(body);
        if !user.is_empty() {
            rb = rb.basic_auth(user, pass);
        }
        send(rb).await
    }
}

/// Sends a callback, retrying a few times while the receiver fails (as providers do).
async fn send(rb: reqwest::RequestBuilder) -> u16 {
    let mut last = 0;
    for i in 0..5u32 {
        let Some(req) = rb.try_clone() else {
            return 0;
        };
        match req.send().await {
            Ok(r) if r.status().is_success() => return r.status().as_u16(),
            Ok(r) if r.status().is_client_error() => return r.status().as_u16(),
            Ok(r) => last = r.status().as_u16(),
            Err(_) => last = 0,
        }
        tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(i))).await;
    }
    last
}

/// A random id of `n` bytes, as lower-case hex.
pub(crate) fn hex_id(n: usize) -> String {
    (0..n)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

/// E.164 with `+`: 8 to 15 digits.
pub(crate) fn e164(s: &str) -> bool {
    s.strip_prefix('+')
        .is_some_and(|d| (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}

/// A running simulator of every provider.
pub struct ProviderSim {
    inner: Arc<Inner>,
    addr: SocketAddr,
    handle: actix_web::dev::ServerHandle,
}

impl ProviderSim {
    /// Starts on `addr` (port 0 = any).
    pub fn start(cfg: ProviderSimConfig, addr: SocketAddr) -> std::io::Result<ProviderSim> {
        hermod_crypto::install_tls_provider();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(std::io::Error::other)?;
        let inner = Arc::new(Inner {
            cfg,
            state: Mutex::new(State::default()),
            http,
        });
        let data = web::Data::from(inner.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::default().limit(1 << 20))
                .route(
                    "/2010-04-01/Accounts/{sid}/Messages.json",
                    web::post().to(twilio::create),
                )
                .route("/sms/json", web::post().to(vonage::send))
                .route("/sms/2/text/advanced", web::post().to(infobip::send))
                .route("/xms/v1/{plan}/batches", web::post().to(sinch::batch))
                .route("/generic/messages", web::post().to(generic::send))
                .route("/sim/inbound", web::post().to(inbound_http))
                .route("/sim/mode", web::post().to(mode_http))
                .route("/sim/messages", web::get().to(messages_http))
        })
        .workers(2)
        .disable_signals()
        .shutdown_timeout(1)
        .bind(addr)?;
        let addr = server.addrs().first().copied().unwrap_or(addr);
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Ok(ProviderSim {
            inner,
            addr,
            handle,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`: every provider's `base_url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn config(&self) -> &ProviderSimConfig {
        &self.inner.cfg
    }

    /// How `provider` (`twilio`, `vonage`, `infobip`, `sinch`, `generic`) answers.
    pub fn set_mode(&self, provider: &str, mode: Mode) {
        if let Ok(mut s) = self.inner.state.lock() {
            s.modes.insert(provider.to_owned(), mode);
        }
    }

    /// Messages accepted so far.
    pub fn accepted(&self) -> Vec<Accepted> {
        self.inner
            .state
            .lock()
            .map(|s| s.accepted.clone())
            .unwrap_or_default()
    }

    /// How many messages were accepted so far.
    pub fn accepted_count(&self) -> usize {
        self.inner
            .state
            .lock()
            .map(|s| s.accepted.len())
            .unwrap_or_default()
    }

    /// Submit requests `provider` has seen (served or not).
    pub fn requests(&self, provider: &str) -> u64 {
        self.inner
            .state
            .lock()
            .map(|s| s.requests.get(provider).copied().unwrap_or_default())
            .unwrap_or_default()
    }

    /// Callbacks sent so far.
    pub fn callbacks(&self) -> Vec<SentCallback> {
        self.inner
            .state
            .lock()
            .map(|s| s.callbacks.clone())
            .unwrap_or_default()
    }

    /// A phone sends `text` from `from` to our number `to`; the provider posts it to
    /// `url` in its own format. Returns Hermod's HTTP status.
    pub async fn inbound(
        &self,
        provider: &str,
        url: &str,
        from: &str,
        to: &str,
        text: &str,
    ) -> u16 {
        inbound(&self.inner, provider, url, from, to, text).await
    }

    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }
}

async fn inbound(
    inner: &Inner,
    provider: &str,
    url: &str,
    from: &str,
    to: &str,
    text: &str,
) -> u16 {
    match provider {
        "twilio" => twilio::inbound(inner, url, from, to, text).await,
        "vonage" => vonage::inbound(inner, url, from, to, text).await,
        "infobip" => infobip::inbound(inner, url, from, to, text).await,
        "sinch" => sinch::inbound(inner, url, from, to, text).await,
        "generic" => generic::inbound(inner, url, from, to, text).await,
        _ => 0,
    }
}

#[derive(Deserialize)]
struct InboundReq {
    provider: String,
    url: String,
    from: String,
    to: String,
    text: String,
}

async fn inbound_http(inner: web::Data<Inner>, body: web::Json<InboundReq>) -> HttpResponse {
    let b = body.into_inner();
    let answered = inbound(&inner, &b.provider, &b.url, &b.from, &b.to, &b.text).await;
    HttpResponse::Ok().json(json!({ "answered": answered }))
}

#[derive(Deserialize)]
struct ModeReq {
    provider: String,
    mode: Mode,
}

async fn mode_http(inner: web::Data<Inner>, body: web::Json<ModeReq>) -> HttpResponse {
    if let Ok(mut s) = inner.state.lock() {
        s.modes.insert(body.provider.clone(), body.mode);
    }
    HttpResponse::NoContent().finish()
}

async fn messages_http(inner: web::Data<Inner>) -> HttpResponse {
    let list = inner
        .state
        .lock()
        .map(|s| s.accepted.clone())
        .unwrap_or_default();
    HttpResponse::Ok().json(json!({ "messages": list }))
}

/// The request's `Authorization` header.
pub(crate) fn authorization(req: &HttpRequest) -> &str {
    req.headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// Basic credentials of a request.
pub(crate) fn basic(req: &HttpRequest) -> Option<(String, String)> {
    use base64::Engine;
    let b64 = authorization(req).strip_prefix("Basic ")?;
    let raw = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (u, p) = s.split_once(':')?;
    Some((u.to_owned(), p.to_owned()))
}

/// Form parameters of a body.
pub(crate) fn form(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

pub(crate) fn param<'a>(f: &'a [(String, String)], k: &str) -> Option<&'a str> {
    f.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

/// GSM 03.38 text goes in 160/153-character parts, other text in 70/67.
pub(crate) fn segments(text: &str) -> usize {
    hermod_core::gsm::segment(text).parts.len().max(1)
}
