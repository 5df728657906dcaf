//! `hermod demo`: prints the key and address, carries an SMS to delivered, an RCS card
//! and a sealed app message to read with its built-in simulators, falls back from a
//! switched-off RCS phone to SMS, and stops cleanly on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::support::{eventually, free_port, send_message, wait_status};

#[tokio::test(flavor = "multi_thread")]
async fn demo_prints_a_key_delivers_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_hermod"))
        .args(["demo", "--listen", &addr, "--data"])
        .arg(dir.path())
        .env("HERMOD_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut key, mut listening, mut printed) = (None, false, Vec::new());
    while key.is_none() || !listening {
        let line = lines.next().expect("demo output").unwrap();
        if let Some(k) = line.strip_prefix("API key: ") {
            key = Some(k.trim().to_owned());
        }
        listening |= line == format!("Listening on http://{addr}");
        printed.push(line);
    }
    // The console's address, next to the key.
    let at = printed
        .iter()
        .position(|l| l.starts_with("API key: "))
        .unwrap();
    assert_eq!(printed[at + 1], format!("Console: http://{addr}/console"));
    // Then the demo tenant's Twilio credentials and a sender it owns:
    // `Twilio: account_sid=AC… auth_token=… from=+…`.
    let twilio: Vec<&str> = printed[at + 2]
        .strip_prefix("Twilio: ")
        .expect("a Twilio line")
        .split(' ')
        .collect();
    let field = |k: &str| {
        twilio
            .iter()
            .find_map(|f| f.strip_prefix(&format!("{k}=")))
            .unwrap()
            .to_owned()
    };
    let (sid, token, from) = (field("account_sid"), field("auth_token"), field("from"));
    assert!(
        sid.starts_with("AC") && sid.len() == 34 && token.len() == 32,
        "{twilio:?}"
    );
    assert!(from.starts_with('+'), "{twilio:?}");
    // Then its SMPP server: `SMPP server: <host>:<port> system_id=<id> password=<pw>`.
    let smpp: Vec<&str> = printed[at + 3]
        .strip_prefix("SMPP server: ")
        .expect("an SMPP server line")
        .split(' ')
        .collect();
    let smpp_addr: std::net::SocketAddr = smpp[0].parse().unwrap();
    let smpp_field = |k: &str| {
        smpp.iter()
            .find_map(|f| f.strip_prefix(&format!("{k}=")))
            .unwrap()
            .to_owned()
    };
    let (system_id, password) = (smpp_field("system_id"), smpp_field("password"));
    assert!(
        !system_id.is_empty() && (1..=8).contains(&password.len()),
        "{smpp:?}"
    );
    let key = key.unwrap();
    let base = format!("http://{addr}");
    let client = reqwest::Client::new();
    eventually(
        "the demo API to answer",
        Duration::from_secs(20),
        || async { client.get(format!("{base}/healthz")).send().await.is_ok() },
    )
    .await;
    // An SMPP client binds with what it printed and submits from the demo's number.
    // It goes over RCS; the demo account takes reads too: DELIVRD, then ACCEPTD.
    let (smpp_id, stats) = smpp_submit(smpp_addr, &system_id, &password, &from).await;
    assert_eq!(stats, ["DELIVRD", "ACCEPTD"]);
    let m = crate::support::get_message(&base, &key, &format!("msg_{smpp_id}")).await;
    assert_eq!(m["status"], "read", "{m}");
    // The Twilio API on the same address takes them.
    let r = client
        .post(format!("{base}/2010-04-01/Accounts/{sid}/Messages.json"))
        .basic_auth(&sid, Some(&token))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "To=%2B447911123456&From={}&Body=hi",
            from.replace('+', "%2B")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "{}", r.text().await.unwrap());
    // An SMS is delivered; a rich card through the built-in RBM simulator and an
    // end-to-end encrypted message to the simulated app device are read.
    for (body, want) in [
        (
            json!({"to": "+447911123456", "text": "Hello from Hermod"}),
            "delivered",
        ),
        (
            json!({
                "to": "+447911123456", "channels": ["rcs"],
                "content": {"card": {"title": "Order 1234 shipped", "description": "Arrives Tuesday"}},
                "suggestions": [{"reply": {"text": "Thanks"}}]
            }),
            "read",
        ),
        (
            json!({"to": "+447700900777", "channels": ["app"], "text": "sealed hello"}),
            "read",
        ),
    ] {
        let (s, v) = send_message(&base, &key, body).await;
        assert_eq!(s, 202, "{v}");
        wait_status(&base, &key, v["id"].as_str().unwrap(), want, 20).await;
    }
    // The switched-off RCS phone: revoked after 5 s, then delivered by SMS.
    let (s, v) = send_message(
        &base,
        &key,
        json!({"to": "+447700900888", "text": "Your code is 391 205", "fallback": {"after": "5s"}}),
    )
    .await;
    assert_eq!(s, 202, "{v}");
    let m = wait_status(&base, &key, v["id"].as_str().unwrap(), "delivered", 30).await;
    let channels: Vec<&str> = m["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["channel"].as_str().unwrap())
        .collect();
    assert_eq!(channels, ["rcs", "sms"], "{m}");
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "demo did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "demo exited with {status}");
}

/// Binds as a transceiver and submits one message; its id and the `stat` of the two
/// receipts that come for it.
async fn smpp_submit(
    addr: std::net::SocketAddr,
    system_id: &str,
    password: &str,
    from: &str,
) -> (String, Vec<String>) {
    use futures::{SinkExt, StreamExt};
    use rusmpp::pdus::{BindTransceiver, SubmitSm};
    use rusmpp::tokio_codec::CommandCodec;
    use rusmpp::types::{COctetString, OctetString};
    use rusmpp::values::Ton;
    use rusmpp::{Command, CommandStatus, Pdu};
    use std::str::FromStr;
    let sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut c = tokio_util::codec::Framed::new(sock, CommandCodec::new());
    let bind = BindTransceiver::builder()
        .system_id(COctetString::from_str(system_id).unwrap())
        .password(COctetString::from_str(password).unwrap())
        .build();
    c.send(Command::new(
        CommandStatus::EsmeRok,
        1,
        Pdu::BindTransceiver(bind),
    ))
    .await
    .unwrap();
    let r = c.next().await.unwrap().unwrap();
    assert_eq!(
        r.status(),
        CommandStatus::EsmeRok,
        "bound with the printed credentials"
    );
    let sm = SubmitSm::builder()
        .source_addr_ton(Ton::International)
        .source_addr(COctetString::from_str(from.trim_start_matches('+')).unwrap())
        .dest_addr_ton(Ton::International)
        .destination_addr(COctetString::from_str("447911123456").unwrap())
        .short_message(OctetString::from_vec(b"Hello over SMPP".to_vec()).unwrap())
        .registered_delivery(rusmpp::values::RegisteredDelivery::from(1u8))
        .build();
    c.send(Command::new(CommandStatus::EsmeRok, 2, Pdu::SubmitSm(sm)))
        .await
        .unwrap();
    let (mut id, mut stats) = (String::new(), Vec::new());
    while stats.len() < 2 {
        let r = tokio::time::timeout(Duration::from_secs(30), c.next())
            .await
            .expect("a receipt")
            .unwrap()
            .unwrap();
        match r.pdu() {
            Some(Pdu::SubmitSmResp(resp)) => {
                assert_eq!(r.status(), CommandStatus::EsmeRok);
                id = resp.message_id().to_string();
            }
            Some(Pdu::DeliverSm(d)) => {
                let text = String::from_utf8_lossy(d.short_message().as_ref()).into_owned();
                assert!(text.starts_with(&format!("id:{id} ")), "{text}");
                let stat = text
                    .split(" stat:")
                    .nth(1)
                    .unwrap()
                    .split(' ')
                    .next()
                    .unwrap();
                stats.push(stat.to_owned());
                let ack = rusmpp::pdus::DeliverSmResp::builder().build();
                c.send(Command::new(
                    CommandStatus::EsmeRok,
                    r.sequence_number(),
                    Pdu::DeliverSmResp(ack),
                ))
                .await
                .unwrap();
            }
            _ => {}
        }
    }
    (id, stats)
}
