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
    /// Whether it can carry this message at all (HTTP providers take no binary
    /// messages): routing passes over those that cannot.
    fn takes(&self, _msg: &Outgoing) -> bool {
        true
    }
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
        let mut candidates = self.candidates(msg.to.digits());
        candidates.retain(|c| c.takes(msg));
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

#[cfg(test)]
mod upstream_tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// An upstream that answers as told and counts its sends.
    struct Fake {
        name: &'static str,
        text_only: bool,
        answer: Result<(Vec<String>, String), ChannelError>,
        sends: AtomicUsize,
    }

    #[async_trait]
    impl Upstream for Fake {
        fn name(&self) -> &str {
            self.name
        }
        fn is_bound(&self) -> bool {
            true
        }
        fn is_healthy(&self) -> bool {
            true
        }
        fn status(&self) -> serde_json::Value {
            serde_json::json!({"name": self.name})
        }
        fn receipt_timing(&self) -> Option<hermod_core::model::ReceiptTiming> {
            None
        }
        fn part_keys(&self, _: &Outgoing) -> Vec<String> {
            Vec::new()
        }
        fn takes(&self, msg: &Outgoing) -> bool {
            !self.text_only || msg.binary.is_none()
        }
        async fn send(&self, _: &Outgoing) -> Result<(Vec<String>, String), ChannelError> {
            self.sends.fetch_add(1, Ordering::Relaxed);
            self.answer.clone()
        }
    }

    fn fake(
        name: &'static str,
        text_only: bool,
        answer: Result<(Vec<String>, String), ChannelError>,
    ) -> Arc<Fake> {
        Arc::new(Fake {
            name,
            text_only,
            answer,
            sends: AtomicUsize::new(0),
        })
    }

    fn msg(binary: Option<u8>) -> Outgoing {
        Outgoing {
            attempt_id: hermod_core::AttemptId::generate(),
            tenant_id: hermod_core::TenantId::from_trusted("ten_test".into()),
            message_id: hermod_core::MessageId::generate(),
            to: hermod_core::Msisdn::parse("+447911123456").unwrap(),
            from: None,
            text: "0102".into(),
            user_ref: 1,
            expires_at: None,
            content: None,
            user_id: None,
            traffic_type: None,
            binary,
        }
    }

    fn route(connector: &str, cost: f64) -> RouteConfig {
        RouteConfig {
            prefix: "44".into(),
            connector: connector.into(),
            priority: 0,
            cost,
        }
    }

    #[tokio::test]
    async fn binary_passes_over_http_providers_and_nothing_sent_moves_on_at_once() {
        let ok = || Ok((vec!["x".to_owned()], "ok".to_owned()));
        let http = fake("http", true, ok());
        let smpp = fake("smpp", false, ok());
        let router = SmsRouter::new(
            vec![http.clone() as Arc<dyn Upstream>, smpp.clone()],
            vec![route("http", 0.0), route("smpp", 1.0)],
        )
        .unwrap();
        router.send(&msg(None)).await.unwrap();
        assert_eq!(
            http.sends.load(Ordering::Relaxed),
            1,
            "text: the cheap route"
        );
        router.send(&msg(Some(4))).await.unwrap();
        assert_eq!(http.sends.load(Ordering::Relaxed), 1, "binary: not to HTTP");
        assert_eq!(smpp.sends.load(Ordering::Relaxed), 1);

        // An upstream that could not be reached hands over at once; a refusal does not.
        let down = fake(
            "down",
            true,
            Err(ChannelError::Transient {
                code: status::NOT_BOUND.into(),
                retry_after: None,
            }),
        );
        let other = fake("other", false, ok());
        let router = SmsRouter::new(
            vec![down.clone() as Arc<dyn Upstream>, other.clone()],
            vec![route("down", 0.0), route("other", 1.0)],
        )
        .unwrap();
        router.send(&msg(None)).await.unwrap();
        assert_eq!(other.sends.load(Ordering::Relaxed), 1);
        let refusing = fake(
            "refusing",
            true,
            Err(ChannelError::Permanent {
                code: "x:21211".into(),
            }),
        );
        let router = SmsRouter::new(
            vec![refusing as Arc<dyn Upstream>, other.clone()],
            vec![route("refusing", 0.0), route("other", 1.0)],
        )
        .unwrap();
        assert!(router.send(&msg(None)).await.is_err());
        assert_eq!(
            other.sends.load(Ordering::Relaxed),
            1,
            "a refusal is not sent elsewhere"
        );
        // Names are shared by both kinds.
        assert!(
            SmsRouter::new(
                vec![
                    fake("a", true, ok()) as Arc<dyn Upstream>,
                    fake("a", false, ok())
                ],
                vec![]
            )
            .is_err()
        );
    }
}
