#![no_main]
//! `envelope`: see `streetsync_fuzz::targets::envelope`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    streetsync_fuzz::targets::envelope(data);
});
