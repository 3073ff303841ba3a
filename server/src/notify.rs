//! Cross-instance signals on PostgreSQL: what one relay instance committed reaches the live
//! sockets of every other instance on the same database (ADR 0011).
//!
//! Each instance keeps one dedicated listening connection (outside the pool). The writing
//! transaction sends `NOTIFY` itself (`storage::postgres`), so a notification exists only for a
//! committed write. A head notification is forwarded to [`LiveHub::publish`] (the sockets then
//! pull, as for a local push), a revocation to [`LiveHub::revoke`] (the device's sockets close;
//! its requests are refused anyway, because the PostgreSQL backend keeps no device cache).
//!
//! Notifications sent while the listener was disconnected are lost, so after every (re)connect it
//! re-announces the current head of every team with an open socket and re-checks every online
//! device's revocation: nothing committed meanwhile stays unannounced.

use std::sync::Arc;
use std::time::Duration;

use streetsync_wire::{DeviceId, TeamId};
use tokio::sync::watch;

use crate::http::live::LiveHub;
use crate::storage::postgres::{HEAD_CHANNEL, PgStorage, REVOKED_CHANNEL};

/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Listens until `shutdown` turns true, reconnecting with backoff whenever the connection is lost.
pub async fn listen(
    storage: Arc<PgStorage>,
    hub: Arc<LiveHub>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        if *shutdown.borrow() {
            return;
        }
        match storage
            .connector()
            .listen(&[HEAD_CHANNEL, REVOKED_CHANNEL])
            .await
        {
            Ok((_client, mut notifications)) => {
                tracing::info!("listening for other relay instances' writes");
                backoff = Duration::from_millis(100);
                resync(&storage, &hub).await;
                loop {
                    tokio::select! {
                        next = notifications.recv() => match next {
                            Some((channel, payload)) => dispatch(&hub, &channel, &payload),
                            None => break,
                        },
                        _ = shutdown.changed() => return,
                    }
                }
                tracing::warn!("database listener connection lost; reconnecting");
            }
            Err(e) => {
                tracing::warn!(error = %e, "database listener could not connect; retrying");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = shutdown.changed() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Re-announces heads and revocations this instance may have missed.
async fn resync(storage: &PgStorage, hub: &LiveHub) {
    match storage.heads(&hub.teams()).await {
        Ok(heads) => {
            for (team, head) in heads {
                hub.publish(team, head);
            }
        }
        Err(e) => tracing::warn!(error = %e, "re-announcing heads failed"),
    }
    match storage.revoked_among(&hub.online_devices()).await {
        Ok(revoked) => {
            for (team, device) in revoked {
                hub.revoke(team, device);
            }
        }
        Err(e) => tracing::warn!(error = %e, "re-checking revocations failed"),
    }
}

fn dispatch(hub: &LiveHub, channel: &str, payload: &str) {
    let Some((team, rest)) = payload.split_once(':') else {
        tracing::warn!(channel, "malformed notification");
        return;
    };
    let Ok(team) = team.parse::<TeamId>() else {
        tracing::warn!(channel, "notification with a malformed team");
        return;
    };
    match channel {
        HEAD_CHANNEL => match rest.parse::<u64>() {
            Ok(head) => hub.publish(team, head),
            Err(_) => tracing::warn!(channel, "notification with a malformed head"),
        },
        REVOKED_CHANNEL => match rest.parse::<DeviceId>() {
            Ok(device) => {
                hub.revoke(team, device);
            }
            Err(_) => tracing::warn!(channel, "notification with a malformed device"),
        },
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn notifications_reach_the_hub_and_malformed_ones_are_ignored() {
        let hub = Arc::new(LiveHub::default());
        let (team, device) = (TeamId::random(), DeviceId::random());
        let mut heads = hub.subscribe(team);
        let mut revocation = hub.watch_revocation(team, device);
        for bad in ["", "nonsense", "zz:1", &format!("{team}:x")] {
            dispatch(&hub, HEAD_CHANNEL, bad);
            dispatch(&hub, REVOKED_CHANNEL, bad);
        }
        assert!(heads.try_recv().is_err());
        dispatch(&hub, HEAD_CHANNEL, &format!("{team}:7"));
        assert_eq!(heads.try_recv().unwrap(), 7);
        dispatch(&hub, REVOKED_CHANNEL, &format!("{team}:{device}"));
        tokio::time::timeout(Duration::from_secs(5), revocation.revoked())
            .await
            .unwrap();
    }
}
