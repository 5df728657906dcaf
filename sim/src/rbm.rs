//! An RBM API v1 simulator, written from Google's public reference (not from our
//! client): the OAuth token endpoint (RS256 JWT bearer grant), `phones.getCapabilities`,
//! `users.batchGet`, `phones.agentMessages.create` with RBM's validation errors, revoke
//! (`delete`), devices that are offline for a while, TTL expiry, and signed Pub/Sub
//! push events to the agent's webhook after configurable delays: DELIVERED, READ and
//! TTL_EXPIRATION_REVOKED about agent messages; user messages, each after an IS_TYPING
//! as a phone sends it; SUBSCRIBE / UNSUBSCRIBE; AgentLaunchEvents (told apart by
//! `message.attributes.type = agent_launch_event`). Only DELIVERED, READ and the server
//! events carry a `messageId`, as in the reference.
//!
//! Admin endpoints for `hermod sim rbm`: `POST /sim/devices {phone, features?,
//! online?}`, `POST /sim/users/{phone}/messages {text? | postback_data+text? |
//! latitude+longitude?}`, `POST /sim/users/{phone}/events {type: IS_TYPING | SUBSCRIBE |
//! UNSUBSCRIBE}`, `POST /sim/launch {region, old, new}`, `GET /sim/messages`,
//! `GET /sim/stats`.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

/// The OAuth scope a token must carry (Google's RBM documentation).
const SCOPE: &str = "https://www.googleapis.com/auth/rcsbusinessmessaging";

/// Every feature a capable device reports.
pub const ALL_FEATURES: [&str; 7] = [
    "RICHCARD_STANDALONE",
    "RICHCARD_CAROUSEL",
    "ACTION_CREATE_CALENDAR_EVENT",
    "ACTION_DIAL",
    "ACTION_OPEN_URL",
    "ACTION_SHARE_LOCATION",
    "ACTION_VIEW_LOCATION",
];

/// Simulator settings.
#[derive(Clone, Debug)]
pub struct RbmSimConfig {
    pub agent_id: String,
    /// The service account allowed to get tokens, and its public key (DER).
    pub client_email: String,
    pub public_key_der: Vec<u8>,
    /// Where events go (the agent's webhook); none = no events.
    pub webhook_url: Option<String>,
    /// The clientToken events are signed with.
    pub client_token: String,
    /// From accept to DELIVERED (devices online).
    pub delivery_delay: Duration,
    /// From DELIVERED to READ; none = never read.
    pub read_delay: Option<Duration>,
    /// Life of issued access tokens.
    pub token_ttl: Duration,
    /// Every number is reachable with every feature unless registered otherwise.
    pub all_reachable: bool,
    /// Serve HTTPS (rustls) instead of HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// How revokes are answered. `false`, the delete reference: 200 = revoked (the
    /// message is never delivered), 404 = already delivered. `true`, the revoke guide:
    /// 200 whatever the state, without confirming; a pending message is still
    /// delivered when its device comes online.
    pub revoke_unconfirmed: bool,
    /// A multi-use agent: every message must carry a `messageTrafficType` other than
    /// `MESSAGE_TRAFFIC_TYPE_UNSPECIFIED` (agents of one use case default to theirs).
    pub multi_use: bool,
}

impl RbmSimConfig {
    /// A simulator that trusts this service-account key.
    pub fn new(
        agent_id: &str,
        client_email: &str,
        key_pem: &str,
    ) -> Result<Self, hermod_crypto::rbm::JwtError> {
        let key = hermod_crypto::rbm::ServiceAccountKey::from_pem(key_pem)?;
        Ok(Self {
            agent_id: agent_id.to_owned(),
            client_email: client_email.to_owned(),
            public_key_der: key.public_key_der(),
            webhook_url: None,
            client_token: "sim-client-token".into(),
            delivery_delay: Duration::from_millis(200),
            read_delay: Some(Duration::from_millis(500)),
            token_ttl: Duration::from_secs(3600),
            all_reachable: false,
            tls: None,
            revoke_unconfirmed: false,
            multi_use: false,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimState {
    Pending,
    Delivered,
    Read,
    Revoked,
    Expired,
}

struct Device {
    features: Vec<String>,
    online: bool,
}

struct SimMessage {
    phone: String,
    state: SimState,
    expires_at: Option<Instant>,
}

#[derive(Default)]
struct State {
    tokens: HashMap<String, Instant>,
    token_requests: u64,
    capability_requests: u64,
    batch_requests: u64,
    devices: HashMap<String, Device>,
    messages: HashMap<String, SimMessage>,
    /// `(phone, messageId, AgentMessage)` in arrival order.
    received: Vec<(String, String, Value)>,
    /// Status codes the next agentMessages calls answer with, in order.
    fail_next: VecDeque<u16>,
    /// Status codes the next users:batchGet calls answer with, in order.
    fail_next_batch: VecDeque<u16>,
    /// The messages users sent: messageId → phone.
    user_messages: HashMap<String, String>,
    /// Agent events received, `(phone, event)` in arrival order.
    agent_events: Vec<(String, Value)>,
    /// Files uploaded with files.create: RBM name → fileUrl.
    files: HashMap<String, String>,
    events_sent: u64,
}

struct Inner {
    cfg: RbmSimConfig,
    state: Mutex<State>,
    http: reqwest::Client,
}

/// A running simulator; cheap to clone.
#[derive(Clone)]
pub struct RbmSim {
    inner: Arc<Inner>,
    addr: SocketAddr,
    handle: actix_web::dev::ServerHandle,
    scheme: &'static str,
}

fn lock(i: &Inner) -> std::sync::MutexGuard<'_, State> {
    i.state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn google_error(status: u16, reason: &str, message: &str) -> HttpResponse {
    HttpResponse::build(
        actix_web::http::StatusCode::from_u16(status)
            .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST),
    )
    .json(json!({"error": {"code": status, "message": message, "status": reason}}))
}

fn rfc3339_now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn random_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

impl RbmSim {
    /// Starts on `addr` (port 0 = any).
    pub fn start(cfg: RbmSimConfig, addr: SocketAddr) -> std::io::Result<RbmSim> {
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
                .app_data(web::JsonConfig::default().limit(1 << 20))
                .route("/token", web::post().to(token))
                .route(
                    "/v1/phones/{phone}/capabilities",
                    web::get().to(capabilities),
                )
                .route("/v1/users:batchGet", web::post().to(batch_get))
                .route("/v1/phones/{phone}/agentMessages", web::post().to(create))
                .route(
                    "/v1/phones/{phone}/agentMessages/{id}",
                    web::delete().to(revoke),
                )
                .route(
                    "/v1/phones/{phone}/agentEvents",
                    web::post().to(agent_event),
                )
                .route("/v1/files", web::post().to(create_file))
                .route("/sim/devices", web::post().to(add_device_http))
                .route(
                    "/sim/users/{phone}/messages",
                    web::post().to(user_message_http),
                )
                .route("/sim/users/{phone}/events", web::post().to(user_event_http))
                .route("/sim/launch", web::post().to(launch_http))
                .route("/sim/messages", web::get().to(messages_http))
                .route("/sim/stats", web::get().to(stats_http))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1);
        let tls = inner.cfg.tls.is_some();
        let server = match &inner.cfg.tls {
            Some(t) => server.bind_rustls_0_23(addr, (**t).clone())?,
            None => server.bind(addr)?,
        };
        let addr = server.addrs().first().copied().unwrap_or(addr);
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Ok(RbmSim {
            inner,
            addr,
            handle,
            scheme: if tls { "https" } else { "http" },
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http(s)://127.0.0.1:port`: the agent's `base_url`.
    pub fn base_url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// The token endpoint: the agent's `token_uri`.
    pub fn token_uri(&self) -> String {
        format!("{}/token", self.base_url())
    }

    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }

    /// Registers an RCS-capable device (all features when `features` is None).
    pub fn add_device(&self, phone: &str, features: Option<&[&str]>, online: bool) {
        let features = features
            .unwrap_or(&ALL_FEATURES)
            .iter()
            .map(|f| (*f).to_owned())
            .collect();
        lock(&self.inner)
            .devices
            .insert(phone.to_owned(), Device { features, online });
    }

    /// Brings a device on or off line; pending messages reach it once online.
    pub fn set_online(&self, phone: &str, online: bool) {
        if let Some(d) = lock(&self.inner).devices.get_mut(phone) {
            d.online = online;
        }
    }

    /// The next agentMessages calls answer with these statuses (429, 503 ...).
    pub fn fail_next(&self, statuses: &[u16]) {
        lock(&self.inner).fail_next.extend(statuses);
    }

    /// The next users:batchGet calls answer with these statuses (503 ...).
    pub fn fail_next_batch(&self, statuses: &[u16]) {
        lock(&self.inner).fail_next_batch.extend(statuses);
    }

    /// Files uploaded with `files.create`: `(RBM name, fileUrl)`.
    pub fn files(&self) -> Vec<(String, String)> {
        lock(&self.inner)
            .files
            .iter()
            .map(|(n, u)| (n.clone(), u.clone()))
            .collect()
    }

    /// Every accepted agent event: `(phone, {"eventType", "messageId"?})`.
    pub fn agent_events(&self) -> Vec<(String, Value)> {
        lock(&self.inner).agent_events.clone()
    }

    /// Every accepted `(phone, messageId, AgentMessage)`.
    pub fn received(&self) -> Vec<(String, String, Value)> {
        lock(&self.inner).received.clone()
    }

    pub fn message_state(&self, message_id: &str) -> Option<SimState> {
        lock(&self.inner).messages.get(message_id).map(|m| m.state)
    }

    /// Marks a message delivered now (and sends DELIVERED), as a device would.
    pub fn deliver_now(&self, message_id: &str) {
        let inner = self.inner.clone();
        let id = message_id.to_owned();
        tokio::spawn(async move { deliver(inner, id, true).await });
    }

    pub fn token_requests(&self) -> u64 {
        lock(&self.inner).token_requests
    }
    pub fn capability_requests(&self) -> u64 {
        lock(&self.inner).capability_requests
    }
    pub fn batch_requests(&self) -> u64 {
        lock(&self.inner).batch_requests
    }
    pub fn events_sent(&self) -> u64 {
        lock(&self.inner).events_sent
    }

    /// A user writes to the agent (text, or a tapped suggestion when `postback` is
    /// set); the event goes to the webhook.
    pub fn user_message(&self, phone: &str, text: &str, postback: Option<&str>) {
        let what = match postback {
            Some(p) => {
                json!({"suggestionResponse": {"postbackData": p, "text": text, "type": "REPLY"}})
            }
            None => json!({ "text": text }),
        };
        user_says(self.inner.clone(), phone, what);
    }

    /// A user shares a location.
    pub fn user_location(&self, phone: &str, latitude: f64, longitude: f64) {
        user_says(
            self.inner.clone(),
            phone,
            json!({"location": {"latitude": latitude, "longitude": longitude}}),
        );
    }

    /// The user's phone sends an event without a message: IS_TYPING, SUBSCRIBE or
    /// UNSUBSCRIBE.
    pub fn user_event(&self, phone: &str, kind: &str) {
        let ev = bare_user_event(&self.inner, phone, kind);
        let inner = self.inner.clone();
        tokio::spawn(async move { push(&inner, &ev).await });
    }

    /// RBM tells the agent its launch state changed in `region` (e.g. `fi-rcs`).
    pub fn agent_launch(&self, region: &str, old: &str, new: &str) {
        let inner = self.inner.clone();
        let (ev, attributes) = launch_event(&inner.cfg, region, old, new);
        tokio::spawn(async move { push_with(&inner, &ev, attributes).await });
    }

    /// The signed Pub/Sub push request the simulator would send for `event`:
    /// `(body, X-Goog-Signature)`.
    pub fn signed_envelope(&self, event: &Value) -> (String, String) {
        envelope(&self.inner.cfg, event)
    }
}

/// Pushes a user message event: the common fields plus `what` (`text`,
/// `suggestionResponse` or `location`).
fn user_says(inner: Arc<Inner>, phone: &str, what: Value) {
    let id = random_id();
    lock(&inner)
        .user_messages
        .insert(id.clone(), phone.to_owned());
    let mut ev = json!({
        "senderPhoneNumber": phone,
        "messageId": id,
        "sendTime": rfc3339_now(),
        "agentId": inner.cfg.agent_id,
    });
    if let (Some(ev), Value::Object(what)) = (ev.as_object_mut(), what) {
        ev.extend(what);
    }
    // A phone says it is typing before it sends.
    let typing = bare_user_event(&inner, phone, "IS_TYPING");
    tokio::spawn(async move {
        push(&inner, &typing).await;
        push(&inner, &ev).await;
    });
}

/// A user event about no message (IS_TYPING, SUBSCRIBE, UNSUBSCRIBE): no `messageId`.
fn bare_user_event(inner: &Inner, phone: &str, kind: &str) -> Value {
    json!({
        "senderPhoneNumber": phone,
        "eventType": kind,
        "eventId": random_id(),
        "sendTime": rfc3339_now(),
        "agentId": inner.cfg.agent_id,
    })
}

/// An AgentLaunchEvent and the attributes of its Pub/Sub message.
fn launch_event(cfg: &RbmSimConfig, region: &str, old: &str, new: &str) -> (Value, Value) {
    (
        json!({
            "eventId": random_id(),
            "agentId": cfg.agent_id,
            "botDisplayName": "Simulated agent",
            "brandId": "brands/sim",
            "brandDisplayName": "Sim brand",
            "regionId": format!("/v1/regions/{region}"),
            "oldLaunchState": old,
            "newLaunchState": new,
            "actingParty": "carrier",
            "comment": "",
            "sendTime": rfc3339_now(),
        }),
        json!({
            "business_id": cfg.agent_id,
            "event_type": new,
            "product": "RBM",
            "project_number": "0",
            "type": "agent_launch_event",
        }),
    )
}

fn envelope(cfg: &RbmSimConfig, event: &Value) -> (String, String) {
    envelope_with(cfg, event, json!({}))
}

fn envelope_with(cfg: &RbmSimConfig, event: &Value, attributes: Value) -> (String, String) {
    let data = event.to_string();
    let sig = hermod_crypto::rbm::sign_webhook(&cfg.client_token, data.as_bytes());
    let body = json!({
        "message": {
            "data": STANDARD.encode(data.as_bytes()),
            "messageId": random_id(),
            "publishTime": rfc3339_now(),
            "attributes": attributes,
        },
        "subscription": "projects/rbm-sim/subscriptions/rbm-agent-subscription",
    });
    (body.to_string(), sig)
}

/// POSTs one event to the webhook, retrying like Pub/Sub (with backoff) on errors.
async fn push(inner: &Inner, event: &Value) {
    push_with(inner, event, json!({})).await;
}

async fn push_with(inner: &Inner, event: &Value, attributes: Value) {
    let Some(url) = &inner.cfg.webhook_url else {
        return;
    };
    let (body, sig) = envelope_with(&inner.cfg, event, attributes);
    let mut wait = Duration::from_millis(100);
    for _ in 0..8 {
        let r = inner
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("X-Goog-Signature", &sig)
            .body(body.clone())
            .send()
            .await;
        if r.is_ok_and(|r| r.status().is_success()) {
            lock(inner).events_sent += 1;
            return;
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(5));
    }
    tracing::warn!("rbm sim: webhook did not accept an event");
}

fn user_event(inner: &Inner, phone: &str, kind: &str, message_id: &str) -> Value {
    json!({
        "senderPhoneNumber": phone,
        "eventType": kind,
        "eventId": random_id(),
        "messageId": message_id,
        "sendTime": rfc3339_now(),
        "agentId": inner.cfg.agent_id,
    })
}

/// Delivers a pending message once its device is online (or expires it), then reads
/// it after the read delay.
async fn deliver(inner: Arc<Inner>, id: String, now: bool) {
    if !now {
        tokio::time::sleep(inner.cfg.delivery_delay).await;
    }
    let phone = loop {
        let outcome = {
            let mut st = lock(&inner);
            let online = |st: &State, p: &str| {
                inner.cfg.all_reachable && !st.devices.contains_key(p)
                    || st.devices.get(p).is_some_and(|d| d.online)
            };
            let Some(m) = st.messages.get(&id) else {
                return;
            };
            let phone = m.phone.clone();
            if m.state != SimState::Pending {
                return;
            }
            let expired = m.expires_at.is_some_and(|e| Instant::now() >= e);
            let deliverable = now || online(&st, &phone);
            let m = st.messages.get_mut(&id);
            match m {
                Some(m) if deliverable && !expired => {
                    m.state = SimState::Delivered;
                    Some((phone, "DELIVERED"))
                }
                Some(m) if expired => {
                    m.state = SimState::Expired;
                    Some((phone, "TTL_EXPIRATION_REVOKED"))
                }
                _ => None,
            }
        };
        match outcome {
            Some((phone, "DELIVERED")) => break phone,
            Some((phone, kind)) => {
                let ev = json!({
                    "eventType": kind,
                    "eventId": random_id(),
                    "messageId": id,
                    "phoneNumber": phone,
                    "sendTime": rfc3339_now(),
                    "agentId": inner.cfg.agent_id,
                });
                push(&inner, &ev).await;
                return;
            }
            None => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    push(&inner, &user_event(&inner, &phone, "DELIVERED", &id)).await;
    let Some(read) = inner.cfg.read_delay else {
        return;
    };
    tokio::time::sleep(read).await;
    if let Some(m) = lock(&inner).messages.get_mut(&id) {
        m.state = SimState::Read;
    }
    push(&inner, &user_event(&inner, &phone, "READ", &id)).await;
}

/// `POST /token`: the JWT bearer grant (RFC 7523) as Google's endpoint takes it.
async fn token(inner: web::Data<Inner>, body: web::Bytes) -> HttpResponse {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let bad = |e: &str, d: &str| {
        HttpResponse::BadRequest().json(json!({"error": e, "error_description": d}))
    };
    lock(&inner).token_requests += 1;
    if form.get("grant_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    {
        return bad("unsupported_grant_type", "Invalid grant_type");
    }
    let Some(jwt) = form.get("assertion") else {
        return bad("invalid_request", "Missing required parameter: assertion");
    };
    let Some(claims) = hermod_crypto::rbm::verify_jwt(&inner.cfg.public_key_der, jwt) else {
        return bad("invalid_grant", "Invalid JWT Signature.");
    };
    let Ok(c) = serde_json::from_str::<Value>(&claims) else {
        return bad("invalid_grant", "Invalid JWT claims.");
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let (iat, exp) = (
        c["iat"].as_i64().unwrap_or(0),
        c["exp"].as_i64().unwrap_or(0),
    );
    if c["iss"] != inner.cfg.client_email.as_str() {
        return bad("invalid_grant", "Invalid issuer.");
    }
    if !c["aud"].as_str().is_some_and(|a| a.ends_with("/token")) {
        return bad("invalid_grant", "Invalid audience.");
    }
    if !c["scope"]
        .as_str()
        .is_some_and(|s| s.split(' ').any(|x| x == SCOPE))
    {
        return bad("invalid_scope", "Invalid OAuth scope.");
    }
    if iat > now + 60 || exp <= now || exp - iat > 3600 {
        return bad(
            "invalid_grant",
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.",
        );
    }
    let t = format!("ya29.sim-{}", random_id());
    let ttl = inner.cfg.token_ttl;
    lock(&inner).tokens.insert(t.clone(), Instant::now() + ttl);
    HttpResponse::Ok().json(json!({
        "access_token": t,
        "expires_in": ttl.as_secs().max(1),
        "token_type": "Bearer",
    }))
}

/// The 401 to answer unless the request has a live access token.
fn unauthorized(inner: &Inner, req: &HttpRequest) -> Option<HttpResponse> {
    let token = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let ok = token.is_some_and(|t| {
        lock(inner)
            .tokens
            .get(t)
            .is_some_and(|until| Instant::now() < *until)
    });
    (!ok).then(|| {
        google_error(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token.",
        )
    })
}

fn query(req: &HttpRequest) -> HashMap<String, String> {
    url::form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect()
}

/// The error to answer unless `agentId` names this agent.
fn wrong_agent(inner: &Inner, q: &HashMap<String, String>) -> Option<HttpResponse> {
    match q.get("agentId") {
        Some(a) if *a == inner.cfg.agent_id => None,
        Some(_) => Some(google_error(
            403,
            "PERMISSION_DENIED",
            "The caller does not have permission for this agent.",
        )),
        None => Some(google_error(
            400,
            "INVALID_ARGUMENT",
            "agentId is required.",
        )),
    }
}

fn valid_phone(p: &str) -> bool {
    p.strip_prefix('+')
        .is_some_and(|d| (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}

fn features_of(inner: &Inner, st: &State, phone: &str) -> Option<Vec<String>> {
    match st.devices.get(phone) {
        Some(d) => Some(d.features.clone()),
        None if inner.cfg.all_reachable => {
            Some(ALL_FEATURES.iter().map(|f| (*f).to_owned()).collect())
        }
        None => None,
    }
}

async fn capabilities(
    inner: web::Data<Inner>,
    req: HttpRequest,
    phone: web::Path<String>,
) -> HttpResponse {
    if let Some(r) = unauthorized(&inner, &req) {
        return r;
    }
    let q = query(&req);
    if let Some(r) = wrong_agent(&inner, &q) {
        return r;
    }
    if !q.contains_key("requestId") {
        return google_error(400, "INVALID_ARGUMENT", "requestId is required.");
    }
    if !valid_phone(&phone) {
        return google_error(400, "INVALID_ARGUMENT", "Invalid phone number.");
    }
    let mut st = lock(&inner);
    st.capability_requests += 1;
    match features_of(&inner, &st, &phone) {
        Some(f) => HttpResponse::Ok().json(json!({ "features": f })),
        None => google_error(404, "NOT_FOUND", "Requested entity was not found."),
    }
}

/// Numbers per users:batchGet call.
pub const BATCH_GET_MAX: usize = 10_000;

async fn batch_get(inner: web::Data<Inner>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    if let Some(r) = unauthorized(&inner, &req) {
        return r;
    }
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.");
    };
    let q: HashMap<String, String> = v["agentId"]
        .as_str()
        .map(|a| [("agentId".to_owned(), a.to_owned())].into())
        .unwrap_or_default();
    if let Some(r) = wrong_agent(&inner, &q) {
        return r;
    }
    let Some(users) = v["users"].as_array() else {
        return google_error(400, "INVALID_ARGUMENT", "users is required.");
    };
    if users.len() > BATCH_GET_MAX {
        return google_error(400, "INVALID_ARGUMENT", "At most 10000 users per request.");
    }
    let mut st = lock(&inner);
    st.batch_requests += 1;
    if let Some(code) = st.fail_next_batch.pop_front() {
        return google_error(code, "UNAVAILABLE", "Simulated failure.");
    }
    let reachable: Vec<&str> = users
        .iter()
        .filter_map(Value::as_str)
        .filter(|p| features_of(&inner, &st, p).is_some())
        .collect();
    HttpResponse::Ok().json(json!({
        "reachableUsers": reachable,
        "totalRandomSampleUserCount": 0,
        "reachableRandomSampleUserCount": 0,
    }))
}

/// Which of `keys` an object sets (RBM's "union fields" allow exactly one).
fn present<'a>(v: &Value, keys: &[&'a str]) -> Vec<&'a str> {
    keys.iter()
        .copied()
        .filter(|k| v.get(k).is_some())
        .collect()
}

/// RBM's documented limits, with errors in its style (`agent_message.content_message...`).
pub fn validate_agent_message(v: &Value) -> Result<(), InvalidArgument> {
    validate(v).map_err(InvalidArgument)
}

/// What RBM's `INVALID_ARGUMENT` names: the field at fault and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidArgument(pub String);

fn validate(v: &Value) -> Result<(), String> {
    let cm = v
        .get("contentMessage")
        .filter(|c| c.is_object())
        .ok_or("agent_message.content_message: required")?;
    if let Some(t) = v.get("messageTrafficType") {
        const TYPES: [&str; 6] = [
            "MESSAGE_TRAFFIC_TYPE_UNSPECIFIED",
            "AUTHENTICATION",
            "TRANSACTION",
            "PROMOTION",
            "SERVICEREQUEST",
            "ACKNOWLEDGEMENT",
        ];
        if !t.as_str().is_some_and(|t| TYPES.contains(&t)) {
            return Err("agent_message.message_traffic_type: unknown value".into());
        }
    }
    let p = "agent_message.content_message";
    let kinds = [
        "text",
        "fileName",
        "uploadedRbmFile",
        "richCard",
        "contentInfo",
    ];
    if present(cm, &kinds).len() != 1 {
        return Err(format!(
            "{p}: exactly one of text, fileName, uploadedRbmFile, richCard, contentInfo must be set"
        ));
    }
    if let Some(t) = cm.get("text") {
        let t = t.as_str().ok_or(format!("{p}.text: must be a string"))?;
        if t.is_empty() || t.chars().count() > 3072 {
            return Err(format!("{p}.text: must be 1 to 3072 characters"));
        }
    }
    if let Some(ci) = cm.get("contentInfo") {
        content_info(&format!("{p}.content_info"), ci)?;
    }
    if let Some(rc) = cm.get("richCard") {
        match (rc.get("standaloneCard"), rc.get("carouselCard")) {
            (Some(s), None) => {
                let q = format!("{p}.rich_card.standalone_card");
                match s["cardOrientation"].as_str() {
                    Some("VERTICAL") => {}
                    Some("HORIZONTAL") => {
                        if !matches!(
                            s["thumbnailImageAlignment"].as_str(),
                            Some("LEFT" | "RIGHT")
                        ) {
                            return Err(format!(
                                "{q}.thumbnail_image_alignment: required for HORIZONTAL cards"
                            ));
                        }
                    }
                    _ => return Err(format!("{q}.card_orientation: VERTICAL or HORIZONTAL")),
                }
                card_content(&format!("{q}.card_content"), &s["cardContent"])?;
            }
            (None, Some(c)) => {
                let q = format!("{p}.rich_card.carousel_card");
                if !matches!(c["cardWidth"].as_str(), Some("SMALL" | "MEDIUM")) {
                    return Err(format!("{q}.card_width: SMALL or MEDIUM"));
                }
                let cards = c["cardContents"]
                    .as_array()
                    .ok_or(format!("{q}.card_contents: required"))?;
                if !(2..=10).contains(&cards.len()) {
                    return Err(format!("{q}.card_contents: 2 to 10 cards"));
                }
                for (i, cc) in cards.iter().enumerate() {
                    card_content(&format!("{q}.card_contents[{i}]"), cc)?;
                }
            }
            _ => {
                return Err(format!(
                    "{p}.rich_card: exactly one of standalone_card, carousel_card"
                ));
            }
        }
    }
    suggestions(&format!("{p}.suggestions"), cm.get("suggestions"), 11)?;
    match (v.get("ttl"), v.get("expireTime")) {
        (Some(_), Some(_)) => Err("agent_message: only one of ttl, expire_time".into()),
        (Some(t), None) => {
            let ok = t
                .as_str()
                .and_then(|s| s.strip_suffix('s'))
                .and_then(|s| s.parse::<f64>().ok())
                .is_some_and(|s| s > 0.0);
            if ok {
                Ok(())
            } else {
                Err("agent_message.ttl: a duration such as \"3.5s\"".into())
            }
        }
        _ => Ok(()),
    }
}

fn content_info(p: &str, ci: &Value) -> Result<(), String> {
    let url = ci["fileUrl"].as_str().unwrap_or_default();
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(format!("{p}.file_url: a public http(s) URL is required"));
    }
    Ok(())
}

fn card_content(p: &str, c: &Value) -> Result<(), String> {
    if !c.is_object() {
        return Err(format!("{p}: required"));
    }
    let (title, desc, media) = (c.get("title"), c.get("description"), c.get("media"));
    if title.is_none() && desc.is_none() && media.is_none() {
        return Err(format!("{p}: at least one of title, description, media"));
    }
    if title
        .and_then(Value::as_str)
        .is_some_and(|t| t.chars().count() > 200)
    {
        return Err(format!("{p}.title: at most 200 characters"));
    }
    if desc
        .and_then(Value::as_str)
        .is_some_and(|t| t.chars().count() > 2000)
    {
        return Err(format!("{p}.description: at most 2000 characters"));
    }
    if let Some(m) = media {
        if !matches!(m["height"].as_str(), Some("SHORT" | "MEDIUM" | "TALL")) {
            return Err(format!("{p}.media.height: SHORT, MEDIUM or TALL"));
        }
        content_info(&format!("{p}.media.content_info"), &m["contentInfo"])?;
    }
    suggestions(&format!("{p}.suggestions"), c.get("suggestions"), 4)
}

fn suggestions(p: &str, s: Option<&Value>, max: usize) -> Result<(), String> {
    let Some(s) = s else { return Ok(()) };
    let list = s.as_array().ok_or(format!("{p}: must be a list"))?;
    if list.len() > max {
        return Err(format!("{p}: at most {max} suggestions"));
    }
    for (i, s) in list.iter().enumerate() {
        let (kind, body) = match (s.get("reply"), s.get("action")) {
            (Some(r), None) => ("reply", r),
            (None, Some(a)) => ("action", a),
            _ => return Err(format!("{p}[{i}]: exactly one of reply, action")),
        };
        let q = format!("{p}[{i}].{kind}");
        let text = body["text"].as_str().unwrap_or_default();
        if text.is_empty() || text.chars().count() > 25 {
            return Err(format!("{q}.text: 1 to 25 characters"));
        }
        if body["postbackData"]
            .as_str()
            .is_some_and(|d| d.len() > 2048)
        {
            return Err(format!("{q}.postback_data: at most 2048 bytes"));
        }
        if kind == "action" {
            let actions = [
                "dialAction",
                "viewLocationAction",
                "createCalendarEventAction",
                "openUrlAction",
                "shareLocationAction",
            ];
            match present(body, &actions).as_slice() {
                ["openUrlAction"] if body["openUrlAction"]["url"].as_str().is_none() => {
                    return Err(format!("{q}.open_url_action.url: required"));
                }
                ["dialAction"] if body["dialAction"]["phoneNumber"].as_str().is_none() => {
                    return Err(format!("{q}.dial_action.phone_number: required"));
                }
                [_] => {}
                _ => return Err(format!("{q}: exactly one action")),
            }
        }
    }
    Ok(())
}

fn ttl_of(v: &Value) -> Option<Duration> {
    let s = v["ttl"].as_str()?.strip_suffix('s')?.parse::<f64>().ok()?;
    Duration::try_from_secs_f64(s).ok()
}

async fn create(
    inner: web::Data<Inner>,
    req: HttpRequest,
    phone: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    if let Some(r) = unauthorized(&inner, &req) {
        return r;
    }
    let q = query(&req);
    if let Some(r) = wrong_agent(&inner, &q) {
        return r;
    }
    let Some(id) = q
        .get("messageId")
        .filter(|m| uuid::Uuid::try_parse(m).is_ok())
        .cloned()
    else {
        return google_error(400, "INVALID_ARGUMENT", "messageId must be a UUID.");
    };
    if !valid_phone(&phone) {
        return google_error(400, "INVALID_ARGUMENT", "Invalid phone number.");
    }
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.");
    };
    if let Some(code) = lock(&inner).fail_next.pop_front() {
        let reason = match code {
            429 => "RESOURCE_EXHAUSTED",
            500 => "INTERNAL",
            503 => "UNAVAILABLE",
            _ => "UNKNOWN",
        };
        return google_error(code, reason, "Simulated failure.");
    }
    if let Err(e) = validate_agent_message(&v) {
        return google_error(400, "INVALID_ARGUMENT", &format!("Invalid value at '{e}'"));
    }
    if let Some(f) = v["contentMessage"].get("uploadedRbmFile") {
        let known = f["fileName"]
            .as_str()
            .is_some_and(|n| lock(&inner).files.contains_key(n));
        if !known {
            return google_error(
                400,
                "INVALID_ARGUMENT",
                "Invalid value at 'agent_message.content_message.uploaded_rbm_file.file_name'",
            );
        }
    }
    if inner.cfg.multi_use
        && v["messageTrafficType"]
            .as_str()
            .is_none_or(|t| t == "MESSAGE_TRAFFIC_TYPE_UNSPECIFIED")
    {
        return google_error(
            400,
            "INVALID_ARGUMENT",
            "A multi-use agent must set messageTrafficType on every message.",
        );
    }
    {
        let mut st = lock(&inner);
        if features_of(&inner, &st, &phone).is_none() {
            return google_error(404, "NOT_FOUND", "Requested entity was not found.");
        }
        if st.messages.contains_key(&id) {
            return google_error(409, "ALREADY_EXISTS", "Requested entity already exists");
        }
        st.messages.insert(
            id.clone(),
            SimMessage {
                phone: phone.clone(),
                state: SimState::Pending,
                expires_at: ttl_of(&v).map(|t| Instant::now() + t),
            },
        );
        st.received.push((phone.clone(), id.clone(), v.clone()));
    }
    tokio::spawn(deliver(inner.clone().into_inner(), id.clone(), false));
    let mut out = v;
    out["name"] = json!(format!("phones/{phone}/agentMessages/{id}"));
    out["sendTime"] = json!(rfc3339_now());
    HttpResponse::Ok().json(out)
}

/// `POST /v1/files` (files.create, the metadata form): RBM fetches `fileUrl` and
/// answers the file's name.
async fn create_file(inner: web::Data<Inner>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    if let Some(r) = unauthorized(&inner, &req) {
        return r;
    }
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.");
    };
    let mut q = query(&req);
    if let Some(a) = v["agentId"].as_str() {
        q.insert("agentId".into(), a.to_owned());
    }
    if let Some(r) = wrong_agent(&inner, &q) {
        return r;
    }
    let Some(url) = v["fileUrl"]
        .as_str()
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
    else {
        return google_error(400, "INVALID_ARGUMENT", "Invalid value at 'file_url'");
    };
    let name = format!("files/{}", random_id());
    lock(&inner).files.insert(name.clone(), url.to_owned());
    HttpResponse::Ok().json(json!({ "name": name }))
}

/// `POST /v1/phones/{phone}/agentEvents?eventId=&agentId=`: READ of a message this
/// user sent, or IS_TYPING.
async fn agent_event(
    inner: web::Data<Inner>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    if let Some(r) = unauthorized(&inner, &req) {
        return r;
    }
    let q = query(&req);
    if let Some(r) = wrong_agent(&inner, &q) {
        return r;
    }
    if q.get("eventId").is_none_or(|e| e.is_empty()) {
        return google_error(400, "INVALID_ARGUMENT", "eventId is required.");
    }
    let phone = path.into_inner();
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.");
    };
    let mut st = lock(&inner);
    match v["eventType"].as_str() {
        Some("READ") => {
            let known = v["messageId"]
                .as_str()
                .is_some_and(|id| st.user_messages.get(id) == Some(&phone));
            if !known {
                return google_error(404, "NOT_FOUND", "Requested entity was not found.");
            }
        }
        Some("IS_TYPING") => {}
        _ => {
            return google_error(
                400,
                "INVALID_ARGUMENT",
                "Invalid value at 'agent_event.event_type'",
            );
        }
    }
    st.agent_events.push((phone, v.clone()));
    HttpResponse::Ok().json(v)
}

async fn revoke(
    inner: web::Data<Inner>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    if let Some(r) = unauthorized(&inner, &req) {
        return r;
    }
    if let Some(r) = wrong_agent(&inner, &query(&req)) {
        return r;
    }
    let (phone, id) = path.into_inner();
    let mut st = lock(&inner);
    if inner.cfg.revoke_unconfirmed {
        return HttpResponse::Ok().json(json!({}));
    }
    match st.messages.get_mut(&id) {
        Some(m) if m.phone == phone && m.state == SimState::Pending => {
            m.state = SimState::Revoked;
            HttpResponse::Ok().json(json!({}))
        }
        _ => google_error(404, "NOT_FOUND", "Requested entity was not found."),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewDevice {
    phone: String,
    features: Option<Vec<String>>,
    #[serde(default = "yes")]
    online: bool,
}

fn yes() -> bool {
    true
}

async fn add_device_http(inner: web::Data<Inner>, body: web::Json<NewDevice>) -> HttpResponse {
    let d = body.into_inner();
    if !valid_phone(&d.phone) {
        return HttpResponse::BadRequest().json(json!({"error": "phone must be E.164"}));
    }
    let features = d
        .features
        .unwrap_or_else(|| ALL_FEATURES.iter().map(|f| (*f).to_owned()).collect());
    lock(&inner).devices.insert(
        d.phone,
        Device {
            features,
            online: d.online,
        },
    );
    HttpResponse::Created().json(json!({"status": "ok"}))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct UserMessage {
    text: Option<String>,
    postback_data: Option<String>,
    latitude: Option<f64>,
    longitude: Option<f64>,
}

async fn user_message_http(
    inner: web::Data<Inner>,
    phone: web::Path<String>,
    body: web::Json<UserMessage>,
) -> HttpResponse {
    let what = match (
        &body.postback_data,
        body.latitude,
        body.longitude,
        &body.text,
    ) {
        (Some(p), _, _, t) => json!({"suggestionResponse": {
            "postbackData": p, "text": t.clone().unwrap_or_default(), "type": "REPLY"}}),
        (None, Some(lat), Some(lon), _) => {
            json!({"location": {"latitude": lat, "longitude": lon}})
        }
        (None, _, _, Some(t)) => json!({ "text": t }),
        _ => {
            return HttpResponse::BadRequest()
                .json(json!({"error": "give text, postback_data or latitude+longitude"}));
        }
    };
    user_says(inner.into_inner(), &phone, what);
    HttpResponse::Accepted().json(json!({"status": "queued"}))
}

#[derive(serde::Deserialize)]
struct UserEvent {
    #[serde(rename = "type")]
    kind: String,
}

async fn user_event_http(
    inner: web::Data<Inner>,
    phone: web::Path<String>,
    body: web::Json<UserEvent>,
) -> HttpResponse {
    if !matches!(
        body.kind.as_str(),
        "IS_TYPING" | "SUBSCRIBE" | "UNSUBSCRIBE"
    ) {
        return HttpResponse::BadRequest()
            .json(json!({"error": "type is IS_TYPING, SUBSCRIBE or UNSUBSCRIBE"}));
    }
    let ev = bare_user_event(&inner, &phone, &body.kind);
    let inner = inner.into_inner();
    tokio::spawn(async move { push(&inner, &ev).await });
    HttpResponse::Accepted().json(json!({"status": "queued"}))
}

#[derive(serde::Deserialize)]
struct Launch {
    region: String,
    old: String,
    new: String,
}

async fn launch_http(inner: web::Data<Inner>, body: web::Json<Launch>) -> HttpResponse {
    let (ev, attributes) = launch_event(&inner.cfg, &body.region, &body.old, &body.new);
    let inner = inner.into_inner();
    tokio::spawn(async move { push_with(&inner, &ev, attributes).await });
    HttpResponse::Accepted().json(json!({"status": "queued"}))
}

async fn messages_http(inner: web::Data<Inner>) -> HttpResponse {
    let st = lock(&inner);
    let list: Vec<Value> = st
        .received
        .iter()
        .map(|(phone, id, body)| {
            json!({
                "phone": phone,
                "message_id": id,
                "state": format!("{:?}", st.messages.get(id).map(|m| m.state)),
                "agent_message": body,
            })
        })
        .collect();
    HttpResponse::Ok().json(list)
}

async fn stats_http(inner: web::Data<Inner>) -> HttpResponse {
    let st = lock(&inner);
    HttpResponse::Ok().json(json!({
        "token_requests": st.token_requests,
        "capability_requests": st.capability_requests,
        "messages": st.received.len(),
        "events_sent": st.events_sent,
        "agent_events": st.agent_events.len(),
        "files": st.files.len(),
        "devices": st.devices.len(),
    }))
}
