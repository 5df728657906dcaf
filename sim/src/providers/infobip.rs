//! Infobip's SMS API: `POST /sms/2/text/advanced` with `Authorization: App <API key>`
//! and `{"messages": [{"destinations": [{"to"}], "from", "text", "notifyUrl",
//! "callbackData"}]}`. Answers `200` with the bulk and each destination's status
//! (`PENDING_ACCEPTED`), `401` / `400` with `{"requestError": {"serviceException":
//! {"messageId", "text"}}}`. Delivery reports and inbound messages are POSTed as
//! `{"results": [...]}`.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::{Accepted, Inner, authorization, hex_id};

fn request_error(status: u16, id: &str, text: &str) -> HttpResponse {
    HttpResponse::build(
        actix_web::http::StatusCode::from_u16(status)
            .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST),
    )
    .json(json!({"requestError": {"serviceException": {"messageId": id, "text": text}}}))
}

pub(super) async fn send(
    inner: web::Data<Inner>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    if let Some(r) = inner.gate("infobip").await {
        return r;
    }
    if authorization(&req) != format!("App {}", inner.cfg.infobip_key) {
        return request_error(401, "UNAUTHORIZED", "Invalid login details");
    }
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return request_error(400, "BAD_REQUEST", "Bad request");
    };
    let Some(msgs) = v["messages"].as_array().filter(|m| !m.is_empty()) else {
        return request_error(400, "BAD_REQUEST", "messages must not be empty");
    };
    let bulk = hex_id(10);
    let mut out = Vec::new();
    for m in msgs {
        let text = m["text"].as_str().unwrap_or_default().to_owned();
        let from = m["from"].as_str().unwrap_or("InfoSMS").to_owned();
        let dests = m["destinations"].as_array().cloned().unwrap_or_default();
        if dests.is_empty() {
            return request_error(400, "BAD_REQUEST", "destinations must not be empty");
        }
        for d in dests {
            let to = d["to"].as_str().unwrap_or_default().to_owned();
            if !(7..=15).contains(&to.len()) || !to.bytes().all(|b| b.is_ascii_digit()) {
                out.push(json!({"to": to, "status": {"groupId": 5, "groupName": "REJECTED", "id": 51, "name": "REJECTED_DESTINATION", "description": "Invalid destination address"}, "messageId": hex_id(10)}));
                continue;
            }
            let id = hex_id(16);
            inner.accept(Accepted {
                provider: "infobip",
                id: id.clone(),
                to: to.clone(),
                from: from.clone(),
                text: text.clone(),
            });
            if let Some(url) = m["notifyUrl"].as_str().map(str::to_owned) {
                let inner = inner.clone().into_inner();
                let (bulk, id, to, cbd) = (
                    bulk.clone(),
                    id.clone(),
                    to.clone(),
                    m["callbackData"].clone(),
                );
                tokio::spawn(async move {
                    tokio::time::sleep(inner.cfg.receipt_delay).await;
                    let (status, error) = if inner.cfg.undeliverable(&to) {
                        (
                            json!({"groupId": 2, "groupName": "UNDELIVERABLE", "id": 9, "name": "UNDELIVERABLE_NOT_DELIVERED", "description": "Message sent not delivered"}),
                            json!({"groupId": 1, "groupName": "HANDSET_ERRORS", "id": 1, "name": "EC_UNKNOWN_SUBSCRIBER", "description": "Unknown subscriber", "permanent": true}),
                        )
                    } else {
                        (
                            json!({"groupId": 3, "groupName": "DELIVERED", "id": 5, "name": "DELIVERED_TO_HANDSET", "description": "Message delivered to handset"}),
                            json!({"groupId": 0, "groupName": "OK", "id": 0, "name": "NO_ERROR", "description": "No Error", "permanent": false}),
                        )
                    };
                    let report = json!({"results": [{
                        "bulkId": bulk, "messageId": id, "to": to,
                        "sentAt": "2026-01-01T14:00:00.000+0000", "doneAt": "2026-01-01T14:00:01.000+0000",
                        "smsCount": 1, "mccMnc": "22801",
                        "price": {"pricePerMessage": 0.01, "currency": "EUR"},
                        "status": status,
                        "error": error,
                        "callbackData": cbd,
                    }]});
                    post(&inner, &url, report).await;
                });
            }
            out.push(json!({"to": to, "status": {"groupId": 1, "groupName": "PENDING", "id": 26, "name": "PENDING_ACCEPTED", "description": "Message sent to next instance"}, "messageId": id}));
        }
    }
    inner.before_answer("infobip").await;
    HttpResponse::Ok().json(json!({"bulkId": bulk, "messages": out}))
}

async fn post(inner: &Inner, url: &str, body: Value) -> u16 {
    inner.callback_json("infobip", url, body, None).await
}

pub(super) async fn inbound(inner: &Inner, url: &str, from: &str, to: &str, text: &str) -> u16 {
    let body = json!({
        "results": [{
            "messageId": hex_id(16),
            "from": from.trim_start_matches('+'),
            "to": to.trim_start_matches('+'),
            "text": text,
            "cleanText": text,
            "keyword": text.split_whitespace().next().unwrap_or_default().to_ascii_uppercase(),
            "receivedAt": "2026-01-01T14:00:00.000+0000",
            "smsCount": 1,
            "price": {"pricePerMessage": 0, "currency": "EUR"},
            "callbackData": null,
        }],
        "messageCount": 1,
        "pendingMessageCount": 0,
    });
    post(inner, url, body).await
}
