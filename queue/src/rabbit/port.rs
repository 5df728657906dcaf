//! The `Queue` port over RabbitMQ: publishes with confirms, receives from the fast lane
//! first, acknowledges, retries through the delay queues, dead-letters.

#[allow(unused_imports)]
use super::*;

pub(super) fn dead_body(queue: &str, data: &[u8], deliveries: i32) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "queue": queue,
        "deliveries": deliveries,
        "dead_at": now_ms(),
        "payload": String::from_utf8_lossy(data),
    }))
    .unwrap_or_default()
}

pub(super) fn uuid_like() -> String {
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
