//! The app channel's parts: the channel (sealing for each registered device), and in
//! the process that runs its stage, the inboxes' housekeeping.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hermod_core::model::ChannelKind;
use hermod_core::ports::{ConfigError, Devices};
use hermod_core::sender::Sender;
use tokio_util::sync::CancellationToken;

use super::{AppChannel, AppConfig};
use crate::{BuildError, ChannelEnv, ChannelParts};

/// The `[app]` section.
pub type Settings = AppConfig;

/// The app channel names no private file.
pub fn key_files(_: &Settings) -> Vec<PathBuf> {
    Vec::new()
}

/// The app channel gives no sender to anyone.
pub fn fixed_senders(_: &Settings) -> Result<Vec<Sender>, ConfigError> {
    Ok(Vec::new())
}

/// The app channel of this process; always offered (a recipient without a device is
/// skipped when the message is planned).
pub fn build(cfg: &Settings, env: &ChannelEnv) -> Result<ChannelParts, BuildError> {
    let mut parts = ChannelParts::none(ChannelKind::App);
    parts.offered = true;
    if env.roles.send || env.roles.plan {
        parts.channel = Some(AppChannel::new(
            env.devices.clone(),
            env.wake.clone(),
            cfg.clone(),
            env.policy.clone(),
        )?);
    }
    if env.roles.send {
        tokio::spawn(sweep(env.devices.clone(), env.cancel.clone()));
    }
    Ok(parts)
}

/// Every 30 s: the plaintext of ended app messages is forgotten, expired and
/// long-acknowledged envelopes deleted.
async fn sweep(devices: Arc<dyn Devices>, cancel: CancellationToken) {
    loop {
        match devices.sweep_app().await {
            Ok((m, e)) if m + e > 0 => {
                tracing::info!(messages = m, envelopes = e, "app channel housekeeping");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "app channel housekeeping failed"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(30)) => {}
        }
    }
}
