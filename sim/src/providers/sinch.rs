//! Sinch's SMS REST API: `POST /xms/v1/{service_plan_id}/batches` with
//! `Authorization: Bearer <API token>` and `{"from", "to": [...], "body",
//! "delivery_report", "callback_url", "client_reference"}`. Answers `201` with the
//! batch, `400` / `401` / `403` with `{"code", "text"}`. Per-recipient delivery reports
//! and inbound `mo_text` messages are POSTed to the callback URL with the Basic
//! credentials it carries.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::{Accepted, Inner, authorization, e164};

fn error(status: u16, code: &str, text: &str) -> HttpResponse {
    HttpResponse::build(
        actix_web::http::StatusCode::from_u16(status)
            .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST),
    )
    .json(json!({"code": code, "text": text}))
}

fn batch_id() -> String {
    // Sinch batch ids are 26-character ULIDs.
    uuid::Uuid::now_v7().simple().to_string()[..26].to_ascii_uppercase()
}

pub(super) async fn batch(
    inner: web::Data<Inner>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    if let Some(r) = inner.gate("sinch").await {
        return r;
    }
    let cfg = &inner.cfg;
    if authorization(&req) != format!("Bearer {}", cfg.sinch_token) {
        return error(401, "unauthorized", "Unauthorized");
    }
    if path.into_inner() != cfg.sinch_plan {
        return error(
            403,
            "missing_scope",
            "The service plan does not exist or is not yours",
        );
    }
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return error(400, "syntax_invalid_json", "The JSON input is invalid");
    };
    let to: Vec<String> = v["to"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if to.is_empty() {
        return error(400, "syntax_constraint_violation", "to: must not be empty");
    }
    if let Some(bad) = to
        .iter()
        .find(|t| !e164(t) && !t.bytes().all(|b| b.is_ascii_digit()))
    {
        return error(
            400,
            "syntax_constraint_violation",
            &format!("to: {bad} is not a phone number"),
        );
    }
    let Some(text) = v["body"].as_str().filter(|b| !b.is_empty()) else {
        return error(
            400,
            "syntax_constraint_violation",
            "body: must not be empty",
        );
    };
    let from = v["from"].as_str().unwrap_or_default().to_owned();
    let id = batch_id();
    for t in &to {
        inner.accept(Accepted {
            provider: "sinch",
            id: id.clone(),
            to: t.clone(),
            from: from.clone(),
            text: text.to_owned(),
        });
    }
    let report = v["delivery_report"].as_str().unwrap_or("none");
    if let (Some(url), "per_recipient" | "per_recipient_final") =
        (v["callback_url"].as_str(), report)
    {
        let inner = inner.clone().into_inner();
        let (url, id, to, cref) = (
            url.to_owned(),
            id.clone(),
            to.clone(),
            v["client_reference"].clone(),
        );
        tokio::spawn(async move {
            tokio::time::sleep(inner.cfg.receipt_delay).await;
            for t in to {
                let failed = inner.cfg.undeliverable(&t);
                let body = json!({
                    "type": "recipient_delivery_report_sms",
                    "batch_id": id,
                    "recipient": t,
                    "code": if failed { 406 } else { 0 },
                    "status": if failed { "Failed" } else { "Delivered" },
                    "at": "2026-01-01T14:00:01.000Z",
                    "operator_status_at": "2026-01-01T14:00:01.000Z",
                    "client_reference": cref,
                });
                post(&inner, &url, body).await;
            }
        });
    }
    inner.before_answer("sinch").await;
    let now = "2026-01-01T14:00:00.000Z";
    HttpResponse::Created().json(json!({
        "id": id,
        "to": to,
        "from": from,
        "canceled": false,
        "body": text,
        "type": "mt_text",
        "created_at": now,
        "modified_at": now,
        "delivery_report": report,
        "expire_at": v["expire_at"].as_str().unwrap_or("2026-01-04T14:00:00.000Z"),
        "flash_message": false,
        "client_reference": v["client_reference"],
    }))
}

async fn post(inner: &Inner, url: &str, body: Value) -> u16 {
    inner.callback_json("sinch", url, body, None).await
}

pub(super) async fn inbound(inner: &Inner, url: &str, from: &str, to: &str, text: &str) -> u16 {
    let body = json!({
        "type": "mo_text",
        "id": batch_id(),
        "from": from,
        "to": to.trim_start_matches('+'),
        "body": text,
        "received_at": "2026-01-01T14:00:00.000Z",
        "operator_id": "24001",
    });
    post(inner, url, body).await
}
