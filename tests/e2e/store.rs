//! The same store tests on SQLite and on the real PostgreSQL.

use hermod_core::model::*;
use hermod_core::ports::Store;
use hermod_core::{MessageId, Msisdn, Status, now_ms};
use hermod_store::{Db, SqlStore};

use crate::support::{HAPPY_PATH, pg_database};

async fn open(url: &str) -> SqlStore {
    Db::migrate(url).await.unwrap();
    SqlStore::new(Db::open(url, 4).await.unwrap())
}

fn new_message(tenant: &hermod_core::TenantId, text: &str) -> NewMessage {
    NewMessage {
        id: MessageId::generate(),
        tenant_id: tenant.clone(),
        to: Msisdn::parse("+447911123456").unwrap(),
        from: None,
        text: text.into(),
        channels: vec![ChannelKind::Sms],
        ttl_secs: None,
        metadata: Some(serde_json::json!({"order": 42})),
        callback_url: None,
        created_at: now_ms(),
        send_at: None,
    }
}

async fn exercise(url: &str) {
    let store = open(url).await;
    let t1 = store.create_api_key("acme", "k1", "h1").await.unwrap();
    let t2 = store.create_api_key("other", "k2", "h2").await.unwrap();
    assert_eq!(
        store.api_key("k1").await.unwrap(),
        Some((t1.clone(), "h1".into()))
    );
    assert_eq!(store.api_key("nope").await.unwrap(), None);

    // Accept with an idempotency record; the same key replays.
    let m = new_message(&t1, "hello");
    let rec = IdempotencyRecord {
        key: "idem-1".into(),
        request_hash: "h".into(),
        status_code: 202,
        body: "{}".into(),
    };
    assert_eq!(
        store
            .accept(&t1, std::slice::from_ref(&m), Some(&rec))
            .await
            .unwrap(),
        AcceptOutcome::Accepted
    );
    let again = new_message(&t1, "hello");
    assert_eq!(
        store.accept(&t1, &[again], Some(&rec)).await.unwrap(),
        AcceptOutcome::Replay(rec.clone())
    );
    assert_eq!(store.idempotency(&t1, "idem-1").await.unwrap(), Some(rec));

    // Tenant isolation.
    assert!(store.get_message(&t2, &m.id).await.unwrap().is_none());
    let view = store.get_message(&t1, &m.id).await.unwrap().unwrap();
    assert_eq!(view.message.status, Status::Accepted);
    assert_eq!(
        view.message.metadata,
        Some(serde_json::json!({"order": 42}))
    );

    // Pipeline: plan (twice: idempotent), claim, a receipt that overtakes the submit
    // response, then the response: the message ends delivered, never moving back.
    let planned = store
        .plan_attempts(std::slice::from_ref(&m.id))
        .await
        .unwrap();
    assert_eq!(planned.len(), 1);
    let again = store
        .plan_attempts(std::slice::from_ref(&m.id))
        .await
        .unwrap();
    assert_eq!(
        again, planned,
        "a redelivered dispatch job finds the same attempt"
    );
    let aid = planned[0].0.clone();
    let claims = store
        .claim_attempts(std::slice::from_ref(&aid))
        .await
        .unwrap();
    let Claim::Claimed(out) = &claims[0] else {
        panic!("expected a claim, got {claims:?}")
    };
    let claims = store
        .claim_attempts(std::slice::from_ref(&aid))
        .await
        .unwrap();
    assert!(
        matches!(claims[0], Claim::InDoubt { .. }),
        "a second claim is in doubt, never a second send"
    );

    let receipt = Receipt {
        channel: ChannelKind::Sms,
        provider_id: "ABC123".into(),
        status: Status::Delivered,
        raw_status: "DELIVRD".into(),
        error_code: Some("000".into()),
        user_ref: Some(out.user_ref),
        recipient: Some("447911123456".into()),
    };
    store
        .apply_receipts(std::slice::from_ref(&receipt))
        .await
        .unwrap();
    assert_eq!(
        store
            .get_message(&t1, &m.id)
            .await
            .unwrap()
            .unwrap()
            .message
            .status,
        Status::Sending
    );
    store
        .record_sends(&[SendResult {
            attempt_id: aid.clone(),
            outcome: SendOutcome::Sent {
                provider_ids: vec!["abc123".into()],
                raw_status: "ESME_ROK".into(),
            },
        }])
        .await
        .unwrap();
    let view = store.get_message(&t1, &m.id).await.unwrap().unwrap();
    assert_eq!(view.message.status, Status::Delivered);
    assert_eq!(view.attempts[0].status, Status::Delivered);
    assert_eq!(view.attempts[0].provider_ids, vec!["abc123".to_string()]);
    let kinds: Vec<&str> = view.events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, HAPPY_PATH);
    // A duplicate, late receipt changes nothing.
    store
        .apply_receipts(&[Receipt {
            status: Status::Sent,
            ..receipt
        }])
        .await
        .unwrap();
    let after = store.get_message(&t1, &m.id).await.unwrap().unwrap();
    assert_eq!(after.message.status, Status::Delivered);
    assert_eq!(after.events.len(), 5);

    // In-doubt resolution: the submit response was lost, the receipt names our ref.
    let m2 = new_message(&t1, "second");
    store
        .accept(&t1, std::slice::from_ref(&m2), None)
        .await
        .unwrap();
    let aid2 = store
        .plan_attempts(std::slice::from_ref(&m2.id))
        .await
        .unwrap()[0]
        .0
        .clone();
    let Claim::Claimed(out2) = store.claim_attempts(&[aid2]).await.unwrap().remove(0) else {
        panic!()
    };
    assert!(
        !store.resolve_in_doubt(&out2).await.unwrap(),
        "no receipt yet"
    );
    store
        .apply_receipts(&[Receipt {
            channel: ChannelKind::Sms,
            provider_id: "lost-1".into(),
            status: Status::Delivered,
            raw_status: "DELIVRD".into(),
            error_code: None,
            user_ref: Some(out2.user_ref),
            recipient: Some("447911123456".into()),
        }])
        .await
        .unwrap();
    assert!(store.resolve_in_doubt(&out2).await.unwrap());
    assert_eq!(
        store
            .get_message(&t1, &m2.id)
            .await
            .unwrap()
            .unwrap()
            .message
            .status,
        Status::Delivered
    );

    // Listing with filters and cursor pagination.
    let batch: Vec<NewMessage> = (0..5).map(|i| new_message(&t1, &format!("m{i}"))).collect();
    store.accept(&t1, &batch, None).await.unwrap();
    let page1 = store
        .list_messages(
            &t1,
            &ListFilter {
                limit: 4,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page1.len(), 4);
    let page2 = store
        .list_messages(
            &t1,
            &ListFilter {
                limit: 4,
                cursor: Some(page1[3].id.clone()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page2.len(), 3);
    let delivered = store
        .list_messages(
            &t1,
            &ListFilter {
                limit: 100,
                status: Some(Status::Delivered),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(delivered.len(), 2);
    assert!(
        store
            .list_messages(
                &t2,
                &ListFilter {
                    limit: 100,
                    ..Default::default()
                }
            )
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn store_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    exercise(dir.path().join("t.db").to_str().unwrap()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn store_on_postgres() {
    let Some(url) = pg_database("store").await else {
        return;
    };
    exercise(&url).await;
}

/// Every migration goes up, down and up again on both backends.
#[tokio::test(flavor = "multi_thread")]
async fn migrations_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let lite = dir.path().join("m.db").to_string_lossy().into_owned();
    let mut urls = vec![lite];
    if let Some(pg) = pg_database("migrate").await {
        urls.push(pg);
    }
    for url in urls {
        assert!(!Db::migrate(&url).await.unwrap().is_empty());
        Db::revert_all(&url).await.unwrap();
        assert!(!Db::migrate(&url).await.unwrap().is_empty());
    }
}

/// Timeline rows are append-only at the database level.
#[tokio::test(flavor = "multi_thread")]
async fn events_cannot_be_changed() {
    use diesel_async::RunQueryDsl;
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("e.db").to_string_lossy().into_owned();
    let store = open(&url).await;
    let t = store.create_api_key("acme", "k", "h").await.unwrap();
    store
        .accept(&t, &[new_message(&t, "x")], None)
        .await
        .unwrap();
    let Db::Lite { pool, .. } = store.db() else {
        panic!()
    };
    let mut c = pool.get().await.unwrap();
    assert!(
        diesel::sql_query("UPDATE events SET status = 'read'")
            .execute(&mut *c)
            .await
            .is_err()
    );
    assert!(
        diesel::sql_query("DELETE FROM events")
            .execute(&mut *c)
            .await
            .is_err()
    );
}
