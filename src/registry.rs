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

/// Calls `$then!` with every channel: `Kind, folder, "what its section is for";`.
macro_rules! channels {
    ($then:ident) => {
        $then! {
            App, app, "The encrypted app channel: `[app] push_relay_url`, `[app.push_relays]`.";
            Rcs, rcs, "RCS through Google RBM: `[[rcs.agents]]`.";
            Sms, smpp, "SMS over SMPP: the SMSC connectors, routes, our numbers, replies (HTTP providers: `[[sms.providers]]`).";
        }
    };
}
pub(crate) use channels;
