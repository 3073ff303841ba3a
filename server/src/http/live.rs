//! The live WebSocket: tells a team's online devices that the log grew, so they pull at once.
//!
//! Each team has a broadcast channel of heads; a push that appended something publishes the new
//! head. A socket sends `{"head": N}` on connect and whenever the head advances. It carries no
//! envelope data, only the number.
//!
//! A revoked device loses its sockets at once, not at its next request: each socket also watches a
//! per-device revocation signal ([`LiveHub::revoke`]), which the head broadcast cannot carry
//! because a lagging socket may skip its messages.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::response::Response;
use streetsync_wire::{DeviceId, LiveMessage, TeamId};
use tokio::sync::{broadcast, watch};

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

/// Per-team broadcast of the log head, and per-device revocation signals.
#[derive(Debug, Default)]
pub struct LiveHub {
    teams: Mutex<HashMap<TeamId, broadcast::Sender<u64>>>,
    devices: Mutex<DeviceSignals>,
}

/// The revocation signals of the devices that have a socket open.
#[derive(Debug, Default)]
struct DeviceSignals {
    by_device: HashMap<(TeamId, DeviceId), Signal>,
    /// Tells a signal from a later one of the same device, so a watch that outlives its signal
    /// never removes its successor.
    next_id: u64,
}

#[derive(Debug)]
struct Signal {
    id: u64,
    /// Turns true when the device is revoked.
    revoked: watch::Sender<bool>,
}

/// One socket's view of its device's revocation signal. Dropping the last watch of a device
/// removes its signal, so the map holds only devices that are online.
#[derive(Debug)]
pub struct RevocationWatch {
    hub: Arc<LiveHub>,
    key: (TeamId, DeviceId),
    id: u64,
    /// `Some` until dropped; dropped under the hub's lock so the receiver count it leaves is exact.
    receiver: Option<watch::Receiver<bool>>,
}

impl RevocationWatch {
    /// Resolves once the device is revoked (at once if it already was). Cancel safe.
    pub async fn revoked(&mut self) {
        if let Some(receiver) = self.receiver.as_mut() {
            // An error means the sender is gone, which [`LiveHub::revoke`] is the only one to do
            // while a watch exists: revoked as well.
            let _ = receiver.wait_for(|revoked| *revoked).await;
        }
    }
}

impl Drop for RevocationWatch {
    fn drop(&mut self) {
        let mut devices = self.hub.devices.lock().unwrap_or_else(|p| p.into_inner());
        drop(self.receiver.take());
        if let Some(signal) = devices.by_device.get(&self.key)
            && signal.id == self.id
            && signal.revoked.receiver_count() == 0
        {
            devices.by_device.remove(&self.key);
        }
    }
}

impl LiveHub {
    /// A watch of the device's revocation for one socket.
    ///
    /// A revocation signalled before this call is not seen here; the caller checks the device
    /// against storage after this call (storage commits a revocation before it is signalled), so
    /// one of the two catches it.
    pub fn watch_revocation(self: &Arc<Self>, team: TeamId, device: DeviceId) -> RevocationWatch {
        let mut devices = self.devices.lock().unwrap_or_else(|p| p.into_inner());
        let DeviceSignals { by_device, next_id } = &mut *devices;
        let signal = by_device.entry((team, device)).or_insert_with(|| {
            *next_id += 1;
            Signal {
                id: *next_id,
                revoked: watch::channel(false).0,
            }
        });
        RevocationWatch {
            hub: Arc::clone(self),
            key: (team, device),
            id: signal.id,
            receiver: Some(signal.revoked.subscribe()),
        }
    }

    /// Closes every open socket of the device in this team; returns how many it told. Called after
    /// the revocation committed.
    pub fn revoke(&self, team: TeamId, device: DeviceId) -> usize {
        let mut devices = self.devices.lock().unwrap_or_else(|p| p.into_inner());
        match devices.by_device.remove(&(team, device)) {
            Some(signal) => {
                signal.revoked.send_replace(true);
                signal.revoked.receiver_count()
            }
            None => 0,
        }
    }

    /// A receiver of the team's future heads.
    pub fn subscribe(&self, team: TeamId) -> broadcast::Receiver<u64> {
        let mut teams = self.teams.lock().unwrap_or_else(|p| p.into_inner());
        teams
            .entry(team)
            .or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0)
            .subscribe()
    }

    /// The teams that have a live socket open (for re-announcing heads after this instance may
    /// have missed another instance's announcements, `crate::notify`).
    pub fn teams(&self) -> Vec<TeamId> {
        let teams = self.teams.lock().unwrap_or_else(|p| p.into_inner());
        teams.keys().copied().collect()
    }

    /// The devices with a live socket open (to re-check their revocation, `crate::notify`).
    pub fn online_devices(&self) -> Vec<(TeamId, DeviceId)> {
        let devices = self.devices.lock().unwrap_or_else(|p| p.into_inner());
        devices.by_device.keys().copied().collect()
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
    // Likewise watch for revocation before checking it again: a revocation that committed after
    // `member` was authenticated but was signalled before this watch existed shows in storage.
    let revocation = state.live.watch_revocation(team, device);
    let (head, current) = state
        .db(move |s| Ok((s.head(team)?, s.device(team, device)?)))
        .await?;
    let head = head.ok_or_else(|| ApiError::NotFound("no such team".into()))?;
    if current.is_none_or(|d| d.revoked) {
        return Err(ApiError::Revoked);
    }
    Ok(ws
        .read_buffer_size(READ_BUFFER)
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| serve(socket, state, team, device, head, updates, revocation)))
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
    mut revocation: RevocationWatch,
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
            () = revocation.revoked() => {
                // 1008: the device is no longer allowed here; reconnecting is refused `revoked`.
                tracing::info!(%team, %device, "live socket of a revoked device closed");
                let frame = CloseFrame { code: close_code::POLICY, reason: "device revoked".into() };
                let _ = socket.send(Message::Close(Some(frame))).await;
                break;
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn signals(hub: &LiveHub) -> usize {
        hub.devices.lock().unwrap().by_device.len()
    }

    /// Every watch of the device sees its revocation, other devices' do not, and the map keeps
    /// only devices with a watch: no entry outlives its sockets, none is removed under one.
    #[tokio::test]
    async fn revocation_reaches_every_watch_of_the_device_only() {
        let hub = Arc::new(LiveHub::default());
        let (team, device, other) = (TeamId::random(), DeviceId::random(), DeviceId::random());
        let mut first = hub.watch_revocation(team, device);
        let mut second = hub.watch_revocation(team, device);
        let mut bystander = hub.watch_revocation(team, other);
        let mut other_team = hub.watch_revocation(TeamId::random(), device);
        assert_eq!(signals(&hub), 3);

        assert_eq!(hub.revoke(team, device), 2);
        let wait = Duration::from_secs(5);
        tokio::time::timeout(wait, first.revoked()).await.unwrap();
        tokio::time::timeout(wait, second.revoked()).await.unwrap();
        let quiet = Duration::from_millis(50);
        assert!(
            tokio::time::timeout(quiet, bystander.revoked())
                .await
                .is_err()
        );
        assert!(
            tokio::time::timeout(quiet, other_team.revoked())
                .await
                .is_err()
        );
        assert_eq!(signals(&hub), 2);

        // A watch made after the signal (the handshake re-checks storage for this case) gets a
        // fresh signal, which the old watches' drops leave alone.
        let late = hub.watch_revocation(team, device);
        drop((first, second));
        assert_eq!(signals(&hub), 3);
        assert_eq!(hub.revoke(team, device), 1);
        drop(late);
        drop((bystander, other_team));
        assert_eq!(signals(&hub), 0);
        assert_eq!(hub.revoke(team, device), 0);
    }
}
