//! SMS through HTTP providers: Twilio, Vonage, Infobip, Sinch and a generic HTTP
//! upstream — the real binary against the providers' simulators (their own auth,
//! request validation, error bodies and signed callbacks): accepted → sent → delivered
//! on each, inbound with STOP on each, refused callbacks, 429 retried, the callbacks'
//! signatures checked by the official twilio SDK, and failover between an HTTP
//! provider and an SMPP connector that loses nothing and sends nothing twice.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use hermod_sim::providers::{Mode, ProviderSim, ProviderSimConfig};
use hermod_sim::smsc::SmscConfig;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{
    ADMIN_TOKEN, Server, assign_sender, call, create_key, eventually, free_port,
    send_message as send, start_smsc, wait_status,
};

/// Our number on each provider, and a destination its route sends there.
const NUMBERS: [(&str, &str, &str); 5] = [
    ("twilio", "+15550001111", "+15557654321"),
    ("vonage", "+447700900111", "+447911123456"),
    ("infobip", "+41790000111", "+41793026727"),
    ("sinch", "+46700000111", "+46701234567"),
    ("generic", "+33700000111", "+33612345678"),
];

fn providers_toml(sim: &ProviderSim, public: &str) -> String {
    let c = sim.config();
    let base = sim.url();
    format!(
        r#"
[[sms.providers]]
name = "tw"
kind = "twilio"
base_url = "{base}"
account = "{sid}"
token = "{tw_token}"
public_url = "{public}"
failure_threshold = 3

[[sms.providers]]
name = "vg"
kind = "vonage"
base_url = "{base}"
account = "{vg_key}"
token = "{vg_secret}"
webhook_secret = "{vg_sig}"
signature_method = "sha256"
public_url = "{public}"

[[sms.providers]]
name = "ib"
kind = "infobip"
base_url = "{base}"
token = "{ib_key}"
webhook_secret = "ib-callback-secret"
public_url = "{public}"

[[sms.providers]]
name = "sc"
kind = "sinch"
base_url = "{base}"
account = "{sc_plan}"
token = "{sc_token}"
webhook_secret = "sinch-callback-secret"
public_url = "{public}"

[[sms.providers]]
name = "gx"
kind = "http"
base_url = "{base}"
token = "{gx_token}"
webhook_secret = "gx-callback-secret"
public_url = "{public}"
[sms.providers.http]
url = "{{{{base_url}}}}/generic/messages"
body = '{{"to":"{{{{to}}}}","from":"{{{{from}}}}","text":"{{{{text}}}}","callback":"{{{{callback_url}}}}","reference":"{{{{reference}}}}"}}'
headers = {{ Authorization = "Bearer {{{{token}}}}" }}
id_pointer = "/id"
"#,
        sid = c.twilio_sid,
        tw_token = c.twilio_token,
        vg_key = c.vonage_key,
        vg_secret = c.vonage_secret,
        vg_sig = c.vonage_signature_secret,
        ib_key = c.infobip_key,
        sc_plan = c.sinch_plan,
        sc_token = c.sinch_token,
        gx_token = c.generic_token,
    )
}

const ROUTES: &str = r#"
[[smpp.routes]]
prefix = "1"
connector = "tw"
[[smpp.routes]]
prefix = "44"
connector = "vg"
[[smpp.routes]]
prefix = "41"
connector = "ib"
[[smpp.routes]]
prefix = "46"
connector = "sc"
[[smpp.routes]]
prefix = "33"
connector = "gx"
"#;

fn write_config(dir: &Path, toml: &str) -> std::path::PathBuf {
    let p = dir.join("hermod.toml");
    std::fs::write(&p, toml).unwrap();
    p
}

fn sim() -> ProviderSim {
    ProviderSim::start(
        ProviderSimConfig {
            receipt_delay: Duration::from_millis(100),
            undeliverable_suffix: Some("0000".into()),
            ..ProviderSimConfig::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap()
}

/// A `hermod serve` of tenant acme (owner of `senders`: number, default) on the
/// configuration `config(simulator, the server's public URL)`.
struct Rig {
    sim: ProviderSim,
    server: Server,
    key: String,
    dir: tempfile::TempDir,
}

async fn rig(config: impl FnOnce(&ProviderSim, &str) -> String, senders: &[(&str, bool)]) -> Rig {
    let sim = sim();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let path = write_config(
        dir.path(),
        &config(&sim, &format!("http://127.0.0.1:{port}")),
    );
    let key = create_key(dir.path(), "acme");
    for (sender, default) in senders {
        assign_sender(dir.path(), "acme", sender, *default);
    }
    let server = Server::start_with_config(dir.path(), &path, port);
    server.wait_healthy().await;
    Rig {
        sim,
        server,
        key,
        dir,
    }
}

/// The providers alone (no SMPP connector), each routed by its prefix, after `extra`.
fn providers_only(sim: &ProviderSim, public: &str, extra: &str) -> String {
    format!(
        "[smpp]\nurl = \"\"\n{ROUTES}\n{extra}\n{}",
        providers_toml(sim, public)
    )
}

async fn inbound(base: &str, key: &str) -> Vec<Value> {
    let (_, v, _) = call(Method::GET, &format!("{base}/v1/inbound"), key, None).await;
    v["data"].as_array().cloned().unwrap_or_default()
}

/// The sim's provider name → Hermod's connector kind in the webhook path.
fn kind_of(provider: &str) -> &str {
    match provider {
        "generic" => "http",
        p => p,
    }
}

fn connector_of(provider: &str) -> &str {
    match provider {
        "twilio" => "tw",
        "vonage" => "vg",
        "infobip" => "ib",
        "sinch" => "sc",
        _ => "gx",
    }
}

/// The inbound webhook URL the operator gives each provider.
fn inbound_url(base: &str, provider: &str) -> String {
    let u = format!(
        "{base}/v1/webhooks/{}/{}",
        kind_of(provider),
        connector_of(provider)
    );
    match provider {
        "infobip" => format!("{u}?token=ib-callback-secret"),
        "generic" => format!("{u}?token=gx-callback-secret"),
        "sinch" => u.replace("http://", "http://hermod:sinch-callback-secret@"),
        _ => u,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn each_provider_delivers_takes_inbound_and_refuses_forged_callbacks() {
    let owned: Vec<(&str, bool)> = NUMBERS.iter().map(|(_, ours, _)| (*ours, false)).collect();
    let r = rig(|sim, public| providers_only(sim, public, ""), &owned).await;
    let (sim, base, key) = (&r.sim, r.server.base.clone(), r.key.clone());

    // 429 first on Vonage: retried after its Retry-After, then delivered.
    sim.set_mode("vonage", Mode::Throttle);
    let mut ids = Vec::new();
    for (provider, ours, to) in NUMBERS {
        let text = format!("hello via {provider} ✓");
        let (s, v) = send(&base, &key, json!({"to": to, "from": ours, "text": text})).await;
        assert_eq!(s, 202, "{v}");
        ids.push((provider, v["id"].as_str().unwrap().to_owned(), text));
    }
    eventually(
        "Vonage throttled twice",
        Duration::from_secs(20),
        || async { sim.requests("vonage") >= 2 },
    )
    .await;
    sim.set_mode("vonage", Mode::Ok);
    for (provider, id, text) in &ids {
        let m = wait_status(&base, &key, id, "delivered", 40).await;
        let att = &m["attempts"][0];
        assert_eq!(att["channel"], "sms", "{m}");
        let got: Vec<_> = sim
            .accepted()
            .into_iter()
            .filter(|a| a.provider == *provider)
            .collect();
        assert!(
            got.iter().any(|a| &a.text == text),
            "{provider} did not get {text:?}: {got:?}"
        );
    }
    // The raw provider status is kept beside the unified one; ids are scoped by connector.
    let raw_of = |provider: &str| match provider {
        "twilio" => "delivered",
        "vonage" => "delivered",
        "infobip" => "DELIVERED_TO_HANDSET",
        "sinch" => "Delivered",
        _ => "delivered",
    };
    for (provider, id, _) in &ids {
        let m = wait_status(&base, &key, id, "delivered", 5).await;
        let att = &m["attempts"][0];
        assert_eq!(att["raw_status"], raw_of(provider), "{provider}: {m}");
        let pid = att["provider_ids"][0].as_str().unwrap();
        assert!(
            pid.starts_with(&format!("{}:", connector_of(provider))),
            "{provider}: {pid}"
        );
    }

    // GET /v1/connectors lists the providers beside SMPP binds.
    let (s, v, _) = call(
        Method::GET,
        &format!("{base}/v1/connectors"),
        ADMIN_TOKEN,
        None,
    )
    .await;
    assert_eq!(s, 200);
    let conns = v["data"].as_array().unwrap();
    let kinds: HashMap<&str, &str> = conns
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(kinds["tw"], "twilio");
    assert_eq!(kinds["gx"], "http");
    assert!(conns.iter().all(|c| c["healthy"] == true), "{v}");
    let tw = conns.iter().find(|c| c["name"] == "tw").unwrap();
    assert!(tw["sent_total"].as_u64().unwrap() >= 1);
    // The operator's console lists them too.
    let op = crate::console::Session::sign_in(&base, "token", ADMIN_TOKEN).await;
    let (s, page) = op.get("/console/channels").await;
    assert_eq!(s, 200);
    for (name, kind) in [
        ("tw", "twilio"),
        ("vg", "vonage"),
        ("ib", "infobip"),
        ("sc", "sinch"),
        ("gx", "http"),
    ] {
        assert!(page.contains(&format!("<td>{name}")), "{name}: {page}");
        assert!(page.contains(&format!("sms · {kind}")), "{kind}: {page}");
    }
    assert!(page.contains("HTTP API"), "{page}");

    // Inbound on each provider reaches the tenant that owns the number; STOP opts out.
    for (provider, ours, phone) in NUMBERS {
        let url = inbound_url(&base, provider);
        let status = sim
            .inbound(provider, &url, phone, ours, &format!("reply on {provider}"))
            .await;
        assert!((200..300).contains(&status), "{provider}: {status}");
    }
    eventually("five inbound messages", Duration::from_secs(20), || async {
        inbound(&base, &key).await.len() >= 5
    })
    .await;
    let got = inbound(&base, &key).await;
    for (provider, _, phone) in NUMBERS {
        let digits = phone.trim_start_matches('+');
        assert!(
            got.iter()
                .any(|m| m["text"] == format!("reply on {provider}")
                    && m["from"].as_str().unwrap().trim_start_matches('+') == digits),
            "{provider}: {got:?}"
        );
    }
    let (provider, ours, phone) = NUMBERS[3];
    sim.inbound(provider, &inbound_url(&base, provider), phone, ours, "STOP")
        .await;
    eventually("opt-out recorded", Duration::from_secs(20), || async {
        let (_, v, _) = call(Method::GET, &format!("{base}/v1/opt-outs"), &key, None).await;
        v["data"].as_array().is_some_and(|d| d.len() == 1)
    })
    .await;
    let (_, v) = send(
        &base,
        &key,
        json!({"to": phone, "from": ours, "text": "Sale!"}),
    )
    .await;
    let m = wait_status(&base, &key, v["id"].as_str().unwrap(), "rejected", 30).await;
    assert_eq!(m["reason"], "recipient_opted_out");

    // Forged or unauthenticated callbacks are refused; nothing is recorded.
    let http = reqwest::Client::new();
    let post = |url: String,
                body: &'static str,
                ct: &'static str,
                sig: Option<(&'static str, &'static str)>| {
        let mut rb = http.post(url).header("content-type", ct).body(body);
        if let Some((h, v)) = sig {
            rb = rb.header(h, v);
        }
        rb.send()
    };
    let wh = |k: &str, n: &str| format!("{base}/v1/webhooks/{k}/{n}");
    let twilio_form = "MessageSid=SMx&MessageStatus=delivered&To=%2B15557654321";
    for (url, body, ct, sig) in [
        (
            wh("twilio", "tw"),
            twilio_form,
            "application/x-www-form-urlencoded",
            Some(("X-Twilio-Signature", "AAAA")),
        ),
        (
            wh("twilio", "tw"),
            twilio_form,
            "application/x-www-form-urlencoded",
            None,
        ),
        (
            wh("vonage", "vg"),
            r#"{"msisdn":"447911123456","messageId":"X","status":"delivered","timestamp":"1","sig":"00"}"#,
            "application/json",
            None,
        ),
        (
            wh("infobip", "ib"),
            r#"{"results":[]}"#,
            "application/json",
            None,
        ),
        (
            format!("{}?token=wrong", wh("infobip", "ib")),
            r#"{"results":[]}"#,
            "application/json",
            None,
        ),
        (
            wh("sinch", "sc"),
            r#"{"type":"mo_text","from":"1","to":"2","body":"x"}"#,
            "application/json",
            None,
        ),
        (
            wh("http", "gx"),
            r#"{"id":"1","status":"delivered"}"#,
            "application/json",
            None,
        ),
    ] {
        let r = post(url.clone(), body, ct, sig).await.unwrap();
        assert_eq!(r.status(), 401, "{url}");
    }
    let r = post(
        wh("twilio", "nope"),
        twilio_form,
        "application/x-www-form-urlencoded",
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 404);
    // Every callback the simulator sent was taken.
    let callbacks = sim.callbacks();
    assert!(callbacks.len() >= 10);
    assert!(
        callbacks.iter().all(|c| (200..300).contains(&c.answered)),
        "{:?}",
        callbacks
            .iter()
            .filter(|c| !(200..300).contains(&c.answered))
            .collect::<Vec<_>>()
    );
    sim.stop().await;
}

/// The twilio SDK's `RequestValidator` accepts the simulator's callbacks: the
/// signatures Hermod checks are Twilio's.
#[tokio::test(flavor = "multi_thread")]
async fn the_twilio_sdk_validates_the_simulators_callbacks() {
    let Some((python, _)) = crate::twilio::sdk_tool("python") else {
        return;
    };
    let r = rig(
        |sim, public| providers_only(sim, public, ""),
        &[("+15550001111", true)],
    )
    .await;
    let (sim, server, key) = (&r.sim, &r.server, r.key.clone());
    let (_, v) = send(
        &server.base,
        &key,
        json!({"to": "+15557654321", "from": "+15550001111", "text": "sdk check"}),
    )
    .await;
    wait_status(
        &server.base,
        &key,
        v["id"].as_str().unwrap(),
        "delivered",
        30,
    )
    .await;
    sim.inbound(
        "twilio",
        &inbound_url(&server.base, "twilio"),
        "+15557654321",
        "+15550001111",
        "hi",
    )
    .await;
    let cbs: Vec<Value> = sim
        .callbacks()
        .into_iter()
        .filter(|c| c.provider == "twilio")
        .map(|c| {
            json!({
                "url": c.url,
                "params": c.params.iter().cloned().collect::<HashMap<_, _>>(),
                "signature": c.signature,
            })
        })
        .collect();
    assert!(cbs.len() >= 3, "sent, delivered and an inbound message");
    let script = format!(
        "{}/tests/sdk/python/validate_callbacks.py",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut child = tokio::process::Command::new(python)
        .arg(script)
        .env("TWILIO_AUTH_TOKEN", &sim.config().twilio_token)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use tokio::io::AsyncWriteExt as _;
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(serde_json::to_string(&cbs).unwrap().as_bytes())
        .await
        .unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert_eq!(stdout.trim(), format!("OK {}", cbs.len()));
    sim.stop().await;
}

/// A cheap HTTP provider fails mid-run (503s); the SMPP connector takes over: every
/// message is delivered, each reached exactly one upstream exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn failover_between_an_http_provider_and_smpp_loses_nothing_and_sends_nothing_twice() {
    let smsc = start_smsc(SmscConfig {
        dlr_delay: Duration::from_millis(20),
        ..Default::default()
    })
    .await;
    let r = rig(
        |sim, public| {
            format!(
                r#"
[smpp]
[[smpp.connectors]]
name = "smsc"
url = "{}"
[[smpp.routes]]
prefix = "1"
connector = "tw"
cost = 0.005
[[smpp.routes]]
prefix = "1"
connector = "smsc"
cost = 0.02
[workers]
in_doubt_grace_secs = 2
{}
"#,
                smsc.url("esme", "pw"),
                providers_toml(sim, public)
            )
        },
        &[],
    )
    .await;
    let (sim, base, key) = (&r.sim, r.server.base.clone(), r.key.clone());
    let total = 200;
    let sender = {
        let (base, key) = (base.clone(), key.clone());
        tokio::spawn(async move {
            for chunk in 0..(total / 10) {
                let msgs: Vec<Value> = (0..10)
                    .map(
                        |j| json!({"to": "+15557654321", "text": format!("us {}", chunk * 10 + j)}),
                    )
                    .collect();
                let (s, _, _) = call(
                    Method::POST,
                    &format!("{base}/v1/messages/batch"),
                    &key,
                    Some(json!({ "messages": msgs })),
                )
                .await;
                assert_eq!(s, 202);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let on_twilio = || {
        sim.accepted()
            .into_iter()
            .filter(|a| a.provider == "twilio")
            .count()
    };
    eventually("Twilio takes traffic", Duration::from_secs(20), || async {
        on_twilio() >= 20
    })
    .await;
    sim.set_mode("twilio", Mode::Unavailable);
    let before = smsc.submit_count();
    eventually("the SMSC takes over", Duration::from_secs(30), || async {
        smsc.submit_count() >= before + 20
    })
    .await;
    sim.set_mode("twilio", Mode::Ok);
    sender.await.unwrap();
    eventually(
        "every message delivered",
        Duration::from_secs(90),
        || async { crate::sms::delivered_count(&base, &key).await >= total },
    )
    .await;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for a in sim.accepted() {
        *seen.entry(a.text).or_default() += 1;
    }
    for s in smsc.submitted() {
        *seen
            .entry(String::from_utf8_lossy(&s.short_message).into_owned())
            .or_default() += 1;
    }
    for i in 0..total {
        assert_eq!(
            seen.get(&format!("us {i}")).copied(),
            Some(1),
            "us {i} must reach exactly one upstream exactly once"
        );
    }
    assert!(smsc.submit_count() >= 20 && on_twilio() >= 20);
    sim.stop().await;
    smsc.stop();
}

/// The channel conformance checks (`conformance.rs`), per HTTP provider: a message
/// through it reaches `delivered` with the provider's id and raw status, `sent` then
/// `delivered` on its timeline, sent once; a recipient the provider cannot reach ends
/// `failed` with the receipt's error code; an idempotent retry is one message, sent once.
#[tokio::test(flavor = "multi_thread")]
async fn every_provider_passes_the_channel_conformance_checks() {
    let r = rig(|sim, public| providers_only(sim, public, ""), &[]).await;
    let (sim, base, key) = (&r.sim, r.server.base.clone(), r.key.clone());
    let sends_to = |provider: &str, to: &str| {
        sim.accepted()
            .iter()
            .filter(|a| a.provider == provider)
            .filter(|a| a.to.trim_start_matches('+') == to.trim_start_matches('+'))
            .map(|a| a.id.clone())
            .collect::<std::collections::HashSet<_>>()
            .len()
    };
    let failing_error = |provider: &str| match provider {
        "twilio" => "twilio:30003",
        "vonage" => "vonage:1",
        "infobip" => "infobip:1",
        "sinch" => "sinch:406",
        _ => "http:absent_subscriber",
    };
    for (provider, _, to) in NUMBERS {
        let ok = format!("{}1", &to[..to.len() - 1]);
        let (s, v) = send(
            &base,
            &key,
            json!({"to": ok, "text": "conformance", "channels": ["sms"]}),
        )
        .await;
        assert_eq!(s, 202, "{v}");
        let m = wait_status(&base, &key, v["id"].as_str().unwrap(), "delivered", 30).await;
        let a = &m["attempts"][0];
        assert!(a["provider_ids"][0].is_string(), "{provider}: {m}");
        assert!(a["raw_status"].is_string(), "{provider}: {m}");
        let t: Vec<&str> = m["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["type"].as_str().unwrap())
            .collect();
        let sent = t.iter().position(|e| *e == "message.sent");
        let delivered = t.iter().position(|e| *e == "message.delivered");
        assert!(sent.is_some() && delivered > sent, "{provider}: {t:?}");
        assert_eq!(sends_to(provider, &ok), 1, "{provider}: sent once");

        // A recipient the provider cannot reach: its failure receipt ends the message.
        let bad = format!("{}0000", &to[..to.len() - 4]);
        let (_, v) = send(
            &base,
            &key,
            json!({"to": bad, "text": "conformance", "channels": ["sms"]}),
        )
        .await;
        let m = wait_status(&base, &key, v["id"].as_str().unwrap(), "failed", 30).await;
        assert_eq!(
            m["attempts"][0]["error"]["code"],
            failing_error(provider),
            "{provider}: {m}"
        );

        // An idempotent retry is one message, sent once.
        let again = format!("{}5", &to[..to.len() - 1]);
        let url = format!("{base}/v1/messages");
        let mut ids = Vec::new();
        for _ in 0..2 {
            let r = reqwest::Client::new()
                .post(&url)
                .bearer_auth(&key)
                .header("Idempotency-Key", format!("providers-{provider}"))
                .json(&json!({"to": again, "text": "once", "channels": ["sms"]}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202);
            ids.push(
                r.json::<Value>().await.unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
        assert_eq!(ids[0], ids[1]);
        wait_status(&base, &key, &ids[0], "delivered", 30).await;
        assert_eq!(
            sends_to(provider, &again),
            1,
            "{provider}: the retry sent once"
        );
    }
    sim.stop().await;
}

/// The provider takes a message but its answer comes after Hermod's timeout: the send
/// is in doubt. The receipt, which echoes the message's reference, settles it — the
/// message is delivered and not sent again.
#[tokio::test(flavor = "multi_thread")]
async fn a_lost_answer_is_settled_by_the_receipt_not_sent_again() {
    // Twilio answers after 3 s; Hermod waits 1 s, and 20 s for receipts.
    let r = rig(
        |sim, public| {
            providers_only(sim, public, "[workers]\nin_doubt_grace_secs = 20").replacen(
                "failure_threshold = 3",
                "failure_threshold = 100\ntimeout_secs = 1",
                1,
            )
        },
        &[],
    )
    .await;
    let (sim, base, key) = (&r.sim, r.server.base.clone(), r.key.clone());
    sim.set_mode("twilio", Mode::SlowAnswer);
    let mut ids = Vec::new();
    for i in 0..3 {
        let (s, v) = send(
            &base,
            &key,
            json!({"to": format!("+1555765432{i}"), "text": format!("in doubt {i}"), "channels": ["sms"]}),
        )
        .await;
        assert_eq!(s, 202, "{v}");
        ids.push(v["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        let m = wait_status(&base, &key, id, "delivered", 40).await;
        assert!(
            m["attempts"][0]["provider_ids"][0]
                .as_str()
                .unwrap()
                .starts_with("tw:"),
            "{m}"
        );
    }
    // Given time to (wrongly) send again, nothing more reaches the provider.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for i in 0..3 {
        let n = sim
            .accepted()
            .iter()
            .filter(|a| a.text == format!("in doubt {i}"))
            .count();
        assert_eq!(n, 1, "in doubt {i} sent {n} times");
    }
    sim.stop().await;
}

/// Routes name providers and SMPP connectors alike: a provider nobody answers at is
/// passed over at once (nothing was sent), and a reload moves the traffic to another
/// provider without a restart.
#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_provider_is_passed_over_and_routes_reload() {
    let smsc = start_smsc(SmscConfig::default()).await;
    let dead = format!("http://127.0.0.1:{}", free_port());
    let config_with = |sim: &ProviderSim, public: &str, first: &str| {
        format!(
            r#"
[smpp]
[[smpp.connectors]]
name = "smsc"
url = "{}"
[[smpp.routes]]
prefix = "44"
connector = "{first}"
cost = 0.001
[[smpp.routes]]
prefix = "44"
connector = "smsc"
cost = 0.05
[[sms.providers]]
name = "nowhere"
kind = "twilio"
base_url = "{dead}"
account = "AC1"
token = "t"
{}
"#,
            smsc.url("esme", "pw"),
            providers_toml(sim, public)
        )
    };
    let r = rig(|sim, public| config_with(sim, public, "nowhere"), &[]).await;
    let (sim, base, key) = (&r.sim, r.server.base.clone(), r.key.clone());
    let (_, v) = send(
        &base,
        &key,
        json!({"to": "+447911123456", "text": "via the smsc", "channels": ["sms"]}),
    )
    .await;
    let m = wait_status(&base, &key, v["id"].as_str().unwrap(), "delivered", 30).await;
    assert!(
        m["attempts"][0]["provider_ids"][0]
            .as_str()
            .unwrap()
            .starts_with("smsc:"),
        "{m}"
    );
    assert_eq!(m["attempts"].as_array().unwrap().len(), 1, "{m}");

    // Reload: the cheap route is now Vonage's.
    write_config(r.dir.path(), &config_with(sim, &base, "vg"));
    let (s, v, _) = call(
        Method::POST,
        &format!("{base}/v1/admin/reload"),
        ADMIN_TOKEN,
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["applied"][0]["connector"], "vg", "{v}");
    let (_, v) = send(
        &base,
        &key,
        json!({"to": "+447911123456", "text": "via vonage", "channels": ["sms"]}),
    )
    .await;
    let m = wait_status(&base, &key, v["id"].as_str().unwrap(), "delivered", 30).await;
    assert!(
        m["attempts"][0]["provider_ids"][0]
            .as_str()
            .unwrap()
            .starts_with("vg:"),
        "{m}"
    );
    assert!(
        sim.accepted()
            .iter()
            .any(|a| a.provider == "vonage" && a.text == "via vonage")
    );
    sim.stop().await;
    smsc.stop();
}
