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

    fn push_receipt(&self, system_id: &str, dlr: DeliverSm, front: bool) {
        if let Ok(mut p) = self.state.pending.lock() {
            let q = p.entry(system_id.to_owned()).or_default();
            if front {
                q.push_front(dlr)
            } else {
                q.push_back(dlr)
            }
        }
        self.state.pending_notify.notify_waiters();
    }

    fn pop_receipt(&self, system_id: &str) -> Option<DeliverSm> {
        self.state
            .pending
            .lock()
            .ok()?
            .get_mut(system_id)?
            .pop_front()
    }

    async fn session<S>(self, sock: S)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let dropped = match self.drop_all.lock() {
            Ok(t) => t.clone(),
            Err(_) => return,
        };
        let (mut sink, mut stream) = Framed::new(sock, CommandCodec::new()).split();
        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Command>();
        // Dropping connections, the simulator writes like a busy SMSC: responses are
        // flushed every few milliseconds, so a drop loses the ones not yet written.
        let batch_writes = self.cfg.drop_every > 0;
        let writer = tokio::spawn(async move {
            if !batch_writes {
                while let Some(cmd) = out_rx.recv().await {
                    if sink.send(cmd).await.is_err() {
                        break;
                    }
                }
                return;
            }
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            loop {
                tokio::select! {
                    cmd = out_rx.recv() => match cmd {
                        Some(cmd) => if sink.feed(cmd).await.is_err() { break },
                        None => {
                            let _ = sink.flush().await;
                            break;
                        }
                    },
                    _ = tick.tick() => if sink.flush().await.is_err() { break },
                }
            }
        });
        let session_end = CancellationToken::new();
        let waiting: Arc<Mutex<HashMap<u32, oneshot::Sender<CommandStatus>>>> = Arc::default();
        let seq = Arc::new(AtomicU32::new(1));
        let mut bound: Option<(String, bool)> = None; // (system_id, may submit)
        let mut abandon = false;
        loop {
            let next = tokio::select! {
                _ = dropped.cancelled() => break,
                n = stream.next() => n,
            };
            let Some(Ok(cmd)) = next else { break };
            let s = cmd.sequence_number();
            let reply = |status: CommandStatus, pdu: Pdu| {
                let _ = out_tx.send(Command::new(status, s, pdu));
            };
            match cmd.pdu() {
                Some(
                    p @ (Pdu::BindTransmitter(_) | Pdu::BindReceiver(_) | Pdu::BindTransceiver(_)),
                ) => {
                    let (sid, pw, tx, rx) = match p {
                        Pdu::BindTransmitter(b) => {
                            (b.system_id.as_str(), b.password.as_str(), true, false)
                        }
                        Pdu::BindReceiver(b) => {
                            (b.system_id.as_str(), b.password.as_str(), false, true)
                        }
                        Pdu::BindTransceiver(b) => {
                            (b.system_id.as_str(), b.password.as_str(), true, true)
                        }
                        _ => continue,
                    };
                    let sid = sid.to_owned();
                    let ok = self
                        .cfg
                        .credentials
                        .as_ref()
                        .is_none_or(|(u, w)| u == &sid && w == pw);
                    let status = if bound.is_some() {
                        CommandStatus::EsmeRalybnd
                    } else if self.state.refuse_binds.load(Ordering::Relaxed) {
                        CommandStatus::EsmeRbindfail
                    } else if ok {
                        CommandStatus::EsmeRok
                    } else {
                        CommandStatus::EsmeRbindfail
                    };
                    let me: COctetString<1, 16> = COctetString::from_str_lossy("hermod-sim");
                    let pdu = match p {
                        Pdu::BindTransmitter(_) => Pdu::BindTransmitterResp(
                            BindTransmitterResp::builder().system_id(me).build(),
                        ),
                        Pdu::BindReceiver(_) => {
                            Pdu::BindReceiverResp(BindReceiverResp::builder().system_id(me).build())
                        }
                        _ => Pdu::BindTransceiverResp(
                            BindTransceiverResp::builder().system_id(me).build(),
                        ),
                    };
                    reply(status, pdu);
                    if status == CommandStatus::EsmeRok {
                        self.state.binds.fetch_add(1, Ordering::Relaxed);
                        bound = Some((sid.clone(), tx));
                        if rx {
                            tokio::spawn(self.clone().pump(
                                sid,
                                out_tx.clone(),
                                waiting.clone(),
                                seq.clone(),
                                session_end.clone(),
                            ));
                        }
                    }
                }
                Some(Pdu::SubmitSm(sm)) => match &bound {
                    Some((sid, true)) => {
                        let sid = sid.clone();
                        if !self.cfg.submit_delay.is_zero() {
                            tokio::time::sleep(self.cfg.submit_delay).await;
                        }
                        match self.on_submit(&sid, sm, s, &out_tx) {
                            Answer::Sent => {}
                            Answer::Lost => break,
                            Answer::Dropped => {
                                abandon = true;
                                break;
                            }
                        }
                    }
                    _ => reply(CommandStatus::EsmeRinvbndsts, Pdu::GenericNack),
                },
                Some(Pdu::DeliverSmResp(_)) => {
                    if let Some(w) = waiting.lock().ok().and_then(|mut m| m.remove(&s)) {
                        let _ = w.send(cmd.status());
                    }
                }
                Some(Pdu::EnquireLink) => reply(CommandStatus::EsmeRok, Pdu::EnquireLinkResp),
                Some(Pdu::Unbind) => {
                    reply(CommandStatus::EsmeRok, Pdu::UnbindResp);
                    break;
                }
                Some(Pdu::EnquireLinkResp) | Some(Pdu::GenericNack) | Some(Pdu::UnbindResp) => {}
                _ => reply(CommandStatus::EsmeRinvcmdid, Pdu::GenericNack),
            }
        }
        // Receipts sent on this connection but not acknowledged go back to the queue
        // (their waiters watch this token).
        session_end.cancel();
        drop(out_tx);
        let mut writer = writer;
        if abandon {
            writer.abort();
            return;
        }
        if tokio::time::timeout(Duration::from_secs(1), &mut writer)
            .await
            .is_err()
        {
            writer.abort();
        }
    }

    fn on_submit(
        &self,
        system_id: &str,
        sm: &SubmitSm,
        seq: u32,
        out: &mpsc::UnboundedSender<Command>,
    ) -> Answer {
        let seen = self.state.submits_seen.fetch_add(1, Ordering::Relaxed) + 1;
        if self.cfg.drop_every > 0 && seen.is_multiple_of(self.cfg.drop_every) {
            self.state.dropped.fetch_add(1, Ordering::Relaxed);
            return Answer::Dropped;
        }
        let permille = self.state.throttle_permille.load(Ordering::Relaxed);
        if permille > 0 && rand::random_range(0..1000) < permille {
            self.state.throttled.fetch_add(1, Ordering::Relaxed);
            let _ = out.send(Command::new(
                CommandStatus::EsmeRthrottled,
                seq,
                Pdu::GenericNack,
            ));
            return Answer::Sent;
        }
        let fail = self.state.fail_status.load(Ordering::Relaxed);
        if fail != 0 {
            let _ = out.send(Command::new(
                CommandStatus::from(fail),
                seq,
                SubmitSmResp::builder().build(),
            ));
            return Answer::Sent;
        }
        let dest = sm.destination_addr.as_str().to_owned();
        if dest.is_empty() {
            let _ = out.send(Command::new(
                CommandStatus::EsmeRinvdstadr,
                seq,
                SubmitSmResp::builder().build(),
            ));
            return Answer::Sent;
        }
        let n = self.state.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let message_id = format!("{n:010X}");
        let user_ref = sm.tlvs().iter().find_map(|t| match t.value() {
            Some(TlvValue::UserMessageReference(u)) => Some(u.value),
            _ => None,
        });
        let short: Vec<u8> = sm.short_message().as_ref().to_vec();
        let rec = Submitted {
            system_id: system_id.to_owned(),
            message_id: message_id.clone(),
            source: sm.source_addr.as_str().to_owned(),
            destination: dest.clone(),
            data_coding: u8::from(sm.data_coding),
            esm_class: u8::from(sm.esm_class),
            short_message: short.clone(),
            user_ref,
            validity_period: sm.validity_period.as_str().to_owned(),
            source_ton: u8::from(sm.source_addr_ton),
            source_npi: u8::from(sm.source_addr_npi),
        };
        if let Ok(mut v) = self.state.submitted.lock() {
            v.push(rec);
        }
        let lose = self
            .state
            .lose_responses
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok();
        if !lose {
            let resp = SubmitSmResp::builder()
                .message_id(COctetString::from_str_lossy(&message_id))
                .build();
            let _ = out.send(Command::new(CommandStatus::EsmeRok, seq, resp));
        }
        let answer = if lose { Answer::Lost } else { Answer::Sent };
        if u8::from(sm.registered_delivery) & 0x03 == 0 {
            return answer;
        }
        let undeliv = self
            .cfg
            .undeliverable_prefix
            .as_ref()
            .is_some_and(|p| dest.starts_with(p.as_str()));
        let dlr = receipt(
            self.cfg.receipt_style,
            n,
            &message_id,
            sm,
            &short,
            user_ref,
            undeliv,
        );
        let me = self.clone();
        let sid = system_id.to_owned();
        let delay = self.cfg.dlr_delay;
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            me.push_receipt(&sid, dlr, false);
        });
        answer
    }

    /// Sends waiting receipts to one receiver bind, `dlr_window` at a time.
    async fn pump(
        self,
        system_id: String,
        out: mpsc::UnboundedSender<Command>,
        waiting: Arc<Mutex<HashMap<u32, oneshot::Sender<CommandStatus>>>>,
        seq: Arc<AtomicU32>,
        end: CancellationToken,
    ) {
        let window = Arc::new(tokio::sync::Semaphore::new(self.cfg.dlr_window.max(1)));
        loop {
            let permit = tokio::select! {
                _ = end.cancelled() => return,
                p = window.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => return,
                },
            };
            let dlr = loop {
                let notified = self.state.pending_notify.notified();
                if let Some(d) = self.pop_receipt(&system_id) {
                    break d;
                }
                tokio::select! {
                    _ = end.cancelled() => return,
                    _ = notified => {}
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            };
            let s = seq.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = oneshot::channel();
            if let Ok(mut m) = waiting.lock() {
                m.insert(s, tx);
            }
            if out
                .send(Command::new(CommandStatus::EsmeRok, s, dlr.clone()))
                .is_err()
            {
                self.push_receipt(&system_id, dlr, true);
                return;
            }
            let me = self.clone();
            let sid = system_id.clone();
            let end = end.clone();
            let waiting = waiting.clone();
            tokio::spawn(async move {
                let _permit = permit;
                // Acknowledged OK, or back to the queue: on an error status, after 30 s
                // without an answer, or when the session ends first.
                let ok = tokio::select! {
                    biased;
                    r = rx => matches!(r, Ok(CommandStatus::EsmeRok)),
                    _ = end.cancelled() => false,
                    _ = tokio::time::sleep(Duration::from_secs(30)) => false,
                };
                if let Ok(mut m) = waiting.lock() {
                    m.remove(&s);
                }
                if !ok {
                    me.push_receipt(&sid, dlr, true);
                }
            });
        }
    }
}

fn yymmddhhmm() -> String {
    let t = time::OffsetDateTime::now_utc();
    format!(
        "{:02}{:02}{:02}{:02}{:02}",
        t.year() % 100,
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

fn receipt(
    style: ReceiptStyle,
    n: u64,
    id: &str,
    sm: &SubmitSm,
    short: &[u8],
    user_ref: Option<u16>,
    undeliv: bool,
) -> DeliverSm {
    let (stat, state, err) = if undeliv {
        ("UNDELIV", MessageState::Undeliverable, "001")
    } else {
        ("DELIVRD", MessageState::Delivered, "000")
    };
    // Appendix B: the first 20 characters of the original text (when it is text).
    let body = if u8::from(sm.esm_class) & 0x40 != 0 && short.len() > 6 {
        &short[6..]
    } else {
        short
    };
    let text: String = if u8::from(sm.data_coding) == 0 {
        body.iter()
            .take(20)
            .map(|&b| {
                if (0x20..0x7f).contains(&b) {
                    b as char
                } else {
                    '.'
                }
            })
            .collect()
    } else {
        String::new()
    };
    let now = yymmddhhmm();
    let dlvrd = if undeliv { "000" } else { "001" };
    let msg = match style {
        ReceiptStyle::Standard | ReceiptStyle::TextOnly | ReceiptStyle::NoUserRef => format!(
            "id:{id} sub:001 dlvrd:{dlvrd} submit date:{now} done date:{now} stat:{stat} err:{err} text:{text}"
        ),
        ReceiptStyle::DecimalIds => format!(
            "id:{n} sub:001 dlvrd:{dlvrd} submit date:{now} done date:{now} stat:{stat} err:{err} text:{text}"
        ),
        ReceiptStyle::Loose => format!(
            "id={} sub=001 dlvrd={dlvrd} submit_date={now}00 done_date={now}00 stat={} err=0{err} Text={text}",
            id.to_ascii_lowercase(),
            stat.to_ascii_lowercase()
        ),
    };
    let mut tlvs = Vec::new();
    if matches!(style, ReceiptStyle::Standard | ReceiptStyle::NoUserRef) {
        tlvs.push(MessageDeliveryRequestTlvValue::ReceiptedMessageId(
            COctetString::from_str_lossy(id),
        ));
        tlvs.push(MessageDeliveryRequestTlvValue::MessageState(state));
    }
    if let (ReceiptStyle::Standard, Some(u)) = (style, user_ref) {
        tlvs.push(MessageDeliveryRequestTlvValue::UserMessageReference(
            UserMessageReference::new(u),
        ));
    }
    DeliverSm::builder()
        .source_addr_ton(sm.dest_addr_ton)
        .source_addr_npi(sm.dest_addr_npi)
        .source_addr(sm.destination_addr.clone())
        .dest_addr_ton(Ton::from(u8::from(sm.source_addr_ton)))
        .dest_addr_npi(Npi::from(u8::from(sm.source_addr_npi)))
        .destination_addr(sm.source_addr.clone())
        .esm_class(EsmClass::from(0x04u8))
        .data_coding(DataCoding::from(0u8))
        .short_message(
            OctetString::from_vec(msg.into_bytes()).unwrap_or_else(|_| OctetString::empty()),
        )
        .tlvs(tlvs)
        .build()
}

/// `COctetString::from_str` that cannot fail for our short ASCII values.
trait Lossy {
    fn from_str_lossy(s: &str) -> Self;
}

impl<const MIN: usize, const MAX: usize> Lossy for COctetString<MIN, MAX> {
    fn from_str_lossy(s: &str) -> Self {
        use std::str::FromStr;
        COctetString::from_str(s).unwrap_or_else(|_| COctetString::empty())
    }
}
