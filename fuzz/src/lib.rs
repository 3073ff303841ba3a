//! Fuzz targets for every streetsync decoder that reads bytes from outside. See `docs/fuzzing.md`.
//!
//! - [`targets`]: one function per decoder family, shared with the stable regression test.
//! - [`receive`]: the Automerge side of receiving a teammate's changes for a record this device
//!   already holds, as `workspace::apply_checked` does it (fuzz-only: it uses Automerge directly,
//!   which the test package does not depend on; the regression test replays the same inputs through
//!   `Workspace::apply_remote` instead).

pub mod receive;
pub mod targets;
