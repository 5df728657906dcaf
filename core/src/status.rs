//! The unified status model shared by every channel.
//!
//! `accepted → scheduled? → queued → sending → sent → delivered → read`, and the final
//! failures `failed | expired | rejected | canceled`. A status only ever moves forward:
//! late or out-of-order receipts are recorded beside it but never move it back.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Accepted,
    Scheduled,
    Queued,
    Sending,
    Sent,
    Delivered,
    Read,
    Failed,
    Expired,
    Rejected,
    Canceled,
}

impl Status {
    pub const ALL: [Status; 11] = [
        Status::Accepted,
        Status::Scheduled,
        Status::Queued,
        Status::Sending,
        Status::Sent,
        Status::Delivered,
        Status::Read,
        Status::Failed,
        Status::Expired,
        Status::Rejected,
        Status::Canceled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Accepted => "accepted",
            Status::Scheduled => "scheduled",
            Status::Queued => "queued",
            Status::Sending => "sending",
            Status::Sent => "sent",
            Status::Delivered => "delivered",
            Status::Read => "read",
            Status::Failed => "failed",
            Status::Expired => "expired",
            Status::Rejected => "rejected",
            Status::Canceled => "canceled",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// A failure that ends the message (or attempt) for good.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            Status::Failed | Status::Expired | Status::Rejected | Status::Canceled
        )
    }

    /// Nothing can follow: a failure, or `read`.
    pub fn is_final(self) -> bool {
        self.is_failure() || self == Status::Read
    }

    /// Position on the forward path; failures sit after `sent` but before `delivered`
    /// in the sense that nothing but failure may follow a positive outcome.
    pub fn rank(self) -> u8 {
        match self {
            Status::Accepted => 0,
            Status::Scheduled => 1,
            Status::Queued => 2,
            Status::Sending => 3,
            Status::Sent => 4,
            Status::Delivered => 5,
            Status::Read => 6,
            Status::Failed | Status::Expired | Status::Rejected | Status::Canceled => 7,
        }
    }

    /// Whether moving from `self` to `next` is a forward move.
    ///
    /// - along the path only forward (a late `sent` after `delivered` is refused);
    /// - a failure may end anything not yet final and not yet delivered;
    /// - nothing leaves a final status.
    pub fn can_advance_to(self, next: Status) -> bool {
        if self.is_final() || self == next {
            return false;
        }
        if next.is_failure() {
            return !matches!(self, Status::Delivered);
        }
        next.rank() > self.rank()
    }

    /// The status of a multi-part submission from its parts: any failure fails it;
    /// otherwise it is as far as its least advanced part (all parts must be delivered
    /// for the whole to be delivered). `expected` counts parts not yet heard of as `sent`.
    pub fn fold_parts(parts: &[Status], expected: usize) -> Status {
        if let Some(f) = parts.iter().find(|s| s.is_failure()) {
            return *f;
        }
        let mut least = if parts.len() < expected {
            Status::Sent
        } else {
            Status::Read
        };
        for p in parts {
            if p.rank() < least.rank() {
                least = *p;
            }
        }
        if parts.is_empty() && expected == 0 {
            Status::Sent
        } else {
            least
        }
    }

    /// Folds a possibly late or out-of-order status into the current one.
    pub fn advance(self, next: Status) -> Result<Status, Refused> {
        if self.can_advance_to(next) {
            Ok(next)
        } else {
            Err(Refused {
                from: self,
                to: next,
            })
        }
    }
}

/// A transition that would move a status backwards or out of a final state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("status cannot move from {from:?} to {to:?}")]
pub struct Refused {
    pub from: Status,
    pub to: Status,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Status::*;
    use super::*;

    #[test]
    fn the_happy_path_moves_forward() {
        let path = [Accepted, Queued, Sending, Sent, Delivered, Read];
        let mut s = Accepted;
        for next in &path[1..] {
            s = s.advance(*next).unwrap();
        }
        assert_eq!(s, Read);
        assert_eq!(Accepted.advance(Scheduled), Ok(Scheduled));
        assert_eq!(Scheduled.advance(Queued), Ok(Queued));
    }

    #[test]
    fn out_of_order_receipts_never_move_backwards() {
        // DLR arrives before the submit response is recorded.
        let s = Sending.advance(Delivered).unwrap();
        assert!(s.advance(Sent).is_err());
        assert!(Delivered.advance(Sending).is_err());
        assert!(Read.advance(Delivered).is_err());
        // Skipping steps forward is fine (an SMSC may deliver before we record `sent`).
        assert_eq!(Queued.advance(Delivered), Ok(Delivered));
    }

    #[test]
    fn failures_are_final_and_cannot_follow_delivery() {
        assert_eq!(Sent.advance(Failed), Ok(Failed));
        assert_eq!(Queued.advance(Canceled), Ok(Canceled));
        assert!(Delivered.advance(Failed).is_err());
        assert!(Failed.advance(Delivered).is_err());
        assert!(Expired.advance(Rejected).is_err());
        assert!(Failed.advance(Failed).is_err());
    }

    #[test]
    fn parts_fold_into_one_status() {
        assert_eq!(Status::fold_parts(&[Delivered, Delivered], 2), Delivered);
        assert_eq!(Status::fold_parts(&[Delivered, Sent], 2), Sent);
        assert_eq!(
            Status::fold_parts(&[Delivered], 2),
            Sent,
            "a part not heard of yet"
        );
        assert_eq!(Status::fold_parts(&[Delivered, Failed], 2), Failed);
        assert_eq!(
            Status::fold_parts(&[Expired, Delivered, Delivered], 3),
            Expired
        );
        assert_eq!(Status::fold_parts(&[Read, Delivered], 2), Delivered);
    }

    #[test]
    fn every_status_round_trips_through_text() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
        assert_eq!(Status::parse("bogus"), None);
    }
}
