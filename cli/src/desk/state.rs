//! What the desk holds while it runs: the open store (or nothing, when locked), the live sync, the
//! run's secrets (URL token, CSRF token), the idle clock, and the channel that tells open pages
//! about new changes.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use streetsync_core::{
    ChangeListener, Invite, LiveHandle, RecordChange, RecordKind, Subscription, SyncClient,
    SyncListener, SyncProgress, SyncReport, SyncStatus, Workspace,
};
use tokio::sync::broadcast;

/// Opens the store again with a passphrase (the unlock page). Returns the core's error for a wrong
/// passphrase, so the page can say so.
pub type Opener = Arc<dyn Fn(&str) -> streetsync_core::Result<Workspace> + Send + Sync>;

/// How the desk runs.
#[derive(Clone)]
pub struct DeskConfig {
    /// The port it listens on (the Host and Origin checks name it).
    pub port: u16,
    /// The relay to sync with, if one is known for the store.
    pub relay: Option<String>,
    /// Idle time after which the store is closed.
    pub idle_lock: Duration,
}

/// A live update for open pages (sent as server-sent events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiveEvent {
    /// Records changed (locally or from a phone): `contact:<id>`, `client:<id>`, `team`.
    Changed(String),
    /// The sync state changed.
    Sync,
    /// The desk locked itself.
    Locked,
}

/// The sync state as the status bar shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncView {
    /// The store knows no relay: the desk works offline only.
    NoRelay,
    /// Live sync reports this.
    Live(SyncStatus),
}

/// A message shown once on the next page (after a redirect).
#[derive(Debug, Clone)]
pub(crate) struct Flash {
    pub(crate) error: bool,
    pub(crate) text: String,
}

/// The open store and what hangs on it; dropped as a whole when the desk locks.
struct Session {
    ws: Arc<Workspace>,
    sync: Option<Arc<SyncClient>>,
    live: Option<LiveHandle>,
    _changes: Subscription,
    last_invite: Option<Invite>,
}

pub(crate) struct Inner {
    pub(crate) token: String,
    pub(crate) csrf: String,
    pub(crate) config: DeskConfig,
    opener: Opener,
    session: Mutex<Option<Session>>,
    sync_view: Mutex<SyncView>,
    last_sync_ms: Mutex<Option<i64>>,
    pub(crate) events: broadcast::Sender<LiveEvent>,
    last_activity: Mutex<Instant>,
    flash: Mutex<Option<Flash>>,
}

/// The desk's shared state; cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct DeskState(pub(crate) Arc<Inner>);

/// A random secret of 32 bytes, base64url without padding.
fn secret() -> String {
    use base64::Engine as _;
    use ring::rand::SecureRandom as _;
    let mut b = [0u8; 32];
    // SystemRandom only fails when the OS has no randomness at all; the desk cannot run then.
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .expect("the operating system's random source failed");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Forwards store changes and sync status to open pages.
struct Bridge(Weak<Inner>);

impl ChangeListener for Bridge {
    fn on_changes(&self, changes: &[RecordChange]) {
        let Some(inner) = self.0.upgrade() else {
            return;
        };
        for c in changes {
            let what = match c.kind {
                RecordKind::Contact => format!("contact:{}", c.id),
                RecordKind::Client => format!("client:{}", c.id),
                RecordKind::Team => "team".to_owned(),
            };
            let _ = inner.events.send(LiveEvent::Changed(what));
        }
    }
}

impl SyncListener for Bridge {
    fn on_status(&self, status: SyncStatus) {
        let Some(inner) = self.0.upgrade() else {
            return;
        };
        if let SyncStatus::Idle { last_sync_ms, .. } = &status {
            *lock(&inner.last_sync_ms) = Some(*last_sync_ms);
        }
        *lock(&inner.sync_view) = SyncView::Live(status);
        let _ = inner.events.send(LiveEvent::Sync);
    }

    fn on_progress(&self, _progress: SyncProgress) {}

    fn on_synced(&self, _report: &SyncReport) {}
}

impl DeskState {
    /// The desk over an open store. With a relay, live sync starts at once (this needs a tokio
    /// runtime); `opener` reopens the store after the idle lock.
    pub fn new(
        config: DeskConfig,
        ws: Arc<Workspace>,
        opener: Opener,
    ) -> streetsync_core::Result<Self> {
        let (events, _) = broadcast::channel(256);
        let inner = Arc::new(Inner {
            token: secret(),
            csrf: secret(),
            sync_view: Mutex::new(if config.relay.is_some() {
                SyncView::Live(SyncStatus::Connecting)
            } else {
                SyncView::NoRelay
            }),
            config,
            opener,
            session: Mutex::new(None),
            last_sync_ms: Mutex::new(None),
            events,
            last_activity: Mutex::new(Instant::now()),
            flash: Mutex::new(None),
        });
        let state = DeskState(inner);
        state.attach(ws)?;
        Ok(state)
    }

    /// Opens a session on `ws`: subscribes to its changes and starts live sync.
    fn attach(&self, ws: Arc<Workspace>) -> streetsync_core::Result<()> {
        let bridge = Arc::new(Bridge(Arc::downgrade(&self.0)));
        let changes = ws.subscribe(bridge.clone());
        let (sync, live) = match &self.0.config.relay {
            Some(url) => {
                let client = Arc::new(SyncClient::new(ws.clone(), url)?);
                let live = client.start_live(bridge);
                (Some(client), Some(live))
            }
            None => (None, None),
        };
        *lock(&self.0.session) = Some(Session {
            ws,
            sync,
            live,
            _changes: changes,
            last_invite: None,
        });
        *lock(&self.0.last_activity) = Instant::now();
        Ok(())
    }

    /// The one-time token of this run (in the printed URL).
    pub fn token(&self) -> &str {
        &self.0.token
    }

    /// The CSRF token of this run (hidden form field `csrf`, or header `X-CSRF-Token`).
    pub fn csrf(&self) -> &str {
        &self.0.csrf
    }

    /// The port the Host and Origin checks accept.
    pub fn port(&self) -> u16 {
        self.0.config.port
    }

    /// The open store, or `None` while locked.
    pub fn workspace(&self) -> Option<Arc<Workspace>> {
        lock(&self.0.session).as_ref().map(|s| s.ws.clone())
    }

    /// The sync client, when a relay is known and the desk is unlocked.
    pub(crate) fn sync_client(&self) -> Option<Arc<SyncClient>> {
        lock(&self.0.session).as_ref().and_then(|s| s.sync.clone())
    }

    /// Whether the store is closed.
    pub fn is_locked(&self) -> bool {
        lock(&self.0.session).is_none()
    }

    /// Closes the store: live sync stops, the workspace is dropped, secrets in memory go with it.
    pub async fn lock(&self) {
        let session = lock(&self.0.session).take();
        if let Some(mut s) = session {
            if let Some(live) = s.live.take() {
                live.stop().await;
            }
            drop(s);
            *lock(&self.0.sync_view) = if self.0.config.relay.is_some() {
                SyncView::Live(SyncStatus::Stopped)
            } else {
                SyncView::NoRelay
            };
            let _ = self.0.events.send(LiveEvent::Locked);
        }
    }

    /// Opens the store again with `passphrase` (PBKDF2 runs off the async workers).
    pub async fn unlock(&self, passphrase: String) -> streetsync_core::Result<()> {
        let opener = self.0.opener.clone();
        let ws = tokio::task::spawn_blocking(move || {
            let p = zeroize::Zeroizing::new(passphrase);
            opener(&p)
        })
        .await
        .map_err(|_| streetsync_core::Error::Internal("unlock task failed"))??;
        self.attach(Arc::new(ws))
    }

    /// Notes that the lead did something (resets the idle clock).
    pub(crate) fn touch(&self) {
        *lock(&self.0.last_activity) = Instant::now();
    }

    /// Whether the idle time has run out.
    pub(crate) fn idle_expired(&self) -> bool {
        lock(&self.0.last_activity).elapsed() >= self.0.config.idle_lock
    }

    /// Locks the desk once the idle time is over; runs until the process ends.
    pub async fn idle_lock_loop(self) {
        let tick = (self.0.config.idle_lock / 4)
            .clamp(Duration::from_millis(200), Duration::from_secs(30));
        loop {
            tokio::time::sleep(tick).await;
            if !self.is_locked() && self.idle_expired() {
                self.lock().await;
            }
        }
    }

    /// The sync state and the time of the last completed sync.
    pub fn sync_view(&self) -> (SyncView, Option<i64>) {
        (lock(&self.0.sync_view).clone(), *lock(&self.0.last_sync_ms))
    }

    pub(crate) fn set_flash(&self, error: bool, text: String) {
        *lock(&self.0.flash) = Some(Flash { error, text });
    }

    pub(crate) fn take_flash(&self) -> Option<Flash> {
        lock(&self.0.flash).take()
    }

    pub(crate) fn set_last_invite(&self, invite: Invite) {
        if let Some(s) = lock(&self.0.session).as_mut() {
            s.last_invite = Some(invite);
        }
    }

    pub(crate) fn last_invite(&self) -> Option<Invite> {
        lock(&self.0.session)
            .as_ref()
            .and_then(|s| s.last_invite.clone())
    }
}
