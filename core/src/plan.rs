//! Channel selection and fallback: the plan recorded on each message (every channel it
//! may take, kept or skipped, and why) and the policy that moves it along the plan.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::channel::ChannelKind;
use crate::content::RichMessage;
use crate::{MessageId, Msisdn, TenantId};

/// The channel order used when neither the message nor the tenant names one: every
/// channel, richest first, as `ChannelKind` declares them.
pub const DEFAULT_CHANNELS: &[ChannelKind] = ChannelKind::ALL;

/// One channel of a message's plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanStep {
    pub channel: ChannelKind,
    /// Whether the message may take this channel.
    pub kept: bool,
    /// Why it was kept or skipped (`device_registered`, `rcs_not_capable`, ...).
    pub reason: String,
}

/// What a channel knows of a recipient before sending: kept, with a reason.
#[derive(Clone, Debug, PartialEq)]
pub struct Assessment {
    pub kept: bool,
    pub reason: String,
}

impl Assessment {
    pub fn keep(reason: &str) -> Self {
        Self {
            kept: true,
            reason: reason.to_owned(),
        }
    }
    pub fn skip(reason: &str) -> Self {
        Self {
            kept: false,
            reason: reason.to_owned(),
        }
    }
}

/// A message about to be planned, as the channels need to see it.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub message_id: MessageId,
    pub tenant_id: TenantId,
    pub to: Msisdn,
    pub from: Option<String>,
    pub user_id: Option<String>,
    pub content: Option<RichMessage>,
    /// The channels to consider, in order (message, else tenant, else default).
    pub channels: Vec<ChannelKind>,
    /// The message's fallback policy over the tenant's over the defaults.
    pub policy: FallbackPolicy,
}

/// What dispatch records on a message: its plan and its resolved fallback policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub steps: Vec<PlanStep>,
    pub fallback: FallbackPolicy,
}

impl Plan {
    /// The channel of the first attempt: the first kept one; when every channel was
    /// skipped, the last one, so that its own error reports why.
    pub fn first_channel(&self) -> ChannelKind {
        self.steps
            .iter()
            .find(|s| s.kept)
            .or(self.steps.last())
            .map_or(ChannelKind::Sms, |s| s.channel)
    }
}

/// Which positive receipt ends the wait for a fallback.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Until {
    Delivered,
    Read,
}

/// Whether a fallback may deliver the message twice (one-time codes: better twice
/// than late).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Duplicates {
    /// Withdraw the rich message first; if it was already delivered, do not fall back.
    Avoid,
    /// Fall back at once, without waiting for the withdrawal.
    Allow,
}

/// When to fall to the next channel of the plan. Stored (as given, then as resolved)
/// with the message.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct FallbackPolicy {
    /// Seconds to wait for a positive receipt.
    pub after_secs: u64,
    pub until: Until,
    pub duplicates: Duplicates,
}

impl Default for FallbackPolicy {
    fn default() -> Self {
        Self {
            after_secs: 90,
            until: Until::Delivered,
            duplicates: Duplicates::Avoid,
        }
    }
}

/// A fallback policy as a request gives it: any field may be left to the defaults.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FallbackSpec {
    /// `"90s"`, `"2m"`, `"1h"` or a number of seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Until>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicates: Option<Duplicates>,
}

impl FallbackSpec {
    /// Checks the spec; the error names the field (`after`, `until`, `duplicates`).
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if let Some(a) = &self.after {
            parse_after(a).map_err(|e| ("after", e.to_string()))?;
        }
        Ok(())
    }

    /// This spec over `base`.
    pub fn resolve(&self, base: FallbackPolicy) -> FallbackPolicy {
        FallbackPolicy {
            after_secs: self
                .after
                .as_ref()
                .and_then(|a| parse_after(a).ok())
                .unwrap_or(base.after_secs),
            until: self.until.unwrap_or(base.until),
            duplicates: self.duplicates.unwrap_or(base.duplicates),
        }
    }
}

/// A fallback wait that is not a duration Hermod takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("after must be a duration like \"90s\", \"5m\" or \"1h\" (1 s to 7 days)")]
pub struct InvalidDuration;

/// `"90s"`, `"2m"`, `"1h"`, `"500ms"` is refused; a bare number is seconds. 1 s to 7 days.
pub fn parse_after(v: &serde_json::Value) -> Result<u64, InvalidDuration> {
    let secs = match v {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => {
            let s = s.trim();
            let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
            let n: Option<u64> = num.parse().ok();
            match unit {
                "" | "s" => n,
                "m" => n.and_then(|n| n.checked_mul(60)),
                "h" => n.and_then(|n| n.checked_mul(3600)),
                _ => None,
            }
        }
        _ => None,
    };
    match secs {
        Some(s) if (1..=604_800).contains(&s) => Ok(s),
        _ => Err(InvalidDuration),
    }
}

impl FallbackPolicy {
    pub fn after(&self) -> Duration {
        Duration::from_secs(self.after_secs)
    }
}

/// A tenant's defaults for messages that do not say.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantDefaults {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<Vec<ChannelKind>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<FallbackSpec>,
    /// Non-urgent messages wait while it is night where the recipient is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_hours: Option<crate::quiet::QuietHours>,
}

/// The outcome of withdrawing an unanswered rich message before falling back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Withdrawal {
    /// Withdrawn (RBM revoke 200, envelopes deleted): the next channel may send.
    Withdrawn,
    /// It had already reached the recipient (RBM revoke 404, an envelope acknowledged):
    /// no fallback.
    AlreadyDelivered,
    /// The channel cannot withdraw (SMS): the next channel sends anyway.
    NotSupported,
}

/// A due fallback timer, as the fallback stage sees it.
#[derive(Clone, Debug)]
pub struct DueFallback {
    pub attempt_id: crate::AttemptId,
    pub message_id: MessageId,
    pub tenant_id: TenantId,
    pub to: Msisdn,
    pub from: Option<String>,
    pub channel: ChannelKind,
    pub provider_ids: Vec<String>,
    pub policy: FallbackPolicy,
    pub tries: i32,
}

/// The next kept channel after `current` in `plan`.
pub fn next_channel(plan: &[PlanStep], current: ChannelKind) -> Option<ChannelKind> {
    let pos = plan.iter().position(|s| s.channel == current)?;
    plan[pos + 1..].iter().find(|s| s.kept).map(|s| s.channel)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations_parse_and_are_bounded() {
        assert_eq!(parse_after(&json!("90s")), Ok(90));
        assert_eq!(parse_after(&json!("2m")), Ok(120));
        assert_eq!(parse_after(&json!("1h")), Ok(3600));
        assert_eq!(parse_after(&json!(30)), Ok(30));
        assert_eq!(parse_after(&json!("45")), Ok(45));
        for bad in [
            json!("0s"),
            json!("8d"),
            json!("1.5m"),
            json!("soon"),
            json!(-1),
        ] {
            assert!(parse_after(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn specs_resolve_over_defaults() {
        let spec: FallbackSpec =
            serde_json::from_value(json!({"after": "5s", "duplicates": "allow"})).unwrap();
        let p = spec.resolve(FallbackPolicy::default());
        assert_eq!(p.after_secs, 5);
        assert_eq!(p.until, Until::Delivered);
        assert_eq!(p.duplicates, Duplicates::Allow);
        assert!(serde_json::from_value::<FallbackSpec>(json!({"afterr": 1})).is_err());
    }

    #[test]
    fn the_next_channel_is_the_next_kept_one() {
        let step = |c, kept| PlanStep {
            channel: c,
            kept,
            reason: String::new(),
        };
        let plan = [
            step(ChannelKind::App, true),
            step(ChannelKind::Rcs, false),
            step(ChannelKind::Sms, true),
        ];
        assert_eq!(
            next_channel(&plan, ChannelKind::App),
            Some(ChannelKind::Sms)
        );
        assert_eq!(next_channel(&plan, ChannelKind::Sms), None);
        assert_eq!(
            next_channel(&plan, ChannelKind::Rcs),
            Some(ChannelKind::Sms)
        );
    }
}
