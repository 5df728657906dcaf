//! Customer webhooks. The event log is the queue: one process at a time holds the
//! store's cursor, reads published events after it and POSTs (signed) each to its
//! destinations at once. What fails, or waits too long for a busy or unhealthy
//! endpoint, becomes a delivery row retried with backoff (as do inbound messages,
//! written as rows with them). The cursor moves once everything before it went out or
//! became a row, with one audit fact per tenant for what went out: a healthy endpoint
//! costs no write per event.
//!
//! Each endpoint (scheme, host and port) has its own window of POSTs in flight, which
//! grows while it answers and halves when it fails; after repeated failures it is
//! left alone for a while (its deliveries wait as rows), so a slow or dead endpoint
//! holds only its own slots and never the others' events.

mod rows;
#[allow(unused_imports)]
pub use rows::*;

mod endpoint;
#[allow(unused_imports)]
pub use endpoint::*;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hermod_core::now_ms;
use hermod_core::webhook::*;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::pause;

/// POSTs in flight at once in this process.
const IN_FLIGHT: usize = 512;
/// POSTs one tenant may have in flight: its endpoints, however many and however slow,
/// leave the rest to the others.
const TENANT_IN_FLIGHT: usize = IN_FLIGHT / 4;
/// An endpoint's window: where it starts, and its bounds.
const WINDOW_START: f64 = 16.0;
const WINDOW_MAX: f64 = 256.0;
/// Consecutive failures after which an endpoint is left alone for a while.
const TRIP_AFTER: u32 = 5;
const TRIPPED_MAX: Duration = Duration::from_secs(60);
/// A delivery from the log that waited this long for its endpoint becomes a row.
const LOG_WAIT: Duration = Duration::from_secs(1);
/// Events read at once, and read pages not yet committed.
const PAGE: usize = 512;
const PAGES: usize = 256;
/// Deliveries waiting for a slot in this process before the log is read further.
const WAITING_MAX: usize = 8192;
/// How often the log is looked at when the last read found nothing.
const LOG_POLL: Duration = Duration::from_millis(10);
/// Leading pages that went out are committed at most this often.
const COMMIT_EVERY: Duration = Duration::from_millis(50);
/// The cursor's claim, renewed by every commit (and by itself every third of it).
const CURSOR_TTL: Duration = Duration::from_secs(15);
/// Delivery rows held in this process.
const HELD_ROWS: usize = 512;
/// How long a leased row is ours. One held locally for longer than the lease less a
/// POST's time is dropped here (another worker may have it by then).
const LEASE: Duration = Duration::from_secs(60);
const STALE: Duration = Duration::from_secs(40);

/// Where a POST came from.
#[derive(Clone, Debug)]
enum Source {
    /// The event log: the page it was read in, and the event.
    Log { page: u64, seq: i64 },
    /// A delivery row.
    Row {
        id: i64,
        attempts: i32,
        created_at: i64,
    },
}

#[derive(Clone, Debug)]
struct Job {
    source: Source,
    tenant_id: String,
    endpoint_id: Option<String>,
    url: String,
    event_type: String,
    message_id: Option<String>,
    payload: String,
    secret: Option<String>,
    queued_at: Instant,
}

impl Job {
    fn post(&self) -> DueDelivery {
        DueDelivery {
            id: match self.source {
                Source::Row { id, .. } => id,
                Source::Log { .. } => 0,
            },
            tenant_id: self.tenant_id.clone(),
            url: self.url.clone(),
            payload: self.payload.clone(),
            secret: self.secret.clone(),
            attempts: 0,
            created_at: 0,
        }
    }

    fn retry(&self, attempts: i32, answer: Option<&Result<u16, PostError>>) -> RetryDelivery {
        let (last_status, last_error) = match answer {
            None => (None, None),
            Some(Ok(code)) => (Some(*code), Some(format!("http_{code}"))),
            Some(Err(e)) => (None, Some(e.to_string())),
        };
        RetryDelivery {
            tenant_id: self.tenant_id.clone(),
            endpoint_id: self.endpoint_id.clone(),
            url: self.url.clone(),
            event_type: self.event_type.clone(),
            message_id: self.message_id.clone(),
            payload: self.payload.clone(),
            attempts,
            last_status,
            last_error,
            retry_in: if attempts == 0 {
                Duration::ZERO
            } else {
                retry_backoff(attempts)
            },
        }
    }
}

/// A page read from the log: what is still out, and what to store when it is done.
struct Page {
    id: u64,
    next: EventCursor,
    outstanding: usize,
    retry: Vec<RetryDelivery>,
    /// Per tenant: first and last event delivered, and POSTs delivered.
    delivered: HashMap<String, (i64, i64, u64)>,
}

/// The stage's state in this process.
struct Stage {
    store: Arc<dyn Webhooks>,
    poster: Arc<dyn WebhookPoster>,
    holder: String,
    endpoints: HashMap<String, Endpoint>,
    in_flight: usize,
    /// POSTs in flight per tenant (at most TENANT_IN_FLIGHT each).
    tenant_in_flight: HashMap<String, usize>,
    waiting: usize,
    /// The read position (None: the cursor is not ours).
    cursor: Option<EventCursor>,
    claimed_at: Instant,
    pages: VecDeque<Page>,
    next_page: u64,
    last_commit: Instant,
    last_read_empty: Option<Instant>,
    held_rows: usize,
    done_tx: mpsc::UnboundedSender<(Job, Result<u16, PostError>)>,
    rows_tx: mpsc::Sender<DeliveryResult>,
}

pub(crate) async fn run(
    store: Arc<dyn Webhooks>,
    poster: Arc<dyn WebhookPoster>,
    cancel: CancellationToken,
) {
    let (rows_tx, rows_rx) = mpsc::channel::<DeliveryResult>(IN_FLIGHT * 4);
    tokio::spawn(record(store.clone(), rows_rx, cancel.clone()));
    tokio::spawn(purge(store.clone(), cancel.clone()));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let mut s = Stage {
        store,
        poster,
        holder: format!("{}-{}", std::process::id(), uuid::Uuid::now_v7().simple()),
        endpoints: HashMap::new(),
        in_flight: 0,
        tenant_in_flight: HashMap::new(),
        waiting: 0,
        cursor: None,
        claimed_at: Instant::now(),
        pages: VecDeque::new(),
        next_page: 0,
        last_commit: Instant::now(),
        last_read_empty: None,
        held_rows: 0,
        done_tx,
        rows_tx,
    };
    let mut last_rows = Instant::now() - Duration::from_secs(1);
    while !cancel.is_cancelled() {
        while let Ok((job, answer)) = done_rx.try_recv() {
            s.finished(job, answer);
        }
        s.commit().await;
        s.claim().await;
        let read = s.read_log().await;
        if last_rows.elapsed() >= Duration::from_millis(100) || read {
            s.lease_rows().await;
            last_rows = Instant::now();
        }
        let started = s.start().await;
        if !read && started == 0 {
            tokio::select! {
                _ = cancel.cancelled() => return,
                d = done_rx.recv() => if let Some((job, answer)) = d {
                    s.finished(job, answer);
                },
                _ = tokio::time::sleep(LOG_POLL) => {}
            }
        }
    }
}

impl Stage {
    /// Takes the cursor when it is free, and keeps the claim alive while idle.
    async fn claim(&mut self) {
        let due = match self.cursor {
            Some(_) => self.claimed_at.elapsed() >= CURSOR_TTL / 3,
            None => self.claimed_at.elapsed() >= CURSOR_TTL / 3 || self.next_page == 0,
        };
        if !due {
            return;
        }
        self.claimed_at = Instant::now();
        match self.store.claim_cursor(&self.holder, CURSOR_TTL).await {
            Ok(Some(c)) => {
                if self.cursor.is_none() {
                    tracing::debug!(seq = c.seq, "webhook cursor taken");
                    self.cursor = Some(c);
                    self.next_page = self.next_page.max(1);
                }
            }
            Ok(None) => self.lost(),
            Err(e) => tracing::warn!(error = %e, "claiming the webhook cursor failed"),
        }
    }

    /// Another process has the cursor now: what was read here is its to send.
    fn lost(&mut self) {
        if self.cursor.is_some() {
            tracing::warn!("webhook cursor taken over by another process");
        }
        self.forget_log();
    }

    /// Drops what was read from the log and not committed (it is read again, by this
    /// process or the one holding the cursor).
    fn forget_log(&mut self) {
        self.cursor = None;
        self.pages.clear();
        self.next_page = self.next_page.max(1);
        for e in self.endpoints.values_mut() {
            let before = e.waiting.len();
            e.waiting.retain(|j| matches!(j.source, Source::Row { .. }));
            self.waiting -= before - e.waiting.len();
        }
    }

    /// Reads the next page of events when there is room; true when it found some.
    async fn read_log(&mut self) -> bool {
        let Some(cursor) = self.cursor.clone() else {
            return false;
        };
        if self.pages.len() >= PAGES || self.waiting >= WAITING_MAX {
            return false;
        }
        if self.last_read_empty.is_some_and(|t| t.elapsed() < LOG_POLL) {
            return false;
        }
        let page = match self.store.events_after(&cursor, PAGE).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "reading the event log failed");
                self.last_read_empty = Some(Instant::now());
                return false;
            }
        };
        if page.next.seq == cursor.seq && page.events.is_empty() {
            // Nothing new; the running transactions may have changed.
            self.cursor = Some(page.next);
            self.last_read_empty = Some(Instant::now());
            return false;
        }
        self.last_read_empty = None;
        let id = self.next_page;
        self.next_page += 1;
        let mut p = Page {
            id,
            next: page.next.clone(),
            outstanding: 0,
            retry: Vec::new(),
            delivered: HashMap::new(),
        };
        let now = Instant::now();
        for ev in page.events {
            for d in ev.destinations {
                let job = Job {
                    source: Source::Log {
                        page: id,
                        seq: ev.seq,
                    },
                    tenant_id: ev.tenant_id.clone(),
                    endpoint_id: d.endpoint_id,
                    url: d.url,
                    event_type: ev.event_type.clone(),
                    message_id: Some(ev.message_id.clone()),
                    payload: d.payload.unwrap_or_else(|| ev.payload.clone()),
                    secret: d.secret,
                    queued_at: now,
                };
                let e = self
                    .endpoints
                    .entry(origin(&job.url).to_owned())
                    .or_default();
                if e.tripped(now) {
                    // Left alone for now: straight to a row.
                    p.retry.push(job.retry(0, None));
                } else {
                    p.outstanding += 1;
                    e.waiting.push_back(job);
                    self.waiting += 1;
                }
            }
        }
        self.cursor = Some(page.next);
        self.pages.push_back(p);
        true
    }

    /// Leases due delivery rows while few are held here.
    async fn lease_rows(&mut self) {
        if self.held_rows >= HELD_ROWS / 2 {
            return;
        }
        let due = match self
            .store
            .due_deliveries(HELD_ROWS - self.held_rows, LEASE)
            .await
        {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "leasing webhook deliveries failed");
                return;
            }
        };
        let now = Instant::now();
        let mut deferred: Vec<(i64, Duration)> = Vec::new();
        for d in due {
            let e = self.endpoints.entry(origin(&d.url).to_owned()).or_default();
            if let Some(until) = e.tripped_until.filter(|t| *t > now) {
                deferred.push((d.id, until - now));
                continue;
            }
            e.waiting.push_back(Job {
                source: Source::Row {
                    id: d.id,
                    attempts: d.attempts,
                    created_at: d.created_at,
                },
                tenant_id: d.tenant_id,
                endpoint_id: None,
                url: d.url,
                event_type: String::new(),
                message_id: None,
                payload: d.payload,
                secret: d.secret,
                queued_at: now,
            });
            self.waiting += 1;
            self.held_rows += 1;
        }
        let mut by_delay: HashMap<u64, Vec<i64>> = HashMap::new();
        for (id, d) in deferred {
            by_delay.entry(d.as_secs() + 1).or_default().push(id);
        }
        for (secs, ids) in by_delay {
            if let Err(e) = self
                .store
                .defer_deliveries(&ids, Duration::from_secs(secs))
                .await
            {
                tracing::warn!(error = %e, "deferring webhook deliveries failed");
            }
        }
    }

    /// Starts what the windows allow; log deliveries that waited too long become rows,
    /// and rows waiting for an endpoint that is left alone go back for later.
    async fn start(&mut self) -> usize {
        let now = Instant::now();
        let mut started = 0;
        let mut expired: Vec<Job> = Vec::new();
        for (_, e) in self.endpoints.iter_mut() {
            if e.tripped(now) {
                // Everything waiting for it goes back: log deliveries to rows, rows
                // to their lease (they come back when it ran out).
                while let Some(j) = e.waiting.pop_front() {
                    expired.push(j);
                }
                continue;
            }
            while e.has_room() && self.in_flight < IN_FLIGHT {
                // The first job whose tenant has a share left (an origin may serve
                // several tenants: one at its share does not hold up the others).
                let tenants = &self.tenant_in_flight;
                let Some(i) = e.waiting.iter().position(|j| {
                    tenants.get(&j.tenant_id).copied().unwrap_or(0) < TENANT_IN_FLIGHT
                }) else {
                    break;
                };
                let Some(job) = e.waiting.remove(i) else {
                    break;
                };
                if let Source::Row { .. } = job.source
                    && job.queued_at.elapsed() > STALE
                {
                    expired.push(job);
                    continue;
                }
                e.in_flight += 1;
                self.in_flight += 1;
                *self
                    .tenant_in_flight
                    .entry(job.tenant_id.clone())
                    .or_default() += 1;
                started += 1;
                let (poster, done) = (self.poster.clone(), self.done_tx.clone());
                let span = tracing::info_span!(
                    "webhook",
                    event = %job.event_type,
                    message_id = job.message_id.as_deref().unwrap_or_default(),
                );
                tokio::spawn(
                    async move {
                        let answer = poster.post(&job.post()).await;
                        tracing::debug!(answer = ?answer, "posted");
                        let _ = done.send((job, answer));
                    }
                    .instrument(span),
                );
            }
            // Log deliveries stuck behind a slow endpoint go to rows.
            while e.waiting.front().is_some_and(|j| {
                matches!(j.source, Source::Log { .. }) && now - j.queued_at > LOG_WAIT
            }) {
                if let Some(j) = e.waiting.pop_front() {
                    expired.push(j);
                }
            }
        }
        self.endpoints.retain(|_, e| !e.is_idle());
        let mut later = Vec::new();
        for job in expired {
            self.waiting -= 1;
            match job.source {
                Source::Log { page, .. } => {
                    if let Some(p) = self.pages.iter_mut().find(|p| p.id == page) {
                        p.retry.push(job.retry(0, None));
                        p.outstanding -= 1;
                    }
                }
                Source::Row { id, .. } => {
                    self.held_rows = self.held_rows.saturating_sub(1);
                    later.push(id);
                }
            }
        }
        self.waiting -= started;
        if !later.is_empty()
            && let Err(e) = self
                .store
                .defer_deliveries(&later, Duration::from_secs(1))
                .await
        {
            // Their leases run out and they are due again.
            tracing::warn!(error = %e, "deferring webhook deliveries failed");
        }
        started
    }

    fn finished(&mut self, job: Job, answer: Result<u16, PostError>) {
        let now = Instant::now();
        self.in_flight = self.in_flight.saturating_sub(1);
        if let Some(n) = self.tenant_in_flight.get_mut(&job.tenant_id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.tenant_in_flight.remove(&job.tenant_id);
            }
        }
        if let Some(e) = self.endpoints.get_mut(origin(&job.url)) {
            e.finished(health(&answer), now);
        }
        match job.source {
            Source::Log { page, seq } => {
                let Some(p) = self.pages.iter_mut().find(|p| p.id == page) else {
                    // The cursor was lost meanwhile.
                    return;
                };
                p.outstanding -= 1;
                if is_success(&answer) {
                    let d = p
                        .delivered
                        .entry(job.tenant_id.clone())
                        .or_insert((seq, seq, 0));
                    d.0 = d.0.min(seq);
                    d.1 = d.1.max(seq);
                    d.2 += 1;
                } else {
                    tracing::debug!(
                        url_origin = origin(&job.url),
                        "webhook delivery failed; kept to retry"
                    );
                    p.retry.push(job.retry(1, Some(&answer)));
                }
            }
            Source::Row {
                id,
                attempts,
                created_at,
            } => {
                self.held_rows = self.held_rows.saturating_sub(1);
                let due = DueDelivery {
                    id,
                    tenant_id: String::new(),
                    url: String::new(),
                    payload: String::new(),
                    secret: None,
                    attempts,
                    created_at,
                };
                let result = outcome(&due, answer, now_ms());
                if let Err(e) = self.rows_tx.try_send(result) {
                    // The recorder is behind: the lease runs out and it goes again.
                    tracing::warn!(error = %e, "webhook outcome not recorded");
                }
            }
        }
    }

    /// Moves the cursor past the leading pages that went out.
    async fn commit(&mut self) {
        let ready = self.pages.iter().take_while(|p| p.outstanding == 0).count();
        if ready == 0 || (self.last_commit.elapsed() < COMMIT_EVERY && ready < 16) {
            return;
        }
        let done: Vec<Page> = self.pages.drain(..ready).collect();
        let mut retry = Vec::new();
        let mut delivered: HashMap<String, (i64, i64, u64)> = HashMap::new();
        let mut to = EventCursor::default();
        for p in done {
            retry.extend(p.retry);
            for (t, (a, b, n)) in p.delivered {
                let d = delivered.entry(t).or_insert((a, b, 0));
                d.0 = d.0.min(a);
                d.1 = d.1.max(b);
                d.2 += n;
            }
            to = p.next;
        }
        let ranges: Vec<DeliveredRange> = delivered
            .into_iter()
            .map(
                |(tenant_id, (from_seq, to_seq, deliveries))| DeliveredRange {
                    tenant_id,
                    from_seq,
                    to_seq,
                    deliveries,
                },
            )
            .collect();
        self.last_commit = Instant::now();
        match self
            .store
            .advance_cursor(&self.holder, CURSOR_TTL, &to, &retry, &ranges)
            .await
        {
            Ok(true) => self.claimed_at = Instant::now(),
            Ok(false) => self.lost(),
            Err(e) => {
                // Read again from the last committed position: what went out since
                // goes again (receivers dedupe by event id).
                tracing::warn!(error = %e, "moving the webhook cursor failed; rereading");
                self.forget_log();
                self.claimed_at = Instant::now() - CURSOR_TTL;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn due(created_at: i64, attempts: i32) -> DueDelivery {
        DueDelivery {
            id: 1,
            tenant_id: "ten_a".into(),
            url: "http://x".into(),
            payload: "{}".into(),
            secret: None,
            attempts,
            created_at,
        }
    }

    #[test]
    fn an_endpoint_window_grows_while_used_and_halves_on_failure() {
        let now = Instant::now();
        let mut e = Endpoint::default();
        for _ in 0..16 {
            assert!(e.has_room());
            e.in_flight += 1;
        }
        assert!(!e.has_room(), "the window is full");
        e.finished(Health::Up, now);
        assert_eq!(e.window, WINDOW_START + 1.0, "a full window grows");
        e.finished(Health::Failed, now);
        assert_eq!(e.window, WINDOW_START + 1.0, "a 500 keeps it");
        e.finished(Health::Overloaded, now);
        assert_eq!(e.window, (WINDOW_START + 1.0) / 2.0);
        // A window of 8: sixteen failures in a row leave it alone (two so far).
        assert_eq!((e.window.floor(), e.failures), (8.0, 2));
        while e.failures < 15 {
            e.finished(Health::Failed, now);
        }
        assert!(!e.tripped(now), "fifteen in a row can be chance");
        e.finished(Health::Failed, now);
        assert!(e.tripped(now), "left alone after repeated failures");
        // What was in flight fails too: the wait does not grow.
        let until = e.tripped_until;
        e.finished(Health::Failed, now + Duration::from_millis(500));
        assert_eq!(e.tripped_until, until);
        let later = now + Duration::from_secs(1);
        assert!(!e.tripped(later), "then tried again");
        assert_eq!(e.window, 1.0, "with one POST");
        // That one fails: left alone again at once, twice as long.
        e.finished(Health::Failed, later);
        assert_eq!(e.tripped_until, Some(later + Duration::from_secs(2)));
        // A success ends it.
        e.finished(Health::Up, later);
        assert!(!e.tripped(later) && e.failures == 0 && e.trips == 0);
    }

    /// An endpoint failing one POST in five, with a full window in flight, is never
    /// left alone (it was, every minute or so, and its deliveries fell far behind).
    #[test]
    fn a_flaky_endpoint_is_not_left_alone() {
        let now = Instant::now();
        let mut e = Endpoint {
            window: 64.0,
            ..Endpoint::default()
        };
        // A fixed pseudo-random sequence: about one in five fails.
        let mut x: u32 = 12345;
        for _ in 0..200_000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let health = if (x >> 16).is_multiple_of(5) {
                Health::Failed
            } else {
                Health::Up
            };
            e.in_flight += 1;
            e.finished(health, now);
            assert!(!e.tripped(now), "left alone after {} failures", e.failures);
        }
    }

    #[test]
    fn answers_that_say_down_or_overloaded() {
        assert_eq!(health(&Ok(204)), Health::Up);
        assert_eq!(health(&Ok(404)), Health::Up, "an answer, though a refusal");
        assert_eq!(health(&Ok(500)), Health::Failed);
        for down in [Ok(503), Ok(429), Ok(502), Ok(504), Err(PostError::Timeout)] {
            assert_eq!(health(&down), Health::Overloaded, "{down:?}");
        }
        assert!(is_success(&Ok(200)) && !is_success(&Ok(404)));
    }

    #[test]
    fn endpoints_are_their_origin() {
        assert_eq!(
            origin("https://a.example:8443/hook?x=1"),
            "https://a.example:8443"
        );
        assert_eq!(origin("http://a.example"), "http://a.example");
    }

    #[test]
    fn failures_retry_for_the_period_then_give_up() {
        let ok = outcome(&due(0, 0), Ok(204), 10);
        assert!(ok.error.is_none() && ok.retry_in.is_none());
        let down = outcome(&due(0, 2), Ok(503), 1_000);
        assert_eq!(down.error.as_deref(), Some("http_503"));
        assert_eq!(down.retry_in, Some(Duration::from_secs(4)));
        let timeout = outcome(&due(0, 0), Err(PostError::Timeout), 1_000);
        assert_eq!(timeout.retry_in, Some(Duration::from_secs(1)));
        let old = i64::try_from(RETRY_PERIOD.as_millis()).unwrap() + 1;
        let gave_up = outcome(&due(0, 40), Ok(500), old);
        assert!(gave_up.error.is_some() && gave_up.retry_in.is_none());
        let blocked = outcome(&due(0, 0), Err(PostError::Blocked), 1_000);
        assert_eq!(blocked.error.as_deref(), Some("blocked_address"));
        assert!(blocked.retry_in.is_none(), "a refused address is final");
    }
}
