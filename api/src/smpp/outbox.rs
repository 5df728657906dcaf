//! Receipts and inbound messages to receiver binds. The outbox rows (written by the
//! event-log read and the inbound transaction) wait in the store until a receiver or
//! transceiver bind of their account is open in some process; this process leases
//! what its binds can take, hands each row to one bind, and deletes it once the client
//! answered `deliver_sm_resp` OK. A row not acknowledged (error, 30 s without an
//! answer, the bind closed, the process died) is due again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hermod_core::smpp::{OutboxItem, SmppStore};
use tokio::sync::{Notify, mpsc};

use super::Shared;

/// How often the outbox is read while binds wait.
const POLL: Duration = Duration::from_millis(20);
/// How long a leased row is this process's (longer than an answer may take).
const LEASE_MS: i64 = 60_000;
/// Rows leased per read at most.
const MAX_LEASE: usize = 1000;
/// Acknowledged rows are kept this long (see `SmppStore::ack_outbox`), and purged this
/// often.
const KEEP_DONE_MS: i64 = 3_600_000;
const PURGE_EVERY: Duration = Duration::from_secs(300);

/// A bind's answer to one row.
pub(crate) enum Done {
    Acked(i64),
    /// Due again after this many ms.
    Retry(i64, i64),
}

struct Receiver {
    id: u64,
    tx: mpsc::Sender<OutboxItem>,
}

pub(crate) struct Hub {
    store: Arc<dyn SmppStore>,
    receivers: Mutex<HashMap<String, Vec<Receiver>>>,
    wake: Notify,
    done_tx: mpsc::UnboundedSender<Done>,
    done_rx: Mutex<Option<mpsc::UnboundedReceiver<Done>>>,
    next: AtomicU64,
}

impl Hub {
    pub(crate) fn new(store: Arc<dyn SmppStore>) -> Self {
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        Self {
            store,
            receivers: Mutex::default(),
            wake: Notify::new(),
            done_tx,
            done_rx: Mutex::new(Some(done_rx)),
            next: AtomicU64::new(1),
        }
    }

    /// A receiver bind of `system_id` that takes up to `window` rows at a time.
    pub(crate) fn register(
        &self,
        system_id: &str,
        window: usize,
    ) -> (u64, mpsc::Receiver<OutboxItem>) {
        let (tx, rx) = mpsc::channel(window.max(1));
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut r) = self.receivers.lock() {
            r.entry(system_id.to_owned())
                .or_default()
                .push(Receiver { id, tx });
        }
        self.wake.notify_one();
        (id, rx)
    }

    pub(crate) fn unregister(&self, system_id: &str, id: u64) {
        if let Ok(mut r) = self.receivers.lock()
            && let Some(v) = r.get_mut(system_id)
        {
            v.retain(|x| x.id != id);
            if v.is_empty() {
                r.remove(system_id);
            }
        }
    }

    pub(crate) fn done(&self, d: Done) {
        let _ = self.done_tx.send(d);
        self.wake.notify_one();
    }

    /// Accounts with binds here, and how many rows they can take now.
    fn room(&self) -> (Vec<String>, usize) {
        let Ok(r) = self.receivers.lock() else {
            return (Vec::new(), 0);
        };
        let mut ids = Vec::new();
        let mut room = 0;
        for (sid, v) in r.iter() {
            let free: usize = v.iter().map(|x| x.tx.capacity()).sum();
            if free > 0 {
                ids.push(sid.clone());
                room += free;
            }
        }
        (ids, room)
    }

    /// Hands a row to a bind of its account; the row's id when none has room.
    fn hand(&self, item: OutboxItem) -> Result<(), i64> {
        let id = item.id;
        let Ok(r) = self.receivers.lock() else {
            return Err(id);
        };
        // The bind with the most room.
        let Some(best) = r
            .get(&item.system_id)
            .and_then(|v| v.iter().max_by_key(|x| x.tx.capacity()))
        else {
            return Err(id);
        };
        best.tx.try_send(item).map_err(|_| id)
    }
}

pub(crate) async fn run(shared: Arc<Shared>) {
    let hub = &shared.hub;
    let Some(mut done) = hub.done_rx.lock().ok().and_then(|mut d| d.take()) else {
        return;
    };
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut purged = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = shared.cancel.cancelled() => break,
            _ = tick.tick() => {}
            _ = hub.wake.notified() => {}
        }
        settle(hub, &mut done).await;
        if purged.elapsed() >= PURGE_EVERY {
            purged = tokio::time::Instant::now();
            if let Err(e) = hub
                .store
                .purge_outbox(hermod_core::now_ms() - KEEP_DONE_MS)
                .await
            {
                tracing::warn!(error = %e, "SMPP outbox purge failed");
            }
        }
        let (ids, room) = hub.room();
        if room == 0 {
            continue;
        }
        let items = match hub
            .store
            .lease_outbox(&ids, room.min(MAX_LEASE), LEASE_MS)
            .await
        {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!(error = %e, "SMPP outbox read failed");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let mut back = Vec::new();
        for item in items {
            if let Err(id) = hub.hand(item) {
                back.push(id);
            }
        }
        if !back.is_empty()
            && let Err(e) = hub.store.release_outbox(&back, 0).await
        {
            tracing::warn!(error = %e, "SMPP outbox release failed");
        }
    }
    settle(hub, &mut done).await;
}

/// Writes the answers so far: acknowledged rows deleted, the rest due again.
async fn settle(hub: &Hub, done: &mut mpsc::UnboundedReceiver<Done>) {
    let mut acked = Vec::new();
    let mut retry: HashMap<i64, Vec<i64>> = HashMap::new();
    while let Ok(d) = done.try_recv() {
        match d {
            Done::Acked(id) => acked.push(id),
            Done::Retry(id, delay) => retry.entry(delay).or_default().push(id),
        }
    }
    if let Err(e) = hub.store.ack_outbox(&acked).await {
        tracing::warn!(error = %e, "SMPP outbox acknowledgement failed; sent again later");
    }
    for (delay, ids) in retry {
        if let Err(e) = hub.store.release_outbox(&ids, delay).await {
            tracing::warn!(error = %e, "SMPP outbox release failed");
        }
    }
}
