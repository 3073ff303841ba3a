//! Serde helpers that write byte fields as base64url without padding.
//!
//! The protocol writes every byte string this way; keeping the helpers in one place keeps the
//! JSON of envelopes, device keys and bundles consistent.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Deserializer, Serializer};

use crate::WireError;

/// Encodes bytes as base64url without padding.
pub fn encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url without padding; `field` names the field in the error.
pub fn decode(field: &'static str, text: &str) -> Result<Vec<u8>, WireError> {
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|e| WireError::BadBase64 {
            field,
            reason: e.to_string(),
        })
}

/// Decodes base64url into exactly `N` bytes.
pub fn decode_array<const N: usize>(field: &'static str, text: &str) -> Result<[u8; N], WireError> {
    let bytes = decode(field, text)?;
    <[u8; N]>::try_from(bytes.as_slice()).map_err(|_| WireError::BadBase64 {
        field,
        reason: format!("expected {N} bytes, got {}", bytes.len()),
    })
}

/// `#[serde(with = "crate::b64::vec")]` for `Vec<u8>`.
pub(crate) mod vec {
    use super::*;

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        decode("bytes", &text).map_err(serde::de::Error::custom)
    }
}

/// `#[serde(with = "crate::b64::array")]` for `[u8; N]`.
pub(crate) mod array {
    use super::*;

    pub fn serialize<S: Serializer, const N: usize>(
        bytes: &[u8; N],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(&encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<[u8; N], D::Error> {
        let text = String::deserialize(d)?;
        decode_array::<N>("bytes", &text).map_err(serde::de::Error::custom)
    }
}

/// `#[serde(with = "crate::b64::opt_array")]` for `Option<[u8; N]>` (absent or null is `None`).
pub(crate) mod opt_array {
    use super::*;

    pub fn serialize<S: Serializer, const N: usize>(
        bytes: &Option<[u8; N]>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(b) => s.serialize_some(&encode(b)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<Option<[u8; N]>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(text) => decode_array::<N>("bytes", &text)
                .map(Some)
                .map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}
