//! Connector and route configuration, as it appears in `hermod.toml`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use hermod_core::Secret;
use hermod_core::ports::ConfigError;

use super::dlr::ReceiptIds;
use super::gsm::Preferred;

/// `[smpp]`: SMS over SMPP: the SMSC connectors, routes, our numbers, replies.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SmppConfig {
    /// The single connector used when `connectors` is empty:
    /// `smpp://system_id:password@host:port` (`smpps://` for TLS).
    pub url: Secret,
    /// `system_type` of the `url` connector's bind.
    pub system_type: String,
    /// Outstanding submit_sm of the `url` connector.
    pub window: usize,
    /// Seconds between enquire_link keep-alives of the `url` connector.
    pub enquire_link_secs: u64,
    /// Seconds the `url` connector waits for a response PDU before the bind is
    /// considered broken.
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
    /// `[[sms.providers]]` (its own section; the composition root copies it here).
    #[serde(skip)]
    #[schemars(skip)]
    pub providers: Vec<crate::providers::ProviderConfig>,
}

impl Default for SmppConfig {
    fn default() -> Self {
        Self {
            url: Secret("smpp://hermod:secret@127.0.0.1:2775".into()),
            system_type: String::new(),
            window: 32,
            enquire_link_secs: 30,
            response_timeout_secs: 10,
            default_source: Some("Hermod".into()),
            help_reply: Some(
                "Reply STOP to stop messages from this sender, START to receive them again.".into(),
            ),
            numbers: HashMap::new(),
            inbound_part_timeout_secs: 3600,
            connectors: Vec::new(),
            routes: Vec::new(),
            providers: Vec::new(),
        }
    }
}

impl SmppConfig {
    /// The connectors: `smpp.connectors`, or one named `default` from `smpp.url`
    /// (none when `smpp.url` is empty: HTTP providers only).
    pub fn connectors(&self) -> Vec<ConnectorConfig> {
        if self.connectors.is_empty() && self.url.0.is_empty() {
            return Vec::new();
        }
        if self.connectors.is_empty() {
            return vec![ConnectorConfig {
                name: "default".into(),
                url: Some(self.url.clone()),
                system_type: self.system_type.clone(),
                window: self.window,
                enquire_link_secs: self.enquire_link_secs,
                response_timeout_secs: self.response_timeout_secs,
                default_source: self.default_source.clone(),
                ..ConnectorConfig::default()
            }];
        }
        self.connectors
            .iter()
            .map(|c| ConnectorConfig {
                default_source: c
                    .default_source
                    .clone()
                    .or_else(|| self.default_source.clone()),
                ..c.clone()
            })
            .collect()
    }
}

/// Transceiver binds, or a transmitter and a receiver per bind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BindMode {
    #[default]
    Transceiver,
    TransmitterReceiver,
}

/// One SMSC account.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectorConfig {
    /// Its name in routes, metrics and `GET /v1/connectors`: 1 to 32 letters, digits,
    /// `-` or `_`.
    pub name: String,
    /// Shorthand for host, port, tls, system_id and password:
    /// `smpp://system_id:password@host:port` (`smpps://` for TLS).
    pub url: Option<Secret>,
    /// The SMSC's host name or address.
    pub host: String,
    /// The SMSC's port.
    pub port: u16,
    /// SMPP over TLS (rustls; the SMSC's certificate is verified).
    pub tls: bool,
    /// PEM roots the SMSC's certificate must chain to; the webpki roots when unset.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain and key, when the SMSC asks for one.
    pub client_cert_file: Option<PathBuf>,
    /// The PEM private key of `client_cert_file`.
    pub client_key_file: Option<PathBuf>,
    /// The account's `system_id` in bind PDUs.
    pub system_id: String,
    /// The account's password in bind PDUs.
    pub password: Secret,
    /// The bind's `system_type` (most SMSCs want it empty).
    pub system_type: String,
    /// `transceiver` (one session sends and receives) or `transmitter_receiver` (a
    /// transmitter and a receiver per bind).
    pub bind_mode: BindMode,
    /// Transmitting binds (each with its own receiver in `transmitter_receiver` mode).
    pub binds: usize,
    /// Outstanding submit_sm per bind.
    pub window: usize,
    /// Submits per second over all binds (each part costs one), never exceeded; a
    /// throttle halves the pace, which climbs back. 0 = find the SMSC's rate: unpaced
    /// until it first says "too fast", then paced a little below what it accepted.
    pub tps: f64,
    /// Tokens that may be spent at once; a tenth of a second of the rate when unset.
    pub burst: Option<f64>,
    /// The alphabet tried first: `gsm` (GSM 03.38, 160 characters a part), `latin1`
    /// or `ucs2`; text it cannot carry goes as UCS-2.
    pub data_coding: Preferred,
    /// Source TON/NPI; automatic when unset (alphanumeric 5/0, `+number` 1/1,
    /// other digits 0/1).
    pub source_ton: Option<u8>,
    /// See `source_ton`.
    pub source_npi: Option<u8>,
    /// Sender when a message names none.
    pub default_source: Option<String>,
    /// Seconds between enquire_link keep-alives.
    pub enquire_link_secs: u64,
    /// Seconds to wait for a response PDU before the bind is considered broken.
    pub response_timeout_secs: u64,
    /// The longest pause between reconnect attempts (they back off from 1 s).
    pub reconnect_max_secs: u64,
    /// How the SMSC writes message ids in receipts, against its submit_sm_resp.
    pub receipt_ids: ReceiptIds,
    /// Consecutive failed submits (errors other than throttling) that take the
    /// connector out of routing for `failure_cooldown_secs`.
    pub failure_threshold: u32,
    /// How long a failing connector stays out of routing.
    pub failure_cooldown_secs: u64,
}

impl Default for ConnectorConfig {
    fn default() -> Self {
        Self {
            name: "default".into(),
            url: None,
            host: "127.0.0.1".into(),
            port: 2775,
            tls: false,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            system_id: String::new(),
            password: Secret::default(),
            system_type: String::new(),
            bind_mode: BindMode::Transceiver,
            binds: 1,
            window: 32,
            tps: 0.0,
            burst: None,
            data_coding: Preferred::Gsm,
            source_ton: None,
            source_npi: None,
            default_source: None,
            enquire_link_secs: 30,
            response_timeout_secs: 10,
            reconnect_max_secs: 30,
            receipt_ids: ReceiptIds::Same,
            failure_threshold: 5,
            failure_cooldown_secs: 30,
        }
    }
}

impl ConnectorConfig {
    /// Applies `url` (if any) over the separate fields and checks the result.
    pub fn resolved(&self) -> Result<ConnectorConfig, ConfigError> {
        let mut c = self.clone();
        if let Some(Secret(raw)) = &self.url {
            let u = url::Url::parse(raw).map_err(|e| {
                ConfigError::new(format!("connector {}: invalid url: {e}", self.name))
            })?;
            c.tls = match u.scheme() {
                "smpp" => false,
                "smpps" | "ssmpp" => true,
                _ => {
                    return Err(ConfigError::new(format!(
                        "connector {}: url scheme must be smpp:// or smpps://",
                        self.name
                    )));
                }
            };
            c.host = u
                .host_str()
                .ok_or_else(|| {
                    ConfigError::new(format!("connector {}: url has no host", self.name))
                })?
                .to_owned();
            c.port = u.port().unwrap_or(2775);
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            };
            if !u.username().is_empty() {
                c.system_id = decode(u.username());
            }
            if let Some(p) = u.password() {
                c.password = Secret(decode(p));
            }
        }
        if c.name.is_empty()
            || c.name.len() > 32
            || !c
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(ConfigError::new(format!(
                "connector {:?}: name must be 1 to 32 letters, digits, '-' or '_'",
                c.name
            )));
        }
        if c.host.is_empty() {
            return Err(ConfigError::new(format!(
                "connector {}: host must not be empty",
                c.name
            )));
        }
        if c.binds == 0 || c.binds > 64 {
            return Err(ConfigError::new(format!(
                "connector {}: binds must be 1..=64",
                c.name
            )));
        }
        if c.window == 0 {
            return Err(ConfigError::new(format!(
                "connector {}: window must be at least 1",
                c.name
            )));
        }
        if c.tps.is_nan() || c.tps < 0.0 {
            return Err(ConfigError::new(format!(
                "connector {}: tps must be >= 0",
                c.name
            )));
        }
        if c.client_cert_file.is_some() != c.client_key_file.is_some() {
            return Err(ConfigError::new(format!(
                "connector {}: client_cert_file and client_key_file go together",
                c.name
            )));
        }
        Ok(c)
    }

    /// `smpp://host:port` or `smpps://host:port`, without credentials.
    pub fn connect_url(&self) -> String {
        let scheme = if self.tls { "smpps" } else { "smpp" };
        format!("{scheme}://{}:{}", self.host, self.port)
    }

    pub fn enquire_link(&self) -> Duration {
        Duration::from_secs(self.enquire_link_secs.max(1))
    }

    pub fn response_timeout(&self) -> Duration {
        Duration::from_secs(self.response_timeout_secs.max(1))
    }
}

/// Destinations starting with `prefix` (digits, no `+`; empty = any) may go through
/// `connector`. Among matching routes the lowest `priority` tier is tried first, then
/// the longest prefix, then the lowest `cost`; an unhealthy connector is skipped while
/// another matching one is healthy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Destination digits the route covers (no `+`); empty = every destination.
    #[serde(default)]
    pub prefix: String,
    /// The connector's `name`.
    pub connector: String,
    /// Tier: lower tiers are tried first.
    #[serde(default)]
    pub priority: i32,
    /// Within a tier and prefix length, the cheapest route is tried first.
    #[serde(default)]
    pub cost: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_carries_credentials_and_tls() {
        let c = ConnectorConfig {
            url: Some(Secret("smpps://acme%40eu:p%3Ass@smsc.example:3550".into())),
            ..Default::default()
        }
        .resolved()
        .unwrap();
        assert_eq!(c.connect_url(), "smpps://smsc.example:3550");
        assert_eq!(
            (c.system_id.as_str(), c.password.0.as_str()),
            ("acme@eu", "p:ss")
        );
        assert!(c.tls);
        let c = ConnectorConfig {
            url: Some(Secret("smpp://u:p@h".into())),
            ..Default::default()
        };
        assert_eq!(c.resolved().unwrap().connect_url(), "smpp://h:2775");
        let bad = ConnectorConfig {
            url: Some(Secret("http://u:p@h".into())),
            ..Default::default()
        };
        assert!(bad.resolved().is_err());
    }

    #[test]
    fn secrets_do_not_print() {
        let c = ConnectorConfig {
            password: Secret("hunter2".into()),
            url: Some(Secret("smpp://u:hunter2@h".into())),
            ..Default::default()
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn rejects_bad_values() {
        for c in [
            ConnectorConfig {
                binds: 0,
                ..Default::default()
            },
            ConnectorConfig {
                window: 0,
                ..Default::default()
            },
            ConnectorConfig {
                tps: -1.0,
                ..Default::default()
            },
            ConnectorConfig {
                name: String::new(),
                ..Default::default()
            },
            ConnectorConfig {
                client_cert_file: Some("c.pem".into()),
                ..Default::default()
            },
        ] {
            assert!(c.resolved().is_err(), "{c:?}");
        }
    }
}
