//! An app device, as a business's mobile app would be: it makes an X25519 key pair,
//! registers through the tenant's API (`POST /v1/devices`), receives sealed envelopes
//! over the WebSocket stream (or by polling the inbox), opens them with HPKE and
//! acknowledges them (delivered, then read after a delay). It trusts nothing in an
//! envelope it can rebuild itself: `info` is recomputed from its tenant, its own id and
//! the message id, and the AAD is the message id.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::StreamExt;
use hermod_core::app::{Envelope, envelope_info};
use hermod_crypto::hpke::{self, Aead};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_util::sync::CancellationToken;

use hermod_core::app::AppPayload;

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("HTTP: {0}")]
    Http(String),
    #[error("the API answered {0}: {1}")]
    Api(u16, String),
    #[error("the envelope does not open for this device")]
    Open,
    #[error("WebSocket: {0}")]
    Ws(String),
}

/// A registered simulated device.
pub struct DeviceSim {
    base: String,
    http: reqwest::Client,
    pub id: String,
    pub tenant_id: String,
    pub token: String,
    secret: [u8; 32],
    aead: Aead,
}

fn http_err(e: reqwest::Error) -> DeviceError {
    DeviceError::Http(e.without_url().to_string())
}

impl DeviceSim {
    /// Generates a key pair and registers it for `recipient` with a tenant API key.
    pub async fn register(
        base: &str,
        api_key: &str,
        recipient: &str,
        aead: Aead,
    ) -> Result<DeviceSim, DeviceError> {
        Self::register_for(base, api_key, Some(recipient), None, aead).await
    }

    /// Registers for a recipient number and/or the tenant's user id.
    pub async fn register_for(
        base: &str,
        api_key: &str,
        recipient: Option<&str>,
        user_id: Option<&str>,
        aead: Aead,
    ) -> Result<DeviceSim, DeviceError> {
        hermod_crypto::install_tls_provider();
        let (secret, public) = hpke::generate_keypair().map_err(|_| DeviceError::Open)?;
        let http = reqwest::Client::new();
        let r = http
            .post(format!("{base}/v1/devices"))
            .bearer_auth(api_key)
            .json(&serde_json::json!({
                "recipient": recipient,
                "user_id": user_id,
                "public_key": URL_SAFE_NO_PAD.encode(public),
                "aead": aead.name(),
                "platform": "sim",
                "label": "hermod sim device",
            }))
            .send()
            .await
            .map_err(http_err)?;
        let status = r.status().as_u16();
        let v: serde_json::Value = r.json().await.map_err(http_err)?;
        if status != 201 {
            return Err(DeviceError::Api(status, v.to_string()));
        }
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
        Ok(DeviceSim {
            base: base.trim_end_matches('/').to_owned(),
            http,
            id: s("id"),
            tenant_id: s("tenant_id"),
            token: s("device_token"),
            secret,
            aead,
        })
    }

    /// Opens an envelope meant for this device.
    pub fn open(&self, e: &Envelope) -> Result<AppPayload, DeviceError> {
        if e.device_id != self.id {
            return Err(DeviceError::Open);
        }
        let info = envelope_info(&self.tenant_id, &self.id, &e.message_id);
        let enc = URL_SAFE_NO_PAD
            .decode(&e.enc)
            .map_err(|_| DeviceError::Open)?;
        let ct = URL_SAFE_NO_PAD
            .decode(&e.ciphertext)
            .map_err(|_| DeviceError::Open)?;
        let pt = hpke::open(
            &self.secret,
            &enc,
            info.as_bytes(),
            e.message_id.as_bytes(),
            &ct,
            self.aead,
        )
        .map_err(|_| DeviceError::Open)?;
        let p: AppPayload = serde_json::from_slice(&pt).map_err(|_| DeviceError::Open)?;
        if p.message_id != e.message_id {
            return Err(DeviceError::Open);
        }
        Ok(p)
    }

    /// `GET /v1/app/inbox?after=`.
    pub async fn poll(&self, after: i64) -> Result<Vec<Envelope>, DeviceError> {
        let r = self
            .http
            .get(format!("{}/v1/app/inbox?after={after}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(http_err)?;
        let status = r.status().as_u16();
        let v: serde_json::Value = r.json().await.map_err(http_err)?;
        if status != 200 {
            return Err(DeviceError::Api(status, v.to_string()));
        }
        serde_json::from_value(v["data"].clone()).map_err(|e| DeviceError::Http(e.to_string()))
    }

    /// `POST /v1/app/receipts`; returns the HTTP status.
    pub async fn ack(&self, message_id: &str, status: &str) -> Result<u16, DeviceError> {
        let r = self
            .http
            .post(format!("{}/v1/app/receipts", self.base))
            .bearer_auth(&self.token)
            .json(&serde_json::json!({"message_id": message_id, "status": status}))
            .send()
            .await
            .map_err(http_err)?;
        Ok(r.status().as_u16())
    }

    /// Stays connected to the stream until `cancel`: opens each envelope, acknowledges
    /// it delivered, and read after `read_delay`. Reconnects after a dropped connection.
    pub async fn run(self, read_delay: Duration, cancel: CancellationToken) {
        let me = Arc::new(self);
        let ws_base = me.base.replacen("http", "ws", 1);
        while !cancel.is_cancelled() {
            if let Err(e) = me.stream_once(&ws_base, read_delay, &cancel).await {
                tracing::warn!(device = %me.id, error = %e, "device stream dropped");
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    async fn stream_once(
        self: &Arc<Self>,
        ws_base: &str,
        read_delay: Duration,
        cancel: &CancellationToken,
    ) -> Result<(), DeviceError> {
        let mut req = format!("{ws_base}/v1/app/stream")
            .into_client_request()
            .map_err(|e| DeviceError::Ws(e.to_string()))?;
        let auth = format!("Bearer {}", self.token)
            .parse()
            .map_err(|_| DeviceError::Ws("token".into()))?;
        req.headers_mut().insert("authorization", auth);
        let (mut ws, _) = tokio_tungstenite::connect_async(req)
            .await
            .map_err(|e| DeviceError::Ws(e.to_string()))?;
        loop {
            let msg = tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                m = ws.next() => m,
            };
            let Some(msg) = msg else { return Ok(()) };
            let msg = msg.map_err(|e| DeviceError::Ws(e.to_string()))?;
            let tokio_tungstenite::tungstenite::Message::Text(text) = msg else {
                continue;
            };
            let Ok(env) = serde_json::from_str::<Envelope>(text.as_str()) else {
                continue;
            };
            match self.open(&env) {
                Ok(p) => {
                    tracing::info!(device = %self.id, message = %p.message_id, "device opened a message");
                    self.ack(&p.message_id, "delivered").await?;
                    let me = self.clone();
                    let id = p.message_id.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(read_delay).await;
                        let _ = me.ack(&id, "read").await;
                    });
                }
                Err(e) => {
                    tracing::warn!(device = %self.id, message = %env.message_id, error = %e, "envelope did not open")
                }
            }
        }
    }
}
