//! The registry's channels for a configuration: each built from its section with its
//! environment, the private files and senders the sections name, and the sections
//! themselves (what a reload hands the running channels).

use std::path::PathBuf;

use hermod_channels::{BuildError, ChannelEnv, ChannelParts};
use hermod_core::model::ChannelKind;
use hermod_core::ports::ConfigError;
use hermod_core::sender::Sender;

use crate::registry::channels;
use crate::settings::Settings;

macro_rules! registry_fns {
    ($($kind:ident, $key:ident, $doc:literal;)+) => {
        /// The channels as listed.

/// The configuration's sender assignments: `[[senders.assign]]`, then those of
/// the channels' sections (`smpp.numbers`, RCS agents with a `tenant`). Tenants
/// must be `ten_…` ids.
pub fn all_fixed_senders(s: &Settings) -> anyhow::Result<Vec<hermod_core::sender::Sender>> {
    use hermod_core::sender::Sender;
    let tenant = |t: &str, what: &str| {
        hermod_core::TenantId::parse(t)
            .ok_or_else(|| anyhow::anyhow!("{what}: tenant '{t}' is not a ten_… id"))
    };
    let mut out = Vec::new();
    for a in &s.senders.assign {
        out.push(Sender {
            sender: a.sender.trim().to_owned(),
            tenant_id: tenant(&a.tenant, "senders.assign")?,
            default: a.default,
            created_at: 0,
        });
    }
    out.extend(fixed_senders(s)?);
    for (i, s) in out.iter().enumerate() {
        let key = hermod_core::inbound::sender_key(&s.sender);
        if let Some(o) = out[..i]
            .iter()
            .find(|o| hermod_core::inbound::sender_key(&o.sender) == key)
            && o.tenant_id != s.tenant_id
        {
            anyhow::bail!("sender '{}' is assigned to two tenants", s.sender);
        }
    }
    Ok(out)
}


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
