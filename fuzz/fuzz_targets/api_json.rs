#![no_main]
//! `api_json`: see `streetsync_fuzz::targets::api_json`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    streetsync_fuzz::targets::api_json(data);
});
