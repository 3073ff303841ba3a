//! Team keys by epoch, and joining a team from an invite's bundle.

use streetsync_wire::{RecordId, TeamId};
use zeroize::Zeroizing;

pub(crate) use crate::crypto::TeamKey;
use crate::error::{Error, Result};
use crate::kinds::RecordKind;

use super::{Engine, META_TEAM_DOC, META_TEAM_ID, SECRET_TEAM_KEYS};
use crate::model::team::Team;

const SECRET_ROTATION: &str = "key_rotation";

/// A key epoch a lead started and has not finished handing out.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct PendingRotation {
    /// The new epoch's key.
    pub(crate) key: TeamKey,
    /// Whether this device seals under it already (its grants may still be unsent).
    pub(crate) active: bool,
}

/// The stored key list; no list means the store is in no team.
fn decode_keys(stored: Option<Zeroizing<Vec<u8>>>) -> Result<Vec<TeamKey>> {
    match stored {
        Some(b) => postcard::from_bytes(&b).map_err(|_| Error::Corrupt {
            what: "team keys".into(),
        }),
        None => Err(Error::NoTeam),
    }
}

/// Whether `key` matches the commitment recorded for its epoch in the Team document. Only an
/// active lead can have recorded it (`engine::remote` refuses any other change that adds one), and
/// it stays valid after that lead is removed, so a device offline through several rotations still
/// catches up.
fn verified(team: &Team, key: &TeamKey) -> bool {
    team.epoch_commitment(key.epoch).is_some_and(|c| {
        c.commitment == key.commitment(&team.id)
            && team
                .device(&c.by)
                .is_some_and(|d| d.role == streetsync_wire::Role::Lead)
    })
}

/// What a new device receives, sealed under a key derived from the invite secret, to join a team.
#[derive(serde::Serialize, serde::Deserialize, zeroize::ZeroizeOnDrop)]
pub(crate) struct JoinBundle {
    #[zeroize(skip)]
    pub(crate) team_id: TeamId,
    #[zeroize(skip)]
    pub(crate) team_doc_id: RecordId,
    pub(crate) keys: Vec<TeamKey>,
    pub(crate) team_doc: Vec<u8>,
}

impl Engine {
    /// The team keys this device holds, newest epoch last.
    pub(crate) fn team_keys(&self) -> Result<Vec<TeamKey>> {
        self.store
            .read(|r| decode_keys(r.secret(SECRET_TEAM_KEYS)?))
    }

    /// The epochs of the team keys this device holds (a removed device stops at its last one).
    pub(crate) fn key_epochs(&self) -> Result<Vec<u32>> {
        Ok(self.team_keys()?.iter().map(|k| k.epoch).collect())
    }

    /// The keys held, read inside a write transaction (every change of them reads, edits and
    /// stores them in one).
    fn held_keys(w: &crate::store::Writer<'_>) -> Result<Vec<TeamKey>> {
        decode_keys(w.secret(SECRET_TEAM_KEYS)?)
    }

    fn store_keys(w: &mut crate::store::Writer<'_>, keys: &[TeamKey]) -> Result<()> {
        let bytes =
            Zeroizing::new(postcard::to_stdvec(keys).map_err(|_| Error::Internal("key encoding"))?);
        w.put_secret(SECRET_TEAM_KEYS, &bytes)
    }

    /// Accepts granted keys, one epoch at a time and in order: a key is taken only for the epoch
    /// right after the newest one held, and only if a lead that is active on this device's roster
    /// recorded a matching commitment for it in the Team document. Keys for later epochs wait
    /// (the grant is tried again after the next pull brings the Team document up to date).
    /// Returns how many keys were taken.
    pub(crate) fn accept_keys(&self, offered: &[TeamKey]) -> Result<u32> {
        let team = self.team()?;
        self.store.write(|w| {
            let mut keys = Self::held_keys(w)?;
            let mut offered: Vec<&TeamKey> = offered.iter().collect();
            offered.sort_by_key(|k| k.epoch);
            let mut taken = 0;
            for k in offered {
                if keys.iter().any(|h| h.epoch == k.epoch) {
                    continue;
                }
                let newest = keys.iter().map(|k| k.epoch).max().unwrap_or(0);
                // Above the newest held, only the very next epoch; below it, an epoch this
                // device skipped (another lead's concurrent rotation) fills its gap.
                if k.epoch > newest && Some(k.epoch) != newest.checked_add(1) {
                    break;
                }
                if !verified(&team, k) {
                    if k.epoch > newest {
                        break;
                    }
                    continue;
                }
                keys.push(k.clone());
                taken += 1;
            }
            keys.sort_by_key(|k| k.epoch);
            if taken > 0 {
                Self::store_keys(w, &keys)?;
            }
            Ok(taken)
        })
    }

    /// Starts a new epoch (leads, at a revocation): a fresh key for the epoch after the newest,
    /// kept aside until the Team document change that commits to it has reached the relay
    /// ([`Engine::finish_rotation`]). Until then this device keeps sealing under the old epoch,
    /// so the commitment travels under a key every remaining device already holds.
    pub(crate) fn start_rotation(&self) -> Result<TeamKey> {
        // A rotation not yet committed is reused (a revocation tried again). One already in use
        // is not: the device being removed now may have been granted it; the new grants carry
        // every key, so any it still had to send are covered.
        if let Some(pending) = self.pending_rotation()?
            && !pending.active
        {
            return Ok(pending.key.clone());
        }
        // After every epoch held and every epoch any lead committed to (a concurrent rotation
        // by another lead whose grant has not arrived yet).
        let committed = self.team()?.epochs.iter().map(|e| e.epoch).max();
        let newest = self
            .team_keys()?
            .iter()
            .map(|k| k.epoch)
            .chain(committed)
            .max()
            .unwrap_or(0);
        let next = newest.checked_add(1).ok_or_else(|| {
            Error::Protocol("the team has used up its key epochs; found a new team".into())
        })?;
        let key = TeamKey::generate(next)?;
        self.put_pending_rotation(&PendingRotation {
            key: key.clone(),
            active: false,
        })?;
        Ok(key)
    }

    /// Whether the Team document settles an epoch on a key this device holds neither as a team
    /// key nor as its own pending rotation. Key grants are the only thing the relay's mailbox
    /// carries, and a grant is of use only for such an epoch, so the live loop's wakes read the
    /// mailbox only then (a full sync reads it always).
    pub(crate) fn awaits_key(&self) -> Result<bool> {
        let team = self.team()?;
        let mut known: Vec<[u8; 32]> = self
            .team_keys()?
            .iter()
            .map(|k| k.commitment(&team.id))
            .collect();
        if let Some(p) = self.pending_rotation()? {
            known.push(p.key.commitment(&team.id));
        }
        Ok(team.epochs.iter().any(|e| {
            team.epoch_commitment(e.epoch)
                .is_some_and(|settled| !known.contains(&settled.commitment))
        }))
    }

    /// The rotation in progress, if any.
    pub(crate) fn pending_rotation(&self) -> Result<Option<PendingRotation>> {
        self.store.read(|r| {
            r.secret(SECRET_ROTATION)?
                .map(|b| {
                    postcard::from_bytes(&b).map_err(|_| Error::Corrupt {
                        what: "pending key rotation".into(),
                    })
                })
                .transpose()
        })
    }

    fn put_pending_rotation(&self, p: &PendingRotation) -> Result<()> {
        let bytes =
            Zeroizing::new(postcard::to_stdvec(p).map_err(|_| Error::Internal("key encoding"))?);
        self.store.write(|w| w.put_secret(SECRET_ROTATION, &bytes))
    }

    /// Makes the pending key the sealing key once its commitment is in the Team document here and
    /// the outbox is empty (so the change carrying the commitment was pushed under the old
    /// epoch). Returns the rotation whose grants still have to be sent, if any.
    pub(crate) fn finish_rotation(&self) -> Result<Option<PendingRotation>> {
        let Some(mut p) = self.pending_rotation()? else {
            return Ok(None);
        };
        if !p.active {
            let team = self.team()?;
            if team
                .epoch_commitment(p.key.epoch)
                .is_some_and(|c| c.commitment != p.key.commitment(&team.id))
            {
                // Another lead rotated to the same epoch at the same time and its change came
                // first: this key was never used, and that lead's grant brings the winner.
                self.rotation_done()?;
                return Ok(None);
            }
            // Only once the change carrying the commitment is confirmed in the relay's log.
            if !verified(&team, &p.key) || self.team_changes_unconfirmed()? {
                return Ok(Some(p).filter(|p| p.active));
            }
            let key = p.key.clone();
            self.store.write(|w| {
                let mut keys = Self::held_keys(w)?;
                if !keys.iter().any(|k| k.epoch == key.epoch) {
                    keys.push(key);
                }
                keys.sort_by_key(|k| k.epoch);
                Self::store_keys(w, &keys)
            })?;
            p.active = true;
            self.put_pending_rotation(&p)?;
        }
        Ok(Some(p))
    }

    fn team_changes_unconfirmed(&self) -> Result<bool> {
        let doc = self.team_doc_id()?;
        self.store.read(|r| r.has_unconfirmed(&doc))
    }

    /// Drops every held key whose epoch the Team document now settles on another lead's key (two
    /// leads rotated at the same moment, and this device took the key that lost). Returns
    /// `(dropped, own)`: whether a key was dropped (what this device sealed under it reaches
    /// nobody, so its changes must go out again) and whether it was this device's own rotation
    /// (then it rotates once more, so that every device either lead removed is left out).
    pub(crate) fn resolve_contested_epochs(&self) -> Result<(bool, bool)> {
        let team = self.team()?;
        let me = self.device_id();
        let mut own_lost = false;
        self.store
            .write(|w| {
                let mut keys = Self::held_keys(w)?;
                let before = keys.len();
                keys.retain(|k| {
                    let mine = k.commitment(&team.id);
                    match team.epoch_commitment(k.epoch) {
                        Some(winner) if winner.commitment != mine => {
                            own_lost |= team
                                .epochs
                                .iter()
                                .any(|e| e.commitment == mine && e.by == me);
                            false
                        }
                        _ => true,
                    }
                });
                let dropped = keys.len() != before;
                if dropped {
                    Self::store_keys(w, &keys)?;
                }
                Ok(dropped)
            })
            .map(|dropped| (dropped, own_lost))
    }

    /// Records a fresh epoch for `key` in the Team document (a lead's rotation without a
    /// revocation: after losing a contested epoch).
    pub(crate) fn commit_epoch(&self, key: &TeamKey) -> Result<()> {
        let me = self.device_id();
        self.change_team("rotate the team key", |team| {
            let commitment = key.commitment(&team.id);
            if !team.epochs.iter().any(|e| e.commitment == commitment) {
                team.epochs.push(crate::model::team::EpochCommitment {
                    epoch: key.epoch,
                    commitment,
                    by: me,
                });
            }
            Ok(())
        })
    }

    /// The grants of the active rotation were all sent, or a rotation that was never committed
    /// is given up: forget it.
    pub(crate) fn rotation_done(&self) -> Result<()> {
        self.store.write(|w| w.delete_secret(SECRET_ROTATION))
    }

    /// Becomes a member of a team from a key bundle: stores team id, keys and the team document.
    pub(crate) fn join_from_bundle(&self, bundle: &JoinBundle) -> Result<()> {
        self.store.write(|w| {
            if w.meta(META_TEAM_ID)?.is_some() {
                return Err(Error::AlreadyInTeam);
            }
            w.put_meta(META_TEAM_ID, bundle.team_id.as_bytes())?;
            w.put_meta(META_TEAM_DOC, bundle.team_doc_id.as_bytes())?;
            let keys = Zeroizing::new(
                postcard::to_stdvec(&bundle.keys).map_err(|_| Error::Internal("key encoding"))?,
            );
            w.put_secret(SECRET_TEAM_KEYS, &keys)?;
            let applied =
                super::remote::apply_checked(w, bundle.team_doc_id, &bundle.team_doc, None, None)?;
            if applied.kind != RecordKind::Team {
                return Err(Error::Protocol(
                    "the bundle's team document is not a team".into(),
                ));
            }
            // The bundle is sealed under the invite secret (the relay cannot have made it), and
            // its keys must still match what its team document commits to.
            // Epochs from before commitments were recorded (below the first committed one) have
            // none to check.
            let team = w.pending_team().ok_or(Error::NoTeam)?;
            let first = team.epochs.iter().map(|e| e.epoch).min();
            let checked = |k: &TeamKey| first.is_none_or(|f| k.epoch < f) || verified(team, k);
            if !bundle.keys.iter().all(checked) {
                return Err(Error::Protocol(
                    "the invite's keys do not match the team's key commitments".into(),
                ));
            }
            Ok(())
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::crypto::{KeySource, StorageKey};
    use crate::engine::team::TeamSetup;

    fn lead() -> (tempfile::TempDir, Engine) {
        let dir = tempfile::tempdir().unwrap();
        let key = KeySource::Key(StorageKey::from_bytes(&[3; 32]).unwrap());
        let e = Engine::open(
            &dir.path().join("s.db"),
            key,
            crate::store::schema::SCHEMA_VERSION,
        )
        .unwrap();
        e.create_team(TeamSetup::for_tests()).unwrap();
        (dir, e)
    }

    #[test]
    fn a_founded_team_commits_to_its_first_key() {
        let (_d, e) = lead();
        let team = e.team().unwrap();
        let keys = e.team_keys().unwrap();
        assert_eq!(keys.len(), 1);
        assert!(verified(&team, &keys[0]));
    }

    #[test]
    fn keys_are_taken_one_epoch_at_a_time_against_their_commitments() {
        let (_d, e) = lead();
        // Uncommitted keys, a gap and an overflow are refused; nothing is stored.
        let stray = [
            TeamKey::generate(2).unwrap(),
            TeamKey::generate(u32::MAX).unwrap(),
        ];
        assert_eq!(e.accept_keys(&stray).unwrap(), 0);
        assert_eq!(e.key_epochs().unwrap(), vec![1]);
        // A committed epoch 2 (a rotation) is taken; a committed epoch 3 offered before it waits.
        let two = e.start_rotation().unwrap();
        let me = e.device_id();
        let three = TeamKey::generate(3).unwrap();
        e.change_team("test", |t| {
            for k in [&two, &three] {
                t.epochs.push(crate::model::team::EpochCommitment {
                    epoch: k.epoch,
                    commitment: k.commitment(&t.id),
                    by: me,
                });
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(e.accept_keys(std::slice::from_ref(&three)).unwrap(), 0);
        assert_eq!(e.accept_keys(&[three.clone(), two.clone()]).unwrap(), 2);
        assert_eq!(e.key_epochs().unwrap(), vec![1, 2, 3]);
        // Another key for a held epoch changes nothing.
        assert_eq!(e.accept_keys(&[TeamKey::generate(3).unwrap()]).unwrap(), 0);
        assert!(verified(
            &e.team().unwrap(),
            e.team_keys().unwrap().last().unwrap()
        ));
    }
}
