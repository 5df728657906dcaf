//! Inbound SMS: stored (parts reassembled durably), keywords applied by the store, and
//! HELP answered with the configured reply.

use std::sync::Arc;

use async_trait::async_trait;
use hermod_core::inbound::InboundPart;
use hermod_core::model::ChannelKind;
use hermod_core::now_ms;
use hermod_core::ports::{Inbound, InboundSink, Messages};
use hermod_core::sender::SenderBook;

pub struct InboundHandler {
    store: Arc<dyn Inbound>,
    /// HELP replies go out as new messages.
    messages: Arc<dyn Messages>,
    /// Reply to HELP; none = no reply.
    help_reply: Option<String>,
    /// Who owns which of our numbers: an inbound message goes to the owner of the
    /// number it was sent to, or to no tenant.
    senders: Arc<SenderBook>,
}

impl InboundHandler {
    pub fn new(
        store: Arc<dyn Inbound>,
        messages: Arc<dyn Messages>,
        help_reply: Option<String>,
        senders: Arc<SenderBook>,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            messages,
            help_reply,
            senders,
        })
    }
}

impl InboundHandler {
    /// Concatenated inbound messages whose missing parts did not come within
    /// `timeout` are stored with the parts that did (in order), so nothing received
    /// is lost; then their parts are forgotten.
    pub async fn flush_incomplete(&self, timeout: std::time::Duration) -> usize {
        let before = now_ms() - i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
        let groups = match self.store.stale_inbound_parts(before).await {
            Ok(g) => g,
            Err(e) => {
                tracing::warn!(error = %e, "reading incomplete inbound messages failed");
                return 0;
            }
        };
        let mut n = 0;
        for parts in groups {
            let Some(first) = parts.first().cloned() else {
                continue;
            };
            let Some(k) = first.concat else { continue };
            // seq 0: assemble and forget the parts that came, in one transaction (a
            // worker flushing the same message at the same moment finds none).
            let flush = InboundPart {
                concat: Some(hermod_core::inbound::Concat { seq: 0, ..k }),
                text: String::new(),
                received_at: parts.iter().map(|p| p.received_at).max().unwrap_or(0),
                ..first.clone()
            };
            tracing::warn!(
                have = parts.len(),
                of = k.total,
                "inbound message incomplete; stored with the parts received"
            );
            if self.receive(flush).await {
                n += 1;
            }
        }
        n
    }

    /// Runs [`Self::flush_incomplete`] every `timeout / 2` (1 s to 1 min).
    pub fn spawn_flusher(
        self: &Arc<Self>,
        timeout: std::time::Duration,
        cancel: tokio_util::sync::CancellationToken,
    ) {
        let me = self.clone();
        let every = (timeout / 2).clamp(
            std::time::Duration::from_secs(1),
            std::time::Duration::from_secs(60),
        );
        tokio::spawn(async move {
            while !cancel.is_cancelled() {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(every) => {}
                }
                me.flush_incomplete(timeout).await;
            }
        });
    }
}

#[async_trait]
impl InboundSink for InboundHandler {
    async fn receive(&self, mut part: InboundPart) -> bool {
        if part.tenant.is_none() {
            match self.senders.owners().await {
                Ok(o) => part.tenant = o.owner(&part.to).cloned(),
                Err(e) => {
                    // Not acknowledged: the SMSC delivers it again.
                    tracing::warn!(error = %e, "reading sender assignments failed");
                    return false;
                }
            }
        }
        let msg = match self.store.receive_inbound(&part).await {
            Ok(Some(m)) => m,
            Ok(None) => return true,
            Err(e) => {
                tracing::error!(error = %e, "storing an inbound message failed");
                return false;
            }
        };
        metrics::counter!("hermod_inbound_total", "keyword" => msg.keyword.map_or("none", |k| k.as_str()))
            .increment(1);
        tracing::info!(id = %msg.id, parts = msg.parts, connector = %msg.connector, keyword = ?msg.keyword, tenant_known = msg.tenant_id.is_some(), "inbound SMS");
        if let Some(m) = self
            .help_reply
            .as_deref()
            .and_then(|r| msg.help_reply(r, &msg.to, ChannelKind::Sms))
            && let Err(e) = self.messages.accept(&m.tenant_id.clone(), &[m], None).await
        {
            tracing::warn!(error = %e, "HELP reply not queued");
        }
        true
    }
}
