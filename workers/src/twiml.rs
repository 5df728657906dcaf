//! The replies a number's TwiML answer asks for (`<Message>` verbs): stored as messages
//! of the tenant like any other, from the number (a `from` naming another sender is not
//! used) to the sender of the inbound message unless the verb names another `to`. A reply has an id derived from the inbound message
//! and its place in the answer, so an answer read twice (a retried POST) sends once.

use std::sync::Arc;

use async_trait::async_trait;
use hermod_core::content::{Content, Media, RichMessage};
use hermod_core::inbound::sender_key;
use hermod_core::model::{NewMessage, Priority};
use hermod_core::ports::Messages;
use hermod_core::twilio::{FormPost, TwimlReplies, parse_twiml};
use hermod_core::{MessageId, Msisdn, TenantId, now_ms};

/// Stores TwiML replies through the message store (accept: the dispatch job with it).
pub struct TwimlReplier {
    messages: Arc<dyn Messages>,
}

impl TwimlReplier {
    pub fn new(messages: Arc<dyn Messages>) -> Self {
        Self { messages }
    }
}

/// The id of the `n`-th reply to inbound message `sid` (`SM<uuid v7 hex>`): the
/// inbound message's time and random bits, the latter marked with `n`.
pub fn reply_id(sid: &str, n: usize) -> Option<MessageId> {
    let hex = sid.get(2..)?;
    let inbound = uuid::Uuid::parse_str(hex).ok()?;
    let (secs, nanos) = inbound.get_timestamp()?.to_unix();
    let ms = secs * 1000 + u64::from(nanos) / 1_000_000;
    let mut rand = [0u8; 10];
    rand.copy_from_slice(&inbound.as_bytes()[6..16]);
    rand[9] ^= u8::try_from(n % 255).unwrap_or(0) + 1;
    let id = uuid::Builder::from_unix_timestamp_millis(ms, &rand).into_uuid();
    MessageId::parse(&format!("msg_{}", id.simple()))
}

#[async_trait]
impl TwimlReplies for TwimlReplier {
    async fn reply(&self, tenant: &TenantId, inbound: &FormPost, twiml: &str) -> bool {
        let verbs = match parse_twiml(twiml) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(tenant = %tenant, error = %e, "TwiML answer not used");
                return true;
            }
        };
        let (Some(sid), Some(sender), Some(number)) = (
            inbound.param("MessageSid"),
            inbound.param("From"),
            inbound.param("To"),
        ) else {
            return true;
        };
        let now = now_ms();
        let mut msgs = Vec::new();
        for (n, v) in verbs.into_iter().enumerate() {
            let Some(id) = reply_id(sid, n) else { continue };
            // Replies go out from the number that was written to: a `from` naming
            // another sender could be one the tenant does not own.
            if let Some(f) = &v.from
                && sender_key(f) != sender_key(number)
            {
                tracing::warn!(tenant = %tenant, "TwiML <Message from> other than the number; skipped");
                continue;
            }
            let to = v.to.as_deref().unwrap_or(sender);
            let Ok(to) = Msisdn::parse(to) else {
                tracing::warn!(tenant = %tenant, "TwiML <Message> to an invalid number; skipped");
                continue;
            };
            let content = v.media.first().map(|url| RichMessage {
                content: Content::Media(Media {
                    url: url.clone(),
                    thumbnail_url: None,
                    height: None,
                    upload: false,
                }),
                suggestions: Vec::new(),
            });
            let mut text: String = v.body.chars().take(1600).collect();
            if text.is_empty() {
                match v.media.first() {
                    Some(url) => text = url.clone(),
                    None => continue,
                }
            }
            msgs.push(NewMessage {
                id,
                tenant_id: tenant.clone(),
                to,
                from: Some(number.to_owned()),
                text,
                channels: Vec::new(),
                ttl_secs: None,
                metadata: Some(serde_json::json!({ "reply_to": sid })),
                callback_url: None,
                callback_events: None,
                created_at: now,
                send_at: None,
                content,
                user_id: None,
                fallback: None,
                priority: Priority::Normal,
                alert: None,
                deferred: None,
                traffic_type: None,
                twilio: Some(hermod_core::twilio::MessageExtras {
                    media: !v.media.is_empty(),
                    service_sid: None,
                }),
                smpp: None,
            });
        }
        let mut fresh = Vec::new();
        for m in msgs {
            match self.messages.get_message(tenant, &m.id).await {
                Ok(Some(_)) => {}
                Ok(None) => fresh.push(m),
                Err(e) => {
                    tracing::warn!(tenant = %tenant, error = %e, "cannot store TwiML replies now");
                    return false;
                }
            }
        }
        if fresh.is_empty() {
            return true;
        }
        match self.messages.accept(tenant, &fresh, None).await {
            Ok(_) => {
                metrics::counter!("hermod_twiml_replies_total").increment(fresh.len() as u64);
                true
            }
            Err(e) => {
                tracing::warn!(tenant = %tenant, error = %e, "cannot store TwiML replies now");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_ids_are_stable_and_distinct() {
        let inbound = format!("SM{}", uuid::Uuid::now_v7().simple());
        let a = reply_id(&inbound, 0).unwrap();
        assert_eq!(reply_id(&inbound, 0), Some(a.clone()));
        assert_ne!(reply_id(&inbound, 1), Some(a.clone()));
        assert!(reply_id("SMnothex", 0).is_none());
    }
}
