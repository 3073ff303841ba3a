//! The key hierarchy and every sealing operation of a device.
//!
//! ```text
//! storage key (32 bytes from the host keystore, or PBKDF2 of a passphrase)
//!   └─ HKDF "streetsync/at-rest/v1" ─ at-rest key: ChaCha20-Poly1305 for documents, projections,
//!                                      outbox entries, secrets and the canary
//! team key of epoch N (random 32 bytes, held as a sealed secret)
//!   └─ ChaCha20-Poly1305 for envelopes sent through the relay (AAD = envelope header)
//! device identity: Ed25519 (signs envelopes and requests) + static X25519 (receives key bundles)
//! ```
//! Every at-rest blob binds purpose, record kind and record id as associated data, so a blob cannot
//! be moved to another row or kind without failing authentication. Secrets are zeroized on drop.

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{Ed25519KeyPair, KeyPair};
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, Result};

/// Length of every symmetric key.
pub(crate) const KEY_LEN: usize = 32;
/// PBKDF2-HMAC-SHA256 iterations for passphrase-derived storage keys (OWASP 2023 guidance).
pub const PASSPHRASE_ITERATIONS: u32 = 600_000;
const NONCE_LEN: usize = 12;
const SEAL_VERSION: u8 = 1;

/// Fills a fixed-size array with secure random bytes.
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut out = [0u8; N];
    SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| Error::Crypto("the system random generator failed"))?;
    Ok(out)
}

/// The 256-bit root key of a device's store. It comes from the host (Android Keystore, iOS
/// Keychain) or from a passphrase, and never touches the disk.
#[derive(Clone, zeroize::ZeroizeOnDrop)]
pub struct StorageKey([u8; KEY_LEN]);

impl std::fmt::Debug for StorageKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StorageKey(..)")
    }
}

impl StorageKey {
    /// Takes a key from the host's keystore. It must be exactly 32 random bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let arr: [u8; KEY_LEN] = bytes.try_into().map_err(|_| {
            crate::error::ValidationError::new(
                "storage_key",
                format!("must be exactly {KEY_LEN} bytes, got {}", bytes.len()),
            )
        })?;
        Ok(Self(arr))
    }

    /// A fresh random key, for hosts that let the core create the key and then keep it themselves.
    pub fn generate() -> Result<Self> {
        Ok(Self(random_bytes()?))
    }

    /// Derives a key from a passphrase with PBKDF2-HMAC-SHA256. Slow on purpose: a stolen phone
    /// must not allow cheap guessing.
    pub fn from_passphrase(passphrase: &str, salt: &[u8], iterations: u32) -> Result<Self> {
        if passphrase.chars().count() < 8 {
            return Err(crate::error::ValidationError::new(
                "passphrase",
                "must have at least 8 characters",
            )
            .into());
        }
        let iterations =
            std::num::NonZeroU32::new(iterations).ok_or(Error::Crypto("zero KDF iterations"))?;
        let mut out = [0u8; KEY_LEN];
        ring::pbkdf2::derive(
            ring::pbkdf2::PBKDF2_HMAC_SHA256,
            iterations,
            salt,
            passphrase.as_bytes(),
            &mut out,
        );
        Ok(Self(out))
    }

    /// The raw bytes, for handing back to a host keystore.
    pub fn expose_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    fn derive(&self, info: &'static [u8]) -> Result<[u8; KEY_LEN]> {
        hkdf(&self.0, info)
    }
}

/// HKDF-SHA256 expand of `ikm` for one labelled purpose.
pub(crate) fn hkdf(ikm: &[u8], info: &'static [u8]) -> Result<[u8; KEY_LEN]> {
    struct Len;
    impl ring::hkdf::KeyType for Len {
        fn len(&self) -> usize {
            KEY_LEN
        }
    }
    let salt = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, b"streetsync");
    let prk = salt.extract(ikm);
    let info_parts = [info];
    let okm = prk
        .expand(&info_parts, Len)
        .map_err(|_| Error::Crypto("HKDF expand failed"))?;
    let mut out = [0u8; KEY_LEN];
    okm.fill(&mut out)
        .map_err(|_| Error::Crypto("HKDF fill failed"))?;
    Ok(out)
}

/// What an at-rest blob is, bound into its associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Purpose {
    Canary = 1,
    Document = 2,
    Projection = 3,
    Outbox = 4,
    Secret = 5,
    Quarantine = 6,
}

fn aead_key(bytes: &[u8; KEY_LEN]) -> Result<LessSafeKey> {
    let unbound = UnboundKey::new(&CHACHA20_POLY1305, bytes)
        .map_err(|_| Error::Crypto("bad AEAD key length"))?;
    Ok(LessSafeKey::new(unbound))
}

/// Seals and opens every blob a device stores, under the at-rest key derived from the storage key.
pub(crate) struct Sealer {
    key: LessSafeKey,
}

/// The plaintext the canary seals; opening it proves the key is right.
const CANARY_PLAINTEXT: &[u8] = b"streetsync canary v1";

impl Sealer {
    pub(crate) fn new(storage_key: &StorageKey) -> Result<Self> {
        let mut k = storage_key.derive(b"streetsync/at-rest/v1")?;
        let key = aead_key(&k)?;
        k.zeroize();
        Ok(Self { key })
    }

    fn aad(purpose: Purpose, kind: u8, id: &[u8]) -> Vec<u8> {
        let mut aad = Vec::with_capacity(24 + id.len());
        aad.extend_from_slice(b"ss-at-rest-v1");
        aad.push(purpose as u8);
        aad.push(kind);
        aad.extend_from_slice(id);
        aad
    }

    /// Seals `plaintext` as `version | nonce | ciphertext+tag`.
    pub(crate) fn seal(
        &self,
        purpose: Purpose,
        kind: u8,
        id: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>> {
        let nonce: [u8; NONCE_LEN] = random_bytes()?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + plaintext.len() + 16);
        out.push(SEAL_VERSION);
        out.extend_from_slice(&nonce);
        let mut body = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(Self::aad(purpose, kind, id)),
                &mut body,
            )
            .map_err(|_| Error::Crypto("sealing failed"))?;
        out.extend_from_slice(&body);
        body.zeroize();
        Ok(out)
    }

    /// Opens a blob sealed by [`Sealer::seal`]. Any failure means damaged data, described by `what`.
    pub(crate) fn open(
        &self,
        purpose: Purpose,
        kind: u8,
        id: &[u8],
        blob: &[u8],
        what: impl FnOnce() -> String,
    ) -> Result<Zeroizing<Vec<u8>>> {
        if blob.len() < 1 + NONCE_LEN + 16 || blob[0] != SEAL_VERSION {
            return Err(Error::Corrupt { what: what() });
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&blob[1..1 + NONCE_LEN]);
        let mut body = Zeroizing::new(blob[1 + NONCE_LEN..].to_vec());
        let len = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(Self::aad(purpose, kind, id)),
                &mut body,
            )
            .map_err(|_| Error::Corrupt { what: what() })?
            .len();
        body.truncate(len);
        Ok(body)
    }

    /// A fresh canary blob for a new store.
    pub(crate) fn make_canary(&self) -> Result<Vec<u8>> {
        self.seal(Purpose::Canary, 0, b"canary", CANARY_PLAINTEXT)
    }

    /// Checks the canary. `checksum` is the SHA-256 of the canary blob written next to it: if the
    /// blob still matches its checksum but does not open, the key is wrong; if it does not match,
    /// the file is damaged.
    pub(crate) fn check_canary(&self, blob: &[u8], checksum: &[u8]) -> Result<()> {
        match self.open(Purpose::Canary, 0, b"canary", blob, || "canary".into()) {
            Ok(p) if p.as_slice() == CANARY_PLAINTEXT => Ok(()),
            _ if sha256(blob).as_slice() == checksum => Err(Error::WrongKey),
            _ => Err(Error::Corrupt {
                what: "key canary".into(),
            }),
        }
    }
}

/// SHA-256 of `data`.
pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// A team key of one epoch: seals every envelope sent through the relay.
#[derive(Clone, zeroize::ZeroizeOnDrop, serde::Serialize, serde::Deserialize)]
pub struct TeamKey {
    /// The epoch this key belongs to; bumped at every revocation.
    #[zeroize(skip)]
    pub epoch: u32,
    key: [u8; KEY_LEN],
}

impl std::fmt::Debug for TeamKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TeamKey(epoch {})", self.epoch)
    }
}

impl TeamKey {
    /// A fresh random key for `epoch`.
    pub fn generate(epoch: u32) -> Result<Self> {
        Ok(Self {
            epoch,
            key: random_bytes()?,
        })
    }

    /// The key bytes, for the revocation tests (`testing::team_key_bytes`).
    #[cfg(feature = "testing")]
    pub(crate) fn expose_for_test(&self) -> [u8; KEY_LEN] {
        self.key
    }

    /// A key from raw bytes, for the revocation tests (`testing::open_envelope_with`).
    #[cfg(feature = "testing")]
    pub(crate) fn from_test_bytes(epoch: u32, key: [u8; KEY_LEN]) -> Self {
        Self { epoch, key }
    }

    /// The commitment a lead records in the Team document when it starts this key's epoch:
    /// `SHA-256("streetsync-epoch-v1" || team || epoch || key)`. A device accepts a granted key
    /// only if it matches, so a key from anyone else (the relay included) is refused.
    pub(crate) fn commitment(&self, team: &streetsync_wire::TeamId) -> [u8; 32] {
        let mut v = Zeroizing::new(b"streetsync-epoch-v1\0".to_vec());
        v.extend_from_slice(team.as_bytes());
        v.extend_from_slice(&self.epoch.to_be_bytes());
        v.extend_from_slice(&self.key);
        sha256(&v)
    }

    /// Seals an envelope payload; `header` (the envelope's header bytes) is the associated data.
    pub(crate) fn seal(
        &self,
        nonce: [u8; NONCE_LEN],
        header: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>> {
        let key = aead_key(&self.key)?;
        let mut body = plaintext.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(header),
            &mut body,
        )
        .map_err(|_| Error::Crypto("sealing failed"))?;
        Ok(body)
    }

    /// Opens an envelope payload. `None` when the tag does not verify.
    pub(crate) fn open(
        &self,
        nonce: [u8; NONCE_LEN],
        header: &[u8],
        ciphertext: &[u8],
    ) -> Option<Zeroizing<Vec<u8>>> {
        let key = aead_key(&self.key).ok()?;
        let mut body = Zeroizing::new(ciphertext.to_vec());
        let len = key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(header),
                &mut body,
            )
            .ok()?
            .len();
        body.truncate(len);
        Some(body)
    }
}

/// A device's long-term identity: an Ed25519 signing key and a static X25519 key-agreement key.
pub struct DeviceIdentity {
    signing: Ed25519KeyPair,
    pkcs8: Zeroizing<Vec<u8>>,
    kx_secret: x25519_dalek::StaticSecret,
}

impl std::fmt::Debug for DeviceIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeviceIdentity({})", self.device_id())
    }
}

/// Serialized form of an identity, kept only sealed in the store.
#[derive(serde::Serialize, serde::Deserialize, zeroize::ZeroizeOnDrop)]
pub(crate) struct IdentitySecret {
    pkcs8: Vec<u8>,
    kx: [u8; KEY_LEN],
}

impl DeviceIdentity {
    /// Generates a new identity for a device.
    pub fn generate() -> Result<Self> {
        let rng = SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|_| Error::Crypto("key generation failed"))?;
        let kx: [u8; KEY_LEN] = random_bytes()?;
        Self::from_secret(&IdentitySecret {
            pkcs8: pkcs8.as_ref().to_vec(),
            kx,
        })
    }

    pub(crate) fn from_secret(secret: &IdentitySecret) -> Result<Self> {
        let signing = Ed25519KeyPair::from_pkcs8(&secret.pkcs8).map_err(|_| Error::Corrupt {
            what: "device identity".into(),
        })?;
        Ok(Self {
            signing,
            pkcs8: Zeroizing::new(secret.pkcs8.clone()),
            kx_secret: x25519_dalek::StaticSecret::from(secret.kx),
        })
    }

    pub(crate) fn to_secret(&self) -> IdentitySecret {
        IdentitySecret {
            pkcs8: self.pkcs8.to_vec(),
            kx: self.kx_secret.to_bytes(),
        }
    }

    /// The signing key pair, for envelopes and request signatures.
    pub fn signing_key(&self) -> &Ed25519KeyPair {
        &self.signing
    }

    /// The Ed25519 public key.
    pub fn sign_public(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.signing.public_key().as_ref());
        out
    }

    /// The X25519 public key that key bundles are sealed to.
    pub fn kx_public(&self) -> [u8; 32] {
        x25519_dalek::PublicKey::from(&self.kx_secret).to_bytes()
    }

    /// The device id, derived from the signing key.
    pub fn device_id(&self) -> streetsync_wire::DeviceId {
        streetsync_wire::DeviceId::from_public_key(&self.sign_public())
    }

    /// Opens a bundle sealed to this device with [`seal_to_device`].
    pub fn open_bundle(&self, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        if blob.len() < 32 + NONCE_LEN + 16 {
            return Err(Error::Protocol("key bundle too short".into()));
        }
        let mut eph = [0u8; 32];
        eph.copy_from_slice(&blob[..32]);
        let eph_pub = x25519_dalek::PublicKey::from(eph);
        let shared = self.kx_secret.diffie_hellman(&eph_pub);
        let key = bundle_key(shared.as_bytes(), &eph, &self.kx_public())?;
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&blob[32..32 + NONCE_LEN]);
        let mut body = Zeroizing::new(blob[32 + NONCE_LEN..].to_vec());
        let len = key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&eph),
                &mut body,
            )
            .map_err(|_| Error::Protocol("key bundle does not open with this device's key".into()))?
            .len();
        body.truncate(len);
        Ok(body)
    }
}

fn bundle_key(shared: &[u8; 32], eph: &[u8; 32], recipient: &[u8; 32]) -> Result<LessSafeKey> {
    let mut ikm = Zeroizing::new(Vec::with_capacity(96));
    ikm.extend_from_slice(shared);
    ikm.extend_from_slice(eph);
    ikm.extend_from_slice(recipient);
    let mut k = hkdf(&ikm, b"streetsync/bundle/v1")?;
    let key = aead_key(&k)?;
    k.zeroize();
    Ok(key)
}

/// Seals `plaintext` to a device's static X25519 key (ephemeral-static ECDH, HKDF, ChaCha20-Poly1305),
/// so only that device can open it, even if the relay keeps the blob forever.
pub fn seal_to_device(recipient_kx: &[u8; 32], plaintext: &[u8]) -> Result<Vec<u8>> {
    let eph_secret = x25519_dalek::StaticSecret::from(random_bytes::<32>()?);
    let eph_pub = x25519_dalek::PublicKey::from(&eph_secret).to_bytes();
    let shared = eph_secret.diffie_hellman(&x25519_dalek::PublicKey::from(*recipient_kx));
    let key = bundle_key(shared.as_bytes(), &eph_pub, recipient_kx)?;
    let nonce: [u8; NONCE_LEN] = random_bytes()?;
    let mut body = plaintext.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(&eph_pub),
        &mut body,
    )
    .map_err(|_| Error::Crypto("sealing failed"))?;
    let mut out = Vec::with_capacity(32 + NONCE_LEN + body.len());
    out.extend_from_slice(&eph_pub);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&body);
    Ok(out)
}

/// Where the storage key comes from.
pub enum KeySource {
    /// 32 bytes from the host keystore.
    Key(StorageKey),
    /// A passphrase, stretched with PBKDF2 (salt kept in the store).
    Passphrase {
        /// The passphrase.
        passphrase: zeroize::Zeroizing<String>,
        /// PBKDF2 iterations for a new store; an existing store keeps the count it was made with.
        iterations: u32,
    },
}

impl KeySource {
    /// A passphrase with the recommended iteration count.
    pub fn passphrase(p: impl Into<String>) -> Self {
        KeySource::Passphrase {
            passphrase: zeroize::Zeroizing::new(p.into()),
            iterations: PASSPHRASE_ITERATIONS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer() -> Sealer {
        Sealer::new(&StorageKey::from_bytes(&[7u8; 32]).expect("key")).expect("sealer")
    }

    #[test]
    fn seal_open_round_trip_binds_purpose_kind_and_id() {
        let s = sealer();
        let blob = s
            .seal(Purpose::Document, 1, b"id-1", b"hello")
            .expect("seal");
        let open = s
            .open(Purpose::Document, 1, b"id-1", &blob, String::new)
            .expect("open");
        assert_eq!(open.as_slice(), b"hello");
        for (p, k, id) in [
            (Purpose::Projection, 1, &b"id-1"[..]),
            (Purpose::Document, 2, &b"id-1"[..]),
            (Purpose::Document, 1, &b"id-2"[..]),
        ] {
            assert!(matches!(
                s.open(p, k, id, &blob, String::new),
                Err(Error::Corrupt { .. })
            ));
        }
    }

    /// The epoch commitment is SHA-256 over exactly the documented input, so it binds the team,
    /// the epoch and the key (cargo-mutants: a constant commitment survived, since devices only
    /// compare commitments they compute with the same function).
    #[test]
    fn epoch_commitment_binds_team_epoch_and_key() {
        let team = streetsync_wire::TeamId::from_bytes([3; 16]);
        let k = TeamKey {
            epoch: 2,
            key: [9; KEY_LEN],
        };
        let mut input = b"streetsync-epoch-v1\0".to_vec();
        input.extend_from_slice(&[3; 16]);
        input.extend_from_slice(&2u32.to_be_bytes());
        input.extend_from_slice(&[9; KEY_LEN]);
        assert_eq!(k.commitment(&team), sha256(&input));
        let other_key = TeamKey {
            epoch: 2,
            key: [8; KEY_LEN],
        };
        let other_epoch = TeamKey {
            epoch: 3,
            key: [9; KEY_LEN],
        };
        assert_ne!(other_key.commitment(&team), k.commitment(&team));
        assert_ne!(other_epoch.commitment(&team), k.commitment(&team));
        assert_ne!(
            k.commitment(&streetsync_wire::TeamId::from_bytes([4; 16])),
            k.commitment(&team)
        );
    }

    /// A blob whose version byte is not ours is refused even though its AEAD would verify (the
    /// version is not in the associated data), and a blob too short for nonce and tag is refused
    /// without slicing past its end (cargo-mutants: `||` against `&&` in the header check
    /// survived).
    #[test]
    fn open_refuses_a_foreign_version_byte_and_short_blobs() {
        let s = sealer();
        let mut blob = s.seal(Purpose::Document, 1, b"id", b"hello").expect("seal");
        blob[0] = SEAL_VERSION.wrapping_add(1);
        assert!(matches!(
            s.open(Purpose::Document, 1, b"id", &blob, String::new),
            Err(Error::Corrupt { .. })
        ));
        // The shortest real blob (empty plaintext: version, nonce and tag) opens.
        let empty = s.seal(Purpose::Document, 1, b"id", b"").expect("seal");
        assert_eq!(empty.len(), 1 + NONCE_LEN + 16);
        assert!(
            s.open(Purpose::Document, 1, b"id", &empty, String::new)
                .expect("open")
                .is_empty()
        );
        for len in [0, 1, NONCE_LEN, NONCE_LEN + 16] {
            let mut short = vec![0u8; len];
            if let Some(b) = short.first_mut() {
                *b = SEAL_VERSION;
            }
            assert!(matches!(
                s.open(Purpose::Document, 1, b"id", &short, String::new),
                Err(Error::Corrupt { .. })
            ));
        }
    }

    #[test]
    fn canary_tells_wrong_key_from_damage() {
        let s = sealer();
        let canary = s.make_canary().expect("canary");
        let sum = sha256(&canary);
        s.check_canary(&canary, &sum).expect("right key");
        let other = Sealer::new(&StorageKey::from_bytes(&[8u8; 32]).expect("key")).expect("sealer");
        assert!(matches!(
            other.check_canary(&canary, &sum),
            Err(Error::WrongKey)
        ));
        let mut damaged = canary.clone();
        damaged[20] ^= 1;
        assert!(matches!(
            s.check_canary(&damaged, &sum),
            Err(Error::Corrupt { .. })
        ));
    }

    #[test]
    fn storage_key_must_be_32_bytes_and_passphrase_8_chars() {
        assert!(matches!(
            StorageKey::from_bytes(&[0u8; 31]),
            Err(Error::Invalid(_))
        ));
        assert!(matches!(
            StorageKey::from_passphrase("short", b"salt", 1),
            Err(Error::Invalid(_))
        ));
        let a = StorageKey::from_passphrase("correct horse", b"salt", 1000).expect("kdf");
        let b = StorageKey::from_passphrase("correct horse", b"salt", 1000).expect("kdf");
        let c = StorageKey::from_passphrase("correct horse", b"salz", 1000).expect("kdf");
        assert_eq!(a.expose_bytes(), b.expose_bytes());
        assert_ne!(a.expose_bytes(), c.expose_bytes());
    }

    /// The passphrase limit counts characters, not bytes, and 8 is enough (cargo-mutants: `<`
    /// against `<=` survived, no test used a passphrase of exactly 8 characters).
    #[test]
    fn a_passphrase_of_exactly_8_characters_is_taken() {
        for (taken, refused) in [("12345678", "1234567"), ("äöüßäöüß", "äöüßäöü")] {
            StorageKey::from_passphrase(taken, b"salt", 1).expect("8 characters");
            assert!(matches!(
                StorageKey::from_passphrase(refused, b"salt", 1),
                Err(Error::Invalid(_))
            ));
        }
    }

    /// A storage key never shows its bytes in logs or panics, and still says what it is
    /// (cargo-mutants: an empty `Debug` survived).
    #[test]
    fn storage_key_debug_hides_the_bytes() {
        let key = StorageKey::from_bytes(&[0xab; 32]).expect("key");
        assert_eq!(format!("{key:?}"), "StorageKey(..)");
    }

    #[test]
    fn bundle_opens_only_for_its_recipient() {
        let alice = DeviceIdentity::generate().expect("id");
        let bob = DeviceIdentity::generate().expect("id");
        let blob = seal_to_device(&alice.kx_public(), b"team key").expect("seal");
        assert_eq!(
            alice.open_bundle(&blob).expect("open").as_slice(),
            b"team key"
        );
        assert!(bob.open_bundle(&blob).is_err());
    }

    /// The shortest bundle (empty plaintext: ephemeral key, nonce and tag) opens, and every
    /// shorter blob is refused without slicing past its end (cargo-mutants: `<` against `==` and
    /// `<=`, and `+` against `-` in the length check, survived).
    #[test]
    fn bundle_length_check_takes_the_shortest_and_refuses_truncated_blobs() {
        let alice = DeviceIdentity::generate().expect("id");
        let empty = seal_to_device(&alice.kx_public(), b"").expect("seal");
        assert_eq!(empty.len(), 32 + NONCE_LEN + 16);
        assert!(alice.open_bundle(&empty).expect("open").is_empty());
        let full = seal_to_device(&alice.kx_public(), b"team key").expect("seal");
        for len in 0..empty.len() {
            assert!(
                matches!(alice.open_bundle(&full[..len]), Err(Error::Protocol(_))),
                "{len} bytes"
            );
        }
    }

    #[test]
    fn team_key_binds_header() {
        let k = TeamKey::generate(1).expect("key");
        let ct = k.seal([1; 12], b"header", b"changes").expect("seal");
        assert_eq!(
            k.open([1; 12], b"header", &ct).expect("open").as_slice(),
            b"changes"
        );
        assert!(k.open([1; 12], b"other", &ct).is_none());
    }
}
