//! The RabbitMQ backend (distributed mode), with lapin.
//!
//! - Every stage is a durable **quorum** queue `{prefix}.{stage}`.
//! - **Publisher confirms** on every publish: `publish` returns only once the broker
//!   has every job (or fails loudly; callers keep their outbox rows or do not ack).
//! - **Manual acks**, sent only when the caller acknowledges (after the store has
//!   recorded the outcome); `prefetch` bounds what a consumer holds.
//! - **Delayed retry**: a job to retry is republished, with its delivery count in a
//!   header, to `{prefix}.{stage}.delay.{ms}` — a durable queue without consumers whose
//!   message TTL dead-letters it back to the stage — and only then acknowledged. Delays
//!   round up to a fixed ladder (1 s … 5 min), one queue per step, so nothing waits
//!   behind a longer TTL.
//! - **Poison jobs**: past `max_deliveries` a job goes to `{prefix}.dead` (visible
//!   through [`Queue::dead_letters`]) instead of being handed out again.
//! - **Fast lane**: high-priority jobs go to `{prefix}.{stage}.high`, which `receive`
//!   drains before the stage's own queue (its own consumer, so bulk deliveries the
//!   broker has already pushed never stand in front of it). These are durable
//!   *classic* queues (persistent messages, publisher confirms): every quorum queue is
//!   a Raft group of its own, and doubling them made RabbitMQ 3.10 on a small host
//!   stall declaring them; quorum queues only gained priorities in 3.12. Redeliveries
//!   after a lost consumer are not counted there (no `x-delivery-count`), retries are.
//! - **Connection loss**: consumers reconnect with backoff and resume; a publish on a
//!   lost connection reconnects once and otherwise returns an error, never drops.
//!   Every broker round trip is bounded by [`ROUND_TRIP`], and consumers watch their
//!   channel's state: when the broker closes a connection cleanly, lapin can leave the
//!   calls in flight pending forever (amqp-rs/lapin#409), so a call without an answer
//!   counts as a lost connection. (RabbitMQ 3.10 closes the whole connection when a
//!   `basic.consume` races a quorum queue's start, for one.)

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use hermod_core::model::{DeadJob, Delivery, Job};
use hermod_core::now_ms;
use hermod_core::ports::{PortError, PortResult, Queue};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Acker, BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use tokio::sync::{Mutex, mpsc};
use tokio_util::sync::CancellationToken;

/// Delay steps for retries, in milliseconds.
const DELAYS_MS: [u64; 10] = [
    1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 256_000, 300_000,
];

const DELIVERIES_HEADER: &str = "x-hermod-deliveries";

/// How long `receive` waits for more deliveries once the first has come.
const LINGER: Duration = Duration::from_millis(5);

/// The longest wait for one broker round trip (connect, declare, consume, confirm…).
pub const ROUND_TRIP: Duration = Duration::from_secs(15);

/// How often a consumer checks that its channel is still open.
const WATCH: Duration = Duration::from_secs(1);

/// `f`, or an error once [`ROUND_TRIP`] has passed without an answer.
async fn bounded<T, E: std::fmt::Display>(
    what: &str,
    f: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, Bounded> {
    match tokio::time::timeout(ROUND_TRIP, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Bounded::Failed(format!("{what}: {e}"))),
        Err(_) => Err(Bounded::Silent(format!(
            "{what}: no answer from the broker in {ROUND_TRIP:?}"
        ))),
    }
}

/// Why a bounded broker call did not succeed.
enum Bounded {
    /// The broker (or lapin) answered with an error.
    Failed(String),
    /// No answer: the connection is presumed lost.
    Silent(String),
}

impl Bounded {
    fn into_port(self) -> PortError {
        match self {
            Bounded::Failed(m) | Bounded::Silent(m) => unavailable(m),
        }
    }
}

#[derive(Clone, Debug)]
pub struct RabbitSettings {
    /// `amqp://user:pass@host:5672/%2f`
    pub url: String,
    /// Queue names start with this (several installations, parallel tests).
    pub prefix: String,
    /// Unacknowledged deliveries per consumer.
    pub prefetch: u16,
    /// Deliveries after which a job is moved to the dead-letter queue.
    pub max_deliveries: i32,
    /// Delete queues unused for this long (`x-expires`): for short-lived
    /// installations such as tests; `None` in production.
    pub expires: Option<Duration>,
}

struct Held {
    acker: Acker,
    job: Job,
    deliveries: i32,
}

/// The RabbitMQ [`Queue`].
pub struct RabbitQueue {
    cfg: RabbitSettings,
    /// The publishing channel (confirm mode) of the current connection.
    session: Mutex<Option<(Arc<Connection>, Channel)>>,
    consumers: Mutex<HashMap<String, Arc<Mutex<mpsc::Receiver<i64>>>>>,
    held: std::sync::Mutex<HashMap<i64, Held>>,
    next_tag: AtomicI64,
    /// Bumped whenever the session is replaced or dropped: consumers on an older
    /// connection move to the new one (the old may be silently dead).
    session_gen: AtomicU64,
    declared: Mutex<HashSet<String>>,
    cancel: CancellationToken,
    me: std::sync::Weak<RabbitQueue>,
}

fn unavailable(e: impl std::fmt::Display) -> PortError {
    PortError::Unavailable(e.to_string().into())
}

fn sstr(s: &str) -> ShortString {
    ShortString::from(s.to_owned())
}

fn expiring(mut t: FieldTable, expires: Option<Duration>) -> FieldTable {
    if let Some(e) = expires {
        let ms = i64::try_from(e.as_millis()).unwrap_or(i64::MAX);
        t.insert(sstr("x-expires"), AMQPValue::LongLongInt(ms));
    }
    t
}

/// A stage queue's arguments: quorum, or classic for a fast lane (see the module docs).
fn stage_args(dead: &str, quorum: bool) -> FieldTable {
    let mut t = FieldTable::default();
    if quorum {
        t.insert(
            sstr("x-queue-type"),
            AMQPValue::LongString(LongString::from("quorum")),
        );
    }
    // Whatever the broker itself gives up on lands in the dead-letter queue too.
    t.insert(
        sstr("x-dead-letter-exchange"),
        AMQPValue::LongString(LongString::from("")),
    );
    t.insert(
        sstr("x-dead-letter-routing-key"),
        AMQPValue::LongString(LongString::from(dead)),
    );
    t
}

fn header_i64(p: &BasicProperties, key: &str) -> Option<i64> {
    let h = p.headers().as_ref()?;
    match h.inner().get(&sstr(key))? {
        AMQPValue::LongLongInt(v) => Some(*v),
        AMQPValue::LongInt(v) => Some(i64::from(*v)),
        AMQPValue::ShortInt(v) => Some(i64::from(*v)),
        AMQPValue::LongUInt(v) => Some(i64::from(*v)),
        _ => None,
    }
}

impl RabbitQueue {
    /// Connects (and declares the dead-letter queue); fails when the broker cannot be
    /// reached now.
    pub async fn connect(cfg: RabbitSettings, cancel: CancellationToken) -> PortResult<Arc<Self>> {
        let q = Arc::new_cyclic(|me| Self {
            cfg,
            session: Mutex::new(None),
            consumers: Mutex::new(HashMap::new()),
            held: std::sync::Mutex::new(HashMap::new()),
            next_tag: AtomicI64::new(1),
            session_gen: AtomicU64::new(0),
            declared: Mutex::new(HashSet::new()),
            cancel,
            me: me.clone(),
        });
        q.channel().await?;
        Ok(q)
    }

    fn name(&self, queue: &str) -> String {
        format!("{}.{queue}", self.cfg.prefix)
    }

    fn dead(&self) -> String {
        format!("{}.dead", self.cfg.prefix)
    }

    /// The publishing channel, connecting when there is none (or it broke). The lock is
    /// held while reconnecting on purpose: one connection attempt at a time.
    async fn channel(&self) -> PortResult<Channel> {
        let mut s = self.session.lock().await;
        if let Some((conn, ch)) = s.as_ref()
            && conn.status().connected()
            && ch.status().connected()
        {
            return Ok(ch.clone());
        }
        if let Some((conn, _)) = s.take() {
            self.retire(conn);
        }
        self.declared.lock().await.clear();
        let conn = bounded(
            "connect",
            Connection::connect(
                &self.cfg.url,
                // Operators (and tests) tell installations apart by it.
                ConnectionProperties::default()
                    .with_connection_name(format!("hermod {}", self.cfg.prefix).into()),
            ),
        )
        .await
        .map_err(Bounded::into_port)?;
        let ch = bounded("channel.open", conn.create_channel())
            .await
            .map_err(Bounded::into_port)?;
        bounded(
            "confirm.select",
            ch.confirm_select(ConfirmSelectOptions::default()),
        )
        .await
        .map_err(Bounded::into_port)?;
        let dead = self.dead();
        bounded(
            "queue.declare",
            ch.queue_declare(sstr(&dead), QueueDeclareOptions::durable(), {
                let mut t = FieldTable::default();
                t.insert(
                    sstr("x-queue-type"),
                    AMQPValue::LongString(LongString::from("quorum")),
                );
                expiring(t, self.cfg.expires)
            }),
        )
        .await
        .map_err(Bounded::into_port)?;
        *s = Some((Arc::new(conn), ch.clone()));
        self.session_gen.fetch_add(1, Ordering::Relaxed);
        Ok(ch)
    }

    async fn forget_session(&self) {
        if let Some((conn, _)) = self.session.lock().await.take() {
            self.retire(conn);
        }
    }

    /// Closes a dropped session's connection in the background (it may never answer)
    /// and moves the consumers off it.
    fn retire(&self, conn: Arc<Connection>) {
        self.session_gen.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let _ = bounded("connection.close", conn.close(320, sstr("reconnecting"))).await;
        });
    }

    /// A bounded broker call outside [`Self::channel`]: without an answer in time, the
    /// session is dropped so that the next call connects afresh.
    async fn call<T, E: std::fmt::Display>(
        &self,
        what: &str,
        f: impl std::future::Future<Output = Result<T, E>>,
    ) -> PortResult<T> {
        match bounded(what, f).await {
            Ok(v) => Ok(v),
            Err(Bounded::Silent(m)) => {
                tracing::warn!(call = what, "no answer from the broker; reconnecting");
                self.forget_session().await;
                Err(unavailable(m))
            }
            Err(e) => Err(e.into_port()),
        }
    }

    /// Declares a stage queue once per connection.
    async fn declare(&self, ch: &Channel, queue: &str) -> PortResult<String> {
        let name = self.name(queue);
        let quorum = !queue.ends_with(".high");
        let args = expiring(stage_args(&self.dead(), quorum), self.cfg.expires);
        self.declare_once(ch, &name, args).await?;
        Ok(name)
    }

    /// Declares `name` unless this connection did already. The set stays locked across
    /// the broker round trip on purpose: RabbitMQ 3.10 answers a second declare of a
    /// quorum queue that is still starting at once, and a `basic.consume` that follows
    /// finds no queue process and takes the whole connection down (INTERNAL_ERROR).
    async fn declare_once(&self, ch: &Channel, name: &str, args: FieldTable) -> PortResult<()> {
        let mut declared = self.declared.lock().await;
        if declared.contains(name) {
            return Ok(());
        }
        let r = bounded(
            "queue.declare",
            ch.queue_declare(sstr(name), QueueDeclareOptions::durable(), args),
        )
        .await;
        match r {
            Ok(_) => {
                declared.insert(name.to_owned());
                Ok(())
            }
            Err(Bounded::Silent(m)) => {
                // Not under the set's lock: `channel` takes the two the other way round.
                drop(declared);
                tracing::warn!(
                    call = "queue.declare",
                    "no answer from the broker; reconnecting"
                );
                self.forget_session().await;
                Err(unavailable(m))
            }
            Err(e) => Err(e.into_port()),
        }
    }

    /// A new channel on the current connection (connecting first if needed); the
    /// session lock is not held while the broker opens it.
    async fn fresh_channel(&self) -> PortResult<Channel> {
        self.channel().await?;
        let conn = self.session.lock().await.as_ref().map(|(c, _)| c.clone());
        match conn {
            Some(c) => self.call("channel.open", c.create_channel()).await,
            None => Err(unavailable("no connection")),
        }
    }

    /// Declares the delay queue of one step for a stage.
    async fn declare_delay(&self, ch: &Channel, queue: &str, ms: u64) -> PortResult<String> {
        let target = self.declare(ch, queue).await?;
        let name = format!("{target}.delay.{ms}");
        let mut t = FieldTable::default();
        t.insert(sstr("x-message-ttl"), AMQPValue::LongLongInt(ms as i64));
        t.insert(
            sstr("x-dead-letter-exchange"),
            AMQPValue::LongString(LongString::from("")),
        );
        t.insert(
            sstr("x-dead-letter-routing-key"),
            AMQPValue::LongString(LongString::from(target.as_str())),
        );
        self.declare_once(ch, &name, expiring(t, self.cfg.expires))
            .await?;
        Ok(name)
    }

    /// Publishes to a queue by name and waits for every confirm.
    async fn publish_raw(&self, routing: &[(String, Vec<u8>, i32)]) -> PortResult<()> {
        let ch = self.channel().await?;
        let mut confirms = Vec::with_capacity(routing.len());
        for (name, body, deliveries) in routing {
            let mut headers = FieldTable::default();
            headers.insert(
                sstr(DELIVERIES_HEADER),
                AMQPValue::LongLongInt(i64::from(*deliveries)),
            );
            let props = BasicProperties::default()
                .with_delivery_mode(2)
                .with_content_type("application/json".into())
                .with_headers(headers);
            let c = bounded(
                "publish",
                ch.basic_publish(
                    sstr(""),
                    sstr(name),
                    BasicPublishOptions {
                        mandatory: true,
                        ..Default::default()
                    },
                    body,
                    props,
                ),
            )
            .await;
            match c {
                Ok(c) => confirms.push(c),
                Err(e) => {
                    self.forget_session().await;
                    return Err(e.into_port());
                }
            }
        }
        for c in confirms {
            match bounded("confirm", c).await {
                Ok(Confirmation::Ack(None)) | Ok(Confirmation::NotRequested) => {}
                Ok(Confirmation::Ack(Some(_))) => {
                    return Err(unavailable("a job was unroutable (queue missing)"));
                }
                Ok(Confirmation::Nack(_)) => return Err(unavailable("the broker refused a job")),
                Err(e) => {
                    self.forget_session().await;
                    return Err(e.into_port());
                }
            }
        }
        metrics::counter!("hermod_amqp_published_total").increment(routing.len() as u64);
        Ok(())
    }

    /// Starts the consumer of a stage (once) and returns its hand-off.
    async fn consumer(&self, queue: &str) -> Arc<Mutex<mpsc::Receiver<i64>>> {
        let mut cs = self.consumers.lock().await;
        if let Some(rx) = cs.get(queue) {
            return rx.clone();
        }
        let (tx, rx) = mpsc::channel(usize::from(self.cfg.prefetch.max(1)) * 2);
        let rx = Arc::new(Mutex::new(rx));
        cs.insert(queue.to_owned(), rx.clone());
        if let Some(me) = self.me.upgrade() {
            tokio::spawn(me.consume(queue.to_owned(), tx));
        }
        rx
    }

    /// Keeps a consumer on the stage, reconnecting with backoff.
    async fn consume(self: Arc<Self>, queue: String, tx: mpsc::Sender<i64>) {
        let mut backoff = Duration::from_millis(200);
        while !self.cancel.is_cancelled() {
            match self.consume_once(&queue, &tx).await {
                Ok(()) => backoff = Duration::from_millis(200),
                Err(e) => {
                    tracing::warn!(queue = %queue, error = %e, "AMQP consumer lost; reconnecting");
                    metrics::counter!("hermod_amqp_reconnects_total").increment(1);
                }
            }
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    }

    async fn consume_once(&self, queue: &str, tx: &mpsc::Sender<i64>) -> PortResult<()> {
        // A channel of its own on the shared connection.
        let conn_ch = self.fresh_channel().await?;
        let generation = self.session_gen.load(Ordering::Relaxed);
        let name = self.declare(&conn_ch, queue).await?;
        self.call(
            "basic.qos",
            conn_ch.basic_qos(self.cfg.prefetch.max(1), BasicQosOptions::default()),
        )
        .await?;
        let mut stream = self
            .call(
                "basic.consume",
                conn_ch.basic_consume(
                    sstr(&name),
                    sstr(&format!("hermod-{}", uuid_like())),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                ),
            )
            .await?;
        tracing::info!(queue = %name, "AMQP consumer started");
        let mut watch = tokio::time::interval(WATCH);
        loop {
            let next = tokio::select! {
                _ = self.cancel.cancelled() => return Ok(()),
                n = stream.next() => n,
                _ = watch.tick() => {
                    if !conn_ch.status().connected() {
                        // Closed under us, possibly without the stream ever ending.
                        return Err(unavailable("consumer channel closed"));
                    }
                    if self.session_gen.load(Ordering::Relaxed) != generation {
                        return Err(unavailable("the connection was replaced"));
                    }
                    continue;
                }
            };
            let d = match next {
                Some(Ok(d)) => d,
                Some(Err(e)) => return Err(unavailable(e)),
                None => return Err(unavailable("consumer stream ended")),
            };
            let ours = header_i64(&d.properties, DELIVERIES_HEADER).unwrap_or(0);
            // Quorum queues count redeliveries (consumer died, connection lost).
            let broker = header_i64(&d.properties, "x-delivery-count").unwrap_or(0);
            let deliveries = i32::try_from(ours + broker + 1).unwrap_or(i32::MAX);
            let job: Option<Job> = serde_json::from_slice(&d.data).ok();
            let Some(job) = job.filter(|_| deliveries <= self.cfg.max_deliveries) else {
                // Poison: unreadable, or handed out too often.
                tracing::warn!(queue = %name, deliveries, "job moved to the dead-letter queue");
                self.publish_raw(&[(
                    self.dead(),
                    dead_body(queue, &d.data, deliveries),
                    deliveries,
                )])
                .await?;
                let _ = bounded("basic.ack", d.acker.ack(BasicAckOptions::default())).await;
                metrics::counter!("hermod_jobs_dead_total", "queue" => queue.to_owned())
                    .increment(1);
                continue;
            };
            let tag = self.next_tag.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut h) = self.held.lock() {
                h.insert(
                    tag,
                    Held {
                        acker: d.acker.clone(),
                        job,
                        deliveries,
                    },
                );
            }
            if tx.send(tag).await.is_err() {
                return Ok(());
            }
        }
    }

    fn take(&self, tag: i64) -> Option<Held> {
        self.held.lock().ok()?.remove(&tag)
    }

    fn peek(&self, tag: i64) -> Option<(Job, i32)> {
        let h = self.held.lock().ok()?;
        h.get(&tag).map(|x| (x.job.clone(), x.deliveries))
    }
}

/// The queue of `job`'s lane on a stage.
fn lane(queue: &str, job: &Job) -> String {
    if job.is_high() {
        fast_lane(queue)
    } else {
        queue.to_owned()
    }
}

fn fast_lane(queue: &str) -> String {
    format!("{queue}.high")
}

/// The next hand-off of either lane, the fast one first.
async fn next_tag(fast: &mut mpsc::Receiver<i64>, bulk: &mut mpsc::Receiver<i64>) -> Option<i64> {
    tokio::select! {
        biased;
        Some(t) = fast.recv() => Some(t),
        Some(t) = bulk.recv() => Some(t),
        else => None,
    }
}

fn dead_body(queue: &str, data: &[u8], deliveries: i32) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "queue": queue,
        "deliveries": deliveries,
        "dead_at": now_ms(),
        "payload": String::from_utf8_lossy(data),
    }))
    .unwrap_or_default()
}

fn uuid_like() -> String {
    format!("{:x}{:x}", std::process::id(), now_ms())
}

#[async_trait]
impl Queue for RabbitQueue {
    async fn publish(&self, queue: &str, jobs: &[Job]) -> PortResult<()> {
        if jobs.is_empty() {
            return Ok(());
        }
        let ch = self.channel().await?;
        let mut names: HashMap<String, String> = HashMap::new();
        let mut out = Vec::with_capacity(jobs.len());
        for j in jobs {
            let l = lane(queue, j);
            let name = match names.get(&l) {
                Some(n) => n.clone(),
                None => {
                    let n = self.declare(&ch, &l).await?;
                    names.insert(l, n.clone());
                    n
                }
            };
            out.push((
                name,
                serde_json::to_vec(j).map_err(|e| PortError::Backend(Box::new(e)))?,
                0,
            ));
        }
        self.publish_raw(&out).await
    }

    async fn receive(&self, queue: &str, max: usize, wait: Duration) -> PortResult<Vec<Delivery>> {
        let fast = self.consumer(&fast_lane(queue)).await;
        let bulk = self.consumer(queue).await;
        let mut fast = fast.lock().await;
        let mut bulk = bulk.lock().await;
        let mut tags = Vec::new();
        // The fast lane's waiting jobs first.
        while tags.len() < max {
            match fast.try_recv() {
                Ok(t) => tags.push(t),
                Err(_) => break,
            }
        }
        if tags.is_empty() {
            match tokio::time::timeout(wait, next_tag(&mut fast, &mut bulk)).await {
                Ok(Some(t)) => tags.push(t),
                Ok(None) | Err(_) => return Ok(Vec::new()),
            }
        }
        // Linger a few milliseconds for more: deliveries trickle in one by one, and
        // every batch costs the stage a few database round trips.
        let linger = tokio::time::Instant::now() + LINGER;
        while tags.len() < max {
            match fast.try_recv().or_else(|_| bulk.try_recv()) {
                Ok(t) => tags.push(t),
                Err(_) => {
                    match tokio::time::timeout_at(linger, next_tag(&mut fast, &mut bulk)).await {
                        Ok(Some(t)) => tags.push(t),
                        _ => break,
                    }
                }
            }
        }
        Ok(tags
            .into_iter()
            .filter_map(|tag| {
                self.peek(tag).map(|(job, deliveries)| Delivery {
                    tag,
                    job,
                    deliveries,
                })
            })
            .collect())
    }

    async fn ack(&self, _queue: &str, tags: &[i64]) -> PortResult<()> {
        for t in tags {
            if let Some(h) = self.take(*t) {
                // A failed ack (connection gone) means the broker hands it out again:
                // every stage is idempotent.
                if let Err(Bounded::Failed(e) | Bounded::Silent(e)) =
                    bounded("basic.ack", h.acker.ack(BasicAckOptions::default())).await
                {
                    tracing::debug!(error = %e, "ack lost; the job will be redelivered");
                }
            }
        }
        Ok(())
    }

    async fn retry(&self, queue: &str, jobs: &[(i64, Duration)]) -> PortResult<()> {
        if jobs.is_empty() {
            return Ok(());
        }
        let ch = self.channel().await?;
        let mut out = Vec::new();
        let mut ackers = Vec::new();
        for (tag, delay) in jobs {
            let Some(h) = self.take(*tag) else { continue };
            let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
            let step = DELAYS_MS
                .iter()
                .copied()
                .find(|d| *d >= ms)
                .unwrap_or(300_000);
            let name = self.declare_delay(&ch, &lane(queue, &h.job), step).await?;
            let body = serde_json::to_vec(&h.job).map_err(|e| PortError::Backend(Box::new(e)))?;
            out.push((name, body, h.deliveries));
            ackers.push(h.acker);
        }
        // Parked first, acknowledged after: a crash in between delivers it twice.
        self.publish_raw(&out).await?;
        for a in ackers {
            let _ = bounded("basic.ack", a.ack(BasicAckOptions::default())).await;
        }
        Ok(())
    }

    async fn depth(&self, queue: &str) -> PortResult<i64> {
        let ch = self.channel().await?;
        let mut total = 0;
        for l in [queue.to_owned(), fast_lane(queue)] {
            let name = self.declare(&ch, &l).await?;
            let q = self
                .call(
                    "queue.declare",
                    ch.queue_declare(
                        sstr(&name),
                        QueueDeclareOptions {
                            passive: true,
                            ..Default::default()
                        },
                        FieldTable::default(),
                    ),
                )
                .await?;
            total += i64::from(q.message_count());
        }
        Ok(total)
    }

    async fn dead_letters(&self, max: usize) -> PortResult<Vec<DeadJob>> {
        // Read without acknowledging on a channel of its own; closing it puts them back.
        let ch = self.fresh_channel().await?;
        let mut out = Vec::new();
        while out.len() < max {
            let m = self
                .call(
                    "basic.get",
                    ch.basic_get(sstr(&self.dead()), BasicGetOptions { no_ack: false }),
                )
                .await?;
            let Some(m) = m else { break };
            let v: serde_json::Value = serde_json::from_slice(&m.delivery.data).unwrap_or_default();
            out.push(DeadJob {
                queue: v["queue"].as_str().unwrap_or_default().to_owned(),
                deliveries: i32::try_from(v["deliveries"].as_i64().unwrap_or(0)).unwrap_or(0),
                dead_at: v["dead_at"].as_i64().unwrap_or(0),
                payload: v["payload"].as_str().unwrap_or_default().to_owned(),
            });
        }
        let _ = bounded("channel.close", ch.close(200, sstr("peeked"))).await;
        Ok(out)
    }
}
