//! Vonage's SMS API: `POST /sms/json` (form or JSON) with `api_key`, `api_secret`,
//! `from`, `to` (digits), `text`, `type`, `callback`, `client-ref`. Always `200` with
//! `{"message-count", "messages": [...]}`, one entry per part; errors are a non-zero
//! `status` with `error-text` (2 missing parameters, 3 invalid parameters, 4 invalid
//! credentials). Delivery receipts (one per part) and inbound messages are POSTed as
//! JSON, signed: `timestamp`, `nonce` and `sig` = HMAC-SHA256 over the sorted
//! parameters with the signature secret.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::{Accepted, Inner, hex_id};

fn fields(req: &HttpRequest, body: &[u8]) -> Vec<(String, String)> {
    let json = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.contains("json"));
    if json {
        let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        v.as_object()
            .map(|o| {
                o.iter()
                    .filter_map(|(k, v)| {
                        let s = match v {
                            Value::String(s) => s.clone(),
                            Value::Number(n) => n.to_string(),
                            _ => return None,
                        };
                        Some((k.clone(), s))
                    })
                    .collect()
            })
            .unwrap_or_default()
    } else {
        super::form(body)
    }
}

fn refused(status: &str, text: &str) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "message-count": "1",
        "messages": [{"status": status, "error-text": text}],
    }))
}

pub(super) async fn send(
    inner: web::Data<Inner>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    if let Some(r) = inner.gate("vonage").await {
        return r;
    }
    let f = fields(&req, &body);
    let get = |k: &str| super::param(&f, k).unwrap_or_default().to_owned();
    let cfg = &inner.cfg;
    if get("api_key").is_empty() || get("api_secret").is_empty() {
        return refused("2", "Missing api_key");
    }
    if get("api_key") != cfg.vonage_key || get("api_secret") != cfg.vonage_secret {
        return refused("4", "Bad Credentials");
    }
    let (to, from, text) = (get("to"), get("from"), get("text"));
    if to.is_empty() {
        return refused("2", "Missing to param");
    }
    if from.is_empty() {
        return refused("2", "Missing from param");
    }
    if text.is_empty() {
        return refused("2", "Missing text param");
    }
    if !to.bytes().all(|b| b.is_ascii_digit()) || !(7..=15).contains(&to.len()) {
        return refused("3", "Invalid to param");
    }
    let unicode = get("type") == "unicode";
    if !unicode && hermod_core::gsm::encode_gsm7(&text).is_none() {
        // Vonage sends such text as GSM anyway, garbling it; a real account would
        // deliver "?" characters. Refused here so a missing type=unicode shows.
        return refused("3", "Invalid text param: not GSM without type=unicode");
    }
    let parts = super::segments(&text);
    let ids: Vec<String> = (0..parts).map(|_| hex_id(8).to_ascii_uppercase()).collect();
    for id in &ids {
        inner.accept(Accepted {
            provider: "vonage",
            id: id.clone(),
            to: to.clone(),
            from: from.clone(),
            text: text.clone(),
        });
    }
    let callback = get("callback");
    if !callback.is_empty() {
        let inner = inner.clone().into_inner();
        let (ids, to, from, cref) = (ids.clone(), to.clone(), from.clone(), get("client-ref"));
        tokio::spawn(async move {
            tokio::time::sleep(inner.cfg.receipt_delay).await;
            let failed = inner.cfg.undeliverable(&to);
            for id in ids {
                let mut p = vec![
                    ("msisdn", to.clone()),
                    ("to", from.clone()),
                    ("network-code", "23410".into()),
                    ("messageId", id),
                    ("price", "0.03330000".into()),
                    ("status", if failed { "failed" } else { "delivered" }.into()),
                    ("scts", "2001011400".into()),
                    // 1: Unknown (the subscriber), as Vonage's DLR error codes say.
                    ("err-code", if failed { "1" } else { "0" }.into()),
                    ("api-key", inner.cfg.vonage_key.clone()),
                    ("message-timestamp", "2026-01-01 14:00:00".into()),
                ];
                if !cref.is_empty() {
                    p.push(("client-ref", cref.clone()));
                }
                signed_json(&inner, &callback, p).await;
            }
        });
    }
    inner.before_answer("vonage").await;
    HttpResponse::Ok().json(json!({
        "message-count": parts.to_string(),
        "messages": ids.iter().map(|id| json!({
            "to": to,
            "message-id": id,
            "status": "0",
            "remaining-balance": "3.14159265",
            "message-price": "0.03330000",
            "network": "23410",
        })).collect::<Vec<_>>(),
    }))
}

async fn signed_json(inner: &Inner, url: &str, p: Vec<(&str, String)>) -> u16 {
    let mut params: Vec<(String, String)> = p.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    params.push((
        "timestamp".into(),
        (hermod_core::now_ms() / 1000).to_string(),
    ));
    params.push(("nonce".into(), hex_id(8)));
    let sig = hermod_crypto::vonage::signature(
        hermod_crypto::vonage::Method::Sha256,
        &inner.cfg.vonage_signature_secret,
        &params,
    );
    params.push(("sig".into(), sig.clone()));
    let body: Value = params
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect::<serde_json::Map<_, _>>()
        .into();
    inner.callback_json("vonage", url, body, Some(sig)).await
}

pub(super) async fn inbound(inner: &Inner, url: &str, from: &str, to: &str, text: &str) -> u16 {
    let p = vec![
        ("msisdn", from.trim_start_matches('+').to_owned()),
        ("to", to.trim_start_matches('+').to_owned()),
        ("messageId", hex_id(8).to_ascii_uppercase()),
        ("text", text.to_owned()),
        ("type", "text".to_owned()),
        (
            "keyword",
            text.split_whitespace()
                .next()
                .unwrap_or_default()
                .to_ascii_uppercase(),
        ),
        ("message-timestamp", "2026-01-01 14:00:00".into()),
        ("api-key", inner.cfg.vonage_key.clone()),
    ];
    signed_json(inner, url, p).await
}
