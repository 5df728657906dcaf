//! The SMS channel: upstreams (SMPP connectors and HTTP providers) chosen per
//! destination by prefix routes.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use hermod_core::model::{ChannelKind, InDoubtLook, Outgoing};
use hermod_core::ports::ConfigError;
use hermod_core::ports::{Channel, ChannelError};

use super::config::RouteConfig;
use super::status;

/// Where the SMS channel can hand a message: an SMPP connector or an HTTP provider.
/// Routes name them alike.
#[async_trait]
pub trait Upstream: Send + Sync {
    fn name(&self) -> &str;
    /// This process can send through it now (an SMPP bind is up here).
    fn is_bound(&self) -> bool;
    /// Can send and is not taken out of routing by repeated failures.
    fn is_healthy(&self) -> bool;
    /// Its entry in `GET /v1/connectors` (at least `name` and `healthy`).
    fn status(&self) -> serde_json::Value;
    /// Since when its receipts can arrive, and how slow they are (see
    /// [`InDoubtLook::timing`]); `None`: unknown.
    fn receipt_timing(&self) -> Option<hermod_core::model::ReceiptTiming>;
    /// Each part's text key as a receipt would repeat it; empty when its receipts
    /// repeat no text (they echo the message's `user_ref` instead).
    fn part_keys(&self, msg: &Outgoing) -> Vec<String>;
    /// Sends; a [`status::NOT_BOUND`] error means nothing was sent (the next upstream
    /// is tried at once).
    async fn send(&self, msg: &Outgoing) -> Result<(Vec<String>, String), ChannelError>;
}

/// Routes checked against the connectors, in preference order per lookup.
#[derive(Clone, Debug, Default)]
struct Table {
    routes: Vec<RouteConfig>,
}

impl Table {
    fn new(routes: Vec<RouteConfig>, names: &[String]) -> Result<Table, ConfigError> {
        for r in &routes {
            if !names.iter().any(|n| n == &r.connector) {
                return Err(ConfigError::new(format!(
                    "route {:?}: unknown connector {:?}",
                    r.prefix, r.connector
                )));
            }
            let p = r.prefix.trim_start_matches('+');
            if !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ConfigError::new(format!(
                    "route {:?}: prefix must be digits",
                    r.prefix
                )));
            }
            if r.cost.is_nan() || r.cost < 0.0 {
                return Err(ConfigError::new(format!(
                    "route {:?}: cost must be >= 0",
                    r.prefix
                )));
            }
        }
        let mut routes: Vec<RouteConfig> = routes
            .into_iter()
            .map(|mut r| {
                r.prefix = r.prefix.trim_start_matches('+').to_owned();
                r
            })
            .collect();
        // Sorted once here, so a lookup only filters.
        routes.sort_by(|a, b| {
            a.priority
                .cmp(&b.priority)
                .then(b.prefix.len().cmp(&a.prefix.len()))
                .then(a.cost.total_cmp(&b.cost))
        });
        Ok(Table { routes })
    }

    /// Connector names for a destination, best first, without repeats.
    fn lookup(&self, digits: &str) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for r in self.routes.iter().filter(|r| digits.starts_with(&r.prefix)) {
            if !out.contains(&r.connector.as_str()) {
                out.push(&r.connector);
            }
        }
        out
    }
}

/// Every connector, and the routes between them (hot-reloadable).
pub struct SmsRouter {
    connectors: Vec<Arc<dyn Upstream>>,
    by_name: HashMap<String, Arc<dyn Upstream>>,
    table: RwLock<Arc<Table>>,
}

impl SmsRouter {
    /// Routes over started upstreams. With no routes, every upstream serves every
    /// destination in the order given.
    pub fn new(
        list: Vec<Arc<dyn Upstream>>,
        routes: Vec<RouteConfig>,
    ) -> Result<Arc<SmsRouter>, crate::BuildError> {
        if list.is_empty() {
            return Err(ConfigError::new(
                "no SMS upstream configured: set smpp.url, [[smpp.connectors]] or [[sms.providers]]",
            )
            .into());
        }
        let mut names: Vec<String> = Vec::new();
        for c in &list {
            if names.iter().any(|n| n == c.name()) {
                return Err(ConfigError::new(format!(
                    "connector {:?} configured twice (names are shared by [[smpp.connectors]] and [[sms.providers]])",
                    c.name()
                ))
                .into());
            }
            names.push(c.name().to_owned());
        }
        let table = Table::new(Self::default_routes(routes, &names), &names)?;
        let by_name = list
            .iter()
            .map(|c| (c.name().to_owned(), c.clone()))
            .collect();
        Ok(Arc::new(SmsRouter {
            connectors: list,
            by_name,
            table: RwLock::new(Arc::new(table)),
        }))
    }

    fn default_routes(routes: Vec<RouteConfig>, names: &[String]) -> Vec<RouteConfig> {
        if !routes.is_empty() {
            return routes;
        }
        names
            .iter()
            .enumerate()
            .map(|(i, n)| RouteConfig {
                prefix: String::new(),
                connector: n.clone(),
                priority: 0,
                cost: i as f64,
            })
            .collect()
    }

    /// Replaces the routes; binds and messages in flight are untouched.
    pub fn reload_routes(&self, routes: Vec<RouteConfig>) -> Result<usize, ConfigError> {
        let names: Vec<String> = self.by_name.keys().cloned().collect();
        let mut ordered: Vec<String> = self
            .connectors
            .iter()
            .map(|c| c.name().to_owned())
            .collect();
        ordered.retain(|n| names.contains(n));
        let table = Table::new(Self::default_routes(routes, &ordered), &ordered)?;
        let n = table.routes.len();
        if let Ok(mut t) = self.table.write() {
            *t = Arc::new(table);
        }
        tracing::info!(routes = n, "SMS routes reloaded");
        Ok(n)
    }

    pub fn routes(&self) -> Vec<RouteConfig> {
        self.table
            .read()
            .map(|t| t.routes.clone())
            .unwrap_or_default()
    }

    pub fn status(&self) -> Vec<serde_json::Value> {
        self.connectors.iter().map(|c| c.status()).collect()
    }

    /// True when some connector has a transmitting bind up in this process.
    pub fn any_bound(&self) -> bool {
        self.connectors.iter().any(|c| c.is_bound())
    }

    /// True when every connector has a transmitting bind up.
    pub fn all_bound(&self) -> bool {
        self.connectors.iter().all(|c| c.is_bound())
    }

    /// Connectors for a destination: healthy ones first, in route order.
    fn candidates(&self, digits: &str) -> Vec<Arc<dyn Upstream>> {
        let table = self.table.read().map(|t| t.clone()).unwrap_or_default();
        let all: Vec<Arc<dyn Upstream>> = table
            .lookup(digits)
            .into_iter()
            .filter_map(|n| self.by_name.get(n).cloned())
            .collect();
        let (mut healthy, rest): (Vec<_>, Vec<_>) = all.into_iter().partition(|c| c.is_healthy());
        healthy.extend(rest);
        healthy
    }
}

#[async_trait]
impl Channel for SmsRouter {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Sms
    }

    /// A process without any bind up (all held by other workers) takes no SMS jobs.
    fn ready(&self) -> bool {
        self.any_bound()
    }

    /// The connectors its route allows (their receipts carry their scope), the parts as
    /// the first of them would split the text, and receipt timing only when every one
    /// of them can say: a receipt held by a connector that is down must not be
    /// given up on because another is quick.
    fn in_doubt_look(&self, msg: &Outgoing, since: i64) -> InDoubtLook {
        let candidates = self.candidates(msg.to.digits());
        let timing = candidates
            .iter()
            .map(|c| c.receipt_timing())
            .reduce(|a, b| a.zip(b).map(|(a, b)| a.and(b)))
            .flatten();
        InDoubtLook {
            since,
            part_keys: candidates
                .first()
                .map(|c| c.part_keys(msg))
                .unwrap_or_default(),
            scopes: candidates
                .iter()
                .map(|c| format!("{}:", c.name()))
                .collect(),
            last_look: false,
            timing,
        }
    }

    async fn send(&self, msg: &Outgoing) -> Result<(Vec<String>, String), ChannelError> {
        let candidates = self.candidates(msg.to.digits());
        if candidates.is_empty() {
            return Err(ChannelError::Permanent {
                code: "no_route".into(),
            });
        }
        let mut last = None;
        for c in candidates {
            // Only "nothing was sent" moves on to the next connector at once: any other
            // failure is retried later, when health may route it elsewhere.
            match c.send(msg).await {
                Err(ChannelError::Transient { code, retry_after }) if code == status::NOT_BOUND => {
                    last = Some(ChannelError::Transient { code, retry_after });
                }
                other => {
                    if other.is_ok() {
                        metrics::counter!("hermod_sms_routed_total", "connector" => c.name().to_owned())
                            .increment(1);
                    }
                    return other;
                }
            }
        }
        Err(last.unwrap_or(ChannelError::Transient {
            code: status::NOT_BOUND.into(),
            retry_after: None,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(prefix: &str, connector: &str, priority: i32, cost: f64) -> RouteConfig {
        RouteConfig {
            prefix: prefix.into(),
            connector: connector.into(),
            priority,
            cost,
        }
    }

    fn names() -> Vec<String> {
        vec!["a".into(), "b".into(), "c".into()]
    }

    #[test]
    fn cheapest_first_then_longest_prefix_within_a_tier() {
        let t = Table::new(
            vec![
                r("44", "a", 0, 0.03),
                r("44", "b", 0, 0.02),
                r("4479", "c", 0, 0.05),
                r("", "a", 1, 0.0),
            ],
            &names(),
        )
        .unwrap();
        assert_eq!(t.lookup("447911123456"), vec!["c", "b", "a"]);
        assert_eq!(t.lookup("447011123456"), vec!["b", "a"]);
        assert_eq!(t.lookup("33612345678"), vec!["a"]);
    }

    #[test]
    fn priority_tiers_come_before_cost() {
        let t = Table::new(vec![r("+1", "a", 1, 0.0), r("1", "b", 0, 9.0)], &names()).unwrap();
        assert_eq!(t.lookup("15551234567"), vec!["b", "a"]);
        assert!(t.lookup("4479").is_empty());
    }

    #[test]
    fn rejects_bad_routes() {
        assert!(Table::new(vec![r("44", "zzz", 0, 0.0)], &names()).is_err());
        assert!(Table::new(vec![r("4x", "a", 0, 0.0)], &names()).is_err());
        assert!(Table::new(vec![r("44", "a", 0, -1.0)], &names()).is_err());
    }
}
