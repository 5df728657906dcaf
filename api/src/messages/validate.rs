//! A message request checked field by field: every error names its field.

use hermod_core::content::{Content, RichMessage, Suggestion};
use hermod_core::model::*;
use hermod_core::{MessageId, Msisdn, TenantId};

use super::dto::*;
use crate::ApiError;
use crate::json::*;

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
                format!(
                    "unsupported channel '{c}' (supported: {})",
                    ChannelKind::names()
                ),
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
                crate::json::INTERNAL_URL,
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
        twilio: None,
        smpp: None,
    })
}

/// `content` and `suggestions` as one rich message, checked against RBM's limits;
/// suggestions without content go with the text.
pub(crate) fn rich_content(
    req: &SendMessage,
    prefix: &str,
) -> Result<Option<RichMessage>, ApiError> {
    let content = match (&req.content, &req.text, &req.suggestions) {
        (Some(c), _, _) => parse_value::<Content>(c.clone(), &format!("{prefix}content."))?,
        (None, Some(t), Some(_)) => Content::Text(t.clone()),
        (None, _, _) => return Ok(None),
    };
    let mut suggestions = Vec::new();
    for (i, s) in req.suggestions.iter().flatten().enumerate() {
        suggestions.push(parse_value::<Suggestion>(
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
