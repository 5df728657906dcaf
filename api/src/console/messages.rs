//! A tenant's messages: the overview, the search, a message's page, sending and
//! canceling from the console.

use std::collections::HashMap;

use actix_web::{HttpResponse, web};
use hermod_core::model::ListFilter;
use hermod_core::tenant::Role;
use hermod_core::{MessageId, Msisdn, Status, now_ms};
use maud::{Markup, html};
use serde::Deserialize;

use super::ConsoleError;
use super::layout::{Flash, badge, channels_chart, csrf, hours_chart, page, when};
use super::session::{CsrfForm, Signed};
use super::{back_with, encode, flash, see_other};
use crate::ApiError;

type Query = web::Query<HashMap<String, String>>;

fn pct(part: i64, whole: i64) -> String {
    if whole <= 0 {
        return "–".into();
    }
    #[allow(clippy::cast_precision_loss)]
    let p = part as f64 * 100.0 / whole as f64;
    format!("{p:.1} %")
}

fn ms(v: Option<i64>) -> String {
    match v {
        None => "–".into(),
        Some(ms) if ms < 10_000 => format!("{ms} ms"),
        Some(ms) => format!("{:.1} s", ms as f64 / 1000.0),
    }
}

/// `GET /console/overview`: the last 24 hours.
pub(crate) async fn overview(signed: Signed, q: Query) -> Result<HttpResponse, ConsoleError> {
    let o = signed
        .state
        .insights
        .overview(signed.tenant.as_ref().map(|t| &t.0), now_ms())
        .await?;
    let body = html! {
        div.grid {
            div.card { div.muted { "Messages, last 24 h" } div.stat #total { (o.messages) } }
            div.card { div.muted { "Fallback rate (RCS/app → SMS)" } div.stat #fallback { (pct(o.fell_back, o.rich_first)) }
                       div.hint { (o.fell_back) " of " (o.rich_first) " rich-first messages" } }
            div.card { div.muted { "Time to delivered" } div.stat { (ms(o.delivered_p50_ms)) }
                       div.hint { "median · p95 " (ms(o.delivered_p95_ms)) } }
        }
        @if o.sampled < o.messages {
            p.hint #sampled { "Channels, funnel, fallback, failures and times are computed over the newest "
                (o.sampled) " of the " (o.messages) " messages." }
        }
        h2 { "Messages per hour, by status" }
        (hours_chart(&o.hours))
        h2 { "Messages per hour, by channel of the last attempt" }
        (channels_chart(&o.hours))
        h2 { "By channel (of the last attempt)" }
        table #by-channel {
            tr { th { "Channel" } th { "Messages" } }
            @for (ch, n) in &o.by_channel { tr { td { (ch) } td { (n) } } }
        }
        h2 { "Delivery funnel per channel" }
        table #funnel {
            tr { th { "Channel" } th { "Attempted" } th { "Sent" } th { "Delivered" } th { "Read" } th { "Failed" } }
            @for f in &o.funnel {
                tr { td { (f.channel) } td { (f.attempted) } td { (f.sent) } td { (f.delivered) " (" (pct(f.delivered, f.attempted)) ")" }
                     td { (f.read) } td { (f.failed) } }
            }
        }
        h2 { "Top failure reasons" }
        @if o.failures.is_empty() { p.muted { "None." } } @else {
            table #failures {
                tr { th { "Reason" } th { "Messages" } }
                @for (r, n) in &o.failures { tr { td { code { (r) } } td { (n) } } }
            }
        }
    };
    Ok(page(&signed, "overview", "Overview", flash(&q), body))
}

/// The search form's fields, as given.
fn filter_of(state: &crate::AppState, q: &HashMap<String, String>) -> Result<ListFilter, ApiError> {
    let mut f = ListFilter {
        limit: 50,
        ..Default::default()
    };
    let get = |k: &str| q.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    if let Some(v) = get("to") {
        f.to = Some(
            Msisdn::parse(v)
                .map_err(|e| ApiError::field("to", format!("to {e}")))?
                .as_str()
                .to_owned(),
        );
    }
    if let Some(v) = get("status") {
        f.status =
            Some(Status::parse(v).ok_or_else(|| ApiError::field("status", "unknown status"))?);
    }
    if let Some(v) = get("channel") {
        if !state.channels.iter().any(|c| c.as_str() == v) {
            return Err(ApiError::field("channel", "unknown channel"));
        }
        f.channel = Some(v.to_owned());
    }
    // `datetime-local` inputs are taken as UTC.
    let time = |name: &str, v: &str| {
        let v = if v.len() == 16 {
            format!("{v}:00Z")
        } else {
            format!("{v}Z")
        };
        hermod_core::parse_rfc3339(&v).ok_or_else(|| {
            ApiError::field(name.to_owned(), format!("{name} must be a date and time"))
        })
    };
    if let Some(v) = get("since") {
        f.since = Some(time("since", v)?);
    }
    if let Some(v) = get("until") {
        f.until = Some(time("until", v)?);
    }
    if let Some(v) = get("metadata") {
        f.metadata_key = Some(v.to_owned());
    }
    if let Some(v) = get("cursor") {
        f.cursor =
            Some(MessageId::parse(v).ok_or_else(|| ApiError::field("cursor", "bad cursor"))?);
    }
    Ok(f)
}

/// `GET /console/messages`: search, and the send form.
pub(crate) async fn messages(signed: Signed, q: Query) -> Result<HttpResponse, ConsoleError> {
    let tenant = signed.tenant()?;
    let state = &signed.state;
    let (rows, error) = match filter_of(state, &q) {
        Ok(f) => (state.messages.list_messages(&tenant.0, &f).await?, None),
        Err(e) => (Vec::new(), Some(Flash::Error(e.to_string()))),
    };
    let v = |k: &str| q.get(k).cloned().unwrap_or_default();
    let next = (rows.len() == 50)
        .then(|| rows.last().map(|m| m.id.to_string()))
        .flatten();
    let can_send = tenant.1.role.allows(Role::Send);
    let body = html! {
        @if can_send {
            details.card open[q.is_empty()] {
                summary { "Send a message" }
                form.row #send method="post" action="/console/messages" {
                    (csrf(&signed))
                    div { label for="send-to" { "To" } input #send-to name="to" placeholder="+14155550100" required; }
                    div { label for="send-text" { "Text" } input #send-text name="text" size="40" required; }
                    div { label for="send-channels" { "Channels" }
                        select #send-channels name="channels" {
                            option value="" { "tenant default" }
                            @for c in &state.channels { option value=(c.as_str()) { (c.as_str()) } }
                        } }
                    button #send-button type="submit" { "Send" }
                }
            }
        } @else {
            p.hint #cannot-send { "This key's role (" (tenant.1.role.as_str()) ") cannot send messages." }
        }
        form.search #search method="get" action="/console/messages" {
            div { label { "Recipient (exact)" } input name="to" value=(v("to")) placeholder="+14155550100"; }
            div { label { "Status" } select name="status" {
                option value="" { "any" }
                @for s in Status::ALL { option value=(s.as_str()) selected[v("status") == s.as_str()] { (s.as_str()) } }
            } }
            div { label { "Channel" } select name="channel" {
                option value="" { "any" }
                @for c in &state.channels { option value=(c.as_str()) selected[v("channel") == c.as_str()] { (c.as_str()) } }
            } }
            div { label { "From (UTC)" } input type="datetime-local" name="since" value=(v("since")); }
            div { label { "Until (UTC)" } input type="datetime-local" name="until" value=(v("until")); }
            div { label { "Metadata key" } input name="metadata" value=(v("metadata")) placeholder="order_id"; }
            button type="submit" { "Search" }
        }
        table #messages {
            tr { th { "Message" } th { "To" } th { "Status" } th { "Channels" } th { "Created (UTC)" } th { "Metadata" } }
            @for m in &rows {
                tr {
                    td { a href={ "/console/messages/" (m.id) } { code { (m.id) } } }
                    td { (m.to) }
                    td { (badge(m.status.as_str())) }
                    td { (m.plan.as_ref().map(|p| p.steps.iter().map(|s| s.channel.as_str()).collect::<Vec<_>>().join(" → ")).unwrap_or_else(|| m.channels.join(", "))) }
                    td { (when(m.created_at)) }
                    td { @if let Some(md) = &m.metadata { code { (md.to_string()) } } }
                }
            }
        }
        @if rows.is_empty() { p.muted { "No messages match." } }
        @if let Some(c) = next {
            p { a #next href={ "/console/messages?" (keep_query(&q, "cursor", &c)) } { "Older →" } }
        }
    };
    Ok(page(
        &signed,
        "messages",
        "Messages",
        error.or_else(|| flash(&q)),
        body,
    ))
}

/// The query with `key` set to `value` (the flash dropped).
fn keep_query(q: &HashMap<String, String>, key: &str, value: &str) -> String {
    let mut parts: Vec<String> = q
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "ok" | "error") && k.as_str() != key)
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    parts.push(format!("{}={}", encode(key), encode(value)));
    parts.join("&")
}

#[derive(Deserialize)]
pub(crate) struct SendForm {
    csrf: String,
    to: String,
    text: String,
    #[serde(default)]
    channels: String,
}

/// `POST /console/messages`: sends one message as the API would.
pub(crate) async fn send(
    signed: Signed,
    form: web::Form<SendForm>,
) -> Result<HttpResponse, ConsoleError> {
    signed.check_csrf(&form.csrf)?;
    let tenant = match signed.tenant_as(Role::Send) {
        Ok(t) => t,
        Err(e) => return Ok(back_with("/console/messages", &e)),
    };
    let mut body = serde_json::json!({"to": form.to.trim(), "text": form.text});
    if !form.channels.is_empty() {
        body["channels"] = serde_json::json!([form.channels]);
    }
    match crate::messages::send_one(&signed.state, tenant, body).await {
        Ok(id) => Ok(see_other(&format!("/console/messages/{id}?ok=Accepted"))),
        Err(
            e @ (ApiError::Invalid { .. }
            | ApiError::ForbiddenField { .. }
            | ApiError::Forbidden(_)
            | ApiError::RateLimited(_)
            | ApiError::QuotaExceeded { .. }),
        ) => Ok(back_with("/console/messages", &e)),
        Err(e) => Err(e.into()),
    }
}

/// `GET /console/messages/{id}`: plan, attempts, timeline, receipts, webhook deliveries.
pub(crate) async fn message(
    signed: Signed,
    id: web::Path<String>,
    q: Query,
) -> Result<HttpResponse, ConsoleError> {
    let tenant = signed.tenant()?;
    let state = &signed.state;
    let not_found = || ApiError::NotFound("no such message".into());
    let id = MessageId::parse(&id).ok_or_else(not_found)?;
    let view = state
        .messages
        .get_message(&tenant.0, &id)
        .await?
        .ok_or_else(not_found)?;
    let deliveries = match &state.webhooks {
        Some(w) => w
            .list_deliveries(&tenant.0, None, None, 500)
            .await?
            .into_iter()
            .filter(|d| d.message_id.as_deref() == Some(id.as_str()))
            .collect(),
        None => Vec::new(),
    };
    let m = &view.message;
    let cancellable = matches!(
        m.status,
        Status::Accepted | Status::Scheduled | Status::Queued
    ) && tenant.1.role.allows(Role::Send);
    let body = html! {
        div.grid {
            div.card { div.muted { "Status" } div.stat #status { (m.status.as_str()) }
                       @if let Some(r) = &m.reason { div.hint { "reason: " code { (r) } } } }
            div.card { div.muted { "To" } div { (m.to) } div.muted { "From" } div { (m.from.as_deref().unwrap_or("default sender")) } }
            div.card { div.muted { "Created (UTC)" } div { (when(m.created_at)) } div.muted { "Updated" } div { (when(m.updated_at)) } }
        }
        @if cancellable {
            form.inline method="post" action={ "/console/messages/" (m.id) "/cancel" } {
                (csrf(&signed)) button.danger #cancel type="submit" { "Cancel" }
            }
        }
        h2 { "Text" }
        pre #text { (m.text) }
        h2 { "Plan" }
        @match &m.plan {
            Some(plan) => table #plan {
                tr { th { "Channel" } th { "Kept" } th { "Why" } }
                @for s in &plan.steps { tr { td { (s.channel.as_str()) } td { (s.kept) } td { (s.reason) } } }
            },
            None => p.muted { "Not planned yet (requested: " (m.channels.join(", ")) ")." },
        }
        h2 { "Attempts" }
        table #attempts {
            tr { th { "#" } th { "Channel" } th { "Status" } th { "Raw status" } th { "Error" } th { "Parts" } th { "Provider ids" } th { "Updated" } }
            @for a in &view.attempts {
                tr { td { (a.attempt_no) } td { (a.channel) } td { (badge(a.status.as_str())) }
                     td { code { (a.raw_status.as_deref().unwrap_or("")) } }
                     td { @if let Some(e) = &a.error { code { (e.code) } } }
                     td { (a.parts) } td { code { (a.provider_ids.join(" ")) } } td { (when(a.updated_at)) } }
            }
        }
        h2 { "Timeline and receipts" }
        table #timeline {
            tr { th { "At (UTC)" } th { "Event" } th { "Status" } th { "Channel" } th { "Detail (raw receipt)" } }
            @for e in &view.events {
                tr { td { (when(e.at)) } td { (e.kind) } td { (badge(e.status.as_str())) }
                     td { (e.channel.as_deref().unwrap_or("")) }
                     td { @if let Some(d) = &e.detail { pre { (d.to_string()) } } } }
            }
        }
        h2 { "Webhook deliveries" }
        (deliveries_table(&signed, &deliveries, &format!("/console/messages/{}", m.id)))
    };
    Ok(page(
        &signed,
        "messages",
        &format!("Message {}", m.id),
        flash(&q),
        body,
    ))
}

pub(crate) fn deliveries_table(
    signed: &Signed,
    rows: &[hermod_core::webhook::WebhookDelivery],
    back: &str,
) -> Markup {
    let can_retry = signed.role().is_some_and(|r| r.allows(Role::Admin));
    html! {
        @if rows.is_empty() { p.muted { "None." } } @else {
            table.deliveries {
                tr { th { "#" } th { "Event" } th { "URL" } th { "Outcome" } th { "Tries" } th { "Last" } th { "Updated" } th {} }
                @for d in rows {
                    tr {
                        td { (d.id) } td { (d.event_type) } td { code { (d.url) } }
                        td.outcome { (badge(match d.status {
                            hermod_core::webhook::DeliveryStatus::Pending => "pending",
                            hermod_core::webhook::DeliveryStatus::Delivered => "delivered",
                            hermod_core::webhook::DeliveryStatus::Failed => "failed",
                        })) }
                        td { (d.attempts) }
                        td { (d.last_status.map(|s| s.to_string()).unwrap_or_default()) " " (d.last_error.as_deref().unwrap_or("")) }
                        td { (when(d.updated_at)) }
                        td { @if can_retry && d.status != hermod_core::webhook::DeliveryStatus::Delivered {
                            form.inline method="post" action={ "/console/webhooks/deliveries/" (d.id) "/retry" } {
                                (csrf(signed)) input type="hidden" name="back" value=(back);
                                button.retry type="submit" { "Retry" }
                            }
                        } }
                    }
                }
            }
        }
    }
}

/// `POST /console/messages/{id}/cancel`.
pub(crate) async fn cancel(
    signed: Signed,
    id: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, ConsoleError> {
    signed.check_csrf(&form.csrf)?;
    let back = format!("/console/messages/{}", encode(&id));
    let tenant = match signed.tenant_as(Role::Send) {
        Ok(t) => t,
        Err(e) => return Ok(back_with(&back, &e)),
    };
    let id = MessageId::parse(&id).ok_or_else(|| ApiError::NotFound("no such message".into()))?;
    match signed.state.messages.cancel_message(&tenant.0, &id).await? {
        hermod_core::model::CancelOutcome::Canceled => {
            Ok(see_other(&format!("{back}?ok=Canceled")))
        }
        hermod_core::model::CancelOutcome::NotFound => {
            Err(ApiError::NotFound("no such message".into()).into())
        }
        hermod_core::model::CancelOutcome::TooLate(s) => Ok(see_other(&format!(
            "{back}?error={}",
            encode(&format!(
                "Too late to cancel: the message is {}",
                s.as_str()
            ))
        ))),
    }
}
