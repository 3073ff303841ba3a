//! The live WebSocket: tells a team's online devices that the log grew, so they pull at once.
//!
//! Each team has a broadcast channel of heads; a push that appended something publishes the new
//! head. A socket sends `{"head": N}` on connect and whenever the head advances. It carries no
//! envelope data, only the number.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::response::Response;
use streetsync_wire::{DeviceId, LiveMessage, TeamId};
use tokio::sync::broadcast;

use super::AppState;
use super::auth::Member;
use super::error::ApiError;

/// Heads buffered per team before a slow socket skips to the newest.
const CHANNEL_CAPACITY: usize = 16;

/// Largest message a client may send; clients have nothing to say but pongs and close frames.
const MAX_CLIENT_MESSAGE: usize = 4 * 1024;

/// Read buffer of a socket. The default (128 KiB) was allocated per socket and zero-filled on
/// every read attempt, which each head announcement causes: with 500 open sockets that was the
/// largest single item of the relay's CPU time and about a third of its memory. Clients send at
/// most [`MAX_CLIENT_MESSAGE`].
const READ_BUFFER: usize = 2 * MAX_CLIENT_MESSAGE;

/// How often an idle socket is pinged, so dead peers are noticed.
const PING_EVERY: Duration = Duration::from_secs(30);

/// Per-team broadcast of the log head.
#[derive(Debug, Default)]
pub struct LiveHub {
    teams: Mutex<HashMap<TeamId, broadcast::Sender<u64>>>,
}

impl LiveHub {
    /// A receiver of the team's future heads.
    pub fn subscribe(&self, team: TeamId) -> broadcast::Receiver<u64> {
        let mut teams = self.teams.lock().unwrap_or_else(|p| p.into_inner());
        teams
            .entry(team)
            .or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0)
            .subscribe()
    }

    /// Announces a new head to the team's open sockets.
    pub fn publish(&self, team: TeamId, head: u64) {
        let mut teams = self.teams.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(sender) = teams.get(&team)
            && sender.send(head).is_err()
        {
            // No socket listens any more.
            teams.remove(&team);
        }
    }
}

/// `GET /v1/teams/{team}/live`: upgrades to a WebSocket after the signed handshake.
pub async fn live(
    State(state): State<AppState>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    member: Member,
) -> Result<Response, ApiError> {
    let ws =
        ws.map_err(|_| ApiError::BadRequest("this endpoint takes a WebSocket upgrade".into()))?;
    let (team, device) = (member.team, member.device.keys.id);
    // Subscribe before reading the head, so no advance between the two is missed.
    let updates = state.live.subscribe(team);
    let head = state
        .db(move |s| s.head(team))
        .await?
        .ok_or_else(|| ApiError::NotFound("no such team".into()))?;
    Ok(ws
        .read_buffer_size(READ_BUFFER)
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| serve(socket, state, team, device, head, updates)))
}

/// Decrements the online gauge however the socket ends.
struct OnlineGuard(AppState);

impl Drop for OnlineGuard {
    fn drop(&mut self) {
        self.0.metrics.devices_online.dec();
    }
}

async fn send_head(socket: &mut WebSocket, head: u64) -> bool {
    match serde_json::to_string(&LiveMessage { head }) {
        Ok(text) => socket.send(Message::Text(text.into())).await.is_ok(),
        Err(_) => false,
    }
}

async fn serve(
    mut socket: WebSocket,
    state: AppState,
    team: TeamId,
    device: DeviceId,
    head: u64,
    mut updates: broadcast::Receiver<u64>,
) {
    let _drain = state.live_tasks.clone();
    state.metrics.devices_online.inc();
    let _online = OnlineGuard(state.clone());
    let mut shutdown = state.shutdown.clone();
    tracing::debug!(%team, %device, head, "live socket opened");
    let mut sent = head;
    if *shutdown.borrow_and_update() {
        return;
    }
    if !send_head(&mut socket, head).await {
        return;
    }
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    loop {
        tokio::select! {
            update = updates.recv() => match update {
                Ok(head) if head > sent => {
                    sent = head;
                    if !send_head(&mut socket, head).await {
                        break;
                    }
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => break,
            },
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                Some(Ok(_)) => {}
            },
            _ = ping.tick() => {
                if socket.send(Message::Ping(Vec::new().into())).await.is_err() {
                    break;
                }
            }
            _ = shutdown.changed() => {
                // Only ever changes to true (or its sender is gone): the relay is stopping.
                let frame = CloseFrame { code: close_code::AWAY, reason: "relay shutting down".into() };
                let _ = socket.send(Message::Close(Some(frame))).await;
                break;
            }
        }
    }
    tracing::debug!(%team, %device, "live socket closed");
}
