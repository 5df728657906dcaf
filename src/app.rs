//! The composition root: the only place that picks concrete backends.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{App, HttpServer};
use hermod_api::{AppState, Operations};
use hermod_channels::smpp::{Sinks, SmsRouter};
use hermod_core::ports::Store;
use hermod_crypto::ApiKeys;
use hermod_queue::SqlQueue;
use hermod_store::{Db, SqlStore};
use hermod_workers::{InboundHandler, Pipeline, ReceiptBatcher, WorkerSettings};
use tokio_util::sync::CancellationToken;

use crate::settings::Settings;

/// Prepares the data directory (embedded) and applies migrations.
pub async fn migrate(settings: &Settings) -> anyhow::Result<Vec<String>> {
    let url = settings.database_url();
    if !hermod_store::is_postgres_url(&url) {
        std::fs::create_dir_all(&settings.data_dir)?;
    }
    Ok(Db::migrate(&url).await?)
}

pub async fn open_store(settings: &Settings) -> anyhow::Result<(Db, Arc<SqlStore>)> {
    migrate(settings).await?;
    let db = Db::open(&settings.database_url(), 8).await?;
    Ok((db.clone(), Arc::new(SqlStore::new(db))))
}

/// Creates an API key for a tenant; prints nothing, returns the tenant id and the
/// full key.
pub async fn create_key(settings: &Settings, tenant: &str) -> anyhow::Result<(String, String)> {
    let (_, store) = open_store(settings).await?;
    let keys = ApiKeys::new(settings.api_key_pepper.0.as_bytes());
    let k = keys.generate()?;
    let id = store.create_api_key(tenant, &k.key_id, &k.hash).await?;
    Ok((id.to_string(), k.full))
}

/// `GET /v1/connectors` and reloads, backed by the SMS router.
struct Ops {
    router: Arc<SmsRouter>,
    config: Option<PathBuf>,
}

impl Ops {
    fn reload_routes(&self) -> Result<serde_json::Value, String> {
        let s = Settings::load(self.config.as_deref()).map_err(|e| format!("{e:#}"))?;
        let n = self.router.reload_routes(s.smpp.routes)?;
        Ok(
            serde_json::json!({ "routes": n, "applied": self.router.routes().iter().map(|r| serde_json::json!({
            "prefix": r.prefix, "connector": r.connector, "priority": r.priority, "cost": r.cost
        })).collect::<Vec<_>>() }),
        )
    }
}

impl Operations for Ops {
    fn connectors(&self) -> serde_json::Value {
        serde_json::to_value(self.router.status()).unwrap_or_default()
    }
    fn reload(&self) -> Result<serde_json::Value, String> {
        self.reload_routes()
    }
}

/// SIGHUP re-reads the configuration and applies the routes.
fn reload_on_sighup(ops: Arc<Ops>, cancel: CancellationToken) {
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                r = hup.recv() => if r.is_none() { return },
            }
            match ops.reload_routes() {
                Ok(v) => tracing::info!(routes = %v["routes"], "SIGHUP: configuration reloaded"),
                Err(e) => tracing::error!(error = %e, "SIGHUP: reload failed; routes unchanged"),
            }
        }
    });
}

fn metrics_renderer() -> Arc<dyn Fn() -> String + Send + Sync> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Suffix("_seconds".into()),
            &[
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ],
        )
        .unwrap_or_else(|_| PrometheusBuilder::new());
    match builder.install_recorder() {
        Ok(handle) => {
            let h = handle.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    h.run_upkeep();
                }
            });
            Arc::new(move || handle.render())
        }
        // A recorder is already installed (several servers in one process: tests).
        Err(_) => Arc::new(String::new),
    }
}

/// Runs the API and every worker until `cancel` fires.
pub async fn serve(
    settings: Settings,
    config: Option<PathBuf>,
    listener: TcpListener,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let (db, store) = open_store(&settings).await?;
    let queue = Arc::new(SqlQueue::new(db.clone(), Duration::from_secs(60)));
    if !db.is_postgres() {
        // One embedded process owns the file: jobs leased by a crashed run are free now.
        let n = queue.release_all_leases().await?;
        if n > 0 {
            tracing::info!(jobs = n, "released jobs leased before a restart");
        }
    }
    let inbound = InboundHandler::new(
        store.clone(),
        settings.smpp.help_reply.clone(),
        settings
            .smpp
            .numbers
            .iter()
            .map(|(n, t)| (n.clone(), hermod_core::TenantId::from_trusted(t.clone())))
            .collect(),
    );
    inbound.spawn_flusher(
        Duration::from_secs(settings.smpp.inbound_part_timeout_secs),
        cancel.clone(),
    );
    let sinks = Sinks {
        receipts: ReceiptBatcher::start(store.clone(), 512, cancel.clone()),
        inbound,
    };
    let router = SmsRouter::start(
        &settings.connectors(),
        settings.smpp.routes.clone(),
        sinks,
        cancel.clone(),
    )
    .map_err(anyhow::Error::msg)?;
    let ops = Arc::new(Ops {
        router: router.clone(),
        config,
    });
    reload_on_sighup(ops.clone(), cancel.clone());
    let pipeline = Pipeline {
        store: store.clone(),
        queue,
        sms: router,
        settings: WorkerSettings {
            batch: settings.workers.batch,
            senders: settings.workers.senders,
            in_doubt_grace: settings.in_doubt_grace(),
            ..WorkerSettings::default()
        },
    };
    let tasks = pipeline.spawn(cancel.clone());
    let state = AppState {
        store,
        keys: ApiKeys::new(settings.api_key_pepper.0.as_bytes()),
        metrics: metrics_renderer(),
        limits: Arc::new(settings.rate_limits()),
        ops: Some(ops),
        admin_token: settings.admin_token.as_ref().map(|t| t.0.clone()),
    };
    let server =
        HttpServer::new(move || App::new().configure(hermod_api::configure(state.clone())))
            .listen(listener)?
            .shutdown_timeout(5)
            .disable_signals()
            .run();
    let handle = server.handle();
    let c = cancel.clone();
    tokio::spawn(async move {
        c.cancelled().await;
        handle.stop(true).await;
    });
    server.await?;
    cancel.cancel();
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    Ok(())
}
