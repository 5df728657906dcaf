//! A connector's pace: a token bucket that finds the SMSC's rate limit instead of
//! hammering it.
//!
//! Tokens refill at the current rate up to a burst of a tenth of a second's worth
//! (`burst` overrides); a multipart message takes one token per part.
//!
//! - With `tps` configured, the rate never exceeds it. ESME_RTHROTTLED / ESME_RMSGQFUL
//!   halve the current rate, which climbs back by 10% of the setting per second
//!   without throttling.
//! - With no `tps` (unlimited), submits go unpaced until the SMSC first says "too
//!   fast". From then on the bucket paces at the rate the SMSC was measured to
//!   accept over the last second (submits answered ESME_ROK), a little below it. While
//!   sending is held back by the pace and nothing is throttled, it probes upward,
//!   faster the longer it stays calm (2%/s, doubling every 3 s, at most doubling per
//!   second), so a limit that rose is found again; a throttle sets it back to the
//!   measured rate.
//!
//! Like TCP's one cut per round trip, replies within [`CUT_SPACING`] of a cut do not
//! cut again: a full window of submits sent before the first "too fast" came back is
//! one congestion event, not `window` of them.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Accepted submits are counted in slots of this length, over [`WINDOW_SLOTS`].
const SLOT: Duration = Duration::from_millis(100);
const WINDOW_SLOTS: usize = 10;
/// A discovered rate is held this much below what was measured.
const MARGIN: f64 = 0.95;

#[derive(Debug)]
struct State {
    /// Configured rate; `None` = find it.
    limit: Option<f64>,
    /// The pace in force; `None` = unpaced (unlimited, nothing throttled yet).
    rate: Option<f64>,
    /// Burst as a number of tokens, or as seconds of the current rate.
    burst: Burst,
    tokens: f64,
    last: Instant,
    last_throttle: Option<Instant>,
    /// When the rate was last cut.
    last_cut: Option<Instant>,
    /// When `acquire` last had to wait (the pace is what holds sending back).
    last_wait: Option<Instant>,
    /// Accepted submits per slot, newest last, and when the newest slot began.
    accepted: [u32; WINDOW_SLOTS],
    slot_start: Instant,
    /// Slots counted so far (a young window measures over what it has).
    slots_seen: usize,
}

#[derive(Debug, Clone, Copy)]
enum Burst {
    Tokens(f64),
    Seconds(f64),
}

#[derive(Debug)]
pub struct TokenBucket {
    state: Mutex<State>,
}

const MIN_RATE: f64 = 1.0;
/// Throttle replies this soon after a cut answer submits sent before it.
pub const CUT_SPACING: Duration = Duration::from_millis(250);

impl State {
    fn burst_tokens(&self) -> f64 {
        match self.burst {
            Burst::Tokens(n) => n,
            Burst::Seconds(s) => (self.rate.unwrap_or(0.0) * s).max(1.0),
        }
    }

    /// Moves the accepted-submit window to `now`.
    fn roll(&mut self, now: Instant) {
        if now.saturating_duration_since(self.slot_start) >= SLOT * WINDOW_SLOTS as u32 {
            // Idle for the whole window: nothing of it is left.
            self.accepted = [0; WINDOW_SLOTS];
            self.slot_start = now;
            self.slots_seen = 0;
            return;
        }
        while now.saturating_duration_since(self.slot_start) >= SLOT {
            self.accepted.rotate_left(1);
            self.accepted[WINDOW_SLOTS - 1] = 0;
            self.slot_start += SLOT;
            self.slots_seen = (self.slots_seen + 1).min(WINDOW_SLOTS);
        }
    }

    /// Submits per second the SMSC accepted over the window.
    fn measured(&self, now: Instant) -> f64 {
        let n: u32 = self.accepted.iter().sum();
        let full = self.slots_seen.min(WINDOW_SLOTS - 1) as f64 * SLOT.as_secs_f64();
        let span = full + now.saturating_duration_since(self.slot_start).as_secs_f64();
        f64::from(n) / span.max(SLOT.as_secs_f64())
    }
}

impl TokenBucket {
    /// `tps` 0 = find the SMSC's rate; `burst` in tokens (default: a tenth of a
    /// second at the current rate).
    pub fn new(tps: f64, burst: Option<f64>) -> Self {
        let limit = (tps > 0.0).then_some(tps);
        let burst = match burst {
            Some(b) if b > 0.0 => Burst::Tokens(b.max(1.0)),
            _ => Burst::Seconds(0.1),
        };
        let now = Instant::now();
        let mut s = State {
            limit,
            rate: limit,
            burst,
            tokens: 0.0,
            last: now,
            last_throttle: None,
            last_cut: None,
            last_wait: None,
            accepted: [0; WINDOW_SLOTS],
            slot_start: now,
            slots_seen: 0,
        };
        s.tokens = s.burst_tokens();
        Self {
            state: Mutex::new(s),
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
        let elapsed = now.saturating_duration_since(s.last).as_secs_f64();
        s.last = now;
        // Unpaced: nothing to take.
        let rate = s.rate?;
        let calm = s
            .last_throttle
            .map_or(f64::MAX, |t| now.saturating_duration_since(t).as_secs_f64());
        let held_back = s
            .last_wait
            .is_some_and(|t| now.saturating_duration_since(t) < Duration::from_secs(1));
        let rate = match s.limit {
            // Recover towards the configured rate while no throttling is seen.
            Some(limit) if calm > 1.0 => (rate + limit * 0.1 * elapsed).min(limit),
            Some(_) => rate,
            // Probe upward while the pace is what holds sending back.
            None if calm > 1.0 && held_back => {
                let doublings = ((calm - 1.0) / 3.0).floor().min(6.0);
                let per_sec = (0.02 * 2f64.powf(doublings)).min(1.0);
                rate * (1.0 + per_sec * elapsed)
            }
            None => rate,
        };
        s.rate = Some(rate);
        let burst = s.burst_tokens();
        s.tokens = (s.tokens + rate * elapsed).min(burst);
        // A message with more parts than the burst may still go once the bucket is full.
        let need = n.min(burst);
        if s.tokens >= need {
            s.tokens -= n;
            return None;
        }
        s.last_wait = Some(now);
        let missing = need - s.tokens;
        Some(Duration::from_secs_f64(
            (missing / rate.max(MIN_RATE)).max(0.001),
        ))
    }

    /// The SMSC accepted a submit.
    pub fn accepted(&self) {
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        let now = Instant::now();
        s.roll(now);
        s.accepted[WINDOW_SLOTS - 1] += 1;
    }

    /// The SMSC said "too fast".
    pub fn throttled(&self) {
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        let now = Instant::now();
        s.last_throttle = Some(now);
        let fresh = s
            .last_cut
            .is_none_or(|t| now.saturating_duration_since(t) >= CUT_SPACING);
        if !fresh {
            return;
        }
        s.last_cut = Some(now);
        s.roll(now);
        let rate = match (s.limit, s.rate) {
            (Some(_), Some(r)) => r / 2.0,
            // What the SMSC accepted is its rate; stay a little below it.
            _ => s.measured(now) * MARGIN,
        };
        s.rate = Some(rate.max(MIN_RATE));
        s.tokens = s.tokens.min(0.0);
    }

    /// The current rate (`None` = unpaced: no limit configured, none found yet).
    pub fn current_rate(&self) -> Option<f64> {
        let s = self.state.lock().ok()?;
        s.rate.map(|r| (r * 10.0).round() / 10.0)
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
    async fn the_default_burst_is_a_tenth_of_a_second() {
        let b = TokenBucket::new(100.0, None);
        assert!(time_for(&b, 10, 1).await < Duration::from_millis(1));
        let t = time_for(&b, 10, 1).await;
        assert!(t >= Duration::from_millis(95), "{t:?}");
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
    async fn throttling_halves_a_configured_rate_and_it_recovers() {
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

    /// An SMSC that accepts `limit` submits per second (a bucket of a tenth of a
    /// second, as real ones and the peer rig's have) and throttles the rest, for
    /// each `(limit, seconds)` in turn, driven by a sender with always more to send.
    /// Returns (ok, throttled) per second.
    async fn drive(b: &TokenBucket, limits: &[(f64, u64)]) -> Vec<(u32, u32)> {
        let mut out = Vec::new();
        let mut smsc_tokens = limits[0].0 / 10.0;
        let mut last = Instant::now();
        let mut n = 0u64;
        for (limit, secs) in limits {
            for _ in 0..*secs {
                let end = Instant::now() + Duration::from_secs(1);
                let (mut ok, mut thr) = (0u32, 0u32);
                while Instant::now() < end {
                    b.acquire(1).await;
                    let now = Instant::now();
                    smsc_tokens = (smsc_tokens
                        + now.saturating_duration_since(last).as_secs_f64() * limit)
                        .min(limit / 10.0);
                    last = now;
                    if smsc_tokens >= 1.0 {
                        smsc_tokens -= 1.0;
                        ok += 1;
                        b.accepted();
                    } else {
                        thr += 1;
                        b.throttled();
                    }
                    // Unpaced, the wire takes 10,000 submits a second (the paused
                    // clock moves in milliseconds).
                    n += 1;
                    if n.is_multiple_of(10) {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
                out.push((ok, thr));
            }
        }
        out
    }

    #[tokio::test(start_paused = true)]
    async fn an_unknown_limit_is_found_within_seconds_and_followed() {
        for limit in [100.0, 500.0, 2000.0] {
            let b = TokenBucket::new(0.0, None);
            assert_eq!(b.current_rate(), None, "unpaced until throttled");
            let secs = drive(&b, &[(limit, 20)]).await;
            // From the 5th second on: at least 90% of the limit, under 5% throttled.
            for (i, (ok, thr)) in secs.iter().enumerate().skip(5) {
                let (ok, thr) = (f64::from(*ok), f64::from(*thr));
                assert!(ok >= 0.9 * limit, "{limit}/s, second {i}: {ok} ok");
                assert!(
                    thr < 0.05 * (ok + thr),
                    "{limit}/s, second {i}: {thr} throttled"
                );
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_limit_that_rises_is_found_again() {
        let b = TokenBucket::new(0.0, None);
        let secs = drive(&b, &[(500.0, 10), (2000.0, 40)]).await;
        let last: u32 = secs.iter().rev().take(5).map(|s| s.0).sum();
        assert!(f64::from(last) / 5.0 >= 0.9 * 2000.0, "{secs:?}");
        let b = TokenBucket::new(0.0, None);
        let secs = drive(&b, &[(2000.0, 10), (500.0, 10)]).await;
        let (ok, thr) = secs[15];
        assert!(
            f64::from(ok) >= 0.9 * 500.0 && f64::from(thr) < 0.05 * f64::from(ok),
            "{secs:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_configured_limit_is_never_exceeded() {
        let b = TokenBucket::new(450.0, None);
        let secs = drive(&b, &[(10_000.0, 5)]).await;
        for (ok, thr) in secs {
            assert_eq!(thr, 0);
            assert!(f64::from(ok) <= 450.0 * 1.1 + 1.0, "{ok}");
            assert!(f64::from(ok) >= 450.0 * 0.95, "{ok}");
        }
    }
}
