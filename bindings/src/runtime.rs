//! Where the library's code runs: its own tokio runtime, and the guards at the two points where
//! control crosses between Rust and the host.
//!
//! Async exports hand their work to [`on_runtime`], so live sync keeps running between calls,
//! cancelling the host's coroutine or task aborts the Rust task, and a panic in it comes back as
//! [`StreetsyncError::Internal`] instead of unwinding into the host. Calls the other way, into host
//! listeners, go through [`call_host`], so an exception thrown by host code cannot tear down a sync
//! task.

use std::future::Future;
use std::sync::OnceLock;

use crate::Result;
use crate::error::StreetsyncError;

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
