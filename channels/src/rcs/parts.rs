//! The RCS channel's parts: one set of RBM clients (tokens, capability and upload
//! caches) serves the channel, the webhook's automatic READs and the API's agent
//! events; the RBM webhook at `/v1/webhooks/rbm/{agent}`; the agents and their launch
//! states in `GET /v1/connectors`.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use hermod_core::model::ChannelKind;
use hermod_core::ports::{AgentEvents, ConfigError, Connectors, Inbound, PortResult};
use hermod_core::sender::Sender;
use serde_json::{Value, json};

use super::channel::RcsChannel;
use super::config::RcsConfig;
use super::webhook::RbmWebhook;
use crate::{BuildError, ChannelEnv, ChannelParts};

/// The `[rcs]` section.
pub type Settings = RcsConfig;

/// The service-account key files the agents name.
pub fn key_files(cfg: &Settings) -> Vec<PathBuf> {
    cfg.agents
        .iter()
        .filter_map(|a| a.service_account_file.clone())
        .collect()
}

/// Agents with a `tenant`: their names are that tenant's senders.
pub fn fixed_senders(cfg: &Settings) -> Result<Vec<Sender>, ConfigError> {
    cfg.agents
        .iter()
        .filter_map(|a| a.tenant.as_ref().map(|t| (a, t)))
        .map(|(a, t)| {
            let tenant = hermod_core::TenantId::parse(t).ok_or_else(|| {
                ConfigError::new(format!("rcs.agents: tenant '{t}' is not a ten_… id"))
            })?;
            Ok(Sender {
                sender: a.name.clone(),
                tenant_id: tenant,
                default: false,
                created_at: 0,
            })
        })
        .collect()
}

/// The RCS channel of this process: nothing without agents.
pub fn build(cfg: &Settings, env: &ChannelEnv) -> Result<ChannelParts, BuildError> {
    let mut parts = ChannelParts::none(ChannelKind::Rcs);
    if cfg.agents.is_empty() {
        return Ok(parts);
    }
    parts.offered = true;
    let r = env.roles;
    if !(r.send || r.plan || r.api) {
        return Ok(parts);
    }
    let rcs = RcsChannel::new(cfg)?;
    if r.send || r.plan {
        parts.channel = Some(rcs.clone());
    }
    if r.api {
        let events: Arc<dyn AgentEvents> = rcs.clone();
        parts.ingress.push((
            "rbm",
            RbmWebhook::new(
                cfg,
                env.inbound.clone(),
                env.messages.clone(),
                env.receipts.clone(),
                env.help_reply.clone(),
                Some(events.clone()),
            ),
        ));
        parts.agent_events = Some(events);
    }
    parts.connectors = Some(Arc::new(Agents {
        agents: cfg
            .agents
            .iter()
            .map(|a| (a.name.clone(), a.agent_id.clone()))
            .collect(),
        inbound: env.inbound.clone(),
    }));
    Ok(parts)
}

/// The agents `(name, agent id)` with their launch states.
struct Agents {
    agents: Vec<(String, String)>,
    inbound: Arc<dyn Inbound>,
}

#[async_trait]
impl Connectors for Agents {
    async fn list(&self) -> PortResult<Vec<Value>> {
        let states = self.inbound.launch_states().await?;
        Ok(self
            .agents
            .iter()
            .map(|(name, agent_id)| {
                let launch: Vec<Value> = states
                    .iter()
                    .filter(|l| &l.agent == name)
                    .map(|l| {
                        json!({
                            "region": l.region,
                            "state": l.state,
                            "previous": l.previous,
                            "at": hermod_core::rfc3339(l.at),
                        })
                    })
                    .collect();
                json!({
                    "name": format!("rbm:{name}"),
                    "kind": "rcs",
                    "agent_id": agent_id,
                    "launch": launch,
                })
            })
            .collect())
    }
}
