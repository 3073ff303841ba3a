//! A worker floods the lead's bundle mailbox (issue 13): before quotas and paging, 40 bundles of
//! 1 MiB made the lead's `GET /bundles` one 53 MiB answer read whole at the start of every sync.
//! Now the relay stops the flood at the mailbox quota, and the lead's sync reads the mailbox in
//! bounded pages, reports every forged bundle, empties the mailbox and goes on syncing.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use streetsync_core::*;

/// Posts a bundle to `to` as `from`, signed like any device signs; returns status and body.
async fn post_bundle(
    url: &str,
    from: &DeviceIdentity,
    team: TeamId,
    to: DeviceId,
    blob: Vec<u8>,
) -> (u16, String) {
    let path = format!("/v1/teams/{team}/bundles");
    let body = serde_json::to_vec(&streetsync_wire::PostBundle { to, blob }).unwrap();
    let mut nonce = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce).unwrap();
    let header = streetsync_wire::auth::authorization_header(
        from.signing_key(),
        from.device_id(),
        "POST",
        &path,
        &body,
        chrono::Utc::now().timestamp_millis(),
        nonce,
    );
    let resp = http()
        .post(format!("{url}{path}"))
        .header("authorization", header)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_flooding_the_leads_mailbox_cannot_stop_the_leads_sync() {
    let dir = tempfile::tempdir().unwrap();
    let relay_dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(relay_dir.path());
    let devices = team(dir.path(), &relay.url(), 1).await;
    let (lead, worker) = (&devices[0], &devices[1]);
    let team_id = lead.ws.team().unwrap().id;

    // 1 MiB bundles until the relay refuses (the default mailbox holds 32 MiB).
    let mut posted = 0;
    let mut refused = None;
    for n in 0..64u32 {
        let blob = vec![(n % 251) as u8; 1024 * 1024];
        let (status, body) = post_bundle(
            &relay.url(),
            worker.ws.identity(),
            team_id,
            lead.ws.device_id(),
            blob,
        )
        .await;
        if status == 201 {
            posted += 1;
        } else {
            refused = Some((status, body));
            break;
        }
    }
    let (status, body) = refused.expect("the relay took 64 MiB of bundles for one device");
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("quota_exceeded"), "{body}");
    assert!(posted >= 20, "only {posted} bundles before the quota");

    // Meanwhile the worker records a contact; the lead must still receive it.
    let contact = worker.contact(3, "seen at the fountain");
    worker.sync.sync_once(None).await.unwrap();
    let report = lead.sync.sync_once(None).await.unwrap();
    let forged = report
        .alerts
        .iter()
        .filter(
            |a| matches!(a, SecurityAlert::ForgedGrant { from } if *from == worker.ws.device_id()),
        )
        .count();
    assert_eq!(
        forged, posted,
        "every flooded bundle reported: {:?}",
        report.alerts
    );
    assert!(
        lead.ws.get_contact(contact.id).is_ok(),
        "the lead's sync went on to pull the worker's contact"
    );
    let waiting: i64 = rusqlite::Connection::open(relay_dir.path().join("relay.sqlite3"))
        .unwrap()
        .query_row("SELECT count(*) FROM bundles", [], |r| r.get(0))
        .unwrap();
    assert_eq!(waiting, 0, "the lead emptied its mailbox");
    // And the next sync is an ordinary one.
    lead.sync.sync_once(None).await.unwrap();
    let status = std::fs::read_to_string(format!("/proc/{}/status", relay.pid())).unwrap();
    let peak = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    eprintln!("mailbox flood: {posted} bundles of 1 MiB taken, then quota_exceeded; relay {peak}");
}
