//! The one error type of the wire crate.
//!
//! Every parse, shape and signature failure of wire data is a [`WireError`], so the relay can map
//! it to an HTTP error code and the sync client to a typed refusal without matching on strings.

/// Why wire data was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// An id was not 32 lowercase hex characters.
    #[error("invalid id {0:?}: expected 32 lowercase hex characters")]
    BadId(String),
    /// A base64url field did not decode, or decoded to the wrong length.
    #[error("invalid base64url field `{field}`: {reason}")]
    BadBase64 {
        /// Which field.
        field: &'static str,
        /// What was wrong with it.
        reason: String,
    },
    /// An envelope kind code other than 1, 2 or 3.
    #[error("unknown envelope kind code {0}")]
    UnknownKind(u8),
    /// An envelope version this build does not know.
    #[error("unsupported envelope version {0}; this build knows version 1")]
    UnsupportedVersion(u8),
    /// Something is larger than the protocol allows.
    #[error("{what} is {size} bytes, over the limit of {limit}")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// Its size.
        size: usize,
        /// The limit it broke.
        limit: usize,
    },
    /// An envelope whose fields contradict each other (for example `covers` on a change).
    #[error("malformed envelope: {0}")]
    BadEnvelope(String),
    /// An Ed25519 signature did not verify under the given public key.
    #[error("signature does not verify")]
    BadSignature,
    /// An `Authorization` header that does not follow the `StreetSync-Ed25519` scheme.
    #[error("malformed Authorization header: {0}")]
    BadAuthHeader(String),
}
