//! Channel selection and fallback, end to end with the RBM simulator, the SMSC
//! simulator and simulated app devices: each recipient gets the channels it can take,
//! and a rich message that fails or stays silent is withdrawn and sent as SMS — once.

use std::time::Duration;

use hermod_crypto::hpke::Aead;
use hermod_sim::device::DeviceSim;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::rcs::{Rig, rig, rig_with};
use crate::support::{Server, eventually, get_message, send_message, wait_status};

async fn send(r: &Rig, body: Value) -> String {
    let (s, v) = send_message(&r.server.base, &r.key, body).await;
    assert_eq!(s, 202, "{v}");
    v["id"].as_str().unwrap().to_owned()
}

async fn status(r: &Rig, id: &str, want: &str) -> Value {
    wait_status(&r.server.base, &r.key, id, want, 30).await
}

/// SMS submits to `phone` seen by the SMSC.
fn sms_to(r: &Rig, phone: &str) -> usize {
    let digits = phone.trim_start_matches('+');
    r.smsc
        .submitted()
        .iter()
        .filter(|s| s.destination.trim_start_matches('+') == digits)
        .count()
}

fn attempts(m: &Value) -> Vec<(String, String)> {
    m["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["channel"].as_str().unwrap().to_owned(),
                a["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn events_of(m: &Value, kind: &str) -> usize {
    m["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == kind)
        .count()
}

fn plan(m: &Value) -> Vec<(String, bool, String)> {
    m["plan"]["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("no plan: {m}"))
        .iter()
        .map(|s| {
            (
                s["channel"].as_str().unwrap().to_owned(),
                s["kept"].as_bool().unwrap(),
                s["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The RBM message id of a message's first attempt (its provider id `rbm:<id>`).
fn rbm_id(m: &Value) -> String {
    m["attempts"][0]["provider_ids"][0]
        .as_str()
        .unwrap()
        .trim_start_matches("rbm:")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn rcs_delivered_sends_no_sms_and_the_plan_says_why() {
    let r = rig(|_| {}).await;
    let phone = "+447700900601";
    r.sim.add_device(phone, None, true);
    // No channels named: the default order app, rcs, sms; no device registered.
    let id = send(
        &r,
        json!({"to": phone, "text": "Your order shipped", "fallback": {"after": "2s"}}),
    )
    .await;
    let m = status(&r, &id, "read").await;
    assert_eq!(
        plan(&m),
        vec![
            ("app".into(), false, "app_no_device".into()),
            ("rcs".into(), true, "rcs_capable".into()),
            ("sms".into(), true, "available".into()),
        ]
    );
    assert_eq!(m["plan"]["fallback"]["after_secs"], 2);
    // Past the fallback time: still one attempt, no SMS.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let m = get_message(&r.server.base, &r.key, &id).await;
    assert_eq!(attempts(&m), vec![("rcs".into(), "read".into())]);
    assert_eq!(events_of(&m, "message.fallback"), 0);
    assert_eq!(sms_to(&r, phone), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn rcs_silent_is_revoked_then_sent_as_sms() {
    let r = rig(|_| {}).await;
    let phone = "+447700900602";
    r.sim.add_device(phone, None, false);
    let id = send(
        &r,
        json!({"to": phone, "channels": ["rcs", "sms"],
               "content": {"card": {"title": "Order 1234", "description": "Out for delivery",
                   "suggestions": [{"open_url": {"text": "Track", "url": "https://shop.example/t/1234"}}]}},
               "fallback": {"after": "1s"}}),
    )
    .await;
    let m = status(&r, &id, "delivered").await;
    assert_eq!(
        attempts(&m),
        vec![
            ("rcs".into(), "canceled".into()),
            ("sms".into(), "delivered".into())
        ]
    );
    assert_eq!(m["attempts"][0]["raw_status"], "withdrawn");
    assert_eq!(events_of(&m, "message.fallback"), 1);
    assert_eq!(
        r.sim.message_state(&rbm_id(&m)),
        Some(hermod_sim::rbm::SimState::Revoked)
    );
    // The SMS carries the card as readable text.
    let sms: Vec<_> = r
        .smsc
        .submitted()
        .into_iter()
        .filter(|s| s.destination.ends_with("447700900602"))
        .collect();
    assert_eq!(sms.len(), 1);
    let text = String::from_utf8_lossy(&sms[0].short_message).to_string();
    assert!(
        text.contains("Order 1234") && text.contains("https://shop.example/t/1234"),
        "{text}"
    );
    // The device comes online: the revoked message never arrives; nothing moves back.
    r.sim.set_online(phone, true);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let m = get_message(&r.server.base, &r.key, &id).await;
    assert_eq!(m["status"], "delivered");
    assert_eq!(sms_to(&r, phone), 1);
}

/// The revoke guide's reading: RBM answers the revoke 200 without confirming it, and
/// the device gets the message after all. The SMS went out; the DELIVERED that follows
/// is recorded on the withdrawn attempt as `delivered_after_revoke`, and nothing else
/// moves (no second SMS, the message stays delivered by SMS).
#[tokio::test(flavor = "multi_thread")]
async fn a_revoke_that_did_not_take_is_recorded_as_delivered_after_revoke() {
    let r = rig(|c| c.revoke_unconfirmed = true).await;
    let phone = "+447700900612";
    r.sim.add_device(phone, None, false);
    let id = send(
        &r,
        json!({"to": phone, "channels": ["rcs", "sms"], "text": "Your code is 4321",
               "fallback": {"after": "1s"}}),
    )
    .await;
    let m = status(&r, &id, "delivered").await;
    assert_eq!(
        attempts(&m),
        vec![
            ("rcs".into(), "canceled".into()),
            ("sms".into(), "delivered".into())
        ]
    );
    assert_eq!(m["attempts"][0]["raw_status"], "withdrawn");
    // The revoke answered 200 but did not take: the device comes online and has it.
    r.sim.set_online(phone, true);
    let (base, key) = (r.server.base.clone(), r.key.clone());
    eventually(
        "DELIVERED recorded on the withdrawn attempt",
        Duration::from_secs(20),
        || {
            let (base, key, id) = (base.clone(), key.clone(), id.clone());
            async move {
                get_message(&base, &key, &id).await["attempts"][0]["error"]["code"]
                    == "delivered_after_revoke"
            }
        },
    )
    .await;
    let m = get_message(&r.server.base, &r.key, &id).await;
    assert_eq!(m["status"], "delivered");
    assert_eq!(m["attempts"][0]["status"], "canceled");
    assert_eq!(m["attempts"][0]["raw_status"], "DELIVERED");
    assert_eq!(sms_to(&r, phone), 1);
    assert_eq!(events_of(&m, "message.fallback"), 1);
    let metrics = crate::support::get_text(
        &format!("{}/metrics", r.server.base),
        crate::support::ADMIN_TOKEN,
    )
    .await;
    assert!(
        metrics.contains("hermod_rcs_delivered_after_revoke_total 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rcs_delivered_without_a_receipt_yet_is_not_sent_twice() {
    // Events never reach Hermod: RBM delivered the message but Hermod has not heard.
    let r = rig(|c| c.webhook_url = None).await;
    let phone = "+447700900603";
    r.sim.add_device(phone, None, true);
    let id = send(
        &r,
        json!({"to": phone, "channels": ["rcs", "sms"], "text": "Hi", "fallback": {"after": "1s"}}),
    )
    .await;
    let base = r.server.base.clone();
    let key = r.key.clone();
    eventually("the revoke answered 404", Duration::from_secs(20), || {
        let (base, key, id) = (base.clone(), key.clone(), id.clone());
        async move {
            get_message(&base, &key, &id).await["attempts"][0]["raw_status"]
                == "withdraw_found_delivered"
        }
    })
    .await;
    let m = get_message(&r.server.base, &r.key, &id).await;
    assert_eq!(attempts(&m), vec![("rcs".into(), "sent".into())]);
    assert_eq!(events_of(&m, "message.fallback"), 0);
    assert_eq!(sms_to(&r, phone), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_number_without_rcs_goes_straight_to_sms() {
    let r = rig(|_| {}).await;
    let phone = "+447700900604"; // not known to RBM: not capable
    let id = send(
        &r,
        json!({"to": phone, "text": "Code 1234", "channels": ["rcs", "sms"]}),
    )
    .await;
    let m = status(&r, &id, "delivered").await;
    assert_eq!(
        plan(&m),
        vec![
            ("rcs".into(), false, "rcs_not_capable".into()),
            ("sms".into(), true, "available".into()),
        ]
    );
    assert_eq!(attempts(&m), vec![("sms".into(), "delivered".into())]);
    assert!(r.sim.received().iter().all(|(p, _, _)| p != phone));
}

#[tokio::test(flavor = "multi_thread")]
async fn rcs_that_turns_out_not_capable_at_send_falls_back_at_once() {
    let r = rig(|_| {}).await;
    let phone = "+447700900605";
    r.sim.add_device(phone, None, true);
    // Capable at planning; RBM then refuses the send (404), a permanent error.
    r.sim.fail_next(&[404]);
    let id = send(
        &r,
        json!({"to": phone, "text": "Hi", "channels": ["rcs", "sms"]}),
    )
    .await;
    let m = status(&r, &id, "delivered").await;
    assert_eq!(
        attempts(&m),
        vec![
            ("rcs".into(), "failed".into()),
            ("sms".into(), "delivered".into())
        ]
    );
    assert_eq!(m["attempts"][0]["error"]["code"], "rcs_not_capable");
    assert_eq!(events_of(&m, "message.fallback"), 1);
    assert_eq!(sms_to(&r, phone), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicates_allow_sends_the_sms_without_waiting_and_both_arrive() {
    let r = rig(|_| {}).await;
    let phone = "+447700900606";
    r.sim.add_device(phone, None, false);
    let id = send(
        &r,
        json!({"to": phone, "text": "Your code is 482913", "channels": ["rcs", "sms"],
               "fallback": {"after": "1s", "duplicates": "allow"}}),
    )
    .await;
    let m = status(&r, &id, "delivered").await;
    assert_eq!(m["attempts"][1]["channel"], "sms");
    assert_eq!(m["attempts"][0]["status"], "sent", "not revoked");
    // The phone comes back online: the RCS copy arrives too.
    r.sim.set_online(phone, true);
    let base = r.server.base.clone();
    let key = r.key.clone();
    eventually(
        "the RCS copy delivered too",
        Duration::from_secs(20),
        || {
            let (base, key, id) = (base.clone(), key.clone(), id.clone());
            async move {
                let s = get_message(&base, &key, &id).await["attempts"][0]["status"].clone();
                s == "delivered" || s == "read"
            }
        },
    )
    .await;
    assert_eq!(sms_to(&r, phone), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_carousel_to_a_device_without_carousels_goes_as_a_card() {
    let r = rig(|_| {}).await;
    let phone = "+447700900607";
    r.sim.add_device(
        phone,
        Some(&["RICHCARD_STANDALONE", "ACTION_OPEN_URL"]),
        true,
    );
    let id = send(
        &r,
        json!({"to": phone, "channels": ["rcs", "sms"],
               "content": {"carousel": [{"title": "Red shirt"}, {"title": "Blue shirt"}]}}),
    )
    .await;
    let m = status(&r, &id, "read").await;
    assert_eq!(
        plan(&m)[0],
        ("rcs".into(), true, "rcs_capable_degraded_content".into())
    );
    let got = r.sim.received();
    let (_, _, msg) = got.iter().find(|(p, _, _)| p == phone).unwrap();
    let card = &msg["contentMessage"]["richCard"];
    assert_eq!(
        card["standaloneCard"]["cardContent"]["title"], "Red shirt",
        "{msg}"
    );
    assert!(card["carouselCard"].is_null());
    assert_eq!(sms_to(&r, phone), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_app_device_that_acknowledges_gets_no_sms() {
    let r = rig(|_| {}).await;
    let phone = "+447700900608";
    let device = DeviceSim::register(&r.server.base, &r.key, phone, Aead::ChaCha20Poly1305)
        .await
        .unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(device.run(Duration::from_millis(100), stop.clone()));
    let id = send(
        &r,
        json!({"to": phone, "text": "Hello in the app", "fallback": {"after": "2s"}}),
    )
    .await;
    let m = status(&r, &id, "read").await;
    assert_eq!(
        plan(&m)[0],
        ("app".into(), true, "device_registered".into())
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let m = get_message(&r.server.base, &r.key, &id).await;
    assert_eq!(attempts(&m), vec![("app".into(), "read".into())]);
    assert_eq!(sms_to(&r, phone), 0);
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_offline_app_device_gets_sms_after_the_wait_and_its_envelope_is_withdrawn() {
    let r = rig(|_| {}).await;
    let phone = "+447700900609";
    let device = DeviceSim::register(&r.server.base, &r.key, phone, Aead::ChaCha20Poly1305)
        .await
        .unwrap();
    let id = send(
        &r,
        json!({"to": phone, "text": "Hello", "channels": ["app", "sms"], "fallback": {"after": "1s"}}),
    )
    .await;
    let m = status(&r, &id, "delivered").await;
    assert_eq!(
        attempts(&m),
        vec![
            ("app".into(), "canceled".into()),
            ("sms".into(), "delivered".into())
        ]
    );
    // The envelope is gone: the device, coming online, finds nothing to show twice,
    // and an acknowledgement of it now is refused.
    assert!(device.poll(0).await.unwrap().is_empty());
    assert_eq!(device.ack(&id, "delivered").await.unwrap(), 404);
    assert_eq!(sms_to(&r, phone), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pending_fallback_survives_a_restart_and_fires_once() {
    let mut r = rig(|_| {}).await;
    let phone = "+447700900610";
    r.sim.add_device(phone, None, false);
    let id = send(
        &r,
        json!({"to": phone, "text": "Restart me", "channels": ["rcs", "sms"], "fallback": {"after": "4s"}}),
    )
    .await;
    status(&r, &id, "sent").await;
    // Killed while the timer is pending, and started again.
    r.server.kill9();
    r.server = Server::start_with_config(r.dir.path(), &r.config, r.port);
    r.server.wait_healthy().await;
    let m = status(&r, &id, "delivered").await;
    assert_eq!(attempts(&m).len(), 2);
    // Well past the time, still one fallback and one SMS.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let m = get_message(&r.server.base, &r.key, &id).await;
    assert_eq!(events_of(&m, "message.fallback"), 1);
    assert_eq!(attempts(&m).len(), 2);
    assert_eq!(sms_to(&r, phone), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn tenant_defaults_and_fallback_errors_name_the_field() {
    let r = rig(|_| {}).await;
    let base = &r.server.base;
    let url = format!("{base}/v1/tenant/defaults");
    let put = |body: Value| crate::support::call(reqwest::Method::PUT, &url, &r.key, Some(body));
    let (s, v, _) = put(json!({"channels": ["sms"], "fallback": {"after": "2m"}})).await;
    assert_eq!(s, 200, "{v}");
    let (s, v, _) = put(json!({"channels": ["fax"]})).await;
    assert_eq!(
        (s, v["error"]["field"].as_str()),
        (400, Some("channels[0]")),
        "{v}"
    );
    let (s, v, _) = put(json!({"fallback": {"after": "soon"}})).await;
    assert_eq!(
        (s, v["error"]["field"].as_str()),
        (400, Some("fallback.after")),
        "{v}"
    );
    let (s, v) = send_message(
        base,
        &r.key,
        json!({"to": "+447700900611", "text": "x", "fallback": {"until": "seen"}}),
    )
    .await;
    assert_eq!(
        (s, v["error"]["field"].as_str()),
        (400, Some("fallback.until")),
        "{v}"
    );
    // The tenant's order applies: SMS only, even for an RCS-capable number.
    let phone = "+447700900611";
    r.sim.add_device(phone, None, true);
    let id = send(&r, json!({"to": phone, "text": "Tenant default"})).await;
    let m = status(&r, &id, "delivered").await;
    assert_eq!(plan(&m), vec![("sms".into(), true, "available".into())]);
    assert_eq!(m["plan"]["fallback"]["after_secs"], 120);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failure_receipt_falls_to_the_next_channel() {
    let r = rig_with(
        hermod_sim::smsc::SmscConfig {
            undeliverable_prefix: Some("447700900620".into()),
            ..Default::default()
        },
        |_| {},
    )
    .await;
    let phone = "+447700900620";
    r.sim.add_device(phone, None, true);
    // SMS first: the SMSC accepts, then its receipt says UNDELIV; RCS follows.
    let id = send(
        &r,
        json!({"to": phone, "text": "Receipt says no", "channels": ["sms", "rcs"]}),
    )
    .await;
    let m = status(&r, &id, "read").await;
    let a = attempts(&m);
    assert_eq!(a.len(), 2, "{m}");
    assert_eq!(a[0].0, "sms");
    assert!(
        ["failed", "rejected", "expired"].contains(&a[0].1.as_str()),
        "{a:?}"
    );
    assert_eq!(a[1], ("rcs".into(), "read".into()));
    assert_eq!(events_of(&m, "message.fallback"), 1);
    assert_eq!(
        events_of(&m, "message.failed"),
        0,
        "the message itself never failed"
    );
}
