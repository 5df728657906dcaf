//! A plain JSON provider for the generic HTTP connector: `POST /generic/messages` with
//! `Authorization: Bearer <token>` and `{"to", "from", "text", "callback", "reference"}`,
//! answered `202 {"id"}`; receipts `{"id", "status": "delivered", "to", "reference"}`
//! and inbound `{"id", "from", "to", "text"}` POSTed as JSON.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::{Accepted, Inner, authorization, e164, hex_id};

pub(super) async fn send(
    inner: web::Data<Inner>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    if let Some(r) = inner.gate("generic").await {
        return r;
    }
    if authorization(&req) != format!("Bearer {}", inner.cfg.generic_token) {
        return HttpResponse::Unauthorized().json(json!({"error": "bad token"}));
    }
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return HttpResponse::BadRequest().json(json!({"error": "not JSON"}));
    };
    let to = v["to"].as_str().unwrap_or_default().to_owned();
    let text = v["text"].as_str().unwrap_or_default().to_owned();
    if !e164(&to) || text.is_empty() {
        return HttpResponse::UnprocessableEntity()
            .json(json!({"error": "to must be E.164 and text non-empty"}));
    }
    let id = hex_id(12);
    inner.accept(Accepted {
        provider: "generic",
        id: id.clone(),
        to: to.clone(),
        from: v["from"].as_str().unwrap_or_default().to_owned(),
        text,
    });
    if let Some(url) = v["callback"]
        .as_str()
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
    {
        let inner = inner.clone().into_inner();
        let (id, to, reference) = (id.clone(), to.clone(), v["reference"].clone());
        tokio::spawn(async move {
            tokio::time::sleep(inner.cfg.receipt_delay).await;
            let body = if inner.cfg.undeliverable(&to) {
                json!({"id": id, "status": "failed", "error": "absent_subscriber", "to": to, "reference": reference})
            } else {
                json!({"id": id, "status": "delivered", "to": to, "reference": reference})
            };
            post(&inner, &url, body).await;
        });
    }
    inner.before_answer("generic").await;
    HttpResponse::Accepted().json(json!({"id": id}))
}

async fn post(inner: &Inner, url: &str, body: Value) -> u16 {
    inner.callback_json("generic", url, body, None).await
}

pub(super) async fn inbound(inner: &Inner, url: &str, from: &str, to: &str, text: &str) -> u16 {
    post(
        inner,
        url,
        json!({"id": hex_id(12), "from": from, "to": to, "text": text}),
    )
    .await
}
