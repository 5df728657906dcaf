//! RCS through the RBM simulator: rich content in RBM's JSON shape, receipts from
//! signed events (sent → delivered → read), webhook signatures and the setup
//! handshake, duplicate events, user replies as inbound messages, numbers that are not
//! RCS-capable, and the API's content validation — the real binary.

use std::time::Duration;

use hermod_crypto::rbm::{DEMO_CLIENT_EMAIL, DEMO_SERVICE_ACCOUNT_PEM};
use hermod_sim::rbm::{RbmSim, RbmSimConfig};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{
    self, Server, call, create_key_with_tenant, eventually, free_port, get_message, send_message,
    start_smsc,
};

const AGENT: &str = "e2e-agent@rbm.goog";
const TOKEN: &str = "e2e-client-token";
/// An SMS number the rig's tenant owns.
pub const SHOP_NUMBER: &str = "+447700900712";

pub(crate) struct Rig {
    pub server: Server,
    pub sim: RbmSim,
    pub key: String,
    pub dir: tempfile::TempDir,
    pub config: std::path::PathBuf,
    pub port: u16,
    pub smsc: hermod_sim::smsc::Smsc,
}

/// A server with one RBM agent `shop` on the simulator; `tweak` sets the simulator up.
pub(crate) async fn rig(tweak: impl FnOnce(&mut RbmSimConfig)) -> Rig {
    rig_with(Default::default(), tweak).await
}

/// `rig` with the SMSC simulator set up by `smsc`.
pub(crate) async fn rig_with(
    smsc: hermod_sim::smsc::SmscConfig,
    tweak: impl FnOnce(&mut RbmSimConfig),
) -> Rig {
    let smsc = start_smsc(smsc).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut cfg = RbmSimConfig::new(AGENT, DEMO_CLIENT_EMAIL, DEMO_SERVICE_ACCOUNT_PEM).unwrap();
    cfg.webhook_url = Some(format!("http://127.0.0.1:{port}/v1/webhooks/rbm/shop"));
    cfg.client_token = TOKEN.into();
    cfg.delivery_delay = Duration::from_millis(100);
    cfg.read_delay = Some(Duration::from_millis(200));
    tweak(&mut cfg);
    let sim = RbmSim::start(cfg, "127.0.0.1:0".parse().unwrap()).unwrap();
    let sa = dir.path().join("service-account.json");
    std::fs::write(
        &sa,
        json!({
            "type": "service_account",
            "client_email": DEMO_CLIENT_EMAIL,
            "private_key": DEMO_SERVICE_ACCOUNT_PEM,
            "token_uri": sim.token_uri(),
        })
        .to_string(),
    )
    .unwrap();
    // A private key: Hermod refuses one others may read.
    std::fs::set_permissions(&sa, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    // The shop tenant owns the agent (its users' replies) and an SMS number.
    let (tenant, key) = create_key_with_tenant(dir.path(), "shop");
    let config = dir.path().join("hermod.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[smpp]
url = "{smpp}"
help_reply = "Shop help: reply STOP to opt out."

[[senders.assign]]
sender = "{SHOP_NUMBER}"
tenant = "{tenant}"

[[rcs.agents]]
name = "shop"
tenant = "{tenant}"
agent_id = "{AGENT}"
service_account_file = "{sa}"
base_url = "{base}"
client_token = "{TOKEN}"
"#,
            smpp = smsc.url("hermod", "secret"),
            sa = sa.display(),
            base = sim.base_url(),
        ),
    )
    .unwrap();
    let server = Server::start_with_config(dir.path(), &config, port);
    server.wait_healthy().await;
    Rig {
        server,
        sim,
        key,
        dir,
        config,
        port,
        smsc,
    }
}

async fn send(r: &Rig, body: Value) -> (u16, Value) {
    send_message(&r.server.base, &r.key, body).await
}

async fn message(r: &Rig, id: &str) -> Value {
    get_message(&r.server.base, &r.key, id).await
}

async fn wait_status(r: &Rig, id: &str, want: &str) -> Value {
    support::wait_status(&r.server.base, &r.key, id, want, 15).await
}

async fn inbound(r: &Rig) -> Vec<Value> {
    let v = call(
        Method::GET,
        &format!("{}/v1/inbound", r.server.base),
        &r.key,
        None,
    )
    .await
    .1;
    v["data"].as_array().cloned().unwrap_or_default()
}

/// POSTs to the agent's webhook as RBM would.
async fn webhook(r: &Rig, body: &str, signature: Option<&str>) -> (u16, String) {
    let mut req = reqwest::Client::new()
        .post(format!("{}/v1/webhooks/rbm/shop", r.server.base))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(s) = signature {
        req = req.header("X-Goog-Signature", s);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

fn statuses(m: &Value) -> Vec<String> {
    m["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn rich_messages_reach_read_and_replies_come_back_as_inbound() {
    let r = rig(|_| {}).await;
    let phone = "+447700900100";
    r.sim.add_device(phone, None, true);
    let (s, card) = send(
        &r,
        json!({
            "to": phone, "channels": ["rcs"],
            "content": {"card": {"title": "Order 1234 shipped", "description": "Arrives Tuesday",
                "media": {"url": "https://shop.example/box.png"},
                "suggestions": [{"open_url": {"text": "Track", "url": "https://shop.example/t/1234"}}]}},
            "suggestions": [{"reply": {"text": "Thanks", "postback_data": "thanks_1234"}},
                            {"view_location": {"text": "Pick-up point", "latitude": 51.5, "longitude": -0.12}}]
        }),
    )
    .await;
    assert_eq!(s, 202, "{card}");
    // The plain-text form is derived for channels without rich content.
    assert_eq!(
        card["text"],
        "Order 1234 shipped\nArrives Tuesday\nTrack: https://shop.example/t/1234"
    );
    let (s, carousel) = send(
        &r,
        json!({
            "to": phone, "channels": ["rcs"], "ttl": 3600,
            "content": {"carousel": [
                {"title": "Red", "media": {"url": "https://shop.example/r.png"}, "suggestions": [{"reply": {"text": "Red"}}]},
                {"title": "Blue", "media": {"url": "https://shop.example/b.png"}, "suggestions": [{"reply": {"text": "Blue"}}]}
            ]}
        }),
    )
    .await;
    assert_eq!(s, 202, "{carousel}");
    for m in [&card, &carousel] {
        let done = wait_status(&r, m["id"].as_str().unwrap(), "read").await;
        let st = statuses(&done);
        let pos = |s: &str| st.iter().position(|x| x == s).unwrap();
        assert!(
            pos("sent") < pos("delivered") && pos("delivered") < pos("read"),
            "{st:?}"
        );
        assert_eq!(done["attempts"][0]["channel"], "rcs");
        assert_eq!(done["attempts"][0]["raw_status"], "READ");
    }
    // What RBM got: its AgentMessage JSON, each message id once.
    let got = r.sim.received();
    assert_eq!(got.len(), 2);
    // The two may be sent in either order (in parallel, distributed).
    let has = |kind: &str| {
        got.iter()
            .find(|g| g.2["contentMessage"]["richCard"].get(kind).is_some())
            .unwrap()
    };
    let card_json = &has("standaloneCard").2["contentMessage"];
    assert_eq!(
        card_json["richCard"]["standaloneCard"]["cardContent"]["title"],
        "Order 1234 shipped"
    );
    assert_eq!(
        card_json["richCard"]["standaloneCard"]["cardContent"]["suggestions"][0]["action"]["openUrlAction"]
            ["url"],
        "https://shop.example/t/1234"
    );
    assert_eq!(
        card_json["suggestions"][0],
        json!({"reply": {"text": "Thanks", "postbackData": "thanks_1234"}})
    );
    assert_eq!(
        card_json["suggestions"][1]["action"]["viewLocationAction"]["latLong"],
        json!({"latitude": 51.5, "longitude": -0.12})
    );
    let car = &has("carouselCard").2;
    assert_eq!(
        car["contentMessage"]["richCard"]["carouselCard"]["cardContents"][1]["title"],
        "Blue"
    );
    assert!(car["ttl"].as_str().unwrap().ends_with('s'));

    // The user taps "Thanks" and shares a location: inbound messages of this tenant.
    r.sim.user_message(phone, "Thanks", Some("thanks_1234"));
    eventually("the reply", Duration::from_secs(10), || async {
        !inbound(&r).await.is_empty()
    })
    .await;
    r.sim.user_location(phone, 51.5, -0.12);
    eventually("the location", Duration::from_secs(10), || async {
        inbound(&r).await.len() == 2
    })
    .await;
    let list = inbound(&r).await;
    let tap = list.iter().find(|m| m["text"] == "Thanks").unwrap();
    assert_eq!(tap["from"], phone);
    assert_eq!(tap["to"], AGENT);
    assert_eq!(tap["connector"], "rbm:shop");
    assert_eq!(tap["payload"]["type"], "suggestion_response");
    assert_eq!(tap["payload"]["postback_data"], "thanks_1234");
    let loc = list
        .iter()
        .find(|m| m["payload"]["type"] == "location")
        .unwrap();
    assert_eq!(loc["payload"]["latitude"], 51.5);

    // HELP is answered over RCS, through the same agent.
    r.sim.user_message(phone, "help", None);
    eventually("the HELP reply at RBM", Duration::from_secs(10), || async {
        r.sim.received().iter().any(|(p, _, m)| {
            p == phone && m["contentMessage"]["text"] == "Shop help: reply STOP to opt out."
        })
    })
    .await;
    r.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn webhook_checks_signatures_answers_the_handshake_and_ignores_duplicates() {
    // The device never acknowledges by itself: this test sends the events.
    let r = rig(|c| c.delivery_delay = Duration::from_secs(3600)).await;
    let phone = "+447700900200";
    r.sim.add_device(phone, None, true);

    // Registration handshake: the secret comes back only for the right clientToken.
    let (s, body) = webhook(
        &r,
        &json!({"clientToken": TOKEN, "secret": "s3cr3t-nonce"}).to_string(),
        None,
    )
    .await;
    assert_eq!((s, body.as_str()), (200, "s3cr3t-nonce"));
    let (s, _) = webhook(
        &r,
        &json!({"clientToken": "guess", "secret": "x"}).to_string(),
        None,
    )
    .await;
    assert_eq!(s, 401);

    let (_, m) = send(
        &r,
        json!({"to": phone, "channels": ["rcs"], "text": "Your code is 123456"}),
    )
    .await;
    let id = m["id"].as_str().unwrap().to_owned();
    let sent = wait_status(&r, &id, "sent").await;
    let pid = sent["attempts"][0]["provider_ids"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let rbm_id = pid.strip_prefix("rbm:").unwrap();
    assert_eq!(r.sim.received()[0].1, rbm_id);

    let read = json!({"senderPhoneNumber": phone, "eventType": "READ", "eventId": "EV-READ-1",
                      "messageId": rbm_id, "sendTime": "2026-11-22T10:00:00Z", "agentId": AGENT});
    let (body, sig) = r.sim.signed_envelope(&read);
    // Forged: signed with another token; missing; data swapped under a valid signature.
    let forged = hermod_crypto::rbm::sign_webhook("not-the-token", read.to_string().as_bytes());
    assert_eq!(webhook(&r, &body, Some(&forged)).await.0, 401);
    assert_eq!(webhook(&r, &body, None).await.0, 401);
    let (other, _) = r
        .sim
        .signed_envelope(&json!({"eventType": "READ", "eventId": "EV-X", "messageId": rbm_id}));
    assert_eq!(webhook(&r, &other, Some(&sig)).await.0, 401);
    assert_eq!(
        message(&r, &id).await["status"],
        "sent",
        "rejected events change nothing"
    );

    // A server event: RBM could not revoke at TTL. Recorded, the status stays.
    let failed = json!({"eventType": "TTL_EXPIRATION_REVOKE_FAILED", "eventId": "EV-TTL-1",
                        "messageId": rbm_id, "phoneNumber": phone, "agentId": AGENT});
    let (b, s1) = r.sim.signed_envelope(&failed);
    assert_eq!(webhook(&r, &b, Some(&s1)).await.0, 200);
    let noted = message(&r, &id).await;
    assert_eq!(noted["status"], "sent");
    assert_eq!(
        noted["attempts"][0]["raw_status"],
        "TTL_EXPIRATION_REVOKE_FAILED"
    );

    let (s, v) = webhook(&r, &body, Some(&sig)).await;
    assert_eq!((s, v.contains("\"ok\"")), (200, true), "{v}");
    assert_eq!(message(&r, &id).await["status"], "read");
    // The same event again (RBM redelivers): acknowledged, nothing changes.
    let (s, v) = webhook(&r, &body, Some(&sig)).await;
    assert_eq!((s, v.contains("duplicate")), (200, true), "{v}");
    // A late DELIVERED after READ never moves the message back.
    let late = json!({"senderPhoneNumber": phone, "eventType": "DELIVERED", "eventId": "EV-DEL-1",
                      "messageId": rbm_id, "agentId": AGENT});
    let (b, s2) = r.sim.signed_envelope(&late);
    assert_eq!(webhook(&r, &b, Some(&s2)).await.0, 200);
    let after = message(&r, &id).await;
    assert_eq!(after["status"], "read");
    assert_eq!(
        statuses(&after).iter().filter(|s| *s == "read").count(),
        1,
        "one read event"
    );

    // A user message delivered twice is stored once.
    let reply = json!({"senderPhoneNumber": phone, "messageId": "USER-MSG-1",
                       "sendTime": "2026-11-22T10:01:00Z", "agentId": AGENT, "text": "ok thanks"});
    let (b, s3) = r.sim.signed_envelope(&reply);
    assert_eq!(webhook(&r, &b, Some(&s3)).await.0, 200);
    assert_eq!(webhook(&r, &b, Some(&s3)).await.0, 200);
    let list = inbound(&r).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["text"], "ok thanks");

    // An unknown agent name is acknowledged (RBM would retry a refusal for days) and
    // counted; bad JSON (not from Google) is 400.
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/webhooks/rbm/nobody", r.server.base))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        (v["status"].as_str(), v["reason"].as_str()),
        (Some("ignored"), Some("unknown_agent"))
    );
    assert_eq!(webhook(&r, "not json", Some(&sig)).await.0, 400);
    r.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn numbers_without_rcs_fail_and_content_errors_name_the_field() {
    let r = rig(|_| {}).await;
    let (s, m) = send(
        &r,
        json!({"to": "+447700900300", "channels": ["rcs"], "text": "hi"}),
    )
    .await;
    assert_eq!(s, 202);
    let done = wait_status(&r, m["id"].as_str().unwrap(), "failed").await;
    assert_eq!(done["attempts"][0]["error"]["code"], "rcs_not_capable");
    assert_eq!(done["attempts"][0]["error"]["permanent"], true);
    assert!(r.sim.received().is_empty());

    // The agent belongs to the shop tenant: another tenant can neither name it nor
    // have its messages carried by it.
    let other = crate::support::create_key(r.dir.path(), "other");
    r.sim.add_device("+447700900302", None, true);
    let (s, v) = send_message(
        &r.server.base,
        &other,
        json!({"to": "+447700900302", "channels": ["rcs"], "from": "shop", "text": "hi"}),
    )
    .await;
    assert_eq!(
        (s, v["error"]["field"].as_str()),
        (403, Some("from")),
        "{v}"
    );
    let (s, m) = send_message(
        &r.server.base,
        &other,
        json!({"to": "+447700900302", "channels": ["rcs"], "text": "hi"}),
    )
    .await;
    assert_eq!(s, 202);
    let done = support::wait_status(
        &r.server.base,
        &other,
        m["id"].as_str().unwrap(),
        "failed",
        15,
    )
    .await;
    assert_eq!(
        done["attempts"][0]["error"]["code"], "rcs_no_agent",
        "{done}"
    );
    assert!(r.sim.received().is_empty());

    // A device that stays offline past the ttl: RBM revokes it and says so.
    r.sim.add_device("+447700900301", None, false);
    let (_, m) = send(
        &r,
        json!({"to": "+447700900301", "channels": ["rcs"], "text": "flash sale", "ttl": 1}),
    )
    .await;
    let done = wait_status(&r, m["id"].as_str().unwrap(), "expired").await;
    assert_eq!(done["attempts"][0]["raw_status"], "TTL_EXPIRATION_REVOKED");
    assert_eq!(done["attempts"][0]["error"]["code"], "ttl_expired");

    let cases = [
        (
            json!({"to": "+447700900300", "text": "hi", "suggestions": [{"reply": {"text": "x".repeat(26)}}]}),
            "suggestions[0].reply.text",
        ),
        (
            json!({"to": "+447700900300", "content": {"carousel": [{"title": "only one"}]}}),
            "content.carousel",
        ),
        (
            json!({"to": "+447700900300", "content": {"card": {"title": "t", "colour": "red"}}}),
            "content.card.colour",
        ),
        (
            json!({"to": "+447700900300", "content": {"card": {"title": "t".repeat(201)}}}),
            "content.card.title",
        ),
        (
            json!({"to": "+447700900300", "content": {"text": "hi"}, "suggestions": vec![json!({"reply": {"text": "a"}}); 12]}),
            "suggestions",
        ),
        (
            json!({"to": "+447700900300", "text": "hi", "suggestions": [{"open_url": {"text": "Go", "url": "javascript:alert(1)"}}]}),
            "suggestions[0].open_url.url",
        ),
        (json!({"to": "+447700900300"}), "text"),
        (
            json!({"to": "+447700900300", "content": {"card": {"title": "t",
                   "media": {"url": "https://shop.example/p.png", "upload": true}}}}),
            "content.card.media.upload",
        ),
    ];
    for (body, field) in cases {
        let (s, v) = send(&r, body.clone()).await;
        assert_eq!(s, 400, "{body}: {v}");
        assert_eq!(v["error"]["field"], field, "{body}: {v}");
    }
    r.sim.stop().await;
}

/// A server without RCS agents refuses `channels: ["rcs"]` and has no RBM webhook.
pub(crate) async fn rcs_is_refused_when_not_configured(base: &str, key: &str) {
    let (s, v, _) = call(
        Method::POST,
        &format!("{base}/v1/messages"),
        key,
        Some(json!({"to": "+447700900400", "text": "hi", "channels": ["rcs"]})),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["field"], "channels[0]");
    let r = reqwest::Client::new()
        .post(format!("{base}/v1/webhooks/rbm/shop"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

/// Every row of every table of the server's database, each as one line of text.
async fn every_row(dir: &std::path::Path) -> Vec<(String, String)> {
    use diesel::QueryableByName;
    use diesel_async::RunQueryDsl;
    #[derive(QueryableByName)]
    struct Line {
        #[diesel(sql_type = diesel::sql_types::Text)]
        line: String,
    }
    let url = support::backend_env(dir)
        .into_iter()
        .find(|(k, _)| k == "HERMOD_DATABASE_URL")
        .map(|(_, v)| v)
        .unwrap_or_else(|| dir.join("hermod.db").to_string_lossy().into_owned());
    let mut out = Vec::new();
    match hermod_store::Db::open(&url, 1).await.unwrap() {
        hermod_store::Db::Pg(pool) => {
            let mut c = pool.get().await.unwrap();
            let tables: Vec<Line> = diesel::sql_query(
                "SELECT table_name::text AS line FROM information_schema.tables \
                 WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
            )
            .load(&mut c)
            .await
            .unwrap();
            for t in tables {
                let rows: Vec<Line> = diesel::sql_query(format!(
                    "SELECT row_to_json(x)::text AS line FROM \"{}\" x",
                    t.line
                ))
                .load(&mut c)
                .await
                .unwrap();
                out.extend(rows.into_iter().map(|r| (t.line.clone(), r.line)));
            }
        }
        hermod_store::Db::Lite { pool, .. } => {
            let mut c = pool.get().await.unwrap();
            let tables: Vec<Line> =
                diesel::sql_query("SELECT name AS line FROM sqlite_master WHERE type = 'table'")
                    .load(&mut c)
                    .await
                    .unwrap();
            for t in tables {
                let cols: Vec<Line> = diesel::sql_query(format!(
                    "SELECT name AS line FROM pragma_table_info('{}')",
                    t.line
                ))
                .load(&mut c)
                .await
                .unwrap();
                let cols: Vec<String> = cols.iter().map(|c| format!("\"{}\"", c.line)).collect();
                let rows: Vec<Line> = diesel::sql_query(format!(
                    "SELECT json_array({}) AS line FROM \"{}\"",
                    cols.join(", "),
                    t.line
                ))
                .load(&mut c)
                .await
                .unwrap();
                out.extend(rows.into_iter().map(|r| (t.line.clone(), r.line)));
            }
        }
    }
    out
}

/// After `DELETE /v1/subjects/{number}`, no table holds the number (in any format)
/// or any of its texts readably: a subject that sent and received SMS and RCS, had an
/// app device, webhooks and batch requests, and a reply still waiting for its parts.
#[tokio::test(flavor = "multi_thread")]
async fn an_erased_subject_is_in_no_table() {
    use hermod_sim::device::DeviceSim;
    let r = rig(|_| {}).await;
    let base = r.server.base.clone();
    let (ada, bob) = ("+447700900301", "+447700900302");
    r.sim.add_device(ada, None, true);
    let (s, ep, _) = call(
        Method::POST,
        &format!("{base}/v1/webhook-endpoints"),
        &r.key,
        Some(json!({"url": "http://127.0.0.1:9/hook",
                    "events": ["message.inbound", "message.typing", "message.sent",
                               "message.delivered"]})),
    )
    .await;
    assert_eq!(s, 201, "{ep}");
    let device = DeviceSim::register(
        &base,
        &r.key,
        ada,
        hermod_crypto::hpke::Aead::ChaCha20Poly1305,
    )
    .await
    .unwrap();
    let mut ids = Vec::new();
    for body in [
        json!({"to": ada, "channels": ["sms"], "text": "AdaSms4411",
               "metadata": {"customer": "AdaMeta1177", "phone": ada}}),
        json!({"to": ada, "channels": ["rcs"], "text": "AdaRcs5522",
               "metadata": {"customer": "AdaMeta1177"}}),
        json!({"to": ada, "channels": ["app"], "text": "AdaApp3300"}),
    ] {
        let (s, m) = send(&r, body).await;
        assert_eq!(s, 202, "{m}");
        ids.push(m["id"].as_str().unwrap().to_owned());
    }
    // A batch whose response is sealed under its first recipient's key: Bob's.
    let batch = || {
        reqwest::Client::new()
            .post(format!("{base}/v1/messages/batch"))
            .bearer_auth(&r.key)
            .header("Idempotency-Key", "batch-erasure-1")
            .json(&json!({"messages": [
                {"to": bob, "channels": ["sms"], "text": "BobBatch2211"},
                {"to": ada, "channels": ["sms"], "text": "AdaBatch6633"},
            ]}))
            .send()
    };
    let first = batch().await.unwrap();
    assert_eq!(first.status().as_u16(), 202);
    let first = first.text().await.unwrap();
    assert!(first.contains("AdaBatch6633"), "{first}");
    // Ada writes back over SMS and RCS, and a two-part SMS of hers lacks its second part.
    let (ada_digits, shop) = (
        ada.trim_start_matches('+'),
        SHOP_NUMBER.trim_start_matches('+'),
    );
    r.smsc
        .inject_mo("hermod", ada_digits, shop, "AdaMo7744", false);
    r.sim.user_message(ada, "AdaRbm8855", None);
    let long = format!("AdaPart9966 {}", "and more words ".repeat(14));
    assert_eq!(
        r.smsc
            .inject_mo_parts("hermod", ada_digits, shop, &long, false, 1),
        2
    );
    eventually("both replies", Duration::from_secs(15), || async {
        inbound(&r).await.len() == 2
    })
    .await;
    for id in &ids[..2] {
        wait_status(&r, id, "delivered").await;
    }
    assert_eq!(device.poll(0).await.unwrap().len(), 1);

    let needles = [
        "7700900301",
        "AdaSms4411",
        "AdaRcs5522",
        "AdaApp3300",
        "AdaBatch6633",
        "AdaMo7744",
        "AdaRbm8855",
        "AdaPart9966",
        "AdaMeta1177",
    ];
    let found = |rows: &[(String, String)]| -> Vec<String> {
        rows.iter()
            .flat_map(|(t, line)| {
                needles
                    .iter()
                    .filter(|n| line.contains(**n))
                    .map(move |n| format!("{n} in {t}"))
            })
            .collect()
    };
    // The scan sees what is not sealed: the waiting part, the device, the payloads.
    let before = found(&every_row(r.dir.path()).await);
    for n in [
        "AdaPart9966 in inbound_parts",
        "7700900301 in devices",
        "AdaMo7744 in webhook_deliveries",
    ] {
        assert!(before.iter().any(|f| f == n), "{n} not seen: {before:?}");
    }
    // Her phone said it was typing (before the RCS reply): a message.typing delivery
    // for the endpoint that asked for it, with her number.
    eventually("the typing delivery", Duration::from_secs(15), || async {
        every_row(r.dir.path()).await.iter().any(|(t, line)| {
            t == "webhook_deliveries"
                && line.contains("message.typing")
                && line.contains("7700900301")
        })
    })
    .await;

    let (s, v, _) = call(
        Method::DELETE,
        &format!("{base}/v1/subjects/{ada}"),
        &r.key,
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let rows = every_row(r.dir.path()).await;
    assert_eq!(found(&rows), Vec::<String>::new());
    let (_, bobs, _) = call(
        Method::GET,
        &format!("{base}/v1/messages?to=%2B447700900302"),
        &r.key,
        None,
    )
    .await;
    assert_eq!(
        bobs["data"][0]["text"], "BobBatch2211",
        "Bob's is whole: {bobs}"
    );
    // Nor through the API: the batch's replay, the replies, Bob's message still whole.
    let replay = batch().await.unwrap().text().await.unwrap();
    assert!(
        !replay.contains("7700900301") && !replay.contains("AdaBatch6633"),
        "{replay}"
    );
    let listed = inbound(&r)
        .await
        .iter()
        .map(Value::to_string)
        .collect::<String>();
    assert!(
        !listed.contains("7700900301") && !listed.contains("Ada"),
        "{listed}"
    );
    assert!(device.poll(0).await.is_err(), "the device is gone");
}

/// Events as RBM's reference defines them that name no message: IS_TYPING (a phone
/// sends one before each message), UNSUBSCRIBE and SUBSCRIBE (opt-out and back in, for
/// this agent, in the audit log), AgentLaunchEvent (its state on GET /v1/connectors);
/// an unknown event type or one Hermod cannot use is acknowledged, never refused.
#[tokio::test(flavor = "multi_thread")]
async fn events_without_a_message_are_acknowledged_and_applied() {
    let r = rig(|_| {}).await;
    let base = r.server.base.clone();
    let phone = "+447700900250";
    r.sim.add_device(phone, None, true);
    let opt_outs = || async {
        call(
            Method::GET,
            &format!("{base}/v1/opt-outs?recipient=%2B447700900250"),
            &r.key,
            None,
        )
        .await
        .1["data"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    // message.typing is opt-in: an endpoint of "*" does not get it, one naming it does.
    let mut endpoints = Vec::new();
    for events in [json!(["*"]), json!(["message.typing"])] {
        let (s, ep, _) = call(
            Method::POST,
            &format!("{base}/v1/webhook-endpoints"),
            &r.key,
            Some(json!({"url": "http://127.0.0.1:9/hook", "events": events})),
        )
        .await;
        assert_eq!(s, 201, "{ep}");
        endpoints.push(ep["id"].as_str().unwrap().to_owned());
    }
    let sent = r.sim.events_sent();
    r.sim.user_event(phone, "IS_TYPING");
    r.sim.user_event(phone, "UNSUBSCRIBE");
    eventually("the opt-out", Duration::from_secs(10), || async {
        !opt_outs().await.is_empty()
    })
    .await;
    let typing_rows = || async {
        every_row(r.dir.path())
            .await
            .into_iter()
            .filter(|(t, line)| t == "webhook_deliveries" && line.contains("message.typing"))
            .map(|(_, line)| line)
            .collect::<Vec<String>>()
    };
    eventually("the typing delivery", Duration::from_secs(10), || async {
        !typing_rows().await.is_empty()
    })
    .await;
    let typing = typing_rows().await;
    assert_eq!(typing.len(), 1, "{typing:?}");
    assert!(typing[0].contains(&endpoints[1]) && !typing[0].contains(&endpoints[0]));
    assert!(typing[0].contains("+447700900250"), "{typing:?}");
    let outs = opt_outs().await;
    assert_eq!(
        (outs[0]["sender"].as_str(), outs[0]["source"].as_str()),
        (Some("shop"), Some("rbm_unsubscribe")),
        "{outs:?}"
    );
    assert!(inbound(&r).await.is_empty(), "typing is not a message");
    let (s, m) = send(
        &r,
        json!({"to": phone, "channels": ["rcs"], "text": "Sale now on"}),
    )
    .await;
    assert_eq!(s, 202, "{m}");
    let m = wait_status(&r, m["id"].as_str().unwrap(), "rejected").await;
    assert_eq!(m["reason"], "recipient_opted_out");
    r.sim.user_event(phone, "SUBSCRIBE");
    eventually("opted in again", Duration::from_secs(10), || async {
        opt_outs().await.is_empty()
    })
    .await;
    let (_, m) = send(
        &r,
        json!({"to": phone, "channels": ["rcs"], "text": "Welcome back"}),
    )
    .await;
    wait_status(&r, m["id"].as_str().unwrap(), "delivered").await;
    let audit = support::get_text(&format!("{base}/v1/audit/export"), &r.key).await;
    assert!(
        audit.contains("opt_out.added") && audit.contains("opt_out.removed"),
        "{audit}"
    );
    // A user message comes after its IS_TYPING; both acknowledged.
    r.sim.user_message(phone, "hello", None);
    eventually("the reply", Duration::from_secs(10), || async {
        inbound(&r).await.len() == 1
    })
    .await;
    assert!(
        r.sim.events_sent() >= sent + 5,
        "every event was answered 2xx"
    );

    // The agent is launched in a region: shown with the connectors.
    r.sim.agent_launch("fi-rcs", "PENDING", "LAUNCHED");
    let url = format!("{base}/v1/connectors");
    eventually("the launch state", Duration::from_secs(10), || async {
        let v = call(Method::GET, &url, support::ADMIN_TOKEN, None).await.1;
        v["data"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["name"] == "rbm:shop" && c["launch"][0]["state"] == "LAUNCHED")
    })
    .await;
    let v = call(Method::GET, &url, support::ADMIN_TOKEN, None).await.1;
    let agent = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "rbm:shop")
        .unwrap()
        .clone();
    assert_eq!(
        (
            agent["agent_id"].as_str(),
            agent["launch"][0]["region"].as_str(),
            agent["launch"][0]["previous"].as_str()
        ),
        (Some(AGENT), Some("/v1/regions/fi-rcs"), Some("PENDING")),
        "{agent}"
    );

    // Signed events Hermod has no use for: acknowledged, never a retry loop.
    for ev in [
        json!({"senderPhoneNumber": phone, "eventType": "SOME_FUTURE_EVENT", "eventId": "EV-F1",
               "sendTime": "2026-11-22T10:00:00Z", "agentId": AGENT}),
        json!({"senderPhoneNumber": phone, "eventType": "DELIVERED", "eventId": "EV-F2", "agentId": AGENT}),
    ] {
        let (b, sig) = r.sim.signed_envelope(&ev);
        let (s, body) = webhook(&r, &b, Some(&sig)).await;
        assert_eq!(s, 200, "{ev}: {body}");
    }
    r.sim.stop().await;
}

/// `traffic_type` on a message (or its template) reaches RBM as `messageTrafficType`;
/// a multi-use agent refuses a message without one, and the message falls to SMS.
#[tokio::test(flavor = "multi_thread")]
async fn the_traffic_type_is_sent_as_rbm_message_traffic_type() {
    let r = rig(|c| c.multi_use = true).await;
    let phone = "+447700900720";
    r.sim.add_device(phone, None, true);
    let rbm_of = |m: &Value| {
        let pid = m["attempts"][0]["provider_ids"][0]
            .as_str()
            .unwrap()
            .to_owned();
        r.sim
            .received()
            .into_iter()
            .find(|(_, id, _)| pid == format!("rbm:{id}"))
            .map(|(_, _, v)| v)
            .unwrap()
    };
    let (s, v) = send(
        &r,
        json!({"to": phone, "channels": ["rcs"], "text": "hi", "traffic_type": "marketing"}),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["field"], "traffic_type");

    let (s, m) = send(
        &r,
        json!({"to": phone, "channels": ["rcs"], "text": "Your parcel is on its way",
               "traffic_type": "transaction"}),
    )
    .await;
    assert_eq!(s, 202, "{m}");
    assert_eq!(m["traffic_type"], "transaction");
    let done = wait_status(&r, m["id"].as_str().unwrap(), "delivered").await;
    assert_eq!(done["traffic_type"], "transaction");
    assert_eq!(rbm_of(&done)["messageTrafficType"], "TRANSACTION");

    // A template's traffic type is the default of the messages sent with it.
    let (s, t, _) = call(
        Method::POST,
        &format!("{}/v1/templates", r.server.base),
        &r.key,
        Some(json!({"id": "otp", "traffic_type": "authentication",
                    "variants": {"en": {"text": "Your code is {{ code }}"}}})),
    )
    .await;
    assert_eq!(s, 201, "{t}");
    assert_eq!(t["traffic_type"], "authentication");
    let (s, m) = send(
        &r,
        json!({"to": phone, "channels": ["rcs"],
               "template": {"id": "otp", "vars": {"code": "4711"}}}),
    )
    .await;
    assert_eq!(s, 202, "{m}");
    let done = wait_status(&r, m["id"].as_str().unwrap(), "delivered").await;
    assert_eq!(done["traffic_type"], "authentication");
    assert_eq!(rbm_of(&done)["messageTrafficType"], "AUTHENTICATION");

    // None at all: the multi-use agent refuses it (400), and the SMS goes.
    let (s, m) = send(
        &r,
        json!({"to": phone, "channels": ["rcs", "sms"], "text": "Hello"}),
    )
    .await;
    assert_eq!(s, 202, "{m}");
    let done = wait_status(&r, m["id"].as_str().unwrap(), "delivered").await;
    assert!(done.get("traffic_type").is_none(), "{done}");
    assert_eq!(done["attempts"][0]["channel"], "rcs");
    assert_eq!(done["attempts"][0]["status"], "failed");
    assert_eq!(done["attempts"][0]["error"]["code"], "rbm_invalid_argument");
    assert_eq!(done["attempts"][1]["channel"], "sms");
}

/// `POST /v1/inbound/{id}/read` and `/typing` send RBM agent events (READ with the
/// user's messageId, IS_TYPING) to the sender of an RCS message; an SMS gets 409, a
/// message of another tenant 404. With `auto_read`, every user message is marked read
/// as it arrives.
#[tokio::test(flavor = "multi_thread")]
async fn agent_events_mark_user_messages_read_and_show_typing() {
    let mut r = rig(|_| {}).await;
    let ada = "+447700900730";
    r.sim.user_message(ada, "Where is my parcel?", None);
    let base = r.server.base.clone();
    let key = r.key.clone();
    let find = |text: &'static str| {
        let (base, key) = (base.clone(), key.clone());
        async move {
            let (_, v, _) = call(Method::GET, &format!("{base}/v1/inbound"), &key, None).await;
            v["data"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["text"] == text)
                .cloned()
        }
    };
    eventually(
        "the RCS message is stored",
        Duration::from_secs(15),
        || async { find("Where is my parcel?").await.is_some() },
    )
    .await;
    let m = find("Where is my parcel?").await.unwrap();
    let id = m["id"].as_str().unwrap();
    assert!(
        r.sim.agent_events().is_empty(),
        "nothing is marked read unasked"
    );
    let (s, v, _) = call(
        Method::POST,
        &format!("{base}/v1/inbound/{id}/read"),
        &key,
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["event"], "read");
    assert_eq!(v["connector"], "rbm:shop");
    let (s, v, _) = call(
        Method::POST,
        &format!("{base}/v1/inbound/{id}/typing"),
        &key,
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let evs = r.sim.agent_events();
    assert_eq!(evs.len(), 2, "{evs:?}");
    assert_eq!(evs[0].0, ada);
    assert_eq!(evs[0].1["eventType"], "READ");
    assert!(
        evs[0].1["messageId"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    assert_eq!(evs[1].1["eventType"], "IS_TYPING");

    // Another tenant cannot touch it; an SMS has no agent events.
    let other = crate::support::create_key(r.dir.path(), "other");
    let (s, _, _) = call(
        Method::POST,
        &format!("{base}/v1/inbound/{id}/read"),
        &other,
        None,
    )
    .await;
    assert_eq!(s, 404);
    r.smsc.inject_mo(
        "hermod",
        "447700900731",
        SHOP_NUMBER.trim_start_matches('+'),
        "SmsHello",
        false,
    );
    eventually("the SMS is stored", Duration::from_secs(15), || async {
        find("SmsHello").await.is_some()
    })
    .await;
    let sms = find("SmsHello").await.unwrap();
    let (s, v, _) = call(
        Method::POST,
        &format!("{base}/v1/inbound/{}/read", sms["id"].as_str().unwrap()),
        &key,
        None,
    )
    .await;
    assert_eq!(s, 409, "{v}");
    assert_eq!(r.sim.agent_events().len(), 2);

    // auto_read: every new user message is marked read as it arrives.
    let cfg = std::fs::read_to_string(&r.config).unwrap();
    std::fs::write(&r.config, format!("{cfg}auto_read = true\n")).unwrap();
    r.server.kill9();
    r.server = Server::start_with_config(r.dir.path(), &r.config, r.port);
    r.server.wait_healthy().await;
    r.sim.user_message(ada, "Thanks!", None);
    eventually("the automatic READ", Duration::from_secs(15), || async {
        r.sim.agent_events().len() == 3
    })
    .await;
    let evs = r.sim.agent_events();
    assert_eq!(evs[2].1["eventType"], "READ");
    assert_ne!(evs[2].1["messageId"], evs[0].1["messageId"]);
}
