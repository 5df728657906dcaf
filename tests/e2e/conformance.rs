//! The channel conformance suite: every channel of the registry (`ChannelKind::ALL`)
//! passes the same checks, end to end through the API against its simulator:
//!
//! - send: a message on the channel alone reaches `delivered`, with the provider's id
//!   and raw status on its attempt;
//! - receipt: the provider's receipt moves it (`sent` then `delivered` on the
//!   timeline);
//! - failure: a recipient the provider refuses ends the message failed, with the
//!   attempt's error code;
//! - capability (assess): what the channel knows of a recipient when the message is
//!   planned is on the plan, kept or skipped with the reason;
//! - withdraw, where the channel has one: a silent recipient's message is withdrawn
//!   before the fallback, and the next channel takes it;
//! - idempotent retry: the same request twice (same `Idempotency-Key`) is one
//!   message, sent to the provider once.
//!
//! A new `ChannelKind` variant does not compile here until it has a fixture.

use std::time::Duration;

use hermod_core::model::ChannelKind;
use hermod_crypto::hpke::Aead;
use hermod_sim::device::DeviceSim;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::rcs::{Rig, rig_with};
use crate::support::{checked, get_message, send_message};

/// What the suite needs to know of a channel and its simulator.
struct Fixture {
    /// A recipient the channel reaches, whose receipt says delivered.
    ok: String,
    /// A recipient whose send fails for good, and the attempt's error code when the
    /// channel decides it (None: the provider's receipt does).
    fails: (String, Option<&'static str>),
    /// A recipient the channel cannot take: skipped when planned, with this reason.
    /// None: the channel takes every recipient.
    skipped: Option<(String, &'static str)>,
    /// A recipient that stays silent, for a withdrawal before the fallback. None: the
    /// channel has no withdrawal.
    silent: Option<String>,
    /// Stops what the fixture runs (simulated devices).
    stop: CancellationToken,
}

/// The numbers of a channel's fixture: `+44770090`, the channel's digit, the case's.
fn number(kind: ChannelKind, case: u8) -> String {
    let k = ChannelKind::ALL.iter().position(|x| *x == kind).unwrap();
    format!("+44770090{}{}{case}", 7 + k / 10, k % 10)
}

async fn fixture(kind: ChannelKind, r: &Rig) -> Fixture {
    let stop = CancellationToken::new();
    match kind {
        ChannelKind::Sms => Fixture {
            ok: number(kind, 1),
            // The SMSC takes it, then its receipt says UNDELIV (see `rig_with` below).
            fails: (number(kind, 9), None),
            skipped: None,
            silent: None,
            stop,
        },
        ChannelKind::Rcs => {
            r.sim.add_device(&number(kind, 1), None, true);
            r.sim.add_device(&number(kind, 4), None, false);
            r.sim.add_device(&number(kind, 5), None, true);
            Fixture {
                ok: number(kind, 1),
                // Unknown to RBM: not RCS-capable.
                fails: (number(kind, 2), Some("rcs_not_capable")),
                skipped: Some((number(kind, 3), "rcs_not_capable")),
                silent: Some(number(kind, 4)),
                stop,
            }
        }
        ChannelKind::App => {
            // A device that opens and acknowledges what it gets, and one that is off.
            for (case, online) in [(1, true), (4, false), (5, true)] {
                let d = DeviceSim::register(
                    &r.server.base,
                    &r.key,
                    &number(kind, case),
                    Aead::ChaCha20Poly1305,
                )
                .await
                .unwrap();
                if online {
                    tokio::spawn(d.run(Duration::from_millis(200), stop.clone()));
                }
            }
            Fixture {
                ok: number(kind, 1),
                fails: (number(kind, 2), Some("app_no_device")),
                skipped: Some((number(kind, 3), "app_no_device")),
                silent: Some(number(kind, 4)),
                stop,
            }
        }
    }
}

/// Sends to the provider of `kind` for `to`, as its simulator counts them.
fn provider_sends(kind: ChannelKind, r: &Rig, m: &Value) -> usize {
    let to = m["to"].as_str().unwrap().trim_start_matches('+').to_owned();
    match kind {
        ChannelKind::Sms => r
            .smsc
            .submitted()
            .iter()
            .filter(|s| s.destination.trim_start_matches('+') == to)
            .count(),
        ChannelKind::Rcs => r
            .sim
            .received()
            .iter()
            .filter(|(p, _, _)| p.trim_start_matches('+') == to)
            .count(),
        // One envelope per device and message: the attempt's provider ids.
        ChannelKind::App => m["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["provider_ids"].as_array().map_or(0, Vec::len))
            .sum(),
    }
}

fn timeline(m: &Value) -> Vec<String> {
    m["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

/// Polls a message until it is delivered (or read: a device may read it at once).
async fn delivered(r: &Rig, id: &str) -> Value {
    let mut m = Value::Null;
    for _ in 0..600 {
        m = get_message(&r.server.base, &r.key, id).await;
        if m["status"] == "delivered" || m["status"] == "read" {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{id} was not delivered: {m}");
}

async fn send(r: &Rig, body: Value) -> String {
    let (s, v) = send_message(&r.server.base, &r.key, body).await;
    assert_eq!(s, 202, "{v}");
    v["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_registered_channel_passes_the_conformance_suite() {
    // The SMS fixture's failing recipient gets UNDELIV from the SMSC.
    let fails = number(ChannelKind::Sms, 9);
    let r = rig_with(
        hermod_sim::smsc::SmscConfig {
            undeliverable_prefix: Some(fails.trim_start_matches('+').to_owned()),
            ..Default::default()
        },
        |_| {},
    )
    .await;
    for kind in ChannelKind::ALL.iter().copied() {
        let f = fixture(kind, &r).await;
        let name = kind.as_str();
        let text = format!("conformance {name}");

        // Send and receipt.
        let id = send(&r, json!({"to": f.ok, "text": text, "channels": [name]})).await;
        let m = delivered(&r, &id).await;
        let a = &m["attempts"][0];
        assert_eq!(a["channel"], name, "{m}");
        assert!(
            a["provider_ids"].as_array().is_some_and(|p| !p.is_empty()),
            "{name}: no provider id: {m}"
        );
        assert!(a["raw_status"].is_string(), "{name}: no raw status: {m}");
        let t = timeline(&m);
        for want in ["message.sent", "message.delivered"] {
            assert!(t.iter().any(|e| e == want), "{name}: no {want}: {t:?}");
        }
        assert_eq!(provider_sends(kind, &r, &m), 1, "{name}: {m}");

        // Failure.
        let id = send(
            &r,
            json!({"to": f.fails.0, "text": text, "channels": [name]}),
        )
        .await;
        let mut m = get_message(&r.server.base, &r.key, &id).await;
        for _ in 0..300 {
            if ["failed", "rejected", "expired"].contains(&m["status"].as_str().unwrap_or("")) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            m = get_message(&r.server.base, &r.key, &id).await;
        }
        assert_eq!(m["status"], "failed", "{name}: {m}");
        let err = &m["attempts"][0]["error"];
        assert!(err["code"].is_string(), "{name}: no error code: {m}");
        if let Some(code) = f.fails.1 {
            assert_eq!(err["code"], code, "{name}: {m}");
            assert_eq!(err["permanent"], true, "{name}: {m}");
        }

        // Capability: what the channel knows when the message is planned.
        let fallback = if kind == ChannelKind::Sms {
            "app"
        } else {
            "sms"
        };
        let (to, reason) = f
            .skipped
            .clone()
            .map_or((f.ok.clone(), None), |(to, why)| (to, Some(why)));
        let id = send(
            &r,
            json!({"to": to, "text": text, "channels": [name, fallback]}),
        )
        .await;
        let m = delivered(&r, &id).await;
        let step = &m["plan"]["steps"][0];
        assert_eq!(step["channel"], name, "{m}");
        match reason {
            Some(why) => {
                assert_eq!(step["kept"], false, "{name}: {m}");
                assert_eq!(step["reason"], why, "{name}: {m}");
                assert_eq!(m["attempts"][0]["channel"], fallback, "{name}: {m}");
            }
            None => {
                assert_eq!(step["kept"], true, "{name}: {m}");
                assert_eq!(m["attempts"][0]["channel"], name, "{name}: {m}");
            }
        }

        // Withdrawal before the fallback, where the channel has one.
        if let Some(silent) = &f.silent {
            let id = send(
                &r,
                json!({"to": silent, "text": text, "channels": [name, "sms"],
                       "fallback": {"after": "1s"}}),
            )
            .await;
            let m = delivered(&r, &id).await;
            let a = m["attempts"].as_array().unwrap();
            assert_eq!(a.len(), 2, "{name}: {m}");
            assert_eq!(a[0]["channel"], name, "{m}");
            assert_eq!(a[0]["status"], "canceled", "{name}: withdrawn: {m}");
            assert_eq!(a[1]["channel"], "sms", "{m}");
            assert!(timeline(&m).iter().any(|e| e == "message.fallback"));
        }

        // An idempotent retry is one message, sent once.
        let key = format!("conformance-{name}");
        let body = json!({"to": number(kind, 5), "text": text, "channels": [name]});
        let mut ids = Vec::new();
        for _ in 0..2 {
            let url = format!("{}/v1/messages", r.server.base);
            let resp = reqwest::Client::new()
                .post(&url)
                .bearer_auth(&r.key)
                .header("Idempotency-Key", &key)
                .json(&body)
                .send()
                .await
                .unwrap();
            let (s, v, _) = checked("POST", &url, resp).await;
            assert_eq!(s, 202, "{v}");
            ids.push(v["id"].as_str().unwrap().to_owned());
        }
        assert_eq!(ids[0], ids[1], "{name}: the retry is the same message");
        let m = delivered(&r, &ids[0]).await;
        assert_eq!(m["attempts"].as_array().unwrap().len(), 1, "{name}: {m}");
        assert_eq!(provider_sends(kind, &r, &m), 1, "{name}: sent once: {m}");
        f.stop.cancel();
    }
}
