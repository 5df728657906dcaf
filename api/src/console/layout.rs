//! The console's frame: navigation, flash messages, the stylesheet and script, the
//! overview's chart, and the security headers of every page.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use hermod_core::tenant::Principal;
use maud::{DOCTYPE, Markup, Render, html};

use super::session::Signed;

/// Every page's headers: no framing, no third-party anything, no caching.
fn secure(mut b: actix_web::HttpResponseBuilder) -> actix_web::HttpResponseBuilder {
    b.insert_header((
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ))
    .insert_header(("X-Content-Type-Options", "nosniff"))
    .insert_header(("Referrer-Policy", "same-origin"))
    .insert_header(("Cache-Control", "no-store"));
    b
}

/// A message above a page's content.
pub(crate) enum Flash {
    Info(String),
    Error(String),
}

impl Render for Flash {
    fn render(&self) -> Markup {
        match self {
            Flash::Info(m) => html! { p.flash.info role="status" { (m) } },
            Flash::Error(m) => html! { p.flash.error role="alert" { (m) } },
        }
    }
}

/// A page without navigation (sign-in).
pub(crate) fn page_bare(title: &str, body: Markup, status: StatusCode) -> HttpResponse {
    let doc = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Hermod console" }
                link rel="stylesheet" href="/console/assets/console.css";
            }
            body { (body) }
        }
    };
    secure(HttpResponse::build(status))
        .content_type("text/html; charset=utf-8")
        .body(doc.into_string())
}

const TENANT_NAV: &[(&str, &str)] = &[
    ("overview", "Overview"),
    ("messages", "Messages"),
    ("channels", "Channels"),
    ("webhooks", "Webhooks"),
    ("templates", "Templates"),
    ("hooks", "Alert hooks"),
    ("opt-outs", "Opt-outs"),
    ("keys", "Keys"),
    ("audit", "Audit"),
];

const OPERATOR_NAV: &[(&str, &str)] = &[
    ("overview", "Overview"),
    ("tenants", "Tenants"),
    ("channels", "Channels"),
    ("operations", "Dead letters & inbound"),
    ("audit", "Audit"),
];

/// A page: navigation for who is signed in, the flash (from `?flash=`), the body.
pub(crate) fn page(
    signed: &Signed,
    active: &str,
    title: &str,
    flash: Option<Flash>,
    body: Markup,
) -> HttpResponse {
    page_with(signed, active, title, flash, body, None)
}

/// Like [`page`], reloading itself every `refresh` seconds (live figures).
pub(crate) fn page_with(
    signed: &Signed,
    active: &str,
    title: &str,
    flash: Option<Flash>,
    body: Markup,
    refresh: Option<u32>,
) -> HttpResponse {
    let (nav, who) = match (&signed.session.principal, &signed.tenant) {
        (Principal::Operator { .. }, _) => (OPERATOR_NAV, "operator".to_owned()),
        (_, Some(t)) => (
            TENANT_NAV,
            format!("tenant {} · {} key", t.0, t.1.role.as_str()),
        ),
        _ => (TENANT_NAV, String::new()),
    };
    let doc = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(r) = refresh { meta http-equiv="refresh" content=(r); }
                title { (title) " · Hermod console" }
                link rel="stylesheet" href="/console/assets/console.css";
                script src="/console/assets/console.js" defer {}
            }
            body data-csrf=(signed.session.csrf) {
                header.top {
                    a.brand href="/console" { "Hermod" }
                    nav {
                        @for (slug, label) in nav {
                            a href={ "/console/" (slug) } class=[(*slug == active).then_some("active")] { (label) }
                        }
                    }
                    span.who #who { (who) }
                    form.inline method="post" action="/console/logout" {
                        (csrf(signed))
                        button #logout type="submit" { "Sign out" }
                    }
                }
                main {
                    h1 { (title) }
                    @if let Some(f) = flash { (f) }
                    (body)
                }
            }
        }
    };
    secure(HttpResponse::Ok())
        .content_type("text/html; charset=utf-8")
        .body(doc.into_string())
}

/// The hidden CSRF field of a form.
pub(crate) fn csrf(signed: &Signed) -> Markup {
    html! { input type="hidden" name="csrf" value=(signed.session.csrf); }
}

/// `2026-12-06 14:03:07` (UTC) from Unix ms.
pub(crate) fn when(ms: i64) -> String {
    let s = hermod_core::rfc3339(ms);
    s.get(..19).unwrap_or(&s).replace('T', " ")
}

/// A status as a coloured badge.
pub(crate) fn badge(status: &str) -> Markup {
    html! { span class={ "badge s-" (status) } { (status) } }
}

/// Colours of the statuses in the chart (also in the stylesheet's badges).
const STATUS_COLOURS: &[(&str, &str)] = &[
    ("accepted", "#9aa5b1"),
    ("scheduled", "#b8c2cc"),
    ("queued", "#7b8794"),
    ("sending", "#3e4c59"),
    ("sent", "#4098d7"),
    ("delivered", "#3ebd93"),
    ("read", "#147d64"),
    ("failed", "#e12d39"),
    ("expired", "#f0b429"),
    ("rejected", "#ab091e"),
    ("canceled", "#52606d"),
];

/// Colours of the channels in the chart.
const CHANNEL_COLOURS: &[(&str, &str)] = &[
    ("app", "#8719e0"),
    ("rcs", "#2680c2"),
    ("sms", "#3ebd93"),
    ("none", "#9aa5b1"),
];

/// Messages per hour by status.
pub(crate) fn hours_chart(hours: &[hermod_core::insights::Hour]) -> Markup {
    let rows: Vec<(i64, &[(String, i64)])> = hours
        .iter()
        .map(|h| (h.start, h.by_status.as_slice()))
        .collect();
    stacked(
        "hours-chart",
        "messages per hour by status",
        &rows,
        STATUS_COLOURS,
    )
}

/// Messages per hour by channel (of their last attempt).
pub(crate) fn channels_chart(hours: &[hermod_core::insights::Hour]) -> Markup {
    let rows: Vec<(i64, &[(String, i64)])> = hours
        .iter()
        .map(|h| (h.start, h.by_channel.as_slice()))
        .collect();
    stacked(
        "channels-chart",
        "messages per hour by channel",
        &rows,
        CHANNEL_COLOURS,
    )
}

/// Stacked bars: one per hour, a segment per key (statuses, channels) in `colours`'
/// order; its legend below.
fn stacked(
    id: &str,
    label: &str,
    rows: &[(i64, &[(String, i64)])],
    colours: &[(&str, &str)],
) -> Markup {
    let max = rows
        .iter()
        .map(|(_, by)| by.iter().map(|(_, n)| *n).sum::<i64>())
        .max()
        .unwrap_or(0)
        .max(1);
    let (w, h, bar) = (720i64, 160i64, 26i64);
    html! {
        svg.chart id=(id) viewBox={ "0 0 " (w) " " (h + 20) } role="img" aria-label=(label) {
            @for (i, (start, by)) in rows.iter().enumerate() {
                @let x = i64::try_from(i).unwrap_or(0) * (bar + 4);
                @for (y, seg, key, colour, n) in segments(by, colours, h, max) {
                    rect x=(x) y=(y) width=(bar) height=(seg) fill=(colour) {
                        title { (when(*start).get(11..16).unwrap_or("")) " " (key) ": " (n) }
                    }
                }
                @if i % 3 == 0 {
                    text x=(x) y=(h + 14) font-size="10" { (when(*start).get(11..16).unwrap_or("")) }
                }
            }
        }
        p.legend {
            @for (key, colour) in colours {
                span { svg width="10" height="10" { rect width="10" height="10" fill=(colour) {} } " " (key) }
            }
        }
    }
}

/// One bar's segments, bottom up: `(y, height, key, colour, count)`.
fn segments<'a>(
    by: &[(String, i64)],
    colours: &'a [(&'a str, &'a str)],
    h: i64,
    max: i64,
) -> Vec<(i64, i64, &'a str, &'a str, i64)> {
    let mut y = h;
    let mut out = Vec::new();
    for (key, colour) in colours {
        let n = by.iter().find(|(s, _)| s == key).map_or(0, |(_, n)| *n);
        if n > 0 {
            let seg = (n * h / max).max(1);
            y -= seg;
            out.push((y, seg, *key, *colour, n));
        }
    }
    out
}

/// `GET /console/assets/console.css`.
pub(crate) async fn css() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header(("Cache-Control", "max-age=3600"))
        .body(include_str!("assets/console.css"))
}

/// `GET /console/assets/console.js`.
pub(crate) async fn js() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header(("Cache-Control", "max-age=3600"))
        .body(include_str!("assets/console.js"))
}
