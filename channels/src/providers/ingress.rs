//! The providers' webhooks, `/v1/webhooks/<kind>/<connector>`: each call is
//! authenticated the provider's way, its receipts handed to the receipt sink (scoped
//! by the connector, with the reference they echo) and its inbound messages to the
//! inbound sink (keywords, the owner of the number). Nothing is answered 2xx before it
//! is durably recorded, so the provider redelivers what was not.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use hermod_core::inbound::InboundPart;
use hermod_core::model::{ChannelKind, ProviderEvent, Receipt};
use hermod_core::now_ms;
use hermod_core::ports::{InboundSink, ReceiptSink, WebhookIngress, WebhookReply, WebhookRequest};

use super::{Callback, Event, HttpConnector, ProviderKind, Refusal, digits};

/// Every connector of one provider kind in this process.
pub struct ProviderIngress {
    kind: ProviderKind,
    connectors: HashMap<String, Arc<HttpConnector>>,
    receipts: Arc<dyn ReceiptSink>,
    inbound: Arc<dyn InboundSink>,
}

impl ProviderIngress {
    /// The ingress of each kind that has connectors.
    pub fn for_kinds(
        connectors: &[Arc<HttpConnector>],
        receipts: Arc<dyn ReceiptSink>,
        inbound: Arc<dyn InboundSink>,
    ) -> Vec<(&'static str, Arc<dyn WebhookIngress>)> {
        ProviderKind::ALL
            .iter()
            .filter_map(|k| {
                let mine: HashMap<String, Arc<HttpConnector>> = connectors
                    .iter()
                    .filter(|c| c.config().kind == *k)
                    .map(|c| (c.config().name.clone(), c.clone()))
                    .collect();
                if mine.is_empty() {
                    return None;
                }
                let ingress: Arc<dyn WebhookIngress> = Arc::new(ProviderIngress {
                    kind: *k,
                    connectors: mine,
                    receipts: receipts.clone(),
                    inbound: inbound.clone(),
                });
                Some((k.as_str(), ingress))
            })
            .collect()
    }

    async fn record(&self, name: &str, events: &[Event]) -> bool {
        for e in events {
            let ok = match e {
                Event::Receipt(r) => {
                    self.receipts
                        .deliver(Receipt {
                            channel: ChannelKind::Sms,
                            provider_id: crate::smpp::scoped_id(name, &r.id),
                            status: r.status,
                            raw_status: r.raw_status.clone(),
                            error_code: r.error.clone(),
                            user_ref: r.reference.as_deref().and_then(|s| s.trim().parse().ok()),
                            recipient: r.to.as_deref().map(digits),
                            echo: None,
                            event: None,
                        })
                        .await
                }
                Event::Inbound(m) => {
                    self.inbound
                        .receive(InboundPart {
                            channel: ChannelKind::Sms,
                            connector: name.to_owned(),
                            from: digits(&m.from),
                            to: digits(&m.to),
                            concat: m.concat,
                            text: m.text.clone(),
                            received_at: now_ms(),
                            tenant: None,
                            payload: None,
                            event: m.id.as_ref().map(|id| ProviderEvent {
                                source: format!("{}:{name}", self.kind.as_str()),
                                id: id.clone(),
                            }),
                        })
                        .await
                }
            };
            if !ok {
                return false;
            }
        }
        true
    }
}

#[async_trait]
impl WebhookIngress for ProviderIngress {
    fn signature_header(&self) -> &'static str {
        "authorization"
    }

    async fn handle(&self, name: &str, _signature: Option<&str>, body: &[u8]) -> WebhookReply {
        self.handle_request(&WebhookRequest {
            name: name.to_owned(),
            body: body.to_vec(),
            ..WebhookRequest::default()
        })
        .await
    }

    async fn handle_request(&self, req: &WebhookRequest) -> WebhookReply {
        let kind = self.kind.as_str();
        let Some(c) = self.connectors.get(&req.name) else {
            return WebhookReply::error(
                404,
                "not_found",
                &format!("no {kind} connector named {:?} here", req.name),
            );
        };
        let base = c.webhook_url().unwrap_or_default();
        let url = if req.query.is_empty() {
            base
        } else {
            format!("{base}?{}", req.query)
        };
        let cb = Callback { url: &url, req };
        let provider = c.provider();
        if provider.token_in_callback() {
            let presented = cb.query_param("token").unwrap_or_default();
            let secret = &c.config().webhook_secret.0;
            if secret.is_empty()
                || !hermod_crypto::constant_time_eq(presented.as_bytes(), secret.as_bytes())
            {
                return unauthenticated(kind);
            }
        }
        let events = match provider.callback(&cb) {
            Ok(e) => e,
            Err(Refusal::Unauthenticated) => return unauthenticated(kind),
            Err(Refusal::Malformed(why)) => {
                return WebhookReply::error(400, "invalid_callback", &why);
            }
        };
        metrics::counter!("hermod_provider_callbacks_total", "connector" => req.name.clone())
            .increment(1);
        if !self.record(&req.name, &events).await {
            return WebhookReply::error(503, "unavailable", "not recorded; send it again");
        }
        provider.reply(&events)
    }
}

fn unauthenticated(kind: &str) -> WebhookReply {
    WebhookReply::error(
        401,
        "unauthenticated",
        &format!("the {kind} signature or token does not match"),
    )
}
