//! How soon an SMSC's receipts follow its submit responses: measured on a sample of
//! submits, it bounds how long the receipt of a submit left in doubt is waited for.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Once [`KEPT`] delays are known, one submit in this many is timed (a map insert
/// and a lock per sample); until then, every one.
const SAMPLE_EVERY: u32 = 8;
/// Timed submits whose receipt has not come yet; the oldest are dropped beyond this.
const OUTSTANDING: usize = 2048;
/// Delays kept: the slowest of these is reported.
const KEPT: usize = 64;
/// Delays needed before anything is reported.
const ENOUGH: usize = 8;

#[derive(Default)]
struct Inner {
    sent: HashMap<String, Instant>,
    order: VecDeque<String>,
    delays: VecDeque<Duration>,
}

/// Receipt delays of one connector.
#[derive(Default)]
pub struct ReceiptClock {
    n: AtomicU32,
    /// How many delays are kept (read without the lock).
    have: AtomicUsize,
    inner: Mutex<Inner>,
}

impl ReceiptClock {
    /// A submit was answered with `provider_id` (scoped); one in [`SAMPLE_EVERY`] is timed.
    pub fn submitted(&self, provider_id: &str) {
        if self.have.load(Ordering::Relaxed) >= KEPT
            && !self
                .n
                .fetch_add(1, Ordering::Relaxed)
                .is_multiple_of(SAMPLE_EVERY)
        {
            return;
        }
        let Ok(mut g) = self.inner.lock() else { return };
        if g.order.len() >= OUTSTANDING
            && let Some(old) = g.order.pop_front()
        {
            g.sent.remove(&old);
        }
        g.sent.insert(provider_id.to_owned(), Instant::now());
        g.order.push_back(provider_id.to_owned());
    }

    /// A receipt for `provider_id` (scoped) arrived.
    pub fn received(&self, provider_id: &str) {
        let Ok(mut g) = self.inner.lock() else { return };
        if g.sent.is_empty() {
            return;
        }
        let Some(at) = g.sent.remove(provider_id) else {
            return;
        };
        if g.delays.len() >= KEPT {
            g.delays.pop_front();
        }
        g.delays.push_back(at.elapsed());
        self.have.store(g.delays.len(), Ordering::Relaxed);
    }

    /// The slowest of the recent delays, once there are enough of them.
    pub fn slowest_recent(&self) -> Option<Duration> {
        let g = self.inner.lock().ok()?;
        (g.delays.len() >= ENOUGH)
            .then(|| g.delays.iter().max().copied())
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_the_slowest_of_enough_samples() {
        let c = ReceiptClock::default();
        for i in 0..ENOUGH {
            c.submitted(&format!("a:{i}"));
        }
        assert_eq!(c.slowest_recent(), None, "no receipt yet");
        std::thread::sleep(Duration::from_millis(5));
        for i in 0..(ENOUGH - 1) {
            c.received(&format!("a:{i}"));
        }
        assert_eq!(c.slowest_recent(), None, "not enough yet");
        c.received(&format!("a:{}", ENOUGH - 1));
        let slow = c.slowest_recent().unwrap();
        assert!(slow >= Duration::from_millis(5), "{slow:?}");
        c.received("a:unknown");
        assert!(c.slowest_recent().is_some());
        // Once enough are kept, only some submits are timed.
        for i in 0..KEPT {
            c.submitted(&format!("b:{i}"));
            c.received(&format!("b:{i}"));
        }
        let before = c.inner.lock().unwrap().sent.len();
        for i in 0..(SAMPLE_EVERY as usize * 4) {
            c.submitted(&format!("c:{i}"));
        }
        assert_eq!(c.inner.lock().unwrap().sent.len() - before, 4);
    }
}
