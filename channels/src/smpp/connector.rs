//! A connector: one SMSC account with its binds, window, token bucket and health.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::Duration;

use crate::BuildError;
use hermod_core::model::{Outgoing, ReceiptTiming};
use hermod_core::now_ms;
use hermod_core::ports::ChannelError;
use rusmpp::pdus::SubmitSm;
use rusmpp::tlvs::MessageSubmissionRequestTlvValue;
use rusmpp::types::{COctetString, EmptyOrFullCOctetString, OctetString};
use rusmpp::values::{DataCoding, EsmClass, Npi, RegisteredDelivery, Ton, UserMessageReference};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::bind::{Bind, BindStatus, Mode, Sinks};
use super::bucket::TokenBucket;
use super::clock::ReceiptClock;
use super::config::{BindMode, ConnectorConfig};
use super::health::Health;
use super::{dlr, gsm, status, tls};

/// A connector as `GET /v1/connectors` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct ConnectorStatus {
    pub name: String,
    /// `smpp`.
    pub kind: &'static str,
    pub host: String,
    pub port: u16,
    pub tls: bool,
    /// Bound for sending and not taken out of routing by failures.
    pub healthy: bool,
    /// Unix ms until which repeated failures keep it out of routing.
    pub failing_until: Option<i64>,
    pub tps_limit: Option<f64>,
    /// The current (throttle-adjusted) rate limit.
    pub tps_current: Option<f64>,
    pub binds: Vec<BindStatus>,
}

pub struct Connector {
    pub cfg: Arc<ConnectorConfig>,
    binds: Vec<Arc<Bind>>,
    bucket: TokenBucket,
    next_bind: AtomicUsize,
    reference: AtomicU8,
    health: Health,
    clock: Arc<ReceiptClock>,
}

impl Connector {
    /// Resolves the configuration and starts every bind.
    pub fn start(
        cfg: &ConnectorConfig,
        sinks: Sinks,
        cancel: CancellationToken,
    ) -> Result<Arc<Connector>, BuildError> {
        let cfg = Arc::new(cfg.resolved()?);
        let tls = if cfg.tls {
            Some(tls::client_config(&cfg).map_err(|source| BuildError::Tls {
                what: format!("connector {}", cfg.name),
                source,
            })?)
        } else {
            None
        };
        let clock = Arc::new(ReceiptClock::default());
        let mut binds = Vec::new();
        for i in 1..=cfg.binds {
            let modes: &[(Mode, &str)] = match cfg.bind_mode {
                BindMode::Transceiver => &[(Mode::Transceiver, "trx")],
                BindMode::TransmitterReceiver => {
                    &[(Mode::Transmitter, "tx"), (Mode::Receiver, "rx")]
                }
            };
            for (mode, tag) in modes {
                binds.push(Bind::start(
                    format!("{}#{i}/{tag}", cfg.name),
                    *mode,
                    cfg.clone(),
                    tls.clone(),
                    sinks.clone(),
                    clock.clone(),
                    cancel.clone(),
                ));
            }
        }
        let c = Arc::new(Connector {
            bucket: TokenBucket::new(cfg.tps, cfg.burst),
            cfg,
            binds,
            next_bind: AtomicUsize::new(0),
            reference: AtomicU8::new(1),
            health: Health::default(),
            clock,
        });
        tokio::spawn(sample_rates(c.clone(), cancel));
        Ok(c)
    }

    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    /// Some transmitting bind is up.
    pub fn is_bound(&self) -> bool {
        self.binds
            .iter()
            .any(|b| b.mode.transmits() && b.is_bound())
    }

    fn failing(&self) -> Option<i64> {
        self.health.failing()
    }

    /// Bound and not taken out of routing by repeated failures.
    pub fn is_healthy(&self) -> bool {
        self.is_bound() && self.failing().is_none()
    }

    fn record(&self, r: &Result<(Vec<String>, String), ChannelError>) {
        self.health.record(
            &self.cfg.name,
            r,
            status::is_throttle,
            self.cfg.failure_threshold,
            Duration::from_secs(self.cfg.failure_cooldown_secs),
        );
    }

    pub fn status(&self) -> ConnectorStatus {
        ConnectorStatus {
            name: self.cfg.name.clone(),
            kind: "smpp",
            host: self.cfg.host.clone(),
            port: self.cfg.port,
            tls: self.cfg.tls,
            healthy: self.is_healthy(),
            failing_until: self.failing(),
            tps_limit: (self.cfg.tps > 0.0).then_some(self.cfg.tps),
            tps_current: self.bucket.current_rate(),
            binds: self.binds.iter().map(|b| b.status()).collect(),
        }
    }

    /// A bound transmitting bind, round robin; waits up to the response timeout for one.
    async fn pick_bind(&self) -> Option<(Arc<Bind>, rusmppc::Client)> {
        let tx: Vec<&Arc<Bind>> = self.binds.iter().filter(|b| b.mode.transmits()).collect();
        if tx.is_empty() {
            return None;
        }
        let start = self.next_bind.fetch_add(1, Ordering::Relaxed);
        for i in 0..tx.len() {
            let b = tx[(start + i) % tx.len()];
            if let Some(c) = b.client() {
                return Some((b.clone(), c));
            }
        }
        let b = tx[start % tx.len()];
        let c = b.wait_bound(self.cfg.response_timeout()).await?;
        Some((b.clone(), c))
    }

    /// Each part's text key ([`dlr::text_key`]) as this connector would submit it.
    pub fn part_keys(&self, msg: &Outgoing) -> Vec<String> {
        segments(msg, self.cfg.data_coding)
            .map(|(_, parts)| parts.iter().map(|p| dlr::text_key(p)).collect())
            .unwrap_or_default()
    }

    /// Since when receipts can arrive here (the latest (re)bind of a receiving bind
    /// that is up) and the slowest recent receipt; `None` while this process has no
    /// receiving bind up (another may hold them).
    pub fn receipt_timing(&self) -> Option<ReceiptTiming> {
        let receipts_since = self
            .binds
            .iter()
            .filter(|b| b.mode.receives())
            .filter_map(|b| b.bound_since())
            .max()?;
        Some(ReceiptTiming {
            receipts_since,
            slowest_recent: self.clock.slowest_recent(),
        })
    }

    fn build(&self, msg: &Outgoing) -> Result<Vec<SubmitSm>, ChannelError> {
        let reference = self.reference.fetch_add(1, Ordering::Relaxed);
        build_submits(&self.cfg, reference, msg)
    }

    /// Submits every part; the token bucket is charged one token per part first.
    pub async fn send(&self, msg: &Outgoing) -> Result<(Vec<String>, String), ChannelError> {
        let r = self.send_inner(msg).await;
        self.record(&r);
        r
    }

    async fn send_inner(&self, msg: &Outgoing) -> Result<(Vec<String>, String), ChannelError> {
        let pdus = self.build(msg)?;
        self.bucket
            .acquire(u32::try_from(pdus.len()).unwrap_or(u32::MAX))
            .await;
        let mut ids = Vec::with_capacity(pdus.len());
        for sm in pdus {
            let Some((bind, client)) = self.pick_bind().await else {
                return Err(if ids.is_empty() {
                    not_bound()
                } else {
                    // Earlier parts went out: the message is half-sent.
                    ChannelError::InDoubt {
                        code: "smpp:not_bound".into(),
                    }
                });
            };
            let _permit = bind
                .window
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| not_bound())?;
            bind.in_flight.fetch_add(1, Ordering::Relaxed);
            let started = std::time::Instant::now();
            // Our own deadline too: a request in flight when the connection drops may
            // never be answered or failed by the client library.
            let deadline = self.cfg.response_timeout() + Duration::from_secs(1);
            let res = match tokio::time::timeout(deadline, client.submit_sm(sm)).await {
                Ok(r) => r,
                Err(_) => Err(rusmppc::error::Error::ConnectionClosed),
            };
            bind.in_flight.fetch_sub(1, Ordering::Relaxed);
            metrics::histogram!("hermod_smpp_submit_seconds")
                .record(started.elapsed().as_secs_f64());
            match res {
                Ok(resp) => {
                    bind.sent.fetch_add(1, Ordering::Relaxed);
                    self.bucket.accepted();
                    let id = scoped_id(&self.cfg.name, resp.message_id().as_str());
                    self.clock.submitted(&id);
                    ids.push(id);
                }
                Err(rusmppc::error::Error::UnexpectedResponse { response }) => {
                    let code = u32::from(response.status());
                    let err = status::classify(code);
                    bind.note_error(&format!("command_status 0x{code:08X}"));
                    if status::is_throttle_status(code) {
                        self.bucket.throttled();
                    }
                    if !ids.is_empty() {
                        // Earlier parts were accepted; resending all would repeat them.
                        tracing::warn!(attempt = %msg.attempt_id, "a later part of a multipart message was refused");
                    }
                    return Err(err);
                }
                Err(e) => {
                    // Written but unanswered: the SMSC may have accepted it.
                    bind.note_error(&e.to_string());
                    tracing::warn!(error = %e, attempt = %msg.attempt_id, bind = %bind.id, "submit_sm unanswered");
                    return Err(ChannelError::InDoubt {
                        code: "smpp:no_response".into(),
                    });
                }
            }
        }
        Ok((ids, "ESME_ROK".into()))
    }
}

/// The submit_sm PDUs of a message on a connector: sender TON/NPI, validity from the
/// message's ttl, the connector's alphabet, UDH concatenation with `reference`, a final
/// receipt requested, and our `user_message_reference`.
pub(crate) fn build_submits(
    cfg: &ConnectorConfig,
    reference: u8,
    msg: &Outgoing,
) -> Result<Vec<SubmitSm>, ChannelError> {
    let bad = |what: &str| ChannelError::Permanent {
        code: format!("invalid_{what}"),
    };
    let source = msg
        .from
        .clone()
        .or_else(|| cfg.default_source.clone())
        .unwrap_or_default();
    let (mut ston, mut snpi, saddr) = source_addr(&source);
    if let Some(t) = cfg.source_ton {
        ston = Ton::from(t);
    }
    if let Some(n) = cfg.source_npi {
        snpi = Npi::from(n);
    }
    let saddr = COctetString::from_str(&saddr).map_err(|_| bad("from"))?;
    let daddr = COctetString::from_str(msg.to.digits()).map_err(|_| bad("to"))?;
    let validity = match msg.expires_at {
        Some(at) => {
            let left = (at - now_ms()) / 1000;
            if left <= 0 {
                return Err(ChannelError::Permanent {
                    code: "ttl_expired".into(),
                });
            }
            relative_validity(left)
        }
        None => EmptyOrFullCOctetString::empty(),
    };
    let (coding, parts) = segments(msg, cfg.data_coding).map_err(|_| bad("binary"))?;
    let total = parts.len();
    if total > 255 {
        return Err(bad("text_length"));
    }
    let mut out = Vec::with_capacity(total);
    for (i, part) in parts.iter().enumerate() {
        let (esm, payload) = if total == 1 {
            (0u8, part.clone())
        } else {
            let mut p = gsm::udh(reference, total as u8, (i + 1) as u8).to_vec();
            p.extend_from_slice(part);
            (0x40u8, p)
        };
        let sm = SubmitSm::builder()
            .source_addr_ton(ston)
            .source_addr_npi(snpi)
            .source_addr(saddr.clone())
            .dest_addr_ton(Ton::International)
            .dest_addr_npi(Npi::Isdn)
            .destination_addr(daddr.clone())
            // EsmClass::default() is 0x08 in rusmpp 0.4: build it from the byte.
            .esm_class(EsmClass::from(esm))
            // Final receipt only (success or failure).
            .registered_delivery(RegisteredDelivery::from(0x01u8))
            .validity_period(validity.clone())
            .data_coding(DataCoding::from(coding))
            .short_message(OctetString::from_vec(payload).map_err(|_| bad("text_length"))?)
            .push_tlv(MessageSubmissionRequestTlvValue::UserMessageReference(
                UserMessageReference::new(msg.user_ref),
            ))
            .build();
        out.push(sm);
    }
    Ok(out)
}

/// The parts a message goes out in (without UDH) and their data_coding: its text in
/// the connector's alphabet, or a binary message's bytes (140 octets in one part, 134
/// per concatenated part).
fn segments(msg: &Outgoing, pref: gsm::Preferred) -> Result<(u8, Vec<Vec<u8>>), hex::FromHexError> {
    match msg.binary {
        None => {
            let s = gsm::segment_as(&msg.text, pref);
            Ok((s.coding.data_coding(), s.parts))
        }
        Some(dcs) => {
            let bytes = hex::decode(&msg.text)?;
            let parts = if bytes.len() <= 140 {
                vec![bytes]
            } else {
                bytes.chunks(134).map(<[u8]>::to_vec).collect()
            };
            Ok((dcs, parts))
        }
    }
}

#[async_trait::async_trait]
impl super::router::Upstream for Connector {
    fn name(&self) -> &str {
        Connector::name(self)
    }
    fn is_bound(&self) -> bool {
        Connector::is_bound(self)
    }
    fn is_healthy(&self) -> bool {
        Connector::is_healthy(self)
    }
    fn status(&self) -> serde_json::Value {
        serde_json::to_value(Connector::status(self)).unwrap_or_default()
    }
    fn receipt_timing(&self) -> Option<ReceiptTiming> {
        Connector::receipt_timing(self)
    }
    fn part_keys(&self, msg: &Outgoing) -> Vec<String> {
        Connector::part_keys(self, msg)
    }
    async fn send(&self, msg: &Outgoing) -> Result<(Vec<String>, String), ChannelError> {
        Connector::send(self, msg).await
    }
}

/// Provider ids are unique per SMSC only: the connector name scopes them
/// (`name:id`), in submit responses and receipts alike.
pub fn scoped_id(connector: &str, id: &str) -> String {
    format!("{connector}:{}", id.trim())
}

fn not_bound() -> ChannelError {
    ChannelError::Transient {
        code: status::NOT_BOUND.into(),
        retry_after: Some(Duration::from_secs(1)),
    }
}

async fn sample_rates(c: Arc<Connector>, cancel: CancellationToken) {
    let interval = Duration::from_secs(1);
    let mut last = vec![0u64; c.binds.len()];
    while !cancel.is_cancelled() {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        for (b, l) in c.binds.iter().zip(last.iter_mut()) {
            b.sample_rate(l, interval);
        }
    }
}

/// SMPP relative validity `YYMMDDhhmmss000R` for a time to live in seconds (capped at
/// 99 days).
pub fn relative_validity(secs: i64) -> EmptyOrFullCOctetString<17> {
    let s = secs.clamp(1, 99 * 86_400);
    let (d, h, m, sec) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    EmptyOrFullCOctetString::from_str(&format!("0000{d:02}{h:02}{m:02}{sec:02}000R"))
        .unwrap_or_else(|_| EmptyOrFullCOctetString::empty())
}

/// Source TON/NPI: `+digits` → international (1/1), other digits → unknown/ISDN (0/1),
/// anything else → alphanumeric (5/0).
pub fn source_addr(s: &str) -> (Ton, Npi, String) {
    if let Some(d) = s.strip_prefix('+') {
        (Ton::International, Npi::Isdn, d.to_owned())
    } else if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        (Ton::Unknown, Npi::Isdn, s.to_owned())
    } else if s.is_empty() {
        (Ton::Unknown, Npi::Unknown, String::new())
    } else {
        (Ton::Alphanumeric, Npi::Unknown, s.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_address_types() {
        assert_eq!(source_addr("+4479").0, Ton::International);
        assert_eq!(source_addr("+4479").1, Npi::Isdn);
        assert_eq!(source_addr("+4479").2, "4479");
        assert_eq!(source_addr("12345").0, Ton::Unknown);
        assert_eq!(source_addr("Hermod").0, Ton::Alphanumeric);
        assert_eq!(source_addr("Hermod").1, Npi::Unknown);
    }

    fn outgoing(from: &str, text: &str, expires_at: Option<i64>) -> Outgoing {
        Outgoing {
            attempt_id: hermod_core::AttemptId::generate(),
            tenant_id: hermod_core::TenantId::from_trusted("ten_test".into()),
            message_id: hermod_core::MessageId::generate(),
            to: hermod_core::Msisdn::parse("+447911123456").unwrap(),
            from: Some(from.into()),
            text: text.into(),
            user_ref: 7,
            expires_at,
            content: None,
            user_id: None,
            traffic_type: None,
            binary: None,
        }
    }

    #[test]
    fn connector_settings_shape_the_submits() {
        let cfg = ConnectorConfig {
            data_coding: gsm::Preferred::Latin1,
            source_ton: Some(2),
            source_npi: Some(8),
            ..Default::default()
        };
        let pdus = build_submits(&cfg, 9, &outgoing("Acme", &"é".repeat(141), None)).unwrap();
        assert_eq!(pdus.len(), 2, "Latin-1: 134 octets per concatenated part");
        for (i, p) in pdus.iter().enumerate() {
            assert_eq!(u8::from(p.data_coding), 0x03);
            assert_eq!(
                (u8::from(p.source_addr_ton), u8::from(p.source_addr_npi)),
                (2, 8)
            );
            assert_eq!(u8::from(p.esm_class), 0x40);
            assert_eq!(
                &p.short_message().as_ref()[..6],
                &gsm::udh(9, 2, (i + 1) as u8)
            );
            assert_eq!(u8::from(p.registered_delivery), 1);
            assert!(p.validity_period.as_str().is_empty());
        }
        // An expired ttl is refused before anything is sent.
        let gone = build_submits(&cfg, 1, &outgoing("Acme", "hi", Some(now_ms() - 1)));
        assert_eq!(
            gone.unwrap_err(),
            ChannelError::Permanent {
                code: "ttl_expired".into()
            }
        );
        let later =
            build_submits(&cfg, 1, &outgoing("Acme", "hi", Some(now_ms() + 3_600_500))).unwrap();
        assert!(later[0].validity_period.as_str().ends_with("000R"));
    }

    #[test]
    fn validity_is_relative() {
        let v = relative_validity(90_061);
        assert_eq!(v.as_str(), "000001010101000R");
        assert_eq!(relative_validity(3600).as_str(), "000000010000000R");
    }
}
