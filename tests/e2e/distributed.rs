//! Distributed mode faults, for real: `hermod api` and `hermod worker` processes on
//! PostgreSQL and RabbitMQ. A worker SIGKILLed mid-burst, the broker's app stopped
//! and started mid-burst, and the worker holding an SMPP bind lease killed.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use hermod_sim::smsc::{Smsc, SmscConfig};
use serde_json::{Value, json};

use crate::support::{BROKER, amqp, eventually, free_port, pg_database, start_smsc};

/// A `hermod` child process, killed when dropped.
struct Proc(std::process::Child);

impl Proc {
    fn kill9(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

struct Cluster {
    /// Shared by the cluster's processes: the master and audit signing keys.
    _data: tempfile::TempDir,
    env: Vec<(String, String)>,
    db: String,
    base: String,
    port: u16,
}

impl Cluster {
    async fn new(tag: &str, smsc: &Smsc) -> Option<Cluster> {
        let db = pg_database(tag).await?;
        let (url, prefix) = amqp(tag).await?;
        let port = free_port();
        let data = tempfile::tempdir().unwrap();
        let env = vec![
            (
                "HERMOD_DATA_DIR".into(),
                data.path().to_string_lossy().into_owned(),
            ),
            ("HERMOD_DATABASE_URL".into(), db.clone()),
            ("HERMOD_API_KEY_PEPPER".into(), "e2e-pepper".into()),
            (
                "HERMOD_ADMIN_TOKEN".into(),
                crate::support::ADMIN_TOKEN.into(),
            ),
            ("HERMOD_QUEUE".into(), url),
            ("HERMOD_QUEUE_PREFIX".into(), prefix),
            ("HERMOD_QUEUE_EXPIRES_SECS".into(), "600".into()),
            ("HERMOD_WORKERS__BIND_LEASE_SECS".into(), "3".into()),
            ("HERMOD_WORKERS__IN_DOUBT_GRACE_SECS".into(), "5".into()),
            ("HERMOD_SMPP_URL".into(), smsc.url("esme", "pw")),
            (
                "HERMOD_WEBHOOKS__ALLOW_PRIVATE".into(),
                r#"["127.0.0.1/32"]"#.into(),
            ),
            ("HERMOD_LISTEN".into(), format!("127.0.0.1:{port}")),
            (
                "HERMOD_LOG".into(),
                std::env::var("TEST_HERMOD_LOG").unwrap_or_else(|_| "warn".into()),
            ),
        ];
        Some(Cluster {
            _data: data,
            env,
            db,
            base: format!("http://127.0.0.1:{port}"),
            port,
        })
    }

    fn spawn(&self, args: &[&str]) -> Proc {
        Proc(
            Command::new(env!("CARGO_BIN_EXE_hermod"))
                .args(args)
                .envs(self.env.iter().cloned())
                .stdout(if std::env::var_os("TEST_HERMOD_LOG").is_some() {
                    Stdio::inherit()
                } else {
                    Stdio::null()
                })
                .spawn()
                .unwrap(),
        )
    }

    fn key(&self) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_hermod"))
            .args(["keys", "create", "--tenant", "acme"])
            .envs(self.env.iter().cloned())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("API key: "))
            .unwrap()
            .trim()
            .to_owned()
    }

    async fn api(&self) -> Proc {
        let p = self.spawn(&["api"]);
        let url = format!("{}/healthz", self.base);
        eventually("the API process", Duration::from_secs(30), || async {
            reqwest::get(&url)
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
        let _ = self.port;
        p
    }

    async fn send_burst(&self, key: &str, tag: &str, from: usize, n: usize) {
        let client = reqwest::Client::new();
        for chunk in (from..from + n).step_by(100) {
            let msgs: Vec<Value> = (chunk..(chunk + 100).min(from + n))
                .map(|i| json!({"to": format!("+4479333{i:05}"), "text": format!("{tag} {i}")}))
                .collect();
            let r = client
                .post(format!("{}/v1/messages/batch", self.base))
                .bearer_auth(key)
                .json(&json!({ "messages": msgs }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 202);
        }
    }

    async fn delivered(&self, key: &str) -> usize {
        let client = reqwest::Client::new();
        let mut n = 0;
        let mut cursor: Option<String> = None;
        loop {
            let mut url = format!("{}/v1/messages?status=delivered&limit=1000", self.base);
            if let Some(c) = &cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            let Ok(r) = client.get(url).bearer_auth(key).send().await else {
                return n;
            };
            let v: Value = r.json().await.unwrap_or_default();
            n += v["data"].as_array().map_or(0, Vec::len);
            match v["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return n,
            }
        }
    }

    async fn lease_holders(&self) -> Vec<String> {
        let mut c = AsyncPgConnection::establish(&self.db).await.unwrap();
        #[derive(diesel::QueryableByName)]
        struct H {
            #[diesel(sql_type = diesel::sql_types::Text)]
            holder: String,
        }
        let rows: Vec<H> = diesel::sql_query(
            "SELECT holder FROM bind_leases WHERE expires_at > (extract(epoch from now()) * 1000)::bigint",
        )
        .load(&mut c)
        .await
        .unwrap();
        rows.into_iter().map(|h| h.holder).collect()
    }
}

/// Every `{tag} {i}` reached the SMSC exactly once.
fn assert_each_once(smsc: &Smsc, tag: &str, n: usize) {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for s in smsc.submitted() {
        *seen
            .entry(String::from_utf8_lossy(&s.short_message).into_owned())
            .or_default() += 1;
    }
    for i in 0..n {
        let k = format!("{tag} {i}");
        assert_eq!(
            seen.get(&k).copied(),
            Some(1),
            "{k} must reach the SMSC exactly once"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_killed_mid_burst_loses_nothing_and_sends_nothing_twice() {
    let _broker = BROKER.read().await;
    let smsc = start_smsc(SmscConfig {
        dlr_delay: Duration::from_millis(20),
        ..Default::default()
    })
    .await;
    let Some(c) = Cluster::new("kill", &smsc).await else {
        return;
    };
    let key = c.key();
    let _api = c.api().await;
    let mut w1 = c.spawn(&["worker"]);
    let n = 2000;
    c.send_burst(&key, "burst", 0, n).await;
    eventually(
        "the first worker sends",
        Duration::from_secs(60),
        || async { smsc.submit_count() >= 300 },
    )
    .await;
    w1.kill9();
    let at_kill = smsc.submit_count();
    assert!(at_kill < n, "killed too late to prove anything ({at_kill})");
    let _w2 = c.spawn(&["worker"]);
    // Outbox rows the killed relay had leased come back when the lease ends (30 s).
    eventually(
        "every message delivered",
        Duration::from_secs(180),
        || async { c.delivered(&key).await >= n },
    )
    .await;
    assert_each_once(&smsc, "burst", n);
    smsc.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn rabbitmq_stopped_and_started_mid_burst_loses_nothing() {
    // Nobody else may use the broker while it is down.
    let _broker = BROKER.write().await;
    let smsc = start_smsc(SmscConfig {
        dlr_delay: Duration::from_millis(20),
        ..Default::default()
    })
    .await;
    let Some(c) = Cluster::new("broker", &smsc).await else {
        return;
    };
    let key = c.key();
    let _api = c.api().await;
    let _w = c.spawn(&["worker"]);
    c.send_burst(&key, "rmq", 0, 600).await;
    eventually("traffic flows", Duration::from_secs(60), || async {
        smsc.submit_count() >= 100
    })
    .await;
    let ctl = |what: &str| {
        let ok = Command::new("rabbitmqctl")
            .arg(what)
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "rabbitmqctl {what} failed");
    };
    ctl("stop_app");
    // The API keeps accepting: messages wait in the PostgreSQL outbox.
    c.send_burst(&key, "rmq", 600, 400).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    ctl("start_app");
    let _ = Command::new("rabbitmqctl")
        .args(["await_startup"])
        .stdout(Stdio::null())
        .status();
    eventually(
        "every message delivered after the broker is back",
        Duration::from_secs(180),
        || async { c.delivered(&key).await >= 1000 },
    )
    .await;
    assert_each_once(&smsc, "rmq", 1000);
    smsc.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_bind_lease_moves_to_another_worker_when_its_holder_dies() {
    let _broker = BROKER.read().await;
    let smsc = start_smsc(SmscConfig {
        dlr_delay: Duration::from_millis(10),
        ..Default::default()
    })
    .await;
    let Some(c) = Cluster::new("lease", &smsc).await else {
        return;
    };
    let key = c.key();
    let _api = c.api().await;
    let mut workers = [c.spawn(&["worker"]), c.spawn(&["worker"])];
    c.send_burst(&key, "lease", 0, 100).await;
    eventually(
        "delivered by the lease holder",
        Duration::from_secs(60),
        || async { c.delivered(&key).await >= 100 },
    )
    .await;
    // One bind is configured: exactly one worker holds it, and one session is up.
    let holders = c.lease_holders().await;
    assert_eq!(holders.len(), 1, "{holders:?}");
    let pid: u32 = holders[0].split('-').next().unwrap().parse().unwrap();
    let binds_before = smsc.bind_count();
    let i = workers
        .iter()
        .position(|w| w.pid() == pid)
        .expect("a worker holds it");
    let killed = Instant::now();
    workers[i].kill9();
    let other = workers[1 - i].pid();
    eventually(
        "the other worker takes the lease",
        Duration::from_secs(30),
        || async {
            c.lease_holders()
                .await
                .iter()
                .any(|h| h.starts_with(&format!("{other}-")))
        },
    )
    .await;
    eventually("and binds", Duration::from_secs(30), || async {
        smsc.bind_count() > binds_before
    })
    .await;
    let took = killed.elapsed();
    assert!(took < Duration::from_secs(20), "takeover took {took:?}");
    // The API process (no binds of its own) shows the cluster's binds from the leases.
    eventually(
        "the API shows the new holder's bind",
        Duration::from_secs(20),
        || async {
            let v: Value = reqwest::Client::new()
                .get(format!("{}/v1/connectors", c.base))
                .bearer_auth(crate::support::ADMIN_TOKEN)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap_or_default();
            let b = &v["data"][0]["binds"][0];
            v["data"][0]["name"] == "default"
                && v["data"][0]["healthy"] == true
                && b["id"] == "default#1/trx"
                && b["state"] == "bound"
                && b["holder"]
                    .as_str()
                    .is_some_and(|h| h.starts_with(&format!("{other}-")))
        },
    )
    .await;
    c.send_burst(&key, "lease", 100, 100).await;
    eventually(
        "delivered through the new holder",
        Duration::from_secs(60),
        || async { c.delivered(&key).await >= 200 },
    )
    .await;
    assert_each_once(&smsc, "lease", 200);
    smsc.stop();
}
