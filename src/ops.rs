//! The operator's view of a running process: `GET /v1/connectors` and reloads over the
//! channels' connectors views (SIGHUP or `POST /v1/admin/reload`), and `/metrics`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hermod_api::Operations;
use hermod_core::model::ChannelKind;
use hermod_core::ports::{ConfigError, Connectors};
use tokio_util::sync::CancellationToken;

use crate::settings::Settings;

/// `GET /v1/connectors` and reloads, over the channels' connectors views.
pub(crate) struct Ops {
    pub(crate) config: Option<PathBuf>,
    /// Each channel's view, SMS first (as operators read them): the reverse of the
    /// registry's order.
    pub(crate) views: Vec<(ChannelKind, Arc<dyn Connectors>)>,
}

impl Ops {
    /// Re-reads the configuration and hands each channel its section.
    fn reload_all(&self) -> Result<serde_json::Value, ConfigError> {
        let s = Settings::load(self.config.as_deref())
            .map_err(|e| ConfigError::new(format!("{e:#}")))?;
        let sections = crate::channels::sections(&s);
        let mut out = serde_json::Map::new();
        for (kind, view) in &self.views {
            let Some((_, section)) = sections.iter().find(|(k, _)| k == kind) else {
                continue;
            };
            if let Some(r) = view.reload(section)
                && let serde_json::Value::Object(applied) = r?
            {
                out.extend(applied);
            }
        }
        if out.is_empty() {
            return Err(ConfigError::new(
                "this process runs no SMS stage: send SIGHUP to the workers, or reload a serve process",
            ));
        }
        Ok(serde_json::Value::Object(out))
    }
}

#[async_trait::async_trait]
impl Operations for Ops {
    async fn connectors(&self) -> Result<serde_json::Value, hermod_api::ApiError> {
        let mut all = Vec::new();
        for (_, view) in &self.views {
            all.extend(view.list().await?);
        }
        Ok(serde_json::Value::Array(all))
    }
    fn reload(&self) -> Result<serde_json::Value, ConfigError> {
        self.reload_all()
    }
}

/// SIGHUP re-reads the configuration and applies the routes.
pub(crate) fn reload_on_sighup(ops: Arc<Ops>, cancel: CancellationToken) {
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
            match ops.reload_all() {
                Ok(v) => tracing::info!(routes = %v["routes"], "SIGHUP: configuration reloaded"),
                Err(e) => tracing::error!(error = %e, "SIGHUP: reload failed; routes unchanged"),
            }
        }
    });
}

pub(crate) fn metrics_renderer() -> Arc<dyn Fn() -> String + Send + Sync> {
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
