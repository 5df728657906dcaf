//! Tenant isolation on every route the server mounts: the route table is walked, and
//! a route without a case here fails the test. Tenant B's key is tried on tenant A's
//! objects (404 or 403), B's writes stay B's, and A's state is the same afterwards.

use std::time::Duration;

use hermod_crypto::hpke::Aead;
use hermod_sim::smsc::SmscConfig;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{
    ADMIN_TOKEN, Server, call, create_key_with_tenant, eventually, free_port, send_message,
    start_smsc, wait_status,
};

const SENDER: &str = "+447700900123";
const CUSTOMER: &str = "+447911123456";
const APP_USER: &str = "+447911123999";

/// What A can see of itself: compared before and after B's attempts.
async fn snapshot(base: &str, a: &str, msg: &str, template: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for path in [
        format!("/v1/messages/{msg}"),
        "/v1/messages".to_owned(),
        format!("/v1/templates/{template}"),
        "/v1/templates".to_owned(),
        "/v1/hooks".to_owned(),
        "/v1/webhook-endpoints".to_owned(),
        "/v1/webhook-deliveries".to_owned(),
        "/v1/devices".to_owned(),
        "/v1/opt-outs".to_owned(),
        "/v1/inbound".to_owned(),
        "/v1/senders".to_owned(),
        "/v1/tenant/retention".to_owned(),
        "/v1/tenant/defaults".to_owned(),
    ] {
        let (s, v, _) = call(Method::GET, &format!("{base}{path}"), a, None).await;
        assert_eq!(s, 200, "{path}: {v}");
        out.push((path, v));
    }
    out
}

fn has(v: &Value, id: &str) -> bool {
    v.to_string().contains(id)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_keeps_tenants_apart() {
    let smsc = start_smsc(SmscConfig {
        dlr_delay: Duration::from_millis(10),
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (a_id, a) = create_key_with_tenant(dir.path(), "tenant-a");
    let (_, b) = create_key_with_tenant(dir.path(), "tenant-b");
    let server = Server::start(dir.path(), &smsc.url("hermod", "pw"), free_port());
    server.wait_healthy().await;
    let base = server.base.clone();
    let url = |p: &str| format!("{base}{p}");

    // --- A's objects.
    let (s, _, _) = call(
        Method::POST,
        &url("/v1/admin/senders"),
        ADMIN_TOKEN,
        Some(json!({"sender": SENDER, "tenant_id": a_id, "default": true})),
    )
    .await;
    assert_eq!(s, 201);
    let (_, m) = send_message(
        &base,
        &a,
        json!({"to": CUSTOMER, "text": "A's secret order", "channels": ["sms"]}),
    )
    .await;
    let msg = m["id"].as_str().unwrap().to_owned();
    wait_status(&base, &a, &msg, "delivered", 30).await;
    // The customer answers A: an inbound message of A's.
    smsc.inject_mo(
        "hermod",
        CUSTOMER.trim_start_matches('+'),
        SENDER.trim_start_matches('+'),
        "A's customer writes back",
        false,
    );
    let a_inbound = || async {
        let (_, v, _) = call(Method::GET, &format!("{base}/v1/inbound"), &a, None).await;
        v["data"][0]["id"].as_str().map(str::to_owned)
    };
    eventually("A's inbound message", Duration::from_secs(20), || async {
        a_inbound().await.is_some()
    })
    .await;
    let inbound = a_inbound().await.unwrap();
    let (s, t, _) = call(
        Method::POST,
        &url("/v1/templates"),
        &a,
        Some(json!({"id": "a_tpl", "variants": {"en": {"text": "Hi {{ name }}"}}})),
    )
    .await;
    assert_eq!(s, 201, "{t}");
    let (s, hook, _) = call(
        Method::POST,
        &url("/v1/hooks"),
        &a,
        Some(json!({"name": "a-hook", "recipients": [CUSTOMER]})),
    )
    .await;
    assert_eq!(s, 201);
    let hook_id = hook["id"].as_str().unwrap().to_owned();
    // A delivery that failed (its endpoint was deleted): a stable object to retry.
    let dead = format!("http://127.0.0.1:{}/hook", free_port());
    let (_, ep, _) = call(
        Method::POST,
        &url("/v1/webhook-endpoints"),
        &a,
        Some(json!({"url": dead, "events": ["*"]})),
    )
    .await;
    let (_, m2) = send_message(
        &base,
        &a,
        json!({"to": CUSTOMER, "text": "second", "channels": ["sms"]}),
    )
    .await;
    wait_status(&base, &a, m2["id"].as_str().unwrap(), "delivered", 30).await;
    // One row per event of the message (queued, sent, delivered), each POST having
    // failed, before the endpoint goes: none is written after the snapshot.
    eventually(
        "A's pending deliveries",
        Duration::from_secs(30),
        || async {
            let (_, v, _) = call(Method::GET, &url("/v1/webhook-deliveries"), &a, None).await;
            v["data"].as_array().is_some_and(|d| d.len() >= 3)
        },
    )
    .await;
    let (s, _, _) = call(
        Method::DELETE,
        &url(&format!(
            "/v1/webhook-endpoints/{}",
            ep["id"].as_str().unwrap()
        )),
        &a,
        None,
    )
    .await;
    assert_eq!(s, 204);
    // Stable before the snapshot: every delivery to it ended (a row written after the
    // deletion ends when it is next due).
    eventually("A's deliveries ended", Duration::from_secs(30), || async {
        let (_, v, _) = call(Method::GET, &url("/v1/webhook-deliveries"), &a, None).await;
        v["data"]
            .as_array()
            .is_some_and(|d| !d.is_empty() && d.iter().all(|x| x["status"] == "failed"))
    })
    .await;
    let (_, v, _) = call(Method::GET, &url("/v1/webhook-deliveries"), &a, None).await;
    let delivery = v["data"][0]["id"].as_i64().unwrap();
    let (s, ep, _) = call(
        Method::POST,
        &url("/v1/webhook-endpoints"),
        &a,
        Some(json!({"url": "http://127.0.0.1:9/a", "events": ["message.failed"]})),
    )
    .await;
    assert_eq!(s, 201);
    let endpoint = ep["id"].as_str().unwrap().to_owned();
    let device =
        hermod_sim::device::DeviceSim::register(&base, &a, APP_USER, Aead::ChaCha20Poly1305)
            .await
            .unwrap();
    let (s, _, _) = call(
        Method::POST,
        &url("/v1/opt-outs"),
        &a,
        Some(json!({"recipient": "+447911123000"})),
    )
    .await;
    assert_eq!(s, 201);
    let (s, _, _) = call(
        Method::PUT,
        &url("/v1/tenant/retention"),
        &a,
        Some(json!({"days": 30})),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _, _) = call(
        Method::PUT,
        &url("/v1/tenant/defaults"),
        &a,
        Some(json!({"channels": ["sms"]})),
    )
    .await;
    assert_eq!(s, 200);
    // B's own device (for the device-authenticated routes).
    let b_device =
        hermod_sim::device::DeviceSim::register(&base, &b, "+447911123998", Aead::ChaCha20Poly1305)
            .await
            .unwrap();

    let before = snapshot(&base, &a, &msg, "a_tpl").await;
    let (_, audit_before, _) = call(Method::GET, &url("/v1/audit/verify"), &a, None).await;

    // --- B on every route.
    let a_key_id = a.split('_').nth(1).unwrap().to_owned();
    let subst = |p: &str| {
        p.replace("/messages/{id}", &format!("/messages/{msg}"))
            .replace("/v1/keys/{id}", &format!("/v1/keys/{a_key_id}"))
            .replace("/admin/tenants/{id}", &format!("/admin/tenants/{a_id}"))
            .replace("/templates/{id}", "/templates/a_tpl")
            .replace("/hooks/{id}", &format!("/hooks/{hook_id}"))
            .replace(
                "/webhook-endpoints/{id}",
                &format!("/webhook-endpoints/{endpoint}"),
            )
            .replace(
                "/webhook-deliveries/{id}",
                &format!("/webhook-deliveries/{delivery}"),
            )
            .replace("/devices/{id}", &format!("/devices/{}", device.id))
            .replace("/inbound/{id}", &format!("/inbound/{inbound}"))
            .replace("/opt-outs/{recipient}", "/opt-outs/+447911123000")
            .replace("/subjects/{number}", &format!("/subjects/{CUSTOMER}"))
            .replace(
                "/admin/senders/{sender}",
                &format!("/admin/senders/{SENDER}"),
            )
            .replace("/webhooks/{provider}/{name}", "/webhooks/rbm/shop")
    };
    let table = hermod_api::route_table();
    assert!(table.len() >= 50, "{} routes", table.len());
    for (method, path, _) in &table {
        let key = format!("{method} {path}");
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        let u = url(&subst(path));
        let as_b = |body: Option<Value>| call(m.clone(), &u, &b, body);
        match key.as_str() {
            // Public, or not tenant data.
            "GET /healthz" | "GET /openapi.json" | "GET /v1/audit/public-key" => {
                assert_eq!(as_b(None).await.0, 200, "{key}");
            }
            // The operator's: a tenant key is refused.
            "GET /metrics"
            | "GET /v1/connectors"
            | "POST /v1/admin/reload"
            | "GET /v1/admin/dead-letters"
            | "GET /v1/admin/senders"
            | "DELETE /v1/admin/senders/{sender}"
            | "GET /v1/admin/inbound"
            | "GET /v1/admin/tenants"
            | "GET /v1/admin/tenants/{id}"
            | "DELETE /v1/admin/tenants/{id}"
            | "POST /v1/admin/audit/verify" => {
                assert_eq!(as_b(None).await.0, 401, "{key}");
            }
            "POST /v1/admin/tenants" => {
                assert_eq!(as_b(Some(json!({"name": "b2"}))).await.0, 401, "{key}");
            }
            "PATCH /v1/admin/tenants/{id}" => {
                assert_eq!(as_b(Some(json!({"suspended": true}))).await.0, 401, "{key}");
            }
            "POST /v1/admin/tenants/{id}/twilio"
            | "POST /v1/admin/tenants/{id}/smpp-accounts"
            | "GET /v1/admin/tenants/{id}/smpp-accounts"
            | "DELETE /v1/admin/tenants/{id}/smpp-accounts/{system_id}" => {
                assert_eq!(as_b(None).await.0, 401, "{key}");
            }
            // B's own Twilio account (A's SID and token are never shown to B).
            "POST /v1/twilio/account" => {
                let (s, v, _) = as_b(None).await;
                assert_eq!(s, 201, "{key}: {v}");
            }
            "GET /v1/twilio/account" => {
                let (s, v, _) = as_b(None).await;
                assert_eq!(s, 200, "{key}: {v}");
            }
            // Twilio's routes take HTTP Basic with an account's credentials: a bearer
            // key is none (tests/e2e/twilio.rs checks B's account against A's).
            k if k.contains(" /2010-04-01/") => {
                let (s, v, _) = as_b(Some(json!({}))).await;
                assert_eq!(s, 401, "{key}: {v}");
            }
            "POST /v1/admin/tenants/{id}/keys" => {
                let body = json!({"name": "b's", "role": "admin"});
                assert_eq!(as_b(Some(body)).await.0, 401, "{key}");
            }
            // A's key, by id: not B's to revoke or rotate.
            "DELETE /v1/keys/{id}" | "POST /v1/keys/{id}/rotate" => {
                assert_eq!(as_b(None).await.0, 404, "{key}");
            }
            "POST /v1/keys" => {
                let body = json!({"name": "b's reader", "role": "read"});
                assert_eq!(as_b(Some(body)).await.0, 201, "{key}");
            }
            "GET /v1/keys" => {
                let (s, v, _) = as_b(None).await;
                assert_eq!(s, 200, "{key}");
                assert!(!has(&v, &a_key_id), "{key} shows A's key: {v}");
            }
            "POST /v1/admin/senders" => {
                let body = json!({"sender": SENDER, "tenant_id": a_id});
                assert_eq!(as_b(Some(body)).await.0, 401, "{key}");
            }
            // Not keyed by a tenant key: a signed RBM event, a hook's URL token (A's
            // hook id is no token), a device's.
            "POST /v1/webhooks/{provider}/{name}" | "POST /v1/hooks/{id}" => {
                let (s, _, _) = as_b(Some(json!({}))).await;
                assert!(matches!(s, 401 | 403 | 404), "{key}: {s}");
            }
            "GET /v1/app/inbox" | "GET /v1/app/stream" => {
                assert_eq!(
                    as_b(None).await.0,
                    401,
                    "{key}: a tenant key is no device's"
                );
            }
            "POST /v1/app/receipts" => {
                let body = json!({"message_id": msg, "status": "read"});
                assert_eq!(as_b(Some(body.clone())).await.0, 401, "{key}");
                // B's device on A's message.
                let (s, _, _) = call(m.clone(), &u, &b_device.token, Some(body)).await;
                assert!(matches!(s, 403 | 404), "{key} with B's device: {s}");
            }
            // A's objects by id: not found for B.
            "GET /v1/messages/{id}"
            | "DELETE /v1/messages/{id}"
            | "GET /v1/templates/{id}"
            | "DELETE /v1/templates/{id}"
            | "DELETE /v1/hooks/{id}"
            | "DELETE /v1/webhook-endpoints/{id}"
            | "POST /v1/webhook-deliveries/{id}/retry"
            | "POST /v1/inbound/{id}/read"
            | "POST /v1/inbound/{id}/typing"
            | "DELETE /v1/devices/{id}" => {
                assert_eq!(as_b(None).await.0, 404, "{key}");
            }
            "POST /v1/templates/{id}/preview" => {
                assert_eq!(as_b(Some(json!({"vars": {}}))).await.0, 404, "{key}");
            }
            "POST /v1/devices/{id}/key" => {
                let body = json!({"public_key": "AAAA"});
                let (s, _, _) = as_b(Some(body)).await;
                assert!(matches!(s, 400 | 404), "{key}: {s}");
            }
            // B's lists hold nothing of A's.
            "GET /v1/messages"
            | "GET /v1/inbound"
            | "GET /v1/opt-outs"
            | "GET /v1/senders"
            | "GET /v1/templates"
            | "GET /v1/hooks"
            | "GET /v1/webhook-endpoints"
            | "GET /v1/webhook-deliveries"
            | "GET /v1/devices"
            | "GET /v1/audit/export"
            | "GET /v1/tenant/retention"
            | "GET /v1/tenant/defaults"
            | "GET /v1/audit/verify" => {
                let (s, v, _) = as_b(None).await;
                assert!(matches!(s, 200 | 404), "{key}: {s}");
                for id in [
                    msg.as_str(),
                    "a_tpl",
                    &hook_id,
                    &endpoint,
                    &device.id,
                    "+447911123000",
                    SENDER,
                    &a_id,
                ] {
                    assert!(!has(&v, id), "{key} shows A's {id}: {v}");
                }
                if key == "GET /v1/audit/export" {
                    let r = reqwest::Client::new()
                        .get(&u)
                        .bearer_auth(&b)
                        .send()
                        .await
                        .unwrap();
                    let text = r.text().await.unwrap();
                    assert!(!text.contains(&msg) && !text.contains(&a_id), "{text}");
                }
            }
            // B's writes are B's own: from A's sender refused; the rest change only B.
            "POST /v1/messages" => {
                let (s, v, _) =
                    as_b(Some(json!({"to": CUSTOMER, "from": SENDER, "text": "x"}))).await;
                assert_eq!(
                    (s, v["error"]["field"].as_str()),
                    (403, Some("from")),
                    "{key}"
                );
            }
            "POST /v1/messages/batch" => {
                let body = json!({"messages": [{"to": CUSTOMER, "from": SENDER, "text": "x"}]});
                let (s, v, _) = as_b(Some(body)).await;
                assert_eq!(
                    (s, v["results"][0]["error"]["code"].as_str()),
                    (400, Some("forbidden")),
                    "{key}"
                );
            }
            "POST /v1/hooks" => {
                let body = json!({"name": "b", "recipients": [CUSTOMER], "from": SENDER});
                assert_eq!(as_b(Some(body)).await.0, 403, "{key}");
            }
            "POST /v1/opt-outs" => {
                assert_eq!(
                    as_b(Some(json!({"recipient": "+447911123000"}))).await.0,
                    201,
                    "{key}"
                );
            }
            "DELETE /v1/opt-outs/{recipient}" => {
                // B's own (just made): A's stays.
                assert_eq!(as_b(None).await.0, 204, "{key}");
                assert_eq!(as_b(None).await.0, 404, "{key}: A's is not B's to remove");
            }
            "POST /v1/templates" => {
                let body = json!({"id": "b_tpl", "variants": {"en": {"text": "B's"}}});
                assert_eq!(as_b(Some(body)).await.0, 201, "{key}");
            }
            "PUT /v1/templates/{id}" => {
                // An upsert in B's own namespace (A's template of that id untouched);
                // removed again, so B's DELETE below finds nothing of that id.
                let body = json!({"variants": {"en": {"text": "B's again"}}});
                let (s, _, _) = as_b(Some(body)).await;
                assert!(matches!(s, 200 | 201), "{key}: {s}");
                assert_eq!(call(Method::DELETE, &u, &b, None).await.0, 204);
            }
            "POST /v1/webhook-endpoints" => {
                let body = json!({"url": "http://127.0.0.1:9/b", "events": ["*"]});
                assert_eq!(as_b(Some(body)).await.0, 201, "{key}");
            }
            "POST /v1/webhook-secret" | "POST /v1/audit/checkpoints" => {
                let (s, _, _) = as_b(None).await;
                assert!(matches!(s, 200 | 201 | 404), "{key}: {s}");
            }
            "POST /v1/devices" => {
                // B registers a device for A's app user: B's own, A's stays as it was
                // (the snapshot below).
                hermod_sim::device::DeviceSim::register(
                    &base,
                    &b,
                    APP_USER,
                    Aead::ChaCha20Poly1305,
                )
                .await
                .unwrap();
            }
            "PUT /v1/tenant/retention" => {
                assert_eq!(as_b(Some(json!({"days": 1}))).await.0, 200, "{key}");
            }
            "PUT /v1/tenant/defaults" => {
                assert_eq!(
                    as_b(Some(json!({"channels": ["rcs"]}))).await.0,
                    200,
                    "{key}"
                );
            }
            "DELETE /v1/subjects/{number}" => {
                // B erases what B holds of the number; A's message keeps its text.
                assert_eq!(as_b(None).await.0, 200, "{key}");
            }
            _ => panic!("{key}: no isolation case (add one to tests/e2e/isolation.rs)"),
        }
    }

    // --- A is as it was.
    let after = snapshot(&base, &a, &msg, "a_tpl").await;
    for ((path, x), (_, y)) in before.iter().zip(&after) {
        assert_eq!(x, y, "{path} changed");
    }
    assert!(
        has(&after[0].1, "A's secret order"),
        "A's text survives B's erasure"
    );
    let (_, audit_after, _) = call(Method::GET, &url("/v1/audit/verify"), &a, None).await;
    assert_eq!(
        audit_before["entries"], audit_after["entries"],
        "A's audit chain"
    );
    smsc.stop();
}
