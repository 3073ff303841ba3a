#![no_main]
//! `sealed_blob`: see `streetsync_fuzz::targets::sealed_blob`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    streetsync_fuzz::targets::sealed_blob(data);
});
