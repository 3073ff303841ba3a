#![no_main]
//! `document`: Automerge bytes from a teammate, loaded and hydrated on their own
//! (`streetsync_fuzz::targets::document`) and merged into an existing record the way a device
//! receives them (`streetsync_fuzz::receive::merge_into_existing`).

libfuzzer_sys::fuzz_target!(init: streetsync_fuzz::receive::let_guarded_panics_unwind(), |data: &[u8]| {
    streetsync_fuzz::receive::set_current_input(data);
    streetsync_fuzz::targets::document(data);
    streetsync_fuzz::receive::merge_into_existing(data);
});
