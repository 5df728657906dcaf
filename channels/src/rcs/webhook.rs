//! RBM webhook ingress (`POST /v1/webhooks/rbm/{agent}`): the clientToken/secret setup
//! handshake, then Pub/Sub push envelopes whose base64 `message.data` is signed with
//! `X-Goog-Signature` = base64(HMAC-SHA512(clientToken, data)). Each event is decoded
//! by its kind first (`message.attributes.type`, then `eventType`), as RBM's reference
//! defines them: user events DELIVERED and READ and server events
//! TTL_EXPIRATION_REVOKED / _FAILED become receipts; IS_TYPING is counted; SUBSCRIBE and
//! UNSUBSCRIBE opt the user in and out of the agent; an AgentLaunchEvent records the
//! agent's launch state in its region; user messages become inbound messages. Anything
//! signed that Hermod cannot use is acknowledged (200), counted and logged: RBM would
//! retry a refusal for days. A redelivered event (same eventId, or same messageId for
//! user messages) changes nothing.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hermod_core::inbound::InboundPart;
use hermod_core::model::{AgentLaunch, ChannelKind, ProviderEvent, Receipt};
use hermod_core::ports::{Inbound, Messages, PortError, ReceiptSink, WebhookIngress, WebhookReply};
use hermod_core::{Status, TenantId, now_ms};
use serde_json::{Value, json};

use super::channel::{codes, provider_id};
use super::config::RcsConfig;

struct Hook {
    agent_id: String,
    client_token: Option<String>,
    tenant: Option<TenantId>,
    auto_read: bool,
}

/// The webhook of every configured agent.
pub struct RbmWebhook {
    hooks: HashMap<String, Hook>,
    store: Arc<dyn Inbound>,
    /// HELP replies go out as new messages.
    messages: Arc<dyn Messages>,
    receipts: Arc<dyn ReceiptSink>,
    /// Answer to a HELP keyword, sent back over RCS through the same agent.
    help_reply: Option<String>,
    /// Sends the READ of agents with `auto_read`.
    events: Option<Arc<dyn hermod_core::ports::AgentEvents>>,
}

/// What one decoded event asks for.
#[derive(Debug, PartialEq)]
pub enum RbmEvent {
    Receipt(Receipt),
    Inbound(InboundPart),
    /// IS_TYPING: the user (digits) is typing.
    Typing(String),
    /// SUBSCRIBE (true) or UNSUBSCRIBE (false) of the user (digits) to the agent.
    Subscription(String, bool),
    /// AgentLaunchEvent: the agent's launch state changed in a region.
    Launch(AgentLaunch),
    /// Changes nothing: an event type Hermod does not use.
    Ignore(String),
}

/// An RBM event Hermod cannot use: what is missing or wrong in it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidEvent(pub String);

impl From<&str> for InvalidEvent {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl From<String> for InvalidEvent {
    fn from(s: String) -> Self {
        Self(s)
    }
}

/// Decodes one event (`message.data`, already base64-decoded and parsed, with the
/// envelope's `message.attributes`) of agent `name`. Returns the id it is deduplicated
/// by, and what it means; an error names what is missing.
pub fn decode_event(
    name: &str,
    agent_id: &str,
    tenant: Option<&TenantId>,
    attributes: &Value,
    ev: &Value,
) -> Result<(String, RbmEvent), InvalidEvent> {
    let s = |k: &str| ev[k].as_str().map(str::to_owned);
    let digits = |p: Option<String>| {
        p.map(|p| p.trim_start_matches('+').to_owned())
            .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    };
    let sender = digits(s("senderPhoneNumber").or_else(|| s("phoneNumber")));
    if attributes["type"].as_str() == Some("agent_launch_event") {
        let id = s("eventId").ok_or("an AgentLaunchEvent without eventId")?;
        return Ok((
            id,
            RbmEvent::Launch(AgentLaunch {
                agent: name.to_owned(),
                region: s("regionId").unwrap_or_default(),
                state: s("newLaunchState").ok_or("an AgentLaunchEvent without newLaunchState")?,
                previous: s("oldLaunchState"),
                at: s("sendTime")
                    .and_then(|t| hermod_core::parse_rfc3339(&t))
                    .unwrap_or_else(now_ms),
            }),
        ));
    }
    if let Some(kind) = s("eventType") {
        let id = s("eventId").ok_or_else(|| format!("a {kind} event without eventId"))?;
        let (status, error) = match kind.as_str() {
            "DELIVERED" => (Status::Delivered, None),
            "READ" => (Status::Read, None),
            "TTL_EXPIRATION_REVOKED" => (Status::Expired, Some(codes::TTL_EXPIRED.to_owned())),
            // The revoke at TTL failed: the device may have it. Nothing moves; the raw
            // status is kept on the attempt.
            "TTL_EXPIRATION_REVOKE_FAILED" => (Status::Sent, None),
            "IS_TYPING" => {
                let from = sender.ok_or("an IS_TYPING event without senderPhoneNumber")?;
                return Ok((id, RbmEvent::Typing(from)));
            }
            "SUBSCRIBE" | "UNSUBSCRIBE" => {
                let from =
                    sender.ok_or_else(|| format!("a {kind} event without senderPhoneNumber"))?;
                return Ok((id, RbmEvent::Subscription(from, kind == "SUBSCRIBE")));
            }
            _ => return Ok((id, RbmEvent::Ignore(kind))),
        };
        // Only these carry the id of the agent's message they are about.
        let mid = s("messageId").ok_or_else(|| format!("a {kind} event without messageId"))?;
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
            channel: ChannelKind::Rcs,
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
        store: Arc<dyn Inbound>,
        messages: Arc<dyn Messages>,
        receipts: Arc<dyn ReceiptSink>,
        help_reply: Option<String>,
        events: Option<Arc<dyn hermod_core::ports::AgentEvents>>,
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
                        auto_read: a.auto_read,
                    },
                )
            })
            .collect();
        Arc::new(Self {
            hooks,
            store,
            messages,
            receipts,
            help_reply,
            events,
        })
    }

    /// Applies an event with its marker: in one transaction, or (opt-in and out,
    /// launch states: applying them twice changes nothing) the marker after the effect.
    async fn apply(
        &self,
        agent: &str,
        tenant: Option<&TenantId>,
        event: RbmEvent,
        marker: ProviderEvent,
    ) -> Result<(), PortError> {
        match event {
            RbmEvent::Receipt(r) => {
                let r = Receipt {
                    event: Some(marker),
                    ..r
                };
                return if self.receipts.deliver(r).await {
                    Ok(())
                } else {
                    Err(PortError::Backend("receipt not stored".into()))
                };
            }
            RbmEvent::Inbound(p) => {
                let p = InboundPart {
                    event: Some(marker),
                    ..p
                };
                let msg = self.store.receive_inbound(&p).await?;
                if let Some(m) = msg {
                    self.auto_read(agent, &m);
                    self.help(agent, &m).await;
                }
                return Ok(());
            }
            // The rest change nothing when applied twice: the marker goes after.
            RbmEvent::Typing(from) => {
                metrics::counter!("hermod_rbm_typing_total", "agent" => agent.to_owned())
                    .increment(1);
                if let Some(t) = tenant {
                    // Its marker goes with the webhook deliveries it makes.
                    return self
                        .store
                        .record_typing(
                            t,
                            &format!("rbm:{agent}"),
                            &from,
                            hermod_core::now_ms(),
                            &marker,
                        )
                        .await;
                }
            }
            RbmEvent::Subscription(from, subscribed) => match tenant {
                None => tracing::warn!(
                    agent,
                    "RBM (UN)SUBSCRIBE for an agent no tenant owns: set [[rcs.agents]] tenant"
                ),
                Some(t) if subscribed => {
                    self.store
                        .remove_opt_out(t, &format!("+{from}"), Some(agent))
                        .await?;
                }
                Some(t) => {
                    self.store
                        .add_opt_out(t, &format!("+{from}"), agent, "rbm_unsubscribe")
                        .await?;
                }
            },
            RbmEvent::Launch(l) => {
                tracing::info!(
                    agent,
                    region = %l.region,
                    state = %l.state,
                    previous = l.previous.as_deref().unwrap_or(""),
                    "RBM agent launch state changed"
                );
                self.store.record_launch(&l).await?;
            }
            RbmEvent::Ignore(kind) => {
                metrics::counter!("hermod_rbm_events_ignored_total", "type" => kind).increment(1);
            }
        }
        self.store.first_seen_event(&marker).await.map(|_| ())
    }
}

impl RbmWebhook {
    /// An agent with `auto_read` marks each new user message read, after it is stored
    /// and without holding up the answer to RBM (a failure is logged and counted; the
    /// message stays stored either way).
    fn auto_read(&self, agent: &str, m: &hermod_core::inbound::InboundMessage) {
        let (Some(events), Some(id)) = (&self.events, &m.provider_id) else {
            return;
        };
        if !self.hooks.get(agent).is_some_and(|h| h.auto_read) {
            return;
        }
        let (events, id, to, connector) = (
            events.clone(),
            id.clone(),
            m.from.clone(),
            m.connector.clone(),
        );
        let agent = agent.to_owned();
        tokio::spawn(async move {
            let kind = hermod_core::ports::AgentEventKind::Read;
            if let Err(e) = events
                .send_agent_event(&connector, &to, kind, Some(&id))
                .await
            {
                tracing::warn!(agent, error = %e, "automatic READ not sent");
            }
        });
    }

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
            .messages
            .accept(&reply.tenant_id.clone(), &[reply], None)
            .await
        {
            tracing::warn!(error = %e, "HELP reply not queued");
        }
    }
}

#[async_trait]
impl WebhookIngress for RbmWebhook {
    fn signature_header(&self) -> &'static str {
        "x-goog-signature"
    }

    async fn handle(&self, name: &str, signature: Option<&str>, body: &[u8]) -> WebhookReply {
        // A misconfiguration is answered 200 (RBM would retry a refusal for days,
        // holding up the partner's other agents) and made loud here instead.
        let Some(hook) = self.hooks.get(name) else {
            return ignored(name, "unknown_agent", "no [[rcs.agents]] has this name");
        };
        let Some(token) = &hook.client_token else {
            return ignored(
                name,
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
            // Not from Google: refused.
            metrics::counter!("hermod_webhook_rejected_total", "source" => "rbm", "reason" => "invalid_signature")
                .increment(1);
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
        // Signed by Google from here on: what cannot be used is acknowledged.
        let Some(event) = event else {
            return ignored(name, "invalid_data", "message.data is not base64 JSON");
        };
        let attributes = &v["message"]["attributes"];
        let (id, decoded) = match decode_event(
            name,
            &hook.agent_id,
            hook.tenant.as_ref(),
            attributes,
            &event,
        ) {
            Ok(x) => x,
            Err(e) => return ignored(name, "invalid_event", &e.0),
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
            RbmEvent::Typing(_) => "IS_TYPING".into(),
            RbmEvent::Subscription(_, true) => "SUBSCRIBE".into(),
            RbmEvent::Subscription(_, false) => "UNSUBSCRIBE".into(),
            RbmEvent::Launch(_) => "AGENT_LAUNCH".into(),
            RbmEvent::Ignore(k) => k.clone(),
        };
        if let Err(e) = self.apply(name, hook.tenant.as_ref(), decoded, event).await {
            tracing::error!(error = %e, agent = name, "RBM webhook: event not recorded");
            return WebhookReply::error(503, "unavailable", "try again");
        }
        metrics::counter!("hermod_webhook_events_total", "source" => "rbm", "type" => kind)
            .increment(1);
        WebhookReply::json(200, json!({"status": "ok"}))
    }
}

/// A request Hermod cannot use but must not have retried: 200 `{"status": "ignored"}`,
/// an error in the log and `hermod_webhook_rejected_total{source="rbm", reason}`.
fn ignored(agent: &str, reason: &'static str, why: &str) -> WebhookReply {
    tracing::error!(
        agent,
        reason,
        why,
        "RBM webhook: request acknowledged but not used"
    );
    metrics::counter!("hermod_webhook_rejected_total", "source" => "rbm", "reason" => reason)
        .increment(1);
    WebhookReply::json(
        200,
        json!({"status": "ignored", "reason": reason, "message": why}),
    )
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
            &Value::Null,
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
            &Value::Null,
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
            &Value::Null,
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
            &Value::Null,
            &json!({"senderPhoneNumber": "+447911123456", "messageId": "U2", "location": {"latitude": 51.5, "longitude": -0.1}}),
        )
        .unwrap();
        let RbmEvent::Inbound(p) = e else { panic!() };
        assert_eq!(p.payload.unwrap()["type"], "location");

        // Events as the reference shows them: only DELIVERED and READ (and the server
        // events) name a message.
        let none = &Value::Null;
        let (id, e) = decode_event(
            "a",
            "x",
            None,
            none,
            &json!({"senderPhoneNumber": "+447911123456", "eventType": "IS_TYPING", "eventId": "E3",
                    "sendTime": "2026-01-01T00:00:00Z", "agentId": "x"}),
        )
        .unwrap();
        assert_eq!(
            (id.as_str(), e),
            ("E3", RbmEvent::Typing("447911123456".into()))
        );
        for (kind, on) in [("SUBSCRIBE", true), ("UNSUBSCRIBE", false)] {
            let (_, e) = decode_event(
                "a",
                "x",
                None,
                none,
                &json!({"senderPhoneNumber": "+447911123456", "eventType": kind, "eventId": "E4",
                        "sendTime": "2026-01-01T00:00:00Z", "agentId": "x"}),
            )
            .unwrap();
            assert_eq!(e, RbmEvent::Subscription("447911123456".into(), on));
        }
        let (_, e) = decode_event(
            "a",
            "x",
            None,
            none,
            &json!({"senderPhoneNumber": "+447911123456", "eventType": "SOMETHING_NEW", "eventId": "E5"}),
        )
        .unwrap();
        assert_eq!(e, RbmEvent::Ignore("SOMETHING_NEW".into()));
        // AgentLaunchEvent: told apart by the envelope's attributes.type; no phone.
        let (id, e) = decode_event(
            "a",
            "x",
            None,
            &json!({"business_id": "x", "event_type": "LAUNCHED", "product": "RBM",
                    "type": "agent_launch_event"}),
            &json!({"eventId": "L1", "agentId": "x", "regionId": "/v1/regions/fi-rcs",
                    "oldLaunchState": "PENDING", "newLaunchState": "LAUNCHED",
                    "sendTime": "2026-01-01T00:00:01Z"}),
        )
        .unwrap();
        assert_eq!(id, "L1");
        assert_eq!(
            e,
            RbmEvent::Launch(AgentLaunch {
                agent: "a".into(),
                region: "/v1/regions/fi-rcs".into(),
                state: "LAUNCHED".into(),
                previous: Some("PENDING".into()),
                at: 1_767_225_601_000,
            })
        );
        assert!(
            decode_event(
                "a",
                "x",
                None,
                none,
                &json!({"eventType": "READ", "eventId": "E6"})
            )
            .is_err()
        );
        assert!(decode_event("a", "x", None, none, &json!({"eventType": "READ"})).is_err());
    }
}
