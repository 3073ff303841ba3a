//! The envelope: one sealed, signed unit of sync.
//!
//! The relay stores and forwards envelopes without opening them. This module fixes the exact bytes
//! that are authenticated (the AEAD associated data) and signed, so the sync client and the relay
//! cannot disagree about them.

use ring::signature::{ED25519, Ed25519KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

use crate::{DeviceId, EnvelopeId, MAX_CIPHERTEXT_BYTES, RecordId, TeamId, WireError};

/// The envelope version this build writes and the only one it accepts.
pub const ENVELOPE_VERSION: u8 = 1;

/// The domain-separation prefix of [`Envelope::header_bytes`] (it ends with a zero byte).
pub const ENVELOPE_CONTEXT: &[u8] = b"streetsync-envelope-v1\0";

/// What an envelope's ciphertext holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnvelopeKind {
    /// Automerge changes of one record.
    Change,
    /// A whole record (`Automerge::save`) holding every change up to the sequence number `covers`.
    Snapshot,
    /// The record was erased by a lead; the ciphertext may be empty.
    Tombstone,
}

impl EnvelopeKind {
    /// The byte written into [`Envelope::header_bytes`]: 1 change, 2 snapshot, 3 tombstone.
    pub fn code(self) -> u8 {
        match self {
            EnvelopeKind::Change => 1,
            EnvelopeKind::Snapshot => 2,
            EnvelopeKind::Tombstone => 3,
        }
    }

    /// The kind of a [`code`](Self::code).
    pub fn from_code(code: u8) -> Result<Self, WireError> {
        match code {
            1 => Ok(EnvelopeKind::Change),
            2 => Ok(EnvelopeKind::Snapshot),
            3 => Ok(EnvelopeKind::Tombstone),
            other => Err(WireError::UnknownKind(other)),
        }
    }
}

/// A sealed, signed unit of sync, exactly as it travels as JSON (see `docs/protocol.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Envelope version; [`ENVELOPE_VERSION`].
    pub v: u8,
    /// The team whose log holds the envelope.
    pub team: TeamId,
    /// The record the ciphertext belongs to.
    pub doc: RecordId,
    /// Random id chosen by the author; the idempotency key of push.
    pub id: EnvelopeId,
    /// What the ciphertext holds.
    pub kind: EnvelopeKind,
    /// The team-key epoch the ciphertext is sealed under.
    pub epoch: u32,
    /// The device that wrote and signed the envelope.
    pub author: DeviceId,
    /// For snapshots: the highest log sequence number whose content the snapshot includes; else 0.
    pub covers: u64,
    /// The AEAD nonce (base64url on the wire).
    #[serde(with = "crate::b64::array")]
    pub nonce: [u8; 12],
    /// ChaCha20-Poly1305 output under the team key of `epoch` (base64url on the wire).
    #[serde(with = "crate::b64::vec")]
    pub ciphertext: Vec<u8>,
    /// Ed25519 signature by `author` over [`Envelope::signed_bytes`] (base64url on the wire).
    #[serde(with = "crate::b64::array")]
    pub sig: [u8; 64],
}

impl Envelope {
    /// The header bytes, big-endian; the AEAD associated data and the start of the signed bytes:
    /// `"streetsync-envelope-v1" 0x00 | v | team | doc | id | kind | epoch:u32 | author | covers:u64 | nonce`.
    pub fn header_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(ENVELOPE_CONTEXT.len() + 1 + 16 * 4 + 1 + 4 + 8 + 12);
        out.extend_from_slice(ENVELOPE_CONTEXT);
        out.push(self.v);
        out.extend_from_slice(self.team.as_bytes());
        out.extend_from_slice(self.doc.as_bytes());
        out.extend_from_slice(self.id.as_bytes());
        out.push(self.kind.code());
        out.extend_from_slice(&self.epoch.to_be_bytes());
        out.extend_from_slice(self.author.as_bytes());
        out.extend_from_slice(&self.covers.to_be_bytes());
        out.extend_from_slice(&self.nonce);
        out
    }

    /// The bytes the author signs: `header_bytes | len(ciphertext):u32 | ciphertext`.
    ///
    /// A ciphertext longer than `u32::MAX` cannot be represented; its length is written as
    /// `u32::MAX`, and [`validate_shape`](Self::validate_shape) refuses such an envelope anyway.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut out = self.header_bytes();
        let len = u32::try_from(self.ciphertext.len()).unwrap_or(u32::MAX);
        out.reserve(4 + self.ciphertext.len());
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&self.ciphertext);
        out
    }

    /// Signs the envelope with the author's key, replacing `sig`.
    ///
    /// It does not set `author`; the caller sets it to the key's [`DeviceId`] first.
    pub fn sign(&mut self, key: &Ed25519KeyPair) {
        let signature = key.sign(&self.signed_bytes());
        self.sig.copy_from_slice(signature.as_ref());
    }

    /// Checks `sig` against the Ed25519 public key `sign_pk` (32 bytes).
    ///
    /// It checks the signature only; whether `sign_pk` belongs to `author` is the caller's
    /// question (the roster on a device, the registered key on the relay).
    pub fn verify(&self, sign_pk: &[u8]) -> Result<(), WireError> {
        UnparsedPublicKey::new(&ED25519, sign_pk)
            .verify(&self.signed_bytes(), &self.sig)
            .map_err(|_| WireError::BadSignature)
    }

    /// Checks what can be checked without keys: the version is known, the ciphertext is within
    /// [`MAX_CIPHERTEXT_BYTES`], `covers` is 0 unless this is a snapshot, and a change or snapshot
    /// is not empty.
    pub fn validate_shape(&self) -> Result<(), WireError> {
        if self.v != ENVELOPE_VERSION {
            return Err(WireError::UnsupportedVersion(self.v));
        }
        if self.ciphertext.len() > MAX_CIPHERTEXT_BYTES {
            return Err(WireError::TooLarge {
                what: "envelope ciphertext",
                size: self.ciphertext.len(),
                limit: MAX_CIPHERTEXT_BYTES,
            });
        }
        match self.kind {
            EnvelopeKind::Snapshot => {}
            EnvelopeKind::Change | EnvelopeKind::Tombstone if self.covers != 0 => {
                return Err(WireError::BadEnvelope(format!(
                    "covers must be 0 for a {:?} envelope",
                    self.kind
                )));
            }
            _ => {}
        }
        if self.kind != EnvelopeKind::Tombstone && self.ciphertext.is_empty() {
            return Err(WireError::BadEnvelope(
                "a change or snapshot must carry ciphertext".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A fixed test key (seed 0x07 repeated), so the golden JSON below is stable.
    fn key() -> Ed25519KeyPair {
        Ed25519KeyPair::from_seed_unchecked(&[7u8; 32]).unwrap()
    }

    fn fixed_envelope() -> Envelope {
        use ring::signature::KeyPair as _;
        let key = key();
        let mut env = Envelope {
            v: ENVELOPE_VERSION,
            team: TeamId::from_bytes([0x11; 16]),
            doc: RecordId::from_bytes([0x22; 16]),
            id: EnvelopeId::from_bytes([0x33; 16]),
            kind: EnvelopeKind::Change,
            epoch: 3,
            author: DeviceId::from_public_key(key.public_key().as_ref()),
            covers: 0,
            nonce: [0x44; 12],
            ciphertext: b"sealed bytes".to_vec(),
            sig: [0; 64],
        };
        env.sign(&key);
        env
    }

    fn pk() -> Vec<u8> {
        use ring::signature::KeyPair as _;
        key().public_key().as_ref().to_vec()
    }

    #[test]
    fn sign_verify_round_trip() {
        let env = fixed_envelope();
        env.validate_shape().unwrap();
        env.verify(&pk()).unwrap();
        let other = Ed25519KeyPair::from_seed_unchecked(&[8u8; 32]).unwrap();
        use ring::signature::KeyPair as _;
        assert_eq!(
            env.verify(other.public_key().as_ref()),
            Err(WireError::BadSignature)
        );
        assert_eq!(env.verify(b"short"), Err(WireError::BadSignature));
    }

    #[test]
    fn tampering_any_field_breaks_verify() {
        let pk = pk();
        let base = fixed_envelope();
        type Tamper = (&'static str, fn(&mut Envelope));
        let tampers: Vec<Tamper> = vec![
            ("v", |e| e.v = 2),
            ("team", |e| e.team = TeamId::from_bytes([0x12; 16])),
            ("doc", |e| e.doc = RecordId::from_bytes([0x23; 16])),
            ("id", |e| e.id = EnvelopeId::from_bytes([0x34; 16])),
            ("kind", |e| e.kind = EnvelopeKind::Snapshot),
            ("epoch", |e| e.epoch = 4),
            ("author", |e| e.author = DeviceId::from_bytes([0x55; 16])),
            ("covers", |e| e.covers = 1),
            ("nonce", |e| e.nonce[0] ^= 1),
            ("ciphertext", |e| e.ciphertext[0] ^= 1),
            ("ciphertext length", |e| e.ciphertext.push(0)),
            ("sig", |e| e.sig[10] ^= 1),
        ];
        for (name, tamper) in tampers {
            let mut env = base.clone();
            tamper(&mut env);
            assert_eq!(env.verify(&pk), Err(WireError::BadSignature), "{name}");
        }
    }

    #[test]
    fn header_layout() {
        let env = fixed_envelope();
        let h = env.header_bytes();
        assert_eq!(h.len(), 23 + 1 + 16 * 3 + 1 + 4 + 16 + 8 + 12);
        assert!(h.starts_with(b"streetsync-envelope-v1\0"));
        assert_eq!(h[23], 1);
        assert_eq!(h[24 + 48], 1, "kind code");
        assert_eq!(&h[24 + 48 + 1..24 + 48 + 5], &[0, 0, 0, 3], "epoch");
        let s = env.signed_bytes();
        assert_eq!(&s[h.len()..h.len() + 4], &[0, 0, 0, 12]);
        assert_eq!(&s[h.len() + 4..], b"sealed bytes");
    }

    /// The JSON of one fixed envelope; an accidental change of the wire format fails here.
    #[test]
    fn golden_json() {
        let env = fixed_envelope();
        let json = serde_json::to_string(&env).unwrap();
        assert_eq!(json, GOLDEN_ENVELOPE);
        let back: Envelope = serde_json::from_str(GOLDEN_ENVELOPE).unwrap();
        assert_eq!(back, env);
        back.verify(&pk()).unwrap();
    }

    const GOLDEN_ENVELOPE: &str = concat!(
        r#"{"v":1,"team":"11111111111111111111111111111111","#,
        r#""doc":"22222222222222222222222222222222","id":"33333333333333333333333333333333","#,
        r#""kind":"change","epoch":3,"author":"fe812c12f3ab4ce6ac5db69ac352f906","covers":0,"#,
        r#""nonce":"RERERERERERERERE","ciphertext":"c2VhbGVkIGJ5dGVz","#,
        r#""sig":"rWqtpg50xXXB78yY5_bE4ECvRaEc3uL_BPNaKiyseH2uZDIUcc3maYILUQGS-2P_L_hCFnyJYL487OqLlp0sBg"}"#
    );

    #[test]
    fn json_errors() {
        let env = fixed_envelope();
        let mut value = serde_json::to_value(&env).unwrap();
        value["nonce"] = "AAAA".into();
        assert!(serde_json::from_value::<Envelope>(value.clone()).is_err());
        value["nonce"] = "RERERERERERERERE".into();
        value["kind"] = "draft".into();
        assert!(serde_json::from_value::<Envelope>(value.clone()).is_err());
        value["kind"] = "change".into();
        value["sig"] = "not base64!".into();
        assert!(serde_json::from_value::<Envelope>(value).is_err());
    }

    #[test]
    fn shape_limits() {
        let mut env = fixed_envelope();
        env.v = 2;
        assert_eq!(env.validate_shape(), Err(WireError::UnsupportedVersion(2)));
        let mut env = fixed_envelope();
        env.covers = 5;
        assert!(matches!(
            env.validate_shape(),
            Err(WireError::BadEnvelope(_))
        ));
        env.kind = EnvelopeKind::Snapshot;
        env.validate_shape().unwrap();
        let mut env = fixed_envelope();
        env.ciphertext = vec![0; MAX_CIPHERTEXT_BYTES + 1];
        assert!(matches!(
            env.validate_shape(),
            Err(WireError::TooLarge { .. })
        ));
        let mut env = fixed_envelope();
        env.ciphertext.clear();
        assert!(matches!(
            env.validate_shape(),
            Err(WireError::BadEnvelope(_))
        ));
        env.kind = EnvelopeKind::Tombstone;
        env.validate_shape().unwrap();
    }

    #[test]
    fn kind_codes() {
        for kind in [
            EnvelopeKind::Change,
            EnvelopeKind::Snapshot,
            EnvelopeKind::Tombstone,
        ] {
            assert_eq!(EnvelopeKind::from_code(kind.code()).unwrap(), kind);
        }
        assert_eq!(EnvelopeKind::from_code(9), Err(WireError::UnknownKind(9)));
    }

    /// The ciphertext limit is inclusive: exactly `MAX_CIPHERTEXT_BYTES` passes, one byte more is
    /// refused (found by cargo-mutants: `>` against `>=` survived).
    #[test]
    fn the_ciphertext_limit_is_inclusive() {
        let mut env = fixed_envelope();
        env.ciphertext = vec![0; MAX_CIPHERTEXT_BYTES];
        env.validate_shape().unwrap();
        env.ciphertext.push(0);
        assert!(matches!(
            env.validate_shape(),
            Err(WireError::TooLarge { .. })
        ));
    }
}
