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

mod admin;
#[allow(unused_imports)]
pub use admin::*;

mod api;
#[allow(unused_imports)]
pub use api::*;

mod events;
#[allow(unused_imports)]
pub use events::*;

mod validate;
#[allow(unused_imports)]
pub use validate::*;

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
