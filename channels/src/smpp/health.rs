//! A connector's health for routing (SMPP connectors and HTTP providers alike): after
//! `threshold` failed sends in a row it is taken out of routing for `cooldown`.
//! Successes and permanent refusals reset the count; throttling does not count.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use hermod_core::now_ms;
use hermod_core::ports::ChannelError;
use tokio::time::Instant;

#[derive(Default)]
pub struct Health {
    failures: AtomicU32,
    failing_until: Mutex<Option<(Instant, i64)>>,
}

impl Health {
    /// Unix ms until which repeated failures keep it out of routing; `None`: healthy.
    pub fn failing(&self) -> Option<i64> {
        let mut f = self.failing_until.lock().ok()?;
        match *f {
            Some((until, ms)) if Instant::now() < until => Some(ms),
            Some(_) => {
                *f = None;
                None
            }
            None => None,
        }
    }

    /// Counts a send's outcome; `is_throttle` tells the connector's throttling codes.
    pub fn record(
        &self,
        connector: &str,
        r: &Result<(Vec<String>, String), ChannelError>,
        is_throttle: impl Fn(&str) -> bool,
        threshold: u32,
        cooldown: Duration,
    ) {
        match r {
            Ok(_) | Err(ChannelError::Permanent { .. }) => {
                self.failures.store(0, Ordering::Relaxed);
            }
            Err(ChannelError::Transient { code, .. }) if is_throttle(code) => {}
            Err(ChannelError::Transient { .. } | ChannelError::InDoubt { .. }) => {
                let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
                if n >= threshold.max(1) {
                    if let Ok(mut f) = self.failing_until.lock()
                        && f.is_none()
                    {
                        tracing::warn!(%connector, failures = n, "connector keeps failing; routing around it");
                        let ms = now_ms() + i64::try_from(cooldown.as_millis()).unwrap_or(0);
                        *f = Some((Instant::now() + cooldown, ms));
                    }
                    self.failures.store(0, Ordering::Relaxed);
                }
            }
        }
    }
}
