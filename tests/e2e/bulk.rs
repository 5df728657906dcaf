//! `hermod send --csv`: a 10,000-row campaign killed halfway and resumed sends every
//! valid row exactly once and reports the bad ones once.

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use hermod_sim::smsc::SmscConfig;
use reqwest::Method;
use serde_json::json;

use crate::support::{Server, call, create_key, eventually, free_port, start_smsc};

fn send_cmd(csv: &std::path::Path, base: &str, key: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hermod"));
    c.args(["send", "--csv"])
        .arg(csv)
        .args([
            "--template",
            "promo",
            "--url",
            base,
            "--batch",
            "100",
            "--quiet",
        ])
        .env("HERMOD_API_KEY", key)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

#[tokio::test(flavor = "multi_thread")]
async fn csv_campaign_resumes_after_kill_without_double_sends() {
    let smsc = start_smsc(SmscConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let key = create_key(dir.path(), "shop");
    let server = Server::start(dir.path(), &smsc.url("hermod", "pw"), free_port());
    server.wait_healthy().await;
    let base = server.base.clone();
    let (s, t, _) = call(
        Method::POST,
        &format!("{base}/v1/templates"),
        &key,
        Some(json!({"id": "promo", "default_locale": "en", "variants": {
            "en": {"text": "Hi {{ name }}, {{ discount }}% off today"},
            "de": {"text": "Hallo {{ name }}, heute {{ discount }}% Rabatt"}}})),
    )
    .await;
    assert_eq!(s, 201, "{t}");

    // 10,000 rows: every 1000th+7 has a bad number, every 1000th+501 is short a field.
    let mut csv = String::from("to,name,discount,locale\n");
    for i in 0..10_000 {
        match i % 1000 {
            7 => csv.push_str(&format!("+12,Bad{i},10,en\n")),
            501 => csv.push_str(&format!("+4477001{i:05},Short{i}\n")),
            _ => csv.push_str(&format!(
                "+4477001{i:05},Kunde{i},10,{}\n",
                if i % 2 == 1 { "de" } else { "en" }
            )),
        }
    }
    let path = dir.path().join("campaign.csv");
    std::fs::write(&path, csv).unwrap();
    let state = dir.path().join("campaign.csv.state.json");
    let report = dir.path().join("campaign.csv.errors.csv");

    // Killed (SIGKILL) once at least half the rows are done.
    let mut first = send_cmd(&path, &base, &key).spawn().unwrap();
    let done = || -> usize {
        std::fs::read(&state)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["rows_done"].as_u64())
            .unwrap_or(0) as usize
    };
    eventually("half the campaign", Duration::from_secs(120), || async {
        done() >= 5000
    })
    .await;
    first.kill().unwrap();
    let status = first.wait().unwrap();
    let at_kill = done();
    assert!(!status.success(), "killed before it finished");
    assert!(
        at_kill < 10_000,
        "killed halfway, not at the end ({at_kill})"
    );

    let out = send_cmd(&path, &base, &key).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!("resuming after row {at_kill} of 10000")),
        "{stderr}"
    );
    assert!(
        stdout.contains("done: 10000 rows, 9980 sent, 20 failed"),
        "{stdout}"
    );

    // Every valid row reached the SMSC once.
    eventually("9,980 submits", Duration::from_secs(120), || async {
        smsc.submit_count() >= 9980
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let submitted = smsc.submitted();
    let dests: HashSet<&str> = submitted.iter().map(|s| s.destination.as_str()).collect();
    assert_eq!(submitted.len(), 9980, "no row was sent twice");
    assert_eq!(dests.len(), 9980);
    let text = |d: &str| {
        submitted
            .iter()
            .find(|s| s.destination == d)
            .map(|s| hermod_core::gsm::decode(s.data_coding, &s.short_message))
    };
    assert_eq!(
        text("447700100001").as_deref(),
        Some("Hallo Kunde1, heute 10% Rabatt")
    );
    assert_eq!(
        text("447700100002").as_deref(),
        Some("Hi Kunde2, 10% off today")
    );

    // The report names each bad row once, with its line and field.
    let mut r = csv::Reader::from_path(&report).unwrap();
    let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 20, "{rows:?}");
    let lines: HashSet<&str> = rows.iter().map(|r| r.get(0).unwrap()).collect();
    assert_eq!(lines.len(), 20, "no row reported twice");
    let bad_number = rows.iter().find(|r| r.get(0) == Some("9")).unwrap();
    assert_eq!(
        (bad_number.get(1), bad_number.get(2)),
        (Some("+12"), Some("to"))
    );
    let short = rows.iter().find(|r| r.get(0) == Some("503")).unwrap();
    assert_eq!(short.get(2), Some("row"));
}
