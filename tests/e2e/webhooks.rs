//! Customer webhooks end to end: one event schema for every channel, signed
//! deliveries that wait out a receiver that is down, replay, per-message callback URLs
//! and inbound messages.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use reqwest::Method;
use serde_json::{Value, json};

use crate::rcs::{Rig, rig};
use hermod_sim::smsc::SmscConfig;

use crate::support::{
    Server, call, create_key, eventually, free_port, send_message, start_smsc, wait_status,
};

type Got = Arc<Mutex<Vec<(Option<String>, String)>>>;

/// A receiver on `port` that records `(Hermod-Signature, body)` and answers 204.
fn receiver(port: u16, got: Got) -> actix_web::dev::ServerHandle {
    let data = web::Data::new(got);
    let server = HttpServer::new(move || {
        App::new().app_data(data.clone()).route(
            "/hook",
            web::post().to(
                |req: HttpRequest, body: web::Bytes, got: web::Data<Got>| async move {
                    let sig = req
                        .headers()
                        .get("hermod-signature")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    got.lock()
                        .unwrap()
                        .push((sig, String::from_utf8_lossy(&body).to_string()));
                    HttpResponse::NoContent().finish()
                },
            ),
        )
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .bind(("127.0.0.1", port))
    .unwrap()
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    handle
}

fn verified(got: &Got, secret: &str) -> Vec<Value> {
    let now = hermod_core::now_ms() / 1000;
    got.lock()
        .unwrap()
        .iter()
        .map(|(sig, body)| {
            let sig = sig.as_deref().expect("signed");
            assert!(
                hermod_crypto::webhook::verify(secret, sig, body.as_bytes(), now, 300),
                "bad signature {sig} on {body}"
            );
            serde_json::from_str(body).unwrap()
        })
        .collect()
}

async fn endpoint(r: &Rig, url: &str, events: Value) -> (u16, Value) {
    let (s, v, _) = call(
        Method::POST,
        &format!("{}/v1/webhook-endpoints", r.server.base),
        &r.key,
        Some(json!({"url": url, "events": events})),
    )
    .await;
    (s, v)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_that_was_down_gets_every_event_later_signed() {
    let r = rig(|_| {}).await;
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/hook");
    let (s, ep) = endpoint(&r, &url, json!(["*"])).await;
    assert_eq!(s, 201, "{ep}");
    let secret = ep["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    // The secret is shown once.
    let (_, list, _) = call(
        Method::GET,
        &format!("{}/v1/webhook-endpoints", r.server.base),
        &r.key,
        None,
    )
    .await;
    assert_eq!(list["data"][0]["url"], url.as_str());
    assert!(list["data"][0]["secret"].is_null());

    // The receiver is down while three messages go out (SMS, and RCS to read).
    let phone = "+447700900701";
    r.sim.add_device(phone, None, true);
    let mut ids = Vec::new();
    for (to, ch) in [
        ("+447700900702", "sms"),
        ("+447700900703", "sms"),
        (phone, "rcs"),
    ] {
        let (s, v) = send_message(
            &r.server.base,
            &r.key,
            json!({"to": to, "text": "Order 77 shipped", "channels": [ch], "metadata": {"order": 77}}),
        )
        .await;
        assert_eq!(s, 202);
        ids.push(v["id"].as_str().unwrap().to_owned());
    }
    for (id, end) in ids.iter().zip(["delivered", "delivered", "read"]) {
        wait_status(&r.server.base, &r.key, id, end, 30).await;
    }
    // Deliveries failed and wait for a retry.
    let (_, pending, _) = call(
        Method::GET,
        &format!("{}/v1/webhook-deliveries?status=pending", r.server.base),
        &r.key,
        None,
    )
    .await;
    let pending = pending["data"].as_array().unwrap().clone();
    assert!(!pending.is_empty());
    assert!(
        pending
            .iter()
            .any(|d| d["attempts"].as_i64() >= Some(1) && d["last_error"] == "connect"),
        "{pending:?}"
    );

    // Up again: every event arrives, signed.
    let got: Got = Arc::default();
    let handle = receiver(port, got.clone());
    let want = ["message.queued", "message.sent", "message.delivered"];
    eventually("every event delivered", Duration::from_secs(40), || {
        let got = got.clone();
        let ids = ids.clone();
        async move {
            let events: Vec<Value> = got
                .lock()
                .unwrap()
                .iter()
                .map(|(_, b)| serde_json::from_str(b).unwrap())
                .collect();
            ids.iter().all(|id| {
                want.iter().all(|w| {
                    events
                        .iter()
                        .any(|e| e["message_id"] == id.as_str() && e["type"] == *w)
                })
            }) && events.iter().any(|e| e["type"] == "message.read")
        }
    })
    .await;
    let events = verified(&got, &secret);
    let mut last_seq: HashMap<String, i64> = HashMap::new();
    let mut by_seq: Vec<&Value> = events.iter().collect();
    by_seq.sort_by_key(|e| e["sequence"].as_i64().unwrap());
    for e in &by_seq {
        // One schema whatever the channel.
        for f in [
            "id",
            "type",
            "sequence",
            "message_id",
            "status",
            "occurred_at",
        ] {
            assert!(!e[f].is_null(), "{f} missing in {e}");
        }
        assert_eq!(e["metadata"]["order"], 77);
        let m = e["message_id"].as_str().unwrap().to_owned();
        let seq = e["sequence"].as_i64().unwrap();
        assert!(last_seq.get(&m).is_none_or(|s| *s < seq));
        last_seq.insert(m, seq);
    }
    let delivered_sms = events
        .iter()
        .find(|e| e["type"] == "message.delivered" && e["message_id"] == ids[0].as_str())
        .unwrap();
    assert_eq!(delivered_sms["channel"], "sms");
    assert_eq!(delivered_sms["attempt"], 1);
    assert!(
        delivered_sms["raw_status"]
            .as_str()
            .unwrap()
            .contains("DELIVRD"),
        "{delivered_sms}"
    );
    assert!(delivered_sms["error"].is_null());
    let read = events.iter().find(|e| e["type"] == "message.read").unwrap();
    assert_eq!(read["channel"], "rcs");
    assert_eq!(read["raw_status"], "READ");

    // Replay: a delivered delivery goes again on request.
    let (_, done, _) = call(
        Method::GET,
        &format!(
            "{}/v1/webhook-deliveries?status=delivered&limit=1",
            r.server.base
        ),
        &r.key,
        None,
    )
    .await;
    let one = done["data"][0]["id"].as_i64().unwrap();
    let before = got.lock().unwrap().len();
    let (s, _, _) = call(
        Method::POST,
        &format!("{}/v1/webhook-deliveries/{one}/retry", r.server.base),
        &r.key,
        None,
    )
    .await;
    assert_eq!(s, 202);
    eventually("the replay", Duration::from_secs(10), || {
        let got = got.clone();
        async move { got.lock().unwrap().len() > before }
    })
    .await;
    let (s, _, _) = call(
        Method::POST,
        &format!("{}/v1/webhook-deliveries/999999999/retry", r.server.base),
        &r.key,
        None,
    )
    .await;
    assert_eq!(s, 404);
    handle.stop(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn callback_urls_are_signed_with_the_tenant_secret_and_inbound_reaches_endpoints() {
    let r = rig(|_| {}).await;
    let port = free_port();
    let got: Got = Arc::default();
    let handle = receiver(port, got.clone());
    let url = format!("http://127.0.0.1:{port}/hook");
    let (s, v, _) = call(
        Method::POST,
        &format!("{}/v1/webhook-secret", r.server.base),
        &r.key,
        None,
    )
    .await;
    assert_eq!(s, 201);
    let secret = v["secret"].as_str().unwrap().to_owned();
    // An endpoint for inbound messages only.
    let inbound_got: Got = Arc::default();
    let inbound_port = free_port();
    let inbound_handle = receiver(inbound_port, inbound_got.clone());
    let (s, ep) = endpoint(
        &r,
        &format!("http://127.0.0.1:{inbound_port}/hook"),
        json!(["message.inbound"]),
    )
    .await;
    assert_eq!(s, 201);
    let ep_secret = ep["secret"].as_str().unwrap().to_owned();

    let to = "+447700900711";
    let sender = crate::rcs::SHOP_NUMBER;
    let (s, v) = send_message(
        &r.server.base,
        &r.key,
        json!({"to": to, "from": sender, "text": "Hi", "channels": ["sms"], "callback_url": url}),
    )
    .await;
    assert_eq!(s, 202);
    let id = v["id"].as_str().unwrap().to_owned();
    wait_status(&r.server.base, &r.key, &id, "delivered", 30).await;
    eventually(
        "the callback's delivered event",
        Duration::from_secs(20),
        || {
            let got = got.clone();
            async move {
                got.lock()
                    .unwrap()
                    .iter()
                    .any(|(_, b)| b.contains("message.delivered"))
            }
        },
    )
    .await;
    let events = verified(&got, &secret);
    assert!(events.iter().all(|e| e["message_id"] == id.as_str()));
    assert!(
        inbound_got.lock().unwrap().is_empty(),
        "the inbound endpoint wants no status events"
    );

    // The recipient answers: the inbound endpoint hears of it.
    r.smsc
        .inject_mo("hermod", "447700900711", "447700900712", "Thanks!", false);
    eventually("message.inbound", Duration::from_secs(20), || {
        let g = inbound_got.clone();
        async move { !g.lock().unwrap().is_empty() }
    })
    .await;
    let inbound = verified(&inbound_got, &ep_secret);
    assert_eq!(inbound[0]["type"], "message.inbound");
    assert_eq!(inbound[0]["text"], "Thanks!");
    assert_eq!(inbound[0]["from"], to);

    // Bad endpoints are refused with the field named; deletion works once.
    let (s, v) = endpoint(&r, "ftp://x", json!(["*"])).await;
    assert_eq!((s, v["error"]["field"].as_str()), (400, Some("url")));
    let (s, v) = endpoint(&r, &url, json!(["message.bogus"])).await;
    assert_eq!((s, v["error"]["field"].as_str()), (400, Some("events[0]")));
    let del = format!(
        "{}/v1/webhook-endpoints/{}",
        r.server.base,
        ep["id"].as_str().unwrap()
    );
    assert_eq!(call(Method::DELETE, &del, &r.key, None).await.0, 204);
    assert_eq!(call(Method::DELETE, &del, &r.key, None).await.0, 404);
    handle.stop(false).await;
    inbound_handle.stop(false).await;
}

/// No URL that points inside the operator's network is taken (the test servers allow
/// 127.0.0.1/32 only, as an operator would for a receiver on the same machine).
#[tokio::test(flavor = "multi_thread")]
async fn internal_addresses_are_refused_for_endpoints_and_callback_urls() {
    let r = rig(|_| {}).await;
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/hook",
        "http://127.0.0.2:8080/hook",
        "http://[::1]/hook",
        "http://[::ffff:a9fe:a9fe]/hook",
        "http://2852039166/hook",
        "http://192.168.1.1/hook",
        "http://100.64.0.1/hook",
    ] {
        let (s, v) = endpoint(&r, url, json!(["*"])).await;
        assert_eq!(s, 400, "{url}: {v}");
        assert_eq!(v["error"]["field"], "url", "{url}: {v}");
        let (s, v, _) = call(
            Method::POST,
            &format!("{}/v1/messages", r.server.base),
            &r.key,
            Some(json!({"to": "+447911123456", "text": "x", "callback_url": url})),
        )
        .await;
        assert_eq!(s, 400, "{url}: {v}");
        assert_eq!(v["error"]["field"], "callback_url", "{url}: {v}");
    }
    let (s, v) = endpoint(&r, "http://127.0.0.1:9/hook", json!(["*"])).await;
    assert_eq!(s, 201, "the allowed range: {v}");
    let (s, v) = endpoint(&r, "https://hooks.example.com/x", json!(["*"])).await;
    assert_eq!(s, 201, "a public name: {v}");
}

/// Deleting an endpoint ends its pending deliveries. One tenant cannot take every
/// webhook slot: with 600 callback origins that accept and never answer (more POSTs
/// than the process keeps in flight), another tenant's events still go out, long
/// before the silent ones time out.
#[tokio::test(flavor = "multi_thread")]
async fn one_tenant_cannot_starve_the_others_webhooks_and_deleting_an_endpoint_ends_its_deliveries()
{
    let smsc = start_smsc(SmscConfig {
        dlr_delay: Duration::from_millis(10),
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hermod.toml");
    std::fs::write(
        &config,
        format!(
            "[webhooks]\ntimeout_secs = 90\n[[smpp.connectors]]\nname = \"s\"\nurl = \"{}\"\n",
            smsc.url("hermod", "pw")
        ),
    )
    .unwrap();
    let hog = create_key(dir.path(), "hog");
    let fair = create_key(dir.path(), "fair");
    let server = Server::start_with_config(dir.path(), &config, free_port());
    server.wait_healthy().await;
    let base = server.base.clone();
    // An endpoint that refuses connections: its deliveries wait as pending rows, and
    // end when it is deleted.
    let dead = format!("http://127.0.0.1:{}/hook", free_port());
    let (s, ep, _) = call(
        Method::POST,
        &format!("{base}/v1/webhook-endpoints"),
        &fair,
        Some(json!({"url": dead, "events": ["*"]})),
    )
    .await;
    assert_eq!(s, 201);
    let (s, _) = send_message(
        &base,
        &fair,
        json!({"to": "+447911123458", "text": "z", "channels": ["sms"]}),
    )
    .await;
    assert_eq!(s, 202);
    let deliveries = || async {
        let (_, v, _) = call(
            Method::GET,
            &format!("{base}/v1/webhook-deliveries?limit=1000"),
            &fair,
            None,
        )
        .await;
        v["data"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|d| d["url"] == dead.as_str())
            .collect::<Vec<Value>>()
    };
    eventually(
        "pending deliveries to the dead endpoint",
        Duration::from_secs(30),
        || async { deliveries().await.iter().any(|d| d["status"] == "pending") },
    )
    .await;
    let (s, _, _) = call(
        Method::DELETE,
        &format!("{base}/v1/webhook-endpoints/{}", ep["id"].as_str().unwrap()),
        &fair,
        None,
    )
    .await;
    assert_eq!(s, 204);
    // Those pending then end at once; a POST that was in flight meanwhile and failed
    // becomes a row after the deletion, and ends when it is next due (in 1 s).
    eventually(
        "every delivery to the deleted endpoint ended",
        Duration::from_secs(30),
        || async {
            let after = deliveries().await;
            !after.is_empty()
                && after
                    .iter()
                    .all(|d| d["status"] == "failed" && d["last_error"] == "endpoint_deleted")
        },
    )
    .await;
    // Listeners that take connections (the kernel's backlog) and never answer.
    let silent: Vec<std::net::TcpListener> = (0..600)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let started = Instant::now();
    let msgs: Vec<Value> = silent
        .iter()
        .map(|l| {
            json!({"to": "+447911123456", "text": "x", "channels": ["sms"],
                   "callback_url": format!("http://127.0.0.1:{}/cb", l.local_addr().unwrap().port())})
        })
        .collect();
    let (s, _, _) = call(
        Method::POST,
        &format!("{base}/v1/messages/batch"),
        &hog,
        Some(json!({ "messages": msgs })),
    )
    .await;
    assert_eq!(s, 202);
    // Let the hog's POSTs pile up on the silent origins.
    eventually(
        "the hog's messages delivered",
        Duration::from_secs(30),
        || async {
            let (_, v, _) = call(
                Method::GET,
                &format!("{base}/v1/messages?status=delivered&limit=1000"),
                &hog,
                None,
            )
            .await;
            v["data"].as_array().is_some_and(|d| d.len() == 600)
        },
    )
    .await;
    let port = free_port();
    let got: Got = Arc::default();
    let handle = receiver(port, got.clone());
    let (s, v) = send_message(
        &base,
        &fair,
        json!({"to": "+447911123457", "text": "y", "channels": ["sms"],
               "callback_url": format!("http://127.0.0.1:{port}/hook")}),
    )
    .await;
    assert_eq!(s, 202);
    let id = v["id"].as_str().unwrap().to_owned();
    eventually(
        "the fair tenant's delivered event",
        Duration::from_secs(60),
        || async {
            got.lock()
                .unwrap()
                .iter()
                .any(|(_, b)| b.contains(&id) && b.contains("\"message.delivered\""))
        },
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(90),
        "before any of the hog's POSTs timed out"
    );
    let mut pending = 0;
    for l in &silent {
        l.set_nonblocking(true).unwrap();
        while l.accept().is_ok() {
            pending += 1;
        }
    }
    // The hog holds its share (a quarter of the 512 slots), not every slot.
    assert!(
        (100..=200).contains(&pending),
        "{pending} silent connections"
    );
    handle.stop(false).await;

    drop(silent);
    smsc.stop();
}
