//! One SMPP session (transceiver, transmitter or receiver) kept up by a supervisor:
//! bind, serve incoming PDUs, reconnect with backoff. Receipts and inbound messages
//! are acknowledged to the SMSC only once the sinks have stored them.

use std::str::FromStr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use hermod_core::now_ms;
use hermod_core::ports::{InboundSink, Leases, ReceiptSink};
use rusmpp::pdus::{BindReceiver, BindTransceiver, BindTransmitter, DeliverSmResp};
use rusmpp::types::COctetString;
use rusmpp::values::{InterfaceVersion, Npi, Ton};
use rusmpp::{CommandStatus, Pdu};
use rusmppc::{Client, ConnectionBuilder, Event};
use serde::Serialize;
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;

use super::clock::ReceiptClock;
use super::config::ConnectorConfig;
use super::{dlr, mo};

/// What a session may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Transceiver,
    Transmitter,
    Receiver,
}

impl Mode {
    pub fn transmits(self) -> bool {
        self != Mode::Receiver
    }
    pub fn receives(self) -> bool {
        self != Mode::Transmitter
    }
}

/// What sessions need from the process: where to hand what they receive, and (when
/// several processes share the connectors) the leases that keep each bind in one
/// process.
#[derive(Clone)]
pub struct Sinks {
    pub receipts: Arc<dyn ReceiptSink>,
    pub inbound: Arc<dyn InboundSink>,
    pub leases: Option<BindLeases>,
}

/// A bind is only bound by the process holding its lease (key = bind id).
#[derive(Clone)]
pub struct BindLeases {
    pub store: Arc<dyn Leases>,
    /// This process.
    pub holder: String,
    /// Lease length; renewed every third of it, taken over once it runs out.
    pub ttl: Duration,
}

/// A bind as `GET /v1/connectors` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct BindStatus {
    pub id: String,
    pub mode: Mode,
    /// `connecting`, `bound`, `down` or `stopped`.
    pub state: &'static str,
    /// Unix ms of the last state change.
    pub since: i64,
    pub last_error: Option<String>,
    pub in_flight: u32,
    pub sent_total: u64,
    pub sent_per_sec: f64,
}

struct Health {
    state: &'static str,
    since: i64,
    last_error: Option<String>,
}

/// A session and its counters.
pub struct Bind {
    pub id: String,
    pub mode: Mode,
    client: watch::Receiver<Option<Client>>,
    pub window: Arc<Semaphore>,
    pub in_flight: AtomicU32,
    pub sent: AtomicU64,
    /// f64 bits of the last measured submits/s.
    rate: AtomicU64,
    health: Mutex<Health>,
    /// The connector's receipt delays (shared by its binds).
    pub clock: Arc<ReceiptClock>,
}

impl Bind {
    /// Starts the supervisor of one session.
    pub fn start(
        id: String,
        mode: Mode,
        cfg: Arc<ConnectorConfig>,
        tls: Option<rustls::ClientConfig>,
        sinks: Sinks,
        clock: Arc<ReceiptClock>,
        cancel: CancellationToken,
    ) -> Arc<Bind> {
        let (tx, rx) = watch::channel(None);
        let bind = Arc::new(Bind {
            id,
            mode,
            client: rx,
            window: Arc::new(Semaphore::new(cfg.window.max(1))),
            in_flight: AtomicU32::new(0),
            sent: AtomicU64::new(0),
            rate: AtomicU64::new(0),
            health: Mutex::new(Health {
                state: "connecting",
                since: now_ms(),
                last_error: None,
            }),
            clock,
        });
        // Everything the session logs names its bind and connector.
        let span = tracing::info_span!("smpp_bind", bind = %bind.id, connector = %cfg.name);
        tokio::spawn(tracing::Instrument::instrument(
            supervise(bind.clone(), cfg, tls, tx, sinks, cancel),
            span,
        ));
        bind
    }

    fn set_state(&self, state: &'static str, error: Option<String>) {
        if let Ok(mut h) = self.health.lock() {
            if h.state != state {
                h.state = state;
                h.since = now_ms();
            }
            if error.is_some() {
                h.last_error = error;
            }
        }
    }

    /// Unix ms since when the session has been bound, while it is.
    pub fn bound_since(&self) -> Option<i64> {
        let h = self.health.lock().ok()?;
        (h.state == "bound").then_some(h.since)
    }

    /// True while bound and able to submit.
    ///
    /// Not `Client::is_active`: in rusmppc 0.4 that enqueues a ping action on the
    /// connection, and the connection handles few actions per poll — called per
    /// message it delays the submits behind it. The supervisor clears the client
    /// when the session ends, and `is_closed` only reads a watch.
    pub fn is_bound(&self) -> bool {
        self.client.borrow().as_ref().is_some_and(usable)
    }

    /// The bound client, if any, right now.
    pub fn client(&self) -> Option<Client> {
        self.client.borrow().clone().filter(usable)
    }

    /// Waits up to `timeout` for the session to be bound.
    pub async fn wait_bound(&self, timeout: Duration) -> Option<Client> {
        let mut rx = self.client.clone();
        let wait = tokio::time::timeout(timeout, async {
            loop {
                if let Some(c) = rx.borrow_and_update().clone().filter(usable) {
                    return Some(c);
                }
                if rx.changed().await.is_err() {
                    return None;
                }
            }
        });
        wait.await.ok().flatten()
    }

    /// Records a submit error seen on this bind.
    pub fn note_error(&self, e: &str) {
        if let Ok(mut h) = self.health.lock() {
            h.last_error = Some(e.to_owned());
        }
    }

    /// Updates `sent_per_sec` from the counter; called once per `interval`.
    pub fn sample_rate(&self, last: &mut u64, interval: Duration) {
        let now = self.sent.load(Ordering::Relaxed);
        let rate = (now.saturating_sub(*last)) as f64 / interval.as_secs_f64();
        *last = now;
        self.rate.store(rate.to_bits(), Ordering::Relaxed);
    }

    pub fn status(&self) -> BindStatus {
        let (state, since, last_error) = match self.health.lock() {
            Ok(h) => (h.state, h.since, h.last_error.clone()),
            Err(_) => ("down", 0, None),
        };
        BindStatus {
            id: self.id.clone(),
            mode: self.mode,
            state,
            since,
            last_error,
            in_flight: self.in_flight.load(Ordering::Relaxed),
            sent_total: self.sent.load(Ordering::Relaxed),
            sent_per_sec: (f64::from_bits(self.rate.load(Ordering::Relaxed)) * 10.0).round() / 10.0,
        }
    }
}

fn usable(c: &Client) -> bool {
    !c.is_closed()
}

async fn supervise(
    me: Arc<Bind>,
    cfg: Arc<ConnectorConfig>,
    tls: Option<rustls::ClientConfig>,
    tx: watch::Sender<Option<Client>>,
    sinks: Sinks,
    cancel: CancellationToken,
) {
    let mut backoff = Duration::from_millis(200);
    let reconnect_max = Duration::from_secs(cfg.reconnect_max_secs.max(1));
    while !cancel.is_cancelled() {
        if let Some(l) = &sinks.leases
            && !wait_for_lease(&me, l, &cancel).await
        {
            break;
        }
        let session = cancel.child_token();
        let renewal = sinks
            .leases
            .clone()
            .map(|l| tokio::spawn(renew_lease(me.clone(), l, session.clone())));
        me.set_state("connecting", None);
        match bind(&cfg, me.mode, tls.clone()).await {
            Ok((client, events)) => {
                tracing::info!(bind = %me.id, url = %cfg.connect_url(), "SMPP bound");
                me.set_state("bound", None);
                metrics::gauge!("hermod_smpp_bound", "bind" => me.id.clone()).set(1.0);
                backoff = Duration::from_millis(200);
                let _ = tx.send(Some(client.clone()));
                serve(&me, &cfg, &client, events, &sinks, &session).await;
                let _ = tx.send(None);
                metrics::gauge!("hermod_smpp_bound", "bind" => me.id.clone()).set(0.0);
                if session.is_cancelled() {
                    let _ = tokio::time::timeout(Duration::from_secs(2), client.unbind()).await;
                    let _ = client.close().await;
                }
                if cancel.is_cancelled() {
                    stop_renewal(renewal);
                    break;
                }
                if session.is_cancelled() {
                    tracing::warn!(bind = %me.id, "bind lease lost; unbound");
                    me.set_state("standby", Some("lease lost".into()));
                } else {
                    tracing::warn!(bind = %me.id, "SMPP connection lost; reconnecting");
                    me.set_state("down", Some("connection lost".into()));
                }
            }
            Err(e) => {
                tracing::warn!(bind = %me.id, error = %e, "SMPP bind failed");
                me.set_state("down", Some(format!("bind failed: {e}")));
            }
        }
        stop_renewal(renewal);
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(reconnect_max);
    }
    if let Some(l) = &sinks.leases {
        let _ = l.store.release_lease(&me.id, &l.holder).await;
    }
    me.set_state("stopped", None);
}

fn stop_renewal(r: Option<tokio::task::JoinHandle<()>>) {
    if let Some(r) = r {
        r.abort();
    }
}

/// Waits in `standby` until this process holds the bind's lease; false on shutdown.
async fn wait_for_lease(me: &Bind, l: &BindLeases, cancel: &CancellationToken) -> bool {
    let mut announced = false;
    loop {
        match l.store.acquire_lease(&me.id, &l.holder, l.ttl, None).await {
            Ok(true) => {
                tracing::info!(bind = %me.id, "bind lease taken");
                return true;
            }
            Ok(false) => {
                if !announced {
                    me.set_state("standby", None);
                    announced = true;
                }
            }
            Err(e) => tracing::warn!(bind = %me.id, error = %e, "bind lease check failed"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return false,
            _ = tokio::time::sleep(l.ttl / 3) => {}
        }
    }
}

/// Renews the lease every ttl/3; cancels the session when another process has it, or
/// when renewals have failed for most of the ttl (it may expire any moment).
async fn renew_lease(me: Arc<Bind>, l: BindLeases, session: CancellationToken) {
    let id = me.id.clone();
    let mut last_ok = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = session.cancelled() => return,
            _ = tokio::time::sleep(l.ttl / 3) => {}
        }
        let status = serde_json::to_string(&me.status()).ok();
        match l
            .store
            .acquire_lease(&id, &l.holder, l.ttl, status.as_deref())
            .await
        {
            Ok(true) => last_ok = tokio::time::Instant::now(),
            Ok(false) => {
                session.cancel();
                return;
            }
            Err(e) => {
                tracing::warn!(bind = %id, error = %e, "bind lease renewal failed");
                if last_ok.elapsed() > l.ttl * 2 / 3 {
                    session.cancel();
                    return;
                }
            }
        }
    }
}

/// A bind PDU as SMPP 3.4 has it (no address range); the three bind PDUs have the
/// same fields but are distinct types.
macro_rules! bind_pdu {
    ($pdu:ident, $cfg:expr) => {
        $pdu::builder()
            .system_id(cstr(&$cfg.system_id))
            .password(cstr(&$cfg.password.0))
            .system_type(cstr(&$cfg.system_type))
            .interface_version(InterfaceVersion::Smpp3_4)
            .addr_ton(Ton::Unknown)
            .addr_npi(Npi::Unknown)
            .address_range(COctetString::empty())
            .build()
    };
}

async fn bind(
    cfg: &ConnectorConfig,
    mode: Mode,
    tls: Option<rustls::ClientConfig>,
) -> Result<(Client, impl futures::Stream<Item = Event> + Unpin + 'static), rusmppc::error::Error> {
    let builder = ConnectionBuilder::new()
        .enquire_link_interval(cfg.enquire_link())
        .enquire_link_response_timeout(cfg.response_timeout())
        .response_timeout(cfg.response_timeout())
        .disable_interface_version_check();
    let stream = tokio::time::timeout(cfg.response_timeout(), open(cfg, tls))
        .await
        .unwrap_or_else(|_| Err(std::io::Error::from(std::io::ErrorKind::TimedOut)))
        .map_err(rusmppc::error::Error::Connect)?;
    let (client, events, connection) = builder.no_spawn().connected(stream);
    tokio::spawn(drive(connection));
    let bound = match mode {
        Mode::Transceiver => client
            .bind_transceiver(bind_pdu!(BindTransceiver, cfg))
            .await
            .map(drop),
        Mode::Transmitter => client
            .bind_transmitter(bind_pdu!(BindTransmitter, cfg))
            .await
            .map(drop),
        Mode::Receiver => client
            .bind_receiver(bind_pdu!(BindReceiver, cfg))
            .await
            .map(drop),
    };
    if let Err(e) = bound {
        let _ = client.close().await;
        return Err(e);
    }
    Ok((client, events))
}

/// A plain or TLS connection to the SMSC.
type SmscStream = tokio_util::either::Either<
    tokio::net::TcpStream,
    tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
>;

/// Connects to the SMSC with Nagle's algorithm off: PDUs are small and a window of
/// them is in flight, so coalescing them waits for the SMSC's delayed ACKs (rusmppc's
/// own connect leaves it on).
async fn open(
    cfg: &ConnectorConfig,
    tls: Option<rustls::ClientConfig>,
) -> std::io::Result<SmscStream> {
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address for the host");
    let mut tcp = None;
    for addr in tokio::net::lookup_host((cfg.host.as_str(), cfg.port)).await? {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(e) => last = e,
        }
    }
    let tcp = tcp.ok_or(last)?;
    tcp.set_nodelay(true)?;
    match tls {
        None => Ok(tokio_util::either::Either::Left(tcp)),
        Some(tls) => {
            let name = rustls_pki_types::ServerName::try_from(cfg.host.clone())
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
            let s = tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls))
                .connect(name, tcp)
                .await?;
            Ok(tokio_util::either::Either::Right(s))
        }
    }
}

/// The bind_transceiver we send (checked against the PDU vectors).
#[cfg(test)]
pub(crate) fn bind_transceiver_pdu(cfg: &ConnectorConfig) -> BindTransceiver {
    bind_pdu!(BindTransceiver, cfg)
}

/// Drives rusmppc's connection future: several polls per wake-up, and again on a
/// short tick.
///
/// rusmppc 0.4 handles at most 5 client requests and 5 writes per poll and then
/// returns `Pending` without re-arming a waker for the rest. Polled once per wake-up,
/// a full window of submits (and the deliver_sm_resp of every receipt) queues behind
/// that limit; with no incoming traffic after a burst, the rest waited for the next
/// enquire_link (seen as submits stalling for tens of seconds). Each wake-up polls it
/// up to [`POLLS_PER_WAKE`] times (an idle poll is cheap), and a 2 ms tick bounds
/// what is still left.
async fn drive(connection: impl std::future::Future<Output = ()>) {
    let mut connection = std::pin::pin!(connection);
    let mut tick = tokio::time::interval(Duration::from_millis(2));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    std::future::poll_fn(|cx| {
        loop {
            for _ in 0..POLLS_PER_WAKE {
                if connection.as_mut().poll(cx).is_ready() {
                    return std::task::Poll::Ready(());
                }
            }
            // Wait for a wake-up, or the tick.
            if tick.poll_tick(cx).is_pending() {
                return std::task::Poll::Pending;
            }
        }
    })
    .await
}

/// Polls of the connection per wake-up: up to 5 requests and 5 writes each.
const POLLS_PER_WAKE: usize = 8;

fn cstr<const MIN: usize, const MAX: usize>(s: &str) -> COctetString<MIN, MAX> {
    COctetString::from_str(s).unwrap_or_else(|_| COctetString::empty())
}

async fn serve(
    me: &Bind,
    cfg: &ConnectorConfig,
    client: &Client,
    mut events: impl futures::Stream<Item = Event> + Unpin,
    sinks: &Sinks,
    cancel: &CancellationToken,
) {
    loop {
        let ev = tokio::select! {
            _ = cancel.cancelled() => return,
            ev = events.next() => ev,
        };
        let Some(ev) = ev else { return };
        let cmd = match ev {
            Event::Incoming(cmd) => cmd,
            Event::Error(e) => {
                tracing::warn!(bind = %me.id, error = %e, "SMPP connection error");
                me.note_error(&e.to_string());
                continue;
            }
        };
        let seq = cmd.sequence_number();
        match cmd.pdu() {
            Some(Pdu::DeliverSm(d)) => {
                let c = client.clone();
                // Acknowledge only once stored: a crash before that makes the SMSC
                // deliver it again.
                let stored = match dlr::receipt_from(d, cfg.receipt_ids) {
                    Some(mut r) => {
                        r.provider_id = super::connector::scoped_id(&cfg.name, &r.provider_id);
                        me.clock.received(&r.provider_id);
                        let sink = sinks.receipts.clone();
                        tokio::spawn(async move { sink.deliver(r).await })
                    }
                    None => {
                        let part = mo::part_from(d, &cfg.name);
                        let sink = sinks.inbound.clone();
                        tokio::spawn(async move { sink.receive(part).await })
                    }
                };
                tokio::spawn(async move {
                    let ok = stored.await.unwrap_or(false);
                    let status = if ok {
                        CommandStatus::EsmeRok
                    } else {
                        CommandStatus::EsmeRxTAppn
                    };
                    let _ = c
                        .status(status)
                        .deliver_sm_resp(seq, DeliverSmResp::default())
                        .await;
                });
            }
            Some(Pdu::Unbind) => {
                let _ = client.unbind_resp(seq).await;
                return;
            }
            _ => {}
        }
    }
}
