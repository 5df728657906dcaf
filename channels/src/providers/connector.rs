//! An HTTP provider connector: one account, its token bucket and window of requests in
//! flight, errors sorted into permanent, transient (429 and 5xx retried later, with the
//! provider's `Retry-After`) and in doubt, and health for failover.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use hermod_core::model::{Outgoing, ReceiptTiming};
use hermod_core::now_ms;
use hermod_core::ports::{ChannelError, ConfigError};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use super::{Body, Provider, ProviderConfig, Submit, is_throttled};
use crate::smpp::status::NOT_BOUND;
use crate::smpp::{Health, TokenBucket};

/// Longest `Retry-After` honoured (a longer one is cut to this: the message is tried
/// again, elsewhere if routing has moved on).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

pub struct HttpConnector {
    cfg: Arc<ProviderConfig>,
    provider: Arc<dyn Provider>,
    http: reqwest::Client,
    bucket: TokenBucket,
    window: Arc<Semaphore>,
    in_flight: AtomicUsize,
    sent: AtomicU64,
    health: Health,
    last_error: Mutex<Option<String>>,
}

impl HttpConnector {
    /// Checks the settings and builds the provider's client.
    pub fn new(
        cfg: &ProviderConfig,
        default_source: Option<String>,
    ) -> Result<Arc<Self>, ConfigError> {
        let mut cfg = cfg.clone();
        if cfg.name.is_empty()
            || cfg.name.len() > 32
            || !cfg
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(ConfigError::new(format!(
                "sms.providers: name {:?} must be 1 to 32 letters, digits, '-' or '_'",
                cfg.name
            )));
        }
        let what = format!("sms.providers {:?}", cfg.name);
        let base = cfg.base().ok_or_else(|| {
            ConfigError::new(format!(
                "{what}: base_url is required for {}",
                cfg.kind.as_str()
            ))
        })?;
        url::Url::parse(&base).map_err(|e| ConfigError::new(format!("{what}: base_url: {e}")))?;
        cfg.base_url = Some(base);
        if let Some(p) = &cfg.public_url {
            url::Url::parse(p).map_err(|e| ConfigError::new(format!("{what}: public_url: {e}")))?;
            cfg.public_url = Some(p.trim_end_matches('/').to_owned());
        }
        if cfg.default_source.is_none() {
            cfg.default_source = default_source;
        }
        if cfg.tps.is_nan() || cfg.tps < 0.0 {
            return Err(ConfigError::new(format!("{what}: tps must be >= 0")));
        }
        hermod_crypto::install_tls_provider();
        let timeout = Duration::from_secs(cfg.timeout_secs.max(1));
        let mut http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none());
        if let Some(ca) = &cfg.ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| ConfigError::new(format!("{what}: ca_file {}: {e}", ca.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| ConfigError::new(format!("{what}: ca_file {}: {e}", ca.display())))?;
            http = http.tls_certs_only(certs);
        }
        let http = http
            .build()
            .map_err(|e| ConfigError::new(format!("{what}: HTTP client: {e}")))?;
        let provider = cfg.kind.build(&cfg)?;
        if cfg.public_url.is_some()
            && cfg.webhook_secret.0.is_empty()
            && provider.needs_webhook_secret()
        {
            return Err(ConfigError::new(format!(
                "{what}: webhook_secret is required to authenticate {}'s callbacks",
                cfg.kind.as_str()
            )));
        }
        Ok(Arc::new(Self {
            bucket: TokenBucket::new(cfg.tps, None),
            window: Arc::new(Semaphore::new(cfg.window.max(1))),
            cfg: Arc::new(cfg),
            provider,
            http,
            in_flight: AtomicUsize::new(0),
            sent: AtomicU64::new(0),
            health: Health::default(),
            last_error: Mutex::new(None),
        }))
    }

    pub fn config(&self) -> &Arc<ProviderConfig> {
        &self.cfg
    }

    pub(crate) fn provider(&self) -> &Arc<dyn Provider> {
        &self.provider
    }

    /// Hermod's webhook for this connector (`None` without `public_url`).
    pub fn webhook_url(&self) -> Option<String> {
        let base = self.cfg.public_url.as_deref()?;
        Some(format!(
            "{base}/v1/webhooks/{}/{}",
            self.cfg.kind.as_str(),
            self.cfg.name
        ))
    }

    /// The receipt callback of one message: the webhook with its reference (and the
    /// token, for providers that sign nothing).
    fn callback_url(&self, reference: &str) -> String {
        let Some(url) = self.webhook_url() else {
            return String::new();
        };
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("ref", reference);
        if self.provider.token_in_callback() {
            q.append_pair("token", &self.cfg.webhook_secret.0);
        }
        format!("{url}?{}", q.finish())
    }

    fn failing(&self) -> Option<i64> {
        self.health.failing()
    }

    fn note_error(&self, e: &str) {
        if let Ok(mut l) = self.last_error.lock() {
            *l = Some(e.to_owned());
        }
    }

    fn record(&self, r: &Result<(Vec<String>, String), ChannelError>) {
        self.health.record(
            &self.cfg.name,
            r,
            is_throttled,
            self.cfg.failure_threshold,
            Duration::from_secs(self.cfg.failure_cooldown_secs),
        );
    }

    async fn send_inner(&self, msg: &Outgoing) -> Result<(Vec<String>, String), ChannelError> {
        let kind = self.cfg.kind.as_str();
        if msg.binary.is_some() {
            return Err(super::permanent(kind, "binary_not_supported"));
        }
        let validity_secs = match msg.expires_at {
            Some(at) => {
                let left = (at - now_ms()) / 1000;
                if left <= 0 {
                    return Err(ChannelError::Permanent {
                        code: "ttl_expired".into(),
                    });
                }
                Some(left)
            }
            None => None,
        };
        let reference = msg.user_ref.to_string();
        let callback = self.callback_url(&reference);
        let from = msg
            .from
            .clone()
            .or_else(|| self.cfg.default_source.clone())
            .unwrap_or_default();
        let to = format!("+{}", msg.to.digits());
        let call = self.provider.request(&Submit {
            to: &to,
            from: &from,
            text: &msg.text,
            callback: &callback,
            reference,
            validity_secs,
        })?;
        self.bucket.acquire(1).await;
        let _permit = self
            .window
            .acquire()
            .await
            .map_err(|_| super::transient(kind, "closed"))?;
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let started = std::time::Instant::now();
        let res = self.execute(call).await;
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        metrics::histogram!("hermod_provider_request_seconds", "connector" => self.cfg.name.clone())
            .record(started.elapsed().as_secs_f64());
        let resp = match res {
            Ok(r) => r,
            // Without the URL: a template may put a secret in it.
            Err(e) if e.is_connect() => {
                let e = e.without_url();
                // Nothing reached the provider: the next upstream may take it at once.
                self.note_error(&format!("connect: {e}"));
                return Err(ChannelError::Transient {
                    code: NOT_BOUND.into(),
                    retry_after: Some(Duration::from_secs(1)),
                });
            }
            Err(e) => {
                let e = e.without_url();
                // Sent, but no answer: the provider may have taken it.
                self.note_error(&format!("no answer: {e}"));
                tracing::warn!(connector = %self.cfg.name, attempt = %msg.attempt_id, "provider request unanswered");
                return Err(ChannelError::InDoubt {
                    code: format!("{kind}:no_response"),
                });
            }
        };
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER));
        let body = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => {
                self.note_error(&format!("answer cut: {}", e.without_url()));
                return Err(ChannelError::InDoubt {
                    code: format!("{kind}:no_response"),
                });
            }
        };
        if status == 429 {
            self.bucket.throttled();
            self.note_error("429 Too Many Requests");
            return Err(ChannelError::Transient {
                code: format!("{kind}:throttled"),
                retry_after: retry_after.or(Some(Duration::from_secs(1))),
            });
        }
        if status >= 500 {
            self.note_error(&format!("HTTP {status}"));
            return Err(ChannelError::Transient {
                code: format!("{kind}:http_{status}"),
                retry_after,
            });
        }
        match self.provider.answer(status, &body) {
            Ok((ids, raw)) => {
                self.bucket.accepted();
                self.sent.fetch_add(1, Ordering::Relaxed);
                let ids = ids
                    .iter()
                    .map(|id| crate::smpp::scoped_id(&self.cfg.name, id))
                    .collect();
                Ok((ids, raw))
            }
            Err(e) => {
                if let ChannelError::Transient { code, .. } = &e
                    && is_throttled(code)
                {
                    self.bucket.throttled();
                }
                self.note_error(&format!("HTTP {status}: {e}"));
                Err(e)
            }
        }
    }

    async fn execute(&self, call: super::Call) -> Result<reqwest::Response, reqwest::Error> {
        let mut rb = self.http.request(call.method, &call.url);
        for (k, v) in &call.headers {
            rb = rb.header(k, v);
        }
        if let Some((u, p)) = &call.basic {
            rb = rb.basic_auth(u, Some(p));
        }
        rb = match call.body {
            Body::Form(f) => {
                let body = url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(&f)
                    .finish();
                rb.header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(body)
            }
            Body::Json(v) => rb.json(&v),
            Body::Raw { content_type, body } => {
                if body.is_empty() {
                    rb
                } else {
                    rb.header(reqwest::header::CONTENT_TYPE, content_type)
                        .body(body)
                }
            }
        };
        rb.send().await
    }
}

#[async_trait]
impl crate::smpp::Upstream for HttpConnector {
    fn name(&self) -> &str {
        &self.cfg.name
    }
    fn is_bound(&self) -> bool {
        true
    }
    fn is_healthy(&self) -> bool {
        self.failing().is_none()
    }
    fn status(&self) -> Value {
        json!({
            "name": self.cfg.name,
            "kind": self.cfg.kind.as_str(),
            "base_url": self.cfg.base_url,
            "healthy": self.failing().is_none(),
            "failing_until": self.failing(),
            "tps_limit": (self.cfg.tps > 0.0).then_some(self.cfg.tps),
            "tps_current": self.bucket.current_rate(),
            "window": self.cfg.window.max(1),
            "in_flight": self.in_flight.load(Ordering::Relaxed),
            "sent_total": self.sent.load(Ordering::Relaxed),
            "last_error": self.last_error.lock().ok().and_then(|l| l.clone()),
            "webhook": self.webhook_url(),
            "binds": [],
        })
    }
    fn receipt_timing(&self) -> Option<ReceiptTiming> {
        None
    }
    fn part_keys(&self, _msg: &Outgoing) -> Vec<String> {
        Vec::new()
    }
    fn takes(&self, msg: &Outgoing) -> bool {
        msg.binary.is_none()
    }
    async fn send(&self, msg: &Outgoing) -> Result<(Vec<String>, String), ChannelError> {
        let r = self.send_inner(msg).await;
        self.record(&r);
        if r.is_ok() {
            metrics::counter!("hermod_provider_sent_total", "connector" => self.cfg.name.clone())
                .increment(1);
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::ProviderKind;

    #[test]
    fn callbacks_that_cannot_be_authenticated_are_refused_at_start() {
        let cfg = |kind| ProviderConfig {
            name: "p".into(),
            kind,
            base_url: Some("http://127.0.0.1:9".into()),
            account: "a".into(),
            token: hermod_core::Secret("t".into()),
            public_url: Some("https://hermod.example".into()),
            ..ProviderConfig::default()
        };
        for kind in [
            ProviderKind::Vonage,
            ProviderKind::Infobip,
            ProviderKind::Sinch,
        ] {
            let e = HttpConnector::new(&cfg(kind), None).err().expect("refused");
            assert!(e.to_string().contains("webhook_secret"), "{kind:?}: {e}");
        }
        // Twilio signs with the auth token.
        assert!(HttpConnector::new(&cfg(ProviderKind::Twilio), None).is_ok());
        let bad = ProviderConfig {
            name: "no spaces".into(),
            ..cfg(ProviderKind::Twilio)
        };
        assert!(HttpConnector::new(&bad, None).is_err());
    }

    fn outgoing() -> Outgoing {
        Outgoing {
            attempt_id: hermod_core::AttemptId::generate(),
            tenant_id: hermod_core::TenantId::from_trusted("ten_test".into()),
            message_id: hermod_core::MessageId::generate(),
            to: hermod_core::Msisdn::parse("+447911123456").unwrap(),
            from: Some("+15550001111".into()),
            text: "hi".into(),
            user_ref: 1,
            expires_at: None,
            content: None,
            user_id: None,
            traffic_type: None,
            binary: None,
        }
    }

    /// 429 carries the provider's Retry-After to the queue; 5xx is transient; a
    /// provider nobody answers at is "nothing was sent".
    #[tokio::test(flavor = "multi_thread")]
    async fn throttling_outages_and_unreachable_providers_are_told_apart() {
        use crate::smpp::Upstream as _;
        use hermod_sim::providers::{Mode, ProviderSim, ProviderSimConfig};
        let sim = ProviderSim::start(ProviderSimConfig::default(), "127.0.0.1:0".parse().unwrap())
            .unwrap();
        let cfg = ProviderConfig {
            name: "tw".into(),
            kind: ProviderKind::Twilio,
            base_url: Some(sim.url()),
            account: sim.config().twilio_sid.clone(),
            token: hermod_core::Secret(sim.config().twilio_token.clone()),
            ..ProviderConfig::default()
        };
        let c = HttpConnector::new(&cfg, None).unwrap();
        sim.set_mode("twilio", Mode::Throttle);
        assert_eq!(
            c.send(&outgoing()).await,
            Err(ChannelError::Transient {
                code: "twilio:throttled".into(),
                retry_after: Some(Duration::from_secs(1)),
            })
        );
        sim.set_mode("twilio", Mode::Unavailable);
        assert_eq!(
            c.send(&outgoing()).await,
            Err(ChannelError::Transient {
                code: "twilio:http_503".into(),
                retry_after: None,
            })
        );
        sim.set_mode("twilio", Mode::Ok);
        let (ids, raw) = c.send(&outgoing()).await.unwrap();
        assert!(ids[0].starts_with("tw:SM"), "{ids:?}");
        assert_eq!(raw, "queued");
        sim.stop().await;
        let gone = c.send(&outgoing()).await.unwrap_err();
        assert!(
            matches!(&gone, ChannelError::Transient { code, .. } if code == NOT_BOUND),
            "{gone:?}"
        );
    }
}
