//! The audit chain, encryption at rest, erasure and retention in the store, on SQLite
//! and on the real PostgreSQL: thousands of entries verify; each kind of tampering an
//! attacker with database access could do by SQL is found at the right sequence
//! number; a checkpoint signed with another key is rejected; erased subjects and
//! expired content read back empty while the chain still verifies.

use std::sync::Arc;

use diesel_async::RunQueryDsl;
use hermod_core::audit::*;
use hermod_core::model::*;
use hermod_core::ports::{Inbound as _, Messages as _, Tenants as _};
use hermod_core::{MessageId, Msisdn, Status, TenantId, now_ms};
use hermod_crypto::audit::{CheckpointSigner, entry_hash};
use hermod_crypto::audit::{Ed25519Signer, verify_tenant};
use hermod_store::{Db, SqlStore, Vault};

use crate::support::pg_database;

pub fn test_vault() -> Arc<Vault> {
    Arc::new(
        Vault::new(
            "k1",
            &[("k1".into(), Vault::generate_key().unwrap())],
            &Vault::generate_key().unwrap(),
        )
        .unwrap(),
    )
}

/// The `(kind, data)` of a tenant's audit entries, after chaining what is pending.
pub async fn facts(store: &SqlStore, tenant: &str) -> Vec<(String, serde_json::Value)> {
    chain_all(store).await.unwrap();
    store
        .audit_entries(tenant, 1, i64::MAX, 100_000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.kind, e.data))
        .collect()
}

async fn open(url: &str) -> SqlStore {
    Db::migrate(url).await.unwrap();
    SqlStore::new(Db::open(url, 4).await.unwrap(), test_vault())
}

fn signer() -> Ed25519Signer {
    Ed25519Signer(
        CheckpointSigner::from_pkcs8(&CheckpointSigner::generate_pkcs8().unwrap()).unwrap(),
    )
}

fn msg(tenant: &TenantId, to: &str, text: &str, created_at: i64) -> NewMessage {
    NewMessage {
        id: MessageId::generate(),
        tenant_id: tenant.clone(),
        to: Msisdn::parse(to).unwrap(),
        from: None,
        text: text.into(),
        channels: vec![ChannelKind::Sms],
        ttl_secs: None,
        metadata: None,
        callback_url: None,
        callback_events: None,
        created_at,
        send_at: None,
        content: None,
        user_id: None,
        fallback: None,
        priority: Default::default(),
        alert: None,
        deferred: None,
        traffic_type: None,
        twilio: None,
        smpp: None,
    }
}

/// Runs SQL as an attacker with database access would.
async fn sql(store: &SqlStore, q: &str) {
    match store.db() {
        Db::Lite { pool, .. } => {
            let mut c = pool.get().await.unwrap();
            diesel::sql_query(q).execute(&mut *c).await.unwrap();
        }
        Db::Pg(pool) => {
            let mut c = pool.get().await.unwrap();
            diesel::sql_query(q).execute(&mut *c).await.unwrap();
        }
    }
}

async fn broken(store: &SqlStore, s: &Ed25519Signer, t: &str) -> Option<(i64, &'static str)> {
    verify_tenant(store, s, t)
        .await
        .unwrap()
        .broken
        .map(|b| (b.seq, b.reason.as_str()))
}

async fn entry(store: &SqlStore, t: &str, seq: i64) -> AuditEntry {
    store.audit_entries(t, seq, seq, 1).await.unwrap().remove(0)
}

fn row_sql(e: &AuditEntry, seq: i64) -> String {
    format!(
        "INSERT INTO audit_entries (tenant_id, seq, at, kind, subject, data, prev_hash, hash) \
         VALUES ('{}', {seq}, {}, '{}', {}, '{}', '{}', '{}')",
        e.tenant,
        e.at,
        e.kind,
        e.subject
            .as_ref()
            .map_or("NULL".to_owned(), |s| format!("'{s}'")),
        canonical_json(&e.data),
        e.prev_hash,
        e.hash
    )
}

async fn exercise(url: &str) {
    let store = open(url).await;
    let s = signer();
    let tenant = store.create_api_key("acme", "k1", "h1").await.unwrap();
    let t = tenant.to_string();
    // Thousands of entries: accepted messages, cancellations, opt-outs.
    let mut ids = Vec::new();
    for batch in 0..6 {
        let msgs: Vec<NewMessage> = (0..500)
            .map(|i| {
                msg(
                    &tenant,
                    &format!("+44770090{:04}", batch * 500 + i),
                    "Your order 1234 has shipped",
                    now_ms(),
                )
            })
            .collect();
        ids.extend(msgs.iter().map(|m| m.id.clone()));
        store.accept(&tenant, &msgs, None).await.unwrap();
    }
    for id in &ids[..20] {
        store.cancel_message(&tenant, id).await.unwrap();
    }
    store
        .add_opt_out(&tenant, "+447700900001", "*", "api")
        .await
        .unwrap();
    store
        .remove_opt_out(&tenant, "+447700900001", None)
        .await
        .unwrap();
    chain_all(&store).await.unwrap();
    checkpoint_all(&store, &s).await.unwrap();
    let report = verify_tenant(&store, &s, &t).await.unwrap();
    assert_eq!(report.broken, None);
    // key + 3000 accepted + 20 canceled + opt-out in and out
    let mut counts = std::collections::BTreeMap::new();
    for e in store.audit_entries(&t, 1, i64::MAX, 10_000).await.unwrap() {
        *counts.entry(e.kind).or_insert(0) += 1;
    }
    assert_eq!(report.entries, 3023, "{counts:?}");
    assert_eq!(report.checkpoints, 1);
    let kinds: Vec<String> = store
        .audit_entries(&t, 1, i64::MAX, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    for k in [
        "api_key.created",
        "message.accepted",
        "message.canceled",
        "opt_out.added",
        "opt_out.removed",
    ] {
        assert!(kinds.iter().any(|x| x == k), "{k} missing");
    }
    // The log holds digests, never the number or the body.
    let accepted = entry(&store, &t, 2).await;
    let text = canonical_json(&accepted.data);
    assert!(
        !text.contains("447700900") && !text.contains("shipped"),
        "{text}"
    );
    assert_eq!(accepted.data["to"], store.vault().lookup("+447700900000"));

    // Changed: one field of one row.
    sql(
        &store,
        &format!("UPDATE audit_entries SET at = at + 1 WHERE tenant_id = '{t}' AND seq = 777"),
    )
    .await;
    assert_eq!(broken(&store, &s, &t).await, Some((777, "changed")));
    sql(
        &store,
        &format!("UPDATE audit_entries SET at = at - 1 WHERE tenant_id = '{t}' AND seq = 777"),
    )
    .await;
    assert_eq!(broken(&store, &s, &t).await, None);

    // Changed, with the row's hash recomputed: the next entry no longer links to it.
    let mut e = entry(&store, &t, 300).await;
    let original = e.clone();
    e.data["status"] = "rejected".into();
    e.hash = entry_hash(&e.prev_hash, e.canonical().as_bytes());
    sql(
        &store,
        &format!("DELETE FROM audit_entries WHERE tenant_id = '{t}' AND seq = 300"),
    )
    .await;
    sql(&store, &row_sql(&e, 300)).await;
    assert_eq!(broken(&store, &s, &t).await, Some((300, "changed")));
    sql(
        &store,
        &format!("DELETE FROM audit_entries WHERE tenant_id = '{t}' AND seq = 300"),
    )
    .await;
    sql(&store, &row_sql(&original, 300)).await;

    // Deleted.
    let e500 = entry(&store, &t, 500).await;
    sql(
        &store,
        &format!("DELETE FROM audit_entries WHERE tenant_id = '{t}' AND seq = 500"),
    )
    .await;
    assert_eq!(broken(&store, &s, &t).await, Some((500, "deleted")));
    sql(&store, &row_sql(&e500, 500)).await;

    // Inserted: later rows renumbered and a well-formed forged entry slipped in.
    let prev = entry(&store, &t, 899).await;
    sql(
        &store,
        &format!(
            "UPDATE audit_entries SET seq = seq + 1000000 WHERE tenant_id = '{t}' AND seq >= 900"
        ),
    )
    .await;
    sql(
        &store,
        &format!(
            "UPDATE audit_entries SET seq = seq - 999999 WHERE tenant_id = '{t}' AND seq >= 1000000"
        ),
    )
    .await;
    let mut forged = prev.clone();
    forged.seq = 900;
    forged.kind = "message.delivered".into();
    forged.prev_hash = prev.hash.clone();
    forged.hash = entry_hash(&forged.prev_hash, forged.canonical().as_bytes());
    sql(&store, &row_sql(&forged, 900)).await;
    assert_eq!(broken(&store, &s, &t).await, Some((900, "inserted")));
    sql(
        &store,
        &format!("DELETE FROM audit_entries WHERE tenant_id = '{t}' AND seq = 900"),
    )
    .await;
    sql(
        &store,
        &format!(
            "UPDATE audit_entries SET seq = seq + 1000000 WHERE tenant_id = '{t}' AND seq >= 901"
        ),
    )
    .await;
    sql(&store, &format!("UPDATE audit_entries SET seq = seq - 1000001 WHERE tenant_id = '{t}' AND seq >= 1000000")).await;
    assert_eq!(broken(&store, &s, &t).await, None);

    // Reordered: two rows swap places.
    sql(
        &store,
        &format!("UPDATE audit_entries SET seq = -1 WHERE tenant_id = '{t}' AND seq = 1200"),
    )
    .await;
    sql(
        &store,
        &format!("UPDATE audit_entries SET seq = 1200 WHERE tenant_id = '{t}' AND seq = 1201"),
    )
    .await;
    sql(
        &store,
        &format!("UPDATE audit_entries SET seq = 1201 WHERE tenant_id = '{t}' AND seq = -1"),
    )
    .await;
    assert_eq!(broken(&store, &s, &t).await, Some((1200, "reordered")));
    sql(
        &store,
        &format!("UPDATE audit_entries SET seq = -1 WHERE tenant_id = '{t}' AND seq = 1200"),
    )
    .await;
    sql(
        &store,
        &format!("UPDATE audit_entries SET seq = 1200 WHERE tenant_id = '{t}' AND seq = 1201"),
    )
    .await;
    sql(
        &store,
        &format!("UPDATE audit_entries SET seq = 1201 WHERE tenant_id = '{t}' AND seq = -1"),
    )
    .await;
    assert_eq!(broken(&store, &s, &t).await, None);

    // A checkpoint signed with another key.
    let other = signer();
    let (seq, head) = store.audit_head(&t).await.unwrap().unwrap();
    store
        .add_checkpoint(&other.sign(
            &t,
            seq - 1,
            &entry(&store, &t, seq - 1).await.hash,
            now_ms(),
        ))
        .await
        .unwrap();
    assert_eq!(
        broken(&store, &s, &t).await,
        Some((seq - 1, "bad_signature"))
    );
    sql(
        &store,
        &format!(
            "DELETE FROM audit_checkpoints WHERE tenant_id = '{t}' AND seq = {}",
            seq - 1
        ),
    )
    .await;
    assert_eq!(broken(&store, &s, &t).await, None);

    // The whole tail rewritten consistently: only the signed head can tell.
    let tail = store
        .audit_entries(&t, 2000, i64::MAX, 10_000)
        .await
        .unwrap();
    let mut prev_hash = entry(&store, &t, 1999).await.hash;
    sql(
        &store,
        &format!("DELETE FROM audit_entries WHERE tenant_id = '{t}' AND seq >= 2000"),
    )
    .await;
    for mut e in tail.clone() {
        if e.seq == 2000 {
            e.at += 1;
        }
        e.prev_hash = prev_hash;
        e.hash = entry_hash(&e.prev_hash, e.canonical().as_bytes());
        prev_hash = e.hash.clone();
        sql(&store, &row_sql(&e, e.seq)).await;
    }
    assert_eq!(
        broken(&store, &s, &t).await,
        Some((seq, "checkpoint_mismatch"))
    );
    sql(
        &store,
        &format!("DELETE FROM audit_entries WHERE tenant_id = '{t}' AND seq >= 2000"),
    )
    .await;
    for e in &tail {
        sql(&store, &row_sql(e, e.seq)).await;
    }
    assert_eq!(store.audit_head(&t).await.unwrap().unwrap().1, head);
    assert_eq!(broken(&store, &s, &t).await, None);

    // Erasure: the subject's messages read back empty, one in flight is canceled, a
    // later message to the same number gets a fresh key, and the chain verifies.
    let gone = ids[30].clone();
    let number = "+447700900030";
    let view = store.get_message(&tenant, &gone).await.unwrap().unwrap();
    assert_eq!(view.message.to, number);
    assert_eq!(view.message.text, "Your order 1234 has shipped");
    // Its opt-out is found by the number's HMAC, and shows the number until erased.
    store
        .add_opt_out(&tenant, number, "Acme", "api")
        .await
        .unwrap();
    let outs = store.list_opt_outs(&tenant, Some(number)).await.unwrap();
    assert_eq!(outs.len(), 1);
    assert_eq!(outs[0].recipient, number);
    let out = store.erase_subject(&t, number, &[]).await.unwrap();
    let outs = store.list_opt_outs(&tenant, Some(number)).await.unwrap();
    assert_eq!(outs.len(), 1, "an erased subject stays suppressed");
    assert_eq!(outs[0].recipient, "", "but is no longer named");
    assert!(out.key_destroyed);
    assert_eq!((out.messages, out.canceled), (1, 1));
    let view = store.get_message(&tenant, &gone).await.unwrap().unwrap();
    assert_eq!(
        (view.message.to.as_str(), view.message.text.as_str()),
        ("", "")
    );
    assert_eq!(view.message.status, Status::Canceled);
    assert_eq!(view.message.reason.as_deref(), Some("subject_erased"));
    let listed = store
        .list_messages(
            &tenant,
            &ListFilter {
                to: Some(number.into()),
                limit: 10,
                ..ListFilter::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].to, "");
    let again = msg(&tenant, number, "a new order", now_ms());
    store
        .accept(&tenant, std::slice::from_ref(&again), None)
        .await
        .unwrap();
    let view = store
        .get_message(&tenant, &again.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view.message.text, "a new order");
    assert_eq!(
        store
            .get_message(&tenant, &gone)
            .await
            .unwrap()
            .unwrap()
            .message
            .text,
        ""
    );

    // Retention: ended messages older than the period are shredded.
    let old = msg(
        &tenant,
        "+447700911111",
        "old news",
        now_ms() - 3 * 86_400_000,
    );
    store
        .accept(&tenant, std::slice::from_ref(&old), None)
        .await
        .unwrap();
    store.cancel_message(&tenant, &old.id).await.unwrap();
    assert_eq!(store.shred_expired(100).await.unwrap(), 0);
    store.set_retention(&t, Some(2)).await.unwrap();
    assert_eq!(store.retention(&t).await.unwrap(), Some(2));
    assert_eq!(store.shred_expired(100).await.unwrap(), 1);
    let view = store.get_message(&tenant, &old.id).await.unwrap().unwrap();
    assert_eq!(view.message.text, "");
    assert_eq!(
        store
            .get_message(&tenant, &again.id)
            .await
            .unwrap()
            .unwrap()
            .message
            .text,
        "a new order"
    );

    // Key revocation takes effect at once and is recorded.
    assert!(store.revoke_api_key("k1").await.unwrap());
    assert!(!store.revoke_api_key("k1").await.unwrap());
    assert_eq!(store.api_key("k1").await.unwrap(), None);

    chain_all(&store).await.unwrap();
    checkpoint_all(&store, &s).await.unwrap();
    let report = verify_tenant(&store, &s, &t).await.unwrap();
    assert_eq!(report.broken, None);
    let kinds: Vec<String> = store
        .audit_entries(&t, 3000, i64::MAX, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    for k in [
        "erasure",
        "retention.set",
        "retention.shredded",
        "api_key.revoked",
    ] {
        assert!(kinds.iter().any(|x| x == k), "{k} missing from {kinds:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn compliance_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    exercise(dir.path().join("c.db").to_str().unwrap()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn compliance_on_postgres() {
    let Some(url) = pg_database("compliance").await else {
        return;
    };
    exercise(&url).await;
}

/// Two chainers racing on PostgreSQL append each fact once, in one unbroken chain.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_chainers_keep_one_chain() {
    let Some(url) = pg_database("chainers").await else {
        return;
    };
    let store = open(&url).await;
    let s = signer();
    let tenant = store.create_api_key("acme", "k1", "h1").await.unwrap();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let store = store.clone();
            let tenant = tenant.clone();
            tokio::spawn(async move {
                for b in 0..5 {
                    let msgs: Vec<NewMessage> = (0..50)
                        .map(|i| msg(&tenant, &format!("+4477009{w}{b}{i:03}"), "x", now_ms()))
                        .collect();
                    store.accept(&tenant, &msgs, None).await.unwrap();
                }
            })
        })
        .collect();
    let chainers: Vec<_> = (0..3)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..40 {
                    store.chain_pending(100).await.unwrap();
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    for c in chainers {
        c.await.unwrap();
    }
    chain_all(&store).await.unwrap();
    let report = verify_tenant(&store, &s, tenant.as_str()).await.unwrap();
    assert_eq!(report.broken, None);
    assert_eq!(report.entries, 1 + 4 * 5 * 50);
}

/// Through the real server: the audit API and the export checked by the independent
/// verifier, erasure by API, and no plaintext number or body in the database file.
#[tokio::test(flavor = "multi_thread")]
async fn audit_api_erasure_and_no_plaintext_at_rest() {
    use crate::support::*;
    use hermod_sim::smsc::SmscConfig;
    use reqwest::Method;
    use serde_json::{Value, json};

    let smsc = start_smsc(SmscConfig {
        credentials: Some(("hermod".into(), "pw".into())),
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (tenant, key) = create_key_with_tenant(dir.path(), "clinic");
    let server = Server::start(dir.path(), &smsc.url("hermod", "pw"), free_port());
    server.wait_healthy().await;
    let base = server.base.clone();
    let (ada, bob) = ("+447700900123", "+447700900456");
    let (ada_body, bob_body) = ("Secret-body-7781 for Ada", "Other-body-5521 for Bob");

    // An idempotent request (its stored response names the recipient), a scheduled
    // one still in flight, and one to another recipient.
    let idempotent_send = || {
        reqwest::Client::new()
            .post(format!("{base}/v1/messages"))
            .bearer_auth(&key)
            .header("Idempotency-Key", "order-7781")
            .json(&json!({"to": ada, "text": ada_body, "channels": ["sms"]}))
            .send()
    };
    let r = idempotent_send().await.unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let first: Value = r.json().await.unwrap();
    let id1 = first["id"].as_str().unwrap().to_owned();
    let later = hermod_core::rfc3339(now_ms() + 3_600_000);
    let (s, sched) = send_message(
        &base,
        &key,
        json!({"to": ada, "text": ada_body, "channels": ["sms"], "send_at": later}),
    )
    .await;
    assert_eq!(s, 202, "{sched}");
    let (s, other) = send_message(
        &base,
        &key,
        json!({"to": bob, "text": bob_body, "channels": ["sms"]}),
    )
    .await;
    assert_eq!(s, 202);
    let id3 = other["id"].as_str().unwrap().to_owned();
    wait_status(&base, &key, &id1, "delivered", 30).await;
    wait_status(&base, &key, &id3, "delivered", 30).await;
    let view = get_message(&base, &key, &id1).await;
    assert_eq!(
        (view["to"].as_str(), view["text"].as_str()),
        (Some(ada), Some(ada_body))
    );

    // The public key needs no API key; a checkpoint on demand; the chain verifies.
    let pk: Value = reqwest::get(format!("{base}/v1/audit/public-key"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(pk["algorithm"], "Ed25519");
    let pk_raw = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        pk["public_key"].as_str().unwrap(),
    )
    .unwrap();
    let (s, cp, _) = call(
        Method::POST,
        &format!("{base}/v1/audit/checkpoints"),
        &key,
        None,
    )
    .await;
    assert_eq!(s, 201, "{cp}");
    assert_eq!(cp["tenant"], tenant.as_str());
    assert_eq!(cp["key_id"], pk["key_id"]);
    let (s, v, _) = call(Method::GET, &format!("{base}/v1/audit/verify"), &key, None).await;
    assert_eq!(s, 200);
    assert_eq!(v["ok"], true, "{v}");
    // accepted x3, then queued/sent/delivered of two messages, scheduled, key
    assert!(v["entries"].as_i64().unwrap() >= 10, "{v}");

    // Export: accepted by the independent verifier; a tampered copy is not.
    let export = |from: Option<i64>| {
        let (base, key) = (base.clone(), key.clone());
        async move {
            let q = from.map(|f| format!("?from={f}")).unwrap_or_default();
            let r = reqwest::Client::new()
                .get(format!("{base}/v1/audit/export{q}"))
                .bearer_auth(&key)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 200);
            assert_eq!(r.headers()["content-type"], "application/x-ndjson");
            r.text()
                .await
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .collect::<Vec<Value>>()
        }
    };
    let lines = export(None).await;
    assert_eq!(lines[0]["type"], "header");
    assert!(lines.iter().any(|l| l["type"] == "checkpoint"));
    let text: String = lines.iter().map(|l| l.to_string()).collect();
    assert!(!text.contains("447700900123") && !text.contains("Secret-body"));
    if let Some((ok, out)) = crate::audit::python_verify(&lines, &pk_raw) {
        assert!(ok, "{out}");
        let mut tampered = lines.clone();
        let i = tampered
            .iter()
            .position(|l| l["type"] == "entry" && l["seq"] == 3)
            .unwrap();
        tampered[i]["kind"] = "message.delivered".into();
        let (ok, out) = crate::audit::python_verify(&tampered, &pk_raw).unwrap();
        assert!(!ok);
        assert!(out.contains("seq 3: changed"), "{out}");
    }
    let (s, v, _) = call(
        Method::GET,
        &format!("{base}/v1/audit/export?from=0"),
        &key,
        None,
    )
    .await;
    assert_eq!(
        (s, v["error"]["field"].as_str()),
        (400, Some("from")),
        "{v}"
    );

    // No plaintext number, body or webhook secret anywhere in the embedded database.
    let (s, ep, _) = call(
        Method::POST,
        &format!("{base}/v1/webhook-endpoints"),
        &key,
        Some(json!({"url": "http://127.0.0.1:9/hook", "events": ["message.delivered"]})),
    )
    .await;
    assert_eq!(s, 201, "{ep}");
    let secret = ep["secret"].as_str().unwrap().to_owned();
    if !distributed() {
        for f in ["hermod.db", "hermod.db-wal"] {
            let Ok(raw) = std::fs::read(dir.path().join(f)) else {
                continue;
            };
            for needle in [
                ada_body,
                bob_body,
                "Secret-body",
                "447700900123",
                "447700900456",
                secret.as_str(),
            ] {
                assert!(
                    !raw.windows(needle.len()).any(|w| w == needle.as_bytes()),
                    "{needle} found in {f}"
                );
            }
        }
    }

    // Erasure: the number and bodies cannot be read back through any API.
    let (s, v, _) = call(
        Method::DELETE,
        &format!("{base}/v1/subjects/not-a-number"),
        &key,
        None,
    )
    .await;
    assert_eq!(
        (s, v["error"]["field"].as_str()),
        (400, Some("number")),
        "{v}"
    );
    let (s, v, _) = call(
        Method::DELETE,
        &format!("{base}/v1/subjects/{ada}"),
        &key,
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["key_destroyed"], true);
    assert_eq!(
        (v["messages"].as_i64(), v["canceled"].as_i64()),
        (Some(2), Some(1))
    );
    let gone = get_message(&base, &key, &id1).await;
    assert_eq!(
        (gone["to"].as_str(), gone["text"].as_str()),
        (Some(""), Some("")),
        "{gone}"
    );
    let canceled = get_message(&base, &key, sched["id"].as_str().unwrap()).await;
    assert_eq!(canceled["status"], "canceled");
    let (_, list, _) = call(
        Method::GET,
        &format!("{base}/v1/messages?to=%2B447700900123"),
        &key,
        None,
    )
    .await;
    assert_eq!(list["data"].as_array().unwrap().len(), 2, "{list}");
    assert!(
        !list.to_string().contains("Secret-body") && !list.to_string().contains("447700900123")
    );
    let replay = idempotent_send().await.unwrap().text().await.unwrap();
    assert!(
        !replay.contains("Secret-body") && !replay.contains("447700900123"),
        "{replay}"
    );
    assert_eq!(get_message(&base, &key, &id3).await["text"], bob_body);
    let (_, v, _) = call(Method::GET, &format!("{base}/v1/audit/verify"), &key, None).await;
    assert_eq!(v["ok"], true, "{v}");
    let lines = export(None).await;
    assert!(lines.iter().any(|l| l["kind"] == "erasure"));
    if let Some((ok, out)) = crate::audit::python_verify(&lines, &pk_raw) {
        assert!(ok, "{out}");
    }
    // A range verifies on its own; one with an entry cut out of it does not.
    let mut range = export(Some(3)).await;
    assert_eq!(range[0]["from"], 3);
    assert_eq!(range[1]["seq"], 3);
    if let Some((ok, out)) = crate::audit::python_verify(&range, &pk_raw) {
        assert!(ok, "{out}");
        range.remove(2);
        let (ok, out) = crate::audit::python_verify(&range, &pk_raw).unwrap();
        assert!(!ok && out.contains("seq 4: deleted"), "{out}");
    }

    // Retention: validated, and stored.
    let (s, v, _) = call(
        Method::PUT,
        &format!("{base}/v1/tenant/retention"),
        &key,
        Some(json!({"days": 0})),
    )
    .await;
    assert_eq!(
        (s, v["error"]["field"].as_str()),
        (400, Some("days")),
        "{v}"
    );
    let (s, _, _) = call(
        Method::PUT,
        &format!("{base}/v1/tenant/retention"),
        &key,
        Some(json!({"days": 30})),
    )
    .await;
    assert_eq!(s, 200);
    let (_, v, _) = call(
        Method::GET,
        &format!("{base}/v1/tenant/retention"),
        &key,
        None,
    )
    .await;
    assert_eq!(v["days"], 30);

    // The CLI revokes a key, and verifies every tenant's chain against the same
    // database and key.
    drop(server);
    let hermod = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_hermod"))
            .args(args)
            .envs(backend_env(dir.path()))
            .env("HERMOD_DATA_DIR", dir.path())
            .env("HERMOD_LOG", "warn")
            .output()
            .unwrap()
    };
    let out = hermod(&["keys", "revoke", &key]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("Revoked key "));
    let out = hermod(&["audit", "verify"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains(&format!("OK tenant {tenant}:")), "{stdout}");
    if !distributed() {
        let db = dir.path().join("hermod.db").to_string_lossy().into_owned();
        let store = SqlStore::new(Db::open(&db, 1).await.unwrap(), test_vault());
        sql(
            &store,
            &format!(
                "UPDATE audit_entries SET at = at + 1 WHERE tenant_id = '{tenant}' AND seq = 4"
            ),
        )
        .await;
        let out = hermod(&["audit", "verify", "--tenant", &tenant]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{stdout}");
        assert!(
            stdout.contains(&format!("BROKEN tenant {tenant} seq 4: changed")),
            "{stdout}"
        );
    }
}
