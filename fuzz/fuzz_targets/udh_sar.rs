//! A user data header and the text after it, as an inbound part carries them: the
//! concatenation found must describe a part that can exist, and the rest decodes.
#![no_main]

use hermod_channels::smpp::mo::split_udh;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&dc, rest)) = data.split_first() else {
        return;
    };
    let (concat, text) = split_udh(rest);
    assert!(text.len() <= rest.len());
    if let Some(c) = concat {
        let _ = (c.reference, c.total, c.seq);
    }
    let _ = hermod_core::gsm::decode(dc, text);
});
