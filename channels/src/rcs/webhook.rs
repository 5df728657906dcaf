//! RBM webhook ingress (`POST /v1/webhooks/rbm/{agent}`): the clientToken/secret setup
//! handshake, then Pub/Sub push envelopes whose base64 `message.data` is signed with
//! `X-Goog-Signature` = base64(HMAC-SHA512(clientToken, data)). User events (DELIVERED,
//! READ) become receipts, server events (TTL_EXPIRATION_REVOKED / _FAILED) are
//! recorded on the attempt, user messages become inbound messages. A redelivered event
//! (same eventId, or same messageId for user messages) changes nothing.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hermod_core::inbound::InboundPart;
use hermod_core::model::{ChannelKind, ProviderEvent, Receipt};
use hermod_core::ports::{PortError, ReceiptSink, Store, WebhookIngress, WebhookReply};
use hermod_core::{Status, TenantId, now_ms};
use serde_json::{Value, json};

use super::channel::{codes, provider_id};
use super::config::RcsConfig;

struct Hook {
    agent_id: String,
    client_token: Option<String>,
    tenant: Option<TenantId>,
}

/// The webhook of every configured agent.
pub struct RbmWebhook {
    hooks: HashMap<String, Hook>,
    store: Arc<dyn Store>,
    receipts: Arc<dyn ReceiptSink>,
    /// Answer to a HELP keyword, sent back over RCS through the same agent.
    help_reply: Option<String>,
}

/// What one decoded event asks for.
#[derive(Debug, PartialEq)]
pub enum RbmEvent {
    Receipt(Receipt),
    Inbound(InboundPart),
    /// Recognised but changes nothing (IS_TYPING, unknown types).
    Ignore(String),
}

/// Decodes one event (`message.data`, already base64-decoded and parsed) of agent
/// `name`. Returns the id it is deduplicated by, and what it means.
pub fn decode_event(
    name: &str,
    agent_id: &str,
    tenant: Option<&TenantId>,
    ev: &Value,
) -> Result<(String, RbmEvent), String> {
    let s = |k: &str| ev[k].as_str().map(str::to_owned);
    let digits = |p: Option<String>| {
        p.map(|p| p.trim_start_matches('+').to_owned())
            .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    };
    let sender = digits(s("senderPhoneNumber").or_else(|| s("phoneNumber")));
    if let Some(kind) = s("eventType") {
        let id = s("eventId").ok_or("an event without eventId")?;
        let mid = s("messageId").ok_or("an event without messageId")?;
        let (status, error) = match kind.as_str() {
            "DELIVERED" => (Status::Delivered, None),
            "READ" => (Status::Read, None),
            "TTL_EXPIRATION_REVOKED" => (Status::Expired, Some(codes::TTL_EXPIRED.to_owned())),
            // The revoke at TTL failed: the device may have it. Nothing moves; the raw
            // status is kept on the attempt.
            "TTL_EXPIRATION_REVOKE_FAILED" => (Status::Sent, None),
            _ => return Ok((id, RbmEvent::Ignore(kind))),
        };
        return Ok((
            id,
            RbmEvent::Receipt(Receipt {
                channel: ChannelKind::Rcs,
                provider_id: provider_id(&mid),
                status,
                raw_status: kind,
                error_code: error,
                user_ref: None,
                recipient: sender,
                echo: None,
                event: None,
            }),
        ));
    }
    // A user message: text, a tapped suggestion, a shared location or a file.
    let id = s("messageId").ok_or("a user message without messageId")?;
    let from = sender.ok_or("a user message without senderPhoneNumber")?;
    let (text, payload) = if let Some(r) = ev.get("suggestionResponse") {
        (
            r["text"].as_str().unwrap_or_default().to_owned(),
            Some(json!({
                "type": "suggestion_response",
                "postback_data": r["postbackData"],
                "suggestion_type": r["type"],
            })),
        )
    } else if let Some(l) = ev.get("location") {
        (
            format!(
                "[location {},{}]",
                l["latitude"].as_f64().unwrap_or_default(),
                l["longitude"].as_f64().unwrap_or_default()
            ),
            Some(
                json!({"type": "location", "latitude": l["latitude"], "longitude": l["longitude"]}),
            ),
        )
    } else if let Some(f) = ev.get("userFile") {
        (
            "[file]".to_owned(),
            Some(json!({"type": "file", "file": f["payload"]})),
        )
    } else {
        (s("text").unwrap_or_default(), None)
    };
    Ok((
        id,
        RbmEvent::Inbound(InboundPart {
            connector: format!("rbm:{name}"),
            from,
            to: agent_id.to_owned(),
            concat: None,
            text,
            received_at: now_ms(),
            tenant: tenant.cloned(),
            payload,
            event: None,
        }),
    ))
}

impl RbmWebhook {
    /// Receipts go to `receipts` (batched with others), inbound messages to the store.
    pub fn new(
        cfg: &RcsConfig,
        store: Arc<dyn Store>,
        receipts: Arc<dyn ReceiptSink>,
        help_reply: Option<String>,
    ) -> Arc<Self> {
        let hooks = cfg
            .agents
            .iter()
            .map(|a| {
                (
                    a.name.clone(),
                    Hook {
                        agent_id: a.agent_id.clone(),
                        client_token: a.client_token.as_ref().map(|t| t.0.clone()),
                        tenant: a.tenant.clone().map(TenantId::from_trusted),
                    },
                )
            })
            .collect();
        Arc::new(Self {
            hooks,
            store,
            receipts,
            help_reply,
        })
    }

    /// Applies an event with its marker, in one transaction.
    async fn apply(
        &self,
        agent: &str,
        event: RbmEvent,
        marker: ProviderEvent,
    ) -> Result<(), PortError> {
        match event {
            RbmEvent::Receipt(r) => {
                let r = Receipt {
                    event: Some(marker),
                    ..r
                };
                if self.receipts.deliver(r).await {
                    Ok(())
                } else {
                    Err(PortError::Backend("receipt not stored".into()))
                }
            }
            RbmEvent::Inbound(p) => {
                let p = InboundPart {
                    event: Some(marker),
                    ..p
                };
                let msg = self.store.receive_inbound(&p).await?;
                if let Some(m) = msg {
                    self.help(agent, &m).await;
                }
                Ok(())
            }
            RbmEvent::Ignore(_) => self.store.first_seen_event(&marker).await.map(|_| ()),
        }
    }
}

impl RbmWebhook {
    /// A HELP keyword gets the configured reply, over RCS through the same agent.
    async fn help(&self, agent: &str, m: &hermod_core::inbound::InboundMessage) {
        let Some(reply) = self
            .help_reply
            .as_deref()
            .and_then(|r| m.help_reply(r, agent, ChannelKind::Rcs))
        else {
            return;
        };
        if let Err(e) = self
            .store
            .accept(&reply.tenant_id.clone(), &[reply], None)
            .await
        {
            tracing::warn!(error = %e, "HELP reply not queued");
        }
    }
}

#[async_trait]
impl WebhookIngress for RbmWebhook {
    async fn handle(&self, name: &str, signature: Option<&str>, body: &[u8]) -> WebhookReply {
        let Some(hook) = self.hooks.get(name) else {
            return WebhookReply::error(404, "unknown_agent", "no RBM agent has this name");
        };
        let Some(token) = &hook.client_token else {
            return WebhookReply::error(
                401,
                "webhook_not_configured",
                "set client_token for this agent to receive its webhooks",
            );
        };
        let Ok(v) = serde_json::from_slice::<Value>(body) else {
            return WebhookReply::error(400, "invalid_json", "the body is not JSON");
        };
        // Registration: RBM posts {clientToken, secret} and wants the secret back.
        if let (Some(ct), Some(secret)) = (v["clientToken"].as_str(), v["secret"].as_str()) {
            if !hermod_crypto::constant_time_eq(ct.as_bytes(), token.as_bytes()) {
                return WebhookReply::error(401, "invalid_client_token", "clientToken mismatch");
            }
            return WebhookReply {
                status: 200,
                content_type: "text/plain",
                body: secret.to_owned(),
            };
        }
        let Some(data) = v["message"]["data"].as_str() else {
            return WebhookReply::error(
                400,
                "invalid_envelope",
                "expected a Pub/Sub push envelope with message.data",
            );
        };
        let Some(sig) = signature else {
            return WebhookReply::error(401, "missing_signature", "X-Goog-Signature is required");
        };
        if !hermod_crypto::rbm::verify_webhook(token, data, sig) {
            metrics::counter!("hermod_webhook_rejected_total", "source" => "rbm").increment(1);
            return WebhookReply::error(
                401,
                "invalid_signature",
                "X-Goog-Signature does not match",
            );
        }
        let event = STANDARD
            .decode(data.trim())
            .ok()
            .and_then(|d| serde_json::from_slice::<Value>(&d).ok());
        let Some(event) = event else {
            return WebhookReply::error(400, "invalid_data", "message.data is not base64 JSON");
        };
        let (id, decoded) = match decode_event(name, &hook.agent_id, hook.tenant.as_ref(), &event) {
            Ok(x) => x,
            Err(e) => return WebhookReply::error(400, "invalid_event", &e),
        };
        let event = ProviderEvent {
            source: format!("rbm:{name}"),
            id,
        };
        // A quick answer for a redelivery; the marker itself is written in the
        // transaction that applies the event, so a crash or failure before that
        // leaves none and RBM's retry is applied.
        match self.store.seen_event(&event).await {
            Ok(false) => {}
            Ok(true) => return WebhookReply::json(200, json!({"status": "duplicate"})),
            Err(e) => {
                tracing::error!(error = %e, "RBM webhook: store unavailable");
                return WebhookReply::error(503, "unavailable", "try again");
            }
        }
        let kind = match &decoded {
            RbmEvent::Receipt(r) => r.raw_status.clone(),
            RbmEvent::Inbound(_) => "USER_MESSAGE".into(),
            RbmEvent::Ignore(k) => k.clone(),
        };
        if let Err(e) = self.apply(name, decoded, event).await {
            tracing::error!(error = %e, agent = name, "RBM webhook: event not recorded");
            return WebhookReply::error(503, "unavailable", "try again");
        }
        metrics::counter!("hermod_webhook_events_total", "source" => "rbm", "type" => kind)
            .increment(1);
        WebhookReply::json(200, json!({"status": "ok"}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_rbm_events() {
        let (id, e) = decode_event(
            "a",
            "agent@rbm.goog",
            None,
            &json!({"senderPhoneNumber": "+447911123456", "eventType": "READ", "eventId": "E1",
                    "messageId": "0190a1b2-c3d4-7e8f-9a0b-1c2d3e4f5a6b", "sendTime": "2026-01-01T00:00:00Z", "agentId": "agent@rbm.goog"}),
        )
        .unwrap();
        assert_eq!(id, "E1");
        let RbmEvent::Receipt(r) = e else { panic!() };
        assert_eq!(r.status, Status::Read);
        assert_eq!(r.provider_id, "rbm:0190a1b2-c3d4-7e8f-9a0b-1c2d3e4f5a6b");
        assert_eq!(r.recipient.as_deref(), Some("447911123456"));

        let (_, e) = decode_event(
            "a",
            "agent@rbm.goog",
            None,
            &json!({"eventType": "TTL_EXPIRATION_REVOKED", "eventId": "E2", "messageId": "m", "agentId": "agent@rbm.goog"}),
        )
        .unwrap();
        let RbmEvent::Receipt(r) = e else { panic!() };
        assert_eq!(
            (r.status, r.error_code.as_deref()),
            (Status::Expired, Some("ttl_expired"))
        );

        let (id, e) = decode_event(
            "a",
            "agent@rbm.goog",
            Some(&TenantId::from_trusted("ten_1".into())),
            &json!({"senderPhoneNumber": "+447911123456", "messageId": "U1", "sendTime": "2026-01-01T00:00:00Z",
                    "suggestionResponse": {"postbackData": "track_1234", "text": "Track", "type": "ACTION"}}),
        )
        .unwrap();
        assert_eq!(id, "U1");
        let RbmEvent::Inbound(p) = e else { panic!() };
        assert_eq!(p.text, "Track");
        assert_eq!(p.to, "agent@rbm.goog");
        assert_eq!(p.payload.unwrap()["postback_data"], "track_1234");

        let (_, e) = decode_event(
            "a",
            "x",
            None,
            &json!({"senderPhoneNumber": "+447911123456", "messageId": "U2", "location": {"latitude": 51.5, "longitude": -0.1}}),
        )
        .unwrap();
        let RbmEvent::Inbound(p) = e else { panic!() };
        assert_eq!(p.payload.unwrap()["type"], "location");

        let (_, e) = decode_event(
            "a",
            "x",
            None,
            &json!({"senderPhoneNumber": "+1", "eventType": "IS_TYPING", "eventId": "E3", "messageId": "m"}),
        )
        .unwrap();
        assert_eq!(e, RbmEvent::Ignore("IS_TYPING".into()));
        assert!(decode_event("a", "x", None, &json!({"eventType": "READ"})).is_err());
    }
}
