//! The API's JSON bodies (messages, batches, templates, alert payloads), parsed and
//! validated as the handlers do.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hermod_api::fuzz::request_bodies(data);
});
