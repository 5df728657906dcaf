//! The administration API: tenant keys with roles (`/v1/keys`), the role each route
//! needs (one table, walked here), and the operator's tenants (`/v1/admin/tenants`).

use std::time::Duration;

use hermod_api::Access;
use hermod_core::tenant::Role;
use hermod_sim::smsc::SmscConfig;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{
    ADMIN_TOKEN, Server, call, create_key_with_tenant, free_port, get_text, start_smsc,
};

const SENDER: &str = "+447700900123";
const CUSTOMER: &str = "+447911123456";

/// The role every tenant route needs, written out: a route whose role changes, or a
/// new route, fails here until this list says so.
fn expected(method: &str, path: &str) -> Access {
    use Access::*;
    let read = Tenant(Role::Read);
    let send = Tenant(Role::Send);
    let admin = Tenant(Role::Admin);
    match (method, path) {
        ("GET", "/healthz" | "/openapi.json" | "/v1/audit/public-key") => Public,
        ("POST", "/v1/webhooks/{provider}/{name}" | "/v1/hooks/{id}") => Public,
        ("GET", "/v1/app/inbox" | "/v1/app/stream") | ("POST", "/v1/app/receipts") => Device,
        (_, "/metrics" | "/v1/connectors") => Operator,
        (_, p) if p.starts_with("/v1/admin/") => Operator,
        ("GET", p) if p.starts_with("/2010-04-01/") => Twilio(Role::Read),
        ("POST", "/2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers/{Sid}.json") => {
            Twilio(Role::Admin)
        }
        (_, p) if p.starts_with("/2010-04-01/") => Twilio(Role::Send),
        ("GET", "/v1/twilio/account") => read,
        ("POST", "/v1/messages" | "/v1/messages/batch") => send,
        ("DELETE", "/v1/messages/{id}") => send,
        ("POST", "/v1/inbound/{id}/read" | "/v1/inbound/{id}/typing") => send,
        ("POST", "/v1/templates/{id}/preview") => read,
        ("GET", _) if !path.starts_with("/v1/keys") && path != "/v1/audit/export" => read,
        _ => admin,
    }
}

#[test]
fn every_route_needs_the_role_the_table_says() {
    let table = hermod_api::route_table();
    let mut tenant_routes = 0;
    for (method, path, access) in &table {
        assert_eq!(*access, expected(method, path), "{method} {path}");
        tenant_routes += usize::from(matches!(access, Access::Tenant(_)));
    }
    assert!(tenant_routes >= 40, "{tenant_routes} tenant routes");
    // The document says the same, for each operation.
    let doc: Value = serde_json::from_str(&hermod_api::openapi::document()).unwrap();
    for (method, path, access) in &table {
        let op = &doc["paths"][path][method.to_ascii_lowercase()];
        assert_eq!(op["x-hermod-access"], access.as_str(), "{method} {path}");
    }
}

/// A key of `role` for the tenant of the admin key `admin`.
async fn key_of(base: &str, admin: &str, role: &str) -> (String, String) {
    let (s, v, _) = call(
        Method::POST,
        &format!("{base}/v1/keys"),
        admin,
        Some(json!({"name": format!("{role} key"), "role": role})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["role"], role);
    (
        v["id"].as_str().unwrap().to_owned(),
        v["key"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_have_roles_and_every_route_checks_them() {
    let smsc = start_smsc(SmscConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let (tenant_id, admin) = create_key_with_tenant(dir.path(), "shop");
    let server = Server::start(dir.path(), &smsc.url("hermod", "pw"), free_port());
    server.wait_healthy().await;
    let base = server.base.clone();
    let (s, _, _) = call(
        Method::POST,
        &format!("{base}/v1/admin/senders"),
        ADMIN_TOKEN,
        Some(json!({"sender": SENDER, "tenant_id": tenant_id, "default": true})),
    )
    .await;
    assert_eq!(s, 201);

    let (read_id, read) = key_of(&base, &admin, "read").await;
    let (_, send) = key_of(&base, &admin, "send").await;

    // The interface scripts rely on.
    let msg = json!({"to": CUSTOMER, "text": "hello", "channels": ["sms"]});
    let (s, v, _) = call(
        Method::POST,
        &format!("{base}/v1/messages"),
        &read,
        Some(msg.clone()),
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "{v}"
    );
    let (s, v, _) = call(
        Method::POST,
        &format!("{base}/v1/messages"),
        &send,
        Some(msg),
    )
    .await;
    assert_eq!(s, 202, "{v}");
    let id = v["id"].as_str().unwrap().to_owned();
    let (s, _, _) = call(
        Method::GET,
        &format!("{base}/v1/messages/{id}"),
        &read,
        None,
    )
    .await;
    assert_eq!(s, 200, "a read key reads");
    let (s, _, _) = call(
        Method::GET,
        &format!("{base}/v1/messages/{id}"),
        &send,
        None,
    )
    .await;
    assert_eq!(s, 200, "a send key reads its messages' status");

    // Every tenant route, with a key of each lesser role: 403 `forbidden` before
    // anything else is looked at (placeholders stay as they are).
    let mut checked = 0;
    for (method, path, access) in hermod_api::route_table() {
        let Access::Tenant(need) = access else {
            continue;
        };
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        let url = format!("{base}{path}");
        for (role, key) in [(Role::Read, &read), (Role::Send, &send)] {
            if role.allows(need) || path == "/v1/app/stream" {
                continue;
            }
            let r = reqwest::Client::new()
                .request(m.clone(), &url)
                .bearer_auth(key)
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            assert_eq!(
                (status, body["error"]["code"].as_str()),
                (403, Some("forbidden")),
                "{method} {path} with a {} key: {body}",
                role.as_str()
            );
            checked += 1;
        }
    }
    assert!(checked >= 40, "{checked} refusals checked");

    // Only an admin key manages keys; the list shows when each was last used.
    let (s, _, _) = call(Method::GET, &format!("{base}/v1/keys"), &send, None).await;
    assert_eq!(s, 403);
    let (s, v, _) = call(Method::GET, &format!("{base}/v1/keys"), &admin, None).await;
    assert_eq!(s, 200);
    let listed = v["data"].as_array().unwrap();
    assert_eq!(listed.len(), 3, "{v}");
    assert!(!v.to_string().contains(&read), "no secret in the list");
    let read_row = listed.iter().find(|k| k["id"] == read_id.as_str()).unwrap();
    assert!(read_row["last_used_at"].is_string(), "{read_row}");
    assert_eq!(read_row["name"], "read key");

    // Bad input names the field.
    for (body, field) in [
        (json!({"name": "x", "role": "owner"}), "role"),
        (json!({"name": "", "role": "read"}), "name"),
        (
            json!({"name": "x", "role": "read", "expires_at": "2001-01-01T00:00:00Z"}),
            "expires_at",
        ),
        (
            json!({"name": "x", "role": "read", "expires_at": "soon"}),
            "expires_at",
        ),
        (
            json!({"name": "x", "role": "read", "scope": "all"}),
            "scope",
        ),
    ] {
        let (s, v, _) = call(Method::POST, &format!("{base}/v1/keys"), &admin, Some(body)).await;
        assert_eq!((s, v["error"]["field"].as_str()), (400, Some(field)), "{v}");
    }

    // Rotate: the old secret stops at once, the new one works with the same role.
    let (s, v, _) = call(
        Method::POST,
        &format!("{base}/v1/keys/{read_id}/rotate"),
        &admin,
        None,
    )
    .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["role"], "read");
    let rotated = v["key"].as_str().unwrap().to_owned();
    let rotated_id = v["id"].as_str().unwrap().to_owned();
    assert_eq!(
        call(Method::GET, &format!("{base}/v1/messages"), &read, None)
            .await
            .0,
        401
    );
    assert_eq!(
        call(Method::GET, &format!("{base}/v1/messages"), &rotated, None)
            .await
            .0,
        200
    );
    // Revoke.
    let (s, _, _) = call(
        Method::DELETE,
        &format!("{base}/v1/keys/{rotated_id}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(s, 204);
    assert_eq!(
        call(Method::GET, &format!("{base}/v1/messages"), &rotated, None)
            .await
            .0,
        401
    );
    assert_eq!(
        call(
            Method::DELETE,
            &format!("{base}/v1/keys/{rotated_id}"),
            &admin,
            None
        )
        .await
        .0,
        404
    );

    // An expiring key works until it expires.
    let at = hermod_core::rfc3339(hermod_core::now_ms() + 4000);
    let (s, v, _) = call(
        Method::POST,
        &format!("{base}/v1/keys"),
        &admin,
        Some(json!({"name": "brief", "role": "read", "expires_at": at})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let brief = v["key"].as_str().unwrap().to_owned();
    assert_eq!(
        call(Method::GET, &format!("{base}/v1/messages"), &brief, None)
            .await
            .0,
        200
    );
    crate::support::eventually("the key to expire", Duration::from_secs(15), || async {
        call(Method::GET, &format!("{base}/v1/messages"), &brief, None)
            .await
            .0
            == 401
    })
    .await;
    assert!(
        hermod_core::now_ms() >= hermod_core::parse_rfc3339(&at).unwrap(),
        "not before its time"
    );

    // Key changes are audit facts.
    let export = get_text(&format!("{base}/v1/audit/export"), &admin).await;
    for fact in ["api_key.created", "api_key.rotated", "api_key.revoked"] {
        assert!(export.contains(fact), "{fact} not in the audit export");
    }
    assert!(
        export.contains("\"role\":\"read\""),
        "the role is in the fact"
    );
    let (_, v, _) = call(
        Method::GET,
        &format!("{base}/v1/audit/verify"),
        &admin,
        None,
    )
    .await;
    assert_eq!(v["ok"], true, "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_operator_administers_tenants() {
    let smsc = start_smsc(SmscConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let (_, other) = create_key_with_tenant(dir.path(), "other");
    let server = Server::start(dir.path(), &smsc.url("hermod", "pw"), free_port());
    server.wait_healthy().await;
    let base = server.base.clone();
    let admin = |m: Method, p: &str, b: Option<Value>| {
        let u = format!("{base}{p}");
        async move { call(m, &u, ADMIN_TOKEN, b).await }
    };

    // A tenant key is not the operator.
    let (s, _, _) = call(
        Method::GET,
        &format!("{base}/v1/admin/tenants"),
        &other,
        None,
    )
    .await;
    assert_eq!(s, 401);

    // Create, with limits and default channels.
    let body = json!({"name": "bakery", "rate_limit_per_sec": 50, "daily_quota": 3,
                      "channels": ["sms"], "retention_days": 30});
    let (s, t, _) = admin(Method::POST, "/v1/admin/tenants", Some(body.clone())).await;
    assert_eq!(s, 201, "{t}");
    let id = t["id"].as_str().unwrap().to_owned();
    assert_eq!(
        (
            t["name"].as_str(),
            t["rate_limit_per_sec"].as_f64(),
            t["daily_quota"].as_u64(),
            t["retention_days"].as_i64(),
            t["suspended"].as_bool()
        ),
        (Some("bakery"), Some(50.0), Some(3), Some(30), Some(false)),
        "{t}"
    );
    assert_eq!(t["channels"], json!(["sms"]));
    let (s, v, _) = admin(Method::POST, "/v1/admin/tenants", Some(body)).await;
    assert_eq!((s, v["error"]["code"].as_str()), (409, Some("conflict")));
    for (body, field) in [
        (json!({}), "name"),
        (json!({"name": "x", "channels": ["fax"]}), "channels[0]"),
        (json!({"name": "x", "daily_quota": 0}), "daily_quota"),
        (
            json!({"name": "x", "rate_limit_per_sec": -1}),
            "rate_limit_per_sec",
        ),
        (json!({"name": "x", "retention_days": 0}), "retention_days"),
        (json!({"name": "x", "colour": "red"}), "colour"),
    ] {
        let (s, v, _) = admin(Method::POST, "/v1/admin/tenants", Some(body)).await;
        assert_eq!((s, v["error"]["field"].as_str()), (400, Some(field)), "{v}");
    }

    // Its first key, from the operator; the key works for its tenant only.
    let (s, v, _) = admin(
        Method::POST,
        &format!("/v1/admin/tenants/{id}/keys"),
        Some(json!({"name": "owner", "role": "admin"})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["tenant_id"], id.as_str());
    let key = v["key"].as_str().unwrap().to_owned();
    let (s, v, _) = call(
        Method::GET,
        &format!("{base}/v1/tenant/defaults"),
        &key,
        None,
    )
    .await;
    assert_eq!((s, &v["channels"]), (200, &json!(["sms"])), "{v}");

    // The daily quota: three messages, then 429 quota_exceeded with Retry-After.
    let msg = json!({"to": CUSTOMER, "text": "bread is ready", "from": "Bakery"});
    let (s, _, _) = admin(
        Method::POST,
        "/v1/admin/senders",
        Some(json!({"sender": "Bakery", "tenant_id": id, "default": true})),
    )
    .await;
    assert_eq!(s, 201);
    for _ in 0..3 {
        let (s, v, _) = call(
            Method::POST,
            &format!("{base}/v1/messages"),
            &key,
            Some(msg.clone()),
        )
        .await;
        assert_eq!(s, 202, "{v}");
    }
    let (s, v, h) = call(
        Method::POST,
        &format!("{base}/v1/messages"),
        &key,
        Some(msg.clone()),
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (429, Some("quota_exceeded")),
        "{v}"
    );
    assert!(h.get("retry-after").is_some());

    // Lift the quota and lower the rate: the change applies at once.
    let (s, t, _) = admin(
        Method::PATCH,
        &format!("/v1/admin/tenants/{id}"),
        Some(json!({"daily_quota": null, "rate_limit_per_sec": 0.01})),
    )
    .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(
        (t["daily_quota"].is_null(), t["rate_limit_per_sec"].as_f64()),
        (true, Some(0.01))
    );
    assert_eq!(t["retention_days"], 30, "what the PATCH left out stays");
    assert_eq!(t["senders"], json!(["Bakery"]));
    // The bucket still holds the last messages' debt at the old rate (tens of ms).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (s, _, _) = call(
        Method::POST,
        &format!("{base}/v1/messages"),
        &key,
        Some(msg.clone()),
    )
    .await;
    assert_eq!(s, 202);
    let (s, v, _) = call(
        Method::POST,
        &format!("{base}/v1/messages"),
        &key,
        Some(msg.clone()),
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (429, Some("rate_limited")),
        "{v}"
    );

    // Suspend: every key of the tenant answers 403 tenant_suspended; resume.
    let (s, t, _) = admin(
        Method::PATCH,
        &format!("/v1/admin/tenants/{id}"),
        Some(json!({"suspended": true})),
    )
    .await;
    assert_eq!((s, t["suspended"].as_bool()), (200, Some(true)));
    let (s, v, _) = call(Method::GET, &format!("{base}/v1/messages"), &key, None).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (403, Some("tenant_suspended")),
        "{v}"
    );
    assert_eq!(
        call(Method::GET, &format!("{base}/v1/messages"), &other, None)
            .await
            .0,
        200,
        "other tenants go on"
    );
    let (s, _, _) = admin(
        Method::PATCH,
        &format!("/v1/admin/tenants/{id}"),
        Some(json!({"suspended": false})),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        call(Method::GET, &format!("{base}/v1/messages"), &key, None)
            .await
            .0,
        200
    );
    let (s, v, _) = admin(
        Method::PATCH,
        &format!("/v1/admin/tenants/{id}"),
        Some(json!({"name": "renamed"})),
    )
    .await;
    assert_eq!((s, v["error"]["field"].as_str()), (400, Some("name")));

    // Listed, one by one, and the audit chains verify (the changes are facts).
    let (s, v, _) = admin(Method::GET, "/v1/admin/tenants", None).await;
    assert_eq!(s, 200);
    let names: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["bakery", "other"]);
    let (s, v, _) = admin(Method::POST, "/v1/admin/audit/verify", None).await;
    assert_eq!((s, v["ok"].as_bool()), (200, Some(true)), "{v}");
    assert!(
        v["chains"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["tenant"] == id.as_str() && c["entries"].as_i64() > Some(3)),
        "{v}"
    );
    let export = get_text(&format!("{base}/v1/audit/export"), &key).await;
    for fact in [
        "tenant.created",
        "tenant.suspended",
        "tenant.resumed",
        "tenant.limits_set",
    ] {
        assert!(
            export.contains(fact),
            "{fact} not in the tenant's audit export"
        );
    }

    // Delete: its keys stop, it is gone from the list, the name is free again.
    let (s, _, _) = admin(Method::DELETE, &format!("/v1/admin/tenants/{id}"), None).await;
    assert_eq!(s, 204);
    assert_eq!(
        call(Method::GET, &format!("{base}/v1/messages"), &key, None)
            .await
            .0,
        401
    );
    assert_eq!(
        admin(Method::GET, &format!("/v1/admin/tenants/{id}"), None)
            .await
            .0,
        404
    );
    assert_eq!(
        admin(Method::DELETE, &format!("/v1/admin/tenants/{id}"), None)
            .await
            .0,
        404
    );
    let (s, _, _) = admin(
        Method::POST,
        "/v1/admin/tenants",
        Some(json!({"name": "bakery"})),
    )
    .await;
    assert_eq!(s, 201);

    // The operator's other routes keep working with the admin token.
    assert_eq!(admin(Method::GET, "/v1/connectors", None).await.0, 200);
    assert!(
        get_text(&format!("{base}/metrics"), ADMIN_TOKEN)
            .await
            .contains("hermod_api_quota_exceeded_total")
    );
}
