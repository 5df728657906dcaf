//! A token bucket per connector that also backs off when the SMSC throttles.
//!
//! Tokens refill at the current rate up to `burst`; a multipart message takes one
//! token per part. ESME_RTHROTTLED / ESME_RMSGQFUL halve the current rate (and, with
//! no configured limit, pause sending briefly); the rate then climbs back by 10% of
//! the configured rate per second without throttling (AIMD, as TCP does). Like TCP's
//! one cut per round trip, replies within [`CUT_SPACING`] of a cut do not cut again:
//! a full window of submits sent before the first "too fast" came back is one
//! congestion event, not `window` of them (which would drop 200/s to 1/s at once).

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
struct State {
    /// Configured rate; `None` = unlimited.
    limit: Option<f64>,
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
    paused_until: Option<Instant>,
    pause: Duration,
    last_throttle: Option<Instant>,
    /// When the rate was last halved.
    last_cut: Option<Instant>,
}

#[derive(Debug)]
pub struct TokenBucket {
    state: Mutex<State>,
}

const MIN_RATE: f64 = 1.0;
const MAX_PAUSE: Duration = Duration::from_secs(5);
/// Throttle replies this soon after a cut answer submits sent before it.
pub const CUT_SPACING: Duration = Duration::from_millis(250);

impl TokenBucket {
    /// `tps` 0 = unlimited.
    pub fn new(tps: f64, burst: Option<f64>) -> Self {
        let limit = (tps > 0.0).then_some(tps);
        let burst = burst.unwrap_or(tps).max(1.0);
        Self {
            state: Mutex::new(State {
                limit,
                rate: tps,
                burst,
                tokens: burst,
                last: Instant::now(),
                paused_until: None,
                pause: Duration::from_millis(100),
                last_throttle: None,
                last_cut: None,
            }),
        }
    }

    /// Takes `n` tokens, waiting as long as needed.
    pub async fn acquire(&self, n: u32) {
        loop {
            let wait = self.try_take(f64::from(n.max(1)));
            match wait {
                None => return,
                Some(d) => tokio::time::sleep(d).await,
            }
        }
    }

    /// `None` when taken, else how long to wait before trying again.
    fn try_take(&self, n: f64) -> Option<Duration> {
        let Ok(mut s) = self.state.lock() else {
            return None;
        };
        let now = Instant::now();
        if let Some(until) = s.paused_until {
            if now < until {
                return Some(until - now);
            }
            s.paused_until = None;
        }
        // Unlimited: nothing to take.
        let limit = s.limit?;
        let elapsed = now.saturating_duration_since(s.last).as_secs_f64();
        s.last = now;
        // Recover towards the configured rate while no throttling is seen.
        let calm = s
            .last_throttle
            .is_none_or(|t| now.saturating_duration_since(t) > Duration::from_secs(1));
        if calm && s.rate < limit {
            s.rate = (s.rate + limit * 0.1 * elapsed).min(limit);
        }
        s.tokens = (s.tokens + s.rate * elapsed).min(s.burst);
        // A message with more parts than the burst may still go once the bucket is full.
        let need = n.min(s.burst);
        if s.tokens >= need {
            s.tokens -= n;
            return None;
        }
        let missing = need - s.tokens;
        Some(Duration::from_secs_f64(
            (missing / s.rate.max(MIN_RATE)).max(0.001),
        ))
    }

    /// The SMSC said "too fast".
    pub fn throttled(&self) {
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        let now = Instant::now();
        let repeated = s
            .last_throttle
            .is_some_and(|t| now.saturating_duration_since(t) < Duration::from_secs(2));
        s.last_throttle = Some(now);
        s.pause = if repeated {
            (s.pause * 2).min(MAX_PAUSE)
        } else {
            Duration::from_millis(100)
        };
        match s.limit {
            Some(_) => {
                let fresh = s
                    .last_cut
                    .is_none_or(|t| now.saturating_duration_since(t) >= CUT_SPACING);
                if fresh {
                    s.rate = (s.rate / 2.0).max(MIN_RATE);
                    s.last_cut = Some(now);
                }
                s.tokens = s.tokens.min(0.0);
            }
            None => s.paused_until = Some(now + s.pause),
        }
    }

    /// The current rate (`None` = unlimited and not paused).
    pub fn current_rate(&self) -> Option<f64> {
        let s = self.state.lock().ok()?;
        s.limit.map(|_| s.rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn time_for(b: &TokenBucket, messages: u32, parts: u32) -> Duration {
        let start = Instant::now();
        for _ in 0..messages {
            b.acquire(parts).await;
        }
        start.elapsed()
    }

    #[tokio::test(start_paused = true)]
    async fn burst_then_rate() {
        let b = TokenBucket::new(10.0, Some(5.0));
        // The burst goes at once, the rest at 10/s.
        assert!(time_for(&b, 5, 1).await < Duration::from_millis(10));
        let t = time_for(&b, 10, 1).await;
        assert!(
            t >= Duration::from_millis(950) && t <= Duration::from_millis(1100),
            "{t:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn parts_cost_one_token_each() {
        let b = TokenBucket::new(10.0, Some(1.0));
        b.acquire(1).await;
        // Three single-part messages: 3 tokens at 10/s.
        let t1 = time_for(&b, 3, 1).await;
        assert!(
            t1 >= Duration::from_millis(290) && t1 < Duration::from_millis(350),
            "{t1:?}"
        );
        // Three 2-part messages: the third may start once 5 of their 6 tokens are paid.
        let t2 = time_for(&b, 3, 2).await;
        assert!(
            t2 >= Duration::from_millis(490) && t2 < Duration::from_millis(550),
            "{t2:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_halves_the_rate_and_it_recovers() {
        let b = TokenBucket::new(100.0, Some(1.0));
        b.throttled();
        assert_eq!(b.current_rate(), Some(50.0));
        // Replies to submits already in flight: the same congestion event.
        b.throttled();
        b.throttled();
        assert_eq!(b.current_rate(), Some(50.0));
        tokio::time::sleep(CUT_SPACING).await;
        b.throttled();
        assert_eq!(b.current_rate(), Some(25.0));
        tokio::time::sleep(Duration::from_secs(2)).await;
        b.acquire(1).await;
        tokio::time::sleep(Duration::from_secs(10)).await;
        b.acquire(1).await;
        assert_eq!(b.current_rate(), Some(100.0));
    }

    #[tokio::test(start_paused = true)]
    async fn unlimited_pauses_when_throttled() {
        let b = TokenBucket::new(0.0, None);
        assert!(time_for(&b, 1000, 1).await < Duration::from_millis(1));
        b.throttled();
        let t = time_for(&b, 1, 1).await;
        assert!(t >= Duration::from_millis(100), "{t:?}");
        b.throttled();
        let t = time_for(&b, 1, 1).await;
        assert!(t >= Duration::from_millis(200), "{t:?}");
    }
}
