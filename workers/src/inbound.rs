//! Inbound SMS: stored (parts reassembled durably), keywords applied by the store, and
//! HELP answered with the configured reply.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use hermod_core::TenantId;
use hermod_core::inbound::{InboundPart, Keyword, sender_key};
use hermod_core::model::{ChannelKind, NewMessage};
use hermod_core::ports::{InboundSink, Store};
use hermod_core::{MessageId, Msisdn, now_ms};

pub struct InboundHandler {
    store: Arc<dyn Store>,
    /// Reply to HELP; none = no reply.
    help_reply: Option<String>,
    /// Our numbers (sender keys) → the tenant that owns each.
    numbers: HashMap<String, TenantId>,
}

impl InboundHandler {
    pub fn new(
        store: Arc<dyn Store>,
        help_reply: Option<String>,
        numbers: HashMap<String, TenantId>,
    ) -> Arc<Self> {
        let numbers = numbers
            .into_iter()
            .map(|(n, t)| (sender_key(&n), t))
            .collect();
        Arc::new(Self {
            store,
            help_reply,
            numbers,
        })
    }
}

#[async_trait]
impl InboundSink for InboundHandler {
    async fn receive(&self, mut part: InboundPart) -> bool {
        if part.tenant.is_none() {
            part.tenant = self.numbers.get(&sender_key(&part.to)).cloned();
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
        if let (Some(Keyword::Help), Some(tenant), Some(reply)) =
            (msg.keyword, &msg.tenant_id, &self.help_reply)
            && let Ok(to) = Msisdn::parse(&msg.from)
        {
            let m = NewMessage {
                id: MessageId::generate(),
                tenant_id: tenant.clone(),
                to,
                from: Some(msg.to.clone()),
                text: reply.clone(),
                channels: vec![ChannelKind::Sms],
                ttl_secs: None,
                metadata: Some(serde_json::json!({ "reply_to": msg.id })),
                callback_url: None,
                created_at: now_ms(),
                send_at: None,
            };
            if let Err(e) = self.store.accept(tenant, &[m], None).await {
                tracing::warn!(error = %e, "HELP reply not queued");
            }
        }
        true
    }
}
