//! Per-tenant rate limits on message creation: a token bucket per tenant (GCRA form:
//! one timestamp per tenant), answered with 429 and `Retry-After` when empty.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hermod_core::TenantId;

/// Messages per second and the burst allowed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    pub per_sec: f64,
    pub burst: f64,
}

/// Limits for every tenant: a default and overrides by tenant id.
#[derive(Debug, Default)]
pub struct RateLimits {
    default: Option<Rate>,
    overrides: HashMap<String, Option<Rate>>,
    /// Per tenant: the time at which its bucket is full again ("theoretical arrival").
    tat: Mutex<HashMap<TenantId, Instant>>,
}

impl RateLimits {
    /// `overrides` map tenant ids to a rate, or to `None` for no limit.
    pub fn new(default: Option<Rate>, overrides: HashMap<String, Option<Rate>>) -> Self {
        Self {
            default,
            overrides,
            tat: Mutex::new(HashMap::new()),
        }
    }

    fn rate_for(&self, tenant: &TenantId) -> Option<Rate> {
        match self.overrides.get(tenant.as_str()) {
            Some(r) => *r,
            None => self.default,
        }
        .filter(|r| r.per_sec > 0.0)
    }

    /// Takes `n` tokens, or says how long until they would be there.
    pub fn check(&self, tenant: &TenantId, n: u32) -> Result<(), Duration> {
        self.check_at(tenant, n, Instant::now())
    }

    /// Like [`check`](Self::check), with the operator's rate for this tenant (set
    /// over the admin API) before the configuration's; its burst is one second's worth.
    pub fn check_own(
        &self,
        tenant: &TenantId,
        n: u32,
        own_per_sec: Option<f64>,
    ) -> Result<(), Duration> {
        match own_per_sec.filter(|r| *r > 0.0) {
            Some(per_sec) => take(
                &self.tat,
                tenant,
                Rate {
                    per_sec,
                    burst: per_sec.max(1.0),
                },
                n,
                Instant::now(),
            ),
            None => self.check(tenant, n),
        }
    }

    fn check_at(&self, tenant: &TenantId, n: u32, now: Instant) -> Result<(), Duration> {
        match self.rate_for(tenant) {
            Some(rate) => take(&self.tat, tenant, rate, n, now),
            None => Ok(()),
        }
    }
}

/// Takes `n` tokens from `key`'s bucket in `tats` (GCRA: the time each bucket is full
/// again), or says how long until they would be there.
fn take<K, Q>(
    tats: &Mutex<HashMap<K, Instant>>,
    key: &Q,
    rate: Rate,
    n: u32,
    now: Instant,
) -> Result<(), Duration>
where
    K: std::borrow::Borrow<Q> + Eq + std::hash::Hash,
    Q: ToOwned<Owned = K> + Eq + std::hash::Hash + ?Sized,
{
    let interval = Duration::from_secs_f64(1.0 / rate.per_sec);
    let cost = interval.mul_f64(f64::from(n.max(1)));
    let tolerance = interval.mul_f64(rate.burst.max(1.0));
    let Ok(mut tats) = tats.lock() else {
        return Ok(());
    };
    // Buckets that are full again carry no state: forget them now and then.
    if tats.len() > 100_000 {
        tats.retain(|_, t| *t > now);
    }
    let tat = tats.get(key).copied().unwrap_or(now).max(now);
    let new_tat = tat + cost;
    // Allowed while the debt stays within the burst.
    if new_tat.saturating_duration_since(now) > tolerance {
        let wait = new_tat.saturating_duration_since(now) - tolerance;
        return Err(wait.max(Duration::from_millis(1)));
    }
    tats.insert(key.to_owned(), new_tat);
    Ok(())
}

/// One bucket per key (a hook, a tenant's audit calls, a device's stream sockets) at
/// one rate: what each expensive endpoint spends, apart from the tenant's messages.
#[derive(Debug)]
pub struct KeyedLimit {
    rate: Rate,
    tat: Mutex<HashMap<String, Instant>>,
}

impl KeyedLimit {
    pub fn new(rate: Rate) -> Self {
        Self {
            rate,
            tat: Mutex::new(HashMap::new()),
        }
    }

    /// Takes `n` tokens from `key`'s bucket, or says how long until they would be there.
    pub fn check(&self, key: &str, n: u32) -> Result<(), Duration> {
        self.check_at(key, n, Instant::now())
    }

    fn check_at(&self, key: &str, n: u32, now: Instant) -> Result<(), Duration> {
        if self.rate.per_sec <= 0.0 {
            return Ok(());
        }
        take(&self.tat, key, self.rate, n, now)
    }

    /// How long until `key`'s bucket has a token, when it has none now (nothing taken).
    pub fn exhausted(&self, key: &str) -> Option<Duration> {
        if self.rate.per_sec <= 0.0 {
            return None;
        }
        let now = Instant::now();
        let interval = Duration::from_secs_f64(1.0 / self.rate.per_sec);
        let tolerance = interval.mul_f64(self.rate.burst.max(1.0));
        let tat = self.tat.lock().ok()?.get(key).copied()?.max(now);
        let debt = (tat + interval).saturating_duration_since(now);
        (debt > tolerance).then(|| debt - tolerance)
    }
}

/// The budgets of the endpoints that cost more than a message.
#[derive(Debug)]
pub struct Budgets {
    /// Messages each alert hook may raise (its own budget, not the tenant's).
    pub hooks: KeyedLimit,
    /// `GET /v1/audit/verify` and `POST /v1/audit/checkpoints`, per tenant.
    pub audit: KeyedLimit,
    /// `GET /v1/app/stream` sockets opened, per device.
    pub streams: KeyedLimit,
    /// Failed console sign-ins, per client address: 10, then one per 30 seconds.
    pub sign_ins: KeyedLimit,
}

impl Default for Budgets {
    fn default() -> Self {
        Self {
            hooks: KeyedLimit::new(Rate {
                per_sec: 1.0,
                burst: 60.0,
            }),
            audit: KeyedLimit::new(Rate {
                per_sec: 0.1,
                burst: 5.0,
            }),
            streams: KeyedLimit::new(Rate {
                per_sec: 0.2,
                burst: 5.0,
            }),
            sign_ins: KeyedLimit::new(Rate {
                per_sec: 1.0 / 30.0,
                burst: 10.0,
            }),
        }
    }
}

/// Each tenant's messages of the current UTC day, for daily quotas: read from the store
/// at most every [`QUOTA_TTL`] and counted here in between (other API processes' messages
/// are seen within that).
#[derive(Debug, Default)]
pub struct Quotas(Mutex<HashMap<TenantId, DayCount>>);

#[derive(Debug, Clone, Copy)]
struct DayCount {
    /// The day's start, Unix ms.
    day: i64,
    /// Counted by the store when read, plus what this process accepted since.
    used: u64,
    read_at: Instant,
}

/// How long a tenant's count is trusted before it is read again.
pub const QUOTA_TTL: Duration = Duration::from_secs(5);
const DAY_MS: i64 = 86_400_000;

/// What [`Quotas::check`] needs from the store: a count of the day so far.
pub enum QuotaCheck {
    /// Within the quota (and counted).
    Ok,
    /// Spent: how long until the day ends.
    Spent(Duration),
    /// Count again from the store, then call [`Quotas::set`].
    Read { since: i64 },
}

impl Quotas {
    /// Takes `n` of the tenant's `quota` for today.
    pub fn check(&self, tenant: &TenantId, quota: u64, n: u64, now_ms: i64) -> QuotaCheck {
        let day = now_ms - now_ms.rem_euclid(DAY_MS);
        let Ok(mut m) = self.0.lock() else {
            return QuotaCheck::Ok;
        };
        match m.get_mut(tenant) {
            Some(c) if c.day == day && c.read_at.elapsed() < QUOTA_TTL => {
                if c.used.saturating_add(n) > quota {
                    let left = u64::try_from(day + DAY_MS - now_ms).unwrap_or(0);
                    return QuotaCheck::Spent(Duration::from_millis(left.max(1)));
                }
                c.used += n;
                QuotaCheck::Ok
            }
            _ => QuotaCheck::Read { since: day },
        }
    }

    /// The store's count of the day that starts at `day`.
    pub fn set(&self, tenant: &TenantId, day: i64, used: u64) {
        if let Ok(mut m) = self.0.lock() {
            if m.len() > 100_000 {
                m.clear();
            }
            m.insert(
                tenant.clone(),
                DayCount {
                    day,
                    used,
                    read_at: Instant::now(),
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> TenantId {
        TenantId::from_trusted(s.to_owned())
    }

    #[test]
    fn burst_then_refusal_with_retry_after() {
        let l = RateLimits::new(
            Some(Rate {
                per_sec: 10.0,
                burst: 5.0,
            }),
            HashMap::new(),
        );
        let now = Instant::now();
        for _ in 0..5 {
            assert!(l.check_at(&t("ten_a"), 1, now).is_ok());
        }
        let wait = l.check_at(&t("ten_a"), 1, now).unwrap_err();
        assert!((90..=110).contains(&wait.as_millis()), "{wait:?}");
        // Another tenant has its own bucket.
        assert!(l.check_at(&t("ten_b"), 5, now).is_ok());
        // Tokens come back with time.
        assert!(
            l.check_at(&t("ten_a"), 1, now + Duration::from_millis(100))
                .is_ok()
        );
        // A batch larger than the burst is refused with the time it would need.
        let wait = l
            .check_at(&t("ten_b"), 20, now + Duration::from_secs(10))
            .unwrap_err();
        assert!((1400..=1600).contains(&wait.as_millis()), "{wait:?}");
    }

    #[test]
    fn overrides_and_no_limit() {
        let mut o = HashMap::new();
        o.insert("ten_vip".to_owned(), None);
        o.insert(
            "ten_slow".to_owned(),
            Some(Rate {
                per_sec: 1.0,
                burst: 1.0,
            }),
        );
        let l = RateLimits::new(None, o);
        let now = Instant::now();
        for _ in 0..1000 {
            assert!(l.check_at(&t("ten_vip"), 1, now).is_ok());
            assert!(l.check_at(&t("ten_other"), 1, now).is_ok());
        }
        assert!(l.check_at(&t("ten_slow"), 1, now).is_ok());
        assert!(l.check_at(&t("ten_slow"), 1, now).is_err());
    }

    #[test]
    fn keyed_buckets_are_apart() {
        let l = KeyedLimit::new(Rate {
            per_sec: 1.0,
            burst: 3.0,
        });
        let now = Instant::now();
        assert!(l.check_at("hook_a", 3, now).is_ok());
        let wait = l.check_at("hook_a", 1, now).unwrap_err();
        assert!((900..=1100).contains(&wait.as_millis()), "{wait:?}");
        assert!(
            l.check_at("hook_b", 3, now).is_ok(),
            "another key, its own budget"
        );
        assert!(
            l.check_at("hook_a", 1, now + Duration::from_secs(1))
                .is_ok()
        );
    }

    #[test]
    fn a_daily_quota_is_read_then_counted_until_spent() {
        let q = super::Quotas::default();
        let t = TenantId::generate();
        let now = 1_700_000_000_000;
        let day = now - now % 86_400_000;
        assert!(
            matches!(q.check(&t, 10, 1, now), super::QuotaCheck::Read { since } if since == day)
        );
        q.set(&t, day, 8);
        assert!(matches!(q.check(&t, 10, 2, now), super::QuotaCheck::Ok));
        match q.check(&t, 10, 1, now) {
            super::QuotaCheck::Spent(wait) => assert_eq!(
                wait.as_millis(),
                u128::try_from(day + 86_400_000 - now).unwrap()
            ),
            _ => panic!("the quota is spent"),
        }
        // The next day starts over from the store.
        assert!(matches!(
            q.check(&t, 10, 1, now + 86_400_000),
            super::QuotaCheck::Read { .. }
        ));
    }

    #[test]
    fn an_exhausted_bucket_is_seen_without_taking_from_it() {
        let l = super::KeyedLimit::new(Rate {
            per_sec: 1.0 / 30.0,
            burst: 3.0,
        });
        assert_eq!(l.exhausted("a"), None, "never used");
        for _ in 0..3 {
            assert_eq!(l.exhausted("a"), None);
            l.check("a", 1).unwrap();
        }
        let wait = l.exhausted("a").expect("three taken of three");
        assert!(wait > std::time::Duration::from_secs(20), "{wait:?}");
        assert_eq!(l.exhausted("b"), None, "per key");
    }
}
