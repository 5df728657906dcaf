//! Alert hooks (Alertmanager and device JSON), templates, quiet hours, scheduling and
//! the fast lane, through the real binary; embedded, and again on PostgreSQL +
//! RabbitMQ in the distributed pass.

use std::time::{Duration, Instant};

use hermod_sim::smsc::SmscConfig;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{
    Server, call, create_key, free_port, get_message, send_message, start_smsc, wait_status,
};

/// A notification as Alertmanager 0.27 posts it (webhook_config, payload version 4).
fn alertmanager(status: &str, group_key: &str) -> Value {
    json!({
      "version": "4",
      "groupKey": group_key,
      "truncatedAlerts": 0,
      "status": status,
      "receiver": "hermod",
      "groupLabels": {"alertname": "DiskFull"},
      "commonLabels": {"alertname": "DiskFull", "severity": "critical"},
      "commonAnnotations": {"summary": "disk / above 95%"},
      "externalURL": "http://alertmanager.example:9093",
      "alerts": [{
          "status": status,
          "labels": {"alertname": "DiskFull", "instance": "db-2:9100", "severity": "critical"},
          "annotations": {"summary": "disk / above 95%"},
          "startsAt": "2026-11-22T09:00:00.000Z",
          "endsAt": if status == "resolved" { "2026-11-22T09:20:00.000Z" } else { "0001-01-01T00:00:00Z" },
          "generatorURL": "http://prometheus.example:9090/graph?g0.expr=disk",
          "fingerprint": "9f1b2c3d4e5f6a7b"
      }]
    })
}

/// Posts to a hook URL without any credentials.
async fn post_hook(url: &str, body: &Value) -> (u16, Value, reqwest::header::HeaderMap) {
    let r = reqwest::Client::new()
        .post(url)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, r.json().await.unwrap_or(Value::Null), headers)
}

fn text_of(s: &hermod_sim::smsc::Submitted) -> String {
    hermod_core::gsm::decode(s.data_coding, &s.short_message)
}

#[tokio::test(flavor = "multi_thread")]
async fn alert_hooks_templates_and_quiet_hours() {
    let smsc = start_smsc(SmscConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let key = create_key(dir.path(), "ops");
    let server = Server::start(dir.path(), &smsc.url("hermod", "pw"), free_port());
    server.wait_healthy().await;
    let base = server.base.clone();
    let api = |p: &str| format!("{base}/v1{p}");

    // --- Templates: per-locale variants, validated at creation.
    let order_tpl = json!({
        "id": "order_shipped",
        "default_locale": "en",
        "variants": {
            "en": {"text": "Order {{ order.id }} shipped: {{ order.total | amount(order.currency) }}, arriving {{ order.eta | date(\"long\") }}."},
            "de": {"text": "Bestellung {{ order.id }} versandt: {{ order.total | amount(order.currency) }}, Ankunft {{ order.eta | date(\"%d.%m.%Y\") }}."}
        }
    });
    let (s, t, _) = call(
        Method::POST,
        &api("/templates"),
        &key,
        Some(order_tpl.clone()),
    )
    .await;
    assert_eq!(s, 201, "{t}");
    assert_eq!(
        t["variables"],
        json!(["order.currency", "order.eta", "order.id", "order.total"])
    );
    let (s, _, _) = call(Method::POST, &api("/templates"), &key, Some(order_tpl)).await;
    assert_eq!(s, 409, "an id is used once");
    let (s, e, _) = call(
        Method::POST,
        &api("/templates"),
        &key,
        Some(json!({"id": "bad", "variables": ["order.id"],
                    "variants": {"en": {"text": "{{ order.id }} {{ order.totl }}"}}})),
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(e["error"]["field"], "variants.en.text");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("order.totl"),
        "{e}"
    );
    // Runaway templates are refused, and the server answers at once.
    for text in [
        "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
        "{% for i in range(100) %}{{ 'x' * 100000000 }}{% endfor %}",
    ] {
        let started = std::time::Instant::now();
        let (s, e, _) = call(
            Method::POST,
            &api("/templates"),
            &key,
            Some(json!({"id": "runaway", "variants": {"en": {"text": text}}})),
        )
        .await;
        assert_eq!(s, 400, "{text}: {e}");
        assert_eq!(e["error"]["field"], "variants.en.text", "{e}");
        eprintln!("runaway template refused in {:?}", started.elapsed());
    }
    let (s, _, _) = call(Method::GET, &format!("{base}/healthz"), &key, None).await;
    assert_eq!(s, 200, "still serving");
    let (s, e, _) = call(
        Method::POST,
        &api("/templates"),
        &key,
        Some(json!({"id": "card", "variants": {"en": {"content": {"card": {"title": "{{ t }}",
            "description": "x"}}, "suggestions": [{"reply": {"text": "a reply text longer than RBM allows"}}]}}})),
    )
    .await;
    assert_eq!(s, 400, "RBM's 25-character suggestion limit: {e}");
    assert!(
        e["error"]["field"]
            .as_str()
            .unwrap()
            .contains("suggestions[0]"),
        "{e}"
    );

    // Preview: rendered per locale, with the SMS encoding and segment count.
    let vars =
        json!({"order": {"id": "A-17", "total": 1234.5, "currency": "EUR", "eta": "2026-11-24"}});
    let (s, p, _) = call(
        Method::POST,
        &api("/templates/order_shipped/preview"),
        &key,
        Some(json!({"locale": "de-AT", "vars": vars})),
    )
    .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["locale"], "de");
    assert_eq!(
        p["text"],
        "Bestellung A-17 versandt: 1.234,50 €, Ankunft 24.11.2026."
    );
    assert_eq!(p["sms"]["encoding"], "GSM-7");
    assert_eq!(p["sms"]["segments"], 1);
    let (_, p, _) = call(
        Method::POST,
        &api("/templates/order_shipped/preview"),
        &key,
        Some(json!({"vars": {"order": {"id": "📦".repeat(70), "total": 1, "currency": "USD", "eta": "2026-11-24"}}})),
    )
    .await;
    assert_eq!(p["sms"]["encoding"], "UCS-2", "{p}");
    assert_eq!(p["sms"]["segments"], 3, "{p}");
    let (s, e, _) = call(
        Method::POST,
        &api("/templates/order_shipped/preview"),
        &key,
        Some(json!({"vars": {"order": {"id": "A-17", "total": 1, "currency": "EUR"}}})),
    )
    .await;
    assert_eq!(
        (s, e["error"]["field"].as_str()),
        (400, Some("vars.order.eta"))
    );

    // A message from the template.
    let (s, m) = send_message(
        &base,
        &key,
        json!({"to": "+4915112345678", "template": {"id": "order_shipped", "locale": "de", "vars": vars}}),
    )
    .await;
    assert_eq!(s, 202, "{m}");
    assert_eq!(
        m["text"],
        "Bestellung A-17 versandt: 1.234,50 €, Ankunft 24.11.2026."
    );
    wait_status(&base, &key, m["id"].as_str().unwrap(), "delivered", 30).await;
    assert!(
        smsc.submitted()
            .iter()
            .any(|s| text_of(s) == "Bestellung A-17 versandt: 1.234,50 €, Ankunft 24.11.2026."),
        "the SMSC got the rendered German text"
    );
    let (s, e) = send_message(
        &base,
        &key,
        json!({"to": "+4915112345678", "template": {"id": "order_shipped", "vars": {"order": {"total": 1, "currency": "EUR", "eta": "2026-11-24"}}}}),
    )
    .await;
    assert_eq!(
        (s, e["error"]["field"].as_str()),
        (400, Some("template.vars.order.id")),
        "{e}"
    );
    let (s, e) = send_message(
        &base,
        &key,
        json!({"to": "+4915112345678", "text": "x", "template": {"id": "order_shipped"}}),
    )
    .await;
    assert_eq!((s, e["error"]["field"].as_str()), (400, Some("template")));
    let (s, e) = send_message(
        &base,
        &key,
        json!({"to": "+4915112345678", "template": {"id": "nope"}}),
    )
    .await;
    assert_eq!(
        (s, e["error"]["field"].as_str()),
        (400, Some("template.id"))
    );

    // --- Alert hooks.
    let (s, _, _) = call(
        Method::POST,
        &api("/templates"),
        &key,
        Some(json!({"id": "page", "variants": {"en": {"text":
            "{{ status | upper }} {{ labels.alertname }} on {{ labels.instance }}: {{ annotations.summary }}"}}})),
    )
    .await;
    assert_eq!(s, 201);
    let (s, e, _) = call(
        Method::POST,
        &api("/hooks"),
        &key,
        Some(json!({"name": "x"})),
    )
    .await;
    assert_eq!((s, e["error"]["field"].as_str()), (400, Some("recipients")));
    let (s, e, _) = call(
        Method::POST,
        &api("/hooks"),
        &key,
        Some(json!({"name": "x", "recipients": ["+447700900101"], "template": "nope"})),
    )
    .await;
    assert_eq!((s, e["error"]["field"].as_str()), (400, Some("template")));
    let (s, hook, _) = call(
        Method::POST,
        &api("/hooks"),
        &key,
        Some(json!({"name": "prod", "recipients": ["+447700900101"], "template": "page", "dedupe_window": "10m"})),
    )
    .await;
    assert_eq!(s, 201, "{hook}");
    let url = hook["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with(&format!("{base}/v1/hooks/hmh_")), "{url}");
    assert_eq!(hook["fast_lane"], true);

    // Firing: one message, in the fast lane, delivered.
    let firing = alertmanager("firing", "{}:{alertname=\"DiskFull\"}");
    let (s, r, _) = post_hook(&url, &firing).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(
        (r["accepted"].as_u64(), r["suppressed"].as_u64()),
        (Some(1), Some(0))
    );
    let first = r["alerts"][0]["messages"][0].as_str().unwrap().to_owned();
    let m = wait_status(&base, &key, &first, "delivered", 30).await;
    assert_eq!(m["text"], "FIRING DiskFull on db-2:9100: disk / above 95%");
    assert_eq!(m["priority"], "high");
    assert_eq!(m["metadata"]["alert"]["fingerprint"], "9f1b2c3d4e5f6a7b");

    // Alertmanager's retry of the same notification replays the answer.
    let (s, again, h) = post_hook(&url, &firing).await;
    assert_eq!((s, &again), (200, &r));
    assert_eq!(h.get("idempotent-replayed").unwrap(), "true");
    // The next notification of the group repeats the alert inside the window: not sent.
    let mut repeat = firing.clone();
    repeat["groupKey"] = "{}:{alertname=\"DiskFull\", repeat=\"1\"}".into();
    let (s, r2, _) = post_hook(&url, &repeat).await;
    assert_eq!(s, 200);
    assert_eq!(
        (r2["accepted"].as_u64(), r2["suppressed"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(r2["alerts"][0]["outcome"], "duplicate");

    // Resolved: a message once, then suppressed.
    let (s, r3, _) = post_hook(&url, &alertmanager("resolved", "g")).await;
    assert_eq!((s, r3["accepted"].as_u64()), (200, Some(1)), "{r3}");
    let resolved = r3["alerts"][0]["messages"][0].as_str().unwrap().to_owned();
    let m = wait_status(&base, &key, &resolved, "delivered", 30).await;
    assert_eq!(
        m["text"],
        "RESOLVED DiskFull on db-2:9100: disk / above 95%"
    );
    let (_, r4, _) = post_hook(&url, &alertmanager("resolved", "g2")).await;
    assert_eq!(
        (r4["accepted"].as_u64(), r4["suppressed"].as_u64()),
        (Some(0), Some(1))
    );
    let to_ops: Vec<_> = smsc
        .submitted()
        .into_iter()
        .filter(|s| s.destination == "447700900101")
        .map(|s| text_of(&s))
        .collect();
    assert_eq!(
        to_ops,
        vec![
            "FIRING DiskFull on db-2:9100: disk / above 95%",
            "RESOLVED DiskFull on db-2:9100: disk / above 95%"
        ],
        "one firing and one resolved message reached the phone"
    );

    // A device posting its own JSON to a hook without a template.
    let (_, dev, _) = call(
        Method::POST,
        &api("/hooks"),
        &key,
        Some(json!({"name": "cold room", "recipients": ["+447700900102"], "send_resolved": false})),
    )
    .await;
    let dev_url = dev["url"].as_str().unwrap().to_owned();
    let (s, r, _) = post_hook(
        &dev_url,
        &json!({"device": "freezer-7", "message": "temperature -2°C", "id": "f7-temp"}),
    )
    .await;
    assert_eq!((s, r["accepted"].as_u64()), (200, Some(1)), "{r}");
    let id = r["alerts"][0]["messages"][0].as_str().unwrap();
    let m = wait_status(&base, &key, id, "delivered", 30).await;
    assert_eq!(m["text"], "[FIRING] freezer-7: temperature -2°C");
    let (_, r, _) = post_hook(
        &dev_url,
        &json!({"device": "freezer-7", "status": "ok", "id": "f7-temp"}),
    )
    .await;
    assert_eq!(r["alerts"][0]["outcome"], "resolved_not_sent");
    // Wrong token, bad body.
    let (s, _, _) = post_hook(
        &format!("{base}/v1/hooks/hmh_0000000000000000_nope"),
        &json!({}),
    )
    .await;
    assert_eq!(s, 404);
    let r = reqwest::Client::new()
        .post(&dev_url)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    // Hooks list without their URLs (the token is shown once).
    let (_, list, _) = call(Method::GET, &api("/hooks"), &key, None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
    assert!(list["data"][0].get("url").is_none());

    // The new endpoints are in the OpenAPI document.
    let doc: Value = reqwest::get(format!("{base}/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for p in ["/v1/hooks", "/v1/hooks/{id}", "/v1/templates/{id}/preview"] {
        assert!(doc["paths"].get(p).is_some(), "{p} is documented");
    }

    // --- Scheduling: the message waits for send_at.
    let at = time::OffsetDateTime::now_utc() + time::Duration::seconds(2);
    let at_s = at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (_, m) = send_message(
        &base,
        &key,
        json!({"to": "+447700900103", "text": "later", "send_at": at_s}),
    )
    .await;
    assert_eq!(m["status"], "scheduled");
    let id = m["id"].as_str().unwrap().to_owned();
    let m = wait_status(&base, &key, &id, "delivered", 30).await;
    let sent_at = m["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "message.sent")
        .and_then(|e| e["at"].as_str())
        .map(|t| {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).unwrap()
        })
        .unwrap();
    assert!(
        sent_at >= at - time::Duration::milliseconds(5),
        "sent {sent_at} before {at}"
    );

    // --- Quiet hours: it is night now in UTC (the window is around now); +44 numbers
    // are put in UTC, and it is day at UTC+6.
    let now = time::OffsetDateTime::now_utc();
    let hm = |t: time::OffsetDateTime| format!("{:02}:{:02}", t.hour(), t.minute());
    let (start, end) = (
        now - time::Duration::hours(1),
        now + time::Duration::hours(1),
    );
    let (s, e, _) = call(
        Method::PUT,
        &api("/tenant/defaults"),
        &key,
        Some(json!({"quiet_hours": {"start": "9pm", "end": "08:00"}})),
    )
    .await;
    assert_eq!(
        (s, e["error"]["field"].as_str()),
        (400, Some("quiet_hours.start"))
    );
    let (s, d, _) = call(
        Method::PUT,
        &api("/tenant/defaults"),
        &key,
        Some(json!({"quiet_hours": {"start": hm(start), "end": hm(end), "timezones": {"+44": "UTC"}}})),
    )
    .await;
    assert_eq!(s, 200, "{d}");
    let (_, quiet) = send_message(
        &base,
        &key,
        json!({"to": "+447700900104", "text": "newsletter"}),
    )
    .await;
    assert_eq!(quiet["status"], "scheduled", "{quiet}");
    let until = time::OffsetDateTime::parse(
        quiet["send_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let expect = end
        .replace_second(0)
        .unwrap()
        .replace_nanosecond(0)
        .unwrap();
    assert_eq!(until, expect, "deferred to the end of the quiet hours");
    let view = get_message(&base, &key, quiet["id"].as_str().unwrap()).await;
    assert!(
        view["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "message.scheduled" && e["detail"]["reason"] == "quiet_hours"),
        "{view}"
    );
    // Urgent traffic, and a recipient whose day it is, are not held.
    let (_, urgent) = send_message(
        &base,
        &key,
        json!({"to": "+447700900104", "text": "your code is 1234", "priority": "high"}),
    )
    .await;
    assert_eq!(urgent["status"], "accepted");
    wait_status(&base, &key, urgent["id"].as_str().unwrap(), "delivered", 30).await;
    let (_, day) = send_message(
        &base,
        &key,
        json!({"to": "+447700900105", "text": "hi", "timezone": "Etc/GMT-6"}),
    )
    .await;
    assert_eq!(day["status"], "accepted", "{day}");
    let (s, e) = send_message(
        &base,
        &key,
        json!({"to": "+447700900105", "text": "hi", "timezone": "Mars/Base"}),
    )
    .await;
    assert_eq!((s, e["error"]["field"].as_str()), (400, Some("timezone")));
    let (s, e) = send_message(
        &base,
        &key,
        json!({"to": "+447700900105", "text": "hi", "priority": "urgent"}),
    )
    .await;
    assert_eq!((s, e["error"]["field"].as_str()), (400, Some("priority")));
    // The deferred message is still waiting (and can be canceled).
    let (s, _, _) = call(
        Method::DELETE,
        &api(&format!("/messages/{}", quiet["id"].as_str().unwrap())),
        &key,
        None,
    )
    .await;
    assert_eq!(s, 200);
}

/// A hook URL cannot become an SMS cannon: payloads and recipients are capped, the
/// hook's sender must be the tenant's, and each hook spends its own budget, so a
/// flood on it neither passes the limit nor takes the tenant's rate for other traffic.
#[tokio::test(flavor = "multi_thread")]
async fn alert_hooks_are_capped_and_spend_their_own_budget() {
    let smsc = start_smsc(SmscConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hermod.toml");
    // The tenant: 2 messages/s, 5 at once. Each hook: 10 at once, then 1 a second.
    std::fs::write(
        &config,
        format!(
            "[api]\nrate_limit_per_sec = 2.0\nrate_limit_burst = 5.0\nhook_rate_per_sec = 1.0\nhook_burst = 10.0\n[[smpp.connectors]]\nname = \"s\"\nurl = \"{}\"\n",
            smsc.url("hermod", "pw")
        ),
    )
    .unwrap();
    let key = create_key(dir.path(), "ops");
    let server = Server::start_with_config(dir.path(), &config, free_port());
    server.wait_healthy().await;
    let base = server.base.clone();
    let api = |p: &str| format!("{base}/v1{p}");
    let many: Vec<String> = (0..21).map(|i| format!("+4479111{i:05}")).collect();
    for (body, field, status) in [
        (json!({"name": "n", "recipients": many}), "recipients", 400),
        (
            json!({"name": "n", "on_call": {"numbers": many}}),
            "on_call.numbers",
            400,
        ),
        (
            json!({"name": "n", "recipients": ["+447911123456"], "from": "SomeoneElse"}),
            "from",
            403,
        ),
    ] {
        let (s, v, _) = call(Method::POST, &api("/hooks"), &key, Some(body)).await;
        assert_eq!(
            (s, v["error"]["field"].as_str()),
            (status, Some(field)),
            "{v}"
        );
    }
    let (s, hook, _) = call(
        Method::POST,
        &api("/hooks"),
        &key,
        Some(json!({"name": "fleet", "recipients": ["+447911123456"]})),
    )
    .await;
    assert_eq!(s, 201);
    let url = hook["url"].as_str().unwrap().to_owned();
    let alerts = |n: usize, tag: &str| {
        let list: Vec<Value> = (0..n)
            .map(|i| json!({"status": "firing", "labels": {"alertname": format!("{tag}{i}")}, "fingerprint": format!("{tag}{i}")}))
            .collect();
        json!({"version": "4", "status": "firing", "receiver": "hermod", "alerts": list})
    };
    let (s, v, _) = post_hook(&url, &alerts(101, "big")).await;
    assert_eq!((s, v["error"]["field"].as_str()), (400, Some("alerts")));
    let before = smsc.submit_count();
    // 8 alerts fit the hook's budget; the next 8 do not (429, nothing stored).
    let (s, v, _) = post_hook(&url, &alerts(8, "a")).await;
    assert_eq!((s, v["accepted"].as_u64()), (200, Some(8)), "{v}");
    let (s, _, h) = post_hook(&url, &alerts(8, "b")).await;
    assert_eq!(s, 429);
    assert!(h.get("retry-after").is_some());
    // The tenant's own traffic still has its whole budget.
    for i in 0..5 {
        let (s, v) = send_message(
            &base,
            &key,
            json!({"to": "+447911123456", "text": format!("order {i}")}),
        )
        .await;
        assert_eq!(s, 202, "{v}");
    }
    let (s, _) = send_message(
        &base,
        &key,
        json!({"to": "+447911123456", "text": "one more"}),
    )
    .await;
    assert_eq!(s, 429, "and only its own");
    let deadline = Instant::now() + Duration::from_secs(30);
    while smsc.submit_count() < before + 13 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(smsc.submit_count(), before + 13, "8 alerts and 5 messages");
    smsc.stop();
}

/// A high-priority message overtakes 10,000 bulk messages queued ahead of it: the
/// SMSC answers one submit per 5 ms, so the bulk takes nearly a minute to drain, and
/// the urgent message reaches it with thousands of bulk messages still waiting.
#[tokio::test(flavor = "multi_thread")]
async fn high_priority_overtakes_ten_thousand_bulk() {
    let smsc = start_smsc(SmscConfig {
        submit_delay: Duration::from_millis(5),
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let key = create_key(dir.path(), "shop");
    let server = Server::start(dir.path(), &smsc.url("hermod", "pw"), free_port());
    server.wait_healthy().await;
    let base = server.base.clone();
    for chunk in 0..10 {
        let messages: Vec<Value> = (0..1000)
            .map(
                |i| json!({"to": format!("+4477009{:05}", chunk * 1000 + i), "text": "bulk offer"}),
            )
            .collect();
        let (s, r, _) = call(
            Method::POST,
            &format!("{base}/v1/messages/batch"),
            &key,
            Some(json!({"messages": messages})),
        )
        .await;
        assert_eq!(s, 202, "{r}");
    }
    let queued_at = Instant::now();
    let (s, urgent) = send_message(
        &base,
        &key,
        json!({"to": "+447911000999", "text": "ALERT: freezer offline", "priority": "high"}),
    )
    .await;
    assert_eq!(s, 202);
    wait_status(
        &base,
        &key,
        urgent["id"].as_str().unwrap(),
        "delivered",
        120,
    )
    .await;
    let submitted = smsc.submitted();
    let pos = submitted
        .iter()
        .position(|s| s.destination == "447911000999")
        .expect("the urgent message reached the SMSC");
    eprintln!(
        "fast lane: urgent message was submit #{} of {} so far, delivered {:?} after it was queued",
        pos + 1,
        submitted.len(),
        queued_at.elapsed()
    );
    assert!(
        pos < 8_000,
        "the urgent message went out after {pos} of the 10,000 bulk messages queued before it"
    );
}
