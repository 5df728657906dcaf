//! GSM 03.38, Latin-1 and UCS-2: decoding never panics; decoded GSM text encodes back
//! to what decodes the same; a text split into parts decodes back to itself.
#![no_main]

use hermod_core::gsm::{self, Preferred};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&dc, rest)) = data.split_first() else {
        return;
    };
    let _ = gsm::decode(dc, rest);
    let text = gsm::decode_gsm7(rest);
    if let Some(septets) = gsm::encode_gsm7(&text) {
        assert_eq!(gsm::decode_gsm7(&septets), text);
    }
    let s = String::from_utf8_lossy(rest);
    for pref in [Preferred::Gsm, Preferred::Latin1, Preferred::Ucs2] {
        let seg = gsm::segment_as(&s, pref);
        let dc = seg.coding.data_coding();
        let back: String = seg.parts.iter().map(|p| gsm::decode(dc, p)).collect();
        assert_eq!(back, s, "{pref:?}");
    }
});
