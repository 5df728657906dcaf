//! Who owns which sender. Numbers, alphanumeric ids and RCS agent names are assigned to
//! tenants by the operator (configuration and the admin API); a tenant sends only from
//! its own, and inbound traffic to a sender goes to its owner or to no tenant at all.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::TenantId;
use crate::inbound::sender_key;
use crate::ports::PortResult;

/// How long a process trusts its copy of the assignments (the admin API of this
/// process refreshes it at once; other processes within this long).
pub const SENDERS_TTL: Duration = Duration::from_secs(5);

/// A sender assigned to a tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sender {
    /// As the operator wrote it (`+447700900123`, `Acme`, `shop`).
    pub sender: String,
    pub tenant_id: TenantId,
    /// The tenant's sender for messages without `from` (one per tenant).
    pub default: bool,
    pub created_at: i64,
}

/// Stored assignments, and the inbound messages no tenant owns.
#[async_trait]
pub trait Senders: Send + Sync {
    /// Every assignment (or one tenant's), by sender.
    async fn list_senders(&self, tenant: Option<&TenantId>) -> PortResult<Vec<Sender>>;
    /// Assigns a sender. `Conflict` when another tenant owns it (remove it first);
    /// reassigning to the same tenant updates `default`. Ok(false): no such tenant.
    async fn assign_sender(&self, sender: &Sender) -> PortResult<bool>;
    /// Ends an assignment; false when there was none.
    async fn remove_sender(&self, sender: &str) -> PortResult<bool>;
}

/// Why a message's sender is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Another tenant owns it.
    Taken,
    /// Nobody owns it and unowned senders are not allowed.
    Unowned,
}

impl Refusal {
    /// The same for both: a tenant is not told whether another tenant owns it.
    pub fn message(&self, from: &str) -> String {
        format!(
            "'{from}' is not one of this tenant's senders (an operator assigns senders: \
             POST /v1/admin/senders)"
        )
    }
}

/// One snapshot of the assignments.
#[derive(Debug, Default)]
pub struct Owners {
    owner: HashMap<String, TenantId>,
    default: HashMap<TenantId, String>,
}

impl Owners {
    /// Builds a snapshot: `fixed` (configuration) first, then the stored ones, which
    /// cannot take a sender the configuration gives to someone.
    pub fn build(fixed: &[Sender], stored: &[Sender]) -> Self {
        let mut o = Owners::default();
        for s in fixed.iter().chain(stored) {
            let key = sender_key(&s.sender);
            if o.owner.get(&key).is_some_and(|t| *t != s.tenant_id) {
                continue;
            }
            o.owner.insert(key, s.tenant_id.clone());
            if s.default {
                o.default
                    .entry(s.tenant_id.clone())
                    .or_insert_with(|| s.sender.clone());
            }
        }
        o
    }

    /// The tenant a sender belongs to.
    pub fn owner(&self, sender: &str) -> Option<&TenantId> {
        self.owner.get(&sender_key(sender))
    }

    /// The tenant's sender for messages without `from`.
    pub fn default_for(&self, tenant: &TenantId) -> Option<&str> {
        self.default.get(tenant).map(String::as_str)
    }

    /// The sender a message of `tenant` goes out with: its `from` when the tenant may
    /// use it, else the tenant's default (or none: the connector's).
    pub fn resolve(
        &self,
        tenant: &TenantId,
        from: Option<&str>,
        allow_unowned: bool,
    ) -> Result<Option<String>, Refusal> {
        let Some(from) = from else {
            return Ok(self.default_for(tenant).map(str::to_owned));
        };
        match self.owner(from) {
            Some(t) if t == tenant => Ok(Some(from.to_owned())),
            Some(_) => Err(Refusal::Taken),
            None if allow_unowned => Ok(Some(from.to_owned())),
            None => Err(Refusal::Unowned),
        }
    }
}

/// The assignments of configuration and store, cached for [`SENDERS_TTL`].
pub struct SenderBook {
    store: Option<Arc<dyn Senders>>,
    fixed: Vec<Sender>,
    /// May a tenant send from a sender nobody owns (its replies then reach no tenant)?
    pub allow_unowned: bool,
    cache: Mutex<Option<(Instant, Arc<Owners>)>>,
}

impl SenderBook {
    pub fn new(store: Option<Arc<dyn Senders>>, fixed: Vec<Sender>, allow_unowned: bool) -> Self {
        Self {
            store,
            fixed,
            allow_unowned,
            cache: Mutex::new(None),
        }
    }

    /// The current assignments (read from the store at most every [`SENDERS_TTL`]).
    pub async fn owners(&self) -> PortResult<Arc<Owners>> {
        if let Ok(g) = self.cache.lock()
            && let Some((at, o)) = g.as_ref()
            && at.elapsed() < SENDERS_TTL
        {
            return Ok(o.clone());
        }
        let stored = match &self.store {
            Some(s) => s.list_senders(None).await?,
            None => Vec::new(),
        };
        let o = Arc::new(Owners::build(&self.fixed, &stored));
        if let Ok(mut g) = self.cache.lock() {
            *g = Some((Instant::now(), o.clone()));
        }
        Ok(o)
    }

    /// Forgets the cached copy (after this process changed an assignment).
    pub fn invalidate(&self) {
        if let Ok(mut g) = self.cache.lock() {
            *g = None;
        }
    }

    /// The configuration's assignment of a sender, if any.
    pub fn fixed_owner(&self, sender: &str) -> Option<&TenantId> {
        let key = sender_key(sender);
        self.fixed
            .iter()
            .find(|s| sender_key(&s.sender) == key)
            .map(|s| &s.tenant_id)
    }

    /// The configuration's assignments.
    pub fn fixed(&self) -> &[Sender] {
        &self.fixed
    }

    pub fn store(&self) -> Option<&Arc<dyn Senders>> {
        self.store.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(sender: &str, t: &str, default: bool) -> Sender {
        Sender {
            sender: sender.into(),
            tenant_id: TenantId::from_trusted(t.into()),
            default,
            created_at: 0,
        }
    }

    #[test]
    fn a_tenant_sends_only_from_its_own_senders() {
        let a = TenantId::from_trusted("ten_a".into());
        let b = TenantId::from_trusted("ten_b".into());
        let o = Owners::build(
            &[s("+447700900123", "ten_a", true)],
            &[
                s("Acme", "ten_a", false),
                s("447700900999", "ten_b", false),
                // The configuration gives this one to A: the store cannot take it.
                s("447700900123", "ten_b", true),
            ],
        );
        assert_eq!(
            o.resolve(&a, Some("447700900123"), false),
            Ok(Some("447700900123".into()))
        );
        assert_eq!(o.resolve(&a, Some("ACME"), false), Ok(Some("ACME".into())));
        assert_eq!(
            o.resolve(&b, Some("+447700900123"), true),
            Err(Refusal::Taken)
        );
        assert_eq!(
            o.resolve(&a, Some("+447700900999"), true),
            Err(Refusal::Taken)
        );
        assert_eq!(o.resolve(&a, Some("Other"), false), Err(Refusal::Unowned));
        assert_eq!(o.resolve(&a, Some("Other"), true), Ok(Some("Other".into())));
        assert_eq!(o.resolve(&a, None, false), Ok(Some("+447700900123".into())));
        assert_eq!(o.resolve(&b, None, false), Ok(None), "B has no default");
        assert_eq!(o.owner("+447700900999"), Some(&b));
        assert_eq!(o.owner("447700900000"), None);
    }
}
