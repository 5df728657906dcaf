//! An SMPP 3.4 SMSC simulator (server side, written against the spec with rusmpp's
//! codec, not against our client).
//!
//! It answers bind_transmitter/receiver/transceiver (checking credentials when set),
//! submit_sm with a message id, enquire_link, unbind and unknown commands
//! (generic_nack). When a submit asks for a receipt it sends a deliver_sm receipt after
//! a delay, with `receipted_message_id`, `message_state`, `user_message_reference` and
//! the Appendix B text. Receipts wait for a receiver bind of the same system_id, and
//! are kept until that ESME answers deliver_sm_resp OK — as an SMSC does across ESME
//! restarts. It can throttle a share of submits, answer UNDELIV for a prefix, drop
//! every connection, refuse binds (an SMSC that is down), speak TLS, write receipts in
//! the variants real SMSCs use, and inject inbound (MO) messages — single or
//! concatenated by UDH or SAR TLVs — towards a bound ESME.

mod receipt;
mod session;
#[allow(unused_imports)]
use receipt::*;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use rusmpp::pdus::{
    BindReceiverResp, BindTransceiverResp, BindTransmitterResp, DeliverSm, SubmitSm, SubmitSmResp,
};
use rusmpp::tlvs::{MessageDeliveryRequestTlvValue, TlvValue};
use rusmpp::tokio_codec::CommandCodec;
use rusmpp::types::{COctetString, OctetString};
use rusmpp::values::{DataCoding, EsmClass, MessageState, Npi, Ton, UserMessageReference};
use rusmpp::{Command, CommandStatus, Pdu};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

/// How the simulator behaves.
#[derive(Clone, Debug)]
pub struct SmscConfig {
    /// `None` accepts any system_id/password.
    pub credentials: Option<(String, String)>,
    pub dlr_delay: Duration,
    /// Share (0.0–1.0) of submit_sm answered ESME_RTHROTTLED.
    pub throttle_share: f64,
    /// Destinations starting with this get `stat:UNDELIV`.
    pub undeliverable_prefix: Option<String>,
    /// Receipts in flight per receiver bind.
    pub dlr_window: usize,
    /// Serve `smpps`: TLS with this server configuration.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub receipt_style: ReceiptStyle,
    /// How long each submit_sm waits before it is answered (a slow SMSC: a bind then
    /// takes at most one submit per this long).
    pub submit_delay: Duration,
    /// Non-zero: every Nth submit_sm closes the connection instead of being taken or
    /// answered, and responses not yet written are lost with it (node-smpp's
    /// `--drop-every`).
    pub drop_every: u64,
}

/// How receipts are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReceiptStyle {
    /// TLVs (`receipted_message_id`, `message_state`, `user_message_reference`) and
    /// the Appendix B text.
    #[default]
    Standard,
    /// Only the Appendix B text, esm_class 0x04.
    TextOnly,
    /// `receipted_message_id`, `message_state` and the text, but no
    /// `user_message_reference`: what most SMSCs send (and node-smpp's simulator).
    NoUserRef,
    /// Text only, the id in decimal (submit_sm_resp ids are hex).
    DecimalIds,
    /// Lower-case keys, `=` separators, 12-digit dates, 4-digit err, no TLVs.
    Loose,
}

impl Default for SmscConfig {
    fn default() -> Self {
        Self {
            credentials: None,
            dlr_delay: Duration::from_millis(50),
            throttle_share: 0.0,
            undeliverable_prefix: None,
            dlr_window: 64,
            tls: None,
            receipt_style: ReceiptStyle::Standard,
            submit_delay: Duration::ZERO,
            drop_every: 0,
        }
    }
}

impl SmscConfig {
    /// Like most real SMSCs, and the independent simulator of the peer rig: receipts
    /// without `user_message_reference`, and every `drop_every`th submit closes the
    /// connection, taking unwritten responses with it.
    pub fn like_real_smsc(drop_every: u64) -> Self {
        Self {
            receipt_style: ReceiptStyle::NoUserRef,
            drop_every,
            ..Self::default()
        }
    }
}

/// A receipt style the simulator does not know.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown receipt style {0:?} (standard, text-only, no-user-ref, decimal-ids, loose)")]
pub struct UnknownStyle(pub String);

impl std::str::FromStr for ReceiptStyle {
    type Err = UnknownStyle;
    fn from_str(s: &str) -> Result<Self, UnknownStyle> {
        match s {
            "standard" => Ok(ReceiptStyle::Standard),
            "text-only" => Ok(ReceiptStyle::TextOnly),
            "no-user-ref" => Ok(ReceiptStyle::NoUserRef),
            "decimal-ids" => Ok(ReceiptStyle::DecimalIds),
            "loose" => Ok(ReceiptStyle::Loose),
            _ => Err(UnknownStyle(s.to_owned())),
        }
    }
}

pub use hermod_crypto::tls::server_config as server_tls;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Answer {
    Sent,
    /// Accepted, but the connection is to be closed without a response.
    Lost,
    /// Not taken: the connection is to be closed at once, unwritten responses lost.
    Dropped,
}

/// One accepted submit_sm, as the SMSC saw it.
#[derive(Clone, Debug)]
pub struct Submitted {
    pub system_id: String,
    pub message_id: String,
    pub source: String,
    pub destination: String,
    pub data_coding: u8,
    pub esm_class: u8,
    pub short_message: Vec<u8>,
    pub user_ref: Option<u16>,
    pub validity_period: String,
    pub source_ton: u8,
    pub source_npi: u8,
}

#[derive(Default)]
struct State {
    submitted: Mutex<Vec<Submitted>>,
    /// Receipts waiting per system_id.
    pending: Mutex<HashMap<String, VecDeque<DeliverSm>>>,
    pending_notify: Notify,
    throttled: AtomicU64,
    next_id: AtomicU64,
    /// Every submit_sm seen (taken, throttled or dropped), for `drop_every`.
    submits_seen: AtomicU64,
    dropped: AtomicU64,
    throttle_permille: AtomicU32,
    /// Submits to accept and then drop the connection without answering.
    lose_responses: AtomicU32,
    /// Refuse binds (answer ESME_RBINDFAIL) while set.
    refuse_binds: std::sync::atomic::AtomicBool,
    binds: AtomicU64,
    mo_ref: AtomicU32,
    /// Non-zero: answer every submit_sm with this command_status.
    fail_status: AtomicU32,
}

/// A running simulator. Dropping it does not stop it; call [`Smsc::stop`].
#[derive(Clone)]
pub struct Smsc {
    addr: SocketAddr,
    cfg: Arc<SmscConfig>,
    state: Arc<State>,
    stop: CancellationToken,
    drop_all: Arc<Mutex<CancellationToken>>,
}

impl Smsc {
    pub async fn start(listen: SocketAddr, cfg: SmscConfig) -> std::io::Result<Smsc> {
        let listener = TcpListener::bind(listen).await?;
        let state = Arc::new(State::default());
        state.throttle_permille.store(
            (cfg.throttle_share.clamp(0.0, 1.0) * 1000.0) as u32,
            Ordering::Relaxed,
        );
        let smsc = Smsc {
            addr: listener.local_addr()?,
            cfg: Arc::new(cfg),
            state,
            stop: CancellationToken::new(),
            drop_all: Arc::new(Mutex::new(CancellationToken::new())),
        };
        let s = smsc.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = s.stop.cancelled() => return,
                    a = listener.accept() => a,
                };
                if let Ok((sock, _)) = accepted {
                    let _ = sock.set_nodelay(true);
                    let s2 = s.clone();
                    match s.cfg.tls.clone() {
                        None => {
                            tokio::spawn(async move { s2.session(sock).await });
                        }
                        Some(tls) => {
                            tokio::spawn(async move {
                                let acceptor = tokio_rustls::TlsAcceptor::from(tls);
                                match acceptor.accept(sock).await {
                                    Ok(stream) => s2.session(stream).await,
                                    Err(e) => {
                                        tracing::debug!(error = %e, "SMSC simulator: TLS handshake failed")
                                    }
                                }
                            });
                        }
                    }
                }
            }
        });
        Ok(smsc)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `smpp://user:pass@addr` (`smpps://` with TLS) for Hermod's settings.
    pub fn url(&self, system_id: &str, password: &str) -> String {
        let scheme = if self.cfg.tls.is_some() {
            "smpps"
        } else {
            "smpp"
        };
        format!("{scheme}://{system_id}:{password}@{}", self.addr)
    }

    /// Successful binds so far.
    pub fn bind_count(&self) -> u64 {
        self.state.binds.load(Ordering::Relaxed)
    }

    /// Answers every submit_sm with this error `command_status` (None: normal again).
    pub fn fail_submits_with(&self, status: Option<u32>) {
        self.state
            .fail_status
            .store(status.unwrap_or(0), Ordering::Relaxed);
    }

    /// While set, binds are refused with ESME_RBINDFAIL (the SMSC is "down").
    pub fn refuse_binds(&self, refuse: bool) {
        self.state.refuse_binds.store(refuse, Ordering::Relaxed);
    }

    /// Sends an inbound (MO) message towards the ESME bound as `system_id`: one
    /// deliver_sm, or several concatenated by UDH (`sar` false) or SAR TLVs (`sar`
    /// true). GSM 03.38 when the text fits, UCS-2 otherwise. Returns the part count.
    pub fn inject_mo(&self, system_id: &str, from: &str, to: &str, text: &str, sar: bool) -> usize {
        self.inject_mo_parts(system_id, from, to, text, sar, usize::MAX)
    }

    /// Like [`Smsc::inject_mo`], but only the first `send` parts go out (the rest are
    /// "lost in the network").
    pub fn inject_mo_parts(
        &self,
        system_id: &str,
        from: &str,
        to: &str,
        text: &str,
        sar: bool,
        send: usize,
    ) -> usize {
        let seg = hermod_core::gsm::segment(text);
        let total = seg.parts.len();
        let reference = (self.state.mo_ref.fetch_add(1, Ordering::Relaxed) % 65_535 + 1) as u16;
        for (i, part) in seg.parts.iter().enumerate().take(send) {
            let mut tlvs = Vec::new();
            let (esm, sm) = if total == 1 {
                (0u8, part.clone())
            } else if sar {
                tlvs.push(MessageDeliveryRequestTlvValue::SarMsgRefNum(reference));
                tlvs.push(MessageDeliveryRequestTlvValue::SarTotalSegments(
                    total as u8,
                ));
                tlvs.push(MessageDeliveryRequestTlvValue::SarSegmentSeqnum(
                    (i + 1) as u8,
                ));
                (0u8, part.clone())
            } else {
                let mut p =
                    hermod_core::gsm::udh(reference as u8, total as u8, (i + 1) as u8).to_vec();
                p.extend_from_slice(part);
                (0x40u8, p)
            };
            let d = DeliverSm::builder()
                .source_addr_ton(Ton::International)
                .source_addr_npi(Npi::Isdn)
                .source_addr(COctetString::from_str_lossy(from.trim_start_matches('+')))
                .dest_addr_ton(Ton::International)
                .dest_addr_npi(Npi::Isdn)
                .destination_addr(COctetString::from_str_lossy(to.trim_start_matches('+')))
                .esm_class(EsmClass::from(esm))
                .data_coding(DataCoding::from(seg.coding.data_coding()))
                .short_message(OctetString::from_vec(sm).unwrap_or_else(|_| OctetString::empty()))
                .tlvs(tlvs)
                .build();
            self.push_receipt(system_id, d, false);
        }
        total
    }

    pub fn submitted(&self) -> Vec<Submitted> {
        self.state
            .submitted
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default()
    }

    pub fn submit_count(&self) -> usize {
        self.state.submitted.lock().map(|v| v.len()).unwrap_or(0)
    }

    /// Connections closed by `drop_every`.
    pub fn dropped_count(&self) -> u64 {
        self.state.dropped.load(Ordering::Relaxed)
    }

    pub fn throttled_count(&self) -> u64 {
        self.state.throttled.load(Ordering::Relaxed)
    }

    /// Receipts not yet acknowledged by any ESME.
    pub fn pending_receipts(&self) -> usize {
        self.state
            .pending
            .lock()
            .map(|m| m.values().map(VecDeque::len).sum())
            .unwrap_or(0)
    }

    pub fn set_throttle_share(&self, share: f64) {
        self.state
            .throttle_permille
            .store((share.clamp(0.0, 1.0) * 1000.0) as u32, Ordering::Relaxed);
    }

    /// Accepts the next `n` submits (they are recorded and get receipts) but closes the
    /// connection instead of answering each: the response is lost in transit.
    pub fn lose_next_responses(&self, n: u32) {
        self.state.lose_responses.store(n, Ordering::Relaxed);
    }

    /// Closes every open connection (the ESME must reconnect).
    pub fn drop_connections(&self) {
        if let Ok(mut t) = self.drop_all.lock() {
            t.cancel();
            *t = CancellationToken::new();
        }
    }

    pub fn stop(&self) {
        self.stop.cancel();
        self.drop_connections();
    }
}
