//! The RBM API v1 client of one agent: OAuth token (service-account JWT → bearer,
//! cached, refreshed before expiry, one fetch at a time), capability checks with a
//! cache, bulk reachability, sends and revokes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use hermod_core::ports::ConfigError;
use hermod_crypto::rbm::ServiceAccountKey;

use super::config::{AgentConfig, ServiceAccount};

pub const SCOPE: &str = "https://www.googleapis.com/auth/rcsbusinessmessaging";

/// What RBM knows of a number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Capability {
    /// RCS-reachable; `features` (`RICHCARD_CAROUSEL`, `ACTION_DIAL` ...) when known
    /// (a bulk lookup only says "reachable").
    Capable {
        features: Option<Vec<String>>,
    },
    NotCapable,
    /// Not known: its `users:batchGet` failed, and it is not looked up on its own
    /// (against the 600 lookups/min quota) until this expires. The send decides: RBM
    /// answers 404 for a number it cannot reach.
    Unknown,
}

/// How long a number whose `users:batchGet` failed stays [`Capability::Unknown`].
const UNKNOWN_TTL: Duration = Duration::from_secs(60);

/// Numbers per `users:batchGet` call (RBM refuses more).
pub const BATCH_GET_MAX: usize = 10_000;

impl Capability {
    /// Whether every feature in `needed` is supported; unknown features count as
    /// unsupported.
    pub fn supports(&self, needed: &[&str]) -> bool {
        match self {
            Capability::Capable { features: Some(f) } => {
                needed.iter().all(|n| f.iter().any(|x| x == n))
            }
            Capability::Capable { features: None } => needed.is_empty(),
            Capability::NotCapable => false,
            // Sent as it is; RBM refuses what the device cannot show.
            Capability::Unknown => true,
        }
    }
}

/// The outcome of a revoke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Revoke {
    /// Withdrawn before the device got it.
    Revoked,
    /// Not found: already delivered (or never sent).
    AlreadyDelivered,
}

#[derive(Clone, Debug, thiserror::Error)]
pub enum RbmError {
    /// An error answer: HTTP status and Google's `error.status` (`NOT_FOUND` ...).
    #[error("RBM answered {status} {reason}: {message}")]
    Api {
        status: u16,
        reason: String,
        message: String,
        retry_after: Option<Duration>,
    },
    #[error("RBM unreachable: {0}")]
    Transport(String),
    #[error("RBM token: {0}")]
    Token(String),
}

impl RbmError {
    /// Whether trying again later may help (429, 5xx, transport, token trouble).
    pub fn is_transient(&self) -> bool {
        match self {
            RbmError::Api { status, .. } => *status == 429 || *status >= 500 || *status == 401,
            RbmError::Transport(_) | RbmError::Token(_) => true,
        }
    }

    /// A short code for attempts and logs: `rbm_429`, `rbm_transport` ...
    pub fn code(&self) -> String {
        match self {
            RbmError::Api { status, .. } => format!("rbm_{status}"),
            RbmError::Transport(_) => "rbm_transport".into(),
            RbmError::Token(_) => "rbm_token".into(),
        }
    }
}

#[derive(Clone)]
struct Token {
    value: Arc<str>,
    refresh_at: Instant,
}

type TokenFetch = Shared<BoxFuture<'static, Result<Token, RbmError>>>;

#[derive(Default)]
struct TokenState {
    current: Option<Token>,
    inflight: Option<TokenFetch>,
}

struct Inner {
    cfg: AgentConfig,
    account: ServiceAccount,
    key: Arc<ServiceAccountKey>,
    http: reqwest::Client,
    token: Mutex<TokenState>,
    caps: Mutex<HashMap<String, (Capability, Instant)>>,
    /// Files uploaded with `files.create`: `(fileUrl, thumbnailUrl)` → RBM name, until.
    files: Mutex<HashMap<FileKey, (String, Instant)>>,
    token_fetches: AtomicU64,
}

/// An uploaded file: its URL and its thumbnail's.
type FileKey = (String, Option<String>);

/// How long an uploaded file's RBM name is used: RBM keeps files 30 days (60 in the
/// newer reference); a day less, so a name is never used after RBM dropped the file.
const UPLOAD_TTL: Duration = Duration::from_secs(29 * 86_400);

/// One agent's client; cheap to clone.
#[derive(Clone)]
pub struct RbmClient {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// RBM's message ids are UUIDs: our attempt id's 32 hex digits, hyphenated, so a
/// retried send of one attempt reuses its id and RBM ignores the repeat.
pub fn message_id_for(attempt: &str) -> String {
    let hex = attempt.strip_prefix("att_").unwrap_or(attempt);
    let digest = hermod_crypto::sha256_hex(attempt.as_bytes());
    uuid::Uuid::try_parse(hex)
        .or_else(|_| uuid::Uuid::try_parse(&digest[..32]))
        .map(|u| u.hyphenated().to_string())
        .unwrap_or(digest)
}

impl RbmClient {
    pub fn new(cfg: AgentConfig) -> Result<Self, ConfigError> {
        hermod_crypto::install_tls_provider();
        let mut account = ServiceAccount::load(&cfg)?;
        if let Some(t) = &cfg.token_uri {
            account.token_uri = t.clone();
        }
        let key = ServiceAccountKey::from_pem(&account.private_key)
            .map_err(|e| ConfigError::new(format!("agent {}: {e}", cfg.name)))?;
        let mut http = reqwest::Client::builder()
            .timeout(Duration::from_secs(cfg.timeout_secs.max(1)))
            .connect_timeout(Duration::from_secs(cfg.timeout_secs.clamp(1, 5)));
        if let Some(ca) = &cfg.ca_file {
            let pem = std::fs::read(ca).map_err(|e| {
                ConfigError::new(format!("agent {}: ca_file {}: {e}", cfg.name, ca.display()))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                ConfigError::new(format!("agent {}: ca_file {}: {e}", cfg.name, ca.display()))
            })?;
            http = http.tls_certs_only(certs);
        }
        let http = http
            .build()
            .map_err(|e| ConfigError::new(format!("agent {}: HTTP client: {e}", cfg.name)))?;
        Ok(Self {
            inner: Arc::new(Inner {
                cfg,
                account,
                key: Arc::new(key),
                http,
                token: Mutex::new(TokenState::default()),
                caps: Mutex::new(HashMap::new()),
                files: Mutex::new(HashMap::new()),
                token_fetches: AtomicU64::new(0),
            }),
        })
    }

    pub fn config(&self) -> &AgentConfig {
        &self.inner.cfg
    }

    /// Token requests made so far (tests, metrics).
    pub fn token_fetches(&self) -> u64 {
        self.inner.token_fetches.load(Ordering::Relaxed)
    }

    /// A bearer token: the cached one, or a fresh one. Concurrent callers share one
    /// fetch, and no lock is held while it runs.
    pub async fn token(&self) -> Result<Arc<str>, RbmError> {
        let fetch = {
            let mut st = lock(&self.inner.token);
            if let Some(t) = &st.current
                && Instant::now() < t.refresh_at
            {
                return Ok(t.value.clone());
            }
            match &st.inflight {
                Some(f) => f.clone(),
                None => {
                    let f = fetch_token(self.inner.clone()).boxed().shared();
                    st.inflight = Some(f.clone());
                    f
                }
            }
        };
        let r = fetch.await;
        let mut st = lock(&self.inner.token);
        st.inflight = None;
        let t = r?;
        st.current = Some(t.clone());
        Ok(t.value)
    }

    fn drop_token(&self) {
        lock(&self.inner.token).current = None;
    }

    fn url(&self, path: &str, query: &[(&str, &str)]) -> Result<url::Url, RbmError> {
        let base = self.inner.cfg.endpoint().trim_end_matches('/');
        let mut u = url::Url::parse(&format!("{base}{path}"))
            .map_err(|e| RbmError::Transport(format!("bad URL: {e}")))?;
        if !query.is_empty() {
            u.query_pairs_mut().extend_pairs(query);
        }
        Ok(u)
    }

    /// One authorised call; a 401 drops the token and tries once more with a new one.
    async fn call(
        &self,
        method: reqwest::Method,
        url: url::Url,
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value, RbmError> {
        for attempt in 0..2 {
            let token = self.token().await?;
            let mut req = self
                .inner
                .http
                .request(method.clone(), url.clone())
                .bearer_auth(&*token);
            if let Some(b) = body {
                req = req.json(b);
            }
            let resp = req
                .send()
                .await
                .map_err(|e| RbmError::Transport(e.without_url().to_string()))?;
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let bytes = resp
                .bytes()
                .await
                .map_err(|e| RbmError::Transport(e.without_url().to_string()))?;
            let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
            if (200..300).contains(&status) {
                return Ok(v);
            }
            if status == 401 && attempt == 0 {
                self.drop_token();
                continue;
            }
            return Err(RbmError::Api {
                status,
                reason: v["error"]["status"].as_str().unwrap_or_default().to_owned(),
                message: v["error"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .chars()
                    .take(300)
                    .collect(),
                retry_after,
            });
        }
        Err(RbmError::Token("the token was refused twice".into()))
    }

    /// The cached answer for a number, if still fresh.
    pub fn cached_capability(&self, phone: &str) -> Option<Capability> {
        let caps = lock(&self.inner.caps);
        caps.get(phone)
            .filter(|(_, until)| Instant::now() < *until)
            .map(|(c, _)| c.clone())
    }

    fn remember(&self, phone: &str, c: Capability) {
        let cfg = &self.inner.cfg;
        let ttl = match c {
            Capability::Capable { .. } => cfg.capability_ttl_secs,
            Capability::NotCapable => cfg.not_capable_ttl_secs,
            Capability::Unknown => UNKNOWN_TTL.as_secs(),
        };
        let mut caps = lock(&self.inner.caps);
        if caps.len() > 200_000 {
            let now = Instant::now();
            caps.retain(|_, (_, until)| *until > now);
        }
        caps.insert(
            phone.to_owned(),
            (c, Instant::now() + Duration::from_secs(ttl)),
        );
    }

    /// Forgets what is cached for a number (after a send said "not found").
    pub fn forget_capability(&self, phone: &str) {
        lock(&self.inner.caps).remove(phone);
    }

    /// `GET /v1/phones/{E164}/capabilities`: cached per number; 404 = not reachable.
    /// A cached bulk answer without features is looked up again when `features`
    /// matter to the caller (`need_features`).
    pub async fn capability(
        &self,
        phone: &str,
        need_features: bool,
    ) -> Result<Capability, RbmError> {
        if let Some(c) = self.cached_capability(phone)
            && !(need_features && matches!(c, Capability::Capable { features: None }))
        {
            return Ok(c);
        }
        let request_id = uuid::Uuid::now_v7().hyphenated().to_string();
        let url = self.url(
            &format!("/v1/phones/{phone}/capabilities"),
            &[
                ("requestId", &request_id),
                ("agentId", &self.inner.cfg.agent_id),
            ],
        )?;
        let c = match self.call(reqwest::Method::GET, url, None).await {
            Ok(v) => Capability::Capable {
                features: Some(
                    v["features"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|f| f.as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default(),
                ),
            },
            Err(RbmError::Api { status: 404, .. }) => Capability::NotCapable,
            Err(e) => return Err(e),
        };
        self.remember(phone, c.clone());
        Ok(c)
    }

    /// `POST /v1/users:batchGet`: which of these numbers are RCS-reachable, in calls of
    /// at most [`BATCH_GET_MAX`] numbers. Fills the cache (without features) for
    /// numbers not cached yet. The numbers of a call that failed are cached as
    /// [`Capability::Unknown`] for a minute, and the first error is returned.
    pub async fn batch_reachable(&self, phones: &[String]) -> Result<Vec<String>, RbmError> {
        let mut reachable = Vec::new();
        let mut first_error = None;
        for chunk in phones.chunks(BATCH_GET_MAX) {
            match self.batch_call(chunk).await {
                Ok(r) => reachable.extend(r),
                Err(e) => {
                    metrics::counter!("hermod_rbm_batch_get_failed_total",
                        "agent" => self.inner.cfg.name.clone())
                    .increment(1);
                    for p in chunk {
                        if self.cached_capability(p).is_none() {
                            self.remember(p, Capability::Unknown);
                        }
                    }
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(reachable),
        }
    }

    async fn batch_call(&self, phones: &[String]) -> Result<Vec<String>, RbmError> {
        let url = self.url("/v1/users:batchGet", &[])?;
        let body = serde_json::json!({ "users": phones, "agentId": self.inner.cfg.agent_id });
        let v = self.call(reqwest::Method::POST, url, Some(&body)).await?;
        let reachable: Vec<String> = v["reachableUsers"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|u| u.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        for p in phones {
            if self.cached_capability(p).is_some() {
                continue;
            }
            let c = if reachable.contains(p) {
                Capability::Capable { features: None }
            } else {
                Capability::NotCapable
            };
            self.remember(p, c);
        }
        Ok(reachable)
    }

    /// `POST /v1/phones/{E164}/agentMessages?messageId=&agentId=`. A 409 (the id was
    /// used before: an earlier try of this attempt got through) counts as sent.
    pub async fn send(
        &self,
        phone: &str,
        message_id: &str,
        body: &serde_json::Value,
    ) -> Result<(), RbmError> {
        let url = self.url(
            &format!("/v1/phones/{phone}/agentMessages"),
            &[
                ("messageId", message_id),
                ("agentId", &self.inner.cfg.agent_id),
            ],
        )?;
        match self.call(reqwest::Method::POST, url, Some(body)).await {
            Ok(_) | Err(RbmError::Api { status: 409, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The RBM name of the file at `url` (with its thumbnail): uploaded once with
    /// `POST /v1/files` (`files.create`, RBM fetches the URL), then cached until
    /// shortly before RBM drops it. Two sends racing on a new file may upload it twice.
    pub async fn uploaded_file(
        &self,
        url: &str,
        thumbnail: Option<&str>,
    ) -> Result<String, RbmError> {
        let key = (url.to_owned(), thumbnail.map(str::to_owned));
        if let Some((name, until)) = lock(&self.inner.files).get(&key)
            && Instant::now() < *until
        {
            return Ok(name.clone());
        }
        let u = self.url("/v1/files", &[])?;
        let mut body = serde_json::json!({"fileUrl": url, "agentId": self.inner.cfg.agent_id});
        if let Some(t) = thumbnail {
            body["thumbnailUrl"] = t.into();
        }
        let v = self.call(reqwest::Method::POST, u, Some(&body)).await?;
        let name = v["name"]
            .as_str()
            .filter(|n| n.starts_with("files/"))
            .ok_or_else(|| RbmError::Transport("files.create answered without a file name".into()))?
            .to_owned();
        let mut files = lock(&self.inner.files);
        if files.len() > 10_000 {
            let now = Instant::now();
            files.retain(|_, (_, until)| *until > now);
        }
        files.insert(key, (name.clone(), Instant::now() + UPLOAD_TTL));
        Ok(name)
    }

    /// `POST /v1/phones/{E164}/agentEvents?eventId=&agentId=`: READ (of the user's
    /// message `message_id`) or IS_TYPING.
    pub async fn agent_event(
        &self,
        phone: &str,
        kind: hermod_core::ports::AgentEventKind,
        message_id: Option<&str>,
    ) -> Result<(), RbmError> {
        use hermod_core::ports::AgentEventKind;
        let event_id = uuid::Uuid::now_v7().hyphenated().to_string();
        let url = self.url(
            &format!("/v1/phones/{phone}/agentEvents"),
            &[
                ("eventId", &event_id),
                ("agentId", &self.inner.cfg.agent_id),
            ],
        )?;
        let body = match kind {
            AgentEventKind::Read => {
                serde_json::json!({"eventType": "READ", "messageId": message_id})
            }
            AgentEventKind::Typing => serde_json::json!({"eventType": "IS_TYPING"}),
        };
        self.call(reqwest::Method::POST, url, Some(&body))
            .await
            .map(|_| ())
    }

    /// `DELETE /v1/phones/{E164}/agentMessages/{messageId}`: 200 revoked, 404 already
    /// delivered (or unknown).
    pub async fn revoke(&self, phone: &str, message_id: &str) -> Result<Revoke, RbmError> {
        let url = self.url(
            &format!("/v1/phones/{phone}/agentMessages/{message_id}"),
            &[("agentId", &self.inner.cfg.agent_id)],
        )?;
        match self.call(reqwest::Method::DELETE, url, None).await {
            Ok(_) => Ok(Revoke::Revoked),
            Err(RbmError::Api { status: 404, .. }) => Ok(Revoke::AlreadyDelivered),
            Err(e) => Err(e),
        }
    }
}

/// Signs the JWT and exchanges it at the token endpoint. Refreshes at the earlier of
/// 5 minutes before expiry and half the token's life.
async fn fetch_token(inner: Arc<Inner>) -> Result<Token, RbmError> {
    inner.token_fetches.fetch_add(1, Ordering::Relaxed);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = serde_json::json!({
        "iss": inner.account.client_email,
        "scope": SCOPE,
        "aud": inner.account.token_uri,
        "iat": now,
        "exp": now + 3600,
    });
    let jwt = inner
        .key
        .sign_jwt(&claims.to_string())
        .map_err(|e| RbmError::Token(e.to_string()))?;
    let form: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer")
        .append_pair("assertion", &jwt)
        .finish();
    let started = Instant::now();
    let resp = inner
        .http
        .post(&inner.account.token_uri)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(form)
        .send()
        .await
        .map_err(|e| RbmError::Token(e.without_url().to_string()))?;
    let status = resp.status();
    let v: serde_json::Value = resp
        .json()
        .await
        .map_err(|e| RbmError::Token(format!("token endpoint answered {status}: {e}")))?;
    let Some(token) = v["access_token"].as_str().filter(|_| status.is_success()) else {
        return Err(RbmError::Token(format!(
            "token endpoint answered {status}: {}",
            v["error"].as_str().unwrap_or("no access_token")
        )));
    };
    let life = Duration::from_secs(v["expires_in"].as_u64().unwrap_or(3600));
    let margin = (life / 2).min(Duration::from_secs(300));
    Ok(Token {
        value: Arc::from(token),
        refresh_at: started + life - margin,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_the_attempt_uuid() {
        assert_eq!(
            message_id_for("att_0190a1b2c3d47e8f9a0b1c2d3e4f5a6b"),
            "0190a1b2-c3d4-7e8f-9a0b-1c2d3e4f5a6b"
        );
        let other = message_id_for("something-else");
        assert!(uuid::Uuid::try_parse(&other).is_ok());
        assert_eq!(other, message_id_for("something-else"));
    }

    #[test]
    fn capability_feature_checks() {
        let c = Capability::Capable {
            features: Some(vec!["RICHCARD_STANDALONE".into()]),
        };
        assert!(c.supports(&["RICHCARD_STANDALONE"]));
        assert!(!c.supports(&["RICHCARD_CAROUSEL"]));
        assert!(Capability::Capable { features: None }.supports(&[]));
        assert!(!Capability::Capable { features: None }.supports(&["ACTION_DIAL"]));
        assert!(!Capability::NotCapable.supports(&[]));
    }
}
