//! Key grants and revocation with key rotation.
//!
//! The relay refuses a removed device at once; the roster marks it revoked, with the log
//! position after which every device refuses its envelopes, and commits to a new epoch key in the
//! same signed change. Once that change is back from the relay's log, the lead seals under the new
//! key and grants it to every remaining device, sealed to each one's X25519 key and signed by the
//! lead; devices offline at that moment pick it up when they return, and take it only against the
//! commitment in their own Team document.

use reqwest::Method;
use serde::{Deserialize, Serialize};
use streetsync_wire::{DeviceId, ErrorCode, TeamId};
use zeroize::Zeroizing;

use super::{SecurityAlert, SyncClient, team_path};
use crate::crypto::TeamKey;
use crate::error::{Error, Result, ValidationError};

/// What is sent through the bundle mailbox, sealed to the addressee. Joining is by invite only
/// (a bundle sealed to a device's public key could come from anyone, including the relay).
#[derive(Serialize, Deserialize)]
pub(crate) enum BundleMessage {
    /// Team keys granted by a lead (after a revocation).
    Keys(KeyGrant),
}

/// Team keys, signed by the lead that granted them.
#[derive(Serialize, Deserialize, zeroize::ZeroizeOnDrop)]
pub(crate) struct KeyGrant {
    #[zeroize(skip)]
    team: TeamId,
    keys: Vec<TeamKey>,
    #[zeroize(skip)]
    signer: DeviceId,
    #[zeroize(skip)]
    sig: Vec<u8>,
}

fn grant_signed_bytes(team: &TeamId, keys: &[TeamKey]) -> Result<Zeroizing<Vec<u8>>> {
    let mut v = Zeroizing::new(b"streetsync-key-grant-v1\0".to_vec());
    v.extend_from_slice(team.as_bytes());
    v.extend_from_slice(&postcard::to_stdvec(keys).map_err(|_| Error::Internal("key encoding"))?);
    Ok(v)
}

#[cfg(feature = "testing")]
pub(crate) fn fuzz_decode_bundle(data: &[u8]) -> bool {
    postcard::from_bytes::<BundleMessage>(data).is_ok()
}

/// Mailbox pages one sync reads at most.
const MAX_MAILBOX_PAGES: usize = 32;

impl SyncClient {
    /// Fetches bundles addressed to this device. A key grant counts only if it is signed by a
    /// lead that is active on this device's roster; its keys are then taken one epoch at a time
    /// against the Team document's commitments ([`Engine::accept_keys`]). A grant whose next
    /// epoch is not committed yet is kept (sealed) and tried again after the pull. Every bundle
    /// is deleted from the relay once it is stored or refused here.
    pub(crate) async fn receive_bundles(
        &self,
        team: TeamId,
        alerts: &mut Vec<SecurityAlert>,
    ) -> Result<u64> {
        // The mailbox comes in pages, each bundle deleted once handled; a teammate who keeps
        // posting can make it no longer than MAX_MAILBOX_PAGES pages per sync (the rest waits
        // for the next one).
        let mut after = 0;
        for _ in 0..MAX_MAILBOX_PAGES {
            let list: streetsync_wire::BundleList = self
                .relay
                .call::<(), _>(
                    self.engine.identity(),
                    Method::GET,
                    &team_path(team, &format!("/bundles?after={after}")),
                    None,
                )
                .await?;
            let more = list.more;
            after = list.bundles.last().map_or(after, |b| b.id);
            self.handle_bundles(team, list.bundles, alerts).await?;
            if !more {
                break;
            }
        }
        self.take_grants()
    }

    /// Stores or refuses one page of bundles, deleting each from the relay.
    async fn handle_bundles(
        &self,
        team: TeamId,
        bundles: Vec<streetsync_wire::Bundle>,
        alerts: &mut Vec<SecurityAlert>,
    ) -> Result<()> {
        for b in bundles {
            let opened = self
                .engine
                .identity()
                .open_bundle(&b.blob)
                .ok()
                .and_then(|plain| postcard::from_bytes::<BundleMessage>(&plain).ok());
            match opened {
                Some(BundleMessage::Keys(grant)) if self.grant_signed(&grant)? => {
                    let bytes = Zeroizing::new(
                        postcard::to_stdvec(&grant).map_err(|_| Error::Internal("key encoding"))?,
                    );
                    self.engine
                        .store
                        .write(|w| w.put_secret(&format!("grant/{:020}", b.id), &bytes))?;
                }
                _ => alerts.push(SecurityAlert::ForgedGrant { from: b.from }),
            }
            let _: streetsync_wire::Empty = self
                .relay
                .call::<(), _>(
                    self.engine.identity(),
                    Method::DELETE,
                    &team_path(team, &format!("/bundles/{}", b.id)),
                    None,
                )
                .await?;
        }
        Ok(())
    }

    /// Whether a grant is kept here waiting for its epoch's commitment.
    pub(crate) fn has_kept_grants(&self) -> Result<bool> {
        Ok(!self
            .engine
            .store
            .read(|r| r.secrets_with_prefix("grant/"))?
            .is_empty())
    }

    /// Takes what it can from the grants kept here; forgets a grant once it has nothing more to
    /// give. Returns how many keys were taken.
    pub(crate) fn take_grants(&self) -> Result<u64> {
        let kept = self
            .engine
            .store
            .read(|r| r.secrets_with_prefix("grant/"))?;
        let mut taken = 0;
        for (name, bytes) in kept {
            let grant = match postcard::from_bytes::<KeyGrant>(&bytes) {
                // Its signer must still be an active lead when the grant is finally used.
                Ok(grant) if self.grant_signed(&grant)? => grant,
                _ => {
                    self.engine.store.write(|w| w.delete_secret(&name))?;
                    continue;
                }
            };
            taken += u64::from(self.engine.accept_keys(&grant.keys)?);
            // Kept while it holds a key this device may still take: one not held that is the
            // settled key of its epoch, or that no commitment this device has seen names yet (it
            // may arrive with the next pull). Keys from before commitments existed, and keys
            // that lost a contested epoch, are done with.
            let team = self.engine.team()?;
            let held: Vec<[u8; 32]> = self
                .engine
                .team_keys()?
                .iter()
                .map(|k| k.commitment(&team.id))
                .collect();
            let first_committed = team.epochs.iter().map(|e| e.epoch).min().unwrap_or(0);
            let useful = grant.keys.iter().any(|k| {
                let c = k.commitment(&team.id);
                let named = team.epochs.iter().any(|e| e.commitment == c);
                !held.contains(&c)
                    && k.epoch >= first_committed
                    && match team.epoch_commitment(k.epoch) {
                        Some(settled) => settled.commitment == c || !named,
                        None => true,
                    }
            });
            if !useful {
                self.engine.store.write(|w| w.delete_secret(&name))?;
            }
        }
        Ok(taken)
    }

    /// Whether a grant is for this team and signed by a lead active on this device's roster.
    fn grant_signed(&self, grant: &KeyGrant) -> Result<bool> {
        let team = self.engine.team()?;
        if grant.team != team.id || !team.is_active_lead(&grant.signer) {
            return Ok(false);
        }
        let Some(signer) = team.device(&grant.signer) else {
            return Ok(false);
        };
        let msg = grant_signed_bytes(&grant.team, &grant.keys)?;
        let pk = ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, signer.sign_pk);
        Ok(pk.verify(&msg, &grant.sig).is_ok())
    }

    /// Removes a device from the team (a lost phone, or a member who left; leads only). The relay
    /// refuses it from the next request on. One signed change of the Team document marks it
    /// revoked, records the log position after which every device refuses its envelopes, and
    /// commits to a fresh epoch key; once that change has reached the relay (under the old key,
    /// which every remaining device holds), this device seals under the new key and grants it to
    /// every remaining device, so the removed one cannot read anything written afterwards. Offline,
    /// the rest happens at the next sync.
    pub async fn revoke_device(&self, device: DeviceId) -> Result<()> {
        self.require_lead("remove devices")?;
        let team = self.engine.team()?;
        if device == self.engine.device_id() {
            return Err(Error::NotAllowed(
                "a lead cannot remove their own device; ask another lead".into(),
            ));
        }
        if team.device(&device).is_none() {
            return Err(
                ValidationError::new("device", format!("{device} is not on the roster")).into(),
            );
        }
        let revoked = async {
            // Everything the device wrote up to now is pulled first: the recorded position keeps
            // it, and another lead's rotation, if any, is seen before the next epoch is chosen.
            self.sync_once(None).await?;
            // The next epoch before the relay is told: if the epoch space were used up, nothing
            // is changed anywhere.
            let next = self.engine.start_rotation()?;
            match self
                .relay
                .call::<(), streetsync_wire::Empty>(
                    self.engine.identity(),
                    Method::DELETE,
                    &team_path(team.id, &format!("/devices/{device}")),
                    None,
                )
                .await
            {
                Ok(_)
                | Err(Error::Relay {
                    code: ErrorCode::NotFound,
                    ..
                }) => {}
                Err(e) => return Err(e),
            }
            let after_seq = self.cursor()?;
            self.engine.revoke_roster_device(device, after_seq, &next)
        }
        .await;
        if let Err(e) = revoked {
            // Nothing committed to the new key: give it up, so pushing is not held back for it.
            self.engine.rotation_done()?;
            return Err(e);
        }
        self.sync_once(None).await?;
        Ok(())
    }

    /// Finishes a key rotation this lead started: once the Team document change committing to the
    /// new key is in the relay's log, seals under it and grants it to every remaining device. Runs
    /// in every sync after the pull; safe to repeat (devices ignore keys they hold). Returns
    /// whether a rotation finished now.
    pub(crate) async fn finish_rotation(&self, team: TeamId) -> Result<bool> {
        let Some(rotation) = self.engine.finish_rotation()? else {
            return Ok(false);
        };
        if !rotation.active {
            return Ok(false);
        }
        let keys = self.engine.team_keys()?;
        let roster = self.engine.team()?;
        let msg = grant_signed_bytes(&team, &keys)?;
        let sig = self
            .engine
            .identity()
            .signing_key()
            .sign(&msg)
            .as_ref()
            .to_vec();
        for d in roster
            .roster
            .iter()
            .filter(|d| !d.revoked && d.device_id != self.engine.device_id())
        {
            let grant = BundleMessage::Keys(KeyGrant {
                team,
                keys: keys.clone(),
                signer: self.engine.device_id(),
                sig: sig.clone(),
            });
            let plain = Zeroizing::new(
                postcard::to_stdvec(&grant).map_err(|_| Error::Internal("bundle encoding"))?,
            );
            let blob = crate::crypto::seal_to_device(&d.kx_pk, &plain)?;
            let posted = self
                .relay
                .call::<_, streetsync_wire::BundleCreated>(
                    self.engine.identity(),
                    Method::POST,
                    &team_path(team, "/bundles"),
                    Some(&streetsync_wire::PostBundle {
                        to: d.device_id,
                        blob,
                    }),
                )
                .await;
            match posted {
                // The relay no longer knows the device (another lead removed it just now, and
                // this device has not seen that yet): it gets no key, which is right.
                Ok(_)
                | Err(Error::Relay {
                    code: ErrorCode::NotFound | ErrorCode::Revoked,
                    ..
                }) => {}
                Err(e) => return Err(e),
            }
        }
        self.engine.rotation_done()?;
        Ok(true)
    }
}
