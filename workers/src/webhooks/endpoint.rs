//! Each endpoint's window: how many POSTs it gets at once, grown on success and shrunk
//! when it is slow or failing, and tripped (left alone a while) after failures in a row.

#[allow(unused_imports)]
use super::*;

/// `scheme://host:port` of a URL (the unit of the per-endpoint window).
pub(super) fn origin(url: &str) -> &str {
    let rest = url.find("://").map_or(0, |i| i + 3);
    url[rest..].find('/').map_or(url, |j| &url[..rest + j])
}

/// One endpoint: its window, what is in flight and waiting, and its health.
pub(super) struct Endpoint {
    pub(super) window: f64,
    pub(super) in_flight: usize,
    pub(super) failures: u32,
    pub(super) tripped_until: Option<Instant>,
    /// Times it was left alone since its last success (each wait doubles).
    pub(super) trips: u32,
    pub(super) waiting: VecDeque<Job>,
}

impl Default for Endpoint {
    fn default() -> Self {
        Self {
            window: WINDOW_START,
            in_flight: 0,
            failures: 0,
            tripped_until: None,
            trips: 0,
            waiting: VecDeque::new(),
        }
    }
}

impl Endpoint {
    pub(super) fn tripped(&mut self, now: Instant) -> bool {
        match self.tripped_until {
            Some(t) if now < t => true,
            Some(_) => {
                // Half open: one POST to see whether it is back.
                self.tripped_until = None;
                self.window = 1.0;
                false
            }
            None => false,
        }
    }

    /// Nothing to remember: in its first state, with nothing in flight or waiting.
    pub(super) fn is_idle(&self) -> bool {
        self.in_flight == 0
            && self.waiting.is_empty()
            && self.failures == 0
            && self.tripped_until.is_none()
            && self.window == WINDOW_START
    }

    pub(super) fn has_room(&self) -> bool {
        (self.in_flight as f64) < self.window.floor().max(1.0)
    }

    /// Failures in a row that leave it alone: a full window's worth twice over (a
    /// flaky endpoint with many POSTs in flight fails a few in a row by chance; one
    /// that is down fails them all), and at least `TRIP_AFTER`.
    pub(super) fn trip_after(&self) -> u32 {
        TRIP_AFTER.max(2 * self.window.floor() as u32)
    }

    /// A POST ended, answered as `health` says.
    pub(super) fn finished(&mut self, health: Health, now: Instant) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if health == Health::Up {
            // It answers: whatever was left alone is over.
            self.failures = 0;
            self.trips = 0;
            self.tripped_until = None;
            // Grow while the window is in use.
            if self.in_flight + 1 >= self.window as usize {
                self.window = (self.window + 1.0).min(WINDOW_MAX);
            }
            return;
        }
        if self.tripped_until.is_some_and(|t| now < t) {
            // Sent before it was left alone: it says nothing new, and does not make
            // the wait longer.
            return;
        }
        self.failures += 1;
        // Only a sign of load narrows the window: a 500 about one event says
        // nothing about how many the endpoint can take.
        if health == Health::Overloaded {
            self.window = (self.window / 2.0).max(1.0);
        }
        if self.failures >= self.trip_after() {
            // Its failures stay counted: the one POST tried when the wait is over
            // leaves it alone again at once if it fails too, for twice as long.
            let wait = Duration::from_secs(1u64 << self.trips.min(6)).min(TRIPPED_MAX);
            self.trips += 1;
            self.tripped_until = Some(now + wait);
        }
    }
}

/// What an answer says about the endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Health {
    /// It answered, and not with a 5xx or 429 (a 4xx is a refusal, not a failure).
    Up,
    /// A 5xx that says nothing of its load (500, 501, ...): counts toward leaving
    /// it alone, keeps the window.
    Failed,
    /// No answer (timeout, refused connection), 429, 502, 503 or 504: it is down or
    /// overloaded, so the window halves.
    Overloaded,
}

pub(super) fn health(answer: &Result<u16, PostError>) -> Health {
    match answer {
        Ok(429 | 502 | 503 | 504) | Err(_) => Health::Overloaded,
        Ok(code) if *code >= 500 => Health::Failed,
        Ok(_) => Health::Up,
    }
}

pub(super) fn is_success(answer: &Result<u16, PostError>) -> bool {
    matches!(answer, Ok(code) if (200..300).contains(code))
}
