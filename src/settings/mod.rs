//! Typed settings: defaults, then `--config FILE` (TOML), then `HERMOD_*` variables
//! (`HERMOD_SMPP_URL`, `HERMOD_DATABASE_URL`, nested keys with `__`).

mod env;
#[allow(unused_imports)]
pub use env::*;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hermod_core::Secret;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The settings: the process's own, then one section per channel (from the channel
/// registry, `crate::registry`), then the shared services'.
macro_rules! settings_struct {
    ($($kind:ident, $key:ident, $doc:literal;)+) => {
        #[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
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
            /// Server-side secret mixed into API-key hashes. Unset: one is generated in
            /// `<data_dir>/api-key-pepper`; with PostgreSQL it is required, the same on every
            /// process.
            pub api_key_pepper: Secret,
            /// The operator's bearer token: `/v1/admin/*`, `GET /v1/connectors`, `/metrics`;
            /// unset = those are off.
            pub admin_token: Option<Secret>,
            /// Rate limits of the HTTP API.
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
            $(
                #[doc = $doc]
                #[serde(default)]
                pub $key: hermod_channels::$key::Settings,
            )+
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
            /// The web console under `/console`: `[console] enabled`, `secure_cookie`.
            #[serde(default)]
            pub console: ConsoleConfig,
            #[serde(default)]
            pub smpp_server: SmppServerConfig,
            /// SMS through HTTP providers: `[[sms.providers]]` (Twilio, Vonage, Infobip,
            /// Sinch, a generic HTTP upstream), routed with the SMPP connectors.
            #[serde(default)]
            pub sms: hermod_channels::providers::SmsSettings,
            /// The pipeline stages' tuning.
            pub workers: Workers,
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
                    $($key: Default::default(),)+
                    webhooks: WebhooksConfig::default(),
                    encryption: EncryptionConfig::default(),
                    senders: SendersConfig::default(),
                    console: ConsoleConfig::default(),
                    smpp_server: SmppServerConfig::default(),
                    sms: Default::default(),
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
    };
}

crate::registry::channels!(settings_struct);

/// The JSON Schema of `hermod.toml`.
pub fn schema() -> serde_json::Value {
    schemars::schema_for!(Settings).to_value()
}

/// The configuration reference (`hermod docs config`).
pub fn reference() -> String {
    let defaults = serde_json::to_value(Settings::default()).unwrap_or_default();
    crate::config_doc::reference(&schema(), &defaults)
}

/// `[senders]`: senders (numbers, alphanumeric ids, RCS agent names) and their owners.
/// More come from `POST /v1/admin/senders`; `smpp.numbers` and an RCS agent's `tenant`
/// assign too.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SendersConfig {
    /// May a tenant send from a sender nobody owns? Replies to it reach no tenant.
    /// Off by default: a tenant sends only from its own senders.
    pub allow_unowned: bool,
    /// Senders given to tenants in the file.
    pub assign: Vec<SenderAssign>,
}

/// `[[senders.assign]]`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SenderAssign {
    /// A number (`+447700900123` or digits), an alphanumeric sender id or an RCS
    /// agent's name.
    pub sender: String,
    /// `ten_…`.
    pub tenant: String,
    /// The tenant's sender for messages without `from`.
    #[serde(default)]
    pub default: bool,
}

/// `[encryption]`: where the master keys are.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct EncryptionConfig {
    /// JSON `{"active": id, "master_keys": {id: base64}, "lookup_key": base64}`;
    /// default `<data_dir>/master-keys.json`, created on first start if missing.
    pub key_file: Option<PathBuf>,
}

/// `[audit]`: the checkpoint signing key and how often heads are signed.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
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

/// `[smpp_server]`: the SMPP server client applications (ESMEs) bind to, in `serve`
/// and `api` processes. Accounts: `hermod smpp-accounts create --tenant T`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SmppServerConfig {
    /// Plain SMPP on this address (`0.0.0.0:2775`); none: off.
    pub listen: Option<String>,
    /// SMPP over TLS on this address (`0.0.0.0:3550`), with `tls_cert` and `tls_key`.
    pub listen_tls: Option<String>,
    /// PEM certificate chain for `listen_tls`.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `listen_tls`.
    pub tls_key: Option<PathBuf>,
}

/// `[console]`: the web console (`/console`) served by the API.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// Serve the console (sign-in with an API key, or the admin token for the operator).
    pub enabled: bool,
    /// Mark the session cookie `Secure`: set it when the console is reached over HTTPS
    /// (a TLS-terminating proxy included).
    pub secure_cookie: bool,
    /// Hours a console session lasts.
    pub session_hours: u32,
    /// `hermod demo`'s tenant key, for the one-click sign-in (never from a file).
    #[serde(skip)]
    #[schemars(skip)]
    pub demo_key: Option<Secret>,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            secure_cookie: false,
            session_hours: 12,
            demo_key: None,
        }
    }
}

impl ConsoleConfig {
    pub fn options(&self) -> hermod_api::console::ConsoleOptions {
        hermod_api::console::ConsoleOptions {
            enabled: self.enabled,
            secure_cookie: self.secure_cookie,
            session_ttl: Duration::from_secs(u64::from(self.session_hours.max(1)) * 3600),
            demo_key: self.demo_key.as_ref().map(|k| k.0.clone()),
        }
    }
}

/// `[webhooks]`: how deliveries to customer endpoints are made.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
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
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
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
    /// Messages an alert hook may raise at once.
    pub hook_burst: f64,
    /// `GET /v1/audit/verify` + `POST /v1/audit/checkpoints` calls per second per tenant.
    pub audit_rate_per_sec: f64,
    /// Audit calls a tenant may make at once.
    pub audit_burst: f64,
    /// `GET /v1/app/stream` sockets a device may open per second.
    pub stream_opens_per_sec: f64,
    /// Stream sockets a device may open at once.
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

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantLimit {
    /// Messages per second for this tenant; 0 = no limit.
    pub per_sec: f64,
    /// Messages it may send at once; `per_sec` when 0.
    #[serde(default)]
    pub burst: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Workers {
    /// Jobs a stage takes per batch (one transaction each).
    pub batch: usize,
    /// Batches in flight per channel: up to `senders × batch` submits at once.
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

impl Settings {
    /// Reads only the `HERMOD_*` variables that name settings (others, like the
    /// `HERMOD_SERVICE_HOST` Kubernetes gives every pod of a service named `hermod`,
    /// are not ours); one that looks like a setting's name is warned about.
    pub fn load(config: Option<&Path>) -> anyhow::Result<Settings> {
        let vars: Vec<String> = std::env::vars_os()
            .filter_map(|(k, _)| k.into_string().ok())
            .collect();
        let (read, warnings) = env_settings(&vars);
        for w in warnings {
            tracing::warn!("{w}");
        }
        let mut fig = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(p) = config {
            if !p.exists() {
                anyhow::bail!("config file {} does not exist", p.display());
            }
            fig = fig.merge(Toml::file(p));
        }
        let keys: HashMap<String, String> = read.into_iter().collect();
        let by_var = keys.clone();
        let env =
            Env::raw().filter_map(move |k| by_var.get(k.as_str()).map(|key| key.clone().into()));
        let mut s: Settings = fig.merge(env).extract().map_err(|e| {
            let var_of: HashMap<&str, &str> = keys
                .iter()
                .map(|(var, key)| (key.as_str(), var.as_str()))
                .collect();
            anyhow::anyhow!(explain(e, config, &var_of))
        })?;
        // The SMS channel routes over both sections.
        s.smpp.providers = s.sms.providers.clone();
        Ok(s)
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
            ..hermod_api::Budgets::default()
        }
    }

    pub fn in_doubt_min_grace(&self) -> Duration {
        Duration::from_secs(self.workers.in_doubt_min_grace_secs)
    }

    pub fn in_doubt_grace(&self) -> Duration {
        Duration::from_secs(self.workers.in_doubt_grace_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every ```toml block of the docs is a configuration the program accepts (unknown
    /// keys and wrong types fail), so a guide's example cannot drift from the settings.
    #[test]
    fn every_toml_example_of_the_docs_is_a_valid_configuration() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut pages = vec![root.join("README.md")];
        let mut dirs = vec![root.join("docs/src")];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    dirs.push(p);
                } else if p.extension().is_some_and(|x| x == "md") {
                    pages.push(p);
                }
            }
        }
        let mut checked = 0;
        for page in pages {
            let md = std::fs::read_to_string(&page).unwrap();
            let mut block: Option<String> = None;
            for line in md.lines() {
                match &mut block {
                    None if line.trim_start().starts_with("```toml") => block = Some(String::new()),
                    Some(b) if line.trim_start().starts_with("```") => {
                        let toml = std::mem::take(b);
                        block = None;
                        let r: Result<Settings, _> =
                            Figment::from(Serialized::defaults(Settings::default()))
                                .merge(Toml::string(&toml))
                                .extract();
                        if let Err(e) = r {
                            panic!(
                                "{}: a toml example is not a valid configuration: {e}\n{toml}",
                                page.display()
                            );
                        }
                        checked += 1;
                    }
                    Some(b) => {
                        b.push_str(line);
                        b.push('\n');
                    }
                    None => {}
                }
            }
        }
        assert!(checked >= 2, "only {checked} toml examples found");
    }

    #[test]
    fn variables_that_look_like_settings_are_warned_about() {
        let vars: Vec<String> = [
            "HERMOD_WORKERS__BATCH",
            "HERMOD_SMPP_URL",
            "HERMOD_WORKERS_SENDERS",
            "HERMOD_LISTN",
            "HERMOD_SERVICE_HOST",
            "HERMOD_PORT_8080_TCP",
            "HERMOD_API_KEY",
            "PATH",
        ]
        .map(String::from)
        .to_vec();
        let (read, warnings) = env_settings(&vars);
        assert_eq!(
            read,
            [
                (
                    "HERMOD_WORKERS__BATCH".to_owned(),
                    "workers.batch".to_owned()
                ),
                ("HERMOD_SMPP_URL".to_owned(), "smpp.url".to_owned())
            ]
        );
        assert_eq!(
            warnings,
            [
                "ignoring HERMOD_WORKERS_SENDERS: not a setting; did you mean HERMOD_WORKERS__SENDERS?",
                "ignoring HERMOD_LISTN: not a setting; did you mean HERMOD_LISTEN?"
            ]
        );
    }
}
