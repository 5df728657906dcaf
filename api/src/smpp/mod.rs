//! The SMPP server: client applications (ESMEs) bind to Hermod as to an SMSC. What
//! they submit takes the same pipeline as `POST /v1/messages` (sender ownership, opt-outs,
//! rate limits, channel choice, fallback); receipts and inbound messages come back as
//! `deliver_sm` from a durable outbox (see `outbox`).
//!
//! SMPP 3.4, with the 5.0 TLVs 3.4 clients send: bind_transmitter, bind_receiver,
//! bind_transceiver, enquire_link, unbind, submit_sm, data_sm, submit_multi, query_sm,
//! cancel_sm, replace_sm; generic_nack for unknown or malformed PDUs.

pub mod accounts;
mod outbox;
mod pdu;
mod session;
mod submit;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hermod_core::smpp::SmppStore;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::AppState;

/// A socket the server accepts binds on, with TLS (`listen_tls`) or without.
pub struct Listener {
    pub tcp: TcpListener,
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// What the sessions of one process share.
pub(crate) struct Shared {
    pub(crate) state: AppState,
    pub(crate) store: Arc<dyn SmppStore>,
    pub(crate) hub: outbox::Hub,
    /// Open binds per system_id.
    binds: Mutex<HashMap<String, u32>>,
    /// Submit budget per system_id: (tokens, last refill).
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
    pub(crate) cancel: CancellationToken,
}

impl Shared {
    /// Takes a bind slot; false at the account's limit.
    fn open_bind(&self, system_id: &str, max: u32) -> bool {
        let Ok(mut b) = self.binds.lock() else {
            return false;
        };
        let n = b.entry(system_id.to_owned()).or_default();
        if *n >= max.max(1) {
            return false;
        }
        *n += 1;
        true
    }

    fn close_bind(&self, system_id: &str) {
        if let Ok(mut b) = self.binds.lock()
            && let Some(n) = b.get_mut(system_id)
        {
            *n = n.saturating_sub(1);
        }
    }

    /// One submit against the account's throughput (a bucket of one second's worth).
    fn take_submit(&self, system_id: &str, per_sec: u32, n: u32) -> bool {
        if per_sec == 0 {
            return true;
        }
        let Ok(mut b) = self.buckets.lock() else {
            return false;
        };
        let rate = f64::from(per_sec);
        let now = Instant::now();
        let (tokens, at) = b.entry(system_id.to_owned()).or_insert((rate, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * rate).min(rate);
        *at = now;
        let need = f64::from(n);
        if *tokens >= need {
            *tokens -= need;
            true
        } else {
            false
        }
    }
}

/// Serves SMPP on `listeners` until `cancel`.
pub async fn serve(
    state: AppState,
    store: Arc<dyn SmppStore>,
    listeners: Vec<Listener>,
    cancel: CancellationToken,
) {
    let hub = outbox::Hub::new(store.clone());
    let shared = Arc::new(Shared {
        state,
        store,
        hub,
        binds: Mutex::default(),
        buckets: Mutex::default(),
        cancel: cancel.clone(),
    });
    tokio::spawn(outbox::run(shared.clone()));
    let mut tasks = Vec::new();
    for l in listeners {
        tasks.push(tokio::spawn(accept(shared.clone(), l)));
    }
    cancel.cancelled().await;
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
}

async fn accept(shared: Arc<Shared>, l: Listener) {
    let acceptor = l.tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        let got = tokio::select! {
            _ = shared.cancel.cancelled() => return,
            a = l.tcp.accept() => a,
        };
        let (sock, peer): (tokio::net::TcpStream, SocketAddr) = match got {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "SMPP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = sock.set_nodelay(true);
        let shared = shared.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            match acceptor {
                None => session::run(shared, sock, peer).await,
                Some(a) => {
                    match tokio::time::timeout(Duration::from_secs(10), a.accept(sock)).await {
                        Ok(Ok(tls)) => session::run(shared, tls, peer).await,
                        Ok(Err(e)) => {
                            tracing::info!(error = %e, %peer, "SMPP TLS handshake failed")
                        }
                        Err(_) => tracing::info!(%peer, "SMPP TLS handshake timed out"),
                    }
                }
            }
        });
    }
}
