//! Customer webhooks out: the signed POST of each delivery.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hermod_core::net::AddressPolicy;
use hermod_core::twilio::{FormKind, FormPost, TwimlReplies};
use hermod_core::webhook::{DueDelivery, PostError, WebhookPoster};

use crate::net;

/// POSTs JSON with `Hermod-Signature: t=<unix>,v1=<hex HMAC-SHA256>` (rustls, ring),
/// only to addresses `policy` permits (a refusal is the error `blocked_address`).
pub struct HttpPoster {
    http: reqwest::Client,
    policy: Arc<AddressPolicy>,
    /// Where the TwiML answers to Twilio inbound POSTs go.
    replies: Option<Arc<dyn TwimlReplies>>,
}

/// The most of a TwiML answer that is read.
const TWIML_MAX: usize = 64 * 1024;

impl HttpPoster {
    /// `timeout` bounds each POST: a slow endpoint holds one slot for at most that.
    pub fn new(timeout: Duration, policy: Arc<AddressPolicy>) -> Result<Self, crate::BuildError> {
        hermod_crypto::install_tls_provider();
        let http = net::guarded_client(policy.clone())
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("hermod-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| crate::BuildError::Http {
                what: "webhook client".into(),
                source,
            })?;
        Ok(Self {
            http,
            policy,
            replies: None,
        })
    }

    /// Sends what TwiML answers to Twilio inbound POSTs ask for through `replies`.
    pub fn with_replies(mut self, replies: Arc<dyn TwimlReplies>) -> Self {
        self.replies = Some(replies);
        self
    }

    /// A Twilio form POST: form-encoded, `X-Twilio-Signature` over the URL and the
    /// parameters; an inbound message's TwiML answer is handed on.
    async fn post_form(&self, d: &DueDelivery, form: &FormPost) -> Result<u16, PostError> {
        let mut req = self
            .http
            .post(&d.url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form.encoded());
        if let Some(token) = &d.secret {
            req = req.header(
                hermod_crypto::twilio::HEADER,
                hermod_crypto::twilio::signature(token, &d.url, &form.params),
            );
        }
        let resp = req.send().await.map_err(post_error)?;
        let status = resp.status().as_u16();
        if form.kind != FormKind::Inbound || !resp.status().is_success() {
            return Ok(status);
        }
        let Some(replies) = &self.replies else {
            return Ok(status);
        };
        let mut body = Vec::new();
        let mut resp = resp;
        while let Some(chunk) = resp.chunk().await.map_err(post_error)? {
            body.extend_from_slice(&chunk);
            if body.len() > TWIML_MAX {
                tracing::warn!(url = %d.url, "TwiML answer over 64 KiB; not used");
                return Ok(status);
            }
        }
        let twiml = String::from_utf8_lossy(&body);
        let tenant = hermod_core::TenantId::from_trusted(d.tenant_id.clone());
        if replies.reply(&tenant, form, &twiml).await {
            Ok(status)
        } else {
            // Not stored: the POST is tried again later.
            Err(PostError::Request)
        }
    }
}

fn post_error(e: reqwest::Error) -> PostError {
    if net::is_blocked(&e) {
        PostError::Blocked
    } else if e.is_timeout() {
        PostError::Timeout
    } else if e.is_connect() {
        PostError::Connect
    } else {
        PostError::Request
    }
}

#[async_trait]
impl WebhookPoster for HttpPoster {
    async fn post(&self, d: &DueDelivery) -> Result<u16, PostError> {
        if self.policy.refuses_literal(&d.url) {
            return Err(PostError::Blocked);
        }
        if let Some(form) = FormPost::from_payload(&d.payload) {
            return self.post_form(d, &form).await;
        }
        let mut req = self
            .http
            .post(&d.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(d.payload.clone());
        if let Some(secret) = &d.secret {
            let t = hermod_core::now_ms() / 1000;
            req = req.header(
                hermod_crypto::webhook::HEADER,
                hermod_crypto::webhook::sign(secret, t, d.payload.as_bytes()),
            );
        }
        match req.send().await {
            Ok(r) => Ok(r.status().as_u16()),
            Err(e) => Err(post_error(e)),
        }
    }
}
