//! One client connection: frames read as they come (a PDU that does not decode gets
//! a generic_nack, the connection stays), binds checked against the account, submits
//! run beside the reader within the account's window (so reads never wait on the
//! store), deliver_sm pumped to receiver binds.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::SinkExt;
use hermod_core::smpp::{BindTarget, OutboxItem};
use rusmpp::pdus::{
    BindReceiverResp, BindTransceiverResp, BindTransmitterResp, DataSmResp, QuerySmResp,
    SubmitMultiResp, SubmitSmResp,
};
use rusmpp::tokio_codec::CommandCodec;
use rusmpp::values::InterfaceVersion;
use rusmpp::{Command, CommandStatus, Pdu};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, BufReader};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::codec::{Decoder, FramedWrite};
use tokio_util::sync::CancellationToken;

use super::Shared;
use super::outbox::Done;
use super::pdu::{cstr, st, status};
use super::submit::{self, Submission};
use crate::auth::{Caller, Tenant};

/// PDUs longer than this are refused (a submit with a 64 KiB message_payload fits).
const MAX_PDU: usize = 70_000;
/// A connection that has not bound within this is closed.
const BIND_WAIT: Duration = Duration::from_secs(30);
/// A bound connection silent this long (no PDU, not even enquire_link) is closed.
const IDLE: Duration = Duration::from_secs(300);
/// How long a deliver_sm waits for its answer before it is sent again later.
const ANSWER_WAIT: Duration = Duration::from_secs(30);

/// What a bind established.
pub(crate) struct Bound {
    pub(crate) target: BindTarget,
    pub(crate) tenant: Tenant,
    transmit: bool,
    receiver: Option<u64>,
}

type Waiting = Arc<Mutex<HashMap<u32, oneshot::Sender<CommandStatus>>>>;

struct Session {
    shared: Arc<Shared>,
    out: mpsc::UnboundedSender<Command>,
    peer: SocketAddr,
    bound: Option<Arc<Bound>>,
    seq: Arc<AtomicU32>,
    waiting: Waiting,
    end: CancellationToken,
    /// Fired when the account is deleted or its tenant suspended while bound.
    revoked: CancellationToken,
    inflight: Arc<Semaphore>,
    failed_binds: u32,
}

enum Frame {
    Pdu(Vec<u8>),
    /// A length outside 16..=MAX_PDU: the stream cannot be framed any more.
    BadLength,
    Closed,
}

async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Frame {
    let mut len = [0u8; 4];
    if r.read_exact(&mut len).await.is_err() {
        return Frame::Closed;
    }
    let n = u32::from_be_bytes(len) as usize;
    if !(16..=MAX_PDU).contains(&n) {
        return Frame::BadLength;
    }
    let mut buf = vec![0u8; n];
    buf[..4].copy_from_slice(&len);
    if r.read_exact(&mut buf[4..]).await.is_err() {
        return Frame::Closed;
    }
    Frame::Pdu(buf)
}

pub(crate) async fn run<S>(shared: Arc<Shared>, sock: S, peer: SocketAddr)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (rd, wr) = tokio::io::split(sock);
    let mut rd = BufReader::with_capacity(64 * 1024, rd);
    let (out, mut out_rx) = mpsc::unbounded_channel::<Command>();
    let writer = tokio::spawn(async move {
        let mut sink = FramedWrite::new(wr, CommandCodec::new().without_max_length());
        while let Some(c) = out_rx.recv().await {
            if sink.feed(c).await.is_err() {
                return;
            }
            // Whatever else is ready goes in the same write.
            while let Ok(c) = out_rx.try_recv() {
                if sink.feed(c).await.is_err() {
                    return;
                }
            }
            if SinkExt::<Command>::flush(&mut sink).await.is_err() {
                return;
            }
        }
    });
    let mut s = Session {
        shared: shared.clone(),
        out,
        peer,
        bound: None,
        seq: Arc::new(AtomicU32::new(1)),
        waiting: Arc::default(),
        end: CancellationToken::new(),
        revoked: CancellationToken::new(),
        inflight: Arc::new(Semaphore::new(1)),
        failed_binds: 0,
    };
    loop {
        let wait = if s.bound.is_some() { IDLE } else { BIND_WAIT };
        let frame = tokio::select! {
            // Shutting down, or the account deleted or its tenant suspended: ask the
            // client to unbind, as an SMSC does.
            _ = shared.cancel.cancelled() => {
                let n = s.next_seq();
                s.send(Command::new(CommandStatus::EsmeRok, n, Pdu::Unbind));
                break;
            }
            _ = s.revoked.cancelled() => {
                let n = s.next_seq();
                s.send(Command::new(CommandStatus::EsmeRok, n, Pdu::Unbind));
                break;
            }
            f = tokio::time::timeout(wait, read_frame(&mut rd)) => match f {
                Ok(f) => f,
                Err(_) => break,
            },
        };
        match frame {
            Frame::Closed => break,
            Frame::BadLength => {
                s.send(Command::new(st(status::INVCMDLEN), 0, Pdu::GenericNack));
                break;
            }
            Frame::Pdu(bytes) => {
                if !s.handle(bytes).await {
                    break;
                }
            }
        }
    }
    s.end.cancel();
    if let Some(b) = &s.bound {
        shared.close_bind(&b.target.account.system_id);
        if let Some(id) = b.receiver {
            shared.hub.unregister(&b.target.account.system_id, id);
        }
    }
    drop(s);
    // Answers already queued go out; submits still running finish theirs.
    let mut writer = writer;
    if tokio::time::timeout(Duration::from_secs(10), &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    }
}

impl Session {
    fn send(&self, c: Command) {
        let _ = self.out.send(c);
    }

    fn next_seq(&self) -> u32 {
        self.seq.fetch_add(1, Ordering::Relaxed) & 0x7FFF_FFFF
    }

    /// Handles one frame; false ends the session.
    async fn handle(&mut self, bytes: Vec<u8>) -> bool {
        let seq = u32::from_be_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
        let mut buf = tokio_util::bytes::BytesMut::from(&bytes[..]);
        let cmd = match CommandCodec::new().without_max_length().decode(&mut buf) {
            Ok(Some(c)) => c,
            _ => {
                self.send(Command::new(st(status::INVCMDLEN), seq, Pdu::GenericNack));
                return true;
            }
        };
        let Some(pdu) = cmd.pdu() else {
            self.send(Command::new(st(status::INVCMDID), seq, Pdu::GenericNack));
            return true;
        };
        match pdu {
            Pdu::BindTransmitter(b) => {
                let (id, pw, v) = (
                    b.system_id.to_string(),
                    b.password.to_string(),
                    b.interface_version,
                );
                self.bind(seq, &id, &pw, v, true, false).await
            }
            Pdu::BindReceiver(b) => {
                let (id, pw, v) = (
                    b.system_id.to_string(),
                    b.password.to_string(),
                    b.interface_version,
                );
                self.bind(seq, &id, &pw, v, false, true).await
            }
            Pdu::BindTransceiver(b) => {
                let (id, pw, v) = (
                    b.system_id.to_string(),
                    b.password.to_string(),
                    b.interface_version,
                );
                self.bind(seq, &id, &pw, v, true, true).await
            }
            Pdu::EnquireLink => {
                self.send(Command::new(
                    CommandStatus::EsmeRok,
                    seq,
                    Pdu::EnquireLinkResp,
                ));
                true
            }
            Pdu::Unbind => {
                self.send(Command::new(CommandStatus::EsmeRok, seq, Pdu::UnbindResp));
                false
            }
            Pdu::UnbindResp => false,
            Pdu::DeliverSmResp(_) => {
                if let Some(w) = self.waiting.lock().ok().and_then(|mut m| m.remove(&seq)) {
                    let _ = w.send(cmd.status());
                }
                true
            }
            Pdu::GenericNack => {
                // A client refusing one of our deliver_sm: sent again later.
                if let Some(w) = self.waiting.lock().ok().and_then(|mut m| m.remove(&seq)) {
                    let _ = w.send(cmd.status());
                }
                true
            }
            Pdu::EnquireLinkResp => true,
            Pdu::SubmitSm(_)
            | Pdu::DataSm(_)
            | Pdu::SubmitMulti(_)
            | Pdu::QuerySm(_)
            | Pdu::CancelSm(_)
            | Pdu::ReplaceSm(_) => {
                self.operation(seq, pdu.clone());
                true
            }
            _ => {
                self.send(Command::new(st(status::INVCMDID), seq, Pdu::GenericNack));
                true
            }
        }
    }

    async fn bind(
        &mut self,
        seq: u32,
        system_id: &str,
        password: &str,
        version: InterfaceVersion,
        transmit: bool,
        receive: bool,
    ) -> bool {
        let tlvs = u8::from(version) >= 0x34;
        let resp = |code: u32| {
            let me = cstr("hermod");
            let mut tlv = None;
            if tlvs && code == status::OK {
                tlv = Some(InterfaceVersion::Smpp3_4);
            }
            let pdu = match (transmit, receive) {
                (true, false) => Pdu::BindTransmitterResp(
                    BindTransmitterResp::builder()
                        .system_id(me)
                        .sc_interface_version(tlv)
                        .build(),
                ),
                (false, true) => Pdu::BindReceiverResp(
                    BindReceiverResp::builder()
                        .system_id(me)
                        .sc_interface_version(tlv)
                        .build(),
                ),
                _ => Pdu::BindTransceiverResp(
                    BindTransceiverResp::builder()
                        .system_id(me)
                        .sc_interface_version(tlv)
                        .build(),
                ),
            };
            Command::new(st(code), seq, pdu)
        };
        if self.bound.is_some() {
            self.send(resp(status::ALYBND));
            return true;
        }
        let code = match self.check(system_id, password).await {
            Ok(target) => {
                let account = &target.account;
                if self.shared.open_bind(&account.system_id, account.max_binds) {
                    self.inflight = Arc::new(Semaphore::new(account.window.max(1) as usize));
                    let tenant = Tenant(
                        account.tenant_id.clone(),
                        Caller {
                            key_id: format!("smpp:{}", account.system_id),
                            role: hermod_core::tenant::Role::Send,
                            limits: target.limits.clone(),
                        },
                    );
                    let receiver = receive.then(|| {
                        let (id, rx) = self
                            .shared
                            .hub
                            .register(&account.system_id, account.window.max(1) as usize);
                        tokio::spawn(pump(
                            self.shared.clone(),
                            rx,
                            self.out.clone(),
                            self.waiting.clone(),
                            self.seq.clone(),
                            self.end.clone(),
                            tlvs,
                            account.window.max(1) as usize,
                        ));
                        id
                    });
                    tokio::spawn(watch(
                        self.shared.clone(),
                        account.system_id.clone(),
                        self.end.clone(),
                        self.revoked.clone(),
                    ));
                    tracing::info!(system_id = %account.system_id, peer = %self.peer, transmit, receive, "SMPP bind");
                    metrics::counter!("hermod_smpp_server_binds_total", "result" => "ok")
                        .increment(1);
                    self.bound = Some(Arc::new(Bound {
                        target,
                        tenant,
                        transmit,
                        receiver,
                    }));
                    status::OK
                } else {
                    tracing::info!(system_id, peer = %self.peer, "SMPP bind refused: max_binds reached");
                    status::BINDFAIL
                }
            }
            Err(code) => code,
        };
        if code != status::OK {
            metrics::counter!("hermod_smpp_server_binds_total", "result" => "refused").increment(1);
            self.failed_binds += 1;
        }
        self.send(resp(code));
        // Three refused binds on one connection: it is guessing.
        self.failed_binds < 3
    }

    async fn check(&self, system_id: &str, password: &str) -> Result<BindTarget, u32> {
        let target = match self.shared.store.bind_target(system_id).await {
            Ok(Some(t)) => t,
            Ok(None) => {
                tracing::info!(peer = %self.peer, "SMPP bind refused: unknown system_id");
                // The same answer (and about the same time) as a wrong password.
                let pw = password.to_owned();
                let _ = tokio::task::spawn_blocking(move || {
                    hermod_crypto::password::verify(&pw, DUMMY_HASH)
                })
                .await;
                return Err(status::BINDFAIL);
            }
            Err(e) => {
                tracing::warn!(error = %e, "SMPP bind: store unavailable");
                return Err(status::SYSERR);
            }
        };
        let (pw, hash) = (password.to_owned(), target.account.password_hash.clone());
        let ok = tokio::task::spawn_blocking(move || hermod_crypto::password::verify(&pw, &hash))
            .await
            .unwrap_or(false);
        if !ok {
            tracing::info!(system_id, peer = %self.peer, "SMPP bind refused: wrong password");
            return Err(status::BINDFAIL);
        }
        if !hermod_core::smpp::network_allows(&target.account.networks, self.peer.ip()) {
            tracing::info!(system_id, peer = %self.peer, "SMPP bind refused: not from an allowed network");
            return Err(status::BINDFAIL);
        }
        if target.suspended {
            return Err(status::BINDFAIL);
        }
        Ok(target)
    }

    /// A submit, query, cancel or replace: answered by a task of its own so the reader
    /// goes on; beyond the window `ESME_RMSGQFUL`, beyond the throughput
    /// `ESME_RTHROTTLED`.
    fn operation(&self, seq: u32, pdu: Pdu) {
        let Some(bound) = self.bound.clone().filter(|b| b.transmit) else {
            self.send(Command::new(st(status::INVBNDSTS), seq, error_resp(&pdu)));
            return;
        };
        let Ok(permit) = self.inflight.clone().try_acquire_owned() else {
            metrics::counter!("hermod_smpp_server_refused_total", "status" => "msgqful")
                .increment(1);
            self.send(Command::new(st(status::MSGQFUL), seq, error_resp(&pdu)));
            return;
        };
        let account = &bound.target.account;
        let submits = match &pdu {
            Pdu::SubmitSm(_) | Pdu::DataSm(_) => 1,
            Pdu::SubmitMulti(m) => u32::from(m.number_of_dests()).max(1),
            _ => 0,
        };
        if submits > 0
            && !self
                .shared
                .take_submit(&account.system_id, account.throughput, submits)
        {
            metrics::counter!("hermod_smpp_server_refused_total", "status" => "throttled")
                .increment(1);
            self.send(Command::new(st(status::THROTTLED), seq, error_resp(&pdu)));
            return;
        }
        let shared = self.shared.clone();
        let out = self.out.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let answer = answer(&shared, &bound, pdu).await;
            let _ = out.send(Command::new(st(answer.0), seq, answer.1));
        });
    }
}

/// How often a bind checks that its account still exists and its tenant is not
/// suspended (another process may have changed them).
const RECHECK: Duration = Duration::from_secs(5);

/// Ends a bind (`revoked`) once its account is deleted or its tenant suspended.
async fn watch(
    shared: Arc<Shared>,
    system_id: String,
    end: CancellationToken,
    revoked: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = end.cancelled() => return,
            _ = tokio::time::sleep(RECHECK) => {}
        }
        match shared.store.bind_target(&system_id).await {
            Ok(Some(t)) if !t.suspended => {}
            Ok(_) => {
                tracing::info!(
                    system_id,
                    "SMPP bind ended: account deleted or tenant suspended"
                );
                revoked.cancel();
                return;
            }
            // The store unavailable: the bind stays, checked again later.
            Err(_) => {}
        }
    }
}

/// A hash nobody's password matches, verified for unknown system_ids.
const DUMMY_HASH: &str =
    "pbkdf2-sha256$600000$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

/// The error response of an operation (no message id).
fn error_resp(pdu: &Pdu) -> Pdu {
    match pdu {
        Pdu::SubmitSm(_) => Pdu::SubmitSmResp(SubmitSmResp::builder().build()),
        Pdu::DataSm(_) => Pdu::DataSmResp(DataSmResp::builder().build()),
        Pdu::SubmitMulti(_) => Pdu::SubmitMultiResp(SubmitMultiResp::builder().build()),
        Pdu::QuerySm(_) => Pdu::QuerySmResp(QuerySmResp::builder().build()),
        Pdu::CancelSm(_) => Pdu::CancelSmResp,
        Pdu::ReplaceSm(_) => Pdu::ReplaceSmResp,
        _ => Pdu::GenericNack,
    }
}

async fn answer(shared: &Shared, b: &Bound, pdu: Pdu) -> (u32, Pdu) {
    match pdu {
        Pdu::SubmitSm(sm) => {
            let s = Submission::of_submit_sm(&sm);
            match submit::submit(shared, b, &s).await {
                Ok(id) => (
                    status::OK,
                    Pdu::SubmitSmResp(SubmitSmResp::builder().message_id(cstr(&id)).build()),
                ),
                Err(code) => (code, error_resp(&Pdu::SubmitSm(sm))),
            }
        }
        Pdu::DataSm(d) => {
            let s = Submission::of_data_sm(&d);
            match submit::submit(shared, b, &s).await {
                Ok(id) => (
                    status::OK,
                    Pdu::DataSmResp(DataSmResp::builder().message_id(cstr(&id)).build()),
                ),
                Err(code) => (code, Pdu::DataSmResp(DataSmResp::builder().build())),
            }
        }
        Pdu::SubmitMulti(m) => submit::submit_multi(shared, b, &m).await,
        Pdu::QuerySm(q) => submit::query(shared, b, &q).await,
        Pdu::CancelSm(c) => (submit::cancel(shared, b, &c).await, Pdu::CancelSmResp),
        Pdu::ReplaceSm(r) => (submit::replace(shared, b, &r).await, Pdu::ReplaceSmResp),
        other => (status::INVCMDID, error_resp(&other)),
    }
}

/// Sends a receiver bind's rows as deliver_sm, `window` unanswered at most.
#[allow(clippy::too_many_arguments)]
async fn pump(
    shared: Arc<Shared>,
    mut items: mpsc::Receiver<OutboxItem>,
    out: mpsc::UnboundedSender<Command>,
    waiting: Waiting,
    seq: Arc<AtomicU32>,
    end: CancellationToken,
    tlvs: bool,
    window: usize,
) {
    let window = Arc::new(Semaphore::new(window));
    loop {
        let permit = tokio::select! {
            _ = end.cancelled() => break,
            p = window.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let item = tokio::select! {
            _ = end.cancelled() => break,
            i = items.recv() => match i {
                Some(i) => i,
                None => break,
            },
        };
        let s = seq.fetch_add(1, Ordering::Relaxed) & 0x7FFF_FFFF;
        let (tx, rx) = oneshot::channel();
        if let Ok(mut m) = waiting.lock() {
            m.insert(s, tx);
        }
        let pdu = super::pdu::deliver_sm(&item.notice, tlvs);
        if out
            .send(Command::new(CommandStatus::EsmeRok, s, Pdu::DeliverSm(pdu)))
            .is_err()
        {
            shared.hub.done(Done::Retry(item.id, 0));
            break;
        }
        let shared = shared.clone();
        let end = end.clone();
        let waiting = waiting.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let answer = tokio::select! {
                biased;
                r = rx => r.ok(),
                _ = end.cancelled() => None,
                _ = tokio::time::sleep(ANSWER_WAIT) => None,
            };
            if let Ok(mut m) = waiting.lock() {
                m.remove(&s);
            }
            shared.hub.done(match answer {
                Some(CommandStatus::EsmeRok) => {
                    metrics::counter!("hermod_smpp_server_delivered_total").increment(1);
                    Done::Acked(item.id)
                }
                // The client refused it: again in a few seconds.
                Some(_) => Done::Retry(item.id, 5_000),
                None => Done::Retry(item.id, 0),
            });
        });
    }
    items.close();
    while let Ok(i) = items.try_recv() {
        shared.hub.done(Done::Retry(i.id, 0));
    }
}
