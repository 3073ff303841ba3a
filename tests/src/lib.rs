//! Cross-crate and whole-process tests of streetsync.
//!
//! The library itself is empty; the tests live in `tests/` and the helper processes they drive in
//! `src/bin/` (`ss-save-loop`: saves contacts until it is killed, for the crash test).

/// The fixed 32-byte storage key the crash test and `ss-save-loop` share.
pub const CRASH_KEY: [u8; 32] = [7; 32];
