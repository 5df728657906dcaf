//! Plain data carried between the API, the store, the queue and the workers.

use serde::{Deserialize, Serialize};

use crate::content::RichMessage;
use crate::{AttemptId, MessageId, Msisdn, Status, TenantId};

pub use crate::channel::{ChannelKind, ChannelSet};

/// A message the API has validated and is about to store.
#[derive(Clone, Debug)]
pub struct NewMessage {
    pub id: MessageId,
    pub tenant_id: TenantId,
    pub to: Msisdn,
    pub from: Option<String>,
    pub text: String,
    pub channels: Vec<ChannelKind>,
    pub ttl_secs: Option<i64>,
    pub metadata: Option<serde_json::Value>,
    pub callback_url: Option<String>,
    /// The event types `callback_url` receives (None: all of them).
    pub callback_events: Option<Vec<String>>,
    pub created_at: i64,
    /// Hold the message until then (Unix ms).
    pub send_at: Option<i64>,
    /// Rich content for channels that show it (`text` is its plain-text form).
    pub content: Option<RichMessage>,
    /// The tenant's own id of the recipient (the app channel reaches the devices
    /// registered with it too).
    pub user_id: Option<String>,
    /// The message's own fallback policy, over the tenant's defaults.
    pub fallback: Option<crate::plan::FallbackSpec>,
    pub priority: Priority,
    /// Set when an alert hook raised the message (its repeat suppression).
    pub alert: Option<AlertRef>,
    /// Why `send_at` was set by Hermod rather than the caller (`quiet_hours`).
    pub deferred: Option<String>,
    /// What the message is for (RCS: RBM's `messageTrafficType`).
    pub traffic_type: Option<TrafficType>,
    /// Set when it came through the Twilio API (its callbacks are Twilio's form POSTs).
    pub twilio: Option<crate::twilio::MessageExtras>,
    /// Set when an SMPP client submitted it (its receipt goes back as a deliver_sm).
    pub smpp: Option<crate::smpp::SmppOrigin>,
}

/// The alert a message was raised for: the hook and fingerprint (hashed together)
/// and the alert's status (`firing`, `resolved`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertRef {
    pub key: String,
    pub status: String,
}

/// A stored message as the API shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub id: MessageId,
    pub tenant_id: TenantId,
    pub to: String,
    pub from: Option<String>,
    pub text: String,
    pub channels: Vec<String>,
    pub ttl_secs: Option<i64>,
    pub metadata: Option<serde_json::Value>,
    pub callback_url: Option<String>,
    pub callback_events: Option<Vec<String>>,
    pub status: Status,
    pub created_at: i64,
    pub updated_at: i64,
    pub send_at: Option<i64>,
    /// Why it ended without being sent (`recipient_opted_out`, `canceled`), if so.
    pub reason: Option<String>,
    pub content: Option<RichMessage>,
    pub user_id: Option<String>,
    /// The fallback policy as the request gave it.
    pub fallback: Option<crate::plan::FallbackSpec>,
    /// The plan dispatch recorded: each channel kept or skipped, and the policy.
    pub plan: Option<crate::plan::Plan>,
    pub priority: Priority,
    pub traffic_type: Option<TrafficType>,
    /// Set when it came through the Twilio API.
    pub twilio: Option<crate::twilio::MessageExtras>,
}

/// One try on one channel.
#[derive(Clone, Debug, PartialEq)]
pub struct Attempt {
    pub id: AttemptId,
    pub message_id: MessageId,
    pub attempt_no: i32,
    pub channel: String,
    pub status: Status,
    pub provider_ids: Vec<String>,
    pub raw_status: Option<String>,
    pub error: Option<AttemptError>,
    pub parts: i32,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AttemptError {
    pub code: String,
    pub permanent: bool,
}

/// One append-only timeline row.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub seq: i64,
    pub message_id: MessageId,
    pub kind: String,
    pub status: Status,
    pub attempt_no: Option<i32>,
    pub channel: Option<String>,
    pub detail: Option<serde_json::Value>,
    pub at: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct MessageView {
    pub message: Message,
    pub attempts: Vec<Attempt>,
    pub events: Vec<Event>,
}

/// `GET /v1/messages` filters. `cursor` is the last id of the previous page.
#[derive(Clone, Debug, Default)]
pub struct ListFilter {
    pub status: Option<Status>,
    pub to: Option<String>,
    pub since: Option<i64>,
    /// Created before this (Unix ms).
    pub until: Option<i64>,
    /// Messages that had an attempt on this channel (`sms`, `rcs`, `app`).
    pub channel: Option<String>,
    /// Messages whose `metadata` has this top-level key.
    pub metadata_key: Option<String>,
    /// Sent from this sender.
    pub from: Option<String>,
    pub limit: i64,
    pub cursor: Option<MessageId>,
}

/// What the API stored for an `Idempotency-Key`.
#[derive(Clone, Debug, PartialEq)]
pub struct IdempotencyRecord {
    pub key: String,
    pub request_hash: String,
    pub status_code: u16,
    pub body: String,
}

#[derive(Clone, Debug, PartialEq)]
pub enum AcceptOutcome {
    Accepted,
    /// The key was used before: here is what was answered then.
    Replay(IdempotencyRecord),
}

/// What `DELETE /v1/messages/{id}` found.
#[derive(Clone, Debug, PartialEq)]
pub enum CancelOutcome {
    Canceled,
    NotFound,
    /// Already handed to a channel (or finished): the status it has.
    TooLate(Status),
}

/// Work an attempt needs from the channel.
#[derive(Clone, Debug)]
pub struct Outgoing {
    pub attempt_id: AttemptId,
    pub message_id: MessageId,
    pub tenant_id: TenantId,
    pub to: Msisdn,
    pub from: Option<String>,
    pub text: String,
    /// Our reference, sent as SMPP `user_message_reference` and echoed in receipts, so a
    /// submit whose response was lost in a crash can be recognised in its receipt.
    pub user_ref: u16,
    /// Unix ms after which the message must not be sent (its `ttl`); SMPP carries the
    /// rest as the validity period.
    pub expires_at: Option<i64>,
    /// Rich content, for channels that show it.
    pub content: Option<RichMessage>,
    /// The tenant's own id of the recipient, when the message names it.
    pub user_id: Option<String>,
    /// What the message is for; none = the channel's default (an RBM agent's
    /// `traffic_type`, else its use case's).
    pub traffic_type: Option<TrafficType>,
    /// Binary SMS (from the SMPP server): `text` is the bytes in hex, sent with this
    /// data_coding.
    pub binary: Option<u8>,
}

/// What `claim_attempts` found for an attempt.
#[derive(Clone, Debug)]
pub enum Claim {
    /// Moved `queued → sending` now: submit it.
    Claimed(Outgoing),
    /// Already `sending`: a submit may have reached the provider before a crash.
    InDoubt { outgoing: Outgoing, since: i64 },
    /// Already past sending (or gone): nothing to do but acknowledge the job.
    Done(AttemptId),
}

/// The outcome of one submit, recorded by the store in a batch.
#[derive(Clone, Debug)]
pub enum SendOutcome {
    Sent {
        provider_ids: Vec<String>,
        raw_status: String,
    },
    Failed {
        code: String,
        permanent: bool,
    },
    /// A transient failure: the attempt goes back to `queued` for a retry.
    Retry {
        code: String,
    },
}

#[derive(Clone, Debug)]
pub struct SendResult {
    pub attempt_id: AttemptId,
    pub outcome: SendOutcome,
}

/// A delivery receipt from any channel, already mapped to the unified status.
#[derive(Clone, Debug, PartialEq)]
pub struct Receipt {
    pub channel: ChannelKind,
    pub provider_id: String,
    pub status: Status,
    pub raw_status: String,
    pub error_code: Option<String>,
    pub user_ref: Option<u16>,
    /// The recipient (digits, no `+`), when the receipt names it.
    pub recipient: Option<String>,
    /// What the receipt repeats of its submit, when it says (SMPP: `submit date:` and
    /// the start of `text:`): how a submit whose response was lost is recognised by an
    /// SMSC that does not echo `user_message_reference`.
    pub echo: Option<SubmitEcho>,
    /// The provider's id of this event, when it may deliver it again (RBM).
    pub event: Option<ProviderEvent>,
}

/// An RBM agent's launch state in one region, as its last AgentLaunchEvent said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentLaunch {
    /// Our name for the agent (`[[rcs.agents]] name`).
    pub agent: String,
    /// RBM's region id, e.g. `/v1/regions/fi-rcs`.
    pub region: String,
    /// `newLaunchState`: LAUNCHED, PENDING, REJECTED, SUSPENDED, ...
    pub state: String,
    /// `oldLaunchState`.
    pub previous: Option<String>,
    /// `sendTime`, Unix ms.
    pub at: i64,
}

/// A provider's id for an event it may deliver more than once (RBM's `eventId`, a
/// user message's `messageId`). It is recorded in the transaction that applies the
/// event: a redelivery changes nothing, and an apply that failed leaves no trace, so
/// the redelivery is applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderEvent {
    /// Where it came from, e.g. `rbm:agent`.
    pub source: String,
    pub id: String,
}

/// The part of a submit a receipt repeats.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SubmitEcho {
    /// Unix ms, to the minute, in the SMSC's own time zone.
    pub submitted_at: Option<i64>,
    /// The ASCII letters and digits of the first characters of the text, in order
    /// (the channel's normal form; empty when the receipt repeats no text).
    pub text_key: String,
}

/// What the pipeline knows when it looks for the receipt of an in-doubt submit.
#[derive(Clone, Debug, Default)]
pub struct InDoubtLook {
    /// When the attempt was claimed for sending (Unix ms): its submit is not older.
    pub since: i64,
    /// Each part's whole text in the channel's normal form ([`SubmitEcho::text_key`]).
    pub part_keys: Vec<String>,
    /// Provider-id scopes (`connector:`) the submit may have gone to; empty = any.
    pub scopes: Vec<String>,
    /// The last look before the submit is sent again: a multipart message with some
    /// of its parts recognised counts as sent rather than sent twice.
    pub last_look: bool,
    /// How soon receipts come where it may have gone; `None`: the configured grace.
    pub timing: Option<ReceiptTiming>,
}

/// What a channel has seen of its receipts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReceiptTiming {
    /// Unix ms since when receipts can arrive (the last time a receiving session came
    /// up: an SMSC holds receipts while none is bound).
    pub receipts_since: i64,
    /// The longest recent delay between a submit's response and its receipt, when
    /// enough have been seen.
    pub slowest_recent: Option<std::time::Duration>,
}

impl ReceiptTiming {
    /// Waiting on both: the later start, the slower receipts (unknown if either is).
    pub fn and(self, other: Self) -> Self {
        Self {
            receipts_since: self.receipts_since.max(other.receipts_since),
            slowest_recent: self
                .slowest_recent
                .zip(other.slowest_recent)
                .map(|(a, b)| a.max(b)),
        }
    }
}

/// Jobs are a tagged, versioned enum so that a rolling deploy can read old jobs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Job {
    #[serde(rename = "dispatch.v1")]
    DispatchV1 {
        message_id: String,
        /// The fast lane (alerts, `priority: "high"`): taken before any other job of
        /// its queue. Absent in jobs written before it existed.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        high: bool,
    },
    #[serde(rename = "send.v1")]
    SendV1 {
        attempt_id: String,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        high: bool,
    },
}

impl Job {
    /// Whether the job travels in the fast lane.
    pub fn is_high(&self) -> bool {
        match self {
            Job::DispatchV1 { high, .. } | Job::SendV1 { high, .. } => *high,
        }
    }
}

/// What a message is for, as RBM's `messageTrafficType` classifies agent messages
/// (<https://developers.google.com/business-communications/rcs-business-messaging/reference/rest/v1/phones.agentMessages#messagetraffictype>).
/// A multi-use agent must name one on every message; other agents default to their
/// use case's (OTP: authentication, transactional, promotional).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TrafficType {
    Authentication,
    Transaction,
    Promotion,
    ServiceRequest,
    Acknowledgement,
}

impl TrafficType {
    pub const ALL: [TrafficType; 5] = [
        TrafficType::Authentication,
        TrafficType::Transaction,
        TrafficType::Promotion,
        TrafficType::ServiceRequest,
        TrafficType::Acknowledgement,
    ];

    /// The API's name (`service_request`).
    pub fn as_str(self) -> &'static str {
        match self {
            TrafficType::Authentication => "authentication",
            TrafficType::Transaction => "transaction",
            TrafficType::Promotion => "promotion",
            TrafficType::ServiceRequest => "service_request",
            TrafficType::Acknowledgement => "acknowledgement",
        }
    }

    pub fn parse(s: &str) -> Option<TrafficType> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// RBM's enum value (`SERVICEREQUEST`).
    pub fn rbm(self) -> &'static str {
        match self {
            TrafficType::Authentication => "AUTHENTICATION",
            TrafficType::Transaction => "TRANSACTION",
            TrafficType::Promotion => "PROMOTION",
            TrafficType::ServiceRequest => "SERVICEREQUEST",
            TrafficType::Acknowledgement => "ACKNOWLEDGEMENT",
        }
    }
}

/// How urgent a message is: `high` (alerts, one-time codes) overtakes `normal`
/// (bulk) at every stage and is exempt from quiet hours.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    #[default]
    Normal,
    High,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Normal => "normal",
            Priority::High => "high",
        }
    }
    pub fn parse(s: &str) -> Option<Priority> {
        match s {
            "normal" => Some(Priority::Normal),
            "high" => Some(Priority::High),
            _ => None,
        }
    }
    pub fn is_high(self) -> bool {
        self == Priority::High
    }
}

/// A job handed to a consumer; `tag` acknowledges it.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub tag: i64,
    pub job: Job,
    /// How many times it was handed out, this time included.
    pub deliveries: i32,
}

/// A job moved aside after too many deliveries (or unreadable).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeadJob {
    pub queue: String,
    pub deliveries: i32,
    pub dead_at: i64,
    /// The job as it was queued.
    pub payload: String,
}

/// Queue names, one per stage.
pub mod queues {
    /// The dispatch stage's queue; each channel's is [`super::ChannelKind::queue`].
    pub const DISPATCH: &str = "dispatch";
}
