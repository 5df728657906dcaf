//! The message resources of `/v1/messages`: request bodies and views.

use hermod_core::model::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::json::*;

/// `POST /v1/messages` body.
#[derive(Deserialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct SendMessage {
    /// Recipient in E.164, e.g. `+447911123456`.
    pub to: String,
    /// Sender: an alphanumeric id (≤ 11) or a number; for RCS, the name of the RBM
    /// agent to send through.
    pub from: Option<String>,
    /// The text; with `content` it is optional and is the plain-text form used by
    /// channels without rich content (derived from the content when left out).
    pub text: Option<String>,
    /// Rich content for RCS: `{"text": ...}`, `{"card": {...}}`, `{"carousel": [...]}`
    /// or `{"media": {"url": ...}}`. Checked against RBM's limits.
    #[schema(value_type = Option<Object>)]
    pub content: Option<serde_json::Value>,
    /// Suggested replies and actions (≤ 11): `{"reply": {text, postback_data?}}`,
    /// `{"open_url": {text, url}}`, `{"dial": {text, phone_number}}`,
    /// `{"view_location": {text, latitude, longitude, label?}}`,
    /// `{"calendar_event": {text, start_time, end_time, title, description?}}`,
    /// `{"share_location": {text}}`.
    #[schema(value_type = Option<Vec<Object>>)]
    pub suggestions: Option<Vec<serde_json::Value>>,
    /// Your own id of the recipient: the app channel also reaches the devices
    /// registered with this `user_id` (≤ 200 characters).
    pub user_id: Option<String>,
    /// Ordered channels to try (`app`, `rcs`, `sms`); default: the tenant's
    /// (`PUT /v1/tenant/defaults`), else `["app", "rcs", "sms"]`. Each recipient gets the
    /// channels it can take (a registered device, RCS capability); the message falls
    /// along the list when a channel fails or stays silent.
    pub channels: Option<Vec<String>>,
    /// When to fall to the next channel: `{"after": "90s", "until": "delivered" |
    /// "read", "duplicates": "avoid" | "allow"}`; fields left out come from the
    /// tenant's defaults, else 90 s, delivered, avoid.
    #[schema(value_type = Option<Object>)]
    pub fallback: Option<serde_json::Value>,
    /// Seconds the message stays worth delivering (1 to 604800).
    pub ttl: Option<i64>,
    /// Your own JSON object, returned as given (≤ 4 KiB).
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
    /// Where to POST status events (http or https).
    pub callback_url: Option<String>,
    /// The events `callback_url` receives, e.g. `["message.delivered",
    /// "message.failed"]` (default: every event of the message).
    pub callback_events: Option<Vec<String>>,
    /// Hold the message until this time (RFC 3339, at most 366 days ahead); cancel it
    /// before then with `DELETE /v1/messages/{id}`.
    pub send_at: Option<String>,
    /// `normal` (default) or `high`: high-priority messages overtake bulk traffic at
    /// every stage and are not held by quiet hours.
    pub priority: Option<String>,
    /// What the message is for: `authentication` (one-time codes), `transaction`,
    /// `promotion`, `service_request` or `acknowledgement`. RCS sends it as RBM's
    /// `messageTrafficType` (a multi-use agent needs one on every message). Default:
    /// the template's, else the RBM agent's `traffic_type`, else the agent's use case.
    pub traffic_type: Option<String>,
    /// Send a stored template instead of `text`/`content`/`suggestions`:
    /// `{"id": "order_shipped", "locale": "de-DE", "vars": {"order": {"id": "A-17"}}}`.
    #[schema(value_type = Option<Object>)]
    pub template: Option<TemplateRef>,
    /// The recipient's IANA time zone (`Europe/Berlin`), for quiet hours and template
    /// dates; default: from the number's country code.
    pub timezone: Option<String>,
}

/// A template to render for a message.
#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct TemplateRef {
    pub id: String,
    pub locale: Option<String>,
    pub vars: Option<serde_json::Value>,
}

/// `POST /v1/messages/batch` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendBatch {
    /// Up to 1,000 messages.
    pub messages: Vec<serde_json::Value>,
}

#[derive(Serialize, ToSchema)]
pub struct AttemptView {
    pub attempt: i32,
    pub channel: String,
    pub status: String,
    pub provider_ids: Vec<String>,
    pub raw_status: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub error: Option<serde_json::Value>,
    pub parts: i32,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct EventView {
    pub seq: i64,
    #[serde(rename = "type")]
    pub kind: String,
    pub status: String,
    pub attempt: Option<i32>,
    pub channel: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub detail: Option<serde_json::Value>,
    pub at: String,
}

/// The message resource.
#[derive(Serialize, ToSchema)]
pub struct MessageResource {
    pub id: String,
    pub status: String,
    /// `normal` or `high`.
    pub priority: String,
    /// `authentication`, `transaction`, `promotion`, `service_request` or
    /// `acknowledgement`, when the message (or its template) names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traffic_type: Option<String>,
    pub to: String,
    pub from: Option<String>,
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub content: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub suggestions: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The channels asked for (empty: the tenant's default order).
    pub channels: Vec<String>,
    /// The fallback policy as given.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub fallback: Option<serde_json::Value>,
    /// The plan made for the recipient: each channel kept or skipped, with the reason,
    /// and the fallback policy in force.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub plan: Option<serde_json::Value>,
    pub ttl: Option<i64>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
    pub callback_url: Option<String>,
    /// The events `callback_url` receives (left out: all).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_events: Option<Vec<String>>,
    pub created_at: String,
    pub updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send_at: Option<String>,
    /// Why it ended without being sent: `recipient_opted_out`, `canceled`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<Vec<AttemptView>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<EventView>>,
}

#[derive(Serialize, ToSchema)]
pub struct MessageList {
    pub data: Vec<MessageResource>,
    pub next_cursor: Option<String>,
}

pub(crate) fn resource(m: &Message, view: Option<&MessageView>) -> MessageResource {
    MessageResource {
        id: m.id.to_string(),
        status: m.status.as_str().to_owned(),
        priority: m.priority.as_str().to_owned(),
        traffic_type: m.traffic_type.map(|t| t.as_str().to_owned()),
        to: m.to.clone(),
        from: m.from.clone(),
        text: m.text.clone(),
        content: m
            .content
            .as_ref()
            .and_then(|c| serde_json::to_value(&c.content).ok()),
        suggestions: m
            .content
            .as_ref()
            .filter(|c| !c.suggestions.is_empty())
            .and_then(|c| serde_json::to_value(&c.suggestions).ok()),
        user_id: m.user_id.clone(),
        channels: m.channels.clone(),
        fallback: m
            .fallback
            .as_ref()
            .and_then(|f| serde_json::to_value(f).ok()),
        plan: m.plan.as_ref().and_then(|p| serde_json::to_value(p).ok()),
        ttl: m.ttl_secs,
        metadata: m.metadata.clone(),
        callback_url: m.callback_url.clone(),
        callback_events: m.callback_events.clone(),
        created_at: rfc3339(m.created_at),
        updated_at: rfc3339(m.updated_at),
        send_at: m.send_at.map(rfc3339),
        reason: m.reason.clone(),
        attempts: view.map(|v| {
            v.attempts
                .iter()
                .map(|a| AttemptView {
                    attempt: a.attempt_no,
                    channel: a.channel.clone(),
                    status: a.status.as_str().to_owned(),
                    provider_ids: a.provider_ids.clone(),
                    raw_status: a.raw_status.clone(),
                    error: a.error.as_ref().and_then(|e| serde_json::to_value(e).ok()),
                    parts: a.parts,
                    created_at: rfc3339(a.created_at),
                    updated_at: rfc3339(a.updated_at),
                })
                .collect()
        }),
        events: view.map(|v| {
            v.events
                .iter()
                .map(|e| EventView {
                    seq: e.seq,
                    kind: e.kind.clone(),
                    status: e.status.as_str().to_owned(),
                    attempt: e.attempt_no,
                    channel: e.channel.clone(),
                    detail: e.detail.clone(),
                    at: rfc3339(e.at),
                })
                .collect()
        }),
    }
}
