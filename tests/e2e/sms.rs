//! SMS over SMPP, production grade: several connectors with prefix routes and failover,
//! throttling, TLS, receipt variants, inbound messages, opt-out, scheduling, rate
//! limits and route reloads — the real binary against SMSC simulators.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hermod_sim::smsc::{ReceiptStyle, Smsc, SmscConfig, server_tls};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{
    Server, assign_sender, call, create_key, create_key_with_tenant, eventually, free_port,
    get_message, send_message as send, start_smsc, wait_status,
};

/// A fixture key copied with mode 0600 (a checkout leaves it readable by all, and
/// Hermod refuses a private key others may read).
fn private_copy(dir: &Path, name: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let to = dir.join(name);
    std::fs::copy(fixture(name), &to).unwrap();
    std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).unwrap();
    to
}

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/tls/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn write_config(dir: &Path, toml: &str) -> std::path::PathBuf {
    let p = dir.join("hermod.toml");
    std::fs::write(&p, toml).unwrap();
    p
}

/// How many times each text reached the SMSCs (accepted submits only).
fn texts(smscs: &[&Smsc]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for s in smscs {
        for sub in s.submitted() {
            *m.entry(String::from_utf8_lossy(&sub.short_message).into_owned())
                .or_insert(0) += 1;
        }
    }
    m
}

pub(crate) async fn delivered_count(base: &str, key: &str) -> usize {
    let (_, v, _) = call(
        Method::GET,
        &format!("{base}/v1/messages?status=delivered&limit=1000"),
        key,
        None,
    )
    .await;
    v["data"].as_array().map_or(0, Vec::len)
}

#[tokio::test(flavor = "multi_thread")]
async fn two_connectors_route_by_prefix_and_fail_over_without_loss_or_duplicates() {
    let cfg = SmscConfig {
        dlr_delay: Duration::from_millis(20),
        ..Default::default()
    };
    let a = start_smsc(cfg.clone()).await;
    let b = start_smsc(cfg).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            r#"
[smpp]
[[smpp.connectors]]
name = "a"
url = "{}"
binds = 2
failure_threshold = 3
[[smpp.connectors]]
name = "b"
url = "{}"
[[smpp.routes]]
prefix = "44"
connector = "a"
cost = 0.01
[[smpp.routes]]
prefix = "44"
connector = "b"
cost = 0.02
[[smpp.routes]]
prefix = "33"
connector = "b"
[workers]
in_doubt_grace_secs = 2
"#,
            a.url("esme", "pw"),
            b.url("esme", "pw")
        ),
    );
    let key = create_key(dir.path(), "acme");
    let server = Server::start_with_config(dir.path(), &config, free_port());
    server.wait_healthy().await;
    let base = server.base.clone();

    // The prefix decides: +33 goes to b only.
    for i in 0..5 {
        let (s, _) = send(
            &base,
            &key,
            json!({"to": "+33612345678", "text": format!("fr {i}")}),
        )
        .await;
        assert_eq!(s, 202);
    }
    eventually("French messages on b", Duration::from_secs(20), || async {
        b.submit_count() >= 5
    })
    .await;
    assert_eq!(a.submit_count(), 0, "nothing for +33 may reach a");

    // A burst to +44: the cheap route a takes it until a goes down mid-run.
    let total = 300;
    let sender = {
        let (base, key) = (base.clone(), key.clone());
        tokio::spawn(async move {
            for chunk in 0..(total / 50) {
                let msgs: Vec<Value> = (0..50)
                    .map(|j| json!({"to": "+447911123456", "text": format!("uk {}", chunk * 50 + j)}))
                    .collect();
                let (s, _, _) = call(
                    Method::POST,
                    &format!("{base}/v1/messages/batch"),
                    &key,
                    Some(json!({ "messages": msgs })),
                )
                .await;
                assert_eq!(s, 202);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    eventually("a takes traffic", Duration::from_secs(20), || async {
        a.submit_count() >= 40
    })
    .await;
    a.refuse_binds(true);
    a.drop_connections();
    let b_before = b.submit_count();
    eventually("b takes over", Duration::from_secs(30), || async {
        b.submit_count() >= b_before + 40
    })
    .await;
    // a comes back: its receipts flow again, and it is the cheap route once more.
    a.refuse_binds(false);
    sender.await.unwrap();
    eventually(
        "every message delivered",
        Duration::from_secs(90),
        || async { delivered_count(&base, &key).await >= total + 5 },
    )
    .await;
    let seen = texts(&[&a, &b]);
    for i in 0..total {
        assert_eq!(
            seen.get(&format!("uk {i}")).copied(),
            Some(1),
            "uk {i} must reach exactly one SMSC exactly once"
        );
    }
    let on_b = b
        .submitted()
        .iter()
        .filter(|s| s.destination.starts_with("44"))
        .count();
    assert!(
        on_b >= 40,
        "b carried the +44 traffic while a was down ({on_b})"
    );

    // GET /v1/connectors (the operator's: SMSC hosts, errors) shows both with their binds.
    let (s, _, _) = call(Method::GET, &format!("{base}/v1/connectors"), &key, None).await;
    assert_eq!(s, 401, "a tenant key does not see the connectors");
    let url = format!("{base}/v1/connectors");
    let (s, v, _) = call(Method::GET, &url, crate::support::ADMIN_TOKEN, None).await;
    assert_eq!(s, 200);
    let conns = v["data"].as_array().unwrap();
    assert_eq!(conns.len(), 2);
    assert_eq!(conns[0]["name"], "a");
    assert_eq!(conns[0]["binds"].as_array().unwrap().len(), 2);
    assert!(conns[0]["binds"][0]["sent_total"].as_u64().unwrap() > 0);
    for c in conns {
        assert!(c["binds"][0]["state"].is_string());
    }
    // `hermod connectors` prints the same as a table.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hermod"))
        .args([
            "connectors",
            "--url",
            &base,
            "--token",
            crate::support::ADMIN_TOKEN,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.starts_with("CONNECTOR"), "{table}");
    assert!(
        table.contains("a#1/trx") && table.contains("a#2/trx") && table.contains("b#1/trx"),
        "{table}"
    );
    a.stop();
    b.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn throttling_replies_slow_the_flow_without_failures() {
    let smsc = start_smsc(SmscConfig {
        throttle_share: 0.3,
        dlr_delay: Duration::from_millis(10),
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "[[smpp.connectors]]\nname = \"t\"\nurl = \"{}\"\ntps = 200.0\nburst = 20.0\n",
            smsc.url("esme", "pw")
        ),
    );
    let key = create_key(dir.path(), "acme");
    let server = Server::start_with_config(dir.path(), &config, free_port());
    server.wait_healthy().await;
    let base = server.base.clone();
    let n = 120;
    let msgs: Vec<Value> = (0..n)
        .map(|i| json!({"to": "+447911123456", "text": format!("t {i}")}))
        .collect();
    let (s, _, _) = call(
        Method::POST,
        &format!("{base}/v1/messages/batch"),
        &key,
        Some(json!({ "messages": msgs })),
    )
    .await;
    assert_eq!(s, 202);
    eventually(
        "all delivered despite throttling",
        Duration::from_secs(120),
        || async { delivered_count(&base, &key).await >= n },
    )
    .await;
    assert!(
        smsc.throttled_count() > 0,
        "the simulator throttled some submits"
    );
    let (_, failed, _) = call(
        Method::GET,
        &format!("{base}/v1/messages?status=failed"),
        &key,
        None,
    )
    .await;
    assert_eq!(
        failed["data"].as_array().unwrap().len(),
        0,
        "throttling never fails a message"
    );
    let seen = texts(&[&smsc]);
    assert!((0..n).all(|i| seen.get(&format!("t {i}")) == Some(&1)));
    smsc.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_bind_with_a_test_ca_and_client_certificate() {
    let tls = server_tls(
        Path::new(&fixture("server.pem")),
        Path::new(&fixture("server.key")),
        Some(Path::new(&fixture("ca.pem"))),
    )
    .unwrap();
    let smsc = start_smsc(SmscConfig {
        tls: Some(Arc::new(tls)),
        dlr_delay: Duration::from_millis(10),
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            r#"
admin_token = "admin-secret"
[[smpp.connectors]]
name = "secure"
url = "{url}"
ca_file = "{ca}"
client_cert_file = "{cert}"
client_key_file = "{key}"
[[smpp.connectors]]
name = "wrong-ca"
url = "{url}"
ca_file = "{other}"
[[smpp.connectors]]
name = "no-client-cert"
url = "{url}"
ca_file = "{ca}"
[[smpp.routes]]
connector = "secure"
"#,
            url = smsc.url("esme", "pw"),
            ca = fixture("ca.pem"),
            other = fixture("other-ca.pem"),
            cert = fixture("client.pem"),
            key = private_copy(dir.path(), "client.key").display(),
        ),
    );
    assert!(smsc.url("esme", "pw").starts_with("smpps://"));
    let key = create_key(dir.path(), "acme");
    let server = Server::start_with_config(dir.path(), &config, free_port());
    server.wait_healthy().await;
    let base = server.base.clone();
    let (s, v) = send(
        &base,
        &key,
        json!({"to": "+447911123456", "text": "over TLS"}),
    )
    .await;
    assert_eq!(s, 202);
    wait_status(&base, &key, v["id"].as_str().unwrap(), "delivered", 30).await;
    // The admin token reads connectors; the two misconfigured ones never bind.
    eventually("bind errors recorded", Duration::from_secs(20), || async {
        let (_, v, _) = call(
            Method::GET,
            &format!("{base}/v1/connectors"),
            "admin-secret",
            None,
        )
        .await;
        let by: HashMap<String, Value> = v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["name"].as_str().unwrap().to_owned(), c.clone()))
            .collect();
        by["secure"]["healthy"] == true
            && by["secure"]["tls"] == true
            && by["wrong-ca"]["healthy"] == false
            && by["wrong-ca"]["binds"][0]["last_error"].is_string()
            && by["no-client-cert"]["healthy"] == false
            && by["no-client-cert"]["binds"][0]["last_error"].is_string()
    })
    .await;
    assert_eq!(smsc.submit_count(), 1);
    smsc.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn receipts_in_other_formats_and_id_bases_are_matched() {
    let decimal = start_smsc(SmscConfig {
        receipt_style: ReceiptStyle::DecimalIds,
        dlr_delay: Duration::from_millis(10),
        ..Default::default()
    })
    .await;
    let loose = start_smsc(SmscConfig {
        receipt_style: ReceiptStyle::Loose,
        dlr_delay: Duration::from_millis(10),
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            r#"
[[smpp.connectors]]
name = "decimal"
url = "{}"
receipt_ids = "submit_hex_receipt_decimal"
bind_mode = "transmitter_receiver"
[[smpp.connectors]]
name = "loose"
url = "{}"
[[smpp.routes]]
prefix = "44"
connector = "decimal"
[[smpp.routes]]
prefix = "33"
connector = "loose"
"#,
            decimal.url("esme", "pw"),
            loose.url("esme", "pw")
        ),
    );
    let key = create_key(dir.path(), "acme");
    let server = Server::start_with_config(dir.path(), &config, free_port());
    server.wait_healthy().await;
    let base = server.base.clone();
    let mut ids = Vec::new();
    for to in ["+447911123456", "+33612345678"] {
        for i in 0..20 {
            let (s, v) = send(&base, &key, json!({"to": to, "text": format!("r {i}")})).await;
            assert_eq!(s, 202);
            ids.push(v["id"].as_str().unwrap().to_owned());
        }
    }
    for id in &ids {
        wait_status(&base, &key, id, "delivered", 30).await;
    }
    assert_eq!(decimal.submit_count(), 20);
    assert_eq!(loose.submit_count(), 20);
    // transmitter + receiver: two sessions for one configured bind.
    assert_eq!(decimal.bind_count(), 2);
    decimal.stop();
    loose.stop();
}

async fn inbound(base: &str, key: &str) -> Vec<Value> {
    let (_, v, _) = call(Method::GET, &format!("{base}/v1/inbound"), key, None).await;
    v["data"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn multipart_inbound_and_stop_rejected_start_delivered() {
    let smsc = start_smsc(SmscConfig {
        dlr_delay: Duration::from_millis(10),
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "[smpp]\nhelp_reply = \"Acme alerts. Reply STOP to opt out.\"\ninbound_part_timeout_secs = 2\n[[smpp.connectors]]\nname = \"mo\"\nurl = \"{}\"\n",
            smsc.url("esme", "pw")
        ),
    );
    let key = create_key(dir.path(), "acme");
    let other = create_key(dir.path(), "globex");
    // Acme owns the number its customers reply to, and its brand name; globex its own.
    assign_sender(dir.path(), "acme", "+447700900123", true);
    assign_sender(dir.path(), "acme", "Acme", false);
    assign_sender(dir.path(), "globex", "+447700900999", false);
    let server = Server::start_with_config(dir.path(), &config, free_port());
    server.wait_healthy().await;
    let base = server.base.clone();
    let sender = "+447700900123";
    let to = "+447911123456";
    let (_, v) = send(
        &base,
        &key,
        json!({"to": to, "from": sender, "text": "Your order shipped"}),
    )
    .await;
    wait_status(&base, &key, v["id"].as_str().unwrap(), "delivered", 30).await;

    // Multipart MO: a UDH-concatenated GSM text and a SAR-concatenated UCS-2 text.
    let long_gsm = "Hello Acme, ".repeat(20);
    let long_ucs2 = "Привет, это длинное сообщение. ".repeat(5);
    assert_eq!(
        smsc.inject_mo("esme", "447911123456", "447700900123", &long_gsm, false),
        2
    );
    assert!(smsc.inject_mo("esme", "447911123456", "447700900123", &long_ucs2, true) >= 3);
    eventually("two inbound messages", Duration::from_secs(20), || async {
        inbound(&base, &key).await.len() == 2
    })
    .await;
    let got = inbound(&base, &key).await;
    let texts: Vec<&str> = got.iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert!(texts.contains(&long_gsm.as_str()), "{texts:?}");
    assert!(texts.contains(&long_ucs2.as_str()), "{texts:?}");
    assert!(
        got.iter()
            .all(|m| m["from"] == to && m["to"] == "447700900123")
    );
    assert!(got.iter().any(|m| m["parts"] == 2));
    assert!(
        inbound(&base, &other).await.is_empty(),
        "another tenant sees none"
    );
    // A message whose last part never comes is stored with what came, after the timeout.
    let cut = "Part one of three. ".repeat(20);
    assert_eq!(
        smsc.inject_mo_parts("esme", "447911123456", "447700900123", &cut, false, 2),
        3
    );
    eventually(
        "the incomplete message stored",
        Duration::from_secs(20),
        || async { inbound(&base, &key).await.len() == 3 },
    )
    .await;
    let got = inbound(&base, &key).await;
    let partial = got[0]["text"].as_str().unwrap();
    assert!(
        cut.starts_with(partial) && partial.len() == 153 * 2,
        "{partial:?}"
    );

    // HELP gets the configured reply (replies respect opt-outs, so before STOP).
    smsc.inject_mo("esme", "447911123456", "447700900123", "HELP", false);
    eventually("HELP answered", Duration::from_secs(20), || async {
        smsc.submitted().iter().any(|s| {
            String::from_utf8_lossy(&s.short_message).contains("Reply STOP to opt out")
                && s.destination == "447911123456"
        })
    })
    .await;

    // STOP → an opt-out for this sender → rejected, never sent.
    smsc.inject_mo("esme", "447911123456", "447700900123", " stop ", false);
    eventually("opt-out recorded", Duration::from_secs(20), || async {
        let (_, v, _) = call(Method::GET, &format!("{base}/v1/opt-outs"), &key, None).await;
        v["data"].as_array().is_some_and(|d| {
            d.len() == 1
                && d[0]["recipient"] == to
                && d[0]["sender"] == "447700900123"
                && d[0]["source"] == "keyword"
        })
    })
    .await;
    let before = smsc.submit_count();
    let (_, v) = send(
        &base,
        &key,
        json!({"to": to, "from": sender, "text": "Sale!"}),
    )
    .await;
    let m = wait_status(&base, &key, v["id"].as_str().unwrap(), "rejected", 30).await;
    assert_eq!(m["reason"], "recipient_opted_out");
    assert!(m["attempts"].as_array().unwrap().is_empty());
    // Another tenant's messages to the same number are not affected.
    let (_, v) = send(
        &base,
        &other,
        json!({"to": to, "from": "+447700900999", "text": "globex"}),
    )
    .await;
    wait_status(&base, &other, v["id"].as_str().unwrap(), "delivered", 30).await;
    assert_eq!(
        smsc.submit_count(),
        before + 1,
        "the rejected message never reached the SMSC"
    );

    // START clears it; the next message is delivered.
    smsc.inject_mo("esme", "447911123456", "447700900123", "Start", false);
    eventually("opt-out cleared", Duration::from_secs(20), || async {
        let (_, v, _) = call(Method::GET, &format!("{base}/v1/opt-outs"), &key, None).await;
        v["data"].as_array().is_some_and(Vec::is_empty)
    })
    .await;
    let (_, v) = send(
        &base,
        &key,
        json!({"to": to, "from": sender, "text": "Welcome back"}),
    )
    .await;
    wait_status(&base, &key, v["id"].as_str().unwrap(), "delivered", 30).await;

    // The API manages opt-outs too: all senders, then removed.
    let url = format!("{base}/v1/opt-outs");
    let (s, v, _) = call(Method::POST, &url, &key, Some(json!({"recipient": to}))).await;
    assert_eq!((s, v["sender"].as_str()), (201, Some("*")));
    let (s, _, _) = call(Method::POST, &url, &key, Some(json!({"recipient": to}))).await;
    assert_eq!(s, 200, "recording it again is not an error");
    let (s, v, _) = call(Method::POST, &url, &key, Some(json!({"recipient": "0791"}))).await;
    assert_eq!((s, v["error"]["field"].as_str()), (400, Some("recipient")));
    let (_, v) = send(
        &base,
        &key,
        json!({"to": to, "from": "Acme", "text": "any sender"}),
    )
    .await;
    wait_status(&base, &key, v["id"].as_str().unwrap(), "rejected", 30).await;
    let (s, _, _) = call(Method::DELETE, &format!("{url}/{to}"), &key, None).await;
    assert_eq!(s, 204);
    let (s, _, _) = call(Method::DELETE, &format!("{url}/{to}"), &key, None).await;
    assert_eq!(s, 404);
    smsc.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn scheduling_cancel_validity_and_rate_limits() {
    let smsc = start_smsc(SmscConfig {
        dlr_delay: Duration::from_millis(10),
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (_, key) = create_key_with_tenant(dir.path(), "acme");
    let (bulk, unlimited) = create_key_with_tenant(dir.path(), "bulk");
    let config = write_config(
        dir.path(),
        &format!(
            r#"
[api]
rate_limit_per_sec = 1.0
rate_limit_burst = 8.0
[api.tenant_limits.{bulk}]
per_sec = 0.0
[[smpp.connectors]]
name = "s"
url = "{url}"
"#,
            url = smsc.url("esme", "pw"),
        ),
    );
    let server = Server::start_with_config(dir.path(), &config, free_port());
    server.wait_healthy().await;
    let base = server.base.clone();
    let at = |secs: i64| {
        (time::OffsetDateTime::now_utc() + time::Duration::seconds(secs))
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };

    // Held until its time, durably in the queue, then sent.
    let (s, v) = send(
        &base,
        &key,
        json!({"to": "+447911123456", "text": "later", "send_at": at(2)}),
    )
    .await;
    assert_eq!((s, v["status"].as_str()), (202, Some("scheduled")));
    let id = v["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(get_message(&base, &key, &id).await["status"], "scheduled");
    assert_eq!(smsc.submit_count(), 0);
    let m = wait_status(&base, &key, &id, "delivered", 30).await;
    let types: Vec<&str> = m["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(&types[..2], ["message.accepted", "message.scheduled"]);

    // Cancelled before its time: never sent.
    let (_, v) = send(
        &base,
        &key,
        json!({"to": "+447911123456", "text": "never", "send_at": at(3600)}),
    )
    .await;
    let id2 = v["id"].as_str().unwrap().to_owned();
    let url = format!("{base}/v1/messages/{id2}");
    let (s, v, _) = call(Method::DELETE, &url, &key, None).await;
    assert_eq!(
        (s, v["status"].as_str(), v["reason"].as_str()),
        (200, Some("canceled"), Some("canceled"))
    );
    let (s, _, _) = call(Method::DELETE, &url, &key, None).await;
    assert_eq!(s, 200, "cancelling twice is fine");
    // A delivered message can no longer be cancelled.
    let (s, v, _) = call(
        Method::DELETE,
        &format!("{base}/v1/messages/{id}"),
        &key,
        None,
    )
    .await;
    assert_eq!((s, v["error"]["code"].as_str()), (409, Some("conflict")));
    let (s, v) = send(
        &base,
        &key,
        json!({"to": "+447911123456", "text": "x", "send_at": "tomorrow"}),
    )
    .await;
    assert_eq!((s, v["error"]["field"].as_str()), (400, Some("send_at")));

    // ttl becomes the SMPP validity period (relative format).
    let (_, v) = send(
        &base,
        &key,
        json!({"to": "+447911123456", "text": "valid", "ttl": 3600}),
    )
    .await;
    wait_status(&base, &key, v["id"].as_str().unwrap(), "delivered", 30).await;
    let sub = smsc
        .submitted()
        .into_iter()
        .find(|s| s.short_message == b"valid")
        .unwrap();
    let vp = sub.validity_period;
    assert!(vp.ends_with("000R") && vp.starts_with("000000"), "{vp}");
    assert!(vp == "000000010000000R" || vp == "000000005959000R", "{vp}");
    // Alphanumeric sender → TON 5 / NPI 0 (automatic).
    assert_eq!((sub.source_ton, sub.source_npi), (5, 0));

    // Rate limit: the burst is used up → 429 with Retry-After and a JSON body.
    let mut limited = None;
    for i in 0..20 {
        let (s, v, h) = call(
            Method::POST,
            &format!("{base}/v1/messages"),
            &key,
            Some(json!({"to": "+447911123456", "text": format!("rl {i}")})),
        )
        .await;
        if s == 429 {
            limited = Some((v, h));
            break;
        }
        assert_eq!(s, 202);
    }
    let (v, h) = limited.expect("the tenant is rate limited");
    assert_eq!(v["error"]["code"], "rate_limited");
    let retry: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    // A tenant without a limit is not affected.
    for i in 0..20 {
        let (s, _) = send(
            &base,
            &unlimited,
            json!({"to": "+447911123456", "text": format!("bulk {i}")}),
        )
        .await;
        assert_eq!(s, 202);
    }
    smsc.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn routes_reload_on_sighup_and_admin_call_without_dropping_binds() {
    let a = start_smsc(SmscConfig::default()).await;
    let b = start_smsc(SmscConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let conf = |target: &str| {
        format!(
            "admin_token = \"tok\"\n[[smpp.connectors]]\nname = \"a\"\nurl = \"{}\"\n[[smpp.connectors]]\nname = \"b\"\nurl = \"{}\"\n[[smpp.routes]]\nprefix = \"44\"\nconnector = \"{target}\"\n",
            a.url("esme", "pw"),
            b.url("esme", "pw")
        )
    };
    let config = write_config(dir.path(), &conf("a"));
    let key = create_key(dir.path(), "acme");
    let server = Server::start_with_config(dir.path(), &config, free_port());
    server.wait_healthy().await;
    let base = server.base.clone();
    let send_one = |text: String| {
        let (base, key) = (base.clone(), key.clone());
        async move {
            let (s, v) = send(&base, &key, json!({"to": "+447911123456", "text": text})).await;
            assert_eq!(s, 202);
            let id = v["id"].as_str().unwrap().to_owned();
            wait_status(&base, &key, &id, "delivered", 30).await;
        }
    };
    send_one("one".into()).await;
    assert_eq!((a.submit_count(), b.submit_count()), (1, 0));
    let binds = (a.bind_count(), b.bind_count());

    std::fs::write(&config, conf("b")).unwrap();
    server.sighup();
    eventually("SIGHUP applied", Duration::from_secs(20), || {
        let b = b.clone();
        async move {
            send_one("probe".into()).await;
            b.submit_count() > 0
        }
    })
    .await;

    std::fs::write(&config, conf("a")).unwrap();
    let url = format!("{base}/v1/admin/reload");
    let (s, _, _) = call(Method::POST, &url, &key, None).await;
    assert_eq!(s, 401, "an API key is not the admin token");
    let (s, v, _) = call(Method::POST, &url, "tok", None).await;
    assert_eq!((s, v["routes"].as_u64()), (200, Some(1)), "{v}");
    let a_before = a.submit_count();
    send_one("two".into()).await;
    assert_eq!(a.submit_count(), a_before + 1);
    // A broken file is refused and the routes stay.
    std::fs::write(&config, conf("nope")).unwrap();
    let (s, v, _) = call(Method::POST, &url, "tok", None).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (400, Some("invalid_config"))
    );
    send_one("three".into()).await;
    assert_eq!(a.submit_count(), a_before + 2);
    assert_eq!(
        (a.bind_count(), b.bind_count()),
        binds,
        "no bind was dropped"
    );
    a.stop();
    b.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connector_that_keeps_failing_is_routed_around() {
    let a = start_smsc(SmscConfig::default()).await;
    let b = start_smsc(SmscConfig {
        dlr_delay: Duration::from_millis(10),
        ..Default::default()
    })
    .await;
    // Bound and answering, but every submit gets ESME_RSYSERR (transient).
    a.fail_submits_with(Some(0x08));
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            r#"
[[smpp.connectors]]
name = "a"
url = "{}"
failure_threshold = 3
failure_cooldown_secs = 120
[[smpp.connectors]]
name = "b"
url = "{}"
[[smpp.routes]]
connector = "a"
cost = 0.01
[[smpp.routes]]
connector = "b"
cost = 0.05
"#,
            a.url("esme", "pw"),
            b.url("esme", "pw")
        ),
    );
    let key = create_key(dir.path(), "acme");
    let server = Server::start_with_config(dir.path(), &config, free_port());
    server.wait_healthy().await;
    let base = server.base.clone();
    let n = 20;
    for i in 0..n {
        let (s, _) = send(
            &base,
            &key,
            json!({"to": "+447911123456", "text": format!("f {i}")}),
        )
        .await;
        assert_eq!(s, 202);
    }
    eventually(
        "all delivered through b",
        Duration::from_secs(60),
        || async { delivered_count(&base, &key).await >= n },
    )
    .await;
    assert_eq!(a.submit_count(), 0);
    let seen = texts(&[&b]);
    assert!((0..n).all(|i| seen.get(&format!("f {i}")) == Some(&1)));
    let (_, v, _) = call(
        Method::GET,
        &format!("{base}/v1/connectors"),
        crate::support::ADMIN_TOKEN,
        None,
    )
    .await;
    let ca = &v["data"][0];
    assert_eq!(
        (ca["name"].as_str(), ca["healthy"].as_bool()),
        (Some("a"), Some(false)),
        "{v}"
    );
    assert!(ca["failing_until"].as_i64().is_some(), "{v}");
    assert_eq!(ca["binds"][0]["state"], "bound");
    assert_eq!(ca["binds"][0]["last_error"], "command_status 0x00000008");
    a.stop();
    b.stop();
}

/// Kills a child process when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_simulator_binary_speaks_tls_loose_receipts_and_injects_inbound() {
    let (smpp_port, admin_port) = (free_port(), free_port());
    let _sim = Child(
        std::process::Command::new(env!("CARGO_BIN_EXE_hermod"))
            .args(["sim", "smsc", "--listen", &format!("127.0.0.1:{smpp_port}")])
            .args([
                "--system-id",
                "esme",
                "--password",
                "pw",
                "--dlr-delay-ms",
                "10",
            ])
            .args([
                "--tls-cert",
                &fixture("server.pem"),
                "--tls-key",
                &fixture("server.key"),
            ])
            .args(["--receipt-style", "loose"])
            .args(["--admin", &format!("127.0.0.1:{admin_port}")])
            .env("HERMOD_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let admin = format!("http://127.0.0.1:{admin_port}");
    eventually(
        "the simulator's admin endpoint",
        Duration::from_secs(20),
        || async { reqwest::get(format!("{admin}/stats")).await.is_ok() },
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "[[smpp.connectors]]\nname = \"sim\"\nurl = \"smpps://esme:pw@localhost:{smpp_port}\"\nca_file = \"{}\"\n",
            fixture("ca.pem")
        ),
    );
    let key = create_key(dir.path(), "acme");
    assign_sender(dir.path(), "acme", "+447700900123", false);
    let server = Server::start_with_config(dir.path(), &config, free_port());
    server.wait_healthy().await;
    let base = server.base.clone();
    let (_, v) = send(
        &base,
        &key,
        json!({"to": "+447911123456", "from": "+447700900123", "text": "hi"}),
    )
    .await;
    wait_status(&base, &key, v["id"].as_str().unwrap(), "delivered", 30).await;
    let r = reqwest::Client::new()
        .post(format!("{admin}/mo"))
        .json(&json!({"system_id": "esme", "from": "447911123456", "to": "447700900123", "text": "Thanks!"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    eventually("the inbound message", Duration::from_secs(20), || async {
        inbound(&base, &key)
            .await
            .first()
            .is_some_and(|m| m["text"] == "Thanks!")
    })
    .await;
    let stats: Value = reqwest::get(format!("{admin}/stats"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["submitted"], 1);
    assert_eq!(stats["pending_deliver_sm"], 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_delivered_too_often_are_listed_as_dead_letters() {
    let smsc = start_smsc(SmscConfig::default()).await;
    smsc.fail_submits_with(Some(0x08));
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "admin_token = \"tok\"\nqueue_max_deliveries = 2\n[[smpp.connectors]]\nname = \"s\"\nurl = \"{}\"\nfailure_threshold = 1000\n",
            smsc.url("esme", "pw")
        ),
    );
    let key = create_key(dir.path(), "acme");
    let server = Server::start_with_config(dir.path(), &config, free_port());
    server.wait_healthy().await;
    let base = server.base.clone();
    let (_, v) = send(
        &base,
        &key,
        json!({"to": "+447911123456", "text": "doomed"}),
    )
    .await;
    let id = v["id"].as_str().unwrap().to_owned();
    let url = format!("{base}/v1/admin/dead-letters");
    let (s, _, _) = call(Method::GET, &url, &key, None).await;
    assert_eq!(s, 401, "an API key is not the admin token");
    eventually(
        "the send job in the dead-letter queue",
        Duration::from_secs(60),
        || async {
            let (_, v, _) = call(Method::GET, &url, "tok", None).await;
            v["data"].as_array().is_some_and(|d| {
                d.len() == 1
                    && d[0]["queue"] == "channel.sms"
                    && d[0]["deliveries"].as_i64() > Some(2)
            })
        },
    )
    .await;
    let (_, v, _) = call(Method::GET, &url, "tok", None).await;
    assert_eq!(v["data"][0]["job"]["type"], "send.v1", "{v}");
    assert_ne!(get_message(&base, &key, &id).await["status"], "delivered");
    smsc.stop();
}

/// Senders are owned: the operator assigns them (admin API), a tenant sends only from
/// its own (403 naming `from`), a message without `from` takes the tenant's default,
/// and a reply goes to the owner of the number it was sent to, never to whoever wrote
/// last; a reply to a number nobody owns is the operator's alone.
#[tokio::test(flavor = "multi_thread")]
async fn senders_are_owned_and_replies_reach_only_their_owner() {
    let smsc = start_smsc(SmscConfig {
        dlr_delay: Duration::from_millis(10),
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "admin_token = \"op-secret\"\n[[smpp.connectors]]\nname = \"mo\"\nurl = \"{}\"\n",
            smsc.url("esme", "pw")
        ),
    );
    let (acme_id, acme) = create_key_with_tenant(dir.path(), "acme");
    let (globex_id, globex) = create_key_with_tenant(dir.path(), "globex");
    let server = Server::start_with_config(dir.path(), &config, free_port());
    server.wait_healthy().await;
    let base = server.base.clone();
    let admin = |m: Method, path: &str, body: Option<Value>| {
        let url = format!("{base}{path}");
        async move { call(m, &url, "op-secret", body).await }
    };

    // The operator assigns; a tenant's key cannot; every bad field is named.
    let url = format!("{base}/v1/admin/senders");
    let own = json!({"sender": "+447700900123", "tenant_id": acme_id, "default": true});
    let (s, _, _) = call(Method::POST, &url, &acme, Some(own.clone())).await;
    assert_eq!(s, 401, "a tenant key is not the operator's");
    let (s, v, _) = admin(Method::POST, "/v1/admin/senders", Some(own)).await;
    assert_eq!((s, v["tenant_id"].as_str()), (201, Some(acme_id.as_str())));
    let (s, _, _) = admin(
        Method::POST,
        "/v1/admin/senders",
        Some(json!({"sender": "447700900123", "tenant_id": globex_id})),
    )
    .await;
    assert_eq!(s, 409, "another tenant's sender cannot be taken");
    for (body, field) in [
        (json!({"sender": "x y!", "tenant_id": acme_id}), "sender"),
        (json!({"sender": "Acme", "tenant_id": "acme"}), "tenant_id"),
        (
            json!({"sender": "Acme", "tenant_id": "ten_00000000000000000000000000000000"}),
            "tenant_id",
        ),
    ] {
        let (s, v, _) = admin(Method::POST, "/v1/admin/senders", Some(body)).await;
        assert_eq!((s, v["error"]["field"].as_str()), (400, Some(field)));
    }
    let (_, v, _) = call(Method::GET, &format!("{base}/v1/senders"), &acme, None).await;
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    assert_eq!(v["data"][0]["sender"], "+447700900123");
    let (_, v, _) = call(Method::GET, &format!("{base}/v1/senders"), &globex, None).await;
    assert_eq!(v["data"], json!([]), "globex sees none of acme's");

    // Globex cannot send from acme's number, nor from one nobody owns.
    for from in ["+447700900123", "447700900123", "Nobody"] {
        let (s, v) = send(
            &base,
            &globex,
            json!({"to": "+447911123456", "from": from, "text": "phish"}),
        )
        .await;
        assert_eq!(
            (s, v["error"]["code"].as_str(), v["error"]["field"].as_str()),
            (403, Some("forbidden"), Some("from")),
            "{from}: {v}"
        );
    }
    let (s, v, _) = call(
        Method::POST,
        &format!("{base}/v1/messages/batch"),
        &globex,
        Some(json!({"messages": [{"to": "+447911123456", "from": "+447700900123", "text": "x"}]})),
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(v["results"][0]["error"]["field"], "messages[0].from");
    assert_eq!(v["results"][0]["error"]["code"], "forbidden");

    // Acme without `from` sends from its default sender.
    let (s, v) = send(
        &base,
        &acme,
        json!({"to": "+447911123456", "text": "Order shipped"}),
    )
    .await;
    assert_eq!((s, v["from"].as_str()), (202, Some("+447700900123")));
    wait_status(&base, &acme, v["id"].as_str().unwrap(), "delivered", 30).await;
    assert!(
        smsc.submitted()
            .iter()
            .any(|m| m.source == "447700900123" && m.destination == "447911123456")
    );
    // Globex (no sender of its own: the connector's) writes to the customer last.
    let (s, v) = send(
        &base,
        &globex,
        json!({"to": "+447911123456", "text": "Hello"}),
    )
    .await;
    assert_eq!(s, 202);
    wait_status(&base, &globex, v["id"].as_str().unwrap(), "delivered", 30).await;

    // The customer replies STOP to acme's number: acme's, whoever wrote last.
    smsc.inject_mo("esme", "447911123456", "447700900123", "STOP", false);
    eventually("acme's reply", Duration::from_secs(20), || async {
        inbound(&base, &acme).await.len() == 1
    })
    .await;
    let (_, v, _) = call(Method::GET, &format!("{base}/v1/opt-outs"), &acme, None).await;
    assert_eq!(v["data"].as_array().unwrap().len(), 1, "acme's STOP: {v}");
    // And to a number nobody owns: stored for the operator, no tenant's.
    smsc.inject_mo(
        "esme",
        "447911123456",
        "447700900555",
        "STOP who is this",
        false,
    );
    eventually(
        "the unattributed reply",
        Duration::from_secs(20),
        || async {
            let (_, v, _) = admin(Method::GET, "/v1/admin/inbound", None).await;
            v["data"].as_array().is_some_and(|d| d.len() == 1)
        },
    )
    .await;
    let (_, v, _) = admin(Method::GET, "/v1/admin/inbound", None).await;
    assert_eq!(v["data"][0]["to"], "447700900555");
    assert!(
        inbound(&base, &globex).await.is_empty(),
        "globex sees no reply"
    );
    assert_eq!(inbound(&base, &acme).await.len(), 1);
    let (_, v, _) = call(Method::GET, &format!("{base}/v1/opt-outs"), &globex, None).await;
    assert_eq!(v["data"], json!([]));
    let (s, _, _) = call(
        Method::GET,
        &format!("{base}/v1/admin/inbound"),
        &acme,
        None,
    )
    .await;
    assert_eq!(s, 401);

    // The operator takes the number back: acme can no longer send from it.
    let (s, _, _) = admin(Method::DELETE, "/v1/admin/senders/+447700900123", None).await;
    assert_eq!(s, 204);
    let (s, _, _) = admin(Method::DELETE, "/v1/admin/senders/+447700900123", None).await;
    assert_eq!(s, 404);
    let (s, v) = send(
        &base,
        &acme,
        json!({"to": "+447911123456", "from": "+447700900123", "text": "x"}),
    )
    .await;
    assert_eq!((s, v["error"]["field"].as_str()), (403, Some("from")));
    smsc.stop();
}
