#![no_main]
//! `auth_header`: see `streetsync_fuzz::targets::auth_header`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    streetsync_fuzz::targets::auth_header(data);
});
