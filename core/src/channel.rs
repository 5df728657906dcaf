//! The channels: declared once, one line each (the registry of kinds: the composition
//! root's channel registry maps each to its implementation), and sets of them.

use serde::{Deserialize, Serialize};

/// Declares [`ChannelKind`]: one line per channel, its variant and its name (in the
/// API, the configuration, metrics and its queue `channel.<name>`).
macro_rules! channel_kinds {
    ($($(#[$doc:meta])* $variant:ident = $name:literal,)+) => {
        /// The channels a message can take.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum ChannelKind {
            $($(#[$doc])* $variant,)+
        }

        impl ChannelKind {
            /// Every channel, in declaration order (the default channel order).
            pub const ALL: &'static [ChannelKind] = &[$(ChannelKind::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(ChannelKind::$variant => $name,)+
                }
            }

            /// The queue of this channel's send stage.
            pub fn queue(self) -> &'static str {
                match self {
                    $(ChannelKind::$variant => concat!("channel.", $name),)+
                }
            }
        }
    };
}

// The order is the default channel order (richest first): see `plan::DEFAULT_CHANNELS`.
channel_kinds! {
    /// End-to-end encrypted delivery to the tenant's own app.
    App = "app",
    Rcs = "rcs",
    Sms = "sms",
}

impl ChannelKind {
    pub fn parse(s: &str) -> Option<ChannelKind> {
        ChannelKind::ALL.iter().copied().find(|k| k.as_str() == s)
    }

    /// Every channel's name, comma-separated (`app, rcs, sms`), for messages.
    pub fn names() -> String {
        ChannelKind::ALL
            .iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A set of channels (e.g. the send stages a process runs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChannelSet(u64);

impl ChannelSet {
    pub const NONE: ChannelSet = ChannelSet(0);

    /// Every channel.
    pub fn all() -> ChannelSet {
        ChannelKind::ALL
            .iter()
            .fold(ChannelSet::NONE, |s, k| s.with(*k))
    }

    fn bit(kind: ChannelKind) -> u64 {
        let i = ChannelKind::ALL
            .iter()
            .position(|k| *k == kind)
            .unwrap_or_default();
        1 << i
    }

    #[must_use]
    pub fn with(self, kind: ChannelKind) -> ChannelSet {
        ChannelSet(self.0 | Self::bit(kind))
    }

    pub fn contains(self, kind: ChannelKind) -> bool {
        self.0 & Self::bit(kind) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The channels in the set, in `ChannelKind::ALL` order.
    pub fn iter(self) -> impl Iterator<Item = ChannelKind> {
        ChannelKind::ALL
            .iter()
            .copied()
            .filter(move |k| self.contains(*k))
    }
}

impl std::fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
