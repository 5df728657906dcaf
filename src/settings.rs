//! Typed settings: defaults, then `--config FILE` (TOML), then `HERMOD_*` variables
//! (`HERMOD_SMPP_URL`, `HERMOD_DATABASE_URL`, nested keys with `__`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hermod_channels::app::AppConfig;
use hermod_channels::rcs::RcsConfig;
use hermod_channels::smpp::{ConnectorConfig, RouteConfig, Secret};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Address the HTTP API listens on.
    pub listen: String,
    /// Directory for the embedded database.
    pub data_dir: PathBuf,
    /// `postgres://...`, or a SQLite file; default `<data_dir>/hermod.db`.
    pub database_url: Option<String>,
    /// SQLite: `full` (default; a commit is on disk before it is answered) or `normal`
    /// (synced at checkpoints: faster, but a power cut may lose the last commits).
    pub sqlite_synchronous: hermod_store::Synchronous,
    /// Days an `Idempotency-Key` is remembered; after that the same key is a new request.
    pub idempotency_retention_days: u32,
    /// Server-side secret mixed into API-key hashes.
    pub api_key_pepper: Secret,
    /// Bearer token of the admin endpoints (`POST /v1/admin/reload`); unset = off.
    pub admin_token: Option<Secret>,
    pub api: Api,
    /// `amqp://user:pass@host:5672/%2f`: the distributed mode (with PostgreSQL).
    pub queue: Option<String>,
    /// RabbitMQ queue names start with this.
    pub queue_prefix: String,
    /// Unacknowledged jobs a consumer holds.
    pub queue_prefetch: u16,
    /// Deliveries after which a job goes to the dead-letter queue.
    pub queue_max_deliveries: i32,
    /// Delete RabbitMQ queues unused this long (ephemeral installations, tests).
    pub queue_expires_secs: Option<u64>,
    pub smpp: Smpp,
    /// RCS through Google RBM: `[[rcs.agents]]`.
    #[serde(default)]
    pub rcs: RcsConfig,
    /// The encrypted app channel: `[app] push_relay_url`, `[app.push_relays]`.
    #[serde(default)]
    pub app: AppConfig,
    /// Customer webhooks: `[webhooks] timeout_secs`.
    #[serde(default)]
    pub webhooks: WebhooksConfig,
    /// Content at rest: `[encryption] key_file`.
    #[serde(default)]
    pub encryption: EncryptionConfig,
    /// The audit chain: `[audit] signing_key_file`, `checkpoint_interval_secs`.
    #[serde(default)]
    pub audit: AuditConfig,
    /// Who owns which sender: `[senders] allow_unowned`, `[[senders.assign]]`.
    #[serde(default)]
    pub senders: SendersConfig,
    pub workers: Workers,
}

/// `[senders]`: senders (numbers, alphanumeric ids, RCS agent names) and their owners.
/// More come from `POST /v1/admin/senders`; `smpp.numbers` and an RCS agent's `tenant`
/// assign too.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SendersConfig {
    /// May a tenant send from a sender nobody owns? Replies to it reach no tenant.
    /// Off by default: a tenant sends only from its own senders.
    pub allow_unowned: bool,
    pub assign: Vec<SenderAssign>,
}

/// `[[senders.assign]]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SenderAssign {
    pub sender: String,
    /// `ten_…`.
    pub tenant: String,
    /// The tenant's sender for messages without `from`.
    #[serde(default)]
    pub default: bool,
}

/// `[encryption]`: where the master keys are.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EncryptionConfig {
    /// JSON `{"active": id, "master_keys": {id: base64}, "lookup_key": base64}`;
    /// default `<data_dir>/master-keys.json`, created on first start if missing.
    pub key_file: Option<PathBuf>,
}

/// `[audit]`: the checkpoint signing key and how often heads are signed.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Ed25519 private key, PKCS#8 DER as base64; default
    /// `<data_dir>/audit-signing-key.p8`, created on first start if missing.
    pub signing_key_file: Option<PathBuf>,
    /// Sign every tenant's moved head this often.
    pub checkpoint_interval_secs: u64,
    /// Look for content past its tenant's retention period this often.
    pub retention_sweep_secs: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            signing_key_file: None,
            checkpoint_interval_secs: 300,
            retention_sweep_secs: 600,
        }
    }
}

/// `[webhooks]`: how deliveries to customer endpoints are made.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// Each POST's time limit; a slow endpoint holds a slot for at most this.
    pub timeout_secs: u64,
    /// Internal ranges (CIDR or single addresses) that webhook endpoints,
    /// `callback_url`s and push relays may reach anyway, e.g. `["127.0.0.1/32"]`.
    /// Empty (the default): loopback, private, link-local, CGNAT, multicast and other
    /// non-public addresses are refused.
    pub allow_private: Vec<String>,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self {
            timeout_secs: 10,
            allow_private: Vec::new(),
        }
    }
}

impl WebhooksConfig {
    /// The SSRF guard's policy (`allow_private` checked).
    pub fn address_policy(&self) -> anyhow::Result<hermod_core::net::AddressPolicy> {
        hermod_core::net::AddressPolicy::new(&self.allow_private)
            .map_err(|e| anyhow::anyhow!("[webhooks] {e}"))
    }
}

/// Per-tenant limits on message creation (`0` = unlimited), and the budgets of the
/// endpoints that cost more than a message.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Api {
    /// Messages per second per tenant; 0 = no limit.
    pub rate_limit_per_sec: f64,
    /// Messages a tenant may send at once; `rate_limit_per_sec` when 0.
    pub rate_limit_burst: f64,
    /// Overrides by tenant id (`ten_...`).
    pub tenant_limits: HashMap<String, TenantLimit>,
    /// Messages per second each alert hook may raise (its own budget: a flood on one
    /// hook neither passes this nor eats the tenant's `rate_limit_per_sec`).
    pub hook_rate_per_sec: f64,
    pub hook_burst: f64,
    /// `GET /v1/audit/verify` + `POST /v1/audit/checkpoints` calls per second per tenant.
    pub audit_rate_per_sec: f64,
    pub audit_burst: f64,
    /// `GET /v1/app/stream` sockets a device may open per second.
    pub stream_opens_per_sec: f64,
    pub stream_burst: f64,
}

impl Default for Api {
    fn default() -> Self {
        Self {
            rate_limit_per_sec: 0.0,
            rate_limit_burst: 0.0,
            tenant_limits: HashMap::new(),
            hook_rate_per_sec: 1.0,
            hook_burst: 60.0,
            audit_rate_per_sec: 0.1,
            audit_burst: 5.0,
            stream_opens_per_sec: 0.2,
            stream_burst: 5.0,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantLimit {
    pub per_sec: f64,
    #[serde(default)]
    pub burst: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Smpp {
    /// The single connector used when `connectors` is empty:
    /// `smpp://system_id:password@host:port` (`smpps://` for TLS).
    pub url: Secret,
    pub system_type: String,
    pub window: usize,
    pub enquire_link_secs: u64,
    pub response_timeout_secs: u64,
    /// Sender when a message names none (and a connector sets none).
    pub default_source: Option<String>,
    /// Reply to an inbound HELP; unset = no reply.
    pub help_reply: Option<String>,
    /// Our numbers and the tenant (`ten_...`) that owns each (like `[[senders.assign]]`).
    #[serde(default)]
    pub numbers: HashMap<String, String>,
    /// A concatenated inbound message still missing parts after this long is stored
    /// with the parts that came.
    pub inbound_part_timeout_secs: u64,
    /// Any number of SMSC connectors (`[[smpp.connectors]]`).
    #[serde(default)]
    pub connectors: Vec<ConnectorConfig>,
    /// Prefix routes (`[[smpp.routes]]`), hot-reloadable with SIGHUP or
    /// `POST /v1/admin/reload`.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workers {
    pub batch: usize,
    pub senders: usize,
    /// The longest a submit left in doubt (its response lost) waits for a receipt
    /// that recognises it before it is sent again.
    pub in_doubt_grace_secs: u64,
    /// The shortest: once receipts have been seen on a connector, the wait is three
    /// times the slowest recent one plus a second, within these bounds.
    pub in_doubt_min_grace_secs: u64,
    /// With PostgreSQL, each SMPP bind is held by one process through a lease of
    /// this length (taken over within it when the holder dies).
    pub bind_lease_secs: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./hermod-data"),
            database_url: None,
            sqlite_synchronous: hermod_store::Synchronous::Full,
            idempotency_retention_days: 7,
            api_key_pepper: Secret::default(),
            admin_token: None,
            api: Api::default(),
            queue: None,
            queue_prefix: "hermod".into(),
            queue_prefetch: 256,
            queue_max_deliveries: 100,
            queue_expires_secs: None,
            smpp: Smpp {
                url: Secret("smpp://hermod:secret@127.0.0.1:2775".into()),
                system_type: String::new(),
                window: 32,
                enquire_link_secs: 30,
                response_timeout_secs: 10,
                default_source: Some("Hermod".into()),
                help_reply: Some(
                    "Reply STOP to stop messages from this sender, START to receive them again."
                        .into(),
                ),
                numbers: HashMap::new(),
                inbound_part_timeout_secs: 3600,
                connectors: Vec::new(),
                routes: Vec::new(),
            },
            rcs: RcsConfig::default(),
            app: AppConfig::default(),
            webhooks: WebhooksConfig::default(),
            encryption: EncryptionConfig::default(),
            senders: SendersConfig::default(),
            audit: AuditConfig::default(),
            workers: Workers {
                batch: 128,
                senders: 4,
                in_doubt_grace_secs: 30,
                in_doubt_min_grace_secs: 2,
                bind_lease_secs: 10,
            },
        }
    }
}

impl Settings {
    pub fn load(config: Option<&Path>) -> anyhow::Result<Settings> {
        let mut fig = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(p) = config {
            if !p.exists() {
                anyhow::bail!("config file {} does not exist", p.display());
            }
            fig = fig.merge(Toml::file(p));
        }
        // HERMOD_LOG and HERMOD_CONFIG are read by the logger and the CLI.
        let env = Env::raw().filter_map(|k| {
            let k = k.as_str().to_ascii_lowercase();
            let k = k.strip_prefix("hermod_")?;
            match k {
                "log" | "config" => None,
                "smpp_url" => Some("smpp.url".to_owned().into()),
                other => Some(other.replace("__", ".").into()),
            }
        });
        Ok(fig.merge(env).extract()?)
    }

    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            self.data_dir
                .join("hermod.db")
                .to_string_lossy()
                .into_owned()
        })
    }

    pub fn master_key_file(&self) -> PathBuf {
        self.encryption
            .key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("master-keys.json"))
    }

    pub fn signing_key_file(&self) -> PathBuf {
        self.audit
            .signing_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("audit-signing-key.p8"))
    }

    /// The connectors: `smpp.connectors`, or one named `default` from `smpp.url`.
    pub fn connectors(&self) -> Vec<ConnectorConfig> {
        if self.smpp.connectors.is_empty() {
            return vec![ConnectorConfig {
                name: "default".into(),
                url: Some(self.smpp.url.clone()),
                system_type: self.smpp.system_type.clone(),
                window: self.smpp.window,
                enquire_link_secs: self.smpp.enquire_link_secs,
                response_timeout_secs: self.smpp.response_timeout_secs,
                default_source: self.smpp.default_source.clone(),
                ..ConnectorConfig::default()
            }];
        }
        self.smpp
            .connectors
            .iter()
            .map(|c| ConnectorConfig {
                default_source: c
                    .default_source
                    .clone()
                    .or_else(|| self.smpp.default_source.clone()),
                ..c.clone()
            })
            .collect()
    }

    /// The configuration's sender assignments: `[[senders.assign]]`, `smpp.numbers`,
    /// and RCS agents with a `tenant`. Tenants must be `ten_…` ids.
    pub fn fixed_senders(&self) -> anyhow::Result<Vec<hermod_core::sender::Sender>> {
        use hermod_core::sender::Sender;
        let tenant = |t: &str, what: &str| {
            hermod_core::TenantId::parse(t)
                .ok_or_else(|| anyhow::anyhow!("{what}: tenant '{t}' is not a ten_… id"))
        };
        let mut out = Vec::new();
        for a in &self.senders.assign {
            out.push(Sender {
                sender: a.sender.trim().to_owned(),
                tenant_id: tenant(&a.tenant, "senders.assign")?,
                default: a.default,
                created_at: 0,
            });
        }
        let mut numbers: Vec<_> = self.smpp.numbers.iter().collect();
        numbers.sort();
        for (n, t) in numbers {
            out.push(Sender {
                sender: n.trim().to_owned(),
                tenant_id: tenant(t, "smpp.numbers")?,
                default: false,
                created_at: 0,
            });
        }
        for a in &self.rcs.agents {
            if let Some(t) = &a.tenant {
                out.push(Sender {
                    sender: a.name.clone(),
                    tenant_id: tenant(t, "rcs.agents")?,
                    default: false,
                    created_at: 0,
                });
            }
        }
        for (i, s) in out.iter().enumerate() {
            let key = hermod_core::inbound::sender_key(&s.sender);
            if let Some(o) = out[..i]
                .iter()
                .find(|o| hermod_core::inbound::sender_key(&o.sender) == key)
                && o.tenant_id != s.tenant_id
            {
                anyhow::bail!("sender '{}' is assigned to two tenants", s.sender);
            }
        }
        Ok(out)
    }

    pub fn rate_limits(&self) -> hermod_api::RateLimits {
        use hermod_api::Rate;
        let rate = |per_sec: f64, burst: f64| {
            (per_sec > 0.0).then_some(Rate {
                per_sec,
                burst: if burst > 0.0 { burst } else { per_sec },
            })
        };
        hermod_api::RateLimits::new(
            rate(self.api.rate_limit_per_sec, self.api.rate_limit_burst),
            self.api
                .tenant_limits
                .iter()
                .map(|(t, l)| (t.clone(), rate(l.per_sec, l.burst)))
                .collect(),
        )
    }

    pub fn budgets(&self) -> hermod_api::Budgets {
        use hermod_api::{KeyedLimit, Rate};
        let rate = |per_sec: f64, burst: f64| {
            KeyedLimit::new(Rate {
                per_sec,
                burst: if burst > 0.0 { burst } else { per_sec },
            })
        };
        let a = &self.api;
        hermod_api::Budgets {
            hooks: rate(a.hook_rate_per_sec, a.hook_burst),
            audit: rate(a.audit_rate_per_sec, a.audit_burst),
            streams: rate(a.stream_opens_per_sec, a.stream_burst),
        }
    }

    pub fn in_doubt_min_grace(&self) -> Duration {
        Duration::from_secs(self.workers.in_doubt_min_grace_secs)
    }

    pub fn in_doubt_grace(&self) -> Duration {
        Duration::from_secs(self.workers.in_doubt_grace_secs)
    }
}
