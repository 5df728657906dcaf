//! `hermod bench`: N messages through the HTTP API with C concurrent clients, to the
//! SMSC simulator; prints figures. Embedded: the server runs in this process.
//! Distributed (`--database-url` + `--queue`): one `hermod api` and `--workers`
//! `hermod worker` processes on a fresh PostgreSQL database and queue prefix.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use hermod_channels::rcs::AgentConfig;
use hermod_sim::device::DeviceSim;
use hermod_sim::rbm::{RbmSim, RbmSimConfig};
use hermod_sim::smsc::{Smsc, SmscConfig};
use tokio_util::sync::CancellationToken;

use crate::{app, settings::Settings};

#[derive(clap::Args)]
pub struct BenchArgs {
    #[arg(long, default_value_t = 10_000)]
    messages: usize,
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Messages per request: 1 uses POST /v1/messages, more uses the batch endpoint.
    #[arg(long, default_value_t = 1)]
    per_request: usize,
    #[arg(long, default_value_t = 20)]
    dlr_delay_ms: u64,
    /// Transceiver binds to the simulator.
    #[arg(long, default_value_t = 1)]
    binds: usize,
    /// Outstanding submit_sm per bind.
    #[arg(long, default_value_t = 64)]
    window: usize,
    /// Distributed mode: a PostgreSQL server (a database is created on it).
    #[arg(long, requires = "queue")]
    database_url: Option<String>,
    /// Distributed mode: RabbitMQ.
    #[arg(long, requires = "database_url")]
    queue: Option<String>,
    /// Distributed mode: worker processes.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// `sms` (SMSC simulator), `rcs` (RBM simulator, receipts through the signed
    /// webhook) or `app` (sealed for 100 simulated devices that acknowledge over the
    /// WebSocket stream). rcs and app: embedded mode.
    #[arg(long, default_value = "sms")]
    channel: String,
    /// A customer webhook endpoint subscribed to every event: `none`, `ok` (a local
    /// receiver answering 204) or `dead` (accepts connections, never answers: every
    /// POST runs into the timeout). Shows what webhooks cost message delivery.
    #[arg(long, default_value = "none")]
    webhook: String,
    /// The API the messages go through: `v1` (`POST /v1/messages`, JSON) or `twilio`
    /// (`POST /2010-04-01/Accounts/{AccountSid}/Messages.json`, form-encoded, HTTP
    /// Basic; one message per request, embedded mode).
    #[arg(long, default_value = "v1")]
    api: String,
    /// SMS through an HTTP provider on the providers' simulator instead of the SMSC:
    /// `twilio`, `vonage`, `infobip`, `sinch` or `http` (embedded mode; `--window`
    /// requests in flight).
    #[arg(long)]
    provider: Option<String>,
}

/// A connector of `kind` to the providers' simulator, its receipts to `public`.
fn provider_connector(
    kind: &str,
    sim: &hermod_sim::providers::ProviderSim,
    public: &str,
    window: usize,
) -> anyhow::Result<hermod_channels::providers::ProviderConfig> {
    use hermod_channels::providers::{GenericHttp, ProviderConfig, ProviderKind};
    let c = sim.config();
    let secret = |s: &str| hermod_core::Secret(s.to_owned());
    let mut p = ProviderConfig {
        name: "bench".into(),
        base_url: Some(sim.url()),
        public_url: Some(public.to_owned()),
        window,
        webhook_secret: secret("bench-callback-secret"),
        ..ProviderConfig::default()
    };
    match kind {
        "twilio" => {
            p.kind = ProviderKind::Twilio;
            p.account = c.twilio_sid.clone();
            p.token = secret(&c.twilio_token);
        }
        "vonage" => {
            p.kind = ProviderKind::Vonage;
            p.account = c.vonage_key.clone();
            p.token = secret(&c.vonage_secret);
            p.webhook_secret = secret(&c.vonage_signature_secret);
        }
        "infobip" => {
            p.kind = ProviderKind::Infobip;
            p.token = secret(&c.infobip_key);
        }
        "sinch" => {
            p.kind = ProviderKind::Sinch;
            p.account = c.sinch_plan.clone();
            p.token = secret(&c.sinch_token);
        }
        "http" => {
            p.kind = ProviderKind::Http;
            p.token = secret(&c.generic_token);
            p.http = Some(GenericHttp {
                url: "{{base_url}}/generic/messages".into(),
                body: r#"{"to":"{{to}}","from":"{{from}}","text":"{{text}}","callback":"{{callback_url}}","reference":"{{reference}}"}"#.into(),
                headers: [("Authorization".to_owned(), "Bearer {{token}}".to_owned())].into(),
                ..GenericHttp::default()
            });
        }
        k => anyhow::bail!("--provider {k}: twilio, vonage, infobip, sinch or http"),
    }
    Ok(p)
}

/// A local webhook receiver: `ok` answers 204 and counts, `dead` never answers.
async fn webhook_receiver(kind: &str) -> anyhow::Result<(String, Arc<AtomicU64>)> {
    let hits = Arc::new(AtomicU64::new(0));
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    if kind == "dead" {
        listener.set_nonblocking(true)?;
        let l = tokio::net::TcpListener::from_std(listener)?;
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((sock, _)) = l.accept().await {
                held.push(sock);
            }
        });
        return Ok((url, hits));
    }
    let h = hits.clone();
    let server = actix_web::HttpServer::new(move || {
        let h = h.clone();
        actix_web::App::new().default_service(actix_web::web::to(move || {
            let h = h.clone();
            async move {
                h.fetch_add(1, Ordering::Relaxed);
                actix_web::HttpResponse::NoContent().finish()
            }
        }))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run();
    tokio::spawn(server);
    Ok((url, hits))
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(str::to_owned)
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|k| k.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Peak RSS of other processes (MiB).
fn peak_rss_of(pids: &[u32]) -> f64 {
    pids.iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
        .filter_map(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<f64>().ok())
        })
        .sum::<f64>()
        / 1024.0
}

/// The bench server's admin token.
const BENCH_ADMIN: &str = "bench-admin";

/// Rows written so far: PostgreSQL's own statistics, or on SQLite the writer's
/// `total_changes()` as the server's `/metrics` count it.
async fn rows_written(
    client: &reqwest::Client,
    base: &str,
    store: &hermod_store::SqlStore,
) -> Option<i64> {
    if store.db().is_postgres() {
        return store.write_counts().await.ok()?.changed;
    }
    let text = client
        .get(format!("{base}/metrics"))
        .bearer_auth(BENCH_ADMIN)
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let n = text
        .lines()
        .find_map(|l| l.strip_prefix("hermod_db_rows_written_total "))
        .map_or(Some(0.0), |v| v.trim().parse::<f64>().ok())?;
    Some(n as i64)
}

struct Children(Vec<std::process::Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Recipients of the app benchmark, one simulated device each.
const APP_DEVICES: usize = 100;

fn app_recipient(i: usize) -> String {
    format!("+4479100{:05}", i % APP_DEVICES)
}

pub async fn run(a: BenchArgs) -> anyhow::Result<()> {
    if !["sms", "rcs", "app"].contains(&a.channel.as_str()) {
        anyhow::bail!("--channel: sms, rcs or app");
    }
    if a.channel != "sms" && a.queue.is_some() {
        anyhow::bail!("--channel rcs and app run in the embedded mode");
    }
    if a.provider.is_some() && (a.channel != "sms" || a.queue.is_some()) {
        anyhow::bail!("--provider: SMS in the embedded mode");
    }
    let dir = std::env::temp_dir().join(format!("hermod-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let smsc = Smsc::start(
        "127.0.0.1:0".parse()?,
        SmscConfig {
            dlr_delay: Duration::from_millis(a.dlr_delay_ms),
            ..Default::default()
        },
    )
    .await?;
    let mut s = Settings::load(None)?;
    s.data_dir = dir.clone();
    // The bench's webhook receivers are on this machine.
    s.webhooks.allow_private = vec!["127.0.0.1/32".into()];
    // The bench reads /metrics, the operator's.
    s.admin_token = Some(hermod_core::Secret(BENCH_ADMIN.into()));
    s.smpp.connectors = vec![hermod_channels::smpp::ConnectorConfig {
        name: "bench".into(),
        url: Some(hermod_core::Secret(smsc.url("bench", "bench"))),
        binds: a.binds,
        window: a.window,
        ..Default::default()
    }];
    let cancel = CancellationToken::new();
    let mut children = Children(Vec::new());
    let mut rbm: Option<RbmSim> = None;
    let mut providers: Option<hermod_sim::providers::ProviderSim> = None;
    let mut server = None;
    let (base, key) = match (&a.database_url, &a.queue) {
        (Some(pg), Some(amqp)) => {
            // A fresh database and queue prefix; the processes read this file.
            let name = format!("hermod_bench_{}", std::process::id());
            let db = hermod_store::Db::create_database(pg, &name).await?;
            let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            let config = dir.join("hermod.toml");
            std::fs::write(
                &config,
                format!(
                    "listen = \"127.0.0.1:{port}\"\napi_key_pepper = \"{name}\"\ndatabase_url = \"{db}\"\nqueue = \"{amqp}\"\nqueue_prefix = \"{name}\"\nqueue_expires_secs = 600\n[webhooks]\nallow_private = [\"127.0.0.1/32\"]\n[[smpp.connectors]]\nname = \"bench\"\nurl = \"{}\"\nbinds = {}\nwindow = {}\n",
                    smsc.url("bench", "bench"),
                    a.binds.max(a.workers),
                    a.window
                ),
            )?;
            s.database_url = Some(db);
            let exe = std::env::current_exe()?;
            let cmd = |args: &[&str]| {
                let mut c = std::process::Command::new(&exe);
                c.args(args)
                    .arg("--config")
                    .arg(&config)
                    .env("HERMOD_LOG", "warn")
                    .stdout(std::process::Stdio::null());
                c
            };
            let out = cmd(&["keys", "create", "--tenant", "bench"])
                .stdout(std::process::Stdio::piped())
                .output()?;
            let key = String::from_utf8_lossy(&out.stdout)
                .lines()
                .find_map(|l| l.strip_prefix("API key: ").map(str::to_owned))
                .ok_or_else(|| anyhow::anyhow!("no key from hermod keys create"))?;
            children.0.push(cmd(&["api"]).spawn()?);
            for _ in 0..a.workers.max(1) {
                children.0.push(cmd(&["worker"]).spawn()?);
            }
            let base = format!("http://127.0.0.1:{port}");
            let ready = Instant::now();
            while reqwest::get(format!("{base}/healthz")).await.is_err() {
                if ready.elapsed() > Duration::from_secs(30) {
                    anyhow::bail!("the API process did not start");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            // Let the workers take their bind leases.
            tokio::time::sleep(Duration::from_secs(2)).await;
            (base, key)
        }
        _ => {
            let (_, key) = app::create_key(&s, "bench").await?;
            let listener = TcpListener::bind("127.0.0.1:0")?;
            let base = format!("http://{}", listener.local_addr()?);
            if a.channel == "rcs" {
                let mut cfg = RbmSimConfig::new(
                    "bench@rbm.goog",
                    hermod_crypto::rbm::DEMO_CLIENT_EMAIL,
                    hermod_crypto::rbm::DEMO_SERVICE_ACCOUNT_PEM,
                )?;
                cfg.all_reachable = true;
                cfg.webhook_url = Some(format!("{base}/v1/webhooks/rbm/bench"));
                cfg.delivery_delay = Duration::from_millis(a.dlr_delay_ms);
                cfg.read_delay = None;
                let sim = RbmSim::start(cfg.clone(), "127.0.0.1:0".parse()?)?;
                let mut agent = AgentConfig::new("bench", "bench@rbm.goog", &sim.base_url());
                agent.service_account_json = Some(hermod_core::Secret(
                    crate::demo::demo_service_account(&sim.token_uri()),
                ));
                agent.client_token = Some(hermod_core::Secret(cfg.client_token));
                s.rcs.agents = vec![agent];
                rbm = Some(sim);
            }
            if let Some(kind) = &a.provider {
                let sim = hermod_sim::providers::ProviderSim::start(
                    hermod_sim::providers::ProviderSimConfig {
                        receipt_delay: Duration::from_millis(a.dlr_delay_ms),
                        ..Default::default()
                    },
                    "127.0.0.1:0".parse()?,
                )?;
                s.smpp.connectors = Vec::new();
                s.smpp.url = hermod_core::Secret(String::new());
                s.smpp.providers = vec![provider_connector(kind, &sim, &base, a.window)?];
                providers = Some(sim);
            }
            server = Some(tokio::spawn(app::serve(
                s.clone(),
                None,
                listener,
                cancel.clone(),
            )));
            if a.channel == "app" {
                while reqwest::get(format!("{base}/healthz")).await.is_err() {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                for i in 0..APP_DEVICES {
                    let d = DeviceSim::register(
                        &base,
                        &key,
                        &app_recipient(i),
                        hermod_crypto::hpke::Aead::ChaCha20Poly1305,
                    )
                    .await?;
                    // Read receipts come an hour later: the figures are for delivered.
                    tokio::spawn(d.run(Duration::from_secs(3600), cancel.clone()));
                }
            }
            (base, key)
        }
    };
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(a.concurrency)
        .build()?;
    let auth = format!("Bearer {key}");
    // The Twilio API: the bench tenant's account, HTTP Basic, its Messages.json.
    let twilio = match a.api.as_str() {
        "v1" => None,
        "twilio" => {
            anyhow::ensure!(
                a.queue.is_none() && a.per_request <= 1,
                "--api twilio: embedded mode, one message per request"
            );
            let (sid, token) = app::twilio_account(&s, "bench").await?;
            use base64::Engine as _;
            let basic = base64::engine::general_purpose::STANDARD.encode(format!("{sid}:{token}"));
            Some((
                format!("{base}/2010-04-01/Accounts/{sid}/Messages.json"),
                format!("Basic {basic}"),
            ))
        }
        other => anyhow::bail!("--api: v1 or twilio, not {other}"),
    };
    let hook = match a.webhook.as_str() {
        "none" => None,
        kind @ ("ok" | "dead") => {
            while reqwest::get(format!("{base}/healthz")).await.is_err() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let (url, hits) = webhook_receiver(kind).await?;
            let r = client
                .post(format!("{base}/v1/webhook-endpoints"))
                .header("authorization", &auth)
                .json(&serde_json::json!({"url": url, "events": ["*"]}))
                .send()
                .await?;
            anyhow::ensure!(
                r.status().as_u16() == 201,
                "creating the endpoint: {}",
                r.status()
            );
            Some(hits)
        }
        other => anyhow::bail!("--webhook: none, ok or dead, not {other}"),
    };
    while reqwest::get(format!("{base}/healthz")).await.is_err() {
        // A server that could not start says why, rather than being waited for.
        if let Some(h) = server.take_if(|h| h.is_finished()) {
            h.await??;
            anyhow::bail!("the server stopped");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, store) = app::open_store(&s).await?;
    let written_before = rows_written(&client, &base, &store).await;
    let requests = a.messages.div_ceil(a.per_request.max(1));
    let started = Instant::now();
    let lat = Arc::new(std::sync::Mutex::new(Vec::with_capacity(requests)));
    futures::stream::iter(0..requests)
        .for_each_concurrent(a.concurrency, |i| {
            let (client, auth, base, lat, twilio) = (
                client.clone(),
                auth.clone(),
                base.clone(),
                lat.clone(),
                twilio.clone(),
            );
            let per = a.per_request;
            let channel = a.channel.clone();
            async move {
                let t = Instant::now();
                let to = |j: usize| match channel.as_str() {
                    "app" => app_recipient(i * per + j),
                    _ => format!("+44790{:07}", (i * per + j) % 10_000_000),
                };
                let body = |j: usize, text: String| {
                    serde_json::json!({"to": to(j), "text": text, "channels": [channel.as_str()]})
                };
                let res = if let Some((url, basic)) = &twilio {
                    let form = url::form_urlencoded::Serializer::new(String::new())
                        .append_pair("To", &to(0))
                        .append_pair("MessagingServiceSid", "MG00000000000000000000000000000000")
                        .append_pair("Body", &format!("bench {i}"))
                        .finish();
                    client
                        .post(url)
                        .header("authorization", basic)
                        .header("content-type", "application/x-www-form-urlencoded")
                        .body(form)
                        .send()
                        .await
                } else if per <= 1 {
                    client
                        .post(format!("{base}/v1/messages"))
                        .header("authorization", auth)
                        .json(&body(0, format!("bench {i}")))
                        .send()
                        .await
                } else {
                    let msgs: Vec<_> = (0..per)
                        .map(|j| body(j, format!("bench {i}/{j}")))
                        .collect();
                    client
                        .post(format!("{base}/v1/messages/batch"))
                        .header("authorization", auth)
                        .json(&serde_json::json!({"messages": msgs}))
                        .send()
                        .await
                };
                match res {
                    Ok(r) if matches!(r.status().as_u16(), 201 | 202) => {}
                    Ok(r) => eprintln!("unexpected status {}", r.status()),
                    Err(e) => eprintln!("request failed: {e}"),
                }
                if let Ok(mut l) = lat.lock() {
                    l.push(t.elapsed().as_secs_f64() * 1000.0);
                }
            }
        })
        .await;
    let accept_secs = started.elapsed().as_secs_f64();
    let total = requests * a.per_request.max(1);
    // Wait until every message is delivered.
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut submits_done = None;
    loop {
        let counts = hermod_core::ports::Messages::status_counts(&*store).await?;
        let delivered: i64 = counts
            .iter()
            .filter(|(st, _)| *st == hermod_core::Status::Delivered)
            .map(|(_, n)| n)
            .sum();
        let submitted = match &providers {
            Some(p) => p.accepted_count(),
            None => smsc.submit_count(),
        };
        if submits_done.is_none() && submitted >= total {
            submits_done = Some(started.elapsed().as_secs_f64());
        }
        if delivered as usize >= total || Instant::now() > deadline {
            break;
        }
        // Coarse polling: counting is a table scan and would skew the figures (more so
        // on PostgreSQL, which shares the two cores with everything else).
        let every = if a.queue.is_some() { 1000 } else { 250 };
        tokio::time::sleep(Duration::from_millis(every)).await;
    }
    let done_secs = started.elapsed().as_secs_f64();
    if a.queue.is_some() {
        // PostgreSQL's statistics are reported when transactions end, a little later.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let written = rows_written(&client, &base, &store)
        .await
        .zip(written_before)
        .map(|(after, before)| after - before);
    let kept = store.write_counts().await?;
    // accept → delivered from the timelines of a sample of messages.
    let list: serde_json::Value = client
        .get(format!("{base}/v1/messages?limit=1000"))
        .header("authorization", &auth)
        .send()
        .await?
        .json()
        .await?;
    let mut e2e = Vec::new();
    for m in list["data"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .take(500)
    {
        let id = m["id"].as_str().unwrap_or_default();
        let v: serde_json::Value = client
            .get(format!("{base}/v1/messages/{id}"))
            .header("authorization", &auth)
            .send()
            .await?
            .json()
            .await?;
        let at = |kind: &str| {
            v["events"]
                .as_array()
                .and_then(|evs| evs.iter().find(|e| e["type"] == kind))
                .and_then(|e| e["at"].as_str())
                .and_then(|t| {
                    time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                        .ok()
                })
        };
        if let (Some(a0), Some(d)) = (at("message.accepted"), at("message.delivered")) {
            e2e.push((d - a0).as_seconds_f64() * 1000.0);
        }
    }
    let mut lat = lat.lock().map(|l| l.clone()).unwrap_or_default();
    let mode = if a.queue.is_some() {
        format!(
            "distributed (1 API + {} worker processes, PostgreSQL + RabbitMQ)",
            a.workers.max(1)
        )
    } else {
        "embedded (SQLite)".to_owned()
    };
    println!(
        "hermod bench, {mode}, channel {}{}, API {}: {total} messages, {} concurrent clients, {} per request, {} bind(s) (or provider connector) with a window of {}, receipt delay {} ms",
        a.channel,
        a.provider
            .as_deref()
            .map(|p| format!(" through HTTP provider {p} (simulated)"))
            .unwrap_or_default(),
        a.api,
        a.concurrency,
        a.per_request,
        if a.queue.is_some() {
            a.binds.max(a.workers)
        } else {
            a.binds
        },
        a.window,
        a.dlr_delay_ms
    );
    println!(
        "  accepted:            {:>9.0} msg/s  ({accept_secs:.2} s)",
        total as f64 / accept_secs
    );
    if let Some(sd) = submits_done.filter(|_| a.channel == "sms") {
        println!(
            "  {:<20} {:>9.0} msg/s  ({sd:.2} s)",
            if providers.is_some() {
                "provider accepted:"
            } else {
                "SMSC submits:"
            },
            total as f64 / sd
        );
    }
    println!(
        "  delivered (DLR):     {:>9.0} msg/s  ({done_secs:.2} s end to end)",
        total as f64 / done_secs
    );
    if let Some(hits) = &hook {
        println!(
            "  webhook ({}):       {} POSTs received by the end (every event of every message)",
            a.webhook,
            hits.load(Ordering::Relaxed)
        );
    }
    println!(
        "  API latency:         p50 {:.2} ms, p99 {:.2} ms",
        pct(&mut lat, 0.5),
        pct(&mut lat, 0.99)
    );
    println!(
        "  accept→delivered:    p50 {:.0} ms, p99 {:.0} ms (sample of {})",
        pct(&mut e2e, 0.5),
        pct(&mut e2e, 0.99),
        e2e.len()
    );
    if let Some(w) = written {
        println!(
            "  writes per message:  {:>9.1} rows inserted, updated or deleted ({})",
            w as f64 / total as f64,
            if a.queue.is_some() {
                "pg_stat_user_tables"
            } else {
                "SQLite total_changes() of the writer"
            }
        );
    }
    let per: Vec<String> = kept
        .tables
        .iter()
        .filter(|t| t.rows > 0)
        .map(|t| format!("{} {:.1}", t.table, t.rows as f64 / total as f64))
        .collect();
    println!("  rows kept per message: {}", per.join(", "));
    if a.queue.is_some() {
        let pids: Vec<u32> = children.0.iter().map(std::process::Child::id).collect();
        println!(
            "  peak RSS:            {:.0} MiB (API and workers together), {:.0} MiB (simulator and load generator)",
            peak_rss_of(&pids),
            peak_rss_mib()
        );
    } else {
        println!(
            "  peak RSS:            {:.0} MiB (server, simulator and load generator in one process)",
            peak_rss_mib()
        );
    }
    cancel.cancel();
    if let Some(server) = server {
        let _ = server.await;
    }
    drop(children);
    if let Some(pg) = &a.database_url {
        // The store's pool goes first, then the database.
        drop(store);
        let name = format!("hermod_bench_{}", std::process::id());
        if let Err(e) = hermod_store::Db::drop_database(pg, &name).await {
            eprintln!("could not drop the benchmark database {name}: {e}");
        }
    }
    smsc.stop();
    if let Some(r) = rbm {
        r.stop().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
