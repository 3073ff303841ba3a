//! The four 16-byte identifiers of the protocol.
//!
//! They are distinct types so a record id can never be passed where a device id belongs; on the
//! wire each is 32 lowercase hex characters. One macro defines all four so they cannot drift apart.

use std::fmt;
use std::str::FromStr;

use ring::rand::{SecureRandom as _, SystemRandom};

use crate::WireError;

/// Parses exactly 32 lowercase hex characters into 16 bytes.
fn parse_hex16(text: &str) -> Result<[u8; 16], WireError> {
    let canonical = text.len() == 32
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !canonical {
        return Err(WireError::BadId(truncate_for_error(text)));
    }
    let mut out = [0u8; 16];
    hex::decode_to_slice(text, &mut out).map_err(|_| WireError::BadId(truncate_for_error(text)))?;
    Ok(out)
}

/// Keeps error messages short when the input is long or hostile.
fn truncate_for_error(text: &str) -> String {
    text.chars().take(40).collect()
}

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name([u8; 16]);

        impl $name {
            /// A fresh random id from the operating system's generator.
            pub fn random() -> Self {
                let mut bytes = [0u8; 16];
                // The system generator only fails if the OS has no entropy source at all; there is
                // nothing sensible to do then but stop.
                #[allow(clippy::expect_used)]
                SystemRandom::new()
                    .fill(&mut bytes)
                    .expect("the operating system's random generator failed");
                Self(bytes)
            }

            /// Wraps 16 raw bytes.
            pub const fn from_bytes(bytes: [u8; 16]) -> Self {
                Self(bytes)
            }

            /// The 16 raw bytes.
            pub const fn as_bytes(&self) -> &[u8; 16] {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), hex::encode(self.0))
            }
        }

        impl FromStr for $name {
            type Err = WireError;

            fn from_str(text: &str) -> Result<Self, WireError> {
                parse_hex16(text).map(Self)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&hex::encode(self.0))
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(
    /// A team: names the team's log on the relay. Random, so it leaks nothing.
    TeamId
);
id_type!(
    /// A device: the first 16 bytes of SHA-256 of its Ed25519 public key
    /// ([`DeviceId::from_public_key`]), so an id cannot be re-used with another key.
    DeviceId
);
id_type!(
    /// A record (the envelope's `doc`): random, chosen when the record is created.
    RecordId
);
id_type!(
    /// An envelope: random, chosen by the author; the idempotency key of push.
    EnvelopeId
);
id_type!(
    /// An invite: derived from the invite secret by a one-way function, so the relay can address
    /// the invite without learning the secret that opens its bundle.
    InviteId
);

impl DeviceId {
    /// The id of the device whose Ed25519 public key is `sign_pk`: the first 16 bytes of its
    /// SHA-256.
    pub fn from_public_key(sign_pk: &[u8]) -> DeviceId {
        let digest = ring::digest::digest(&ring::digest::SHA256, sign_pk);
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest.as_ref()[..16]);
        DeviceId(bytes)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn hex_round_trip() {
        let id = TeamId::from_bytes([0xab; 16]);
        assert_eq!(id.to_string(), "abababababababababababababababab");
        assert_eq!(id.to_string().parse::<TeamId>().unwrap(), id);
        assert_eq!(
            format!("{id:?}"),
            "TeamId(abababababababababababababababab)"
        );
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"abababababababababababababababab\"");
        assert_eq!(serde_json::from_str::<TeamId>(&json).unwrap(), id);
    }

    #[test]
    fn parse_errors_are_typed() {
        for bad in [
            "",
            "abc",
            "ABABABABABABABABABABABABABABABAB",
            "zzababababababababababababababab",
            "abababababababababababababababab00",
            "ééababababababababababababababab",
        ] {
            assert!(
                matches!(bad.parse::<DeviceId>(), Err(WireError::BadId(_))),
                "{bad}"
            );
        }
        assert!(serde_json::from_str::<RecordId>("\"00\"").is_err());
        assert!(serde_json::from_str::<RecordId>("12").is_err());
    }

    #[test]
    fn random_ids_differ() {
        assert_ne!(EnvelopeId::random(), EnvelopeId::random());
    }

    #[test]
    fn device_id_is_hash_prefix() {
        let id = DeviceId::from_public_key(b"");
        // SHA-256 of the empty string starts e3b0c442 98fc1c14 9afbf4c8 996fb924.
        assert_eq!(id.to_string(), "e3b0c44298fc1c149afbf4c8996fb924");
    }
}
