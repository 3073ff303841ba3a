//! Sync with the relay: `SyncClient` (async `sync_once`, invites, joining, revocation), live sync
//! with a `SyncListener`, the `LiveSync` handle, and the records they report with (progress,
//! reports, quarantine, status, invites).
//!
//! Every network call is an async export on tokio: Kotlin gets `suspend fun`, Swift `async`, Python
//! awaitables. The work itself runs on the library's own runtime (see `crate::runtime`), so
//! cancelling the caller's coroutine or task cancels the Rust task too. This module depends on
//! [`Workspace`], never the other way round: `Workspace::sync_client` is declared here.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use streetsync_core as sc;

use crate::Result;
use crate::error::guard;
use crate::ids::parse_id;
use crate::mirror::mirror_enum;
use crate::runtime::{call_host, on_runtime, runtime};
use crate::team::Role;
use crate::workspace::Workspace;

// ---- records ------------------------------------------------------------------------------

mirror_enum!(
    /// Which step a sync is in.
    SyncPhase = sc::SyncPhase {
        /// Sending local changes.
        Pushing,
        /// Receiving teammates' changes.
        Pulling,
        /// Uploading snapshots so the relay can drop old envelopes.
        Compacting,
    }
);

/// A one-time invite for a new member's device, as the lead hands it over (typed, or shown as a
/// QR code drawn by the app).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Invite {
    /// The code, e.g. `K7QX-2M4A-...`; case, spaces and dashes do not matter when typed.
    pub code: String,
    /// The role the new device gets.
    pub role: Role,
    /// The member's display name on the roster.
    pub member: String,
    /// Unix milliseconds after which the code is refused.
    pub expires_at_ms: i64,
}

impl From<sc::Invite> for Invite {
    fn from(i: sc::Invite) -> Self {
        Self {
            code: i.code,
            role: i.role.into(),
            member: i.member,
            expires_at_ms: i.expires_at_ms,
        }
    }
}

/// Progress of one sync, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct SyncProgress {
    /// The step.
    pub phase: SyncPhase,
    /// Items done in this step.
    pub done: u64,
    /// Items in this step.
    pub total: u64,
}

impl From<sc::SyncProgress> for SyncProgress {
    fn from(p: sc::SyncProgress) -> Self {
        Self {
            phase: p.phase.into(),
            done: p.done,
            total: p.total,
        }
    }
}

/// An envelope from the relay that was not applied, and why.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Quarantined {
    /// Its sequence number on the relay.
    pub seq: u64,
    /// The record it claims to change.
    pub record_id: String,
    /// The device it claims to come from.
    pub author: String,
    /// Why it was refused.
    pub reason: QuarantineReason,
    /// Whether a later sync tries it again by itself (its author, key or earlier changes may
    /// still arrive); the others wait for a person to look.
    pub retryable: bool,
}

impl From<sc::Quarantined> for Quarantined {
    fn from(q: sc::Quarantined) -> Self {
        Self {
            seq: q.seq,
            record_id: q.doc.to_string(),
            author: q.author.to_string(),
            retryable: q.reason.is_retryable(),
            reason: q.reason.into(),
        }
    }
}

/// Why an envelope was refused; a code the app can branch on, never a string to compare.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum QuarantineReason {
    /// It names another team.
    WrongTeam,
    /// Its shape is wrong.
    Malformed,
    /// Its author is not on this device's roster (yet).
    UnknownDevice,
    /// Its signature does not verify.
    BadSignature,
    /// This device holds no key for its epoch (yet).
    NoKeyForEpoch,
    /// Its ciphertext does not authenticate.
    TagFailed,
    /// Its author's role does not allow it.
    NotAllowed,
    /// Its author was removed from the team before signing it.
    RevokedAuthor,
    /// It depends on changes not received yet.
    MissingDependencies,
    /// Its document is malformed.
    MalformedDocument,
    /// This device has no team yet.
    NoTeam,
    /// A reason from another version of streetsync.
    Other {
        /// The reason's name.
        name: String,
    },
}

impl From<sc::QuarantineReason> for QuarantineReason {
    fn from(r: sc::QuarantineReason) -> Self {
        use sc::QuarantineReason as C;
        match r {
            C::WrongTeam => Self::WrongTeam,
            C::Malformed => Self::Malformed,
            C::UnknownDevice => Self::UnknownDevice,
            C::BadSignature => Self::BadSignature,
            C::NoKeyForEpoch => Self::NoKeyForEpoch,
            C::TagFailed => Self::TagFailed,
            C::NotAllowed => Self::NotAllowed,
            C::RevokedAuthor => Self::RevokedAuthor,
            C::MissingDependencies => Self::MissingDependencies,
            C::MalformedDocument => Self::MalformedDocument,
            C::NoTeam => Self::NoTeam,
            C::Other(name) => Self::Other { name },
        }
    }
}

/// Something the relay, or a member through it, tried that the protocol does not allow; it was
/// refused, and the app should tell the user (and the lead the relay's operator).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum SecurityAlert {
    /// An invite was redeemed by a device that cannot prove it holds the code: not enrolled.
    ForgedEnrolment {
        /// The invite's id.
        invite: String,
        /// The device that claimed it.
        device: String,
    },
    /// An invite named a device already on the roster: its entry was left as it was.
    InviteForExistingDevice {
        /// The invite's id.
        invite: String,
        /// The device named.
        device: String,
    },
    /// A key bundle not signed by an active lead was refused.
    ForgedGrant {
        /// The device the relay says sent it.
        from: String,
    },
    /// Changes the relay acknowledged never appeared in its log; they are being sent again.
    DroppedChanges {
        /// How many.
        count: u64,
    },
    /// The relay's log went back behind what this device had pulled.
    LogRolledBack {
        /// This device's cursor before.
        cursor: u64,
        /// The relay's head.
        head: u64,
    },
}

impl From<&sc::SecurityAlert> for SecurityAlert {
    fn from(a: &sc::SecurityAlert) -> Self {
        use sc::SecurityAlert as C;
        match a {
            C::ForgedEnrolment { invite, device } => Self::ForgedEnrolment {
                invite: invite.to_string(),
                device: device.to_string(),
            },
            C::InviteForExistingDevice { invite, device } => Self::InviteForExistingDevice {
                invite: invite.to_string(),
                device: device.to_string(),
            },
            C::ForgedGrant { from } => Self::ForgedGrant {
                from: from.to_string(),
            },
            C::DroppedChanges { count } => Self::DroppedChanges { count: *count },
            C::LogRolledBack { cursor, head } => Self::LogRolledBack {
                cursor: *cursor,
                head: *head,
            },
        }
    }
}

/// An open invite of this lead (the code itself is not kept: it was handed over).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct OpenInvite {
    /// The invite's id, for [`SyncClient::cancel_invite`].
    pub id: String,
    /// The member's display name.
    pub member: String,
    /// The role the new device gets.
    pub role: Role,
    /// Unix milliseconds after which the code is refused.
    pub expires_at_ms: i64,
}

impl From<sc::OpenInvite> for OpenInvite {
    fn from(i: sc::OpenInvite) -> Self {
        Self {
            id: i.id.to_string(),
            member: i.member,
            role: i.role.into(),
            expires_at_ms: i.expires_at_ms,
        }
    }
}

/// What one sync did.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SyncReport {
    /// Local changes the relay acknowledged.
    pub pushed: u64,
    /// Envelopes received.
    pub pulled: u64,
    /// Envelopes merged into records.
    pub applied: u64,
    /// Envelopes refused in this sync.
    pub quarantined: Vec<Quarantined>,
    /// Earlier refused envelopes that could be applied now.
    pub recovered: u64,
    /// Snapshots uploaded.
    pub snapshots: u64,
    /// The device's cursor afterwards.
    pub cursor: u64,
    /// The relay had lost entries (restored from a backup); this device re-sent what it had.
    pub relay_restored: bool,
    /// What was refused because the relay or a member broke the protocol.
    pub alerts: Vec<SecurityAlert>,
}

impl From<&sc::SyncReport> for SyncReport {
    fn from(r: &sc::SyncReport) -> Self {
        Self {
            pushed: r.pushed,
            pulled: r.pulled,
            applied: r.applied,
            quarantined: r.quarantined.iter().cloned().map(Into::into).collect(),
            recovered: r.recovered,
            snapshots: r.snapshots,
            cursor: r.cursor,
            relay_restored: r.relay_restored,
            alerts: r.alerts.iter().map(Into::into).collect(),
        }
    }
}

/// Where sync stands.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum SyncStatus {
    /// Opening the connection.
    Connecting,
    /// Connected and syncing.
    Syncing,
    /// Everything exchanged.
    Idle {
        /// The cursor after the last sync.
        cursor: u64,
        /// Unix milliseconds of the last completed sync.
        last_sync_ms: i64,
    },
    /// No connection; local work goes on and is sent later.
    Offline {
        /// Why (a sentence for the status line).
        reason: String,
        /// When the next attempt starts.
        retry_in_ms: u64,
    },
    /// The relay refused this device (revoked, or not a member): live sync stopped.
    Refused {
        /// The relay's message.
        reason: String,
    },
    /// Live sync was stopped by the host.
    Stopped,
}

impl From<sc::SyncStatus> for SyncStatus {
    fn from(s: sc::SyncStatus) -> Self {
        match s {
            sc::SyncStatus::Connecting => SyncStatus::Connecting,
            sc::SyncStatus::Syncing => SyncStatus::Syncing,
            sc::SyncStatus::Idle {
                cursor,
                last_sync_ms,
            } => SyncStatus::Idle {
                cursor,
                last_sync_ms,
            },
            sc::SyncStatus::Offline {
                reason,
                retry_in_ms,
            } => SyncStatus::Offline {
                reason,
                retry_in_ms,
            },
            sc::SyncStatus::Refused { reason } => SyncStatus::Refused { reason },
            sc::SyncStatus::Stopped => SyncStatus::Stopped,
        }
    }
}

// ---- listener, client, live handle --------------------------------------------------------

/// Receives sync status, progress and results. Implement it in Kotlin, Swift or Python.
///
/// Called from the sync thread, never while a lock is held; keep it quick (post to the UI thread).
/// An exception thrown by the listener is caught and ignored.
#[uniffi::export(with_foreign)]
pub trait SyncListener: Send + Sync {
    /// The status changed. The current status is always delivered first.
    fn on_status(&self, status: SyncStatus);
    /// Progress within a sync step.
    fn on_progress(&self, progress: SyncProgress);
    /// A sync finished.
    fn on_synced(&self, report: SyncReport);
}

/// Bridges the core's sync listener to the host's; stops forwarding once deactivated.
struct SyncAdapter {
    host: Arc<dyn SyncListener>,
    active: AtomicBool,
    last: Mutex<SyncStatus>,
}

impl SyncAdapter {
    fn new(host: Arc<dyn SyncListener>) -> Arc<Self> {
        Arc::new(Self {
            host,
            active: AtomicBool::new(true),
            last: Mutex::new(SyncStatus::Connecting),
        })
    }

    fn status(&self, status: SyncStatus) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = status.clone();
        if self.active.load(Ordering::Acquire) {
            let host = self.host.clone();
            call_host(move || host.on_status(status));
        }
    }
}

impl sc::SyncListener for SyncAdapter {
    fn on_status(&self, status: sc::SyncStatus) {
        self.status(status.into());
    }

    fn on_progress(&self, progress: sc::SyncProgress) {
        if self.active.load(Ordering::Acquire) {
            let host = self.host.clone();
            call_host(move || host.on_progress(progress.into()));
        }
    }

    fn on_synced(&self, report: &sc::SyncReport) {
        if self.active.load(Ordering::Acquire) {
            let host = self.host.clone();
            let report = SyncReport::from(report);
            call_host(move || host.on_synced(report));
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Syncs one workspace with one relay. Make one per workspace and keep it; close it when done.
#[derive(uniffi::Object)]
pub struct SyncClient {
    inner: Arc<sc::SyncClient>,
}

impl std::fmt::Debug for SyncClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncClient").finish_non_exhaustive()
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl SyncClient {
    /// A sync client for `workspace` and the relay at `relay_url` (`https://relay.example.org`).
    /// Makes no network call.
    #[uniffi::constructor]
    pub fn new(workspace: Arc<Workspace>, relay_url: String) -> Result<Arc<Self>> {
        guard(|| {
            let _rt = runtime()?.enter();
            let inner = sc::SyncClient::new(workspace.inner.clone(), &relay_url)?;
            Ok(Arc::new(Self {
                inner: Arc::new(inner),
            }))
        })
    }

    /// Pushes local changes, pulls the team's, and returns what happened. With a listener, it
    /// receives `Syncing` first, then progress, then `on_synced` and `Idle`. Safe to call at any
    /// time; a failure (for example `Offline`) leaves the store consistent and the next call picks
    /// up where this one stopped. Cancelling the caller's coroutine/task cancels the sync.
    pub async fn sync_once(&self, listener: Option<Arc<dyn SyncListener>>) -> Result<SyncReport> {
        let client = self.inner.clone();
        on_runtime(async move {
            let adapter = listener.map(SyncAdapter::new);
            if let Some(a) = &adapter {
                a.status(SyncStatus::Syncing);
            }
            let core_listener = adapter.as_deref().map(|a| a as &dyn sc::SyncListener);
            let report = client.sync_once(core_listener).await?;
            if let Some(a) = &adapter {
                sc::SyncListener::on_synced(a.as_ref(), &report);
                a.status(SyncStatus::Idle {
                    cursor: report.cursor,
                    last_sync_ms: now_ms(),
                });
            }
            Ok(SyncReport::from(&report))
        })
        .await
    }

    /// Creates a one-time invite for a new member's device (leads only). Hand the code over in
    /// person; it expires after `ttl_secs` (at most 7 days). The new device calls
    /// `join_with_invite`; this lead's next sync puts it on the roster.
    pub async fn create_invite(&self, member: String, role: Role, ttl_secs: u64) -> Result<Invite> {
        let client = self.inner.clone();
        on_runtime(async move {
            Ok(client
                .create_invite(&member, role.into(), ttl_secs)
                .await?
                .into())
        })
        .await
    }

    /// Joins a team with an invite code: registers this device, receives the team keys and the
    /// team document, and syncs everything. A mistyped code is `InvalidInput(invite_code)`; an
    /// expired or used one `NotAllowed`.
    pub async fn join_with_invite(&self, code: String) -> Result<SyncReport> {
        let client = self.inner.clone();
        on_runtime(async move { Ok(SyncReport::from(&client.join_with_invite(&code).await?)) })
            .await
    }

    /// Removes a device from the team (a lost phone, or a member who left; leads only). The relay
    /// refuses it at once and a new team key goes to the remaining devices only.
    pub async fn revoke_device(&self, device_id: String) -> Result<()> {
        let client = self.inner.clone();
        let device: sc::DeviceId = parse_id("device_id", &device_id)?;
        on_runtime(async move { Ok(client.revoke_device(device).await?) }).await
    }

    /// This lead's open invites, oldest first, from this device's own store. Blocking, fast.
    pub fn invites(&self) -> Result<Vec<OpenInvite>> {
        guard(|| Ok(self.inner.invites()?.into_iter().map(Into::into).collect()))
    }

    /// Cancels an open invite (leads only): nothing redeemed with it is ever put on the roster.
    pub async fn cancel_invite(&self, invite_id: String) -> Result<()> {
        let client = self.inner.clone();
        let id: sc::InviteId = parse_id("invite_id", &invite_id)?;
        on_runtime(async move { Ok(client.cancel_invite(id).await?) }).await
    }

    /// Uploads a snapshot of every record so the relay can drop old envelopes (leads only);
    /// returns how many.
    pub async fn compact_all(&self) -> Result<u64> {
        let client = self.inner.clone();
        on_runtime(async move { Ok(client.compact_all().await?) }).await
    }

    /// Envelopes from the relay that were refused (bad signature, unknown device, ...), for a
    /// support screen. Blocking, fast.
    pub fn quarantine_report(&self) -> Result<Vec<Quarantined>> {
        guard(|| {
            Ok(self
                .inner
                .quarantine_report()?
                .into_iter()
                .map(Into::into)
                .collect())
        })
    }

    /// Starts live sync: the relay announces new changes over a WebSocket, local changes are sent
    /// at once, a lost connection is retried with backoff. The listener receives the current status
    /// (`Connecting`) first, then every status, progress and report. Runs until the returned
    /// handle is stopped or closed/dropped. Returns immediately.
    pub fn start_live(&self, listener: Arc<dyn SyncListener>) -> Result<Arc<LiveSync>> {
        guard(|| {
            let adapter = SyncAdapter::new(listener);
            let _rt = runtime()?.enter();
            let handle = self.inner.start_live(adapter.clone());
            Ok(Arc::new(LiveSync {
                handle: Mutex::new(Some(handle)),
                adapter,
            }))
        })
    }
}

/// Keeps live sync running. `stop()` ends it gracefully (the listener receives `Stopped` last);
/// closing or dropping the handle ends it at once without further listener calls.
#[derive(uniffi::Object)]
pub struct LiveSync {
    handle: Mutex<Option<sc::LiveHandle>>,
    adapter: Arc<SyncAdapter>,
}

impl std::fmt::Debug for LiveSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveSync")
            .field("running", &self.is_running())
            .finish()
    }
}

#[uniffi::export]
impl LiveSync {
    /// Stops live sync. Returns at once; the listener then receives `Stopped` as its last call.
    /// Safe to call twice.
    pub fn stop(&self) {
        let handle = self.handle.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(h) = handle {
            match runtime() {
                Ok(rt) => {
                    rt.spawn(h.stop());
                }
                Err(_) => drop(h),
            }
        }
    }

    /// Whether live sync is running (not stopped, and not refused by the relay).
    pub fn is_running(&self) -> bool {
        let started = self
            .handle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some();
        started
            && !matches!(
                self.status(),
                SyncStatus::Refused { .. } | SyncStatus::Stopped
            )
    }

    /// The last status delivered to the listener.
    pub fn status(&self) -> SyncStatus {
        self.adapter
            .last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for LiveSync {
    fn drop(&mut self) {
        self.adapter.active.store(false, Ordering::Release);
        let handle = self
            .handle
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(h) = handle {
            // Aborting needs the runtime only for the task handle it already holds.
            drop(h);
        }
    }
}

#[uniffi::export]
impl Workspace {
    /// A sync client for the relay at `relay_url` (`https://relay.example.org`). Same as
    /// `SyncClient(workspace, relay_url)`.
    pub fn sync_client(self: Arc<Self>, relay_url: String) -> Result<Arc<SyncClient>> {
        SyncClient::new(self, relay_url)
    }
}
