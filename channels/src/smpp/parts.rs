//! The SMS channel's parts: the router over the connectors (where this process runs
//! the SMS stage), or a stand-in that sends nothing; the connectors view (this
//! process's binds, or every worker's from the bind leases) and the route reload.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hermod_core::model::{ChannelKind, Outgoing};
use hermod_core::ports::{Channel, ChannelError, ConfigError, Connectors, Leases, PortResult};
use hermod_core::sender::Sender;
use serde_json::{Value, json};

use super::bind::{BindLeases, Sinks};
use super::config::SmppConfig;
use super::connector::Connector;
use super::router::{SmsRouter, Upstream};
use crate::providers::{HttpConnector, ProviderIngress};
use crate::{BuildError, ChannelEnv, ChannelParts};

/// The `[smpp]` section.
pub type Settings = SmppConfig;

/// Private keys the section names (client certificates' keys).
pub fn key_files(cfg: &Settings) -> Vec<PathBuf> {
    cfg.connectors()
        .into_iter()
        .filter_map(|c| c.client_key_file)
        .collect()
}

/// `smpp.numbers`: our numbers and the tenants that own them.
pub fn fixed_senders(cfg: &Settings) -> Result<Vec<Sender>, ConfigError> {
    let mut numbers: Vec<_> = cfg.numbers.iter().collect();
    numbers.sort();
    numbers
        .into_iter()
        .map(|(n, t)| {
            let tenant = hermod_core::TenantId::parse(t).ok_or_else(|| {
                ConfigError::new(format!("smpp.numbers: tenant '{t}' is not a ten_… id"))
            })?;
            Ok(Sender {
                sender: n.trim().to_owned(),
                tenant_id: tenant,
                default: false,
                created_at: 0,
            })
        })
        .collect()
}

/// The SMS channel of this process: its SMPP connectors and HTTP providers behind one
/// router (where it sends), and the providers' webhooks (where it serves the API).
pub fn build(cfg: &Settings, env: &ChannelEnv) -> Result<ChannelParts, BuildError> {
    let mut parts = ChannelParts::none(ChannelKind::Sms);
    parts.offered = true;
    // HTTP providers are cheap to build; every role that needs them gets its own.
    let providers = if env.roles.send || env.roles.api {
        cfg.providers
            .iter()
            .map(|p| HttpConnector::new(p, cfg.default_source.clone()))
            .collect::<Result<Vec<_>, _>>()?
    } else {
        Vec::new()
    };
    if env.roles.api {
        parts.ingress =
            ProviderIngress::for_kinds(&providers, env.receipts.clone(), env.inbound_sink.clone());
    }
    if env.roles.send {
        let leases = env.distributed.then(|| BindLeases {
            store: env.leases.clone(),
            holder: env.holder.clone(),
            ttl: env.lease_ttl,
        });
        let sinks = Sinks {
            receipts: env.receipts.clone(),
            inbound: env.inbound_sink.clone(),
            leases,
        };
        let mut upstreams: Vec<Arc<dyn Upstream>> = Vec::new();
        for c in &cfg.connectors() {
            upstreams.push(Connector::start(c, sinks.clone(), env.cancel.clone())?);
        }
        upstreams.extend(providers.into_iter().map(|p| p as Arc<dyn Upstream>));
        let router = SmsRouter::new(upstreams, cfg.routes.clone())?;
        parts.channel = Some(router.clone());
        parts.connectors = Some(Arc::new(LocalView(router)));
        parts.inbound_part_timeout = Some(Duration::from_secs(cfg.inbound_part_timeout_secs));
    } else {
        // Planning needs no bind: every number can take SMS.
        parts.channel = Some(Arc::new(Elsewhere));
        if env.distributed {
            parts.connectors = Some(Arc::new(ClusterView {
                leases: env.leases.clone(),
                providers: providers.clone(),
            }));
        }
    }
    Ok(parts)
}

/// The SMS channel of a process that runs no SMS stage (it plans, or serves the API):
/// it sends nothing and keeps every recipient.
struct Elsewhere;

#[async_trait]
impl Channel for Elsewhere {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Sms
    }
    fn ready(&self) -> bool {
        false
    }
    async fn send(&self, _: &Outgoing) -> Result<(Vec<String>, String), ChannelError> {
        Err(ChannelError::Transient {
            code: "not_here".into(),
            retry_after: None,
        })
    }
}

/// This process's connectors, with their binds, health and limits.
struct LocalView(Arc<SmsRouter>);

#[async_trait]
impl Connectors for LocalView {
    async fn list(&self) -> PortResult<Vec<Value>> {
        Ok(self.0.status())
    }

    /// Applies `[[smpp.routes]]` (binds and messages in flight are untouched).
    fn reload(&self, section: &Value) -> Option<Result<Value, ConfigError>> {
        let applied = serde_json::from_value::<Settings>(section.clone())
            .map_err(|e| ConfigError::new(format!("smpp: {e}")))
            .and_then(|s| self.0.reload_routes(s.routes))
            .map(|n| {
                let routes: Vec<Value> = self
                    .0
                    .routes()
                    .iter()
                    .map(|r| {
                        json!({
                            "prefix": r.prefix, "connector": r.connector,
                            "priority": r.priority, "cost": r.cost
                        })
                    })
                    .collect();
                json!({ "routes": n, "applied": routes })
            });
        Some(applied)
    }
}

/// Every worker's binds, from their lease rows (an API process of the distributed
/// mode, which holds none), and the HTTP providers every worker has.
struct ClusterView {
    leases: Arc<dyn Leases>,
    providers: Vec<Arc<HttpConnector>>,
}

#[async_trait]
impl Connectors for ClusterView {
    async fn list(&self) -> PortResult<Vec<Value>> {
        let mut v = cluster_view(self.leases.live_leases().await?);
        // Configured here as in the workers; the counters are this process's (none).
        v.extend(self.providers.iter().map(|p| {
            let mut s = p.status();
            s["sent_total"] = Value::Null;
            s["in_flight"] = Value::Null;
            s
        }));
        Ok(v)
    }
}

/// Every live bind lease, grouped by connector (`name#n/mode` → `name`).
fn cluster_view(leases: Vec<(String, String, i64, Option<String>)>) -> Vec<Value> {
    let mut by: Vec<(String, Vec<Value>)> = Vec::new();
    for (bind, holder, expires_at, status) in leases {
        let name = bind.split('#').next().unwrap_or_default().to_owned();
        let mut b: Value = status
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_else(|| json!({ "id": bind, "state": "held" }));
        b["holder"] = json!(holder);
        b["lease_expires_at"] = json!(expires_at);
        match by.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => v.push(b),
            None => by.push((name, vec![b])),
        }
    }
    by.into_iter()
        .map(|(name, binds)| {
            let healthy = binds
                .iter()
                .any(|b| b["state"] == "bound" && b["mode"] != "receiver");
            json!({ "name": name, "healthy": healthy, "binds": binds })
        })
        .collect()
}
