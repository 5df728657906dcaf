//! The console over HTTP: sign-in, the session cookie, CSRF on every form, roles,
//! sign-out, the operator's pages, and that no page shows another tenant's data (every
//! console route is walked). The same flows in a real browser: `browser.rs`.

use std::time::Duration;

use hermod_sim::smsc::SmscConfig;
use reqwest::Method;
use serde_json::json;

use crate::support::{
    ADMIN_TOKEN, Server, call, create_key_with_tenant, free_port, send_message, start_smsc,
    wait_status,
};

const SENDER: &str = "+447700900123";
const CUSTOMER: &str = "+447911123456";

/// A console session: its cookie and CSRF token.
pub struct Session {
    base: String,
    cookie: String,
    pub csrf: String,
    http: reqwest::Client,
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// `a=1&b=2`, percent-encoded.
pub fn urlencoded(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The value of `data-csrf` on a page.
pub fn csrf(html: &str) -> String {
    let at = html.find("data-csrf=\"").expect("a console page") + "data-csrf=\"".len();
    html[at..].split('"').next().unwrap().to_owned()
}

impl Session {
    /// Signs in with a form field (`key` or `token`); panics unless it works.
    pub async fn sign_in(base: &str, field: &str, secret: &str) -> Session {
        let http = client();
        let r = http
            .post(format!("{base}/console/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(urlencoded(&[(field, secret)]))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "sign-in");
        let set = r.headers()["set-cookie"].to_str().unwrap().to_owned();
        for attr in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
            assert!(set.contains(attr), "cookie without {attr}: {set}");
        }
        let cookie = set.split(';').next().unwrap().to_owned();
        let mut s = Session {
            base: base.to_owned(),
            cookie,
            csrf: String::new(),
            http,
        };
        let (status, page) = s.get("/console/overview").await;
        assert_eq!(status, 200, "{page}");
        s.csrf = csrf(&page);
        s
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// A form post: `(status, Location, body)`.
    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> (u16, String, String) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(urlencoded(form))
            .send()
            .await
            .unwrap();
        let loc = r
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (r.status().as_u16(), loc, r.text().await.unwrap())
    }
}

/// Every console GET page, with `{id}` replaced.
fn pages(message: &str) -> Vec<String> {
    hermod_api::console::route_table()
        .into_iter()
        .filter(|(m, p)| m == "GET" && !p.contains("/assets/") && p != "/console/login")
        .map(|(_, p)| p.replace("{id}", message))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn console_sessions_roles_csrf_and_tenant_isolation() {
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
    let (s, _, _) = call(
        Method::POST,
        &format!("{base}/v1/admin/senders"),
        ADMIN_TOKEN,
        Some(json!({"sender": SENDER, "tenant_id": a_id, "default": true})),
    )
    .await;
    assert_eq!(s, 201);

    // Not signed in: every page sends to the sign-in page; a bad key is refused.
    let http = client();
    for p in pages("msg_0") {
        let r = http.get(format!("{base}{p}")).send().await.unwrap();
        assert_eq!(r.status(), 303, "{p}");
        assert_eq!(r.headers()["location"], "/console/login", "{p}");
    }
    let r = http
        .post(format!("{base}/console/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(urlencoded(&[("key", "hmk_0000000000000000_nope")]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("not valid"));
    // A sign-in posted from another site is refused.
    let r = http
        .post(format!("{base}/console/login"))
        .header("origin", "https://evil.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(urlencoded(&[("key", a.as_str())]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // A sends from the console; the message goes to delivered.
    let sa = Session::sign_in(&base, "key", &a).await;
    let (s, loc, _) = sa
        .post(
            "/console/messages",
            &[
                ("csrf", &sa.csrf),
                ("to", CUSTOMER),
                ("text", "A's secret order"),
                ("channels", "sms"),
            ],
        )
        .await;
    assert_eq!(s, 303);
    let msg = loc
        .strip_prefix("/console/messages/")
        .and_then(|l| l.split('?').next())
        .unwrap()
        .to_owned();
    wait_status(&base, &a, &msg, "delivered", 20).await;
    let (s, page) = sa.get(&format!("/console/messages/{msg}")).await;
    assert_eq!(s, 200);
    for part in [
        "id=\"status\">delivered",
        "id=\"timeline\"",
        "id=\"attempts\"",
        "A&#39;s secret order",
    ] {
        assert!(
            page.contains(part) || page.contains(&part.replace("&#39;", "'")),
            "{part} not on the message page"
        );
    }
    // Search by exact number, status, channel and metadata key.
    let (_, m2) = send_message(
        &base,
        &a,
        json!({"to": "+447911123457", "text": "tagged", "metadata": {"order_100%": 1}}),
    )
    .await;
    let m2 = m2["id"].as_str().unwrap().to_owned();
    for (q, with, without) in [
        ("to=%2B447911123456".to_owned(), &msg, &m2),
        ("metadata=order_100%25".to_owned(), &m2, &msg),
        ("status=delivered&channel=sms".to_owned(), &msg, &m2),
    ] {
        let (s, page) = sa.get(&format!("/console/messages?{q}")).await;
        assert_eq!(s, 200, "{q}");
        assert!(
            page.contains(with.as_str()) && !page.contains(without.as_str()),
            "{q}"
        );
    }
    let (_, page) = sa.get("/console/messages?metadata=order_1__%25").await;
    assert!(!page.contains(&m2), "LIKE wildcards are literal");
    let (_, page) = sa.get("/console/messages?to=nonsense").await;
    assert!(page.contains("flash error"), "a bad filter is said");

    // CSRF: a form without the session's token is refused and does nothing.
    let (s, _, _) = sa
        .post(
            "/console/messages",
            &[("csrf", "forged"), ("to", CUSTOMER), ("text", "x")],
        )
        .await;
    assert_eq!(s, 403);
    let (s, _, _) = sa.post("/console/logout", &[]).await;
    assert!(matches!(s, 400 | 403), "logout without its token: {s}");

    // A read key: can look, cannot send (the form is gone, a forged post is refused).
    let (s, v, _) = call(
        Method::POST,
        &format!("{base}/v1/keys"),
        &a,
        Some(json!({"name": "viewer", "role": "read"})),
    )
    .await;
    assert_eq!(s, 201);
    let reader = Session::sign_in(&base, "key", v["key"].as_str().unwrap()).await;
    let (_, page) = reader.get("/console/messages").await;
    assert!(page.contains("id=\"cannot-send\"") && !page.contains("id=\"send\""));
    assert!(page.contains(&msg), "a read key sees the tenant's messages");
    let (s, loc, _) = reader
        .post(
            "/console/messages",
            &[("csrf", &reader.csrf), ("to", CUSTOMER), ("text", "x")],
        )
        .await;
    assert_eq!(s, 303);
    assert!(loc.contains("error=") && loc.contains("role"), "{loc}");
    let (_, page) = reader.get("/console/keys").await;
    assert!(page.contains("keys-forbidden"));
    let (s, loc, _) = reader
        .post(
            "/console/keys",
            &[("csrf", &reader.csrf), ("name", "x"), ("role", "admin")],
        )
        .await;
    assert!(
        s == 303 && loc.contains("error="),
        "a read key makes no keys"
    );

    // An admin session makes a key (the secret shown once) and revokes it.
    let (s, _, page) = sa
        .post(
            "/console/keys",
            &[("csrf", &sa.csrf), ("name", "ci"), ("role", "send")],
        )
        .await;
    assert_eq!(s, 200);
    assert!(page.contains("id=\"new-secret\">hmk_"));
    let (_, keys, _) = call(Method::GET, &format!("{base}/v1/keys"), &a, None).await;
    let ci = keys["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "ci")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, loc, _) = sa
        .post(&format!("/console/keys/{ci}/revoke"), &[("csrf", &sa.csrf)])
        .await;
    assert_eq!((s, loc.contains("revoked")), (303, true), "{loc}");

    // B's session: nothing of A's anywhere; A's message is not found.
    let sb = Session::sign_in(&base, "key", &b).await;
    let a_key_id = a.split('_').nth(1).unwrap();
    for p in pages(&msg) {
        let (s, page) = sb.get(&p).await;
        if p.contains(&msg) || p == "/console/tenants" || p == "/console/operations" {
            // A's message; the operator's pages.
            assert_eq!(s, 404, "{p}");
        } else if p == "/console" {
            assert_eq!(s, 303, "{p}");
        } else {
            assert_eq!(s, 200, "{p}: {page}");
        }
        for secret in [
            msg.as_str(),
            &m2,
            "A&#39;s secret order",
            "A's secret order",
            CUSTOMER,
            a_id.as_str(),
            a_key_id,
            SENDER,
        ] {
            assert!(!page.contains(secret), "{p} shows A's {secret}");
        }
    }
    let (s, _, _) = sb
        .post(
            &format!("/console/messages/{msg}/cancel"),
            &[("csrf", &sb.csrf)],
        )
        .await;
    assert_eq!(s, 404);
    let (s, _, _) = sb
        .post(
            &format!("/console/keys/{a_key_id}/revoke"),
            &[("csrf", &sb.csrf)],
        )
        .await;
    assert_eq!(s, 404);
    // A tenant is no operator.
    let (s, _) = sb.get("/console/tenants").await;
    assert_eq!(s, 404);

    // Sign-out ends the session: the old cookie no longer opens a page.
    let (s, loc, _) = sb.post("/console/logout", &[("csrf", &sb.csrf)]).await;
    assert_eq!((s, loc.as_str()), (303, "/console/login"));
    let (s, _) = sb.get("/console/messages").await;
    assert_eq!(s, 303);
    // Revoking a key ends its sessions too.
    let (s, v, _) = call(
        Method::POST,
        &format!("{base}/v1/keys"),
        &a,
        Some(json!({"name": "temp", "role": "admin"})),
    )
    .await;
    assert_eq!(s, 201);
    let temp = Session::sign_in(&base, "key", v["key"].as_str().unwrap()).await;
    let temp_id = v["id"].as_str().unwrap();
    assert_eq!(
        call(
            Method::DELETE,
            &format!("{base}/v1/keys/{temp_id}"),
            &a,
            None
        )
        .await
        .0,
        204
    );
    assert_eq!(temp.get("/console/messages").await.0, 303);

    // The operator: every tenant, creating one (its admin key shown once), suspending.
    let op = Session::sign_in(&base, "token", ADMIN_TOKEN).await;
    let (s, page) = op.get("/console/tenants").await;
    assert_eq!(s, 200);
    assert!(page.contains("tenant-a") && page.contains("tenant-b"));
    for p in [
        "/console/overview",
        "/console/channels",
        "/console/operations",
        "/console/audit?verify=1",
    ] {
        let (s, page) = op.get(p).await;
        assert_eq!(s, 200, "{p}: {page}");
    }
    let (_, page) = op.get("/console/audit?verify=1").await;
    assert!(page.contains("Every chain verifies."), "{page}");
    let (s, _, page) = op
        .post(
            "/console/tenants",
            &[
                ("csrf", &op.csrf),
                ("name", "tenant-c"),
                ("daily_quota", "10"),
            ],
        )
        .await;
    assert_eq!(s, 200, "{page}");
    let at = page.find("id=\"new-secret\">").unwrap() + "id=\"new-secret\">".len();
    let c_key = page[at..].split('<').next().unwrap().to_owned();
    assert_eq!(
        call(Method::GET, &format!("{base}/v1/messages"), &c_key, None)
            .await
            .0,
        200
    );
    let (_, v, _) = call(
        Method::GET,
        &format!("{base}/v1/admin/tenants"),
        ADMIN_TOKEN,
        None,
    )
    .await;
    let c_id = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "tenant-c")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, loc, _) = op
        .post(
            &format!("/console/tenants/{c_id}"),
            &[("csrf", &op.csrf), ("action", "suspend")],
        )
        .await;
    assert_eq!((s, loc.contains("suspended")), (303, true), "{loc}");
    let (s, v, _) = call(Method::GET, &format!("{base}/v1/messages"), &c_key, None).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (403, Some("tenant_suspended"))
    );
    // The operator's pages are not a tenant's.
    let (s, _) = op.get("/console/keys").await;
    assert_eq!(s, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_console_sign_ins_are_throttled() {
    let smsc = start_smsc(SmscConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let (_, key) = create_key_with_tenant(dir.path(), "shop");
    let server = Server::start(dir.path(), &smsc.url("hermod", "pw"), free_port());
    server.wait_healthy().await;
    let base = server.base.clone();
    let http = client();
    let sign_in = |field: &'static str, secret: String| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            http.post(format!("{base}/console/login"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(urlencoded(&[(field, &secret)]))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    // A good sign-in costs nothing.
    for _ in 0..12 {
        assert_eq!(sign_in("key", key.clone()).await, 303);
    }
    // Ten wrong guesses (keys or the admin token), then the address waits — even with
    // the right key.
    for i in 0..10 {
        let (field, guess) = if i % 2 == 0 {
            ("key", format!("hmk_{:016x}_guess{i}", i))
        } else {
            ("token", format!("guess{i}"))
        };
        assert_eq!(sign_in(field, guess).await, 401, "guess {i}");
    }
    assert_eq!(sign_in("token", "guess".into()).await, 429);
    assert_eq!(sign_in("key", key.clone()).await, 429);
    // The API itself is not throttled by it.
    assert_eq!(
        call(Method::GET, &format!("{base}/v1/messages"), &key, None)
            .await
            .0,
        200
    );
}
