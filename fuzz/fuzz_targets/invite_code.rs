#![no_main]
//! `invite_code`: see `streetsync_fuzz::targets::invite_code`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    streetsync_fuzz::targets::invite_code(data);
});
