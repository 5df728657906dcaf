//! A channel, its errors, and what it hands back to the pipeline or serves over HTTP.

use std::time::Duration;

use async_trait::async_trait;

use crate::inbound::InboundPart;
use crate::model::*;
use crate::plan::*;

/// Why a channel's send or withdrawal failed, and whether trying again can help.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChannelError {
    #[error("transient send failure {code}")]
    Transient {
        code: String,
        retry_after: Option<Duration>,
    },
    #[error("permanent send failure {code}")]
    Permanent { code: String },
    /// The request may have reached the provider but no answer came (timeout, lost
    /// connection): sending again could deliver twice. The attempt stays `sending`
    /// until a receipt resolves it or the in-doubt grace period ends.
    #[error("send outcome unknown {code}")]
    InDoubt { code: String },
}

/// A channel that can carry a message to a recipient.
#[async_trait]
pub trait Channel: Send + Sync {
    fn kind(&self) -> ChannelKind;
    /// Whether this process can send now (e.g. holds a bound SMPP bind); a stage
    /// does not take jobs while it cannot.
    fn ready(&self) -> bool {
        true
    }
    /// Whether sending the same attempt twice is harmless (the provider drops the
    /// repeat): then a send left in doubt by a crash is simply sent again.
    fn idempotent_sends(&self) -> bool {
        false
    }
    /// What a receipt of this message would repeat, where it may have gone and how
    /// soon receipts come there: how the pipeline recognises the receipt of a submit
    /// left in doubt, and how long it waits for it.
    fn in_doubt_look(&self, _msg: &Outgoing, since: i64) -> InDoubtLook {
        InDoubtLook {
            since,
            ..InDoubtLook::default()
        }
    }
    /// Called with each batch before its sends (e.g. one bulk capability lookup).
    async fn prepare(&self, _batch: &[Outgoing]) {}
    /// Submits and returns the provider ids (one per part) and the raw provider status.
    async fn send(&self, msg: &Outgoing) -> Result<(Vec<String>, String), ChannelError>;
    /// What the channel knows of each candidate's recipient (device registered, RCS
    /// capable, ...): kept or skipped, with the reason. One entry per candidate.
    async fn assess(&self, batch: &[Candidate]) -> Vec<Assessment> {
        batch
            .iter()
            .map(|_| Assessment::keep("available"))
            .collect()
    }
    /// Withdraws an unanswered message before a fallback (RBM revoke, envelope
    /// deletion).
    async fn withdraw(&self, _due: &DueFallback) -> Result<Withdrawal, ChannelError> {
        Ok(Withdrawal::NotSupported)
    }
}

/// What an agent shows a user of a rich channel about their message (RBM
/// `phones.agentEvents`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgentEventKind {
    /// The user's message was read (RBM shows it as read).
    Read,
    /// The agent is typing (RBM shows a typing indicator for a while).
    Typing,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentEventError {
    /// The message came on a connector that has no agent events (SMS), or its agent
    /// is not configured here.
    #[error("{0}")]
    NotSupported(String),
    /// The provider refused it or could not be reached.
    #[error("{0}")]
    Provider(String),
}

/// Sends agent events for inbound messages.
#[async_trait]
pub trait AgentEvents: Send + Sync {
    /// Sends `kind` to `to` (E.164) through `connector` (`rbm:<agent>`, as the
    /// inbound message records it); `message_id` is the provider's id of the user's
    /// message (a READ needs it).
    async fn send_agent_event(
        &self,
        connector: &str,
        to: &str,
        kind: AgentEventKind,
        message_id: Option<&str>,
    ) -> Result<(), AgentEventError>;
}

/// A provider's webhook (RBM events): what the HTTP layer hands over and answers.
#[async_trait]
pub trait WebhookIngress: Send + Sync {
    /// The header that carries the provider's signature.
    fn signature_header(&self) -> &'static str;
    /// Handles one POST to `/v1/webhooks/<kind>/{name}`; `signature` is the provider's
    /// signature header. Returns the HTTP status and the body to answer with.
    async fn handle(&self, name: &str, signature: Option<&str>, body: &[u8]) -> WebhookReply;
    /// Handles one POST with everything the HTTP layer has of it (providers that sign
    /// the URL, send forms or several headers). By default: [`Self::handle`] with the
    /// signature header.
    async fn handle_request(&self, req: &WebhookRequest) -> WebhookReply {
        self.handle(&req.name, req.header(self.signature_header()), &req.body)
            .await
    }
}

/// A provider's call to `/v1/webhooks/<kind>/{name}`, as the HTTP layer received it.
#[derive(Clone, Debug, Default)]
pub struct WebhookRequest {
    /// The `{name}` of the path (the connector's name).
    pub name: String,
    /// The query string (without `?`), as sent.
    pub query: String,
    /// Headers, names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl WebhookRequest {
    /// The first header of that name (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The answer to a webhook call.
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookReply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl WebhookReply {
    pub fn json(status: u16, body: serde_json::Value) -> Self {
        Self {
            status,
            content_type: "application/json",
            body: body.to_string(),
        }
    }
    pub fn error(status: u16, code: &str, message: &str) -> Self {
        Self::json(
            status,
            serde_json::json!({"error": {"code": code, "message": message}}),
        )
    }
}

/// Where channels hand inbound (MO) parts. Returns once the part is durably recorded
/// (true) or could not be (false: the provider should redeliver it).
#[async_trait]
pub trait InboundSink: Send + Sync {
    async fn receive(&self, part: InboundPart) -> bool;
}

/// Where channels hand receipts. Returns once the receipt is durably recorded (true)
/// or could not be (false: the provider should redeliver it).
#[async_trait]
pub trait ReceiptSink: Send + Sync {
    async fn deliver(&self, receipt: Receipt) -> bool;
}

/// What `GET /v1/connectors` shows of a channel (SMPP binds, RBM agents, ...), and
/// what a configuration reload (`SIGHUP`, `POST /v1/admin/reload`) changes of it.
#[async_trait]
pub trait Connectors: Send + Sync {
    /// This channel's entries, each a JSON object with at least `name`.
    async fn list(&self) -> crate::error::PortResult<Vec<serde_json::Value>>;
    /// Applies the channel's section of a re-read configuration (what can change
    /// without a restart) and says what it applied. None: nothing of this channel
    /// reloads in this process.
    fn reload(
        &self,
        _section: &serde_json::Value,
    ) -> Option<Result<serde_json::Value, crate::error::ConfigError>> {
        None
    }
}
