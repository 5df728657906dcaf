//! Entry points for the fuzz targets (`fuzz/`): the request bodies the API parses,
//! through the same parsing and validation as the handlers, without a server.

use hermod_core::model::ChannelKind;
use hermod_core::{TenantId, now_ms};

use crate::json::parse_json;
use crate::messages::{SendBatch, SendMessage};

/// Parses and validates `body` as each JSON body the API takes; never panics.
pub fn request_bodies(body: &[u8]) {
    let tenant = TenantId::from_trusted("ten_fuzz".into());
    let channels = ChannelKind::ALL;
    let policy = hermod_core::net::AddressPolicy::default();
    let now = now_ms();
    if let Ok(m) = parse_json::<SendMessage>(body) {
        let _ = crate::messages::validate(m, &tenant, "", now, channels, &policy);
    }
    if let Ok(b) = parse_json::<SendBatch>(body) {
        for (i, v) in b.messages.into_iter().enumerate() {
            let prefix = format!("messages[{i}].");
            if let Ok(m) = crate::json::parse_value::<SendMessage>(v, &prefix) {
                let _ = crate::messages::validate(m, &tenant, &prefix, now, channels, &policy);
            }
        }
    }
    if let Ok(t) = parse_json::<crate::templates::TemplateBody>(body) {
        let _ = crate::templates::spec(t, "fuzz".into());
    }
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        let _ = hermod_core::alert::parse(&v, "fuzz", &|b| hermod_crypto::sha256_hex(b));
    }
}
