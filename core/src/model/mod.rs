//! The records as plain Rust: what a worker enters (drafts), what is read back, and the
//! validation that refuses bad input before anything is written. No Automerge code lives here:
//! the mapping to documents is `crate::doc` (only the fixed vocabulary carries autosurgeon
//! derives, so each enum maps itself).

pub(crate) mod client;
pub(crate) mod contact;
pub(crate) mod retention;
pub(crate) mod team;
pub(crate) mod vocab;
