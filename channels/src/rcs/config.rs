//! RBM agent settings (`[[rcs.agents]]`).

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use hermod_core::Secret;
use hermod_core::ports::ConfigError;

/// Google's global endpoint; regional ones (`europe-`, `us-`, `asia-`) work the same.
pub const DEFAULT_BASE_URL: &str = "https://rcsbusinessmessaging.googleapis.com";

/// The region an agent's data is hosted in (chosen when the agent was created): its
/// calls go to that region's endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Region {
    Europe,
    Us,
    Asia,
}

impl Region {
    /// Google's endpoint for the region.
    pub fn endpoint(self) -> &'static str {
        match self {
            Region::Europe => "https://europe-rcsbusinessmessaging.googleapis.com",
            Region::Us => "https://us-rcsbusinessmessaging.googleapis.com",
            Region::Asia => "https://asia-rcsbusinessmessaging.googleapis.com",
        }
    }
}

/// One RBM agent.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Our name for it: the webhook path `/v1/webhooks/rbm/{name}`, and a message whose
    /// `from` is this name goes through this agent.
    pub name: String,
    /// The RBM agent id (`my-agent@rbm.goog`), sent as `agentId`.
    pub agent_id: String,
    /// The service account's JSON key file.
    pub service_account_file: Option<PathBuf>,
    /// Or the key file's JSON itself (e.g. from a secret store via an environment
    /// variable).
    pub service_account_json: Option<Secret>,
    /// API endpoint: Google's global or regional one, or a simulator.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// `europe`, `us` or `asia`: the agent's hosting region. Its calls (sends,
    /// capability lookups, `users:batchGet`) go to that region's endpoint unless
    /// `base_url` names another.
    #[serde(default)]
    pub region: Option<Region>,
    /// Mark every user message read as it arrives (RBM shows it read on the phone);
    /// otherwise `POST /v1/inbound/{id}/read` does it when you choose.
    #[serde(default)]
    pub auto_read: bool,
    /// Upload every media message's file once (`files.create`) and send it by its RBM
    /// name, as `content.media.upload: true` does for one message.
    #[serde(default)]
    pub upload_media: bool,
    /// Overrides the key file's `token_uri`.
    pub token_uri: Option<String>,
    /// PEM roots for the API and token endpoints (a private simulator); the system's
    /// roots when unset.
    pub ca_file: Option<PathBuf>,
    /// The `clientToken` RBM signs webhooks with (set when the webhook was registered).
    pub client_token: Option<Secret>,
    /// Tenant (`ten_...`) that owns this agent's inbound messages; otherwise the tenant
    /// that last wrote to the sender.
    pub tenant: Option<String>,
    /// How long a "capable" answer (with its features) is trusted.
    #[serde(default = "default_capable_ttl")]
    pub capability_ttl_secs: u64,
    /// How long a "not RCS-reachable" answer is trusted.
    #[serde(default = "default_not_capable_ttl")]
    pub not_capable_ttl_secs: u64,
    /// Per request.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// The `messageTrafficType` of messages that name none (`authentication`,
    /// `transaction`, `promotion`, `service_request`, `acknowledgement`); unset: RBM
    /// applies the agent's use case (a multi-use agent then refuses the message).
    #[serde(default)]
    pub traffic_type: Option<hermod_core::model::TrafficType>,
}

fn default_base_url() -> String {
    DEFAULT_BASE_URL.to_owned()
}
fn default_capable_ttl() -> u64 {
    3600
}
fn default_not_capable_ttl() -> u64 {
    600
}
fn default_timeout() -> u64 {
    10
}

impl AgentConfig {
    /// An agent with defaults, for tests and the demo.
    pub fn new(name: &str, agent_id: &str, base_url: &str) -> Self {
        Self {
            name: name.to_owned(),
            agent_id: agent_id.to_owned(),
            service_account_file: None,
            service_account_json: None,
            base_url: base_url.to_owned(),
            token_uri: None,
            ca_file: None,
            client_token: None,
            tenant: None,
            capability_ttl_secs: default_capable_ttl(),
            not_capable_ttl_secs: default_not_capable_ttl(),
            timeout_secs: default_timeout(),
            traffic_type: None,
            region: None,
            auto_read: false,
            upload_media: false,
        }
    }

    /// Where its calls go: `base_url` when set, else its region's endpoint, else the
    /// global one.
    pub fn endpoint(&self) -> &str {
        match self.region {
            Some(r) if self.base_url == DEFAULT_BASE_URL => r.endpoint(),
            _ => &self.base_url,
        }
    }
}

/// `[rcs]`: the agents, and which one sends when a message names none.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RcsConfig {
    /// The RBM agents.
    pub agents: Vec<AgentConfig>,
    /// Name of the agent used when a message's `from` names none; the first one when
    /// unset.
    pub default_agent: Option<String>,
}

/// The fields of a service-account JSON key file that matter here.
#[derive(Clone, Deserialize)]
pub struct ServiceAccount {
    pub client_email: String,
    pub private_key: String,
    #[serde(default = "default_token_uri")]
    pub token_uri: String,
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri)
            .finish_non_exhaustive()
    }
}

fn default_token_uri() -> String {
    "https://oauth2.googleapis.com/token".to_owned()
}

impl ServiceAccount {
    pub fn load(cfg: &AgentConfig) -> Result<ServiceAccount, ConfigError> {
        let json = match (&cfg.service_account_json, &cfg.service_account_file) {
            (Some(j), _) => j.0.clone(),
            (None, Some(p)) => std::fs::read_to_string(p).map_err(|e| {
                ConfigError::new(format!(
                    "agent {}: cannot read service_account_file {}: {e}",
                    cfg.name,
                    p.display()
                ))
            })?,
            (None, None) => {
                return Err(ConfigError::new(format!(
                    "agent {}: set service_account_file or service_account_json",
                    cfg.name
                )));
            }
        };
        serde_json::from_str(&json).map_err(|e| {
            ConfigError::new(format!(
                "agent {}: the service-account key is not valid JSON with client_email and private_key: {e}",
                cfg.name
            ))
        })
    }
}
