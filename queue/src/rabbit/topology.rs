//! The queues a stage uses: durable quorum queues with a dead-letter exchange, a
//! fast lane beside each, and the delay queues retries wait in (TTL, then back).

#[allow(unused_imports)]
use super::*;

pub(super) fn sstr(s: &str) -> ShortString {
    ShortString::from(s.to_owned())
}

pub(super) fn expiring(mut t: FieldTable, expires: Option<Duration>) -> FieldTable {
    if let Some(e) = expires {
        let ms = i64::try_from(e.as_millis()).unwrap_or(i64::MAX);
        t.insert(sstr("x-expires"), AMQPValue::LongLongInt(ms));
    }
    t
}

/// A stage queue's arguments: quorum, or classic for a fast lane (see the module docs).
pub(super) fn stage_args(dead: &str, quorum: bool) -> FieldTable {
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

impl RabbitQueue {
    /// Declares a stage queue once per connection.
    pub(super) async fn declare(&self, ch: &Channel, queue: &str) -> PortResult<String> {
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
    pub(super) async fn declare_once(
        &self,
        ch: &Channel,
        name: &str,
        args: FieldTable,
    ) -> PortResult<()> {
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
    pub(super) async fn fresh_channel(&self) -> PortResult<Channel> {
        self.channel().await?;
        let conn = self.session.lock().await.as_ref().map(|(c, _)| c.clone());
        match conn {
            Some(c) => self.call("channel.open", c.create_channel()).await,
            None => Err(unavailable("no connection")),
        }
    }

    /// Declares the delay queue of one step for a stage.
    pub(super) async fn declare_delay(
        &self,
        ch: &Channel,
        queue: &str,
        ms: u64,
    ) -> PortResult<String> {
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
}
