//! Receipt texts (`id:… sub:… dlvrd:… submit date:… stat:… err:… text:…` in any of
//! the forms SMSCs send).
#![no_main]

use hermod_channels::smpp::dlr::{parse_date, parse_text, stat_to_status};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let d = parse_text(&s);
    let _ = stat_to_status(&s);
    let _ = parse_date(&s);
    let _ = format!("{d:?}");
});
