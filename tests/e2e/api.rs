//! The HTTP API of the real binary, against the SMSC simulator.

use std::time::Duration;

use hermod_sim::smsc::SmscConfig;
use serde_json::{Value, json};

use crate::support::{
    HAPPY_PATH, Server, call, checked, create_key, eventually, free_port, start_smsc,
};

async fn get(base: &str, key: &str, path: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let (s, v, _) = checked("GET", &format!("{base}{path}"), r).await;
    (s, v)
}

async fn post(base: &str, key: &str, path: &str, body: &str, idem: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(k) = idem {
        req = req.header("Idempotency-Key", k);
    }
    let r = req.send().await.unwrap();
    let (s, v, _) = checked("POST", &format!("{base}{path}"), r).await;
    (s, v)
}

#[tokio::test(flavor = "multi_thread")]
async fn message_goes_from_accepted_to_delivered_and_the_api_behaves() {
    let smsc = start_smsc(SmscConfig {
        credentials: Some(("hermod".into(), "pw".into())),
        undeliverable_prefix: Some("4479000".into()),
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let key = create_key(dir.path(), "acme");
    let other = create_key(dir.path(), "globex");
    let server = Server::start(dir.path(), &smsc.url("hermod", "pw"), free_port());
    server.wait_healthy().await;
    let base = server.base.clone();

    // Auth.
    let (s, v) = post(
        &base,
        "hmk_0000000000000000_nope",
        "/v1/messages",
        "{}",
        None,
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );

    // Validation names the field, whichever field it is.
    let cases = [
        (r#"{"to":"07911","text":"x"}"#, "invalid_field", "to"),
        (
            r#"{"to":"+447911123456","text":"x","colour":"red"}"#,
            "unknown_field",
            "colour",
        ),
        (
            r#"{"to":"+447911123456","text":""}"#,
            "invalid_field",
            "text",
        ),
        (
            r#"{"to":"+447911123456","text":"x","channels":["fax"]}"#,
            "invalid_field",
            "channels[0]",
        ),
        (
            r#"{"to":"+447911123456","text":"x","from":"a sender that is too long"}"#,
            "invalid_field",
            "from",
        ),
        (
            r#"{"to":"+447911123456","text":"x","ttl":0}"#,
            "invalid_field",
            "ttl",
        ),
        (
            r#"{"to":"+447911123456","text":"x","metadata":[1]}"#,
            "invalid_field",
            "metadata",
        ),
        (
            r#"{"to":"+447911123456","text":"x","callback_url":"ftp://x"}"#,
            "invalid_field",
            "callback_url",
        ),
        (
            r#"{"to":"+447911123456","text":5}"#,
            "invalid_field",
            "text",
        ),
        (r#"{"text":"x"}"#, "invalid_field", "to"),
    ];
    for (body, code, field) in cases {
        let (s, v) = post(&base, &key, "/v1/messages", body, None).await;
        assert_eq!(
            (s, v["error"]["code"].as_str(), v["error"]["field"].as_str()),
            (400, Some(code), Some(field)),
            "{body}"
        );
    }
    // A field inside an object is named by its whole path, a missing one included.
    for (body, code, field) in [
        (
            r#"{"quiet_hours":{"start":"22:00"}}"#,
            "invalid_field",
            "quiet_hours.end",
        ),
        (
            r#"{"quiet_hours":{"start":"22:00","end":"07:00","zone":"UTC"}}"#,
            "unknown_field",
            "quiet_hours.zone",
        ),
        (
            r#"{"quiet_hours":{"start":"25:00","end":"07:00"}}"#,
            "invalid_field",
            "quiet_hours.start",
        ),
        (r#"{"quiet_hours":7}"#, "invalid_field", "quiet_hours"),
    ] {
        let put = Some(serde_json::from_str(body).unwrap());
        let url = format!("{base}/v1/tenant/defaults");
        let (s, v, _) = call(reqwest::Method::PUT, &url, &key, put).await;
        assert_eq!(
            (s, v["error"]["code"].as_str(), v["error"]["field"].as_str()),
            (400, Some(code), Some(field)),
            "{body}: {v}"
        );
    }
    // A path that exists for other methods is a 405 naming them; an unknown one a 404.
    let url = format!("{base}/v1/messages");
    let (s, v, headers) = call(reqwest::Method::PUT, &url, &key, None).await;
    assert_eq!(s, 405);
    let mut allow: Vec<&str> = headers["allow"].to_str().unwrap().split(", ").collect();
    allow.sort();
    assert_eq!(allow, ["GET", "POST"]);
    assert_eq!(v["error"]["code"], "method_not_allowed", "{v}");
    let (s, v) = post(&base, &key, "/v1/messages/abc", "{}", None).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (405, Some("method_not_allowed"))
    );
    let (s, v) = get(&base, &key, "/v1/nothing-here").await;
    assert_eq!((s, v["error"]["code"].as_str()), (404, Some("not_found")));

    // A message to delivered, with a multipart text (one DLR per part folded into one).
    let long = format!("{} €", "Your order has shipped. ".repeat(8));
    let body =
        json!({"to": "+447911123456", "text": long, "metadata": {"order": "A-1"}}).to_string();
    let (s, v) = post(&base, &key, "/v1/messages", &body, Some("order-A-1")).await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["status"], "accepted");
    let id = v["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/messages/{id}");
    eventually("delivered", Duration::from_secs(20), || async {
        get(&base, &key, &path).await.1["status"] == "delivered"
    })
    .await;
    let (_, v) = get(&base, &key, &path).await;
    let kinds: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, HAPPY_PATH);
    assert_eq!(v["attempts"][0]["parts"], 2);
    assert_eq!(
        v["attempts"][0]["provider_ids"].as_array().unwrap().len(),
        2
    );
    assert_eq!(v["attempts"][0]["raw_status"], "DELIVRD");
    assert_eq!(v["metadata"]["order"], "A-1");
    // What the SMSC saw: two UDH parts, GSM with the euro escape kept whole.
    let parts: Vec<_> = smsc
        .submitted()
        .into_iter()
        .filter(|s| s.destination == "447911123456")
        .collect();
    assert_eq!(parts.len(), 2);
    assert!(
        parts
            .iter()
            .all(|p| p.esm_class & 0x40 != 0 && p.short_message[..3] == [0x05, 0x00, 0x03])
    );
    assert!(
        parts
            .iter()
            .all(|p| p.data_coding == 0 && p.user_ref.is_some())
    );

    // Idempotency: a replay returns the original; another body with the key is 422.
    let (s, v) = post(&base, &key, "/v1/messages", &body, Some("order-A-1")).await;
    assert_eq!((s, v["id"].as_str()), (202, Some(id.as_str())));
    let (s, v) = post(
        &base,
        &key,
        "/v1/messages",
        r#"{"to":"+447911123456","text":"other"}"#,
        Some("order-A-1"),
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (422, Some("idempotency_key_reused"))
    );

    // Concurrent requests with one key (committed together or not) create one message.
    let same = r#"{"to":"+447911999999","text":"only once"}"#;
    let replies = futures::future::join_all(
        (0..16).map(|_| post(&base, &key, "/v1/messages", same, Some("burst-1"))),
    )
    .await;
    let ids: std::collections::HashSet<_> = replies
        .iter()
        .map(|(s, v)| {
            assert_eq!(*s, 202, "{v}");
            v["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1, "one message for one key: {ids:?}");
    let (_, v) = get(&base, &key, "/v1/messages?to=%2B447911999999").await;
    assert_eq!(v["data"].as_array().unwrap().len(), 1);

    // Tenant isolation: the other tenant cannot see it.
    assert_eq!(get(&base, &other, &path).await.0, 404);

    // An UNDELIV receipt fails the message, with the raw status kept.
    let (_, v) = post(
        &base,
        &key,
        "/v1/messages",
        r#"{"to":"+447900012345","text":"hi"}"#,
        None,
    )
    .await;
    let path2 = format!("/v1/messages/{}", v["id"].as_str().unwrap());
    eventually("failed", Duration::from_secs(20), || async {
        get(&base, &key, &path2).await.1["status"] == "failed"
    })
    .await;
    let (_, v) = get(&base, &key, &path2).await;
    assert_eq!(v["attempts"][0]["raw_status"], "UNDELIV");
    assert_eq!(v["attempts"][0]["error"]["permanent"], true);

    // Batch: per-item errors, valid ones stored.
    let batch = json!({"messages": [
        {"to": "+447911000001", "text": "a"},
        {"to": "bad", "text": "b"},
        {"to": "+447911000003", "text": "c", "oops": true}
    ]})
    .to_string();
    let (s, v) = post(&base, &key, "/v1/messages/batch", &batch, None).await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(
        (v["accepted"].as_u64(), v["rejected"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(v["results"][1]["error"]["field"], "messages[1].to");
    assert_eq!(v["results"][2]["error"]["field"], "messages[2].oops");

    // Listing: filters and cursor.
    let (s, v) = get(&base, &key, "/v1/messages?limit=2").await;
    assert_eq!(s, 200);
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    let cursor = v["next_cursor"].as_str().unwrap().to_owned();
    let (_, v2) = get(
        &base,
        &key,
        &format!("/v1/messages?limit=2&cursor={cursor}"),
    )
    .await;
    // Four messages in all: two per page, newest first, no overlap.
    assert_eq!(v2["data"].as_array().unwrap().len(), 2);
    assert_ne!(v2["data"][0]["id"], v["data"][1]["id"]);
    let (_, v) = get(&base, &key, "/v1/messages?to=%2B447900012345").await;
    assert_eq!(v["data"][0]["status"], "failed");
    let (s, v) = get(&base, &key, "/v1/messages?colour=red").await;
    assert_eq!((s, v["error"]["field"].as_str()), (400, Some("colour")));
    crate::rcs::rcs_is_refused_when_not_configured(&base, &key).await;
    assert_eq!(
        get(&base, &other, "/v1/messages").await.1["data"]
            .as_array()
            .unwrap()
            .len(),
        0
    );

    // Observability.
    // The operator's: a tenant key cannot read them.
    let r = reqwest::Client::new()
        .get(format!("{base}/metrics"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let metrics =
        crate::support::get_text(&format!("{base}/metrics"), crate::support::ADMIN_TOKEN).await;
    assert!(
        metrics.contains("hermod_messages_total{stage=\"api\",status=\"accepted\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hermod_smpp_submit_seconds_bucket"),
        "{metrics}"
    );
    let doc: Value = reqwest::get(format!("{base}/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(doc["paths"]["/v1/messages"]["post"].is_object());
    smsc.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn throttling_and_dropped_connections_delay_but_never_lose() {
    throttled_and_dropped(SmscConfig {
        throttle_share: 0.3,
        ..Default::default()
    })
    .await
    .stop();
}

/// An SMSC that echoes no reference and drops the connection on every 15th submit,
/// losing the responses it had not written: each message still reaches it once.
#[tokio::test(flavor = "multi_thread")]
async fn an_smsc_that_drops_and_echoes_no_reference_gets_each_message_once() {
    let cfg = SmscConfig {
        throttle_share: 0.3,
        ..SmscConfig::like_real_smsc(15)
    };
    let smsc = throttled_and_dropped(cfg).await;
    assert!(smsc.dropped_count() >= 2, "{} drops", smsc.dropped_count());
    smsc.stop();
}

async fn throttled_and_dropped(cfg: SmscConfig) -> hermod_sim::smsc::Smsc {
    let smsc = start_smsc(cfg).await;
    let dir = tempfile::tempdir().unwrap();
    let key = create_key(dir.path(), "acme");
    let server = Server::start(dir.path(), &smsc.url("hermod", "x"), free_port());
    server.wait_healthy().await;
    let msgs: Vec<Value> = (0..40)
        .map(|i| json!({"to": format!("+4479111{i:05}"), "text": format!("t{i}")}))
        .collect();
    let (s, _) = post(
        &server.base,
        &key,
        "/v1/messages/batch",
        &json!({"messages": msgs}).to_string(),
        None,
    )
    .await;
    assert_eq!(s, 202);
    smsc.drop_connections();
    let base = server.base.clone();
    // Generous: a submit in doubt before the connector has timed eight receipts waits
    // the whole grace (30 s), and a drop can come again while it does.
    eventually("all 40 delivered", Duration::from_secs(180), || async {
        get(&base, &key, "/v1/messages?status=delivered&limit=100")
            .await
            .1["data"]
            .as_array()
            .map_or(0, Vec::len)
            == 40
    })
    .await;
    assert!(
        smsc.throttled_count() > 0,
        "the simulator throttled some submits"
    );
    assert_exactly_once(&smsc, 40);
    smsc
}

/// The SMSC accepts submits but the responses are lost with the connection: those
/// submits are in doubt, resolved by their receipts, and never sent a second time.
#[tokio::test(flavor = "multi_thread")]
async fn lost_submit_responses_are_resolved_not_resent() {
    lost_responses(SmscConfig::default()).await;
}

/// The same when the receipts echo no reference: matched by recipient, date, text.
#[tokio::test(flavor = "multi_thread")]
async fn lost_submit_responses_are_recognised_without_a_reference() {
    lost_responses(SmscConfig::like_real_smsc(0)).await;
}

async fn lost_responses(cfg: SmscConfig) {
    let smsc = start_smsc(cfg).await;
    smsc.lose_next_responses(3);
    let dir = tempfile::tempdir().unwrap();
    let key = create_key(dir.path(), "acme");
    let server = Server::start(dir.path(), &smsc.url("hermod", "x"), free_port());
    server.wait_healthy().await;
    let msgs: Vec<Value> = (0..10)
        .map(|i| json!({"to": format!("+4479333{i:05}"), "text": format!("lost {i}")}))
        .collect();
    let body = json!({"messages": msgs}).to_string();
    let (s, _) = post(&server.base, &key, "/v1/messages/batch", &body, None).await;
    assert_eq!(s, 202);
    let base = server.base.clone();
    eventually("all 10 delivered", Duration::from_secs(60), || async {
        get(&base, &key, "/v1/messages?status=delivered&limit=100")
            .await
            .1["data"]
            .as_array()
            .map_or(0, Vec::len)
            == 10
    })
    .await;
    assert_exactly_once(&smsc, 10);
    smsc.stop();
}

/// Every destination reached the SMSC once and only once.
fn assert_exactly_once(smsc: &hermod_sim::smsc::Smsc, n: usize) {
    let mut per_dest = std::collections::HashMap::<String, usize>::new();
    for s in smsc.submitted() {
        *per_dest.entry(s.destination).or_default() += 1;
    }
    assert_eq!(per_dest.len(), n, "every message reached the SMSC");
    let dups: Vec<_> = per_dest.iter().filter(|(_, c)| **c > 1).collect();
    assert!(dups.is_empty(), "submitted more than once: {dups:?}");
}

/// Key files are the operator's alone (0600, checked on every start), and the API-key
/// pepper is never empty: generated when embedded, required with PostgreSQL.
#[tokio::test(flavor = "multi_thread")]
async fn key_files_must_be_private_and_the_pepper_is_never_empty() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let hermod = |envs: &[(&str, &str)]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_hermod"))
            .args(["keys", "create", "--tenant", "t"])
            .env("HERMOD_DATA_DIR", dir.path())
            .env("HERMOD_LOG", "error")
            .envs(envs.iter().copied())
            .output()
            .unwrap()
    };
    let out = hermod(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in ["api-key-pepper", "master-keys.json"] {
        let mode = std::fs::metadata(dir.path().join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
    let pepper = std::fs::read_to_string(dir.path().join("api-key-pepper")).unwrap();
    assert!(pepper.trim().len() >= 32, "a generated secret");
    // A key file others may read stops the process.
    let keys = dir.path().join("master-keys.json");
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = hermod(&[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("chmod 600"));
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(hermod(&[]).status.success());
    // So does a private key the configuration names (an RBM service account here).
    let sa = dir.path().join("sa.json");
    std::fs::write(&sa, "{}").unwrap();
    std::fs::set_permissions(&sa, std::fs::Permissions::from_mode(0o644)).unwrap();
    let config = dir.path().join("hermod.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{}\"\n[[rcs.agents]]\nname = \"a\"\nagent_id = \"a@rbm.goog\"\nservice_account_file = \"{}\"\n",
            free_port(),
            sa.display()
        ),
    )
    .unwrap();
    let mut serve = std::process::Command::new(env!("CARGO_BIN_EXE_hermod"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("HERMOD_DATA_DIR", dir.path())
        .env("HERMOD_LOG", "error")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = serve.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = serve.kill();
            panic!("hermod serve started with a world-readable service account key");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!status.success());
    let mut err = String::new();
    std::io::Read::read_to_string(&mut serve.stderr.take().unwrap(), &mut err).unwrap();
    assert!(err.contains("chmod 600"), "{err}");
    // With PostgreSQL an empty pepper is refused (every process must share one).
    let Some(db) = crate::support::pg_database("pepper").await else {
        return;
    };
    let out = hermod(&[("HERMOD_DATABASE_URL", &db)]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("api_key_pepper is empty"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = hermod(&[
        ("HERMOD_DATABASE_URL", &db),
        ("HERMOD_API_KEY_PEPPER", "s3cret"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The calls that cost more than a message have their own budgets: audit verification
/// and checkpoints per tenant, stream sockets per device (429 with Retry-After), and
/// one tenant's spending leaves another's whole.
#[tokio::test(flavor = "multi_thread")]
async fn expensive_endpoints_have_their_own_budgets() {
    use hermod_crypto::hpke::Aead;
    use reqwest::Method;
    let smsc = start_smsc(SmscConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hermod.toml");
    std::fs::write(
        &config,
        format!(
            "[api]\naudit_rate_per_sec = 0.01\naudit_burst = 2.0\nstream_opens_per_sec = 0.01\nstream_burst = 2.0\n[[smpp.connectors]]\nname = \"s\"\nurl = \"{}\"\n",
            smsc.url("hermod", "pw")
        ),
    )
    .unwrap();
    let a = create_key(dir.path(), "a");
    let b = create_key(dir.path(), "b");
    let server = Server::start_with_config(dir.path(), &config, free_port());
    server.wait_healthy().await;
    let base = server.base.clone();
    let verify = format!("{base}/v1/audit/verify");
    let checkpoints = format!("{base}/v1/audit/checkpoints");
    assert_eq!(
        crate::support::call(Method::GET, &verify, &a, None).await.0,
        200
    );
    let (s, _, _) = crate::support::call(Method::POST, &checkpoints, &a, None).await;
    assert!(matches!(s, 201 | 404), "{s}");
    let (s, _, h) = crate::support::call(Method::GET, &verify, &a, None).await;
    assert_eq!(s, 429, "verify and checkpoints share the tenant's budget");
    assert!(h.get("retry-after").is_some());
    assert_eq!(
        crate::support::call(Method::POST, &checkpoints, &a, None)
            .await
            .0,
        429
    );
    assert_eq!(
        crate::support::call(Method::GET, &verify, &b, None).await.0,
        200,
        "another tenant's budget is its own"
    );
    // Stream sockets: the budget is taken before the upgrade, so plain GETs spend it.
    let device =
        hermod_sim::device::DeviceSim::register(&base, &a, "+447911123456", Aead::ChaCha20Poly1305)
            .await
            .unwrap();
    let stream = format!("{base}/v1/app/stream");
    for _ in 0..2 {
        let (s, _, _) = crate::support::call(Method::GET, &stream, &device.token, None).await;
        assert_ne!(s, 429);
    }
    let (s, _, h) = crate::support::call(Method::GET, &stream, &device.token, None).await;
    assert_eq!(s, 429, "a device opens few sockets");
    assert!(h.get("retry-after").is_some());
    smsc.stop();
}
