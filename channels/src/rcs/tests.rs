//! The RBM client and channel against the RBM simulator (a real HTTP server).

use std::time::Duration;

use hermod_core::content::RichMessage;
use hermod_core::model::Outgoing;
use hermod_core::plan::Withdrawal;
use hermod_core::ports::{Channel, ChannelError};
use hermod_core::{AttemptId, MessageId, Msisdn};
use hermod_crypto::rbm::{DEMO_CLIENT_EMAIL, DEMO_SERVICE_ACCOUNT_PEM};
use serde_json::json;

use super::*;
use hermod_core::Secret;
use hermod_sim::rbm::{RbmSim, RbmSimConfig, SimState};

const AGENT: &str = "test-agent@rbm.goog";

fn sim_with(f: impl FnOnce(&mut RbmSimConfig)) -> RbmSim {
    let mut cfg = RbmSimConfig::new(AGENT, DEMO_CLIENT_EMAIL, DEMO_SERVICE_ACCOUNT_PEM).unwrap();
    cfg.delivery_delay = Duration::from_millis(50);
    cfg.read_delay = None;
    f(&mut cfg);
    RbmSim::start(cfg, "127.0.0.1:0".parse().unwrap()).unwrap()
}

fn agent(sim: &RbmSim, email: &str) -> AgentConfig {
    let mut a = AgentConfig::new("test", AGENT, &sim.base_url());
    a.service_account_json = Some(Secret(
        json!({
            "type": "service_account",
            "client_email": email,
            "private_key": DEMO_SERVICE_ACCOUNT_PEM,
            "token_uri": sim.token_uri(),
        })
        .to_string(),
    ));
    a
}

fn client(sim: &RbmSim) -> RbmClient {
    RbmClient::new(agent(sim, DEMO_CLIENT_EMAIL)).unwrap()
}

fn channel(sim: &RbmSim, tweak: impl FnOnce(&mut AgentConfig)) -> std::sync::Arc<RcsChannel> {
    let mut a = agent(sim, DEMO_CLIENT_EMAIL);
    tweak(&mut a);
    RcsChannel::new(&RcsConfig {
        agents: vec![a],
        default_agent: None,
    })
    .unwrap()
}

/// The AgentMessage the simulator accepted for an attempt.
fn sent(sim: &RbmSim, o: &Outgoing) -> Option<serde_json::Value> {
    let mid = message_id_for(o.attempt_id.as_str());
    sim.received()
        .into_iter()
        .find(|(_, id, _)| *id == mid)
        .map(|(_, _, v)| v)
}

/// The fallback timer of a sent attempt, as the fallback stage hands it over.
fn due(o: &Outgoing) -> hermod_core::plan::DueFallback {
    hermod_core::plan::DueFallback {
        attempt_id: o.attempt_id.clone(),
        message_id: o.message_id.clone(),
        tenant_id: o.tenant_id.clone(),
        to: o.to.clone(),
        from: o.from.clone(),
        channel: hermod_core::model::ChannelKind::Rcs,
        provider_ids: Vec::new(),
        policy: Default::default(),
        tries: 1,
    }
}

fn outgoing(to: &str, content: Option<serde_json::Value>) -> Outgoing {
    Outgoing {
        attempt_id: AttemptId::generate(),
        tenant_id: hermod_core::TenantId::from_trusted("ten_test".into()),
        message_id: MessageId::generate(),
        to: Msisdn::parse(to).unwrap(),
        from: None,
        text: "plain text".into(),
        user_ref: 0,
        expires_at: None,
        content: content.map(|c| serde_json::from_value::<RichMessage>(c).unwrap()),
        user_id: None,
        traffic_type: None,
        binary: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_is_exchanged_cached_shared_and_refreshed() {
    // Tokens live 2 s: the client renews at half-life.
    let sim = sim_with(|c| c.token_ttl = Duration::from_secs(2));
    sim.add_device("+447700900001", None, true);
    let c = client(&sim);
    let calls: Vec<_> = (0..8)
        .map(|i| {
            let c = c.clone();
            tokio::spawn(async move { c.capability(&format!("+4477009001{i:02}"), true).await })
        })
        .collect();
    for h in calls {
        h.await.unwrap().unwrap();
    }
    assert_eq!(
        sim.token_requests(),
        1,
        "concurrent callers share one token fetch"
    );
    c.capability("+447700900001", true).await.unwrap();
    assert_eq!(sim.token_requests(), 1, "the token is cached");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    c.capability("+447700900002", true).await.unwrap();
    assert_eq!(sim.token_requests(), 2, "renewed before it expires");
    assert_eq!(c.token_fetches(), 2);
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_account_the_token_endpoint_does_not_know_gets_no_token() {
    let sim = sim_with(|_| {});
    let c = RbmClient::new(agent(&sim, "someone-else@example.iam.gserviceaccount.com")).unwrap();
    let e = c.capability("+447700900001", false).await.unwrap_err();
    assert!(matches!(e, RbmError::Token(_)), "{e:?}");
    assert!(e.is_transient());
    // A JWT with a broken signature is refused by the token endpoint.
    let key = hermod_crypto::rbm::ServiceAccountKey::from_pem(DEMO_SERVICE_ACCOUNT_PEM).unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let jwt = key
        .sign_jwt(
            &json!({"iss": DEMO_CLIENT_EMAIL, "scope": SCOPE, "aud": sim.token_uri(), "iat": now, "exp": now + 600})
                .to_string(),
        )
        .unwrap();
    let http = reqwest::Client::new();
    let post = |assertion: String| {
        http.post(sim.token_uri())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(
                url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer")
                    .append_pair("assertion", &assertion)
                    .finish(),
            )
            .send()
    };
    assert_eq!(post(jwt.clone()).await.unwrap().status(), 200);
    let mut forged = jwt.clone().into_bytes();
    let n = forged.len() - 5;
    forged[n] = if forged[n] == b'A' { b'B' } else { b'A' };
    let r = post(String::from_utf8(forged).unwrap()).await.unwrap();
    assert_eq!(r.status(), 400);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"], "invalid_grant");
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capability_answers_are_cached_then_checked_again_after_their_ttl() {
    let sim = sim_with(|_| {});
    let mut a = agent(&sim, DEMO_CLIENT_EMAIL);
    a.capability_ttl_secs = 1;
    a.not_capable_ttl_secs = 1;
    let c = RbmClient::new(a).unwrap();
    let phone = "+447700900010";
    assert_eq!(
        c.capability(phone, true).await.unwrap(),
        Capability::NotCapable
    );
    assert_eq!(
        c.capability(phone, true).await.unwrap(),
        Capability::NotCapable
    );
    assert_eq!(
        sim.capability_requests(),
        1,
        "the negative answer is cached"
    );
    sim.add_device(phone, Some(&["RICHCARD_STANDALONE"]), true);
    assert_eq!(
        c.capability(phone, true).await.unwrap(),
        Capability::NotCapable
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let cap = c.capability(phone, true).await.unwrap();
    assert_eq!(
        cap,
        Capability::Capable {
            features: Some(vec!["RICHCARD_STANDALONE".into()])
        }
    );
    assert_eq!(sim.capability_requests(), 2, "checked again after the ttl");
    c.capability(phone, true).await.unwrap();
    assert_eq!(
        sim.capability_requests(),
        2,
        "the positive answer is cached"
    );
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_looked_up_with_one_users_batch_get() {
    let sim = sim_with(|_| {});
    sim.add_device("+447700900020", None, true);
    sim.add_device("+447700900021", None, true);
    let ch = channel(&sim, |_| {});
    let batch: Vec<Outgoing> = ["+447700900020", "+447700900021", "+447700900022"]
        .iter()
        .map(|p| outgoing(p, None))
        .collect();
    ch.prepare(&batch).await;
    assert_eq!(sim.batch_requests(), 1);
    for o in &batch {
        ch.send(&o.clone()).await.ok();
    }
    // Plain text needs no features: the bulk answer was enough.
    assert_eq!(sim.capability_requests(), 0);
    let sent: Vec<String> = sim.received().into_iter().map(|(p, _, _)| p).collect();
    assert_eq!(sent, vec!["+447700900020", "+447700900021"]);
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rich_card_carousel_and_suggestions_reach_rbm_in_its_json_shape() {
    let sim = sim_with(|_| {});
    sim.add_device("+447700900030", None, true);
    let ch = channel(&sim, |_| {});
    let card = json!({
        "content": {"card": {"title": "Order 1234 shipped", "description": "Arrives Tuesday",
            "media": {"url": "https://example.com/box.png", "height": "short"},
            "suggestions": [{"open_url": {"text": "Track", "url": "https://example.com/t/1234"}}]}},
        "suggestions": [{"reply": {"text": "Thanks", "postback_data": "thanks_1234"}},
                        {"calendar_event": {"text": "Remind me", "start_time": "2026-12-01T09:00:00Z", "end_time": "2026-12-01T10:00:00Z", "title": "Delivery"}}]
    });
    let carousel = json!({
        "content": {"carousel": [
            {"title": "Red", "media": {"url": "https://example.com/r.png"}, "suggestions": [{"reply": {"text": "Red"}}]},
            {"title": "Blue", "media": {"url": "https://example.com/b.png"}, "suggestions": [{"reply": {"text": "Blue"}}]}
        ]},
        "suggestions": [{"dial": {"text": "Call us", "phone_number": "+442071234567"}}]
    });
    for c in [card, carousel] {
        let o = outgoing("+447700900030", Some(c));
        let (ids, raw) = ch.send(&o).await.unwrap();
        let mid = message_id_for(o.attempt_id.as_str());
        assert_eq!(ids, vec![format!("rbm:{mid}")]);
        assert_eq!(raw, "SENT");
        let got = sim
            .received()
            .into_iter()
            .find(|(_, id, _)| *id == mid)
            .unwrap();
        assert_eq!(got.0, "+447700900030");
        assert_eq!(
            got.2,
            json!({"contentMessage": content_message(o.content.as_ref().unwrap())})
        );
    }
    let all = sim.received();
    assert!(
        all[0].2["contentMessage"]["richCard"]["standaloneCard"]["cardContent"]["suggestions"][0]["action"]
            ["openUrlAction"]["url"]
            == "https://example.com/t/1234"
    );
    assert_eq!(
        all[1].2["contentMessage"]["richCard"]["carouselCard"]["cardContents"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_map_to_permanent_or_transient() {
    let sim = sim_with(|_| {});
    sim.add_device("+447700900040", Some(&["RICHCARD_STANDALONE"]), true);
    let ch = channel(&sim, |_| {});
    // Not RCS-reachable.
    assert_eq!(
        ch.send(&outgoing("+447700900041", None)).await.unwrap_err(),
        ChannelError::Permanent {
            code: codes::NOT_CAPABLE.into()
        }
    );
    // Reachable, but no carousel support: the first card goes as a standalone card.
    let carousel = json!({"content": {"carousel": [{"title": "a"}, {"title": "b"}]}});
    ch.send(&outgoing("+447700900040", Some(carousel)))
        .await
        .unwrap();
    let got = sim.received();
    let card = &got.last().unwrap().2["contentMessage"]["richCard"];
    assert_eq!(
        card["standaloneCard"]["cardContent"]["title"], "a",
        "{card}"
    );
    assert!(card["carouselCard"].is_null());
    // 503 and 429 are transient; the retry of the same attempt then goes through, and
    // a repeat of a send that got through is not an error (RBM ignores the id).
    sim.fail_next(&[503, 429]);
    let o = outgoing("+447700900040", None);
    for code in ["rbm_503", "rbm_429"] {
        match ch.send(&o).await.unwrap_err() {
            ChannelError::Transient { code: c, .. } => assert_eq!(c, code),
            e => panic!("{e:?}"),
        }
    }
    ch.send(&o).await.unwrap();
    ch.send(&o).await.unwrap();
    assert_eq!(
        sim.received().len(),
        2,
        "one message at RBM (besides the card)"
    );
    // RBM's own validation: a 26-character chip is INVALID_ARGUMENT (400), permanent.
    let c = client(&sim);
    let bad = json!({"contentMessage": {"text": "hi", "suggestions": [{"reply": {"text": "x".repeat(26), "postbackData": "x"}}]}});
    let e = c
        .send(
            "+447700900040",
            &message_id_for(AttemptId::generate().as_str()),
            &bad,
        )
        .await
        .unwrap_err();
    match e {
        RbmError::Api {
            status,
            reason,
            message,
            ..
        } => {
            assert_eq!((status, reason.as_str()), (400, "INVALID_ARGUMENT"));
            assert!(message.contains("suggestions[0].reply.text"), "{message}");
        }
        e => panic!("{e:?}"),
    }
    // An expired message is not sent.
    let mut old = outgoing("+447700900040", None);
    old.expires_at = Some(hermod_core::now_ms() - 1);
    assert_eq!(
        ch.send(&old).await.unwrap_err(),
        ChannelError::Permanent {
            code: codes::TTL_EXPIRED.into()
        }
    );
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withdraw_revokes_before_delivery_and_finds_it_delivered_after() {
    let sim = sim_with(|_| {});
    sim.add_device("+447700900050", None, false);
    let ch = channel(&sim, |_| {});
    let pending = outgoing("+447700900050", None);
    ch.send(&pending).await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let mid = message_id_for(pending.attempt_id.as_str());
    assert_eq!(
        sim.message_state(&mid),
        Some(SimState::Pending),
        "device offline"
    );
    assert_eq!(
        ch.withdraw(&due(&pending)).await.unwrap(),
        Withdrawal::Withdrawn
    );
    assert_eq!(sim.message_state(&mid), Some(SimState::Revoked));
    sim.set_online("+447700900050", true);
    let delivered = outgoing("+447700900050", None);
    ch.send(&delivered).await.unwrap();
    let mid2 = message_id_for(delivered.attempt_id.as_str());
    for _ in 0..100 {
        if sim.message_state(&mid2) == Some(SimState::Delivered) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(sim.message_state(&mid2), Some(SimState::Delivered));
    assert_eq!(
        ch.withdraw(&due(&delivered)).await.unwrap(),
        Withdrawal::AlreadyDelivered
    );
    // The revoked message never reaches the device.
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(sim.message_state(&mid), Some(SimState::Revoked));
    sim.stop().await;
}

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(format!(
        "{}/../tests/fixtures/tls/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_the_agents_ca_file_and_a_refused_unknown_ca() {
    let tls =
        hermod_sim::smsc::server_tls(&fixture("server.pem"), &fixture("server.key"), None).unwrap();
    let sim = sim_with(|c| c.tls = Some(std::sync::Arc::new(tls)));
    assert!(sim.base_url().starts_with("https://"));
    sim.add_device("+447700900060", None, true);
    let mut good = agent(&sim, DEMO_CLIENT_EMAIL);
    good.ca_file = Some(fixture("ca.pem"));
    let c = RbmClient::new(good).unwrap();
    assert!(matches!(
        c.capability("+447700900060", true).await.unwrap(),
        Capability::Capable { .. }
    ));
    // A server certificate from another CA is refused (no token, nothing sent).
    let mut bad = agent(&sim, DEMO_CLIENT_EMAIL);
    bad.ca_file = Some(fixture("other-ca.pem"));
    let c = RbmClient::new(bad).unwrap();
    let e = c.capability("+447700900060", true).await.unwrap_err();
    assert!(matches!(e, RbmError::Token(_)), "{e:?}");
    assert_eq!(
        sim.token_requests(),
        1,
        "only the trusted client got through"
    );
    sim.stop().await;
}

#[test]
fn simulator_validation_follows_rbm_limits() {
    use hermod_sim::rbm::validate_agent_message as v;
    let ok = json!({"contentMessage": {"text": "hi"}, "ttl": "30s"});
    assert_eq!(v(&ok), Ok(()));
    let cases = [
        (json!({}), "agent_message.content_message"),
        (
            json!({"contentMessage": {"text": "a", "contentInfo": {"fileUrl": "https://x"}}}),
            "exactly one of",
        ),
        (
            json!({"contentMessage": {"text": "a", "suggestions": vec![json!({"reply": {"text": "a"}}); 12]}}),
            "suggestions: at most 11",
        ),
        (
            json!({"contentMessage": {"richCard": {"carouselCard": {"cardWidth": "MEDIUM", "cardContents": [{"title": "a"}]}}}}),
            "card_contents: 2 to 10",
        ),
        (
            json!({"contentMessage": {"richCard": {"standaloneCard": {"cardOrientation": "HORIZONTAL", "cardContent": {"title": "a"}}}}}),
            "thumbnail_image_alignment",
        ),
        (
            json!({"contentMessage": {"richCard": {"standaloneCard": {"cardOrientation": "VERTICAL", "cardContent": {"title": "a",
                "suggestions": vec![json!({"reply": {"text": "a"}}); 5]}}}}}),
            "card_content.suggestions: at most 4",
        ),
        (
            json!({"contentMessage": {"richCard": {"standaloneCard": {"cardOrientation": "VERTICAL", "cardContent": {"title": "t".repeat(201)}}}}}),
            "title: at most 200",
        ),
        (
            json!({"contentMessage": {"text": "a", "suggestions": [{"action": {"text": "Go", "openUrlAction": {}}}]}}),
            "open_url_action.url",
        ),
        (
            json!({"contentMessage": {"text": "a"}, "ttl": "30s", "expireTime": "2026-01-01T00:00:00Z"}),
            "only one of ttl",
        ),
    ];
    for (msg, want) in cases {
        let e = v(&msg).unwrap_err().0;
        assert!(e.contains(want), "{msg}: {e}");
    }
}

/// `messageTrafficType`: the message's own, else the agent's `traffic_type`, else none
/// (RBM applies the agent's use case). A multi-use agent (the simulator's `multi_use`)
/// refuses a message without one, permanently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_traffic_type_comes_from_the_message_or_the_agent() {
    use hermod_core::model::TrafficType;
    let sim = sim_with(|c| c.multi_use = true);
    sim.add_device("+447700900070", None, true);
    let plain = channel(&sim, |_| {});
    let mut o = outgoing("+447700900070", None);
    match plain.send(&o).await.unwrap_err() {
        ChannelError::Permanent { code } => assert_eq!(code, codes::INVALID),
        e => panic!("{e:?}"),
    }
    assert!(sent(&sim, &o).is_none(), "refused without a traffic type");
    o.traffic_type = Some(TrafficType::ServiceRequest);
    plain.send(&o).await.unwrap();
    assert_eq!(
        sent(&sim, &o).unwrap()["messageTrafficType"],
        "SERVICEREQUEST"
    );

    let defaulted = channel(&sim, |a| a.traffic_type = Some(TrafficType::Transaction));
    let o = outgoing("+447700900070", None);
    defaulted.send(&o).await.unwrap();
    assert_eq!(sent(&sim, &o).unwrap()["messageTrafficType"], "TRANSACTION");
    let mut o = outgoing("+447700900070", None);
    o.traffic_type = Some(TrafficType::Authentication);
    defaulted.send(&o).await.unwrap();
    assert_eq!(
        sent(&sim, &o).unwrap()["messageTrafficType"],
        "AUTHENTICATION",
        "the message's own wins over the agent's"
    );
    sim.stop().await;
}

/// A `users:batchGet` that fails is not replaced by a lookup per number (the 600
/// lookups/min quota): the numbers go with their capability unknown and the send
/// decides (RBM's 404 for the one it cannot reach).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_batch_is_not_replaced_by_lookups_one_by_one() {
    let sim = sim_with(|_| {});
    sim.add_device("+447700900080", None, true);
    sim.add_device("+447700900081", None, true);
    sim.fail_next_batch(&[503]);
    let ch = channel(&sim, |_| {});
    let batch: Vec<Outgoing> = ["+447700900080", "+447700900081", "+447700900082"]
        .iter()
        .map(|p| outgoing(p, None))
        .collect();
    ch.prepare(&batch).await;
    assert_eq!(sim.batch_requests(), 1);
    assert_eq!(
        ch.agents()[0].cached_capability("+447700900082"),
        Some(Capability::Unknown)
    );
    ch.send(&batch[0]).await.unwrap();
    ch.send(&batch[1]).await.unwrap();
    assert_eq!(
        ch.send(&batch[2]).await.unwrap_err(),
        ChannelError::Permanent {
            code: codes::NOT_CAPABLE.into()
        }
    );
    assert_eq!(sim.capability_requests(), 0, "no lookup one by one");
    assert_eq!(sim.batch_requests(), 1);
    sim.stop().await;
}

/// RBM takes at most 10,000 numbers per `users:batchGet`: more go in several calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_split_at_rbms_limit() {
    let sim = sim_with(|_| {});
    sim.add_device("+447701000000", None, true);
    sim.add_device("+447701010000", None, true);
    let c = client(&sim);
    let phones: Vec<String> = (0..=BATCH_GET_MAX)
        .map(|i| format!("+4477010{i:05}"))
        .collect();
    assert_eq!(phones.len(), 10_001);
    let mut reachable = c.batch_reachable(&phones).await.unwrap();
    reachable.sort();
    assert_eq!(reachable, vec!["+447701000000", "+447701010000"]);
    assert_eq!(sim.batch_requests(), 2);
    sim.stop().await;
}

#[test]
fn an_agents_region_chooses_its_endpoint() {
    let mut a = AgentConfig::new("eu", AGENT, DEFAULT_BASE_URL);
    assert_eq!(a.endpoint(), DEFAULT_BASE_URL);
    a.region = Some(Region::Europe);
    assert_eq!(
        a.endpoint(),
        "https://europe-rcsbusinessmessaging.googleapis.com"
    );
    let parsed: AgentConfig =
        serde_json::from_value(json!({"name": "us", "agent_id": "a@rbm.goog", "region": "us"}))
            .unwrap();
    assert_eq!(
        parsed.endpoint(),
        "https://us-rcsbusinessmessaging.googleapis.com"
    );
    // A base_url of its own (a simulator, a proxy) wins.
    a.base_url = "http://127.0.0.1:9999".into();
    assert_eq!(a.endpoint(), "http://127.0.0.1:9999");
    assert!(
        serde_json::from_value::<AgentConfig>(
            json!({"name": "x", "agent_id": "a", "region": "mars"})
        )
        .is_err()
    );
}

/// `content.media.upload` (or the agent's `upload_media`): the file is uploaded once
/// with files.create and every message sends it by its RBM name (`uploadedRbmFile`);
/// without it, RBM fetches the URL (`contentInfo`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_is_uploaded_once_and_sent_by_its_rbm_name() {
    let sim = sim_with(|_| {});
    sim.add_device("+447700900090", None, true);
    let ch = channel(&sim, |_| {});
    let upload =
        json!({"content": {"media": {"url": "https://shop.example/p.png", "upload": true}}});
    let first = outgoing("+447700900090", Some(upload.clone()));
    let second = outgoing("+447700900090", Some(upload));
    ch.send(&first).await.unwrap();
    ch.send(&second).await.unwrap();
    let files = sim.files();
    assert_eq!(files.len(), 1, "uploaded once: {files:?}");
    assert_eq!(files[0].1, "https://shop.example/p.png");
    for o in [&first, &second] {
        let cm = &sent(&sim, o).unwrap()["contentMessage"];
        assert_eq!(cm["uploadedRbmFile"]["fileName"], files[0].0.as_str());
        assert!(cm.get("contentInfo").is_none(), "{cm}");
    }
    let plain = outgoing(
        "+447700900090",
        Some(json!({"content": {"media": {"url": "https://shop.example/q.png"}}})),
    );
    ch.send(&plain).await.unwrap();
    assert_eq!(
        sent(&sim, &plain).unwrap()["contentMessage"]["contentInfo"]["fileUrl"],
        "https://shop.example/q.png"
    );
    assert_eq!(sim.files().len(), 1);
    // The agent's upload_media: every media message is uploaded.
    let all = channel(&sim, |a| a.upload_media = true);
    let o = outgoing(
        "+447700900090",
        Some(json!({"content": {"media": {"url": "https://shop.example/q.png"}}})),
    );
    all.send(&o).await.unwrap();
    assert_eq!(sim.files().len(), 2);
    assert!(sent(&sim, &o).unwrap()["contentMessage"]["uploadedRbmFile"]["fileName"].is_string());
    sim.stop().await;
}

/// Agent events go through the agent an inbound message came on; a message of
/// another connector, or a READ without the user's message id, is refused before any
/// call to RBM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_events_need_an_rbm_message() {
    use hermod_core::ports::{AgentEventError, AgentEventKind, AgentEvents as _};
    let sim = sim_with(|_| {});
    let ch = channel(&sim, |_| {});
    let phone = "+447700900095";
    for (connector, kind, id) in [
        ("smpp:default", AgentEventKind::Typing, None),
        ("rbm:other", AgentEventKind::Typing, None),
        ("rbm:test", AgentEventKind::Read, None),
    ] {
        match ch.send_agent_event(connector, phone, kind, id).await {
            Err(AgentEventError::NotSupported(_)) => {}
            r => panic!("{connector} {kind:?}: {r:?}"),
        }
    }
    ch.send_agent_event("rbm:test", phone, AgentEventKind::Typing, None)
        .await
        .unwrap();
    // A READ of a message this user never sent: RBM's 404 is the provider's answer.
    match ch
        .send_agent_event("rbm:test", phone, AgentEventKind::Read, Some("nope"))
        .await
    {
        Err(AgentEventError::Provider(_)) => {}
        r => panic!("{r:?}"),
    }
    assert_eq!(sim.agent_events().len(), 1);
    sim.stop().await;
}
