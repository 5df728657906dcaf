//! Customer webhooks out: the signed POST of each delivery.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hermod_core::net::AddressPolicy;
use hermod_core::webhook::{DueDelivery, PostError, WebhookPoster};

use crate::net;

/// POSTs JSON with `Hermod-Signature: t=<unix>,v1=<hex HMAC-SHA256>` (rustls, ring),
/// only to addresses `policy` permits (a refusal is the error `blocked_address`).
pub struct HttpPoster {
    http: reqwest::Client,
    policy: Arc<AddressPolicy>,
}

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
        Ok(Self { http, policy })
    }
}

#[async_trait]
impl WebhookPoster for HttpPoster {
    async fn post(&self, d: &DueDelivery) -> Result<u16, PostError> {
        if self.policy.refuses_literal(&d.url) {
            return Err(PostError::Blocked);
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
            Err(e) if net::is_blocked(&e) => Err(PostError::Blocked),
            Err(e) if e.is_timeout() => Err(PostError::Timeout),
            Err(e) if e.is_connect() => Err(PostError::Connect),
            Err(_) => Err(PostError::Request),
        }
    }
}
