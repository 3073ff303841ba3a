#![no_main]
//! `bundle`: see `streetsync_fuzz::targets::bundle`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    streetsync_fuzz::targets::bundle(data);
});
