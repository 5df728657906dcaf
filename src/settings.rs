//! Typed settings: defaults, then `--config FILE` (TOML), then `HERMOD_*` variables
//! (`HERMOD_SMPP_URL`, `HERMOD_DATABASE_URL`, nested keys with `__`).

use std::path::{Path, PathBuf};
use std::time::Duration;

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
    /// Server-side secret mixed into API-key hashes.
    pub api_key_pepper: String,
    pub smpp: Smpp,
    pub workers: Workers,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Smpp {
    /// `smpp://system_id:password@host:port` (`smpps://` for TLS).
    pub url: String,
    pub system_type: String,
    pub window: usize,
    pub enquire_link_secs: u64,
    pub response_timeout_secs: u64,
    pub default_source: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workers {
    pub batch: usize,
    pub senders: usize,
    pub in_doubt_grace_secs: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./hermod-data"),
            database_url: None,
            api_key_pepper: String::new(),
            smpp: Smpp {
                url: "smpp://hermod:secret@127.0.0.1:2775".into(),
                system_type: String::new(),
                window: 32,
                enquire_link_secs: 30,
                response_timeout_secs: 10,
                default_source: Some("Hermod".into()),
            },
            workers: Workers {
                batch: 128,
                senders: 4,
                in_doubt_grace_secs: 30,
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

    pub fn smpp_settings(&self) -> hermod_channels::smpp::SmppSettings {
        hermod_channels::smpp::SmppSettings {
            url: self.smpp.url.clone(),
            system_type: self.smpp.system_type.clone(),
            window: self.smpp.window,
            enquire_link: Duration::from_secs(self.smpp.enquire_link_secs.max(1)),
            response_timeout: Duration::from_secs(self.smpp.response_timeout_secs.max(1)),
            reconnect_max: Duration::from_secs(30),
            default_source: self.smpp.default_source.clone(),
        }
    }
}
