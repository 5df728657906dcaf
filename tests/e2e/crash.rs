//! SIGKILL in mid-run: every accepted message is delivered after a restart, and no
//! message reaches the SMSC twice.

use std::collections::HashMap;
use std::time::Duration;

use hermod_sim::smsc::SmscConfig;
use serde_json::{Value, json};

use crate::support::{Server, create_key, eventually, free_port, start_smsc};

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_loses_nothing_and_sends_nothing_twice() {
    kill_9(SmscConfig {
        dlr_delay: Duration::from_millis(20),
        ..Default::default()
    })
    .await;
}

/// The same against an SMSC like most real ones: its receipts echo no
/// `user_message_reference`, so the submits in doubt after the kill are recognised
/// by recipient, submit date and text.
#[tokio::test(flavor = "multi_thread")]
async fn kill_9_with_an_smsc_that_echoes_no_reference() {
    kill_9(SmscConfig {
        dlr_delay: Duration::from_millis(20),
        ..SmscConfig::like_real_smsc(0)
    })
    .await;
}

async fn kill_9(cfg: SmscConfig) {
    let smsc = start_smsc(cfg).await;
    let dir = tempfile::tempdir().unwrap();
    let key = create_key(dir.path(), "acme");
    let url = smsc.url("hermod", "x");
    let port = free_port();
    let mut server = Server::start(dir.path(), &url, port);
    server.wait_healthy().await;
    let client = reqwest::Client::new();
    const N: usize = 600;
    let mut accepted = 0;
    for chunk in 0..(N / 100) {
        let msgs: Vec<Value> = (0..100)
            .map(|i| json!({"to": format!("+4479222{:05}", chunk * 100 + i), "text": format!("crash {}", chunk * 100 + i)}))
            .collect();
        let r = client
            .post(format!("{}/v1/messages/batch", server.base))
            .bearer_auth(&key)
            .json(&json!({"messages": msgs}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 202);
        accepted += 100;
    }
    // Kill as soon as the SMSC has seen some, but not all, of them.
    eventually("some submits", Duration::from_secs(30), || async {
        smsc.submit_count() >= 50
    })
    .await;
    server.kill9();
    let seen_at_kill = smsc.submit_count();
    assert!(
        seen_at_kill < N,
        "killed too late to prove anything ({seen_at_kill} submits)"
    );

    let server = Server::start(dir.path(), &url, port);
    server.wait_healthy().await;
    let base = server.base.clone();
    eventually(
        "every accepted message delivered",
        Duration::from_secs(90),
        || async {
            let v: Value = client
                .get(format!("{base}/v1/messages?status=delivered&limit=1000"))
                .bearer_auth(&key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["data"].as_array().map_or(0, Vec::len) == accepted
        },
    )
    .await;
    let mut per_text: HashMap<Vec<u8>, usize> = HashMap::new();
    for s in smsc.submitted() {
        *per_text.entry(s.short_message).or_default() += 1;
    }
    assert_eq!(per_text.len(), N, "every message reached the SMSC");
    let dups: Vec<_> = per_text
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(t, n)| (String::from_utf8_lossy(t).into_owned(), *n))
        .collect();
    assert!(dups.is_empty(), "submitted twice: {dups:?}");
    smsc.stop();
}
