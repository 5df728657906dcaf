use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use hermod_sim::smsc::{Smsc, SmscConfig};

/// A fresh PostgreSQL database for one test, or `None` (with a loud message) when the
/// server is absent outside CI. In CI (`CI=true`) an absent server fails the test.
pub async fn pg_database(tag: &str) -> Option<String> {
    let admin = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let mut conn = match AsyncPgConnection::establish(&admin).await {
        Ok(c) => c,
        Err(e) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("PostgreSQL is required in CI but unreachable at {admin}: {e}");
            }
            eprintln!("\n!!! SKIPPED {tag}: PostgreSQL unreachable at {admin}: {e} !!!\n");
            return None;
        }
    };
    drop_stale_test_databases(&mut conn).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    // hermod_test_<unix secs>_<tag>_<unique>: the time lets later runs clean up.
    let name = format!("hermod_test_{now}_{}_{}", tag, uuid_like());
    diesel::sql_query(format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .ok()?;
    let base = admin
        .rsplit_once('/')
        .map(|(b, _)| b.to_owned())
        .unwrap_or(admin.clone());
    Some(format!("{base}/{name}"))
}

/// True when the server tests run against PostgreSQL + RabbitMQ
/// (`TEST_HERMOD_BACKEND=distributed`; `scripts/test` runs them both ways).
pub fn distributed() -> bool {
    std::env::var("TEST_HERMOD_BACKEND").is_ok_and(|v| v == "distributed")
}

type Env = Vec<(String, String)>;

static BACKENDS: std::sync::Mutex<Vec<(std::path::PathBuf, Env)>> =
    std::sync::Mutex::new(Vec::new());

/// The environment that points `hermod` at a test's backend: nothing extra for the
/// embedded mode (the data directory), or a fresh PostgreSQL database and RabbitMQ
/// queue prefix per data directory in the distributed mode.
pub fn backend_env(data: &Path) -> Vec<(String, String)> {
    if !distributed() {
        return Vec::new();
    }
    if let Some((_, env)) = BACKENDS.lock().unwrap().iter().find(|(p, _)| p == data) {
        return env.clone();
    }
    let tag = "e2e";
    let (db, amqp) = tokio::task::block_in_place(|| {
        tokio::runtime::Handle::current()
            .block_on(async { (pg_database(tag).await, amqp(tag).await) })
    });
    let (Some(db), Some((url, prefix))) = (db, amqp) else {
        panic!("TEST_HERMOD_BACKEND=distributed needs PostgreSQL and RabbitMQ");
    };
    let env = vec![
        ("HERMOD_DATABASE_URL".to_owned(), db),
        ("HERMOD_API_KEY_PEPPER".to_owned(), "e2e-pepper".to_owned()),
        ("HERMOD_QUEUE".to_owned(), url),
        ("HERMOD_QUEUE_PREFIX".to_owned(), prefix),
        ("HERMOD_WORKERS__BIND_LEASE_SECS".to_owned(), "3".to_owned()),
        ("HERMOD_QUEUE_EXPIRES_SECS".to_owned(), "180".to_owned()),
    ];
    BACKENDS
        .lock()
        .unwrap()
        .push((data.to_path_buf(), env.clone()));
    env
}

/// Drops test databases more than two hours old (earlier runs), best effort.
async fn drop_stale_test_databases(conn: &mut AsyncPgConnection) {
    #[derive(diesel::QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        datname: String,
    }
    let Ok(names) =
        diesel::sql_query("SELECT datname FROM pg_database WHERE datname LIKE 'hermod\\_test\\_%'")
            .load::<Name>(conn)
            .await
    else {
        return;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    for n in names {
        let secs = n
            .datname
            .strip_prefix("hermod_test_")
            .and_then(|r| r.split('_').next())
            .and_then(|t| t.parse::<u64>().ok());
        if secs.is_some_and(|t| now.saturating_sub(t) > 7200) {
            let _ = diesel::sql_query(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                n.datname
            ))
            .execute(conn)
            .await;
        }
    }
}

fn uuid_like() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}_{}", std::process::id(), t.as_nanos() % 1_000_000_000)
}

/// The timeline of a message that goes the whole way.
pub const HAPPY_PATH: [&str; 5] = [
    "message.accepted",
    "message.queued",
    "message.sending",
    "message.sent",
    "message.delivered",
];

/// The SMSC simulator on an ephemeral loopback port.
pub async fn start_smsc(cfg: SmscConfig) -> Smsc {
    Smsc::start("127.0.0.1:0".parse().unwrap(), cfg)
        .await
        .unwrap()
}

pub fn free_port() -> u16 {
    hermod_crypto::install_tls_provider();
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `hermod serve` child process on an embedded data directory.
pub struct Server {
    pub child: Child,
    pub base: String,
}

/// The admin token of test servers whose configuration sets none.
pub const ADMIN_TOKEN: &str = "e2e-admin-token";

impl Server {
    pub fn start(data: &Path, smpp_url: &str, port: u16) -> Server {
        Self::spawn(data, Some(smpp_url), None, port, &[])
    }

    /// `start` with more environment (settings as `HERMOD_…` variables).
    pub fn start_with_env(
        data: &Path,
        smpp_url: &str,
        port: u16,
        env: &[(&str, String)],
    ) -> Server {
        Self::spawn(data, Some(smpp_url), None, port, env)
    }

    /// `hermod serve --config FILE` (connectors and routes from the file).
    pub fn start_with_config(data: &Path, config: &Path, port: u16) -> Server {
        Self::spawn(data, None, Some(config), port, &[])
    }

    fn spawn(
        data: &Path,
        smpp_url: Option<&str>,
        config: Option<&Path>,
        port: u16,
        env: &[(&str, String)],
    ) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hermod"));
        cmd.arg("serve");
        for (k, v) in env {
            cmd.env(k, v);
        }
        if let Some(u) = smpp_url {
            cmd.env("HERMOD_SMPP_URL", u);
        }
        if let Some(c) = config {
            cmd.arg("--config").arg(c);
        }
        // The operator's token, unless the test's configuration sets its own.
        if !config
            .is_some_and(|c| std::fs::read_to_string(c).is_ok_and(|t| t.contains("admin_token")))
        {
            cmd.env("HERMOD_ADMIN_TOKEN", ADMIN_TOKEN);
        }
        let child = cmd
            .envs(backend_env(data))
            .env("HERMOD_LISTEN", format!("127.0.0.1:{port}"))
            .env("HERMOD_DATA_DIR", data)
            // The tests' webhook receivers are on loopback.
            .env("HERMOD_WEBHOOKS__ALLOW_PRIVATE", r#"["127.0.0.1/32"]"#)
            // TEST_HERMOD_LOG=debug shows the server's logs (they go to stdout).
            .env(
                "HERMOD_LOG",
                std::env::var("TEST_HERMOD_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(if std::env::var_os("TEST_HERMOD_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn hermod serve");
        Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    pub async fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(r) = reqwest::get(format!("{}/healthz", self.base)).await
                && r.status().is_success()
            {
                {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("hermod did not become healthy");
    }

    /// Sends SIGHUP (reload the configuration).
    pub fn sighup(&self) {
        let ok = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "kill -HUP failed");
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn create_key(data: &Path, tenant: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_hermod"))
        .args(["keys", "create", "--tenant", tenant])
        .envs(backend_env(data))
        .env("HERMOD_DATA_DIR", data)
        .env(
            "HERMOD_LOG",
            std::env::var("TEST_HERMOD_LOG").unwrap_or("warn".into()),
        )
        .output()
        .expect("run hermod keys create");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("API key: "))
        .expect("an API key line")
        .trim()
        .to_owned()
}

/// `hermod senders assign`: gives `sender` to the tenant named `tenant` (before the
/// server starts; a running server sees it within 5 s).
pub fn assign_sender(data: &Path, tenant: &str, sender: &str, default: bool) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hermod"));
    cmd.args(["senders", "assign", "--tenant", tenant, sender]);
    if default {
        cmd.arg("--default");
    }
    let out = cmd
        .envs(backend_env(data))
        .env("HERMOD_DATA_DIR", data)
        .env("HERMOD_LOG", "warn")
        .output()
        .expect("run hermod senders assign");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Polls `check` until it is true or the time runs out (no fixed sleeps in tests).
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// `(status, JSON body)` of an API call with a bearer token.
pub async fn call(
    method: reqwest::Method,
    url: &str,
    token: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value, reqwest::header::HeaderMap) {
    let mut req = reqwest::Client::new()
        .request(method.clone(), url)
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    checked(method.as_str(), url, req.send().await.unwrap()).await
}

/// `(status, JSON body, headers)` of a response, checked against /openapi.json
/// (`contract::check`).
pub async fn checked(
    method: &str,
    url: &str,
    r: reqwest::Response,
) -> (u16, serde_json::Value, reqwest::header::HeaderMap) {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r.json().await.unwrap_or(serde_json::Value::Null);
    let content_type = headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    crate::contract::check(method, url, status, content_type, &body);
    (status, body, headers)
}

/// The tenant id `hermod keys create` printed along with the key.
pub fn create_key_with_tenant(data: &Path, tenant: &str) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hermod"))
        .args(["keys", "create", "--tenant", tenant])
        .envs(backend_env(data))
        .env("HERMOD_DATA_DIR", data)
        .env("HERMOD_LOG", "warn")
        .output()
        .expect("run hermod keys create");
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = |p: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(p))
            .map(|v| v.trim().to_owned())
            .expect("a line")
    };
    (line("Tenant: "), line("API key: "))
}

/// Tests that use RabbitMQ hold this for reading; the one that stops the broker's app
/// holds it for writing, so it never pulls the broker from under another test.
pub static BROKER: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// RabbitMQ's URL and a fresh queue prefix for one test, or `None` (loudly) when the
/// broker is absent outside CI. Under `CI=true` an absent broker fails the test.
pub async fn amqp(tag: &str) -> Option<(String, String)> {
    let url = std::env::var("AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let addr = url::Url::parse(&url)
        .ok()
        .and_then(|u| Some(format!("{}:{}", u.host_str()?, u.port().unwrap_or(5672))))
        .unwrap_or_else(|| "127.0.0.1:5672".into());
    match tokio::net::TcpStream::connect(&addr).await {
        Ok(_) => Some((url, format!("test.{tag}.{}", uuid_like()))),
        Err(e) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("RabbitMQ is required in CI but unreachable: {e}");
            }
            eprintln!("\n!!! SKIPPED {tag}: RabbitMQ unreachable: {e} !!!\n");
            None
        }
    }
}

/// `POST /v1/messages`: `(status, body)`.
pub async fn send_message(
    base: &str,
    key: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let (s, v, _) = call(
        reqwest::Method::POST,
        &format!("{base}/v1/messages"),
        key,
        Some(body),
    )
    .await;
    (s, v)
}

/// `GET /v1/messages/{id}`: the message with its attempts and events.
pub async fn get_message(base: &str, key: &str, id: &str) -> serde_json::Value {
    call(
        reqwest::Method::GET,
        &format!("{base}/v1/messages/{id}"),
        key,
        None,
    )
    .await
    .1
}

/// Polls a message until it has status `want`; panics with the last view after `secs`.
pub async fn wait_status(
    base: &str,
    key: &str,
    id: &str,
    want: &str,
    secs: u64,
) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        last = get_message(base, key, id).await;
        if last["status"] == want {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("message {id} never became {want}: {last}");
}

/// GET `url` with a bearer token; the body as text (NDJSON exports, metrics).
pub async fn get_text(url: &str, token: &str) -> String {
    reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}
