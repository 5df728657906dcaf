//! The encrypted app channel: a message is sealed with HPKE (RFC 9180) for each of the
//! recipient's registered devices and waits, as ciphertext only, in each device's
//! inbox until acknowledged or expired. A wake-up without content can go to a push
//! relay.

mod parts;

pub use parts::{Settings, build, fixed_senders, key_files};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hermod_core::AttemptId;
use hermod_core::app::{Device, Envelope, envelope_info};
use hermod_core::model::{ChannelKind, Outgoing};
use hermod_core::now_ms;
use hermod_core::plan::{Assessment, Candidate, DueFallback, Withdrawal};
use hermod_core::ports::{Channel, ChannelError, Devices};
use hermod_crypto::hpke::{self, Aead};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

/// Attempt error codes of the app channel.
pub mod codes {
    /// The recipient has no registered device.
    pub const NO_DEVICE: &str = "app_no_device";
    pub const TTL_EXPIRED: &str = "ttl_expired";
}

/// The suite string in envelopes.
pub fn suite(aead: Aead) -> String {
    format!("DHKEM(X25519,HKDF-SHA256)/HKDF-SHA256/{}", aead.name())
}

/// `[app]` settings.
#[derive(Clone, Debug, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AppConfig {
    /// Where wake-ups go (`POST {"type":"wake","device_id","platform","tenant"}`, no
    /// content); unset = none.
    pub push_relay_url: Option<String>,
    /// Per-tenant relays (`ten_...` → URL), overriding `push_relay_url`.
    pub push_relays: HashMap<String, String>,
}

pub use hermod_core::app::AppPayload;

pub struct AppChannel {
    devices: Arc<dyn Devices>,
    wake: broadcast::Sender<String>,
    cfg: AppConfig,
    http: reqwest::Client,
    policy: Arc<hermod_core::net::AddressPolicy>,
    /// Outcomes of prepared batches, taken by `send`.
    prepared: Mutex<HashMap<AttemptId, Sent>>,
}

impl AppChannel {
    /// `wake` carries device ids to this process's open streams.
    pub fn new(
        devices: Arc<dyn Devices>,
        wake: broadcast::Sender<String>,
        cfg: AppConfig,
        policy: Arc<hermod_core::net::AddressPolicy>,
    ) -> Result<Arc<Self>, crate::BuildError> {
        hermod_crypto::install_tls_provider();
        let http = crate::net::guarded_client(policy.clone())
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|source| crate::BuildError::Http {
                what: "push relay client".into(),
                source,
            })?;
        Ok(Arc::new(Self {
            devices,
            wake,
            cfg,
            http,
            policy,
            prepared: Mutex::new(HashMap::new()),
        }))
    }

    fn relay_for(&self, tenant: &str) -> Option<&String> {
        self.cfg
            .push_relays
            .get(tenant)
            .or(self.cfg.push_relay_url.as_ref())
    }
}

fn transient(e: impl std::fmt::Display) -> ChannelError {
    tracing::warn!(error = %e, "app channel: store unavailable");
    ChannelError::Transient {
        code: "app_store".into(),
        retry_after: None,
    }
}

type Sent = Result<(Vec<String>, String), ChannelError>;

impl AppChannel {
    /// The recipient's devices (by number, and by user id when the message names one)
    /// and an envelope sealed for each.
    async fn seal(
        &self,
        msg: &Outgoing,
        now: i64,
    ) -> Result<(Vec<Device>, Vec<Envelope>), ChannelError> {
        if msg.expires_at.is_some_and(|e| e <= now) {
            return Err(ChannelError::Permanent {
                code: codes::TTL_EXPIRED.into(),
            });
        }
        let mut devices = self
            .devices
            .list_devices(&msg.tenant_id, Some(msg.to.as_str()), None)
            .await
            .map_err(transient)?;
        if let Some(u) = &msg.user_id {
            for d in self
                .devices
                .list_devices(&msg.tenant_id, None, Some(u))
                .await
                .map_err(transient)?
            {
                if !devices.iter().any(|x| x.id == d.id) {
                    devices.push(d);
                }
            }
        }
        let payload = AppPayload {
            message_id: msg.message_id.to_string(),
            from: msg.from.clone(),
            text: msg.text.clone(),
            content: msg
                .content
                .as_ref()
                .and_then(|c| serde_json::to_value(c).ok()),
            sent_at: now,
        };
        let plain = serde_json::to_vec(&payload).map_err(|_| ChannelError::Permanent {
            code: "app_payload".into(),
        })?;
        let mid = msg.message_id.as_str();
        let mut envelopes = Vec::with_capacity(devices.len());
        for d in &devices {
            let aead = Aead::parse(&d.aead).unwrap_or(Aead::ChaCha20Poly1305);
            let Ok(pk) = URL_SAFE_NO_PAD.decode(&d.public_key) else {
                tracing::warn!(device = %d.id, "app channel: unreadable public key; skipped");
                continue;
            };
            let info = envelope_info(msg.tenant_id.as_str(), &d.id, mid);
            let (enc, ct) = hpke::seal(&pk, info.as_bytes(), mid.as_bytes(), &plain, aead)
                .map_err(|e| {
                    tracing::warn!(device = %d.id, error = %e, "app channel: seal failed");
                    ChannelError::Permanent {
                        code: "app_seal".into(),
                    }
                })?;
            envelopes.push(Envelope {
                seq: 0,
                message_id: mid.to_owned(),
                device_id: d.id.clone(),
                suite: suite(aead),
                enc: URL_SAFE_NO_PAD.encode(enc),
                ciphertext: URL_SAFE_NO_PAD.encode(ct),
                info,
                created_at: now,
                expires_at: msg.expires_at,
            });
        }
        if envelopes.is_empty() {
            return Err(ChannelError::Permanent {
                code: codes::NO_DEVICE.into(),
            });
        }
        Ok((devices, envelopes))
    }

    /// Seals a batch and stores all its envelopes in one transaction; the outcome of
    /// each message, by attempt.
    async fn seal_and_store(&self, batch: &[Outgoing]) -> Vec<(AttemptId, Sent)> {
        let now = now_ms();
        let mut out = Vec::with_capacity(batch.len());
        let mut sealed = Vec::new();
        for m in batch {
            match self.seal(m, now).await {
                Ok(s) => sealed.push((m.attempt_id.clone(), s)),
                Err(e) => out.push((m.attempt_id.clone(), Err(e))),
            }
        }
        let rows: Vec<(AttemptId, Envelope)> = sealed
            .iter()
            .flat_map(|(a, (_, envs))| envs.iter().map(|e| (a.clone(), e.clone())))
            .collect();
        let stored = rows.is_empty()
            || self
                .devices
                .put_envelopes(&rows)
                .await
                .map_err(transient)
                .is_ok();
        for (attempt, (devices, _)) in sealed {
            if !stored {
                out.push((
                    attempt,
                    Err(ChannelError::Transient {
                        code: "app_store".into(),
                        retry_after: None,
                    }),
                ));
                continue;
            }
            self.wake(&devices);
            out.push((
                attempt.clone(),
                Ok((vec![format!("app:{attempt}")], "STORED".into())),
            ));
        }
        out
    }

    /// Wakes this process's streams of the devices (other processes poll) and sends
    /// the push relay a content-free wake-up, best effort.
    fn wake(&self, devices: &[Device]) {
        for d in devices {
            let _ = self.wake.send(d.id.clone());
            if let Some(url) = self.relay_for(d.tenant_id.as_str()) {
                if self.policy.refuses_literal(url) {
                    tracing::warn!("push relay refused: {}", hermod_core::net::BLOCKED);
                    continue;
                }
                let body = serde_json::json!({
                    "type": "wake", "device_id": d.id, "platform": d.platform, "tenant": d.tenant_id.as_str(),
                });
                let req = self.http.post(url).json(&body);
                tokio::spawn(async move {
                    if let Err(e) = req.send().await {
                        tracing::debug!(error = %e.without_url(), "push relay unreachable");
                    }
                });
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[async_trait]
impl Channel for AppChannel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::App
    }

    /// An envelope per (device, message) is stored once; a repeat is ignored.
    fn idempotent_sends(&self) -> bool {
        true
    }

    /// Kept when the recipient (or the message's user id) has a live device.
    async fn assess(&self, batch: &[Candidate]) -> Vec<Assessment> {
        let who: Vec<_> = batch
            .iter()
            .map(|c| {
                (
                    c.tenant_id.clone(),
                    c.to.as_str().to_owned(),
                    c.user_id.clone(),
                )
            })
            .collect();
        match self.devices.has_devices(&who).await {
            Ok(found) => found
                .into_iter()
                .map(|f| {
                    if f {
                        Assessment::keep("device_registered")
                    } else {
                        Assessment::skip(codes::NO_DEVICE)
                    }
                })
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "app channel: device lookup failed");
                batch
                    .iter()
                    .map(|_| Assessment::keep("device_lookup_failed"))
                    .collect()
            }
        }
    }

    /// Deletes the envelopes no device acknowledged; a device that did means the
    /// message arrived.
    async fn withdraw(&self, due: &DueFallback) -> Result<Withdrawal, ChannelError> {
        self.devices
            .withdraw_envelopes(&due.attempt_id)
            .await
            .map_err(transient)
    }

    /// Seals the whole batch and stores its envelopes in one transaction; `send` then
    /// hands out each message's outcome.
    async fn prepare(&self, batch: &[Outgoing]) {
        let outcomes = self.seal_and_store(batch).await;
        lock(&self.prepared).extend(outcomes);
    }

    async fn send(&self, msg: &Outgoing) -> Sent {
        if let Some(r) = lock(&self.prepared).remove(&msg.attempt_id) {
            return r;
        }
        // Not part of a prepared batch: on its own.
        self.seal_and_store(std::slice::from_ref(msg))
            .await
            .pop()
            .map_or_else(|| Err(transient("no outcome")), |(_, r)| r)
    }
}
