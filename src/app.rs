//! The composition root: the only place that picks concrete backends.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{App, HttpServer};
use hermod_api::AppState;
use hermod_channels::smpp::SmppChannel;
use hermod_core::ports::Store;
use hermod_crypto::ApiKeys;
use hermod_queue::SqlQueue;
use hermod_store::{Db, SqlStore};
use hermod_workers::{Pipeline, ReceiptBatcher, WorkerSettings};
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

/// Creates an API key for a tenant; prints nothing, returns the full key.
pub async fn create_key(settings: &Settings, tenant: &str) -> anyhow::Result<String> {
    let (_, store) = open_store(settings).await?;
    let keys = ApiKeys::new(settings.api_key_pepper.as_bytes());
    let k = keys.generate()?;
    store.create_api_key(tenant, &k.key_id, &k.hash).await?;
    Ok(k.full)
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
    let sink = ReceiptBatcher::start(store.clone(), 512, cancel.clone());
    let sms = SmppChannel::start(settings.smpp_settings(), sink, cancel.clone())
        .map_err(anyhow::Error::msg)?;
    let pipeline = Pipeline {
        store: store.clone(),
        queue,
        sms,
        settings: WorkerSettings {
            batch: settings.workers.batch,
            senders: settings.workers.senders,
            in_doubt_grace: Duration::from_secs(settings.workers.in_doubt_grace_secs),
            ..WorkerSettings::default()
        },
    };
    let tasks = pipeline.spawn(cancel.clone());
    let state = AppState {
        store,
        keys: ApiKeys::new(settings.api_key_pepper.as_bytes()),
        metrics: metrics_renderer(),
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
