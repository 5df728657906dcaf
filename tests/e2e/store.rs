//! The same store tests on SQLite and on the real PostgreSQL.

use std::time::Duration;

use hermod_core::inbound::{Concat, InboundPart};
use hermod_core::model::*;
use hermod_core::ports::{Dispatch as _, Inbound as _, Messages as _, Tenants as _};
use hermod_core::{MessageId, Msisdn, Status, now_ms};
use hermod_store::{Db, SqlStore};

use crate::support::{HAPPY_PATH, pg_database};

/// Runs `$body` with `$c`, a pooled connection of the store's backend (the body is
/// written once for both).
macro_rules! with_test_conn {
    ($store:expr, |$c:ident| $body:expr) => {
        match $store.db() {
            Db::Pg(pool) => {
                let $c = &mut pool.get().await.unwrap();
                $body
            }
            Db::Lite { pool, .. } => {
                let $c = &mut pool.get().await.unwrap();
                $body
            }
        }
    };
}

async fn open(url: &str) -> SqlStore {
    Db::migrate(url).await.unwrap();
    SqlStore::new(
        Db::open(url, 4).await.unwrap(),
        crate::compliance::test_vault(),
    )
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
        callback_events: None,
        created_at: now_ms(),
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

/// An SMSC that echoes no `user_message_reference`: a kept receipt is an in-doubt
/// attempt's only when its scope, submit date and text fit, and it is used once.
async fn in_doubt_by_echo(store: &SqlStore, t: &hermod_core::TenantId) {
    let claim = |text: &'static str| async move {
        let m = new_message(t, text);
        store
            .accept(t, std::slice::from_ref(&m), None)
            .await
            .unwrap();
        let aid = store
            .plan_attempts(std::slice::from_ref(&m.id), &[])
            .await
            .unwrap()[0]
            .0
            .clone();
        let Claim::Claimed(o) = store.claim_attempts(&[aid]).await.unwrap().remove(0) else {
            panic!()
        };
        (m, o)
    };
    let (m1, o1) = claim("Your code is 1234").await;
    let (m2, o2) = claim("Your code is 1234").await;
    let (_, o3) = claim("Something else").await;
    let since = now_ms() - 1000;
    let minute = since - since.rem_euclid(60_000);
    let look = |key: &str| InDoubtLook {
        since,
        part_keys: vec![key.into()],
        scopes: vec!["SMSC-A:".into()],
        last_look: false,
        timing: None,
    };
    let receipt = |id: &str, submitted_at: i64, text: &str| Receipt {
        channel: ChannelKind::Sms,
        provider_id: id.into(),
        status: Status::Delivered,
        raw_status: "DELIVRD".into(),
        error_code: None,
        user_ref: None,
        recipient: Some("+447911123456".into()),
        echo: Some(SubmitEcho {
            submitted_at: Some(submitted_at),
            text_key: text.into(),
        }),
        event: None,
    };
    store
        .apply_receipts(&[
            // Another connector's, the wrong minute, other text: none of them fit.
            receipt("smsc-b:1", minute, "Yourcodeis1234"),
            receipt("smsc-a:2", minute - 7 * 60_000, "Yourcodeis1234"),
            receipt("smsc-a:3", minute, "Yourcodeis9999"),
            // The SMSC's clock is UTC+1, its text cut at 20 characters.
            receipt("smsc-a:4", minute + 3_600_000, "Yourcodeis12"),
        ])
        .await
        .unwrap();
    let key = "Yourcodeis1234";
    assert!(
        !store
            .resolve_in_doubt(&o3, &look("Somethingelse"))
            .await
            .unwrap(),
        "another text"
    );
    assert!(store.resolve_in_doubt(&o1, &look(key)).await.unwrap());
    assert!(
        !store.resolve_in_doubt(&o2, &look(key)).await.unwrap(),
        "one receipt resolves one attempt: the other is sent again"
    );
    let view = store.get_message(t, &m1.id).await.unwrap().unwrap();
    assert_eq!(view.message.status, Status::Delivered);
    assert_eq!(view.attempts[0].provider_ids, vec!["smsc-a:4".to_string()]);
    let view = store.get_message(t, &m2.id).await.unwrap().unwrap();
    assert_eq!(view.attempts[0].status, Status::Sending);
    // Without a scope (the channel cannot say), smsc-b's fits o2.
    let any = InDoubtLook {
        scopes: Vec::new(),
        ..look(key)
    };
    assert!(store.resolve_in_doubt(&o2, &any).await.unwrap());
    let view = store.get_message(t, &m2.id).await.unwrap().unwrap();
    assert_eq!(view.attempts[0].provider_ids, vec!["smsc-b:1".to_string()]);

    // Two parts, one receipt: not resolved until the last look, then sent, not repeated.
    let (m4, o4) = claim("Part one, part two").await;
    store
        .apply_receipts(&[receipt("smsc-a:5", minute, "Partone")])
        .await
        .unwrap();
    let two = InDoubtLook {
        part_keys: vec!["Partone".into(), "parttwo".into()],
        ..look(key)
    };
    assert!(
        !store.resolve_in_doubt(&o4, &two).await.unwrap(),
        "one part of two"
    );
    let last = InDoubtLook {
        last_look: true,
        ..two
    };
    assert!(store.resolve_in_doubt(&o4, &last).await.unwrap());
    let view = store.get_message(t, &m4.id).await.unwrap().unwrap();
    assert_eq!(view.attempts[0].provider_ids, vec!["smsc-a:5".to_string()]);
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
        .plan_attempts(std::slice::from_ref(&m.id), &[])
        .await
        .unwrap();
    assert_eq!(planned.len(), 1);
    let again = store
        .plan_attempts(std::slice::from_ref(&m.id), &[])
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
        echo: None,
        event: None,
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
        .plan_attempts(std::slice::from_ref(&m2.id), &[])
        .await
        .unwrap()[0]
        .0
        .clone();
    let Claim::Claimed(out2) = store.claim_attempts(&[aid2]).await.unwrap().remove(0) else {
        panic!()
    };
    assert!(
        !store
            .resolve_in_doubt(&out2, &InDoubtLook::default())
            .await
            .unwrap(),
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
            echo: None,
            event: None,
        }])
        .await
        .unwrap();
    assert!(
        store
            .resolve_in_doubt(&out2, &InDoubtLook::default())
            .await
            .unwrap()
    );
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
    let t3 = store.create_api_key("echo", "k3", "h3").await.unwrap();
    in_doubt_by_echo(&store, &t3).await;

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

fn part(text: &str, concat: Option<(u16, u8, u8)>) -> InboundPart {
    InboundPart {
        channel: hermod_core::model::ChannelKind::Sms,
        connector: "c1".into(),
        from: "447911123456".into(),
        to: "447700900123".into(),
        concat: concat.map(|(reference, total, seq)| Concat {
            reference,
            total,
            seq,
        }),
        text: text.into(),
        received_at: now_ms(),
        tenant: None,
        payload: None,
        event: None,
    }
}

/// Inbound reassembly, keywords, opt-outs at dispatch and cancelling, per backend.
async fn exercise_inbound(url: &str) {
    let store = open(url).await;
    let t1 = store.create_api_key("acme", "k1", "h1").await.unwrap();
    let t2 = store.create_api_key("other", "k2", "h2").await.unwrap();
    // An unknown sender's message is kept without a tenant.
    let m = store
        .receive_inbound(&part("hi", None))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.tenant_id, None);
    let t3 = store.create_api_key("third", "k3", "h3").await.unwrap();
    // A rich channel's payload (an RCS suggestion tap) is kept with the message, and
    // its content round-trips on a message.
    let tap = InboundPart {
        payload: Some(
            serde_json::json!({"type": "suggestion_response", "postback_data": "yes_42"}),
        ),
        tenant: Some(t3.clone()),
        ..part("Yes", None)
    };
    let got = store.receive_inbound(&tap).await.unwrap().unwrap();
    assert_eq!(got.payload, tap.payload);
    let listed = store.list_inbound(&t3, None, 10).await.unwrap();
    assert_eq!(listed[0].payload, tap.payload);
    let mut rich = new_message(&t3, "Order shipped");
    rich.content = Some(
        serde_json::from_value(serde_json::json!({
            "content": {"card": {"title": "Order shipped"}},
            "suggestions": [{"reply": {"text": "Thanks"}}]
        }))
        .unwrap(),
    );
    store
        .accept(&t3, std::slice::from_ref(&rich), None)
        .await
        .unwrap();
    let back = store.get_message(&t3, &rich.id).await.unwrap().unwrap();
    assert_eq!(back.message.content, rich.content);
    // Provider events: the marker is written in the transaction of the effect, so a
    // redelivery changes nothing, and nothing else writes it.
    let ev = |source: &str, id: &str| ProviderEvent {
        source: source.into(),
        id: id.into(),
    };
    let reply = InboundPart {
        event: Some(ev("rbm:a", "U1")),
        tenant: Some(t3.clone()),
        ..part("Second reply", None)
    };
    let before = store.list_inbound(&t3, None, 10).await.unwrap().len();
    assert!(!store.seen_event(&ev("rbm:a", "U1")).await.unwrap());
    assert!(store.receive_inbound(&reply).await.unwrap().is_some());
    assert!(store.seen_event(&ev("rbm:a", "U1")).await.unwrap());
    assert_eq!(store.receive_inbound(&reply).await.unwrap(), None);
    assert_eq!(
        store.list_inbound(&t3, None, 10).await.unwrap().len(),
        before + 1
    );
    let read = Receipt {
        channel: ChannelKind::Rcs,
        provider_id: "rbm:0190a1b2-0000-7e8f-9a0b-1c2d3e4f5a6b".into(),
        status: Status::Read,
        raw_status: "READ".into(),
        error_code: None,
        user_ref: None,
        recipient: Some("447911123456".into()),
        echo: None,
        event: Some(ev("rbm:a", "E1")),
    };
    // Twice in one batch, then again: kept (no attempt has its id yet) once.
    store
        .apply_receipts(&[read.clone(), read.clone()])
        .await
        .unwrap();
    store
        .apply_receipts(std::slice::from_ref(&read))
        .await
        .unwrap();
    assert_eq!(orphans_of(&store, &read.provider_id).await, 1);
    assert!(store.seen_event(&ev("rbm:a", "E1")).await.unwrap());
    assert!(!store.seen_event(&ev("rbm:b", "E1")).await.unwrap());
    // An agent's launch state per region: a late-arriving older event changes nothing.
    let launch = |state: &str, at: i64| AgentLaunch {
        agent: "shop".into(),
        region: "/v1/regions/fi-rcs".into(),
        state: state.into(),
        previous: None,
        at,
    };
    store
        .record_launch(&launch("LAUNCHED", 2_000))
        .await
        .unwrap();
    store
        .record_launch(&launch("PENDING", 1_000))
        .await
        .unwrap();
    assert_eq!(
        store.launch_states().await.unwrap(),
        vec![launch("LAUNCHED", 2_000)]
    );
    store
        .record_launch(&launch("SUSPENDED", 3_000))
        .await
        .unwrap();
    assert_eq!(
        store.launch_states().await.unwrap(),
        vec![launch("SUSPENDED", 3_000)]
    );
    // An event without an effect: its marker alone.
    assert!(store.first_seen_event(&ev("rbm:a", "E2")).await.unwrap());
    assert!(!store.first_seen_event(&ev("rbm:a", "E2")).await.unwrap());
    assert!(store.first_seen_event(&ev("rbm:b", "E2")).await.unwrap());

    // App channel housekeeping: an app message that ended loses its plaintext, and an
    // expired envelope leaves the inbox.
    use hermod_core::ports::Devices;
    let mut app_msg = new_message(&t3, "app plaintext");
    app_msg.channels = vec![ChannelKind::App];
    store
        .accept(&t3, std::slice::from_ref(&app_msg), None)
        .await
        .unwrap();
    let (aid, kind, _) = store
        .plan_attempts(std::slice::from_ref(&app_msg.id), &[])
        .await
        .unwrap()
        .remove(0);
    assert_eq!(kind, ChannelKind::App);
    store
        .claim_attempts(std::slice::from_ref(&aid))
        .await
        .unwrap();
    store
        .record_sends(&[SendResult {
            attempt_id: aid.clone(),
            outcome: SendOutcome::Failed {
                code: "app_no_device".into(),
                permanent: true,
            },
        }])
        .await
        .unwrap();
    let env = hermod_core::app::Envelope {
        seq: 0,
        message_id: app_msg.id.to_string(),
        device_id: "dev_0123456789abcdef".into(),
        suite: "x".into(),
        enc: "e".into(),
        ciphertext: "c".into(),
        info: "i".into(),
        created_at: now_ms() - 10_000,
        expires_at: Some(now_ms() - 1),
    };
    store.put_envelopes(&[(aid.clone(), env)]).await.unwrap();
    assert_eq!(store.sweep_app().await.unwrap(), (1, 1));
    let back = store.get_message(&t3, &app_msg.id).await.unwrap().unwrap();
    assert_eq!(back.message.text, "");
    assert_eq!(store.sweep_app().await.unwrap(), (0, 0));
    // Acme wrote to the number from its sender; that alone does not make a reply
    // acme's (the store takes the tenant the sender assignments name, or none).
    let mut first = new_message(&t1, "order shipped");
    first.from = Some("+447700900123".into());
    store.accept(&t1, &[first], None).await.unwrap();
    let m = store
        .receive_inbound(&part("whose?", None))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.tenant_id, None, "never attributed to whoever wrote last");
    // The number is acme's: its replies are acme's.
    let acme = |text: &str, concat| InboundPart {
        tenant: Some(t1.clone()),
        ..part(text, concat)
    };
    // Parts out of order, one delivered twice: one message when the last arrives.
    assert_eq!(
        store
            .receive_inbound(&acme("world", Some((7, 3, 2))))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .receive_inbound(&acme("world", Some((7, 3, 2))))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .receive_inbound(&acme("!", Some((7, 3, 3))))
            .await
            .unwrap(),
        None
    );
    let m = store
        .receive_inbound(&acme("hello ", Some((7, 3, 1))))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (m.text.as_str(), m.parts, m.tenant_id.as_ref()),
        ("hello world!", 3, Some(&t1))
    );
    assert_eq!(m.from, "+447911123456");
    // Parts whose message never completes are found once stale, in order, and dropped.
    assert_eq!(
        store
            .receive_inbound(&acme("b", Some((9, 3, 2))))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .receive_inbound(&acme("a", Some((9, 3, 1))))
            .await
            .unwrap(),
        None
    );
    assert!(
        store
            .stale_inbound_parts(now_ms() - 60_000)
            .await
            .unwrap()
            .is_empty()
    );
    let stale = store.stale_inbound_parts(now_ms() + 1).await.unwrap();
    assert_eq!(stale.len(), 1);
    let texts: Vec<&str> = stale[0].iter().map(|p| p.text.as_str()).collect();
    assert_eq!(texts, ["a", "b"]);
    // Flushing (seq 0) assembles what came and forgets the parts, once.
    let mut flush = stale[0][0].clone();
    flush.concat = flush.concat.map(|k| Concat { seq: 0, ..k });
    // (The handler names the owner again, as it does for every part.)
    flush.tenant = Some(t1.clone());
    let m = store.receive_inbound(&flush).await.unwrap().unwrap();
    assert_eq!((m.text.as_str(), m.parts), ("ab", 2));
    assert_eq!(
        store.receive_inbound(&flush).await.unwrap(),
        None,
        "flushed once"
    );
    assert!(
        store
            .stale_inbound_parts(now_ms() + 1)
            .await
            .unwrap()
            .is_empty()
    );
    let listed = store.list_inbound(&t1, None, 10).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(store.list_inbound(&t2, None, 10).await.unwrap().is_empty());

    // STOP → opt-out → the next message is rejected at dispatch, without an attempt.
    let stop = store
        .receive_inbound(&acme(" Stop ", None))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stop.keyword, Some(hermod_core::inbound::Keyword::Stop));
    let outs = store.list_opt_outs(&t1, None).await.unwrap();
    assert_eq!(outs.len(), 1);
    assert_eq!(
        (outs[0].sender.as_str(), outs[0].source.as_str()),
        ("447700900123", "keyword")
    );
    let mut blocked = new_message(&t1, "sale");
    blocked.from = Some("+447700900123".into());
    let mut other_sender = new_message(&t1, "from elsewhere");
    other_sender.from = Some("Acme".into());
    // No sender: blocked by any opt-out of its own tenant only.
    let other_tenant = new_message(&t2, "other tenant");
    store
        .accept(&t1, &[blocked.clone(), other_sender.clone()], None)
        .await
        .unwrap();
    store
        .accept(&t2, std::slice::from_ref(&other_tenant), None)
        .await
        .unwrap();
    let planned = store
        .plan_attempts(
            &[
                blocked.id.clone(),
                other_sender.id.clone(),
                other_tenant.id.clone(),
            ],
            &[],
        )
        .await
        .unwrap();
    assert_eq!(planned.len(), 2, "only the opted-out message is held back");
    let v = store.get_message(&t1, &blocked.id).await.unwrap().unwrap();
    assert_eq!(v.message.status, Status::Rejected);
    assert_eq!(v.message.reason.as_deref(), Some("recipient_opted_out"));
    assert!(v.attempts.is_empty());
    // START clears it.
    store
        .receive_inbound(&acme("UNSTOP", None))
        .await
        .unwrap()
        .unwrap();
    assert!(store.list_opt_outs(&t1, None).await.unwrap().is_empty());
    // The keyword opt-out and opt-in and the inbound messages are in the audit log,
    // by the number's HMAC.
    let log = crate::compliance::facts(&store, t1.as_str()).await;
    let kinds: Vec<&str> = log.iter().map(|(k, _)| k.as_str()).collect();
    for k in ["message.inbound", "opt_out.added", "opt_out.removed"] {
        assert!(kinds.contains(&k), "{k} missing from {kinds:?}");
    }
    let (_, added) = log.iter().find(|(k, _)| k == "opt_out.added").unwrap();
    assert_eq!(added["source"], "keyword");
    assert!(
        !serde_json::to_string(&log)
            .unwrap()
            .contains("447911123456")
    );
    // A configured owner of the number wins over the last writer.
    let mut owned = part("STOP", None);
    owned.tenant = Some(t2.clone());
    let m = store.receive_inbound(&owned).await.unwrap().unwrap();
    assert_eq!(m.tenant_id.as_ref(), Some(&t2));
    assert_eq!(store.list_opt_outs(&t2, None).await.unwrap().len(), 1);
    assert!(store.list_opt_outs(&t1, None).await.unwrap().is_empty());
    // The API's opt-outs: all senders, then removed.
    let to = "+447911123456";
    assert!(store.add_opt_out(&t1, to, "*", "api").await.unwrap());
    assert!(!store.add_opt_out(&t1, to, "*", "api").await.unwrap());
    assert_eq!(store.remove_opt_out(&t1, to, Some("*")).await.unwrap(), 1);
    assert_eq!(store.remove_opt_out(&t1, to, None).await.unwrap(), 0);

    // Cancel: before dispatch, after planning, and too late once claimed.
    let c1 = new_message(&t1, "cancel me");
    let c2 = new_message(&t1, "cancel me after planning");
    let c3 = new_message(&t1, "too late");
    store
        .accept(&t1, &[c1.clone(), c2.clone(), c3.clone()], None)
        .await
        .unwrap();
    assert_eq!(
        store.cancel_message(&t1, &c1.id).await.unwrap(),
        CancelOutcome::Canceled
    );
    assert_eq!(
        store.cancel_message(&t2, &c1.id).await.unwrap(),
        CancelOutcome::NotFound
    );
    let planned = store
        .plan_attempts(&[c1.id.clone(), c2.id.clone(), c3.id.clone()], &[])
        .await
        .unwrap();
    assert_eq!(planned.len(), 2, "a canceled message gets no attempt");
    let (a2, a3) = (planned[0].0.clone(), planned[1].0.clone());
    let (a2, a3) = if store
        .get_message(&t1, &c2.id)
        .await
        .unwrap()
        .unwrap()
        .attempts[0]
        .id
        == a2
    {
        (a2, a3)
    } else {
        (a3, a2)
    };
    assert_eq!(
        store.cancel_message(&t1, &c2.id).await.unwrap(),
        CancelOutcome::Canceled
    );
    let claims = store.claim_attempts(&[a2, a3]).await.unwrap();
    let claimed: Vec<&Claim> = claims
        .iter()
        .filter(|c| matches!(c, Claim::Claimed(_)))
        .collect();
    assert_eq!(claimed.len(), 1, "the canceled attempt is not claimed");
    assert!(matches!(
        store.cancel_message(&t1, &c3.id).await.unwrap(),
        CancelOutcome::TooLate(Status::Sending)
    ));
}

/// Fallback timers fire once however many workers race for them; webhook events are
/// read from the log after one holder's cursor, and deliveries that failed become
/// rows that fail after the retry period and replay.
async fn exercise_fallback_and_webhooks(url: &str) {
    use hermod_core::plan::*;
    use hermod_core::webhook::*;
    let store = std::sync::Arc::new(open(url).await);
    let t = store.create_api_key("acme", "fk1", "h").await.unwrap();
    let ep = WebhookEndpoint {
        id: hermod_core::EndpointId::generate().to_string(),
        tenant_id: t.clone(),
        url: "http://127.0.0.1:9/hook".into(),
        events: vec!["message.queued".into(), "message.fallback".into()],
        created_at: now_ms(),
    };
    store.create_endpoint(&ep, "whsec_x").await.unwrap();
    let m = new_message(&t, "fall");
    store
        .accept(&t, std::slice::from_ref(&m), None)
        .await
        .unwrap();
    let step = |c, kept| PlanStep {
        channel: c,
        kept,
        reason: "test".into(),
    };
    let plan = Plan {
        steps: vec![
            step(ChannelKind::Rcs, true),
            step(ChannelKind::App, false),
            step(ChannelKind::Sms, true),
        ],
        fallback: FallbackPolicy {
            after_secs: 1,
            ..FallbackPolicy::default()
        },
    };
    let planned = store
        .plan_attempts(std::slice::from_ref(&m.id), &[(m.id.clone(), plan)])
        .await
        .unwrap();
    assert_eq!(planned.len(), 1);
    assert_eq!(planned[0].1, ChannelKind::Rcs);
    let att = planned[0].0.clone();
    store
        .claim_attempts(std::slice::from_ref(&att))
        .await
        .unwrap();
    store
        .record_sends(&[SendResult {
            attempt_id: att.clone(),
            outcome: SendOutcome::Sent {
                provider_ids: vec!["rbm:1234".into()],
                raw_status: "SENT".into(),
            },
        }])
        .await
        .unwrap();
    assert!(
        store
            .due_fallbacks(10, Duration::from_secs(60))
            .await
            .unwrap()
            .is_empty(),
        "not due yet"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Two workers lease at once: one gets the timer.
    let (a, b) = tokio::join!(
        store.due_fallbacks(10, Duration::from_secs(60)),
        store.due_fallbacks(10, Duration::from_secs(60))
    );
    let leased: Vec<DueFallback> = a.unwrap().into_iter().chain(b.unwrap()).collect();
    assert_eq!(leased.len(), 1);
    assert_eq!(leased[0].provider_ids, vec!["rbm:1234".to_owned()]);
    assert_eq!(leased[0].policy.after_secs, 1);
    // Fired twice at once (a lease that ran out): one fallback.
    let (x, y) = tokio::join!(
        store.fire_fallback(&att, Withdrawal::Withdrawn),
        store.fire_fallback(&att, Withdrawal::Withdrawn)
    );
    assert!(x.is_ok() || y.is_ok(), "{x:?} {y:?}");
    store
        .fire_fallback(&att, Withdrawal::Withdrawn)
        .await
        .unwrap();
    let view = store.get_message(&t, &m.id).await.unwrap().unwrap();
    let chans: Vec<(&str, Status)> = view
        .attempts
        .iter()
        .map(|a| (a.channel.as_str(), a.status))
        .collect();
    assert_eq!(
        chans,
        vec![("rcs", Status::Canceled), ("sms", Status::Queued)],
        "the skipped app channel is passed over"
    );
    assert_eq!(
        view.events
            .iter()
            .filter(|e| e.kind == "message.fallback")
            .count(),
        1
    );
    // The dispatch job hands out the queued SMS attempt.
    let again = store
        .plan_attempts(std::slice::from_ref(&m.id), &[])
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].1, ChannelKind::Sms);
    // A late receipt on the withdrawn attempt is recorded there; the message stays.
    store
        .apply_receipts(&[Receipt {
            channel: ChannelKind::Rcs,
            provider_id: "rbm:1234".into(),
            status: Status::Delivered,
            raw_status: "DELIVERED".into(),
            error_code: None,
            user_ref: None,
            recipient: None,
            echo: None,
            event: None,
        }])
        .await
        .unwrap();
    let view = store.get_message(&t, &m.id).await.unwrap().unwrap();
    assert_eq!(view.attempts[0].status, Status::Canceled);
    assert_eq!(view.attempts[0].raw_status.as_deref(), Some("DELIVERED"));
    assert_eq!(view.message.status, Status::Sent);

    // Webhooks: the event log after the cursor holds queued and fallback, each for
    // the endpoint, signed with its secret.
    let cursor = store
        .claim_cursor("w1", Duration::from_secs(30))
        .await
        .unwrap()
        .expect("the cursor is free");
    assert!(
        store
            .claim_cursor("w2", Duration::from_secs(30))
            .await
            .unwrap()
            .is_none(),
        "one reader at a time"
    );
    let page = store.events_after(&cursor, 100).await.unwrap();
    let kinds: Vec<&str> = page.events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(kinds, vec!["message.queued", "message.fallback"]);
    for e in &page.events {
        assert_eq!(e.destinations.len(), 1);
        assert_eq!(e.destinations[0].url, ep.url);
        assert_eq!(e.destinations[0].secret.as_deref(), Some("whsec_x"));
        let body: serde_json::Value = serde_json::from_str(&e.payload).unwrap();
        assert_eq!(body["type"], e.event_type.as_str());
        assert_eq!(body["sequence"], e.seq);
    }
    // Both failed their first POST: kept as rows; the cursor moves past them.
    let retry: Vec<RetryDelivery> = page
        .events
        .iter()
        .map(|e| RetryDelivery {
            tenant_id: e.tenant_id.clone(),
            endpoint_id: e.destinations[0].endpoint_id.clone(),
            url: e.destinations[0].url.clone(),
            event_type: e.event_type.clone(),
            message_id: Some(e.message_id.clone()),
            payload: e.payload.clone(),
            attempts: 1,
            last_status: Some(503),
            last_error: Some("http_503".into()),
            retry_in: Duration::ZERO,
        })
        .collect();
    assert!(
        !store
            .advance_cursor("w2", Duration::from_secs(30), &page.next, &retry, &[])
            .await
            .unwrap(),
        "only the holder moves it"
    );
    let delivered = [DeliveredRange {
        tenant_id: t.to_string(),
        from_seq: page.events[0].seq,
        to_seq: page.events[0].seq,
        deliveries: 1,
    }];
    assert!(
        store
            .advance_cursor(
                "w1",
                Duration::from_secs(30),
                &page.next,
                &retry,
                &delivered
            )
            .await
            .unwrap()
    );
    let rest = store.events_after(&page.next, 100).await.unwrap();
    assert!(rest.events.is_empty(), "nothing after the cursor");
    let again = store
        .claim_cursor("w1", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.seq, page.next.seq, "the cursor was stored");
    let due = store
        .due_deliveries(10, Duration::from_secs(60))
        .await
        .unwrap();
    let kinds: Vec<String> = due
        .iter()
        .map(|d| {
            serde_json::from_str::<serde_json::Value>(&d.payload).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(kinds, vec!["message.queued", "message.fallback"]);
    assert!(due.iter().all(|d| d.secret.as_deref() == Some("whsec_x")));
    assert!(due.iter().all(|d| d.attempts == 1));
    assert!(
        store
            .due_deliveries(10, Duration::from_secs(60))
            .await
            .unwrap()
            .is_empty(),
        "leased"
    );
    // A restart of the one embedded process frees what its crashed run had leased:
    // the rows are due at once, and the cursor can be claimed by the new run.
    let (rows, _) = store.release_leases_after_restart().await.unwrap();
    assert_eq!(rows, 2);
    let again: Vec<i64> = store
        .due_deliveries(10, Duration::from_secs(60))
        .await
        .unwrap()
        .iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(again, due.iter().map(|d| d.id).collect::<Vec<_>>());
    assert!(
        store
            .claim_cursor("after-restart", Duration::from_secs(30))
            .await
            .unwrap()
            .is_some(),
        "the crashed run's cursor lease is released"
    );
    // Past the retry period: failed, listed, replayed on request.
    store
        .record_deliveries(&[
            DeliveryResult {
                id: due[0].id,
                status: Some(500),
                error: Some("http_500".into()),
                retry_in: None,
            },
            DeliveryResult {
                id: due[1].id,
                status: Some(204),
                error: None,
                retry_in: None,
            },
        ])
        .await
        .unwrap();
    // Final outcomes are in the audit log, with a digest of the URL.
    let log = crate::compliance::facts(&store, t.as_str()).await;
    let outcome = |kind: &str| log.iter().find(|(k, _)| k == kind).map(|(_, d)| d.clone());
    let failed = outcome("webhook.failed").expect("webhook.failed fact");
    assert_eq!(
        (failed["http_status"].as_i64(), failed["error"].as_str()),
        (Some(500), Some("http_500"))
    );
    assert_eq!(
        outcome("webhook.delivered").expect("webhook.delivered fact")["http_status"],
        204
    );
    assert!(failed["url_sha256"].is_string() && failed.get("url").is_none());
    let range = outcome("webhook.delivered_range").expect("the cursor's delivered range");
    assert_eq!(range["deliveries"], 1);
    let failed = store
        .list_deliveries(&t, Some(DeliveryStatus::Failed), None, 10)
        .await
        .unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].last_status, Some(500));
    assert_eq!(failed[0].attempts, 2);
    assert!(store.retry_delivery(&t, failed[0].id).await.unwrap());
    let due = store
        .due_deliveries(10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].id, failed[0].id);
    // Housekeeping: delivered rows go after their period; pending ones stay.
    assert_eq!(
        store
            .purge_deliveries(Duration::ZERO, Duration::from_secs(86_400))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .list_deliveries(&t, None, None, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    let other = store.create_api_key("other", "fk2", "h").await.unwrap();
    assert!(
        !store.retry_delivery(&other, failed[0].id).await.unwrap(),
        "another tenant's"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn store_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    exercise(dir.path().join("t.db").to_str().unwrap()).await;
    exercise_inbound(dir.path().join("i.db").to_str().unwrap()).await;
    exercise_fallback_and_webhooks(dir.path().join("f.db").to_str().unwrap()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn store_on_postgres() {
    let Some(url) = pg_database("store").await else {
        return;
    };
    exercise(&url).await;
    let Some(url) = pg_database("inbound").await else {
        return;
    };
    exercise_inbound(&url).await;
    let Some(url) = pg_database("fallback").await else {
        return;
    };
    exercise_fallback_and_webhooks(&url).await;
}

/// PostgreSQL takes event numbers before commit: an event that becomes visible below
/// the cursor (its transaction was still running when the log was read) still goes
/// out, once, on the next read.
#[tokio::test(flavor = "multi_thread")]
async fn the_webhook_cursor_sees_late_commits_on_postgres() {
    use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
    use hermod_core::webhook::*;
    let Some(url) = pg_database("late").await else {
        return;
    };
    let store = open(&url).await;
    let t = store.create_api_key("acme", "lk1", "h").await.unwrap();
    let ep = WebhookEndpoint {
        id: hermod_core::EndpointId::generate().to_string(),
        tenant_id: t.clone(),
        url: "http://127.0.0.1:9/hook".into(),
        events: vec!["*".into()],
        created_at: now_ms(),
    };
    store.create_endpoint(&ep, "whsec_x").await.unwrap();
    let cursor = store
        .claim_cursor("w", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    let insert = |kind: &str| {
        format!(
            "INSERT INTO events (message_id, tenant_id, kind, status, at) \
             VALUES ('msg_x', '{t}', '{kind}', 'sent', 0)"
        )
    };
    let mut a = AsyncPgConnection::establish(&url).await.unwrap();
    let mut b = AsyncPgConnection::establish(&url).await.unwrap();
    // A takes the lower number and commits after B.
    a.batch_execute("BEGIN").await.unwrap();
    a.batch_execute(&insert("message.sent")).await.unwrap();
    b.batch_execute(&insert("message.delivered")).await.unwrap();
    let first = store.events_after(&cursor, 100).await.unwrap();
    let kinds: Vec<&str> = first.events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        kinds,
        vec!["message.delivered"],
        "A's event is not visible yet"
    );
    assert!(!first.next.pending.is_empty(), "A is still running");
    a.batch_execute("COMMIT").await.unwrap();
    let second = store.events_after(&first.next, 100).await.unwrap();
    let kinds: Vec<&str> = second
        .events
        .iter()
        .map(|e| e.event_type.as_str())
        .collect();
    assert_eq!(kinds, vec!["message.sent"], "A's event, below the cursor");
    assert!(second.events[0].seq < first.next.seq);
    let third = store.events_after(&second.next, 100).await.unwrap();
    assert!(
        third.events.is_empty(),
        "each event once: {:?}",
        third.events
    );
    let n: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
        "(SELECT count(*) FROM events WHERE tx IS NOT NULL)",
    ))
    .get_result(&mut a)
    .await
    .unwrap();
    assert_eq!(n, 2, "every event carries its transaction");
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

/// A submit outcome and the receipt that overtook it, recorded side by side by two
/// workers (the receipt resolving the attempt as in doubt, or adopted as an early
/// receipt): whichever commits last, the message ends delivered. Before attempts were
/// locked, the outcome's commit set a delivered attempt back to `sent` for good.
#[tokio::test(flavor = "multi_thread")]
async fn an_outcome_and_its_receipt_recorded_side_by_side_end_delivered_on_postgres() {
    let Some(url) = pg_database("race").await else {
        return;
    };
    Db::migrate(&url).await.unwrap();
    let store = std::sync::Arc::new(SqlStore::new(
        Db::open(&url, 8).await.unwrap(),
        crate::compliance::test_vault(),
    ));
    let t = store.create_api_key("acme", "rk1", "h").await.unwrap();
    let n = 120;
    let msgs: Vec<NewMessage> = (0..n)
        .map(|i| NewMessage {
            to: Msisdn::parse(&format!("+4479111{i:05}")).unwrap(),
            ..new_message(&t, "race")
        })
        .collect();
    store.accept(&t, &msgs, None).await.unwrap();
    let ids: Vec<MessageId> = msgs.iter().map(|m| m.id.clone()).collect();
    let planned = store.plan_attempts(&ids, &[]).await.unwrap();
    let aids: Vec<_> = planned.iter().map(|p| p.0.clone()).collect();
    let outs: Vec<Outgoing> = store
        .claim_attempts(&aids)
        .await
        .unwrap()
        .into_iter()
        .map(|c| match c {
            Claim::Claimed(o) => o,
            other => panic!("expected a claim, got {other:?}"),
        })
        .collect();
    // Every receipt came in before its outcome: kept as orphans.
    let receipts: Vec<Receipt> = outs
        .iter()
        .enumerate()
        .map(|(i, o)| Receipt {
            channel: ChannelKind::Sms,
            provider_id: format!("race-{i}"),
            status: Status::Delivered,
            raw_status: "DELIVRD".into(),
            error_code: None,
            user_ref: Some(o.user_ref),
            recipient: Some(o.to.digits().to_owned()),
            echo: None,
            event: None,
        })
        .collect();
    store.apply_receipts(&receipts).await.unwrap();
    let work = outs.iter().enumerate().flat_map(|(i, o)| {
        let (a, b) = (store.clone(), store.clone());
        let result = SendResult {
            attempt_id: o.attempt_id.clone(),
            outcome: SendOutcome::Sent {
                provider_ids: vec![format!("race-{i}")],
                raw_status: "ESME_ROK".into(),
            },
        };
        let o = o.clone();
        let outcome: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> =
            Box::pin(async move { a.record_sends(&[result]).await.unwrap() });
        let resolve: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> =
            Box::pin(async move {
                b.resolve_in_doubt(&o, &InDoubtLook::default())
                    .await
                    .unwrap();
            });
        [outcome, resolve]
    });
    futures::future::join_all(work.map(tokio::spawn)).await;
    let mut stuck = Vec::new();
    for m in &msgs {
        let v = store.get_message(&t, &m.id).await.unwrap().unwrap();
        if v.message.status != Status::Delivered || v.attempts[0].status != Status::Delivered {
            stuck.push((v.message.status, v.attempts[0].status));
        }
    }
    assert!(
        stuck.is_empty(),
        "{} of {n} not delivered: {stuck:?}",
        stuck.len()
    );
}

/// `SELECT ssl` of this connection's backend.
async fn on_tls(c: &mut diesel_async::AsyncPgConnection) -> bool {
    use diesel_async::RunQueryDsl;
    diesel::select(diesel::dsl::sql::<diesel::sql_types::Bool>(
        "(SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid())",
    ))
    .get_result(c)
    .await
    .unwrap()
}

/// PostgreSQL over rustls: `sslmode` and `sslrootcert` are honoured against the local
/// server, with its own certificate as the root (Debian's server has one, for
/// `localhost`); a root that did not sign it, or a name it is not for, is refused.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_over_tls_honours_sslmode_and_sslrootcert() {
    use diesel_async::RunQueryDsl;
    use hermod_store::pg_tls::connect;
    let Some(url) = pg_database("tls").await else {
        return;
    };
    let mut plain = connect(&url).await.unwrap();
    assert!(
        !on_tls(&mut plain).await,
        "no sslmode: plain, as documented"
    );
    #[derive(diesel::QueryableByName)]
    struct Setting {
        #[diesel(sql_type = diesel::sql_types::Text)]
        v: String,
    }
    let show =
        |name: &'static str| diesel::sql_query(format!("SELECT current_setting('{name}') AS v"));
    let ssl: Setting = show("ssl").get_result(&mut plain).await.unwrap();
    if ssl.v != "on" {
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true"),
            "CI needs PostgreSQL with ssl = on"
        );
        eprintln!("\n!!! SKIPPED postgres_over_tls: the server has ssl = off !!!\n");
        return;
    }
    let cert: Setting = show("ssl_cert_file").get_result(&mut plain).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("server-root.pem");
    std::fs::copy(&cert.v, &root).expect("the server's certificate is readable");
    let with = |u: &str, q: &str| format!("{u}?{q}");
    let root_q = format!("sslrootcert={}", root.display());
    let by_name = url.replacen("127.0.0.1", "localhost", 1);

    // verify-full with the name on the certificate: encrypted, and the whole store
    // works over it (migrations, the pool).
    let full = with(&by_name, &format!("sslmode=verify-full&{root_q}"));
    let mut c = connect(&full).await.unwrap();
    assert!(on_tls(&mut c).await);
    Db::migrate(&full).await.unwrap();
    let store = SqlStore::new(
        Db::open(&full, 2).await.unwrap(),
        crate::compliance::test_vault(),
    );
    store.create_api_key("tls", "ktls", "h").await.unwrap();
    assert!(store.api_key("ktls").await.unwrap().is_some());
    // verify-ca checks the chain only: an address the certificate does not name is fine.
    let mut c = connect(&with(&url, &format!("sslmode=verify-ca&{root_q}")))
        .await
        .unwrap();
    assert!(on_tls(&mut c).await);
    // require verifies the chain too (against sslrootcert).
    let mut c = connect(&with(&url, &format!("sslmode=require&{root_q}")))
        .await
        .unwrap();
    assert!(on_tls(&mut c).await);
    // prefer: TLS, since the server offers it.
    let mut c = connect(&with(&url, &format!("sslmode=prefer&{root_q}")))
        .await
        .unwrap();
    assert!(on_tls(&mut c).await);

    // Refused: the wrong name, no root for a self-signed server, a root that did not
    // sign it, an unknown mode, a root file that is missing.
    let other_ca = format!("{}/tests/fixtures/tls/ca.pem", env!("CARGO_MANIFEST_DIR"));
    for (u, why) in [
        (with(&url, &format!("sslmode=verify-full&{root_q}")), "name"),
        (with(&url, "sslmode=require"), "webpki roots"),
        (
            with(
                &by_name,
                &format!("sslmode=verify-full&sslrootcert={other_ca}"),
            ),
            "other root",
        ),
        (with(&url, "sslmode=sometimes"), "mode"),
        (
            with(&url, "sslmode=verify-ca&sslrootcert=/nonexistent.pem"),
            "file",
        ),
    ] {
        assert!(connect(&u).await.is_err(), "{why}: {u}");
    }
    assert!(Db::open(&with(&url, "sslmode=require"), 1).await.is_err());
}

/// SQLite commits are on disk before they are answered (`synchronous=FULL`) unless the
/// operator opts out (`sqlite_synchronous = "normal"`).
#[tokio::test(flavor = "multi_thread")]
async fn sqlite_is_synchronous_full_unless_asked_otherwise() {
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Sync {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        synchronous: i32,
    }
    for (mode, want) in [
        (hermod_store::Synchronous::Full, 2),
        (hermod_store::Synchronous::Normal, 1),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("h.db").to_string_lossy().into_owned();
        Db::migrate(&url).await.unwrap();
        let db = Db::open_with(&url, 2, mode).await.unwrap();
        let Db::Lite { pool, .. } = &db else {
            panic!("a SQLite pool")
        };
        let mut c = pool.get().await.unwrap();
        let got: Sync = diesel::sql_query("PRAGMA synchronous")
            .get_result(&mut *c)
            .await
            .unwrap();
        assert_eq!(got.synchronous, want, "{mode:?}");
    }
}

/// Two processes writing one SQLite file (a `hermod keys create` beside a running
/// server): a write transaction that reads first, while the other process commits, and
/// then writes, must wait its turn, not fail "database is locked" (a deferred BEGIN
/// fails its upgrade at once with SQLITE_BUSY_SNAPSHOT; Hermod begins IMMEDIATE).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_writing_one_sqlite_file_wait_for_each_other() {
    use diesel_async::RunQueryDsl;
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("h.db").to_string_lossy().into_owned();
    let server = open(&url).await;
    let cli = open(&url).await;
    server.create_api_key("first", "k1", "h1").await.unwrap();
    let (read, has_read) = tokio::sync::oneshot::channel::<()>();
    let other = tokio::spawn(async move {
        has_read.await.unwrap();
        // Commits while the server's transaction is between its read and its write.
        cli.create_api_key("second", "k2", "h2").await
    });
    let db = server.db().clone();
    let r = async {
        let n = hermod_store::write_tx!(&db, |c| {
            diesel::sql_query("SELECT id FROM tenants")
                .execute(c)
                .await?;
            read.send(()).unwrap();
            std::thread::sleep(Duration::from_millis(500));
            diesel::sql_query("UPDATE tenants SET name = name || '!' WHERE name = 'first'")
                .execute(c)
                .await
        })
        .map_err(hermod_store::unavailable)?;
        Ok::<usize, hermod_core::ports::PortError>(n)
    }
    .await;
    assert_eq!(r.unwrap(), 1, "the server's read-then-write transaction");
    other
        .await
        .unwrap()
        .expect("the other process's write waited and succeeded");
    assert!(server.tenant_id_by_name("first!").await.unwrap().is_some());
    assert!(server.tenant_id_by_name("second").await.unwrap().is_some());
}

/// Idempotency records older than their retention go, in bounded batches; newer ones
/// stay. On both backends.
async fn exercise_idempotency_retention(url: &str) {
    use diesel::{ExpressionMethods, QueryDsl};
    use diesel_async::RunQueryDsl;
    use hermod_store::schema::idempotency_keys;
    let store = open(url).await;
    let t = store.create_api_key("retention", "kr", "h").await.unwrap();
    for key in ["old-1", "old-2", "old-3", "new-1"] {
        let rec = IdempotencyRecord {
            key: key.into(),
            request_hash: "h".into(),
            status_code: 202,
            body: "{}".into(),
        };
        store
            .accept(&t, &[new_message(&t, key)], Some(&rec))
            .await
            .unwrap();
    }
    let eight_days_ago = now_ms() - 8 * 86_400_000;
    let old = ["old-1", "old-2", "old-3"];
    with_test_conn!(store, |c| {
        diesel::update(idempotency_keys::table.filter(idempotency_keys::key.eq_any(old)))
            .set(idempotency_keys::created_at.eq(eight_days_ago))
            .execute(c)
            .await
            .unwrap()
    });
    let week = Duration::from_secs(7 * 86_400);
    assert_eq!(
        store.purge_idempotency(week, 2).await.unwrap(),
        2,
        "one batch"
    );
    assert_eq!(store.purge_idempotency(week, 2).await.unwrap(), 1);
    assert_eq!(store.purge_idempotency(week, 2).await.unwrap(), 0);
    for key in old {
        assert!(store.idempotency(&t, key).await.unwrap().is_none(), "{key}");
    }
    assert!(store.idempotency(&t, "new-1").await.unwrap().is_some());

    // Provider event markers: a month old goes, a fresh one stays (still a duplicate).
    use hermod_store::schema::webhook_events;
    let marker = |id: &str| ProviderEvent {
        source: "rbm:a".into(),
        id: id.into(),
    };
    for id in ["E-old-1", "E-old-2", "E-new"] {
        assert!(store.first_seen_event(&marker(id)).await.unwrap());
    }
    let month_ago = now_ms() - 31 * 86_400_000;
    let old_events = ["E-old-1", "E-old-2"];
    let age =
        diesel::update(webhook_events::table.filter(webhook_events::event_id.eq_any(old_events)))
            .set(webhook_events::received_at.eq(month_ago));
    with_test_conn!(store, |c| age.execute(c).await.unwrap());
    let days30 = Duration::from_secs(30 * 86_400);
    assert_eq!(store.purge_event_markers(days30, 1).await.unwrap(), 1);
    assert_eq!(store.purge_event_markers(days30, 10).await.unwrap(), 1);
    assert_eq!(store.purge_event_markers(days30, 10).await.unwrap(), 0);
    assert!(!store.first_seen_event(&marker("E-new")).await.unwrap());
    assert!(store.first_seen_event(&marker("E-old-1")).await.unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn idempotency_records_go_after_their_retention() {
    let dir = tempfile::tempdir().unwrap();
    exercise_idempotency_retention(&dir.path().join("r.db").to_string_lossy()).await;
    if let Some(pg) = pg_database("retention").await {
        exercise_idempotency_retention(&pg).await;
    }
}

/// How many kept (orphan) receipts have this provider id.
async fn orphans_of(store: &SqlStore, provider_id: &str) -> i64 {
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    use hermod_store::schema::orphan_receipts;
    let q = orphan_receipts::table
        .filter(orphan_receipts::provider_id.eq(provider_id.to_owned()))
        .count();
    with_test_conn!(store, |c| q.get_result(c).await.unwrap())
}

/// A receipt sink whose first delivery never ends (the process dies there), then
/// stores like the real batcher.
struct DiesOnce {
    store: std::sync::Arc<SqlStore>,
    failed: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl hermod_core::ports::ReceiptSink for DiesOnce {
    async fn deliver(&self, receipt: Receipt) -> bool {
        if !self.failed.swap(true, std::sync::atomic::Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        self.store.apply_receipts(&[receipt]).await.is_ok()
    }
}

/// The RBM webhook writes an event's marker only with its effect: when the process
/// dies before the event is applied, RBM's retry is applied, not taken for a duplicate.
#[tokio::test(flavor = "multi_thread")]
async fn an_rbm_event_cut_short_before_it_was_applied_is_applied_when_retried() {
    use base64::Engine;
    use hermod_core::ports::WebhookIngress;
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(open(dir.path().join("w.db").to_str().unwrap()).await);
    let cfg: hermod_channels::rcs::RcsConfig = serde_json::from_value(serde_json::json!({
        "agents": [{"name": "a", "agent_id": "a@rbm.goog", "client_token": "tok"}]
    }))
    .unwrap();
    let sink = std::sync::Arc::new(DiesOnce {
        store: store.clone(),
        failed: Default::default(),
    });
    let hook =
        hermod_channels::rcs::RbmWebhook::new(&cfg, store.clone(), store.clone(), sink, None, None);
    let mid = "0190a1b2-1111-7e8f-9a0b-1c2d3e4f5a6b";
    let event = serde_json::json!({"senderPhoneNumber": "+447911123456", "eventType": "DELIVERED",
        "eventId": "EV-1", "messageId": mid, "agentId": "a@rbm.goog"});
    let data = base64::engine::general_purpose::STANDARD.encode(event.to_string());
    let sig = hermod_crypto::rbm::sign_webhook("tok", event.to_string().as_bytes());
    let body = serde_json::json!({"message": {"data": data, "messageId": "1"}}).to_string();
    let post = || hook.handle("a", Some(&sig), body.as_bytes());
    let cut = tokio::time::timeout(Duration::from_millis(300), post()).await;
    assert!(cut.is_err(), "dies while applying");
    assert_eq!(orphans_of(&store, &format!("rbm:{mid}")).await, 0);
    let r = post().await;
    assert_eq!(
        (r.status, r.body.contains("\"ok\"")),
        (200, true),
        "{}",
        r.body
    );
    assert_eq!(orphans_of(&store, &format!("rbm:{mid}")).await, 1);
    let r = post().await;
    assert_eq!(
        (r.status, r.body.contains("duplicate")),
        (200, true),
        "{}",
        r.body
    );
    assert_eq!(orphans_of(&store, &format!("rbm:{mid}")).await, 1);
}

/// Rows the database would otherwise keep for ever go in the retention sweep, and
/// space they leave is used again: over rounds of traffic that leaves only such rows
/// (idempotency records, provider-event markers, kept receipts), the database stops
/// growing after the first round.
async fn exercise_bounded_growth(url: &str) -> Vec<i64> {
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    use hermod_store::schema::{idempotency_keys, orphan_receipts, webhook_events};
    let store = open(url).await;
    let t = store.create_api_key("growth", "kg", "h").await.unwrap();
    let mut sizes = Vec::new();
    for round in 0..5 {
        for i in 0..200 {
            let rec = IdempotencyRecord {
                key: format!("r{round}-{i}"),
                request_hash: "h".into(),
                status_code: 202,
                body: format!("{{\"id\":\"{round}-{i}\",\"pad\":\"{}\"}}", "x".repeat(200)),
            };
            store.accept(&t, &[], Some(&rec)).await.unwrap();
        }
        let markers: Vec<ProviderEvent> = (0..200)
            .map(|i| ProviderEvent {
                source: "rbm:a".into(),
                id: format!("E-{round}-{i}"),
            })
            .collect();
        for m in &markers {
            assert!(store.first_seen_event(m).await.unwrap());
        }
        let kept: Vec<Receipt> = (0..200)
            .map(|i| Receipt {
                channel: ChannelKind::Sms,
                provider_id: format!("smsc-x:{round}{i:04}"),
                status: Status::Delivered,
                raw_status: "DELIVRD".into(),
                error_code: None,
                user_ref: None,
                recipient: Some("447911123456".into()),
                echo: Some(SubmitEcho {
                    submitted_at: Some(now_ms()),
                    text_key: "Yourparcelisonitsway".into(),
                }),
                event: None,
            })
            .collect();
        store.apply_receipts(&kept).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        // The sweep as the retention task runs it, with everything past its retention.
        let mut total = 0;
        for purge in 0..3 {
            loop {
                let n = match purge {
                    0 => store.purge_idempotency(Duration::ZERO, 64).await,
                    1 => store.purge_event_markers(Duration::ZERO, 64).await,
                    _ => store.purge_orphan_receipts(Duration::ZERO, 64).await,
                }
                .unwrap();
                total += n;
                if n < 64 {
                    break;
                }
            }
        }
        assert_eq!(total, 600, "round {round}: every row goes");
        let counts: (i64, i64, i64) = with_test_conn!(store, |c| (
            idempotency_keys::table.count().get_result(c).await.unwrap(),
            webhook_events::table.count().get_result(c).await.unwrap(),
            orphan_receipts::table.count().get_result(c).await.unwrap(),
        ));
        assert_eq!(counts, (0, 0, 0), "round {round}");
        if let Db::Lite { pool, .. } = store.db() {
            #[derive(QueryableByName)]
            struct Pages {
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                page_count: i64,
            }
            let mut c = pool.get().await.unwrap();
            let p: Pages = diesel::sql_query("PRAGMA page_count")
                .get_result(&mut c)
                .await
                .unwrap();
            sizes.push(p.page_count);
        }
    }
    sizes
}

#[tokio::test(flavor = "multi_thread")]
async fn the_database_stops_growing_over_repeated_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let pages = exercise_bounded_growth(&dir.path().join("g.db").to_string_lossy()).await;
    assert!(
        pages[1..].iter().all(|p| *p <= pages[1]),
        "pages after each round: {pages:?}"
    );
    if let Some(pg) = pg_database("growth").await {
        exercise_bounded_growth(&pg).await;
    }
}

/// A log delivery read before its subject was erased and kept as a row after (its POST
/// failed, or it waited behind a busy endpoint) would carry the erased metadata: the
/// cursor's commit blanks and ends it.
async fn exercise_rows_after_an_erasure(url: &str) {
    use hermod_core::audit::AuditLog as _;
    use hermod_core::webhook::*;
    let store = open(url).await;
    let t = store.create_api_key("erased", "ek1", "h").await.unwrap();
    let mut m = new_message(&t, "EraseMe5511");
    m.metadata = Some(serde_json::json!({"customer": "Meta7788"}));
    let id = m.id.to_string();
    store.accept(&t, &[m], None).await.unwrap();
    let cursor = store
        .claim_cursor("eraser", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    // The stage read the event (with the metadata) before the erasure ...
    let payload = serde_json::json!({"type": "message.queued", "message_id": id,
                                     "metadata": {"customer": "Meta7788"}})
    .to_string();
    store
        .erase_subject(t.as_str(), "+447911123456", &[])
        .await
        .unwrap();
    // ... and keeps it as a row after.
    let retry = RetryDelivery {
        tenant_id: t.to_string(),
        endpoint_id: None,
        url: "http://127.0.0.1:9/hook".into(),
        event_type: "message.queued".into(),
        message_id: Some(id.clone()),
        payload,
        attempts: 1,
        last_status: Some(500),
        last_error: Some("http_500".into()),
        retry_in: Duration::ZERO,
    };
    assert!(
        store
            .advance_cursor("eraser", Duration::from_secs(30), &cursor, &[retry], &[])
            .await
            .unwrap()
    );
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    use hermod_store::schema::webhook_deliveries as d;
    let rows: Vec<(String, String, Option<String>)> = with_test_conn!(store, |c| {
        d::table
            .filter(d::message_id.eq(&id))
            .select((d::status, d::payload, d::last_error))
            .load(c)
            .await
            .unwrap()
    });
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, "failed");
    assert!(!rows[0].1.contains("Meta7788"), "{rows:?}");
    assert_eq!(rows[0].2.as_deref(), Some("subject_erased"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delivery_read_before_an_erasure_is_blanked_when_it_becomes_a_row() {
    let dir = tempfile::tempdir().unwrap();
    exercise_rows_after_an_erasure(&dir.path().join("e.db").to_string_lossy()).await;
    if let Some(pg) = pg_database("erased_rows").await {
        exercise_rows_after_an_erasure(&pg).await;
    }
}

/// Receipts of one provider id (the app's or RBM's DELIVERED, then READ) each count, in
/// the order they came, however they meet their submit response: both kept before it
/// (the READ was once dropped as a second receipt of a kept id, the message ending
/// `delivered`), one kept beside its commit (PostgreSQL: neither transaction saw the
/// other; the READ then went first and the DELIVERED came after it), or both in one
/// batch (folded into one READ event).
async fn exercise_receipts_of_one_id_in_order(url: &str) {
    let store = open(url).await;
    let t = store.create_api_key("acme", "ord", "h").await.unwrap();
    let msgs: Vec<NewMessage> = (0..3).map(|_| new_message(&t, "order")).collect();
    store.accept(&t, &msgs, None).await.unwrap();
    let ids: Vec<MessageId> = msgs.iter().map(|m| m.id.clone()).collect();
    let planned = store.plan_attempts(&ids, &[]).await.unwrap();
    let aids: Vec<_> = planned.iter().map(|p| p.0.clone()).collect();
    let outs: Vec<Outgoing> = store
        .claim_attempts(&aids)
        .await
        .unwrap()
        .into_iter()
        .map(|c| match c {
            Claim::Claimed(o) => o,
            other => panic!("expected a claim, got {other:?}"),
        })
        .collect();
    let receipt = |pid: &str, status: Status| Receipt {
        channel: ChannelKind::App,
        provider_id: pid.to_owned(),
        status,
        raw_status: status.as_str().to_uppercase(),
        error_code: None,
        user_ref: None,
        recipient: None,
        echo: None,
        event: None,
    };
    let sent = |o: &Outgoing, pid: &str| SendResult {
        attempt_id: o.attempt_id.clone(),
        outcome: SendOutcome::Sent {
            provider_ids: vec![pid.to_owned()],
            raw_status: "OK".into(),
        },
    };
    let ends = |pid: &'static str, id: &MessageId| {
        let (store, t, id) = (&store, &t, id.clone());
        async move {
            let v = store.get_message(t, &id).await.unwrap().unwrap();
            assert_eq!(v.message.status, Status::Read, "{pid}");
            let kinds: Vec<&str> = v.events.iter().map(|e| e.kind.as_str()).collect();
            assert!(
                kinds.ends_with(&["message.sent", "message.delivered", "message.read"]),
                "{pid}: {kinds:?}"
            );
            assert_eq!(orphans_of(store, pid).await, 0, "{pid}");
        }
    };
    // Both before the submit response.
    let mut order: Vec<(&str, &Outgoing)> = vec![("ord-a", &outs[0])];
    for st in [Status::Delivered, Status::Read] {
        store.apply_receipts(&[receipt("ord-a", st)]).await.unwrap();
    }
    assert_eq!(orphans_of(&store, "ord-a").await, 2);
    store
        .record_sends(&[sent(order[0].1, "ord-a")])
        .await
        .unwrap();
    ends("ord-a", &ids[0]).await;
    // The DELIVERED kept beside the commit of the submit response, as a race leaves it.
    order.push(("ord-b", &outs[1]));
    store
        .record_sends(&[sent(order[1].1, "ord-b")])
        .await
        .unwrap();
    let now = now_ms();
    with_test_conn!(store, |c| {
        diesel_async::RunQueryDsl::execute(
            diesel::sql_query(format!(
                "INSERT INTO orphan_receipts (provider_id, status, raw_status, received_at) \
                 VALUES ('ord-b', 'delivered', 'DELIVERED', {now})"
            )),
            c,
        )
        .await
        .unwrap()
    });
    store
        .apply_receipts(&[receipt("ord-b", Status::Read)])
        .await
        .unwrap();
    ends("ord-b", &ids[1]).await;
    // Both in one batch.
    store
        .record_sends(&[sent(&outs[2], "ord-c")])
        .await
        .unwrap();
    store
        .apply_receipts(&[
            receipt("ord-c", Status::Delivered),
            receipt("ord-c", Status::Read),
        ])
        .await
        .unwrap();
    ends("ord-c", &ids[2]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn receipts_of_one_provider_id_each_count_in_the_order_they_came() {
    let dir = tempfile::tempdir().unwrap();
    exercise_receipts_of_one_id_in_order(dir.path().join("o.db").to_str().unwrap()).await;
    if let Some(pg) = pg_database("receipt_order").await {
        exercise_receipts_of_one_id_in_order(&pg).await;
    }
}

/// Tenants, keys with roles, console sessions and the overview's figures.
async fn exercise_console(url: &str) {
    use hermod_core::insights::Insights as _;
    use hermod_core::tenant::*;
    let store = open(url).await;
    let patch = TenantPatch {
        limits: Some(TenantLimits {
            rate_limit_per_sec: Some(5.0),
            daily_quota: Some(100),
        }),
        retention_days: Some(Some(7)),
        ..Default::default()
    };
    let t = store.create_tenant("acme", &patch).await.unwrap();
    assert_eq!(t.limits.daily_quota, Some(100));
    assert_eq!(t.retention_days, Some(7));
    assert!(matches!(
        store.create_tenant("acme", &TenantPatch::default()).await,
        Err(hermod_core::ports::PortError::Conflict(_))
    ));
    let other = store
        .create_tenant("other", &TenantPatch::default())
        .await
        .unwrap();

    // Keys with roles, expiry, last use.
    let key = |id: &str, role| NewApiKey {
        id: id.into(),
        hash: format!("hash-{id}"),
        name: Some(format!("key {id}")),
        role,
        expires_at: Some(now_ms() + 60_000),
    };
    assert!(
        store
            .add_key(&t.id, &key("k-read", Role::Read))
            .await
            .unwrap()
    );
    assert!(
        store
            .add_key(&t.id, &key("k-admin", Role::Admin))
            .await
            .unwrap()
    );
    let auth = store.key_auth("k-read").await.unwrap().unwrap();
    assert_eq!(
        (auth.role, auth.suspended, auth.limits.rate_limit_per_sec),
        (Role::Read, false, Some(5.0))
    );
    assert!(auth.expires_at.is_some());
    store.touch_keys(&[("k-read".into(), 1234)]).await.unwrap();
    let keys = store.list_keys(&t.id).await.unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(
        keys.iter().find(|k| k.id == "k-read").unwrap().last_used_at,
        Some(1234)
    );
    assert!(store.list_keys(&other.id).await.unwrap().is_empty());
    // Another tenant's key is not revoked or rotated through this one.
    assert!(!store.revoke_key(&other.id, "k-read").await.unwrap());
    assert!(
        store
            .rotate_key(&other.id, "k-read", "k-new", "h")
            .await
            .unwrap()
            .is_none()
    );
    let rotated = store
        .rotate_key(&t.id, "k-read", "k-read2", "hash2")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (rotated.role, rotated.name.as_deref()),
        (Role::Read, Some("key k-read"))
    );
    assert!(store.key_auth("k-read").await.unwrap().is_none());
    assert_eq!(
        store.key_auth("k-read2").await.unwrap().unwrap().hash,
        "hash2"
    );

    // Sessions: an operator's and a tenant's; revoking the key ends the tenant's.
    let now = now_ms();
    for (id, principal) in [
        (
            "s-op",
            Principal::Operator {
                token_hash: "th".into(),
            },
        ),
        (
            "s-t",
            Principal::Tenant {
                tenant: t.id.clone(),
                key_id: "k-read2".into(),
                role: Role::Read,
            },
        ),
    ] {
        store
            .create_session(&ConsoleSession {
                id: id.into(),
                principal,
                csrf: "c".into(),
                created_at: now,
                expires_at: now + 60_000,
            })
            .await
            .unwrap();
    }
    store
        .create_session(&ConsoleSession {
            id: "s-old".into(),
            principal: Principal::Operator {
                token_hash: "th".into(),
            },
            csrf: "c".into(),
            created_at: now - 10,
            expires_at: now - 5,
        })
        .await
        .unwrap();
    assert!(store.session("s-old").await.unwrap().is_none(), "expired");
    assert_eq!(
        store.session("s-op").await.unwrap().unwrap().principal,
        Principal::Operator {
            token_hash: "th".into()
        }
    );
    assert!(matches!(
        store.session("s-t").await.unwrap().unwrap().principal,
        Principal::Tenant {
            role: Role::Read,
            ..
        }
    ));
    assert!(store.revoke_key(&t.id, "k-read2").await.unwrap());
    assert!(
        store.session("s-t").await.unwrap().is_none(),
        "the key's sessions end with it"
    );
    store.end_session("s-op").await.unwrap();
    assert!(store.session("s-op").await.unwrap().is_none());

    // Suspend, resume, delete.
    let s = store
        .update_tenant(
            &t.id,
            &TenantPatch {
                suspended: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert!(s.suspended_at.is_some());
    assert!(store.key_auth("k-admin").await.unwrap().unwrap().suspended);
    store
        .update_tenant(
            &t.id,
            &TenantPatch {
                suspended: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(!store.key_auth("k-admin").await.unwrap().unwrap().suspended);

    // Messages: the quota's count, the overview, the search.
    let mut batch: Vec<NewMessage> = (0..6)
        .map(|i| new_message(&t.id, &format!("m{i}")))
        .collect();
    batch[0].metadata = Some(serde_json::json!({"order_1%": true}));
    batch[1].metadata = Some(serde_json::json!({"orderX1y": true}));
    store.accept(&t.id, &batch, None).await.unwrap();
    store
        .accept(&other.id, &[new_message(&other.id, "theirs")], None)
        .await
        .unwrap();
    assert_eq!(store.messages_since(&t.id, now - 1000).await.unwrap(), 6);
    assert_eq!(
        store
            .messages_since(&t.id, now_ms() + 3_600_000)
            .await
            .unwrap(),
        0
    );
    let o = store.overview(Some(&t.id), now_ms()).await.unwrap();
    assert_eq!((o.messages, o.sampled, o.hours.len()), (6, 6, 24));
    assert_eq!(
        o.hours.last().unwrap().by_status,
        vec![("accepted".to_owned(), 6)]
    );
    assert_eq!(o.by_channel, vec![("none".to_owned(), 6)], "no attempt yet");
    assert_eq!(
        o.hours.last().unwrap().by_channel,
        vec![("none".to_owned(), 6)],
        "per hour too"
    );
    let all = store.overview(None, now_ms()).await.unwrap();
    assert_eq!(all.messages, 7, "the operator's: every tenant");
    let search = |key: &str| ListFilter {
        metadata_key: Some(key.into()),
        limit: 50,
        ..Default::default()
    };
    let found = store
        .list_messages(&t.id, &search("order_1%"))
        .await
        .unwrap();
    assert_eq!(
        found.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(),
        ["m0"],
        "LIKE wildcards are literal"
    );
    assert!(
        store
            .list_messages(&other.id, &search("order_1%"))
            .await
            .unwrap()
            .is_empty()
    );
    let until = ListFilter {
        until: Some(now - 60_000),
        limit: 50,
        ..Default::default()
    };
    assert!(store.list_messages(&t.id, &until).await.unwrap().is_empty());
    let sms = ListFilter {
        channel: Some("sms".into()),
        limit: 50,
        ..Default::default()
    };
    assert!(
        store.list_messages(&t.id, &sms).await.unwrap().is_empty(),
        "no attempt on sms yet"
    );

    assert!(store.delete_tenant(&t.id).await.unwrap());
    assert!(!store.delete_tenant(&t.id).await.unwrap());
    assert!(store.key_auth("k-admin").await.unwrap().is_none());
    assert!(store.tenant(&t.id).await.unwrap().is_none());
    assert_eq!(store.list_tenants().await.unwrap().len(), 1);
    store
        .create_tenant("acme", &TenantPatch::default())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn console_and_admin_records_on_sqlite_and_postgres() {
    let dir = tempfile::tempdir().unwrap();
    exercise_console(&dir.path().join("c.db").to_string_lossy()).await;
    if let Some(pg) = pg_database("console").await {
        exercise_console(&pg).await;
    }
}
