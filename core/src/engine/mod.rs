//! The engine: everything a device does with its store, below the public facade.
//!
//! Local writes (`local`), the Team document and its roster (`team`), team keys and joining
//! (`keys`), remote apply with the authorship and role rules (`remote`), the audit history
//! (`history`) and the event bus (`events`). The engine does no network I/O: the sync layer
//! above hands it pulled envelopes and takes sealed ones from it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use automerge::ActorId;
use streetsync_wire::{DeviceId, RecordId, Role};
use zeroize::Zeroizing;

use crate::crypto::{DeviceIdentity, IdentitySecret, KeySource};
use crate::error::{Error, Result, ValidationError};
use crate::kinds::RecordKind;
use crate::store::Store;

pub(crate) mod events;
pub(crate) mod history;
pub(crate) mod keys;
pub(crate) mod local;
pub(crate) mod page;
pub(crate) mod remote;
pub(crate) mod retention;
pub(crate) mod team;

use events::{ChangeOrigin, Events, RecordChange};

const SECRET_IDENTITY: &str = "device_identity";
pub(crate) const SECRET_TEAM_KEYS: &str = "team_keys";
pub(crate) const META_TEAM_ID: &str = "team_id";
pub(crate) const META_TEAM_DOC: &str = "team_doc_id";

/// One opened device store with its identity: what the facade, the sync layer and the test hooks
/// share behind an `Arc`.
pub(crate) struct Engine {
    pub(crate) store: Store,
    identity: DeviceIdentity,
    actor: ActorId,
    path: PathBuf,
    pub(crate) events: Arc<Events>,
}

pub(crate) fn check_len(field: &str, value: &str, max: usize) -> Result<(), ValidationError> {
    let n = value.chars().count();
    if n > max {
        return Err(ValidationError::new(
            field,
            format!("is {n} characters long; the limit is {max}"),
        ));
    }
    if value.trim().is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    Ok(())
}

impl Engine {
    pub(crate) fn open(path: &Path, key: KeySource, version: u32) -> Result<Self> {
        let store = Store::open(path, &key, version)?;
        let identity = store.write(|w| match w.secret(SECRET_IDENTITY)? {
            Some(bytes) => {
                let secret: IdentitySecret =
                    postcard::from_bytes(&bytes).map_err(|_| Error::Corrupt {
                        what: "device identity".into(),
                    })?;
                DeviceIdentity::from_secret(&secret)
            }
            None => {
                let id = DeviceIdentity::generate()?;
                let bytes = Zeroizing::new(
                    postcard::to_stdvec(&id.to_secret())
                        .map_err(|_| Error::Internal("identity encoding"))?,
                );
                w.put_secret(SECRET_IDENTITY, &bytes)?;
                Ok(id)
            }
        })?;
        // Actor = device id + a per-session random suffix: changes are attributable to a device,
        // and two processes on one store can never reuse an (actor, seq) pair.
        let mut actor = identity.device_id().as_bytes().to_vec();
        actor.extend_from_slice(&crate::crypto::random_bytes::<8>()?);
        Ok(Self {
            store,
            identity,
            actor: ActorId::from(actor),
            path: path.to_owned(),
            events: Default::default(),
        })
    }

    pub(crate) fn local(&self, id: RecordId, kind: RecordKind, removed: bool) {
        self.events.emit(&[RecordChange {
            id,
            kind,
            origin: ChangeOrigin::Local,
            removed,
        }]);
    }

    /// This device's public keys, to hand to a lead who adds the device to the team.
    pub(crate) fn device_keys(&self, role: Role) -> streetsync_wire::DeviceKeys {
        streetsync_wire::DeviceKeys {
            id: self.device_id(),
            sign_pk: self.identity.sign_public(),
            kx_pk: self.identity.kx_public(),
            role,
        }
    }

    /// This device's id.
    pub(crate) fn device_id(&self) -> DeviceId {
        self.identity.device_id()
    }

    /// This device's identity (public keys, signing).
    pub(crate) fn identity(&self) -> &DeviceIdentity {
        &self.identity
    }

    /// The store file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}
