//! Customer webhooks out: the signed POST of each delivery.

use std::time::Duration;

use async_trait::async_trait;
use hermod_core::webhook::{DueDelivery, WebhookPoster};

/// POSTs JSON with `Hermod-Signature: t=<unix>,v1=<hex HMAC-SHA256>` (rustls, ring).
pub struct HttpPoster {
    http: reqwest::Client,
}

impl HttpPoster {
    /// `timeout` bounds each POST: a slow endpoint holds one slot for at most that.
    pub fn new(timeout: Duration) -> Result<Self, String> {
        hermod_crypto::install_tls_provider();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("hermod-webhooks/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("webhook client: {e}"))?;
        Ok(Self { http })
    }
}

#[async_trait]
impl WebhookPoster for HttpPoster {
    async fn post(&self, d: &DueDelivery) -> Result<u16, String> {
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
            Err(e) if e.is_timeout() => Err("timeout".into()),
            Err(e) if e.is_connect() => Err("connect".into()),
            Err(_) => Err("request".into()),
        }
    }
}
