//! Live sync: a WebSocket to the relay announces new sequence numbers; local changes wake the loop
//! at once; a lost connection is retried with exponential backoff and jitter. The host sees the
//! status and progress through a [`SyncListener`] and stops everything by dropping the handle.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest, http::HeaderValue};

use super::{SyncClient, SyncProgress, SyncReport};
use crate::error::{Error, Result};

/// Where live sync stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SyncStatus {
    /// Opening the connection.
    Connecting,
    /// Connected and syncing.
    Syncing,
    /// Connected, everything exchanged.
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

/// Receives live-sync events. Called from the sync task, never while a lock is held.
pub trait SyncListener: Send + Sync {
    /// The status changed. The current status is delivered first.
    fn on_status(&self, status: SyncStatus);
    /// Progress within a sync.
    fn on_progress(&self, progress: SyncProgress);
    /// A sync finished.
    fn on_synced(&self, report: &SyncReport) {
        let _ = report;
    }
}

/// Keeps live sync running; dropping it (or calling [`LiveHandle::stop`]) stops it.
pub struct LiveHandle {
    stop: Arc<tokio::sync::Notify>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl LiveHandle {
    /// Stops live sync and waits until the task has ended.
    pub async fn stop(mut self) {
        self.stop.notify_one();
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for LiveHandle {
    fn drop(&mut self) {
        self.stop.notify_one();
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

const MIN_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Even with notifications, run a full sync this often (a missed frame costs at most this much
/// delay, and the mailbox is read at least this often).
const PERIODIC: Duration = Duration::from_secs(60);

pub(super) fn start(client: Arc<SyncClient>, listener: Arc<dyn SyncListener>) -> LiveHandle {
    let stop = Arc::new(tokio::sync::Notify::new());
    let task = tokio::spawn(run(client, listener, stop.clone()));
    LiveHandle {
        stop,
        task: Some(task),
    }
}

fn refused(e: &Error) -> bool {
    matches!(
        e,
        Error::Relay {
            code: streetsync_wire::ErrorCode::Revoked
                | streetsync_wire::ErrorCode::UnknownDevice
                | streetsync_wire::ErrorCode::WrongTeam,
            ..
        }
    ) || matches!(e, Error::NoTeam | Error::NotAllowed(_))
}

/// Which sync a wake runs: a full one, or the live one that reads the mailbox only when a key
/// is awaited ([`SyncClient::sync_live`]).
#[derive(Clone, Copy)]
enum Wake {
    /// Connected, or the periodic sync.
    Full,
    /// A local change or a new head.
    Change,
}

async fn sync(client: &SyncClient, listener: &Arc<dyn SyncListener>, wake: Wake) -> Result<()> {
    listener.on_status(SyncStatus::Syncing);
    let report = match wake {
        Wake::Full => client.sync_once(Some(listener.as_ref())).await?,
        Wake::Change => client.sync_live(Some(listener.as_ref())).await?,
    };
    listener.on_synced(&report);
    listener.on_status(SyncStatus::Idle {
        cursor: report.cursor,
        last_sync_ms: crate::clock::now_ms(),
    });
    Ok(())
}

async fn run(
    client: Arc<SyncClient>,
    listener: Arc<dyn SyncListener>,
    stop: Arc<tokio::sync::Notify>,
) {
    let mut backoff = MIN_BACKOFF;
    loop {
        listener.on_status(SyncStatus::Connecting);
        let outcome = connected(&client, &listener, &stop, &mut backoff).await;
        let reason = match outcome {
            Ok(Stop) => {
                listener.on_status(SyncStatus::Stopped);
                return;
            }
            Err(e) if refused(&e) => {
                listener.on_status(SyncStatus::Refused {
                    reason: e.to_string(),
                });
                return;
            }
            Err(e) => e.to_string(),
        };
        let jitter = crate::crypto::random_bytes::<2>()
            .map(|b| u16::from_le_bytes(b) as u64 % (backoff.as_millis() as u64 / 2 + 1))
            .unwrap_or(0);
        let wait = backoff + Duration::from_millis(jitter);
        listener.on_status(SyncStatus::Offline {
            reason,
            retry_in_ms: wait.as_millis() as u64,
        });
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.notified() => {
                listener.on_status(SyncStatus::Stopped);
                return;
            }
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

struct Stop;

/// Largest message this client takes from the relay's live socket.
pub(crate) const MAX_LIVE_MESSAGE: usize = 4 * 1024;

/// The live socket's limits: the relay sends only `{"head": N}` and control frames, and
/// tungstenite's default would take a message of 64 MiB from it.
fn live_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_LIVE_MESSAGE))
        .max_frame_size(Some(MAX_LIVE_MESSAGE))
        .read_buffer_size(2 * MAX_LIVE_MESSAGE)
}

async fn connected(
    client: &SyncClient,
    listener: &Arc<dyn SyncListener>,
    stop: &tokio::sync::Notify,
    backoff: &mut Duration,
) -> Result<Stop> {
    let team = client.engine.team()?.id;
    let path = format!("/v1/teams/{team}/live");
    let url = format!("{}{}", client.relay.base().replacen("http", "ws", 1), path);
    let mut request = url
        .into_client_request()
        .map_err(|e| Error::Offline(format!("bad relay URL: {e}")))?;
    let auth = client
        .relay
        .sign(client.engine.identity(), "GET", &path, &[])?;
    request.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&auth).map_err(|_| Error::Internal("header encoding"))?,
    );
    let connector = tokio_tungstenite::Connector::Rustls(client.relay.tls());
    let config = live_config();
    let (mut socket, _) = match tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async_tls_with_config(
            request,
            Some(config),
            false,
            Some(connector),
        ),
    )
    .await
    {
        Err(_) => return Err(Error::Offline("the relay did not answer in time".into())),
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(resp))) => {
            let body = resp.body().as_deref().unwrap_or_default();
            return Err(
                match serde_json::from_slice::<streetsync_wire::ErrorBody>(body) {
                    Ok(e) => Error::Relay {
                        code: e.error,
                        message: e.message,
                    },
                    Err(_) => {
                        Error::Offline(format!("live connection refused ({})", resp.status()))
                    }
                },
            );
        }
        Ok(Err(e)) => return Err(Error::Offline(format!("live connection failed: {e}"))),
        Ok(Ok(s)) => s,
    };
    sync(client, listener, Wake::Full).await?;
    *backoff = MIN_BACKOFF;
    let local = client.engine.events.clone();
    // A deadline, not a sleep restarted by every wake: a busy team's stream of heads must not
    // put off the full sync (and its read of the mailbox) for ever.
    let mut full_at = tokio::time::Instant::now() + PERIODIC;
    loop {
        tokio::select! {
            _ = stop.notified() => {
                let _ = socket.close(None).await;
                return Ok(Stop);
            }
            msg = socket.next() => match msg {
                Some(Ok(Message::Text(text))) => {
                    let head = serde_json::from_str::<streetsync_wire::LiveMessage>(&text)
                        .map(|m| m.head)
                        .unwrap_or(u64::MAX);
                    let cursor = client.engine.store.read(|r| r.sync_value(crate::engine::page::SYNC_CURSOR))? as u64;
                    if head > cursor {
                        sync(client, listener, Wake::Change).await?;
                    }
                }
                Some(Ok(Message::Close(_))) | None => {
                    return Err(Error::Offline("the relay closed the live connection".into()));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(Error::Offline(format!("live connection lost: {e}"))),
            },
            _ = local.local_change.notified() => sync(client, listener, Wake::Change).await?,
            _ = tokio::time::sleep_until(full_at) => {
                sync(client, listener, Wake::Full).await?;
                full_at = tokio::time::Instant::now() + PERIODIC;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use futures_util::SinkExt as _;

    use super::*;

    #[tokio::test]
    async fn the_live_socket_refuses_a_message_over_its_cap() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
            ws.send(Message::text(r#"{"head":1}"#)).await.unwrap();
            let huge = format!(r#"{{"head":2,"pad":"{}"}}"#, "x".repeat(64 * 1024));
            let _ = ws.send(Message::text(huge)).await;
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut socket, _) = tokio_tungstenite::client_async_with_config(
            format!("ws://{addr}/v1/teams/x/live"),
            tcp,
            Some(live_config()),
        )
        .await
        .unwrap();
        let first = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .unwrap();
        assert!(matches!(first, Some(Ok(Message::Text(_)))), "{first:?}");
        let second = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .unwrap();
        assert!(
            matches!(
                second,
                Some(Err(tokio_tungstenite::tungstenite::Error::Capacity(_)))
            ),
            "{second:?}"
        );
    }
}
