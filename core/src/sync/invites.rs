//! Invites and enrolment, with nothing taken on the relay's word.
//!
//! A lead makes a 128-bit secret, shown as a 28-character code (with a check byte, so typos are
//! caught before anything is sent). From it derive, one-way and separately: the invite's address
//! on the relay, the HMAC key the relay checks a redemption with, the key that seals the bundle
//! (team keys and team document), and the key of the joiner's confirmation to the lead. The relay
//! holds the first two, never the last two. The relay registers a redeeming device at once, but
//! only the lead that made the invite puts it on the roster, at its next sync, and only if its
//! confirmation verifies; teammates accept its envelopes from then on.

use reqwest::Method;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use serde::{Deserialize, Serialize};
use streetsync_wire::{DeviceId, DeviceKeys, ErrorCode, InviteId, Role, TeamId};
use zeroize::Zeroizing;

use super::{SecurityAlert, SyncClient, SyncReport, team_path};
use crate::crypto::{hkdf, random_bytes, sha256};
use crate::engine::keys::JoinBundle;
use crate::error::{Error, Result, ValidationError};

/// Longest an invite may stay valid.
pub const MAX_INVITE_TTL_SECS: u64 = 7 * 24 * 3600;

/// An invite as the lead hands it over: a code to type or show as a QR code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invite {
    /// The code, e.g. `K7QX-2M4A-...` (28 characters in groups of four).
    pub code: String,
    /// The role the new device gets.
    pub role: Role,
    /// The member's display name on the roster.
    pub member: String,
    /// Unix milliseconds after which the code is refused.
    pub expires_at_ms: i64,
}

/// A lead's record of an invite not yet completed, sealed in its store.
#[derive(Serialize, Deserialize, zeroize::ZeroizeOnDrop)]
struct PendingInvite {
    #[zeroize(skip)]
    id: InviteId,
    #[zeroize(skip)]
    member: String,
    #[zeroize(skip)]
    role: Role,
    #[zeroize(skip)]
    expires_ms: i64,
    /// The key the joiner's confirmation is checked with (see `InviteSecret::confirm_key`).
    confirm_key: [u8; 32],
}

/// A pending invite as stores before the confirmation existed kept it. Such an invite cannot be
/// confirmed, so its redemption is refused (the lead makes a new one).
#[derive(Deserialize)]
struct LegacyPendingInvite {
    id: InviteId,
    member: String,
    role: Role,
    expires_ms: i64,
}

impl PendingInvite {
    fn decode(bytes: &[u8]) -> Result<Self> {
        if let Ok(p) = postcard::from_bytes::<PendingInvite>(bytes) {
            return Ok(p);
        }
        let old: LegacyPendingInvite = postcard::from_bytes(bytes).map_err(|_| Error::Corrupt {
            what: "pending invite".into(),
        })?;
        Ok(PendingInvite {
            id: old.id,
            member: old.member,
            role: old.role,
            expires_ms: old.expires_ms,
            // No key: no confirmation can match an all-zero key's HMAC by chance, and
            // `confirmed` refuses it outright.
            confirm_key: [0; 32],
        })
    }

    /// Whether `confirm` proves that `device` holds this invite's secret.
    fn confirmed(&self, device: &DeviceKeys, confirm: Option<&[u8; 32]>) -> bool {
        let Some(confirm) = confirm else {
            return false;
        };
        if self.confirm_key == [0; 32] {
            return false;
        }
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.confirm_key);
        ring::hmac::verify(
            &key,
            &streetsync_wire::RedeemInvite::confirm_input(&self.id, device),
            confirm,
        )
        .is_ok()
    }
}

/// An open invite as a lead lists it (the code itself is not kept: it was handed over).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenInvite {
    /// The invite's address on the relay.
    pub id: InviteId,
    /// The member's display name.
    pub member: String,
    /// The role the new device gets.
    pub role: Role,
    /// Unix milliseconds after which the code is refused.
    pub expires_at_ms: i64,
}

/// The secret of an invite and everything derived from it.
struct InviteSecret(Zeroizing<[u8; 16]>);

impl InviteSecret {
    fn generate() -> Result<Self> {
        Ok(Self(Zeroizing::new(random_bytes()?)))
    }

    fn check_byte(secret: &[u8; 16]) -> u8 {
        let mut v = b"streetsync-invite-check".to_vec();
        v.extend_from_slice(secret);
        sha256(&v)[0]
    }

    fn code(&self) -> String {
        let mut bytes = self.0.to_vec();
        bytes.push(Self::check_byte(&self.0));
        let text = data_encoding::BASE32_NOPAD.encode(&bytes);
        text.as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join("-")
    }

    /// Parses a typed code: case, spaces and dashes do not matter; 0/1/8 read as O/I/B.
    fn parse(code: &str) -> Result<Self> {
        let cleaned: String = code
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .map(|c| match c.to_ascii_uppercase() {
                '0' => 'O',
                '1' => 'I',
                '8' => 'B',
                c => c,
            })
            .collect();
        let mistyped = || -> Error {
            ValidationError::new(
                "invite_code",
                "this is not a valid invite code; check it for typing mistakes",
            )
            .into()
        };
        let bytes = data_encoding::BASE32_NOPAD
            .decode(cleaned.as_bytes())
            .map_err(|_| mistyped())?;
        if bytes.len() != 17 {
            return Err(mistyped());
        }
        let mut secret = Zeroizing::new([0u8; 16]);
        secret.copy_from_slice(&bytes[..16]);
        if Self::check_byte(&secret) != bytes[16] {
            return Err(mistyped());
        }
        Ok(Self(secret))
    }

    fn id(&self) -> Result<InviteId> {
        let k = hkdf(self.0.as_slice(), b"streetsync/invite/id")?;
        let mut id = [0u8; 16];
        id.copy_from_slice(&k[..16]);
        Ok(InviteId::from_bytes(id))
    }

    fn auth_key(&self) -> Result<[u8; 32]> {
        hkdf(self.0.as_slice(), b"streetsync/invite/auth")
    }

    /// The key of the joiner's confirmation to the lead. Derived from the secret like the others,
    /// but never sent anywhere: only the lead (who made the secret) and the joiner (who typed it)
    /// hold it, so the relay cannot confirm a device of its own.
    fn confirm_key(&self) -> Result<Zeroizing<[u8; 32]>> {
        Ok(Zeroizing::new(hkdf(
            self.0.as_slice(),
            b"streetsync/invite/confirm",
        )?))
    }

    fn seal_key(&self) -> Result<LessSafeKey> {
        let k = Zeroizing::new(hkdf(self.0.as_slice(), b"streetsync/invite/seal")?);
        Ok(LessSafeKey::new(
            UnboundKey::new(&CHACHA20_POLY1305, k.as_slice())
                .map_err(|_| Error::Crypto("invite key"))?,
        ))
    }

    fn seal(&self, id: &InviteId, plaintext: &[u8]) -> Result<Vec<u8>> {
        let nonce: [u8; 12] = random_bytes()?;
        let mut body = plaintext.to_vec();
        self.seal_key()?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(id.as_bytes()),
                &mut body,
            )
            .map_err(|_| Error::Crypto("sealing failed"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&body);
        Ok(out)
    }

    fn open(&self, id: &InviteId, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        if blob.len() < 12 + 16 {
            return Err(Error::Protocol("invite bundle too short".into()));
        }
        let mut nonce = [0u8; 12];
        nonce.copy_from_slice(&blob[..12]);
        let mut body = Zeroizing::new(blob[12..].to_vec());
        let len = self
            .seal_key()?
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(id.as_bytes()),
                &mut body,
            )
            .map_err(|_| Error::Protocol("the invite bundle does not open with this code".into()))?
            .len();
        body.truncate(len);
        Ok(body)
    }
}

fn relay_code(e: &Error) -> Option<&ErrorCode> {
    match e {
        Error::Relay { code, .. } => Some(code),
        _ => None,
    }
}

#[cfg(feature = "testing")]
pub(crate) fn fuzz_parse_invite(code: &str) -> bool {
    InviteSecret::parse(code).and_then(|s| s.id()).is_ok()
}

impl SyncClient {
    /// Creates a one-time invite for a new member's device (leads only). Hand the code over in
    /// person (or as a QR code drawn by the app); it expires after `ttl_secs` (at most 7 days).
    pub async fn create_invite(&self, member: &str, role: Role, ttl_secs: u64) -> Result<Invite> {
        self.require_lead("invite members")?;
        let member = member.trim();
        if member.is_empty() || member.chars().count() > 200 {
            return Err(
                ValidationError::new("member", "give a name of 1 to 200 characters").into(),
            );
        }
        if ttl_secs == 0 || ttl_secs > MAX_INVITE_TTL_SECS {
            return Err(
                ValidationError::new("ttl", "an invite is valid for 1 second to 7 days").into(),
            );
        }
        let team = self.engine.team()?;
        self.ensure_registered(&team).await?;
        self.push(team.id, None).await?;
        let secret = InviteSecret::generate()?;
        let id = secret.id()?;
        let team_doc_id = self.engine.team_doc_id()?;
        let bundle = JoinBundle {
            team_id: team.id,
            team_doc_id,
            keys: self.engine.team_keys()?,
            team_doc: self.engine.export_document(team_doc_id)?,
        };
        let plain = Zeroizing::new(
            postcard::to_stdvec(&bundle).map_err(|_| Error::Internal("bundle encoding"))?,
        );
        let expires_ms = self.relay.now_ms() + (ttl_secs as i64) * 1000;
        let body = streetsync_wire::CreateInvite {
            id,
            auth_key: secret.auth_key()?,
            role,
            expires_ms,
            blob: secret.seal(&id, &plain)?,
        };
        let _: streetsync_wire::Empty = self
            .relay
            .call(
                self.engine.identity(),
                Method::POST,
                &team_path(team.id, "/invites"),
                Some(&body),
            )
            .await?;
        let pending = PendingInvite {
            id,
            member: member.to_owned(),
            role,
            expires_ms,
            confirm_key: *secret.confirm_key()?,
        };
        let bytes =
            postcard::to_stdvec(&pending).map_err(|_| Error::Internal("invite encoding"))?;
        self.engine
            .store
            .write(|w| w.put_secret(&format!("invite/{id}"), &bytes))?;
        Ok(Invite {
            code: secret.code(),
            role,
            member: member.to_owned(),
            expires_at_ms: expires_ms,
        })
    }

    /// Joins a team with an invite code: registers this device, receives the team keys and the
    /// team document, then syncs everything. A mistyped, expired or used code is a typed error.
    pub async fn join_with_invite(&self, code: &str) -> Result<SyncReport> {
        if self.engine.team_id()?.is_some() {
            return Err(Error::AlreadyInTeam);
        }
        let secret = InviteSecret::parse(code)?;
        let id = secret.id()?;
        let device = self.engine.device_keys(Role::Worker);
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret.auth_key()?);
        let tag = ring::hmac::sign(
            &key,
            &streetsync_wire::RedeemInvite::proof_input(&id, &device),
        );
        let mut proof = [0u8; 32];
        proof.copy_from_slice(tag.as_ref());
        let confirm_key = secret.confirm_key()?;
        let confirm_tag = ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, confirm_key.as_slice()),
            &streetsync_wire::RedeemInvite::confirm_input(&id, &device),
        );
        let mut confirm = [0u8; 32];
        confirm.copy_from_slice(confirm_tag.as_ref());
        let body = streetsync_wire::RedeemInvite {
            device,
            proof,
            confirm,
        };
        let resp: streetsync_wire::RedeemResponse = self
            .relay
            .call(
                self.engine.identity(),
                Method::POST,
                &format!("/v1/invites/{id}/redeem"),
                Some(&body),
            )
            .await
            .map_err(|e| match relay_code(&e) {
                Some(ErrorCode::NotFound) => ValidationError::new(
                    "invite_code",
                    "no such invite on this relay; check the code and the relay address",
                )
                .into(),
                Some(ErrorCode::InviteUsed) => Error::NotAllowed(
                    "this invite code was used already; ask your team lead for a new one".into(),
                ),
                Some(ErrorCode::InviteExpired) => Error::NotAllowed(
                    "this invite code has expired; ask your team lead for a new one".into(),
                ),
                _ => e,
            })?;
        let plain = secret.open(&id, &resp.blob)?;
        let bundle: JoinBundle = postcard::from_bytes(&plain)
            .map_err(|_| Error::Protocol("the invite bundle is malformed".into()))?;
        if bundle.team_id != resp.team {
            return Err(Error::Protocol(
                "the invite bundle names another team".into(),
            ));
        }
        self.engine.join_from_bundle(&bundle)?;
        self.engine
            .store
            .write(|w| w.set_sync_value(super::SYNC_REGISTERED, 1))?;
        self.sync_once(None).await
    }

    fn pending_invites(&self) -> Result<Vec<PendingInvite>> {
        self.engine.store.read(|r| {
            r.secrets_with_prefix("invite/")?
                .into_iter()
                .map(|(_, b)| PendingInvite::decode(&b))
                .collect()
        })
    }

    /// This lead's open invites, oldest first: what was handed out and is not yet used. Read from
    /// this device's own store, not from the relay.
    pub fn invites(&self) -> Result<Vec<OpenInvite>> {
        let mut v: Vec<OpenInvite> = self
            .pending_invites()?
            .iter()
            .map(|p| OpenInvite {
                id: p.id,
                member: p.member.clone(),
                role: p.role,
                expires_at_ms: p.expires_ms,
            })
            .collect();
        v.sort_by_key(|i| i.expires_at_ms);
        Ok(v)
    }

    /// Cancels an open invite (leads only): this device forgets it, so nothing redeemed with it
    /// is ever put on the roster, and the relay is asked to delete it. Works even if the relay
    /// ignores the request, because enrolment happens only here.
    pub async fn cancel_invite(&self, id: InviteId) -> Result<()> {
        self.require_lead("cancel invites")?;
        if !self.pending_invites()?.iter().any(|p| p.id == id) {
            return Err(ValidationError::new("invite", format!("no open invite {id}")).into());
        }
        self.engine
            .store
            .write(|w| w.delete_secret(&format!("invite/{id}")))?;
        let team = self.engine.team()?;
        match self
            .relay
            .call::<(), streetsync_wire::Empty>(
                self.engine.identity(),
                Method::DELETE,
                &team_path(team.id, &format!("/invites/{id}")),
                None,
            )
            .await
        {
            Ok(_)
            | Err(Error::Relay {
                code: ErrorCode::NotFound,
                ..
            }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// A lead's device puts devices that redeemed its invites on the roster, and forgets expired
    /// invites. Runs as part of every sync of a lead. The relay's invite list only says who
    /// claims to have redeemed: a device is enrolled only if its confirmation verifies under the
    /// invite's confirmation key, which the relay never held, and only if it is not on the roster
    /// already. Everything else is refused and reported.
    pub(crate) async fn complete_invites(
        &self,
        team: TeamId,
        alerts: &mut Vec<SecurityAlert>,
    ) -> Result<u64> {
        let pending = self.pending_invites()?;
        if pending.is_empty() || self.engine.my_role().ok() != Some(Role::Lead) {
            return Ok(0);
        }
        let list: streetsync_wire::InviteList = self
            .relay
            .call::<(), _>(
                self.engine.identity(),
                Method::GET,
                &team_path(team, "/invites"),
                None,
            )
            .await?;
        let mut added = 0;
        let now = self.relay.now_ms();
        for p in pending {
            let info = list.invites.iter().find(|i| i.id == p.id);
            match info.and_then(|i| i.redeemed_by.clone().map(|k| (k, i.confirm))) {
                Some((keys, confirm)) => {
                    let keys = DeviceKeys {
                        role: p.role,
                        ..keys
                    };
                    let on_roster = self.engine.team()?.device(&keys.id).is_some();
                    let own_id = keys.id == DeviceId::from_public_key(&keys.sign_pk);
                    if on_roster {
                        alerts.push(SecurityAlert::InviteForExistingDevice {
                            invite: p.id,
                            device: keys.id,
                        });
                    } else if !own_id || !p.confirmed(&keys, confirm.as_ref()) {
                        alerts.push(SecurityAlert::ForgedEnrolment {
                            invite: p.id,
                            device: keys.id,
                        });
                    } else {
                        self.engine.add_roster_device(&keys, &p.member)?;
                        added += 1;
                    }
                }
                None if p.expires_ms > now && info.is_some() => continue,
                None => {}
            }
            self.engine
                .store
                .write(|w| w.delete_secret(&format!("invite/{}", p.id)))?;
        }
        Ok(added)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invite_codes_round_trip_and_catch_typos() {
        let s = InviteSecret::generate().expect("secret");
        let code = s.code();
        assert_eq!(code.len(), 28 + 6);
        let parsed = InviteSecret::parse(&code.to_lowercase().replace('-', " ")).expect("parse");
        assert_eq!(parsed.id().expect("id"), s.id().expect("id"));
        // One changed character is caught by the check byte (or the length).
        let mut chars: Vec<char> = code.chars().collect();
        chars[3] = if chars[3] == 'A' { 'B' } else { 'A' };
        let typo: String = chars.into_iter().collect();
        assert!(
            matches!(InviteSecret::parse(&typo), Err(Error::Invalid(e)) if e.field == "invite_code")
        );
        assert!(InviteSecret::parse("hello").is_err());
        let sealed = s.seal(&s.id().expect("id"), b"bundle").expect("seal");
        assert_eq!(
            s.open(&s.id().expect("id"), &sealed)
                .expect("open")
                .as_slice(),
            b"bundle"
        );
        let other = InviteSecret::generate().expect("secret");
        assert!(other.open(&s.id().expect("id"), &sealed).is_err());
    }

    fn keys_of(id: &crate::crypto::DeviceIdentity) -> DeviceKeys {
        DeviceKeys {
            id: id.device_id(),
            sign_pk: id.sign_public(),
            kx_pk: id.kx_public(),
            role: Role::Worker,
        }
    }

    fn confirm(secret: &InviteSecret, device: &DeviceKeys) -> [u8; 32] {
        let key = secret.confirm_key().expect("key");
        let tag = ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.as_slice()),
            &streetsync_wire::RedeemInvite::confirm_input(&secret.id().expect("id"), device),
        );
        tag.as_ref().try_into().expect("32 bytes")
    }

    #[test]
    fn only_the_code_holder_confirms_its_own_keys() {
        let secret = InviteSecret::generate().expect("secret");
        let pending = PendingInvite {
            id: secret.id().expect("id"),
            member: "Neu".into(),
            role: Role::Worker,
            expires_ms: 0,
            confirm_key: *secret.confirm_key().expect("key"),
        };
        let joiner = keys_of(&crate::crypto::DeviceIdentity::generate().expect("id"));
        let relay = keys_of(&crate::crypto::DeviceIdentity::generate().expect("id"));
        let good = confirm(&secret, &joiner);
        assert!(pending.confirmed(&joiner, Some(&good)));
        // The relay's own device with the joiner's confirmation, or with one made under the
        // relay-visible auth key, is refused; so is a missing one.
        assert!(!pending.confirmed(&relay, Some(&good)));
        let auth = secret.auth_key().expect("auth");
        let forged = ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &auth),
            &streetsync_wire::RedeemInvite::confirm_input(&pending.id, &relay),
        );
        let forged: [u8; 32] = forged.as_ref().try_into().expect("32 bytes");
        assert!(!pending.confirmed(&relay, Some(&forged)));
        assert!(!pending.confirmed(&joiner, None));
    }

    #[test]
    fn a_pending_invite_from_before_confirmations_cannot_confirm() {
        #[derive(Serialize)]
        struct Old {
            id: InviteId,
            member: String,
            role: Role,
            expires_ms: i64,
        }
        let secret = InviteSecret::generate().expect("secret");
        let old = postcard::to_stdvec(&Old {
            id: secret.id().expect("id"),
            member: "Alt".into(),
            role: Role::Lead,
            expires_ms: 5,
        })
        .expect("encode");
        let p = PendingInvite::decode(&old).expect("decodes");
        assert_eq!(
            (p.member.as_str(), p.role, p.expires_ms),
            ("Alt", Role::Lead, 5)
        );
        let joiner = keys_of(&crate::crypto::DeviceIdentity::generate().expect("id"));
        assert!(!p.confirmed(&joiner, Some(&confirm(&secret, &joiner))));
    }
}
