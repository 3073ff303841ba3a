//! Team keys by epoch, and joining a team from an invite's bundle.

use streetsync_wire::{RecordId, TeamId};
use zeroize::Zeroizing;

pub(crate) use crate::crypto::TeamKey;
use crate::error::{Error, Result};
use crate::kinds::RecordKind;

use super::{Engine, META_TEAM_DOC, META_TEAM_ID, SECRET_TEAM_KEYS};

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
        self.store.read(|r| match r.secret(SECRET_TEAM_KEYS)? {
            Some(b) => postcard::from_bytes(&b).map_err(|_| Error::Corrupt {
                what: "team keys".into(),
            }),
            None => Err(Error::NoTeam),
        })
    }

    /// The epochs of the team keys this device holds (a removed device stops at its last one).
    pub(crate) fn key_epochs(&self) -> Result<Vec<u32>> {
        Ok(self.team_keys()?.iter().map(|k| k.epoch).collect())
    }

    /// Adds team keys granted by a lead (epochs this device does not hold yet).
    pub(crate) fn add_team_keys(&self, new: &[TeamKey]) -> Result<()> {
        self.store.write(|w| {
            let mut keys: Vec<TeamKey> = match w.secret(SECRET_TEAM_KEYS)? {
                Some(b) => postcard::from_bytes(&b).map_err(|_| Error::Corrupt {
                    what: "team keys".into(),
                })?,
                None => return Err(Error::NoTeam),
            };
            for k in new {
                if !keys.iter().any(|o| o.epoch == k.epoch) {
                    keys.push(k.clone());
                }
            }
            keys.sort_by_key(|k| k.epoch);
            let bytes = Zeroizing::new(
                postcard::to_stdvec(&keys).map_err(|_| Error::Internal("key encoding"))?,
            );
            w.put_secret(SECRET_TEAM_KEYS, &bytes)
        })
    }

    /// Starts a new epoch with a fresh random team key; returns all keys (oldest first).
    pub(crate) fn rotate_team_key(&self) -> Result<Vec<TeamKey>> {
        let keys = self.team_keys()?;
        let next = keys.iter().map(|k| k.epoch).max().unwrap_or(0) + 1;
        self.add_team_keys(&[TeamKey::generate(next)?])?;
        self.team_keys()
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
            Ok(())
        })
    }
}
