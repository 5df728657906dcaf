//! Consumers: one per queue (and its fast lane), feeding delivery tags to `receive`;
//! a delivery is held until it is acknowledged or retried.

#[allow(unused_imports)]
use super::*;

/// The queue of `job`'s lane on a stage.
pub(super) fn lane(queue: &str, job: &Job) -> String {
    if job.is_high() {
        fast_lane(queue)
    } else {
        queue.to_owned()
    }
}

pub(super) fn fast_lane(queue: &str) -> String {
    format!("{queue}.high")
}

/// The next hand-off of either lane, the fast one first.
pub(super) async fn next_tag(
    fast: &mut mpsc::Receiver<i64>,
    bulk: &mut mpsc::Receiver<i64>,
) -> Option<i64> {
    tokio::select! {
        biased;
        Some(t) = fast.recv() => Some(t),
        Some(t) = bulk.recv() => Some(t),
        else => None,
    }
}

impl RabbitQueue {
    /// Starts the consumer of a stage (once) and returns its hand-off.
    pub(super) async fn consumer(&self, queue: &str) -> Arc<Mutex<mpsc::Receiver<i64>>> {
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
    pub(super) async fn consume(self: Arc<Self>, queue: String, tx: mpsc::Sender<i64>) {
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

    pub(super) async fn consume_once(&self, queue: &str, tx: &mpsc::Sender<i64>) -> PortResult<()> {
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

    pub(super) fn take(&self, tag: i64) -> Option<Held> {
        self.held.lock().ok()?.remove(&tag)
    }

    pub(super) fn peek(&self, tag: i64) -> Option<(Job, i32)> {
        let h = self.held.lock().ok()?;
        h.get(&tag).map(|x| (x.job.clone(), x.deliveries))
    }
}
