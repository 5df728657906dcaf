//! The channel registry: every channel Hermod has, listed once. Each line names the
//! channel's kind (`hermod_core::model::ChannelKind`), its folder in `channels/`
//! (which is also its settings section) and what the section is for. The settings'
//! sections (and the configuration reference), the channels each process builds,
//! their stages, webhook routes, `GET /v1/connectors` and reloads all come from this
//! list; the default channel order and the metrics labels come from `ChannelKind`.
//!
//! Adding a channel: a folder in `channels/` exporting `Settings`, `key_files`,
//! `fixed_senders` and `build` (see `hermod_channels::ChannelParts`), its variant in
//! `ChannelKind`, and one line here.

use std::path::PathBuf;

use hermod_channels::{BuildError, ChannelEnv, ChannelParts};
use hermod_core::model::ChannelKind;
use hermod_core::ports::ConfigError;
use hermod_core::sender::Sender;

use crate::settings::Settings;

/// Calls `$then!` with every channel: `Kind, folder, "what its section is for";`.
macro_rules! channels {
    ($then:ident) => {
        $then! {
            App, app, "The encrypted app channel: `[app] push_relay_url`, `[app.push_relays]`.";
            Rcs, rcs, "RCS through Google RBM: `[[rcs.agents]]`.";
            Sms, smpp, "SMS over SMPP: the SMSC connectors, routes, our numbers, replies.";
        }
    };
}
pub(crate) use channels;

macro_rules! registry_fns {
    ($($kind:ident, $key:ident, $doc:literal;)+) => {
        /// The channels as listed.
        #[cfg(test)]
        pub const KINDS: &[ChannelKind] = &[$(ChannelKind::$kind),+];

        /// Builds every channel of this process from its section, each with the
        /// environment `env` gives its kind.
        pub fn build(
            s: &Settings,
            env: impl Fn(ChannelKind) -> ChannelEnv,
        ) -> Result<Vec<ChannelParts>, BuildError> {
            Ok(vec![$(hermod_channels::$key::build(&s.$key, &env(ChannelKind::$kind))?),+])
        }

        /// The private files the channels' sections name.
        pub fn key_files(s: &Settings) -> Vec<PathBuf> {
            let mut v = Vec::new();
            $(v.extend(hermod_channels::$key::key_files(&s.$key));)+
            v
        }

        /// The senders the channels' sections give tenants.
        pub fn fixed_senders(s: &Settings) -> Result<Vec<Sender>, ConfigError> {
            let mut v = Vec::new();
            $(v.extend(hermod_channels::$key::fixed_senders(&s.$key)?);)+
            Ok(v)
        }

        /// Each channel's section, as JSON (what a reload hands the running channel).
        pub fn sections(s: &Settings) -> Vec<(ChannelKind, serde_json::Value)> {
            vec![$((
                ChannelKind::$kind,
                serde_json::to_value(&s.$key).unwrap_or_default(),
            )),+]
        }
    };
}

channels!(registry_fns);

#[cfg(test)]
mod tests {
    use super::*;

    /// The registry lists every kind once, in `ChannelKind`'s order (the default
    /// channel order).
    #[test]
    fn the_registry_lists_every_channel_kind_in_order() {
        assert_eq!(KINDS, ChannelKind::ALL);
        let s = Settings::default();
        let kinds: Vec<ChannelKind> = sections(&s).into_iter().map(|(k, _)| k).collect();
        assert_eq!(kinds, ChannelKind::ALL);
    }
}
