use std::collections::HashMap;
use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};
use hermod_core::content::{Content, RichMessage, Suggestion};
use hermod_core::model::*;
use hermod_core::plan::FallbackSpec;
use hermod_core::quiet::QuietHours;
use hermod_core::sender::Owners;
use hermod_core::template::Template;
use hermod_core::{MessageId, Msisdn, Status, TenantId, now_ms};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Tenant;
use crate::{ApiError, AppState};

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
    #[schema(value_type = Object)]
    pub content: Option<serde_json::Value>,
    /// Suggested replies and actions (≤ 11): `{"reply": {text, postback_data?}}`,
    /// `{"open_url": {text, url}}`, `{"dial": {text, phone_number}}`,
    /// `{"view_location": {text, latitude, longitude, label?}}`,
    /// `{"calendar_event": {text, start_time, end_time, title, description?}}`,
    /// `{"share_location": {text}}`.
    #[schema(value_type = Vec<Object>)]
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
    #[schema(value_type = Object)]
    pub fallback: Option<serde_json::Value>,
    /// Seconds the message stays worth delivering (1 to 604800).
    pub ttl: Option<i64>,
    /// Your own JSON object, returned as given (≤ 4 KiB).
    #[schema(value_type = Object)]
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
    #[schema(value_type = Object)]
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
    #[schema(value_type = Object)]
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
    #[schema(value_type = Object)]
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
    #[schema(value_type = Object)]
    pub content: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Vec<Object>)]
    pub suggestions: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The channels asked for (empty: the tenant's default order).
    pub channels: Vec<String>,
    /// The fallback policy as given.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub fallback: Option<serde_json::Value>,
    /// The plan made for the recipient: each channel kept or skipped, with the reason,
    /// and the fallback policy in force.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub plan: Option<serde_json::Value>,
    pub ttl: Option<i64>,
    #[schema(value_type = Object)]
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

pub(crate) use hermod_core::rfc3339;

fn resource(m: &Message, view: Option<&MessageView>) -> MessageResource {
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

/// Parses JSON naming the offending field on error (unknown fields included).
fn parse<T: serde::de::DeserializeOwned>(
    value: serde_json::Value,
    prefix: &str,
) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let msg = e.inner().to_string();
        // serde names an unknown field only in its message: `unknown field `x``.
        let unknown = msg
            .strip_prefix("unknown field `")
            .and_then(|r| r.split('`').next());
        // The path already ends with an unknown field's name.
        let field = match (unknown, path.as_str()) {
            (Some(u), "." | "") => u.to_owned(),
            (_, p) => p.to_owned(),
        };
        let field = format!("{prefix}{field}")
            .trim_start_matches('.')
            .to_owned();
        let code = if unknown.is_some() {
            "unknown_field"
        } else {
            "invalid_field"
        };
        ApiError::Invalid {
            code,
            message: msg,
            field: Some(field),
        }
    })
}

/// A JSON value parsed into `T`, errors naming the field under `prefix`.
pub(crate) fn parse_value<T: serde::de::DeserializeOwned>(
    value: serde_json::Value,
    prefix: &str,
) -> Result<T, ApiError> {
    parse(value, prefix)
}

/// A JSON body parsed into `T`, errors naming the field.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    parse(json_body(body)?, "")
}

fn json_body(body: &[u8]) -> Result<serde_json::Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::Invalid {
        code: "invalid_json",
        message: format!("request body is not valid JSON: {e}"),
        field: None,
    })
}

/// Validates one message; `prefix` names its place in a batch (`messages[3].`).
/// A request's `channels`: not empty, each one known and configured on this server.
/// `f` names a field (a batch prefixes `messages[i].`).
pub(crate) fn parse_channels(
    list: &[String],
    enabled: &[ChannelKind],
    f: impl Fn(&str) -> String,
) -> Result<Vec<ChannelKind>, ApiError> {
    if list.is_empty() {
        return Err(ApiError::field(f("channels"), "channels must not be empty"));
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, c) in list.iter().enumerate() {
        let k = ChannelKind::parse(c).ok_or_else(|| {
            ApiError::field(
                f(&format!("channels[{i}]")),
                format!("unsupported channel '{c}' (supported: sms, rcs, app)"),
            )
        })?;
        if !enabled.contains(&k) {
            return Err(ApiError::field(
                f(&format!("channels[{i}]")),
                format!("channel '{c}' is not configured on this server"),
            ));
        }
        out.push(k);
    }
    Ok(out)
}

pub(crate) fn validate(
    req: SendMessage,
    tenant: &TenantId,
    prefix: &str,
    now: i64,
    enabled: &[ChannelKind],
    policy: &hermod_core::net::AddressPolicy,
) -> Result<NewMessage, ApiError> {
    let f = |name: &str| format!("{prefix}{name}");
    let to =
        Msisdn::parse(req.to.trim()).map_err(|e| ApiError::field(f("to"), format!("to {e}")))?;
    let rich = rich_content(&req, prefix)?;
    let text = match (&req.text, &rich) {
        (Some(t), _) => t.clone(),
        (None, Some(r)) => r.plain_text().chars().take(1600).collect(),
        (None, None) => {
            return Err(ApiError::field(f("text"), "text (or content) is required"));
        }
    };
    if text.is_empty() {
        return Err(ApiError::field(f("text"), "text must not be empty"));
    }
    if req
        .user_id
        .as_ref()
        .is_some_and(|u| u.is_empty() || u.len() > 200)
    {
        return Err(ApiError::field(
            f("user_id"),
            "user_id must be 1 to 200 characters",
        ));
    }
    if text.chars().count() > 1600 {
        return Err(ApiError::field(
            f("text"),
            "text must be at most 1600 characters",
        ));
    }
    if let Some(from) = &req.from {
        let ok = if let Some(d) = from.strip_prefix('+') {
            (3..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit())
        } else if from.bytes().all(|b| b.is_ascii_digit()) {
            (3..=15).contains(&from.len())
        } else {
            (1..=11).contains(&from.len())
                && from.bytes().all(|b| b.is_ascii_alphanumeric() || b == b' ')
        };
        if !ok {
            return Err(ApiError::field(
                f("from"),
                "from must be up to 11 letters/digits, or a number of 3 to 15 digits",
            ));
        }
    }
    let channels = match &req.channels {
        // The tenant's default order, resolved when the message is planned.
        None => Vec::new(),
        Some(list) => parse_channels(list, enabled, f)?,
    };
    if let Some(ttl) = req.ttl
        && !(1..=604_800).contains(&ttl)
    {
        {
            return Err(ApiError::field(
                f("ttl"),
                "ttl must be between 1 and 604800 seconds",
            ));
        }
    }
    if let Some(m) = &req.metadata {
        if !m.is_object() {
            return Err(ApiError::field(
                f("metadata"),
                "metadata must be a JSON object",
            ));
        }
        if m.to_string().len() > 4096 {
            return Err(ApiError::field(
                f("metadata"),
                "metadata must be at most 4 KiB",
            ));
        }
    }
    let send_at = match &req.send_at {
        None => None,
        Some(v) => {
            let t = time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
                .ok()
                .and_then(|t| i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok())
                .ok_or_else(|| ApiError::field(f("send_at"), "send_at must be an RFC 3339 time"))?;
            if t < now - 300_000 || t > now + 366 * 86_400_000 {
                return Err(ApiError::field(
                    f("send_at"),
                    "send_at must be between now and 366 days ahead",
                ));
            }
            // A time already here is simply "now".
            (t > now).then_some(t)
        }
    };
    if let Some(u) = &req.callback_url {
        let ok = hermod_core::content::is_http_url(u);
        if !ok {
            return Err(ApiError::field(
                f("callback_url"),
                "callback_url must be an http(s) URL",
            ));
        }
        if policy.refuses_url(u) {
            return Err(ApiError::field(
                f("callback_url"),
                crate::webhooks::INTERNAL_URL,
            ));
        }
    }
    if let Some(events) = &req.callback_events {
        if req.callback_url.is_none() {
            return Err(ApiError::field(
                f("callback_events"),
                "callback_events needs a callback_url",
            ));
        }
        if events.is_empty() {
            return Err(ApiError::field(
                f("callback_events"),
                "callback_events names at least one event (leave it out for all)",
            ));
        }
        for (i, e) in events.iter().enumerate() {
            if e == "message.inbound"
                || e == "message.typing"
                || !hermod_core::webhook::is_published(e)
            {
                return Err(ApiError::field(
                    f(&format!("callback_events[{i}]")),
                    format!("unknown event type {e:?}"),
                ));
            }
        }
    }
    let fallback = match &req.fallback {
        None => None,
        Some(v) => Some(parse_fallback(v.clone(), &f("fallback"))?),
    };
    let priority = match &req.priority {
        None => Priority::Normal,
        Some(p) => Priority::parse(p).ok_or_else(|| {
            ApiError::field(f("priority"), "priority must be \"normal\" or \"high\"")
        })?,
    };
    let traffic_type = match &req.traffic_type {
        None => None,
        Some(t) => Some(TrafficType::parse(t).ok_or_else(|| {
            ApiError::field(
                f("traffic_type"),
                "traffic_type must be one of authentication, transaction, promotion, service_request, acknowledgement",
            )
        })?),
    };
    Ok(NewMessage {
        traffic_type,
        priority,
        alert: None,
        deferred: None,
        fallback,
        id: MessageId::generate(),
        tenant_id: tenant.clone(),
        to,
        from: req.from,
        text,
        channels,
        ttl_secs: req.ttl,
        metadata: req.metadata,
        callback_url: req.callback_url,
        callback_events: req.callback_events,
        created_at: now,
        send_at,
        content: rich,
        user_id: req.user_id,
    })
}

/// What preparing a request's messages needs once per request: the tenant's quiet
/// hours and the templates used so far.
pub(crate) struct Prep {
    tenant: TenantId,
    quiet: Option<QuietHours>,
    templates: HashMap<String, Template>,
    senders: Arc<Owners>,
}

impl Prep {
    pub(crate) async fn load(state: &AppState, tenant: &TenantId) -> Result<Self, ApiError> {
        Ok(Self {
            tenant: tenant.clone(),
            quiet: state.quiet_hours(tenant).await?,
            templates: HashMap::new(),
            senders: state.senders.owners().await?,
        })
    }

    /// A template by id, fetched once per request; `field` names the reference.
    pub(crate) async fn template(
        &mut self,
        state: &AppState,
        id: &str,
        field: &str,
    ) -> Result<&Template, ApiError> {
        if !self.templates.contains_key(id) {
            let store = state
                .templates
                .as_ref()
                .ok_or_else(|| ApiError::field(field, "templates are not available here"))?;
            let t = store
                .template(&self.tenant, id)
                .await?
                .ok_or_else(|| ApiError::field(field, format!("no template '{id}'")))?;
            self.templates.insert(id.to_owned(), t);
        }
        self.templates
            .get(id)
            .ok_or_else(|| ApiError::field(field, format!("no template '{id}'")))
    }

    /// Validates a request into a message: its template rendered, quiet hours applied.
    pub(crate) async fn message(
        &mut self,
        state: &AppState,
        mut req: SendMessage,
        prefix: &str,
        now: i64,
    ) -> Result<NewMessage, ApiError> {
        let f = |name: &str| format!("{prefix}{name}");
        if let Some(z) = &req.timezone
            && !hermod_core::quiet::valid_zone(z)
        {
            return Err(ApiError::field(
                f("timezone"),
                format!("unknown time zone '{z}'"),
            ));
        }
        let to = Msisdn::parse(req.to.trim()).ok();
        let zone =
            crate::templates::zone(req.timezone.as_deref(), to.as_ref(), self.quiet.as_ref());
        if let Some(tr) = req.template.take() {
            if req.text.is_some() || req.content.is_some() || req.suggestions.is_some() {
                return Err(ApiError::field(
                    f("template"),
                    "template replaces text, content and suggestions: give one or the other",
                ));
            }
            let vars = tr.vars.unwrap_or_else(|| serde_json::json!({}));
            if vars.to_string().len() > hermod_core::template::MAX_OUTPUT {
                return Err(ApiError::field(
                    f("template.vars"),
                    format!(
                        "template.vars must be at most {} bytes of JSON",
                        hermod_core::template::MAX_OUTPUT
                    ),
                ));
            }
            let t = self.template(state, &tr.id, &f("template.id")).await?;
            if req.traffic_type.is_none() {
                req.traffic_type = t.traffic_type.map(|t| t.as_str().to_owned());
            }
            let r = t
                .render(tr.locale.as_deref(), &vars, zone.as_deref())
                .map_err(|e| crate::templates::template_error(&f("template."), e))?;
            req.text = Some(r.text);
            if let Some(rich) = r.content {
                req.content = serde_json::to_value(&rich.content).ok();
                if !rich.suggestions.is_empty() {
                    req.suggestions = serde_json::to_value(&rich.suggestions)
                        .ok()
                        .and_then(|v| serde_json::from_value(v).ok());
                }
            }
        }
        let mut msg = validate(
            req,
            &self.tenant,
            prefix,
            now,
            &state.channels,
            &state.address_policy,
        )?;
        msg.from = self.sender(state, msg.from.as_deref(), &f("from"))?;
        self.defer(&mut msg, zone.as_deref(), now);
        Ok(msg)
    }

    /// The sender a message goes out with: `from` if the tenant may use it (403
    /// naming `field` otherwise), else the tenant's default.
    pub(crate) fn sender(
        &self,
        state: &AppState,
        from: Option<&str>,
        field: &str,
    ) -> Result<Option<String>, ApiError> {
        sender_for(state, &self.senders, &self.tenant, from, field)
    }

    /// Holds a non-urgent message until the recipient's quiet hours end.
    pub(crate) fn defer(&self, msg: &mut NewMessage, zone: Option<&str>, now: i64) {
        let (Some(q), Some(zone)) = (&self.quiet, zone) else {
            return;
        };
        if msg.priority.is_high() {
            return;
        }
        if let Some(end) = q.defer(zone, msg.send_at.unwrap_or(now)) {
            msg.send_at = Some(end);
            msg.deferred = Some("quiet_hours".into());
        }
    }
}

/// `from` if `tenant` may use it (403 naming `field` otherwise), else the tenant's
/// default sender.
pub(crate) fn sender_for(
    state: &AppState,
    owners: &Owners,
    tenant: &TenantId,
    from: Option<&str>,
    field: &str,
) -> Result<Option<String>, ApiError> {
    owners
        .resolve(tenant, from, state.senders.allow_unowned)
        .map_err(|r| ApiError::ForbiddenField {
            field: field.to_owned(),
            message: r.message(from.unwrap_or_default()),
        })
}

/// `content` and `suggestions` as one rich message, checked against RBM's limits;
/// suggestions without content go with the text.
fn rich_content(req: &SendMessage, prefix: &str) -> Result<Option<RichMessage>, ApiError> {
    let content = match (&req.content, &req.text, &req.suggestions) {
        (Some(c), _, _) => parse::<Content>(c.clone(), &format!("{prefix}content."))?,
        (None, Some(t), Some(_)) => Content::Text(t.clone()),
        (None, _, _) => return Ok(None),
    };
    let mut suggestions = Vec::new();
    for (i, s) in req.suggestions.iter().flatten().enumerate() {
        suggestions.push(parse::<Suggestion>(
            s.clone(),
            &format!("{prefix}suggestions[{i}]."),
        )?);
    }
    let rich = RichMessage {
        content,
        suggestions,
    };
    rich.validate().map_err(|e| {
        ApiError::field(
            format!("{prefix}{}", e.field),
            format!("{} {}", e.field, e.message),
        )
    })?;
    Ok(Some(rich))
}

fn accepted_view(m: &NewMessage) -> Message {
    Message {
        id: m.id.clone(),
        tenant_id: m.tenant_id.clone(),
        to: m.to.as_str().to_owned(),
        from: m.from.clone(),
        text: m.text.clone(),
        channels: m.channels.iter().map(|c| c.as_str().to_owned()).collect(),
        ttl_secs: m.ttl_secs,
        metadata: m.metadata.clone(),
        callback_url: m.callback_url.clone(),
        callback_events: m.callback_events.clone(),
        status: if m.send_at.is_some() {
            Status::Scheduled
        } else {
            Status::Accepted
        },
        created_at: m.created_at,
        updated_at: m.created_at,
        send_at: m.send_at,
        reason: None,
        content: m.content.clone(),
        user_id: m.user_id.clone(),
        fallback: m.fallback.clone(),
        plan: None,
        priority: m.priority,
        traffic_type: m.traffic_type,
    }
}

/// A fallback spec; errors name the field (`fallback.after`).
pub(crate) fn parse_fallback(v: serde_json::Value, field: &str) -> Result<FallbackSpec, ApiError> {
    let spec: FallbackSpec = parse(v, &format!("{field}."))?;
    spec.validate()
        .map_err(|(name, msg)| ApiError::field(format!("{field}.{name}"), msg))?;
    Ok(spec)
}

/// Charges the tenant's rate limit `n` messages.
pub(crate) fn rate_limit(state: &AppState, tenant: &TenantId, n: usize) -> Result<(), ApiError> {
    state
        .limits
        .check(tenant, u32::try_from(n).unwrap_or(u32::MAX))
        .map_err(|wait| {
            metrics::counter!("hermod_api_rate_limited_total").increment(1);
            ApiError::RateLimited(wait)
        })
}

fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(h) = req.headers().get("idempotency-key") else {
        return Ok(None);
    };
    let k = h
        .to_str()
        .map_err(|_| ApiError::field("Idempotency-Key", "must be visible ASCII"))?;
    if k.is_empty() || k.len() > 255 {
        return Err(ApiError::field(
            "Idempotency-Key",
            "must be 1 to 255 characters",
        ));
    }
    Ok(Some(k.to_owned()))
}

fn replay(rec: &IdempotencyRecord, hash: &str) -> Result<HttpResponse, ApiError> {
    if rec.request_hash != hash {
        return Err(ApiError::IdempotencyMismatch(
            "this Idempotency-Key was used with a different request body".into(),
        ));
    }
    let status = actix_web::http::StatusCode::from_u16(rec.status_code)
        .unwrap_or(actix_web::http::StatusCode::ACCEPTED);
    Ok(HttpResponse::build(status)
        .insert_header(("Idempotent-Replayed", "true"))
        .content_type("application/json")
        .body(rec.body.clone()))
}

/// Stores messages with their response under the idempotency key, or replays.
pub(crate) async fn store_and_answer(
    state: &AppState,
    tenant: &TenantId,
    key: Option<String>,
    hash: String,
    msgs: Vec<NewMessage>,
    status: u16,
    body: String,
) -> Result<HttpResponse, ApiError> {
    let rec = key.map(|key| IdempotencyRecord {
        key,
        request_hash: hash.clone(),
        status_code: status,
        body: body.clone(),
    });
    let outcome = match state.store.accept(tenant, &msgs, rec.as_ref()).await {
        Err(hermod_core::ports::PortError::Conflict(_)) if rec.is_some() => {
            // A concurrent request with the same key won the race.
            let key = rec.as_ref().map(|r| r.key.as_str()).unwrap_or_default();
            match state.store.idempotency(tenant, key).await? {
                Some(prior) => AcceptOutcome::Replay(prior),
                None => return Err(ApiError::Conflict("retry the request".into())),
            }
        }
        other => other?,
    };
    match outcome {
        AcceptOutcome::Replay(prior) => replay(&prior, &hash),
        AcceptOutcome::Accepted => {
            metrics::counter!("hermod_messages_total", "stage" => "api", "status" => "accepted")
                .increment(msgs.len() as u64);
            let status = actix_web::http::StatusCode::from_u16(status)
                .unwrap_or(actix_web::http::StatusCode::ACCEPTED);
            Ok(HttpResponse::build(status)
                .content_type("application/json")
                .body(body))
        }
    }
}

pub(crate) async fn check_prior(
    state: &AppState,
    tenant: &TenantId,
    key: &Option<String>,
    hash: &str,
) -> Result<Option<HttpResponse>, ApiError> {
    if let Some(k) = key
        && let Some(prior) = state.store.idempotency(tenant, k).await?
    {
        {
            return replay(&prior, hash).map(Some);
        }
    }
    Ok(None)
}

pub(crate) fn to_json<T: Serialize>(v: &T) -> Result<String, ApiError> {
    serde_json::to_string(v)
        .map_err(|e| ApiError::Internal(hermod_core::ports::PortError::Backend(Box::new(e))))
}

#[utoipa::path(post, path = "/v1/messages", request_body = SendMessage,
    params(("Idempotency-Key" = Option<String>, Header, description = "replays return the first response")),
    responses((status = 202, body = MessageResource), (status = 400), (status = 401), (status = 422)))]
pub(crate) async fn create(
    req: HttpRequest,
    body: web::Bytes,
    tenant: Tenant,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let value = json_body(&body)?;
    let hash = hermod_crypto::sha256_hex(value.to_string().as_bytes());
    let key = idempotency_key(&req)?;
    if let Some(r) = check_prior(&state, &tenant.0, &key, &hash).await? {
        return Ok(r);
    }
    let parsed: SendMessage = parse(value, "")?;
    let mut prep = Prep::load(&state, &tenant.0).await?;
    let msg = prep.message(&state, parsed, "", now_ms()).await?;
    rate_limit(&state, &tenant.0, 1)?;
    let body = to_json(&resource(&accepted_view(&msg), None))?;
    store_and_answer(&state, &tenant.0, key, hash, vec![msg], 202, body).await
}

#[derive(Serialize)]
struct BatchItem {
    index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<MessageResource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<serde_json::Value>,
}

#[utoipa::path(post, path = "/v1/messages/batch", request_body = SendBatch,
    responses((status = 202, description = "per-item results; valid items stored in one transaction"), (status = 400)))]
pub(crate) async fn create_batch(
    req: HttpRequest,
    body: web::Bytes,
    tenant: Tenant,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let value = json_body(&body)?;
    let hash = hermod_crypto::sha256_hex(value.to_string().as_bytes());
    let key = idempotency_key(&req)?;
    if let Some(r) = check_prior(&state, &tenant.0, &key, &hash).await? {
        return Ok(r);
    }
    let batch: SendBatch = parse(value, "")?;
    if batch.messages.is_empty() || batch.messages.len() > 1000 {
        return Err(ApiError::field(
            "messages",
            "messages must hold 1 to 1000 items",
        ));
    }
    let now = now_ms();
    let mut msgs = Vec::new();
    let mut items = Vec::new();
    let mut prep = Prep::load(&state, &tenant.0).await?;
    for (i, v) in batch.messages.into_iter().enumerate() {
        let prefix = format!("messages[{i}].");
        let res = match parse::<SendMessage>(v, &prefix) {
            Ok(m) => prep.message(&state, m, &prefix, now).await,
            Err(e) => Err(e),
        };
        match res {
            Ok(m) => {
                items.push(BatchItem {
                    index: i,
                    message: Some(resource(&accepted_view(&m), None)),
                    error: None,
                });
                msgs.push(m);
            }
            Err(e) => {
                let detail = match &e {
                    ApiError::Invalid {
                        code,
                        message,
                        field,
                    } => serde_json::json!({"code": code, "message": message, "field": field}),
                    ApiError::ForbiddenField { field, message } => {
                        serde_json::json!({"code": "forbidden", "message": message, "field": field})
                    }
                    other => serde_json::json!({"code": "invalid", "message": other.to_string()}),
                };
                items.push(BatchItem {
                    index: i,
                    message: None,
                    error: Some(detail),
                });
            }
        }
    }
    let accepted = msgs.len();
    if accepted > 0 {
        rate_limit(&state, &tenant.0, accepted)?;
    }
    let status = if accepted == 0 { 400 } else { 202 };
    let body = to_json(&serde_json::json!({
        "accepted": accepted,
        "rejected": items.len() - accepted,
        "results": items,
    }))?;
    if accepted == 0 {
        return Ok(HttpResponse::BadRequest()
            .content_type("application/json")
            .body(body));
    }
    store_and_answer(&state, &tenant.0, key, hash, msgs, status, body).await
}

#[utoipa::path(get, path = "/v1/messages/{id}",
    responses((status = 200, body = MessageResource), (status = 404)))]
pub(crate) async fn get(
    path: web::Path<String>,
    tenant: Tenant,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = MessageId::parse(&path).ok_or_else(|| ApiError::NotFound("no such message".into()))?;
    // Another tenant's message is indistinguishable from a missing one.
    let view = state
        .store
        .get_message(&tenant.0, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such message".into()))?;
    Ok(HttpResponse::Ok().json(resource(&view.message, Some(&view))))
}

#[utoipa::path(delete, path = "/v1/messages/{id}",
    responses((status = 200, body = MessageResource, description = "canceled"), (status = 404), (status = 409, description = "already handed to a channel")))]
pub(crate) async fn cancel(
    path: web::Path<String>,
    tenant: Tenant,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = MessageId::parse(&path).ok_or_else(|| ApiError::NotFound("no such message".into()))?;
    match state.store.cancel_message(&tenant.0, &id).await? {
        CancelOutcome::NotFound => Err(ApiError::NotFound("no such message".into())),
        CancelOutcome::TooLate(st) => Err(ApiError::Conflict(format!(
            "the message is {} and can no longer be canceled",
            st.as_str()
        ))),
        CancelOutcome::Canceled => {
            let view = state
                .store
                .get_message(&tenant.0, &id)
                .await?
                .ok_or_else(|| ApiError::NotFound("no such message".into()))?;
            Ok(HttpResponse::Ok().json(resource(&view.message, Some(&view))))
        }
    }
}

#[utoipa::path(get, path = "/v1/messages",
    params(("status" = Option<String>, Query), ("to" = Option<String>, Query), ("since" = Option<String>, Query, description = "RFC 3339 time or epoch ms"),
           ("limit" = Option<i64>, Query, description = "1 to 1000, default 50"), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = MessageList), (status = 400)))]
pub(crate) async fn list(
    query: web::Query<HashMap<String, String>>,
    tenant: Tenant,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let mut f = ListFilter {
        limit: 50,
        ..Default::default()
    };
    for (k, v) in query.iter() {
        match k.as_str() {
            "status" => {
                f.status =
                    Some(Status::parse(v).ok_or_else(|| {
                        ApiError::field("status", format!("unknown status '{v}'"))
                    })?)
            }
            "to" => {
                f.to = Some(
                    Msisdn::parse(v)
                        .map_err(|e| ApiError::field("to", format!("to {e}")))?
                        .as_str()
                        .to_owned(),
                )
            }
            "since" => {
                f.since = Some(parse_since(v).ok_or_else(|| {
                    ApiError::field("since", "since must be RFC 3339 or epoch milliseconds")
                })?)
            }
            "limit" => f.limit = ApiError::parse_limit(v)?,
            "cursor" => {
                f.cursor = Some(
                    MessageId::parse(v)
                        .ok_or_else(|| ApiError::field("cursor", "invalid cursor"))?,
                )
            }
            other => return Err(ApiError::unknown_param(other)),
        }
    }
    let rows = state.store.list_messages(&tenant.0, &f).await?;
    let next_cursor = if i64::try_from(rows.len()).unwrap_or(0) == f.limit {
        rows.last().map(|m| m.id.to_string())
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(MessageList {
        data: rows.iter().map(|m| resource(m, None)).collect(),
        next_cursor,
    }))
}

fn parse_since(v: &str) -> Option<i64> {
    if let Ok(ms) = v.parse::<i64>() {
        return Some(ms);
    }
    let t = time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}
