//! The `Workspace` object (one opened store of one device): opening it with a key or passphrase,
//! changing that key, and the store's health (pending changes, key epochs, damaged records).
//!
//! The object is a thin facade: it holds an `Arc` of the core's `Workspace`, and each domain
//! module adds its own methods in its own `#[uniffi::export] impl Workspace` block (team,
//! contacts, clients, records, statistics, changes, sync). Every store call is a plain (blocking)
//! export: they take a few milliseconds (one SQLite transaction, `synchronous=FULL`) and are safe
//! from any thread. Apps may call them from a background dispatcher (`Dispatchers.IO`, a Swift
//! `Task`, `asyncio.to_thread`) if they do not want even that on the UI thread. Network work is
//! async and lives on `SyncClient`.

use std::sync::Arc;

use streetsync_core as sc;
use zeroize::Zeroize;

use crate::Result;
use crate::error::{StreetsyncError, guard};

/// One opened, encrypted device store and the whole local API on it.
///
/// Open one per store file and share it; it is thread-safe. In Kotlin close it with `close()` or
/// `use {}` when the app no longer needs it (a `SyncClient` made from it keeps the store open until
/// it is closed too).
#[derive(uniffi::Object)]
pub struct Workspace {
    pub(crate) inner: Arc<sc::Workspace>,
}

impl std::fmt::Debug for Workspace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workspace")
            .field("path", &self.inner.path())
            .finish()
    }
}

/// A new random 32-byte storage key. Store it wrapped by the platform keystore (Android Keystore,
/// iOS Keychain) and pass it to `Workspace.open` on every start.
#[uniffi::export]
pub fn generate_storage_key() -> Result<Vec<u8>> {
    guard(|| {
        let key = sc::StorageKey::generate()?;
        Ok(key.expose_bytes().to_vec())
    })
}

/// Takes 32 key bytes from the host and wipes the host's copy on the Rust side.
fn take_storage_key(mut bytes: Vec<u8>) -> Result<sc::StorageKey> {
    let key = sc::StorageKey::from_bytes(&bytes).map_err(|_| StreetsyncError::InvalidInput {
        field: "storage_key".into(),
        reason: format!("must be 32 bytes, got {}", bytes.len()),
    });
    bytes.zeroize();
    key
}

/// Refuses an empty passphrase before any key stretching starts.
fn check_passphrase(p: &str) -> Result<()> {
    if p.is_empty() {
        return Err(StreetsyncError::InvalidInput {
            field: "passphrase".into(),
            reason: "must not be empty".into(),
        });
    }
    Ok(())
}

#[uniffi::export]
impl Workspace {
    /// Opens (or creates) the store at `path` with a 32-byte storage key from the platform keystore
    /// (Android Keystore, iOS Keychain). Blocking, fast. A wrong key fails with `WrongKey` and
    /// changes nothing. The bytes passed in are wiped after use on the Rust side.
    #[uniffi::constructor]
    pub fn open(path: String, storage_key: Vec<u8>) -> Result<Arc<Self>> {
        let key = take_storage_key(storage_key)?;
        guard(|| {
            let ws = sc::Workspace::open(&path, sc::KeySource::Key(key))?;
            Ok(Arc::new(Self {
                inner: Arc::new(ws),
            }))
        })
    }

    /// Opens (or creates) the store at `path` with a passphrase, stretched with PBKDF2 (salt kept
    /// in the store). Blocking and deliberately slow (key stretching): call it off the UI thread.
    #[uniffi::constructor]
    pub fn open_with_passphrase(path: String, passphrase: String) -> Result<Arc<Self>> {
        check_passphrase(&passphrase)?;
        guard(|| {
            let ws = sc::Workspace::open(&path, sc::KeySource::passphrase(passphrase))?;
            Ok(Arc::new(Self {
                inner: Arc::new(ws),
            }))
        })
    }

    // ---- keys and health ----------------------------------------------------------------

    /// Re-seals the whole store under a new 32-byte storage key (after the keystore key was
    /// rotated). The old key stops working at once. Blocking; rewrites the store, so call it off the
    /// UI thread. The bytes passed in are wiped after use on the Rust side.
    pub fn change_storage_key(&self, new_key: Vec<u8>) -> Result<()> {
        let key = take_storage_key(new_key)?;
        guard(|| Ok(self.inner.change_storage_key(sc::KeySource::Key(key))?))
    }

    /// Re-seals the whole store under a new passphrase. Blocking and slow (key stretching and a
    /// rewrite of the store): call it off the UI thread.
    pub fn change_passphrase(&self, new_passphrase: String) -> Result<()> {
        check_passphrase(&new_passphrase)?;
        guard(|| {
            Ok(self
                .inner
                .change_storage_key(sc::KeySource::passphrase(new_passphrase))?)
        })
    }

    /// The epochs of the team keys this device holds (a new epoch starts when a lead removes a
    /// device). Blocking, fast.
    pub fn key_epochs(&self) -> Result<Vec<u32>> {
        guard(|| Ok(self.inner.key_epochs()?))
    }

    /// How many local changes wait to be sent to the relay. Blocking, fast.
    pub fn pending_changes(&self) -> Result<u64> {
        guard(|| Ok(self.inner.pending_changes()?))
    }

    /// Ids of records whose stored data failed to open (a damaged file); everything else works.
    /// Blocking, fast.
    pub fn damaged_records(&self) -> Result<Vec<String>> {
        guard(|| {
            Ok(self
                .inner
                .damaged_records()?
                .into_iter()
                .map(|id| id.to_string())
                .collect())
        })
    }
}
