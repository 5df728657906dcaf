//! The RCS channel: one or more RBM agents behind the `Channel` trait.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use hermod_core::model::{ChannelKind, Outgoing};
use hermod_core::plan::{Assessment, Candidate, DueFallback, Withdrawal};
use hermod_core::ports::ConfigError;
use hermod_core::ports::{Channel, ChannelError};
use hermod_core::{TenantId, now_ms};

use super::client::{Capability, RbmClient, RbmError, Revoke, message_id_for};
use super::config::RcsConfig;
use super::message::agent_message;

/// Attempt error codes of the RCS channel.
pub mod codes {
    /// The number is not RCS-reachable (capability 404, or a send's 404).
    pub const NOT_CAPABLE: &str = "rcs_not_capable";
    /// Reachable, but the device lacks a feature the content needs.
    pub const FEATURE_UNSUPPORTED: &str = "rcs_feature_unsupported";
    pub const INVALID: &str = "rbm_invalid_argument";
    pub const TTL_EXPIRED: &str = "ttl_expired";
    /// Every agent belongs to other tenants.
    pub const NO_AGENT: &str = "rcs_no_agent";
}

/// Provider ids of RBM messages: `rbm:<messageId>`.
pub fn provider_id(message_id: &str) -> String {
    format!("rbm:{message_id}")
}

pub struct RcsChannel {
    agents: Vec<RbmClient>,
    default: usize,
}

impl RcsChannel {
    pub fn new(cfg: &RcsConfig) -> Result<Arc<Self>, ConfigError> {
        if cfg.agents.is_empty() {
            return Err(ConfigError::new("rcs: no agents configured"));
        }
        let mut agents = Vec::new();
        for a in &cfg.agents {
            if agents.iter().any(|c: &RbmClient| c.config().name == a.name) {
                return Err(ConfigError::new(format!(
                    "rcs: agent name {} is used twice",
                    a.name
                )));
            }
            agents.push(RbmClient::new(a.clone())?);
        }
        let default = match &cfg.default_agent {
            None => 0,
            Some(n) => agents
                .iter()
                .position(|c| &c.config().name == n)
                .ok_or_else(|| {
                    ConfigError::new(format!("rcs: default_agent {n} is not among the agents"))
                })?,
        };
        Ok(Arc::new(Self { agents, default }))
    }

    pub fn agents(&self) -> &[RbmClient] {
        &self.agents
    }

    /// The agent a message of `tenant` goes through: the one its `from` names (the API
    /// let it use that name only if it may), else the tenant's own agent, else the
    /// default one when it belongs to no other tenant. None: no agent this tenant may
    /// use.
    pub fn agent_for(&self, from: Option<&str>, tenant: &TenantId) -> Option<&RbmClient> {
        self.agent_index(from, tenant).map(|i| &self.agents[i])
    }

    fn agent_index(&self, from: Option<&str>, tenant: &TenantId) -> Option<usize> {
        let owner = |i: usize| self.agents[i].config().tenant.as_deref();
        if let Some(i) = from.and_then(|f| self.agents.iter().position(|a| a.config().name == f)) {
            return owner(i).is_none_or(|t| t == tenant.as_str()).then_some(i);
        }
        (0..self.agents.len())
            .find(|&i| owner(i) == Some(tenant.as_str()))
            .or_else(|| owner(self.default).is_none().then_some(self.default))
            .or_else(|| (0..self.agents.len()).find(|&i| owner(i).is_none()))
    }

    /// One `users:batchGet` per agent for the numbers not cached yet (when there are
    /// at least two: one number is a plain capability lookup anyway).
    async fn lookup_uncached<'a>(
        &self,
        who: impl Iterator<Item = (Option<&'a str>, &'a TenantId, &'a str)>,
    ) {
        let mut by_agent: HashMap<usize, Vec<String>> = HashMap::new();
        for (from, tenant, phone) in who {
            let Some(i) = self.agent_index(from, tenant) else {
                continue;
            };
            if self.agents[i].cached_capability(phone).is_some() {
                continue;
            }
            let list = by_agent.entry(i).or_default();
            if !list.iter().any(|p| p == phone) {
                list.push(phone.to_owned());
            }
        }
        for (i, phones) in by_agent {
            if phones.len() >= 2
                && let Err(e) = self.agents[i].batch_reachable(&phones).await
            {
                tracing::warn!(agent = %self.agents[i].config().name, error = %e,
                    "users:batchGet failed: its numbers keep RCS with their capability unknown for a minute (no lookup one by one); the send decides");
            }
        }
    }

    async fn assess_one(&self, c: &Candidate) -> Assessment {
        let Some(agent) = self.agent_for(c.from.as_deref(), &c.tenant_id) else {
            return Assessment::skip(codes::NO_AGENT);
        };
        let needed = c.content.as_ref().map(|m| m.features()).unwrap_or_default();
        match agent.capability(c.to.as_str(), !needed.is_empty()).await {
            Ok(Capability::NotCapable) => Assessment::skip(codes::NOT_CAPABLE),
            Ok(Capability::Unknown) => Assessment::keep("rcs_capability_unknown"),
            Ok(cap) if cap.supports(&needed) => Assessment::keep("rcs_capable"),
            Ok(cap) => match c
                .content
                .as_ref()
                .and_then(|m| m.degrade(|f| cap.supports(&[f])))
            {
                Some(_) => Assessment::keep("rcs_capable_degraded_content"),
                None => Assessment::skip(codes::FEATURE_UNSUPPORTED),
            },
            Err(e) => {
                tracing::debug!(error = %e, "capability lookup failed at planning");
                Assessment::keep("rcs_capability_unknown")
            }
        }
    }
}

fn send_error(e: RbmError) -> ChannelError {
    match &e {
        RbmError::Api { status: 404, .. } => ChannelError::Permanent {
            code: codes::NOT_CAPABLE.into(),
        },
        RbmError::Api { status: 400, .. } => ChannelError::Permanent {
            code: codes::INVALID.into(),
        },
        RbmError::Api { retry_after, .. } if e.is_transient() => ChannelError::Transient {
            code: e.code(),
            retry_after: *retry_after,
        },
        RbmError::Api { .. } => ChannelError::Permanent { code: e.code() },
        // RBM ignores a repeated messageId, so a send whose answer was lost is simply
        // sent again: never in doubt.
        RbmError::Transport(_) | RbmError::Token(_) => ChannelError::Transient {
            code: e.code(),
            retry_after: None,
        },
    }
}

#[async_trait]
impl Channel for RcsChannel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Rcs
    }

    /// RBM ignores a repeated messageId (ours is the attempt's).
    fn idempotent_sends(&self) -> bool {
        true
    }

    /// One `users:batchGet` per agent for the numbers of a batch that are not cached.
    async fn prepare(&self, batch: &[Outgoing]) {
        self.lookup_uncached(
            batch
                .iter()
                .map(|o| (o.from.as_deref(), &o.tenant_id, o.to.as_str())),
        )
        .await;
    }

    /// Kept when the number is RCS-capable (cached, else one `users:batchGet` per
    /// agent, else a capability lookup); skipped when it is not. A lookup that fails
    /// keeps the channel (`rcs_capability_unknown`, and for a failed batch without a
    /// lookup per number): the send decides, and falls back if need be.
    async fn assess(&self, batch: &[Candidate]) -> Vec<Assessment> {
        self.lookup_uncached(
            batch
                .iter()
                .map(|c| (c.from.as_deref(), &c.tenant_id, c.to.as_str())),
        )
        .await;
        futures::future::join_all(batch.iter().map(|c| self.assess_one(c))).await
    }

    /// Revokes the RBM message: 200 withdrawn, 404 already delivered.
    async fn withdraw(&self, due: &DueFallback) -> Result<Withdrawal, ChannelError> {
        let Some(agent) = self.agent_for(due.from.as_deref(), &due.tenant_id) else {
            // Its agent was reassigned since: it cannot be revoked from here.
            return Ok(Withdrawal::NotSupported);
        };
        match agent
            .revoke(due.to.as_str(), &message_id_for(due.attempt_id.as_str()))
            .await
        {
            Ok(Revoke::Revoked) => Ok(Withdrawal::Withdrawn),
            Ok(Revoke::AlreadyDelivered) => Ok(Withdrawal::AlreadyDelivered),
            Err(e) => Err(ChannelError::Transient {
                code: e.code(),
                retry_after: None,
            }),
        }
    }

    async fn send(&self, msg: &Outgoing) -> Result<(Vec<String>, String), ChannelError> {
        let now = now_ms();
        if msg.expires_at.is_some_and(|e| e <= now) {
            return Err(ChannelError::Permanent {
                code: codes::TTL_EXPIRED.into(),
            });
        }
        let Some(agent) = self.agent_for(msg.from.as_deref(), &msg.tenant_id) else {
            return Err(ChannelError::Permanent {
                code: codes::NO_AGENT.into(),
            });
        };
        let phone = msg.to.as_str();
        let needed = msg
            .content
            .as_ref()
            .map(|c| c.features())
            .unwrap_or_default();
        let cap = agent
            .capability(phone, !needed.is_empty())
            .await
            .map_err(send_error)?;
        if cap == Capability::NotCapable {
            return Err(ChannelError::Permanent {
                code: codes::NOT_CAPABLE.into(),
            });
        }
        // A carousel to a device without carousels goes as a standalone card, or as
        // text; only when nothing fits is the feature missing.
        let degraded;
        let msg = if cap.supports(&needed) {
            msg
        } else {
            let Some(form) = msg
                .content
                .as_ref()
                .and_then(|c| c.degrade(|f| cap.supports(&[f])))
            else {
                return Err(ChannelError::Permanent {
                    code: codes::FEATURE_UNSUPPORTED.into(),
                });
            };
            degraded = Outgoing {
                content: Some(form),
                ..msg.clone()
            };
            &degraded
        };
        let id = message_id_for(msg.attempt_id.as_str());
        let mut body = agent_message(msg, now);
        if let Some(m) = msg.content.as_ref().and_then(|c| match &c.content {
            hermod_core::content::Content::Media(m) => Some(m),
            _ => None,
        }) && (m.upload || agent.config().upload_media)
        {
            let name = agent
                .uploaded_file(&m.url, m.thumbnail_url.as_deref())
                .await
                .map_err(|e| {
                    tracing::debug!(agent = %agent.config().name, error = %e, "RBM files.create failed");
                    send_error(e)
                })?;
            body["contentMessage"]["uploadedRbmFile"] = serde_json::json!({ "fileName": name });
            if let Some(o) = body["contentMessage"].as_object_mut() {
                o.remove("contentInfo");
            }
        }
        if let Some(t) = msg.traffic_type.or(agent.config().traffic_type) {
            body["messageTrafficType"] = t.rbm().into();
        }
        match agent.send(phone, &id, &body).await {
            Ok(()) => Ok((vec![provider_id(&id)], "SENT".into())),
            Err(e) => {
                if matches!(e, RbmError::Api { status: 404, .. }) {
                    agent.forget_capability(phone);
                }
                tracing::debug!(agent = %agent.config().name, error = %e, "RBM send failed");
                Err(send_error(e))
            }
        }
    }
}

#[async_trait]
impl hermod_core::ports::AgentEvents for RcsChannel {
    async fn send_agent_event(
        &self,
        connector: &str,
        to: &str,
        kind: hermod_core::ports::AgentEventKind,
        message_id: Option<&str>,
    ) -> Result<(), hermod_core::ports::AgentEventError> {
        use hermod_core::ports::AgentEventError;
        let agent = connector
            .strip_prefix("rbm:")
            .and_then(|name| self.agents.iter().find(|a| a.config().name == name))
            .ok_or_else(|| {
                AgentEventError::NotSupported(format!(
                    "{connector} has no agent events: only messages that came over RCS do"
                ))
            })?;
        if kind == hermod_core::ports::AgentEventKind::Read && message_id.is_none() {
            return Err(AgentEventError::NotSupported(
                "the message has no RBM message id (it was stored before Hermod kept them)".into(),
            ));
        }
        let name = match kind {
            hermod_core::ports::AgentEventKind::Read => "read",
            hermod_core::ports::AgentEventKind::Typing => "typing",
        };
        match agent.agent_event(to, kind, message_id).await {
            Ok(()) => {
                metrics::counter!("hermod_rbm_agent_events_total", "type" => name).increment(1);
                Ok(())
            }
            Err(e) => {
                metrics::counter!("hermod_rbm_agent_events_failed_total", "type" => name)
                    .increment(1);
                Err(AgentEventError::Provider(e.to_string()))
            }
        }
    }
}
