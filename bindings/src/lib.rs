//! # streetsync-ffi
//!
//! The uniffi bindings of `streetsync-core` for Kotlin (Android and JVM), Swift (iOS) and Python.
//! This crate is a thin wrapper: each object holds an `Arc` of the core object, records and enums
//! are plain FFI copies of the core types (all conversions live in [`convert`]), and every core
//! error becomes one [`StreetsyncError`] (mapped once, in [`error`]).
//!
//! - [`Workspace`]: one opened, encrypted store (team, catalogs, partner directory, contacts with
//!   referrals and consents, review, clients, change listener). Its calls are blocking and fast.
//! - [`SyncClient`]: async sync with the relay (`sync_once`, invites, `join_with_invite`, `revoke_device`) and live sync
//!   ([`LiveSync`]) with a [`SyncListener`].
//!
//! Async exports run on tokio (`async_runtime = "tokio"`), so Kotlin gets `suspend fun`, Swift
//! `async` and Python awaitables. The actual work is spawned onto one runtime owned by this library
//! ([`runtime`]), so live sync keeps running between calls and cancelling the caller cancels the
//! Rust task. No panic crosses the boundary: sync exports run inside a `catch_unwind` guard,
//! async work is joined and a panic becomes [`StreetsyncError::Internal`], and calls into host
//! listeners are guarded too (an exception thrown by a host listener is ignored rather than
//! tearing down the sync task).

// The uniffi scaffolding exports `extern "C"` functions with `#[no_mangle]`, which the workspace's
// `unsafe_code` lint counts as unsafe. This crate itself writes no unsafe code.
#![allow(unsafe_code)]

pub mod convert;
pub mod error;
pub mod sync;
pub mod workspace;

use std::future::Future;
use std::sync::OnceLock;

pub use convert::*;
pub use error::StreetsyncError;
pub use sync::{LiveSync, SyncClient, SyncListener};
pub use workspace::{ChangeListener, ChangeSubscription, Workspace};

uniffi::setup_scaffolding!("streetsync");

/// Result of every fallible export.
pub type Result<T, E = StreetsyncError> = std::result::Result<T, E>;

/// The library's tokio runtime: two worker threads named `streetsync`, created on first use and
/// kept for the life of the process (live sync and pooled relay connections live on it).
pub(crate) fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> =
        OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("streetsync")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| StreetsyncError::Internal {
            detail: format!("the async runtime could not start: {e}"),
        })
}

/// Aborts a spawned task when the awaiting future is dropped (the host cancelled).
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs `fut` on the library's runtime and waits for it. A panic in it becomes
/// [`StreetsyncError::Internal`]; dropping the returned future (the host cancelled its coroutine or
/// task) aborts it.
pub(crate) async fn on_runtime<T: Send + 'static>(
    fut: impl Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    let task = runtime()?.spawn(fut);
    let _abort = AbortOnDrop(task.abort_handle());
    match task.await {
        Ok(r) => r,
        Err(e) if e.is_panic() => Err(StreetsyncError::from_panic(e.into_panic())),
        Err(_) => Err(StreetsyncError::Internal {
            detail: "the operation was cancelled".into(),
        }),
    }
}

/// Calls host (foreign) code. An exception thrown by a host listener reaches Rust as a panic in
/// the uniffi callback glue; it is caught here so it cannot unwind through the sync task.
pub(crate) fn call_host(f: impl FnOnce()) {
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
}

/// A new random 32-byte storage key. Store it wrapped by the platform keystore (Android Keystore,
/// iOS Keychain) and pass it to `Workspace.open` on every start.
#[uniffi::export]
pub fn generate_storage_key() -> Result<Vec<u8>> {
    error::guard(|| {
        let key = streetsync_core::StorageKey::generate()?;
        Ok(key.expose_bytes().to_vec())
    })
}

/// A minimal valid contact draft for `area_id` on `date` (`2026-11-23`) at `start_time`
/// (`14:30`): one person, street setting, everything else unknown or empty. Fill in the rest.
#[uniffi::export]
pub fn new_contact_draft(
    date: String,
    start_time: String,
    area_id: String,
) -> Result<ContactDraft> {
    let d = convert::parse_date("date", &date)?;
    let t = convert::parse_time("start_time", &start_time)?;
    Ok(streetsync_core::ContactDraft::new(d, t, area_id).into())
}

/// A client draft with just a pseudonymous code (`MA-1987-K`); everything else unknown or empty.
#[uniffi::export]
pub fn new_client_draft(code: String) -> ClientDraft {
    streetsync_core::ClientDraft::new(code).into()
}

/// The version of the streetsync library (`0.1.0`).
#[uniffi::export]
pub fn library_version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}
