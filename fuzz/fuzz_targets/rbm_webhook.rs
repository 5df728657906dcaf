//! An RBM webhook body: the Pub/Sub envelope, its signature check, and the event
//! inside (base64 JSON), decoded as the webhook decodes it.
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hermod_channels::rcs::decode_event;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let _ = decode_event(
        "shop",
        "shop@rbm.goog",
        None,
        &v["message"]["attributes"],
        &v,
    );
    if let Some(d) = v["message"]["data"].as_str() {
        let _ = hermod_crypto::rbm::verify_webhook("token", d, "c2ln");
        if let Ok(raw) = STANDARD.decode(d.trim())
            && let Ok(ev) = serde_json::from_slice::<serde_json::Value>(&raw)
        {
            let _ = decode_event(
                "shop",
                "shop@rbm.goog",
                None,
                &v["message"]["attributes"],
                &ev,
            );
        }
    }
});
