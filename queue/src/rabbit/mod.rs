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

mod port;
#[allow(unused_imports)]
pub use port::*;

mod consume;
mod topology;
#[allow(unused_imports)]
use consume::*;
#[allow(unused_imports)]
use topology::*;

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
}
