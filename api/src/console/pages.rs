//! The pages a tenant (and, where they are shared, the operator) sees.

use std::collections::HashMap;

use actix_web::{HttpRequest, HttpResponse, web};
use hermod_core::model::ListFilter;
use hermod_core::tenant::{Principal, Role};
use hermod_core::{MessageId, Msisdn, Status, now_ms};
use maud::{Markup, html};
use serde::Deserialize;

use super::ConsoleError;
use super::layout::{Flash, badge, channels_chart, csrf, hours_chart, page, page_with, when};
use super::session::{CsrfForm, Signed};
use super::{encode, see_other};
use crate::ApiError;

type Query = web::Query<HashMap<String, String>>;

/// The flash a redirect asked for (`?ok=` / `?error=`).
fn flash(q: &HashMap<String, String>) -> Option<Flash> {
    if let Some(e) = q.get("error") {
        return Some(Flash::Error(e.clone()));
    }
    q.get("ok").map(|m| Flash::Info(m.clone()))
}

/// Back to `to` with an error to show (a refused form).
fn back_with(to: &str, e: &ApiError) -> HttpResponse {
    let sep = if to.contains('?') { '&' } else { '?' };
    see_other(&format!("{to}{sep}error={}", encode(&e.to_string())))
}

/// `GET /console`.
pub(crate) async fn home(signed: Signed) -> HttpResponse {
    match signed.session.principal {
        Principal::Operator => see_other("/console/overview"),
        Principal::Tenant { .. } => see_other("/console/messages"),
    }
}

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

fn deliveries_table(
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

/// `GET /console/channels`: the operator sees every connector and bind (live); a tenant
/// its channels, senders, RCS agents and app devices.
pub(crate) async fn channels(signed: Signed, q: Query) -> Result<HttpResponse, ConsoleError> {
    let state = &signed.state;
    if signed.tenant.is_none() {
        let connectors = match &state.ops {
            Some(ops) => ops.connectors().await?,
            None => serde_json::json!([]),
        };
        let list = connectors.as_array().cloned().unwrap_or_default();
        let body = html! {
            p.hint { "Live: this page reloads every 5 seconds." }
            table #connectors {
                tr { th { "Connector" } th { "Channel" } th { "Health" } th { "Binds: state, mode, sent/s, in flight, last error" } }
                @for c in &list {
                    @let str_of = |k: &str| c.get(k).and_then(|v| v.as_str()).unwrap_or("").to_owned();
                    tr {
                        td { (str_of("name")) @if c.get("host").is_some() { div.hint { (str_of("host")) ":" (c.get("port").map(|p| p.to_string()).unwrap_or_default()) } } }
                        td { @if c.get("kind").is_some() { (str_of("kind")) } @else { "sms" } }
                        td { @match c.get("healthy").and_then(|h| h.as_bool()) {
                            Some(true) => span.badge.s-delivered { "healthy" },
                            Some(false) => span.badge.s-failed { "failing" },
                            None => span.muted { "–" },
                        } @if let Some(t) = c.get("tps_limit").filter(|t| !t.is_null()) { div.hint { "limit " (t) "/s" } } }
                        td {
                            @if let Some(binds) = c.get("binds").and_then(|b| b.as_array()) {
                                table.binds {
                                    @for b in binds {
                                        @let field = |k: &str| b.get(k).map(|v| match v { serde_json::Value::String(s) => s.clone(), serde_json::Value::Null => String::new(), v => v.to_string() }).unwrap_or_default();
                                        tr { td { code { (field("id")) } } td { (badge(&field("state"))) } td { (field("mode")) }
                                             td { (field("sent_per_sec")) "/s" } td { (field("in_flight")) } td { code { (field("last_error")) } } }
                                    }
                                }
                            } @else {
                                pre { (serde_json::to_string_pretty(c).unwrap_or_default()) }
                            }
                        }
                    }
                }
            }
            @if list.is_empty() { p.muted { "This process runs no channels." } }
        };
        return Ok(page_with(
            &signed,
            "channels",
            "Channels and connectors",
            flash(&q),
            body,
            Some(5),
        ));
    }
    let tenant = signed.tenant()?;
    let senders = crate::senders::all(state, Some(&tenant.0)).await?;
    let devices = match &state.devices {
        Some(d) => d
            .list_devices(&tenant.0, None, None)
            .await?
            .iter()
            .filter(|d| d.revoked_at.is_none())
            .count(),
        None => 0,
    };
    let defaults = state.tenants.tenant_defaults(&tenant.0).await?;
    let body = html! {
        div.grid {
            div.card { div.muted { "Channels offered" } div #offered { @for c in &state.channels { (badge(c.as_str())) " " } } }
            div.card { div.muted { "Default order" } div { (defaults.channels.as_ref().map(|c| c.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(" → ")).unwrap_or_else(|| "the server's".into())) } }
            div.card { div.muted { "App devices" } div.stat #devices { (devices) } }
        }
        h2 { "Senders and RCS agents" }
        table #senders {
            tr { th { "Sender" } th { "Default" } th { "Source" } }
            @for s in &senders { tr { td { (s.sender) } td { (s.default) } td { (s.source) } } }
        }
        @if senders.is_empty() { p.muted { "None: the operator assigns senders." } }
    };
    Ok(page(&signed, "channels", "Channels", flash(&q), body))
}

/// `GET /console/webhooks`: endpoints and recent deliveries.
pub(crate) async fn webhooks(signed: Signed, q: Query) -> Result<HttpResponse, ConsoleError> {
    let tenant = signed.tenant()?;
    let Some(w) = &signed.state.webhooks else {
        return Err(ApiError::NotFound("webhooks are off here".into()).into());
    };
    let endpoints = w.list_endpoints(&tenant.0).await?;
    let deliveries = w.list_deliveries(&tenant.0, None, None, 100).await?;
    let body = html! {
        h2 { "Endpoints" }
        table #endpoints {
            tr { th { "Id" } th { "URL" } th { "Events" } th { "Created" } }
            @for e in &endpoints { tr { td { code { (e.id) } } td { code { (e.url) } } td { (e.events.join(", ")) } td { (when(e.created_at)) } } }
        }
        @if endpoints.is_empty() { p.muted { "None (messages' own callback_url still get deliveries)." } }
        h2 { "Recent deliveries" }
        div #deliveries { (deliveries_table(&signed, &deliveries, "/console/webhooks")) }
    };
    Ok(page(&signed, "webhooks", "Webhooks", flash(&q), body))
}

#[derive(Deserialize)]
pub(crate) struct RetryForm {
    csrf: String,
    #[serde(default)]
    back: String,
}

/// `POST /console/webhooks/deliveries/{id}/retry`.
pub(crate) async fn retry_delivery(
    signed: Signed,
    id: web::Path<String>,
    form: web::Form<RetryForm>,
) -> Result<HttpResponse, ConsoleError> {
    signed.check_csrf(&form.csrf)?;
    // Back to a console page only.
    let back = if form.back.starts_with("/console/") && !form.back.contains("//") {
        form.back.clone()
    } else {
        "/console/webhooks".to_owned()
    };
    let tenant = match signed.tenant_as(Role::Admin) {
        Ok(t) => t,
        Err(e) => return Ok(back_with(&back, &e)),
    };
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::NotFound("no such delivery".into()))?;
    let w = signed
        .state
        .webhooks
        .as_ref()
        .ok_or_else(|| ApiError::NotFound("webhooks are off here".into()))?;
    if !w.retry_delivery(&tenant.0, id).await? {
        return Err(ApiError::NotFound("no such delivery".into()).into());
    }
    Ok(see_other(&format!(
        "{back}?ok={}",
        encode(&format!("Delivery {id} queued again"))
    )))
}

/// `GET /console/templates`: each template with a live preview.
pub(crate) async fn templates(signed: Signed, q: Query) -> Result<HttpResponse, ConsoleError> {
    let tenant = signed.tenant()?;
    let Some(store) = &signed.state.templates else {
        return Err(ApiError::NotFound("templates are off here".into()).into());
    };
    let list = store.list_templates(&tenant.0).await?;
    let body = html! {
        @if list.is_empty() { p.muted { "No templates yet (POST /v1/templates)." } }
        @for t in &list {
            section.card.template {
                h2 { code { (t.id) } }
                p.hint { "Locales: " (t.variants.keys().cloned().collect::<Vec<_>>().join(", ")) " · variables: " (t.variables.join(", ")) }
                form.preview method="post" action={ "/console/templates/" (encode(&t.id)) "/preview" } {
                    label { "Variables (JSON)" }
                    textarea name="vars" { (sample_vars(&t.variables)) }
                    label { "Locale" } input name="locale" value=(t.default_locale);
                    button type="submit" { "Preview" }
                    pre.preview-out aria-live="polite" {}
                }
            }
        }
    };
    Ok(page(&signed, "templates", "Templates", flash(&q), body))
}

/// `{"order": {"id": "…"}}` for variables `order.id`: a starting point to edit.
fn sample_vars(vars: &[String]) -> String {
    let mut root = serde_json::Map::new();
    for v in vars {
        let mut node = &mut root;
        let parts: Vec<&str> = v.split('.').collect();
        for (i, p) in parts.iter().enumerate() {
            if i + 1 == parts.len() {
                node.entry((*p).to_owned())
                    .or_insert_with(|| serde_json::json!("…"));
            } else {
                let next = node
                    .entry((*p).to_owned())
                    .or_insert_with(|| serde_json::json!({}));
                if !next.is_object() {
                    *next = serde_json::json!({});
                }
                let Some(obj) = next.as_object_mut() else {
                    break;
                };
                node = obj;
            }
        }
    }
    serde_json::to_string_pretty(&root).unwrap_or_default()
}

/// `POST /console/templates/{id}/preview` (the page's script; `X-CSRF-Token`): the
/// API's preview.
pub(crate) async fn preview(
    signed: Signed,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ConsoleError> {
    let token = req
        .headers()
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    signed.check_csrf(token)?;
    let tenant = signed.tenant()?;
    let b: crate::templates::PreviewBody = crate::json::parse_json(&body)?;
    Ok(HttpResponse::Ok()
        .json(crate::templates::render_preview(&signed.state, tenant, &id, b).await?))
}

/// `GET /console/hooks`.
pub(crate) async fn hooks(signed: Signed, q: Query) -> Result<HttpResponse, ConsoleError> {
    let tenant = signed.tenant()?;
    let Some(store) = &signed.state.hooks else {
        return Err(ApiError::NotFound("alert hooks are off here".into()).into());
    };
    let list = store.list_hooks(&tenant.0).await?;
    let body = html! {
        @if list.is_empty() { p.muted { "No alert hooks (POST /v1/hooks)." } }
        table #hooks {
            tr { th { "Id" } th { "Configuration" } th { "Created" } }
            @for h in &list { tr { td { code { (h.id) } } td { pre { (serde_json::to_string_pretty(&h.config).unwrap_or_default()) } } td { (when(h.created_at)) } } }
        }
    };
    Ok(page(&signed, "hooks", "Alert hooks", flash(&q), body))
}

/// `GET /console/opt-outs`.
pub(crate) async fn opt_outs(signed: Signed, q: Query) -> Result<HttpResponse, ConsoleError> {
    let tenant = signed.tenant()?;
    let list = signed.state.inbound.list_opt_outs(&tenant.0, None).await?;
    let body = html! {
        @if list.is_empty() { p.muted { "Nobody has opted out." } }
        table #opt-outs {
            tr { th { "Recipient" } th { "Sender" } th { "Source" } th { "Since" } }
            @for o in &list { tr { td { (o.recipient) } td { (o.sender) } td { (o.source) } td { (when(o.created_at)) } } }
        }
    };
    Ok(page(&signed, "opt-outs", "Opt-outs", flash(&q), body))
}

/// `GET /console/keys`: the tenant's keys; an admin key creates and revokes them.
pub(crate) async fn keys(signed: Signed, q: Query) -> Result<HttpResponse, ConsoleError> {
    let tenant = signed.tenant()?;
    let admin = tenant.1.role.allows(Role::Admin);
    let list = if admin {
        signed.state.admin.list_keys(&tenant.0).await?
    } else {
        Vec::new()
    };
    let body = html! {
        @if !admin { p.hint #keys-forbidden { "Only an admin key manages keys." } } @else {
            form.row #new-key method="post" action="/console/keys" {
                (csrf(&signed))
                div { label for="key-name" { "Name" } input #key-name name="name" required; }
                div { label for="key-role" { "Role" } select #key-role name="role" {
                    option value="send" { "send" } option value="read" { "read" } option value="admin" { "admin" } } }
                div { label for="key-expires" { "Expires (UTC, optional)" } input #key-expires type="datetime-local" name="expires_at"; }
                button #create-key type="submit" { "Create key" }
            }
            table #keys {
                tr { th { "Id" } th { "Name" } th { "Role" } th { "Created" } th { "Expires" } th { "Last used" } th {} }
                @for k in &list {
                    tr {
                        td { code { (k.id) } } td { (k.name.as_deref().unwrap_or("")) } td { (k.role.as_str()) }
                        td { (when(k.created_at)) } td { (k.expires_at.map(when).unwrap_or_default()) }
                        td { (k.last_used_at.map(when).unwrap_or_else(|| "never".into())) }
                        td { @if k.id != tenant.1.key_id {
                            form.inline method="post" action={ "/console/keys/" (k.id) "/revoke" } {
                                (csrf(&signed)) button.danger type="submit" { "Revoke" } }
                        } @else { span.muted { "this session's" } } }
                    }
                }
            }
        }
    };
    Ok(page(&signed, "keys", "API keys", flash(&q), body))
}

#[derive(Deserialize)]
pub(crate) struct KeyForm {
    csrf: String,
    name: String,
    role: String,
    #[serde(default)]
    expires_at: String,
}

/// `POST /console/keys`: creates a key and shows its secret once.
pub(crate) async fn create_key(
    signed: Signed,
    form: web::Form<KeyForm>,
) -> Result<HttpResponse, ConsoleError> {
    signed.check_csrf(&form.csrf)?;
    let tenant = match signed.tenant_as(Role::Admin) {
        Ok(t) => t,
        Err(e) => return Ok(back_with("/console/keys", &e)),
    };
    let expires = form.expires_at.trim();
    let body = crate::keys::NewKey {
        name: form.name.clone(),
        role: form.role.clone(),
        expires_at: (!expires.is_empty()).then(|| {
            if expires.len() == 16 {
                format!("{expires}:00Z")
            } else {
                format!("{expires}Z")
            }
        }),
    };
    let (name, role, expires_at) = match crate::keys::check_new_key(&body) {
        Ok(v) => v,
        Err(e) => return Ok(back_with("/console/keys", &e)),
    };
    let created = crate::keys::issue_key(&signed.state, &tenant.0, name, role, expires_at)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    let body = html! {
        p { "Key " code { (created.resource.id) } " (" (created.resource.role) ") is ready. Copy it now: it is not shown again." }
        p.secret #new-secret { (created.key) }
        p { a href="/console/keys" { "Back to the keys" } }
    };
    Ok(page(&signed, "keys", "New API key", None, body))
}

/// `POST /console/keys/{id}/revoke`.
pub(crate) async fn revoke_key(
    signed: Signed,
    id: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, ConsoleError> {
    signed.check_csrf(&form.csrf)?;
    let tenant = match signed.tenant_as(Role::Admin) {
        Ok(t) => t,
        Err(e) => return Ok(back_with("/console/keys", &e)),
    };
    if !signed.state.admin.revoke_key(&tenant.0, &id).await? {
        return Err(ApiError::NotFound("no such key".into()).into());
    }
    signed.state.key_cache.forget(&id);
    Ok(see_other(&format!(
        "/console/keys?ok={}",
        encode(&format!("Key {id} revoked"))
    )))
}

/// `GET /console/audit`: the chain's state (verified on `?verify=1`), the last
/// checkpoint, the export. The operator's verifies every chain.
pub(crate) async fn audit(signed: Signed, q: Query) -> Result<HttpResponse, ConsoleError> {
    let state = &signed.state;
    let verify = q.get("verify").is_some_and(|v| v == "1");
    if signed.tenant.is_none() {
        let report = if verify {
            Some(crate::admin::verify_all(state).await?)
        } else {
            None
        };
        let body = html! {
            p { a #verify href="/console/audit?verify=1" { "Verify every chain now" } }
            @if let Some(r) = &report {
                p #chain-status { @if r.ok { "Every chain verifies." } @else { "A chain is broken." } }
                table #chains {
                    tr { th { "Tenant" } th { "OK" } th { "Entries" } th { "Checkpoints" } th { "Head" } th { "Break" } }
                    @for c in &r.chains {
                        tr { td { code { (c.tenant) } } td { (c.ok) } td { (c.entries) } td { (c.checkpoints) } td { (c.head_seq) }
                             td { @if let Some(b) = &c.broken { (b.seq) " " (b.reason) } } }
                    }
                }
            }
        };
        return Ok(page(&signed, "audit", "Audit", flash(&q), body));
    }
    let tenant = signed.tenant()?;
    let (log, signer) = crate::audit::parts(state)?;
    let t = tenant.0.to_string();
    let head = log.audit_head(&t).await?;
    let last = log
        .audit_checkpoints(&t, 0, i64::MAX)
        .await?
        .into_iter()
        .last();
    let report = if verify {
        crate::audit::spend(state, tenant)?;
        hermod_core::audit::chain_all(log.as_ref()).await?;
        Some(crate::audit::verify_tenant(log.as_ref(), signer.as_ref(), &t).await?)
    } else {
        None
    };
    let body = html! {
        div.grid {
            div.card { div.muted { "Entries" } div.stat { (head.as_ref().map_or(0, |h| h.0)) } }
            div.card { div.muted { "Last checkpoint" }
                @match &last { Some(c) => div #last-checkpoint { "seq " (c.seq) " at " (when(c.at)) div.hint { "signed by key " code { (c.key_id) } } },
                               None => div.muted { "none yet" } } }
            div.card { div.muted { "Chain" }
                @match &report {
                    Some(r) => {
                        div.stat #chain-status { @if r.broken.is_none() { "verified" } @else { "BROKEN" } }
                        div.hint { (r.entries) " entries, " (r.checkpoints) " checkpoints" }
                    },
                    None => a #verify href="/console/audit?verify=1" { "Verify now" },
                } }
        }
        p { a #export href="/console/audit/export" { "Export (JSON Lines, verifiable offline)" } }
    };
    Ok(page(&signed, "audit", "Audit", flash(&q), body))
}

/// `GET /console/audit/export`: the tenant's whole chain, as `GET /v1/audit/export`.
pub(crate) async fn audit_export(signed: Signed) -> Result<HttpResponse, ConsoleError> {
    let tenant = signed.tenant_as(Role::Admin)?;
    let mut r = crate::audit::export_stream(&signed.state, &tenant.0, 1, i64::MAX).await?;
    r.headers_mut().insert(
        actix_web::http::header::CONTENT_DISPOSITION,
        actix_web::http::header::HeaderValue::from_static(
            "attachment; filename=\"hermod-audit.jsonl\"",
        ),
    );
    Ok(r)
}
