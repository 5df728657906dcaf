//! The RabbitMQ queue backend against the real broker, and the embedded queue's
//! dead-letter handling.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use hermod_core::model::Job;
use hermod_core::ports::Queue;
use hermod_queue::{EmbeddedQueue, RabbitQueue, RabbitSettings};
use tokio_util::sync::CancellationToken;

use crate::support::amqp;

/// A RabbitMQ queue of a test's own prefix; its queues expire ten minutes after use.
async fn rabbit(
    url: &str,
    prefix: &str,
    prefetch: u16,
    max_deliveries: i32,
    cancel: &CancellationToken,
) -> Arc<RabbitQueue> {
    RabbitQueue::connect(
        RabbitSettings {
            url: url.to_owned(),
            prefix: prefix.to_owned(),
            prefetch,
            max_deliveries,
            expires: Some(Duration::from_secs(600)),
        },
        cancel.clone(),
    )
    .await
    .unwrap()
}

fn job(i: usize) -> Job {
    Job::DispatchV1 {
        message_id: format!("msg_{i}"),
        high: false,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rabbitmq_confirms_acks_delays_and_dead_letters() {
    let _broker = crate::support::BROKER.read().await;
    let Some((url, prefix)) = amqp("queue").await else {
        return;
    };
    let cancel = CancellationToken::new();
    let q = rabbit(&url, &prefix, 50, 3, &cancel).await;
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
    let q2 = rabbit(&url, &prefix, 50, 3, &cancel2).await;
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
    let q = embedded(db, Duration::from_secs(60)).with_max_deliveries(2);
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

fn high(i: usize) -> Job {
    Job::SendV1 {
        attempt_id: format!("att_{i}"),
        high: true,
    }
}

/// Publishes 200 bulk jobs, then 3 fast-lane ones: the first receive hands out the
/// fast lane's first, and a retried fast-lane job stays in its lane.
async fn fast_lane_first(q: &dyn Queue) {
    // Consumers start with the first receive (RabbitMQ).
    assert!(
        q.receive("channel.sms", 1, Duration::from_millis(200))
            .await
            .unwrap()
            .is_empty()
    );
    let bulk: Vec<Job> = (0..200).map(job).collect();
    q.publish("channel.sms", &bulk).await.unwrap();
    q.publish("channel.sms", &[high(1), high(2), high(3)])
        .await
        .unwrap();
    // RabbitMQ pushes deliveries to the consumers in the background.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while got
        .iter()
        .filter(|d: &&hermod_core::model::Delivery| d.job.is_high())
        .count()
        < 3
        && std::time::Instant::now() < deadline
    {
        let batch = q
            .receive("channel.sms", 10, Duration::from_secs(2))
            .await
            .unwrap();
        if got.is_empty() {
            assert!(
                batch.first().is_some_and(|d| d.job.is_high()),
                "the fast lane comes first: {:?}",
                batch.first().map(|d| &d.job)
            );
        }
        got.extend(batch);
    }
    let highs: Vec<&hermod_core::model::Delivery> =
        got.iter().filter(|d| d.job.is_high()).collect();
    assert_eq!(highs.len(), 3);
    // Before any bulk job beyond the first batch.
    assert!(
        got.len() <= 20,
        "{} jobs handed out before the fast lane's",
        got.len()
    );
    q.retry("channel.sms", &[(highs[0].tag, Duration::ZERO)])
        .await
        .unwrap();
    let tags: Vec<i64> = got.iter().skip(1).map(|d| d.tag).collect();
    q.ack("channel.sms", &tags).await.unwrap();
    // RabbitMQ parks a retry at least a second (its shortest delay queue).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let again = q
        .receive("channel.sms", 5, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(
        again[0].job.is_high(),
        "a retried fast-lane job keeps its lane"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn fast_lane_jobs_are_handed_out_first_everywhere() {
    // Embedded queue on SQLite, and the outbox on PostgreSQL.
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("q.db").to_string_lossy().into_owned();
    hermod_store::Db::migrate(&url).await.unwrap();
    let q = embedded(
        hermod_store::Db::open(&url, 2).await.unwrap(),
        Duration::from_secs(60),
    );
    fast_lane_first(&q).await;
    if let Some(pg) = crate::support::pg_database("fastlane").await {
        hermod_store::Db::migrate(&pg).await.unwrap();
        let q = embedded(
            hermod_store::Db::open(&pg, 2).await.unwrap(),
            Duration::from_secs(60),
        );
        fast_lane_first(&q).await;
    }
    // RabbitMQ: the `.high` queue is drained first.
    let _broker = crate::support::BROKER.read().await;
    let Some((url, prefix)) = amqp("fastlane").await else {
        return;
    };
    let cancel = CancellationToken::new();
    let q = rabbit(&url, &prefix, 50, 3, &cancel).await;
    fast_lane_first(q.as_ref()).await;
    cancel.cancel();
}

/// The broker's process id of the connection named `hermod {prefix}`.
fn broker_connection(prefix: &str) -> Option<String> {
    let out = std::process::Command::new("rabbitmqctl")
        .args(["list_connections", "-q", "pid", "client_properties"])
        .output()
        .ok()?;
    let name = format!("\"hermod {prefix}\"");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.contains(&name))
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
}

#[tokio::test(flavor = "multi_thread")]
async fn consumers_come_back_after_the_broker_closes_the_connection() {
    let _broker = crate::support::BROKER.read().await;
    let Some((url, prefix)) = amqp("closed").await else {
        return;
    };
    let cancel = CancellationToken::new();
    let q = rabbit(&url, &prefix, 10, 5, &cancel).await;
    // Consumers of both lanes up and idle.
    assert!(
        q.receive("dispatch", 1, Duration::from_millis(300))
            .await
            .unwrap()
            .is_empty()
    );
    let pid = broker_connection(&prefix).unwrap_or_else(|| {
        let all = std::process::Command::new("rabbitmqctl")
            .args(["list_connections", "-q", "pid", "client_properties"])
            .output()
            .unwrap();
        panic!(
            "no connection named after the prefix {prefix}: {}",
            String::from_utf8_lossy(&all.stdout)
        )
    });
    // A clean close from the broker's side (connection.close), as on an internal
    // error: lapin may leave what was in flight pending, so Hermod must notice.
    let closed = std::process::Command::new("rabbitmqctl")
        .args(["close_connection", &pid, "test: closed by the broker"])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(closed.success());
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Publishing reconnects; the consumers must follow and hand the jobs out.
    let mut published = false;
    for _ in 0..20 {
        if q.publish("dispatch", &[job(1), high(2)]).await.is_ok() {
            published = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(published, "publish reconnects");
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    while got.len() < 2 && std::time::Instant::now() < deadline {
        got.extend(
            q.receive("dispatch", 10, Duration::from_secs(1))
                .await
                .unwrap(),
        );
    }
    assert_eq!(got.len(), 2, "both lanes' consumers came back: {got:?}");
    let tags: Vec<i64> = got.iter().map(|d| d.tag).collect();
    q.ack("dispatch", &tags).await.unwrap();
    cancel.cancel();
}

/// A TCP relay to the broker that can strand the connections it carries: the broker's
/// side is closed (the broker requeues what they held) while the client's side stays
/// open and silent — a client that was never told, as when lapin leaves a call
/// pending after a close it missed (amqp-rs/lapin#409).
struct StrandingProxy {
    port: u16,
    /// Connections numbered below this are stranded at their next frame.
    cutoff: Arc<AtomicU64>,
    next: Arc<AtomicU64>,
}

impl StrandingProxy {
    async fn start(target: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cutoff = Arc::new(AtomicU64::new(0));
        let next = Arc::new(AtomicU64::new(0));
        let (c, n, target) = (cutoff.clone(), next.clone(), target.to_owned());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let id = n.fetch_add(1, Ordering::SeqCst);
                let Ok(upstream) = tokio::net::TcpStream::connect(&target).await else {
                    continue;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut ur, mut uw) = upstream.into_split();
                let stranded = {
                    let c = c.clone();
                    move || id < c.load(Ordering::SeqCst)
                };
                let up = stranded.clone();
                // Client → broker: once stranded, close the broker's side and swallow.
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    let mut open = true;
                    loop {
                        let k = match cr.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(k) => k,
                        };
                        if up() {
                            if open {
                                let _ = uw.shutdown().await;
                                open = false;
                            }
                            continue;
                        }
                        if uw.write_all(&buf[..k]).await.is_err() {
                            break;
                        }
                    }
                });
                // Broker → client: once stranded, hold the client's side open, mute.
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        let k = match ur.read(&mut buf).await {
                            Ok(0) | Err(_) => 0,
                            Ok(k) => k,
                        };
                        if stranded() {
                            std::future::pending::<()>().await;
                        }
                        if k == 0 || cw.write_all(&buf[..k]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Self { port, cutoff, next }
    }

    /// Every connection open now is stranded at its next frame; new ones pass.
    fn strand_existing(&self) {
        self.cutoff
            .store(self.next.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_broker_connection_is_abandoned_and_nothing_is_lost() {
    let _broker = crate::support::BROKER.read().await;
    let Some((url, prefix)) = amqp("silent").await else {
        return;
    };
    let proxy = StrandingProxy::start("127.0.0.1:5672").await;
    assert!(url.contains("127.0.0.1:5672"), "{url}");
    // No heartbeats: lapin would notice the silence by itself after two of them.
    let url = format!(
        "{}?heartbeat=0",
        url.replace("127.0.0.1:5672", &format!("127.0.0.1:{}", proxy.port))
    );
    let cancel = CancellationToken::new();
    let q = rabbit(&url, &prefix, 10, 5, &cancel).await;
    let run = async {
        q.publish("dispatch", &[job(1)]).await.unwrap();
        let first = q
            .receive("dispatch", 10, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(first.len(), 1);
        q.ack("dispatch", &[first[0].tag]).await.unwrap();
        // The broker drops the connection; Hermod's side hears nothing, ever.
        proxy.strand_existing();
        let started = std::time::Instant::now();
        let mut attempts = 0;
        while q.publish("dispatch", &[job(2), high(3)]).await.is_err() {
            attempts += 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        eprintln!(
            "silent broker: publish gave up after {:?} and went through on a new connection (attempt {})",
            started.elapsed(),
            attempts + 1
        );
        assert!(
            attempts >= 1,
            "the first publish cannot have been confirmed"
        );
        let mut got: Vec<hermod_core::model::Delivery> = Vec::new();
        let wanted = |got: &[hermod_core::model::Delivery]| {
            got.iter()
                .filter(|d| d.job == job(2) || d.job == high(3))
                .count()
        };
        while wanted(&got) < 2 {
            got.extend(
                q.receive("dispatch", 10, Duration::from_secs(1))
                    .await
                    .unwrap(),
            );
        }
        let mut jobs: Vec<Job> = got.iter().map(|d| d.job.clone()).collect();
        jobs.sort_by_key(|j| format!("{j:?}"));
        // The first job's ack may have been lost with the connection: then it comes
        // back, counted as a redelivery (at least once, never lost).
        if jobs.first() == Some(&job(1)) {
            assert!(
                got.iter().any(|d| d.job == job(1) && d.deliveries > 1),
                "{got:?}"
            );
            jobs.remove(0);
        }
        assert_eq!(jobs, vec![job(2), high(3)]);
        let tags: Vec<i64> = got.iter().map(|d| d.tag).collect();
        q.ack("dispatch", &tags).await.unwrap();
    };
    // Without bounded broker calls this hangs for good; fail instead.
    tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .expect("Hermod noticed the silent connection and moved on");
    cancel.cancel();
}

/// The embedded queue on the store's job table of `db`.
fn embedded(db: hermod_store::Db, lease: Duration) -> EmbeddedQueue {
    let store = hermod_store::SqlStore::new(db, crate::compliance::test_vault());
    EmbeddedQueue::new(std::sync::Arc::new(store), lease)
}
