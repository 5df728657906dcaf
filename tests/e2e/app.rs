//! The encrypted app channel through the real binary: devices registered with their
//! X25519 keys, one sealed copy per device that only that device opens, inbox polling
//! and the WebSocket stream, acknowledgements as receipts, device tokens, wake-ups to a
//! push relay without content, and no plaintext kept once delivered.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hermod_crypto::hpke::Aead;
use hermod_sim::device::DeviceSim;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{
    Server, call, create_key, create_key_with_tenant, eventually, free_port, get_message,
    send_message, start_smsc, wait_status,
};

/// A push relay that records what it is sent.
async fn push_relay() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/wake", listener.local_addr().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let g = g.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = s.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some(i) = text.find("\r\n\r\n") {
                        let len = text[..i]
                            .lines()
                            .find_map(|l| {
                                let l = l.to_ascii_lowercase();
                                l.strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if buf.len() >= i + 4 + len {
                            g.lock().unwrap().push(text[i + 4..].to_owned());
                            let _ = s
                                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                                .await;
                            return;
                        }
                    }
                }
            });
        }
    });
    (url, got)
}

/// Sends and expects it accepted.
async fn send(base: &str, key: &str, body: Value) -> Value {
    let (s, v) = send_message(base, key, body).await;
    assert_eq!(s, 202, "{v}");
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn each_device_opens_only_its_own_copy_and_acknowledgements_become_receipts() {
    let smsc = start_smsc(Default::default()).await;
    let (relay, wakes) = push_relay().await;
    let dir = tempfile::tempdir().unwrap();
    let (tenant, key) = create_key_with_tenant(dir.path(), "shop");
    // This tenant's relay overrides the default one (which nobody answers).
    let config = dir.path().join("hermod.toml");
    std::fs::write(
        &config,
        format!(
            "[smpp]\nurl = \"{}\"\n[app]\npush_relay_url = \"http://127.0.0.1:9/none\"\n[app.push_relays]\n{tenant} = \"{relay}\"\n",
            smsc.url("hermod", "secret")
        ),
    )
    .unwrap();
    let server = Server::start_with_config(dir.path(), &config, free_port());
    server.wait_healthy().await;
    let base = server.base.clone();

    let alice = "+447700900500";
    let a = DeviceSim::register(&base, &key, alice, Aead::ChaCha20Poly1305)
        .await
        .unwrap();
    let b = DeviceSim::register(&base, &key, alice, Aead::Aes256Gcm)
        .await
        .unwrap();
    let c = DeviceSim::register(&base, &key, "+447700900501", Aead::ChaCha20Poly1305)
        .await
        .unwrap();
    assert!(a.token.starts_with("hmd_") && a.id.starts_with("dev_"));

    let m = send(
        &base,
        &key,
        json!({"to": alice, "channels": ["app"], "text": "secret-marker-42"}),
    )
    .await;
    let id = m["id"].as_str().unwrap().to_owned();
    let sent = wait_status(&base, &key, &id, "sent", 15).await;
    assert_eq!(sent["attempts"][0]["channel"], "app");
    assert_eq!(sent["attempts"][0]["raw_status"], "STORED");

    let ea = a.poll(0).await.unwrap();
    let eb = b.poll(0).await.unwrap();
    assert_eq!((ea.len(), eb.len()), (1, 1));
    assert!(
        c.poll(0).await.unwrap().is_empty(),
        "another recipient's device gets nothing"
    );
    // Each opens its own copy, and not the other's.
    assert_eq!(a.open(&ea[0]).unwrap().text, "secret-marker-42");
    assert_eq!(b.open(&eb[0]).unwrap().text, "secret-marker-42");
    assert!(eb[0].suite.ends_with("aes256gcm"));
    assert!(a.open(&eb[0]).is_err());
    let mut as_b = eb[0].clone();
    as_b.device_id = a.id.clone();
    assert!(
        a.open(&as_b).is_err(),
        "B's ciphertext does not open with A's key"
    );
    // A tampered ciphertext, or another message id (the AAD and info), fails to open.
    let mut tampered = ea[0].clone();
    let mut ct = tampered.ciphertext.into_bytes();
    ct[3] = if ct[3] == b'A' { b'B' } else { b'A' };
    tampered.ciphertext = String::from_utf8(ct).unwrap();
    assert!(a.open(&tampered).is_err());
    let mut other = ea[0].clone();
    other.message_id = "msg_0000000000000000000000000000000f".into();
    assert!(a.open(&other).is_err());
    // What Hermod stores and serves for a device is ciphertext only.
    let raw = serde_json::to_string(&ea).unwrap();
    assert!(!raw.contains("secret-marker-42"));

    // Device tokens: a wrong one is 401; another recipient's device cannot acknowledge.
    let (s, _, _) = call(
        Method::GET,
        &format!("{base}/v1/app/inbox"),
        "hmd_0123456789abcdef_nope",
        None,
    )
    .await;
    assert_eq!(s, 401);
    let (s, _, _) = call(Method::GET, &format!("{base}/v1/app/inbox"), &key, None).await;
    assert_eq!(s, 401, "a tenant API key is not a device token");
    assert_eq!(c.ack(&id, "delivered").await.unwrap(), 404);
    let (s, _, _) = call(
        Method::POST,
        &format!("{base}/v1/app/receipts"),
        "hmd_0123456789abcdef_nope",
        Some(json!({"message_id": id, "status": "delivered"})),
    )
    .await;
    assert_eq!(s, 401);
    assert_eq!(get_message(&base, &key, &id).await["status"], "sent");

    // A acknowledges: delivered, then read. The plaintext is gone once delivered.
    assert_eq!(a.ack(&id, "delivered").await.unwrap(), 202);
    let d = wait_status(&base, &key, &id, "delivered", 15).await;
    assert_eq!(d["text"], "", "plaintext dropped once delivered");
    assert!(
        a.poll(0).await.unwrap().is_empty(),
        "acknowledged envelopes leave the inbox"
    );
    assert_eq!(b.poll(0).await.unwrap().len(), 1, "B's copy waits for B");
    assert_eq!(a.ack(&id, "read").await.unwrap(), 202);
    let r = wait_status(&base, &key, &id, "read", 15).await;
    assert_eq!(r["attempts"][0]["raw_status"], "APP_READ");

    // Wake-ups went to the relay, one per device, without content.
    eventually("two wake-ups", Duration::from_secs(10), || async {
        wakes.lock().unwrap().len() >= 2
    })
    .await;
    for w in wakes.lock().unwrap().iter() {
        let v: Value = serde_json::from_str(w).unwrap();
        assert_eq!(v["type"], "wake");
        assert!(!w.contains("secret-marker-42"));
    }

    // The registry: list, rotate, revoke; bad input names the field.
    let (_, list, _) = call(
        Method::GET,
        &format!("{base}/v1/devices?recipient=%2B447700900500"),
        &key,
        None,
    )
    .await;
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
    let (_, new_pk) = hermod_crypto::hpke::generate_keypair().unwrap();
    use base64::Engine;
    let pk = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(new_pk);
    let (s, v, _) = call(
        Method::POST,
        &format!("{base}/v1/devices/{}/key", c.id),
        &key,
        Some(json!({"public_key": pk})),
    )
    .await;
    assert_eq!((s, v["public_key"].as_str()), (200, Some(pk.as_str())));
    let (s, _, _) = call(
        Method::DELETE,
        &format!("{base}/v1/devices/{}", b.id),
        &key,
        None,
    )
    .await;
    assert_eq!(s, 204);
    assert!(matches!(
        b.poll(0).await,
        Err(hermod_sim::device::DeviceError::Api(401, _))
    ));
    for (body, field) in [
        (
            json!({"recipient": alice, "public_key": "abc", "platform": "ios"}),
            "public_key",
        ),
        (json!({"public_key": pk, "platform": "ios"}), "recipient"),
        (
            json!({"recipient": "447700900500", "public_key": pk, "platform": "ios"}),
            "recipient",
        ),
        (
            json!({"recipient": alice, "public_key": pk, "platform": "ios", "aead": "des"}),
            "aead",
        ),
        (
            json!({"recipient": alice, "public_key": pk, "platform": "ios", "colour": 1}),
            "colour",
        ),
    ] {
        let (s, v, _) = call(
            Method::POST,
            &format!("{base}/v1/devices"),
            &key,
            Some(body.clone()),
        )
        .await;
        assert_eq!(
            (s, v["error"]["field"].as_str()),
            (400, Some(field)),
            "{body}: {v}"
        );
    }

    // A device registered with the tenant's user id only: a message naming that
    // user_id reaches it as well as the number's devices.
    let u = DeviceSim::register_for(&base, &key, None, Some("user-8812"), Aead::ChaCha20Poly1305)
        .await
        .unwrap();
    let m = send(
        &base,
        &key,
        json!({"to": alice, "user_id": "user-8812", "channels": ["app"], "text": "to user and number"}),
    )
    .await;
    assert_eq!(m["user_id"], "user-8812");
    wait_status(&base, &key, m["id"].as_str().unwrap(), "sent", 15).await;
    let eu = u.poll(0).await.unwrap();
    assert_eq!(eu.len(), 1);
    assert_eq!(u.open(&eu[0]).unwrap().text, "to user and number");
    assert_eq!(a.poll(0).await.unwrap().len(), 1, "the number's device too");

    // A recipient without a device: the attempt fails, nothing is sealed.
    let m = send(
        &base,
        &key,
        json!({"to": "+447700900599", "channels": ["app"], "text": "hi"}),
    )
    .await;
    let f = wait_status(&base, &key, m["id"].as_str().unwrap(), "failed", 15).await;
    assert_eq!(f["attempts"][0]["error"]["code"], "app_no_device");
    smsc.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_offline_device_finds_its_messages_later_and_the_stream_delivers_new_ones() {
    let smsc = start_smsc(Default::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let key = create_key(dir.path(), "shop");
    let server = Server::start(dir.path(), &smsc.url("hermod", "secret"), free_port());
    server.wait_healthy().await;
    let base = server.base.clone();
    let bob = "+447700900600";
    let d = DeviceSim::register(&base, &key, bob, Aead::ChaCha20Poly1305)
        .await
        .unwrap();
    // Offline: two messages wait in the inbox, in order, with a cursor.
    let m1 = send(
        &base,
        &key,
        json!({"to": bob, "channels": ["app"], "text": "first"}),
    )
    .await;
    let m2 = send(
        &base,
        &key,
        json!({"to": bob, "channels": ["app"], "text": "second"}),
    )
    .await;
    for m in [&m1, &m2] {
        wait_status(&base, &key, m["id"].as_str().unwrap(), "sent", 15).await;
    }
    let waiting = d.poll(0).await.unwrap();
    assert_eq!(waiting.len(), 2);
    // In the order they were sealed (the two may be sent in parallel).
    assert!(waiting[0].seq < waiting[1].seq);
    let mut texts: Vec<String> = waiting.iter().map(|e| d.open(e).unwrap().text).collect();
    texts.sort();
    assert_eq!(texts, ["first", "second"]);
    let after = d.poll(waiting[0].seq).await.unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].message_id, waiting[1].message_id);

    // Online over the WebSocket: the waiting ones come first, new ones as they are sent.
    let cancel = tokio_util::sync::CancellationToken::new();
    tokio::spawn(d.run(Duration::from_millis(100), cancel.clone()));
    for m in [&m1, &m2] {
        wait_status(&base, &key, m["id"].as_str().unwrap(), "read", 15).await;
    }
    let m3 = send(
        &base,
        &key,
        json!({"to": bob, "channels": ["app"], "text": "third"}),
    )
    .await;
    let done = wait_status(&base, &key, m3["id"].as_str().unwrap(), "read", 15).await;
    let kinds: Vec<&str> = done["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert!(kinds.ends_with(&["sent", "delivered", "read"]), "{kinds:?}");
    cancel.cancel();
    smsc.stop();
}
