//! The streetsync wire format, defined once for the sync client and the relay.
//!
//! `docs/protocol.md` is the contract; this crate is its only Rust definition:
//!
//! - [`TeamId`], [`DeviceId`], [`RecordId`], [`EnvelopeId`]: 16-byte ids, 32 lowercase hex on
//!   the wire.
//! - [`Envelope`]: a sealed, signed unit of sync, with the exact header bytes (the AEAD
//!   associated data) and signed bytes.
//! - [`auth`]: the signed `Authorization` header of every request.
//! - [`api`] types: request and response bodies and [`ErrorCode`].
//! - The protocol's limits as constants.
//!
//! It depends on neither Automerge nor any store: the relay must never be able to read documents.
//!
//! ```
//! use ring::signature::{Ed25519KeyPair, KeyPair as _};
//! use streetsync_wire::*;
//!
//! let key = Ed25519KeyPair::from_seed_unchecked(&[1; 32]).expect("seed");
//! let mut env = Envelope {
//!     v: ENVELOPE_VERSION,
//!     team: TeamId::random(),
//!     doc: RecordId::random(),
//!     id: EnvelopeId::random(),
//!     kind: EnvelopeKind::Change,
//!     epoch: 1,
//!     author: DeviceId::from_public_key(key.public_key().as_ref()),
//!     covers: 0,
//!     nonce: [0; 12],
//!     ciphertext: vec![1, 2, 3],
//!     sig: [0; 64],
//! };
//! env.sign(&key);
//! env.verify(key.public_key().as_ref()).expect("own signature verifies");
//! ```

pub mod api;
pub mod auth;
pub mod b64;
mod envelope;
mod error;
mod ids;

pub use api::*;
pub use envelope::{ENVELOPE_CONTEXT, ENVELOPE_VERSION, Envelope, EnvelopeKind};
pub use error::WireError;
pub use ids::{DeviceId, EnvelopeId, InviteId, RecordId, TeamId};

/// Largest request body the relay reads: 8 MiB.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
/// Largest ciphertext of one envelope: 1 MiB.
pub const MAX_CIPHERTEXT_BYTES: usize = 1024 * 1024;
/// Most envelopes in one push.
pub const MAX_BATCH: usize = 500;
/// Entries per pull page when the request names no limit.
pub const DEFAULT_PULL_LIMIT: u32 = 500;
/// Most entries per pull page.
pub const MAX_PULL_LIMIT: u32 = 1000;
/// Most bundles per mailbox page.
pub const MAX_BUNDLE_PAGE: u32 = 100;
/// How far (ms) a request's timestamp may be from the relay's clock: 300 s.
pub const CLOCK_TOLERANCE_MS: i64 = 300_000;
