//! The RabbitMQ queue backend against the real broker, and the embedded queue's
//! dead-letter handling.

use std::time::Duration;

use hermod_core::model::Job;
use hermod_core::ports::Queue;
use hermod_queue::{RabbitQueue, RabbitSettings, SqlQueue};
use tokio_util::sync::CancellationToken;

use crate::support::amqp;

fn job(i: usize) -> Job {
    Job::DispatchV1 {
        message_id: format!("msg_{i}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rabbitmq_confirms_acks_delays_and_dead_letters() {
    let _broker = crate::support::BROKER.read().await;
    let Some((url, prefix)) = amqp("queue").await else {
        return;
    };
    let cancel = CancellationToken::new();
    let q = RabbitQueue::connect(
        RabbitSettings {
            url: url.clone(),
            prefix: prefix.clone(),
            prefetch: 50,
            max_deliveries: 3,
            expires: Some(Duration::from_secs(600)),
        },
        cancel.clone(),
    )
    .await
    .unwrap();
    let jobs: Vec<Job> = (0..20).map(job).collect();
    q.publish("dispatch", &jobs).await.unwrap();
    let mut got = Vec::new();
    while got.len() < 20 {
        let batch = q
            .receive("dispatch", 50, Duration::from_secs(5))
            .await
            .unwrap();
        assert!(!batch.is_empty(), "jobs arrive");
        got.extend(batch);
    }
    let mut ids: Vec<Job> = got.iter().map(|d| d.job.clone()).collect();
    ids.sort_by_key(|j| format!("{j:?}"));
    let mut want = jobs.clone();
    want.sort_by_key(|j| format!("{j:?}"));
    assert_eq!(ids, want);
    assert!(got.iter().all(|d| d.deliveries == 1));
    // Ack 19; retry one after 1 s: it comes back with its delivery count.
    let tags: Vec<i64> = got[1..].iter().map(|d| d.tag).collect();
    q.ack("dispatch", &tags).await.unwrap();
    let started = std::time::Instant::now();
    q.retry("dispatch", &[(got[0].tag, Duration::from_millis(800))])
        .await
        .unwrap();
    let again = q
        .receive("dispatch", 10, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "parked for the delay step"
    );
    assert_eq!(
        (again[0].job.clone(), again[0].deliveries),
        (got[0].job.clone(), 2)
    );
    // Two more retries: the fourth delivery exceeds max_deliveries → dead-letter queue.
    q.retry("dispatch", &[(again[0].tag, Duration::ZERO)])
        .await
        .unwrap();
    let third = q
        .receive("dispatch", 10, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(third[0].deliveries, 3);
    q.retry("dispatch", &[(third[0].tag, Duration::ZERO)])
        .await
        .unwrap();
    assert!(
        q.receive("dispatch", 10, Duration::from_secs(3))
            .await
            .unwrap()
            .is_empty()
    );
    let dead = q.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(
        (dead[0].queue.as_str(), dead[0].deliveries),
        ("dispatch", 4)
    );
    assert!(dead[0].payload.contains("msg_0"));
    // Peeking leaves it there.
    assert_eq!(q.dead_letters(10).await.unwrap().len(), 1);
    assert_eq!(q.depth("dispatch").await.unwrap(), 0);

    // Unacknowledged jobs of a consumer that goes away are handed out again.
    q.publish("dispatch", &[job(99)]).await.unwrap();
    let d = q
        .receive("dispatch", 10, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(d.len(), 1);
    cancel.cancel();
    drop(q);
    let cancel2 = CancellationToken::new();
    let q2 = RabbitQueue::connect(
        RabbitSettings {
            url,
            prefix,
            prefetch: 50,
            max_deliveries: 3,
            expires: Some(Duration::from_secs(600)),
        },
        cancel2.clone(),
    )
    .await
    .unwrap();
    let d = q2
        .receive("dispatch", 10, Duration::from_secs(15))
        .await
        .unwrap();
    assert_eq!(d.len(), 1, "redelivered after the first consumer went away");
    assert_eq!(d[0].job, job(99));
    assert_eq!(d[0].deliveries, 2, "the broker's redelivery counts");
    q2.ack("dispatch", &[d[0].tag]).await.unwrap();
    cancel2.cancel();
}

#[tokio::test(flavor = "multi_thread")]
async fn embedded_queue_moves_poison_jobs_aside() {
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("q.db").to_string_lossy().into_owned();
    hermod_store::Db::migrate(&url).await.unwrap();
    let db = hermod_store::Db::open(&url, 2).await.unwrap();
    let q = SqlQueue::new(db, Duration::from_secs(60)).with_max_deliveries(2);
    q.publish("dispatch", &[job(1)]).await.unwrap();
    for n in 1..=2 {
        let d = q
            .receive("dispatch", 10, Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(d[0].deliveries, n);
        q.retry("dispatch", &[(d[0].tag, Duration::ZERO)])
            .await
            .unwrap();
    }
    assert!(
        q.receive("dispatch", 10, Duration::from_millis(200))
            .await
            .unwrap()
            .is_empty()
    );
    let dead = q.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].queue.as_str(), dead[0].deliveries),
        ("dispatch", 3)
    );
    assert_eq!(q.depth("dispatch").await.unwrap(), 0);
}
