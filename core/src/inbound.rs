//! Inbound (mobile-originated) SMS and the opt-out keywords they may carry.

use serde::{Deserialize, Serialize};

use crate::TenantId;

/// Concatenation info of one part: `reference` is scoped by sender and recipient.
/// `seq` 0 (never a real part) asks the store to assemble whatever parts came.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Concat {
    pub reference: u16,
    pub total: u8,
    pub seq: u8,
}

/// One deliver_sm that is not a receipt, already decoded.
#[derive(Clone, Debug, PartialEq)]
pub struct InboundPart {
    /// The channel it came on.
    pub channel: crate::model::ChannelKind,
    /// Connector it arrived on.
    pub connector: String,
    /// The sender (digits, no `+`).
    pub from: String,
    /// Our number or short code it was sent to.
    pub to: String,
    pub concat: Option<Concat>,
    pub text: String,
    pub received_at: i64,
    /// The tenant that owns `to`, when configured; otherwise the store finds the
    /// tenant that last wrote to the sender from `to`.
    pub tenant: Option<TenantId>,
    /// What a rich channel adds: a tapped suggestion's `postback_data`, a shared
    /// location (JSON).
    pub payload: Option<serde_json::Value>,
    /// The provider's id of this part, when it may deliver it again (RBM).
    pub event: Option<crate::model::ProviderEvent>,
}

/// A complete inbound message.
#[derive(Clone, Debug, PartialEq)]
pub struct InboundMessage {
    pub id: String,
    /// `None` when no tenant could be found for the recipient number.
    pub tenant_id: Option<TenantId>,
    pub from: String,
    pub to: String,
    pub text: String,
    pub parts: i32,
    /// The channel it came on.
    pub channel: crate::model::ChannelKind,
    pub connector: String,
    /// The keyword it carried, if any (`stop`, `stop_all`, `start`, `help`).
    pub keyword: Option<Keyword>,
    pub received_at: i64,
    pub payload: Option<serde_json::Value>,
    /// The provider's id of the message (RBM's `messageId`), when it has one.
    pub provider_id: Option<String>,
}

impl InboundMessage {
    /// The answer to a HELP keyword: `reply` back to the sender, from `from`, on
    /// `channel`. None unless the message was HELP from a number of a known tenant.
    pub fn help_reply(
        &self,
        reply: &str,
        from: &str,
        channel: crate::model::ChannelKind,
    ) -> Option<crate::model::NewMessage> {
        let (Some(Keyword::Help), Some(tenant)) = (self.keyword, &self.tenant_id) else {
            return None;
        };
        Some(crate::model::NewMessage {
            id: crate::MessageId::generate(),
            tenant_id: tenant.clone(),
            to: crate::Msisdn::parse(&self.from).ok()?,
            from: Some(from.to_owned()),
            text: reply.to_owned(),
            channels: vec![channel],
            ttl_secs: None,
            metadata: Some(serde_json::json!({ "reply_to": self.id })),
            callback_url: None,
            callback_events: None,
            created_at: crate::now_ms(),
            send_at: None,
            content: None,
            user_id: None,
            fallback: None,
            priority: Default::default(),
            alert: None,
            deferred: None,
            traffic_type: None,
            twilio: None,
            smpp: None,
        })
    }
}

/// Keywords recipients send to manage their subscription.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Keyword {
    /// Opt out of this sender.
    Stop,
    /// Opt out of every sender of the tenant.
    StopAll,
    /// Opt back in.
    Start,
    Help,
}

impl Keyword {
    /// The keyword a message consists of: trimmed, any case, nothing else.
    pub fn parse(text: &str) -> Option<Keyword> {
        let t = text
            .trim()
            .trim_end_matches(['.', '!'])
            .trim()
            .to_uppercase();
        match t.as_str() {
            "STOP" | "UNSUBSCRIBE" | "CANCEL" | "END" | "QUIT" => Some(Keyword::Stop),
            "STOPALL" | "STOP ALL" => Some(Keyword::StopAll),
            "START" | "UNSTOP" => Some(Keyword::Start),
            "HELP" => Some(Keyword::Help),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Keyword::Stop => "stop",
            Keyword::StopAll => "stop_all",
            Keyword::Start => "start",
            Keyword::Help => "help",
        }
    }
}

/// Opt-outs apply to one sender, or to every sender of the tenant.
pub const ALL_SENDERS: &str = "*";

/// A sender address as opt-outs key it: without `+`, trimmed, case-folded.
pub fn sender_key(s: &str) -> String {
    s.trim().trim_start_matches('+').to_ascii_lowercase()
}

/// A recorded opt-out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OptOut {
    /// E.164 with `+`.
    pub recipient: String,
    /// A sender, or `*` for all of the tenant's senders.
    pub sender: String,
    /// `keyword` (from an inbound SMS) or `api`.
    pub source: String,
    pub created_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords() {
        for s in [
            "STOP",
            "stop",
            "  Stop \n",
            "UNSUBSCRIBE",
            "cancel",
            "End",
            "quit",
            "STOP.",
        ] {
            assert_eq!(Keyword::parse(s), Some(Keyword::Stop), "{s:?}");
        }
        assert_eq!(Keyword::parse("STOPALL"), Some(Keyword::StopAll));
        assert_eq!(Keyword::parse("stop all"), Some(Keyword::StopAll));
        assert_eq!(Keyword::parse("Start"), Some(Keyword::Start));
        assert_eq!(Keyword::parse("UNSTOP"), Some(Keyword::Start));
        assert_eq!(Keyword::parse(" help "), Some(Keyword::Help));
        for s in ["stop it", "please stop", "STOPPED", "", "starting"] {
            assert_eq!(Keyword::parse(s), None, "{s:?}");
        }
        assert_eq!(sender_key("+4479"), "4479");
        assert_eq!(sender_key("Hermod"), "hermod");
    }
}
