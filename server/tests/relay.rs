//! End-to-end tests of the relay: the real binary, a real SQLite file, HTTP on 127.0.0.1.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use futures_util::StreamExt as _;
use reqwest::{Method, StatusCode};
use serde_json::json;
use streetsync_wire::{
    EnvelopeKind, InviteId, MAX_BODY_BYTES, MAX_CIPHERTEXT_BYTES, RecordId, Role, TeamId,
};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

#[tokio::test]
async fn teams_and_devices() {
    let relay = Relay::start();
    let (team, lead) = new_team(&relay).await;

    // The same team id again.
    let body = json!({ "team": team, "device": lead.keys() });
    let again = send(&relay, &lead, Method::POST, "/v1/teams", Some(&body)).await;
    assert_eq!(
        (again.status, again.code()),
        (StatusCode::CONFLICT, "team_exists")
    );

    // A founding device must sign with its own key and be a lead.
    let other = Device::new(Role::Lead);
    let body = json!({ "team": TeamId::random(), "device": lead.keys() });
    let answer = send(&relay, &other, Method::POST, "/v1/teams", Some(&body)).await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::BAD_REQUEST, "bad_request")
    );
    let worker_founder = Device::new(Role::Worker);
    let body = json!({ "team": TeamId::random(), "device": worker_founder.keys() });
    let answer = send(
        &relay,
        &worker_founder,
        Method::POST,
        "/v1/teams",
        Some(&body),
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);

    let worker = add_device(&relay, team, &lead, Role::Worker).await;
    let devices_path = format!("/v1/teams/{team}/devices");
    let again = send(
        &relay,
        &lead,
        Method::POST,
        &devices_path,
        Some(&serde_json::to_value(worker.keys()).unwrap()),
    )
    .await;
    assert_eq!(
        (again.status, again.code()),
        (StatusCode::CONFLICT, "device_exists")
    );

    // A worker may not add devices.
    let newcomer = Device::new(Role::Worker);
    let refused = send(
        &relay,
        &worker,
        Method::POST,
        &devices_path,
        Some(&serde_json::to_value(newcomer.keys()).unwrap()),
    )
    .await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::FORBIDDEN, "not_lead")
    );

    // Keys whose id is not derived from sign_pk are refused.
    let mut forged = newcomer.keys();
    forged.id = worker.id;
    let refused = send(
        &relay,
        &lead,
        Method::POST,
        &devices_path,
        Some(&serde_json::to_value(forged).unwrap()),
    )
    .await;
    assert_eq!(refused.code(), "bad_request");

    let list = send(&relay, &worker, Method::GET, &devices_path, None).await;
    assert_eq!(list.status, StatusCode::OK);
    let devices = list.json["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 2);
    assert!(devices.iter().all(|d| d["revoked"] == false));

    // Revocation: a worker may not, a lead may; the revoked device is refused at once.
    let revoke_path = format!("/v1/teams/{team}/devices/{}", worker.id);
    let refused = send(
        &relay,
        &worker,
        Method::DELETE,
        &format!("/v1/teams/{team}/devices/{}", lead.id),
        None,
    )
    .await;
    assert_eq!(refused.code(), "not_lead");
    let revoked = send(&relay, &lead, Method::DELETE, &revoke_path, None).await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.json);
    let refused = send(&relay, &worker, Method::GET, &devices_path, None).await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::UNAUTHORIZED, "revoked")
    );
    let missing = send(
        &relay,
        &lead,
        Method::DELETE,
        &format!("/v1/teams/{team}/devices/{}", newcomer.id),
        None,
    )
    .await;
    assert_eq!(
        (missing.status, missing.code()),
        (StatusCode::NOT_FOUND, "not_found")
    );
}

#[tokio::test]
async fn push_and_pull_in_pages() {
    let relay = Relay::start();
    let (team, lead) = new_team(&relay).await;
    let worker = add_device(&relay, team, &lead, Role::Worker).await;
    let doc = RecordId::random();
    let mut expected_ids = Vec::new();
    for batch in [10usize, 10, 5] {
        let envs: Vec<_> = (0..batch)
            .map(|_| worker.envelope(team, doc, EnvelopeKind::Change, 0))
            .collect();
        expected_ids.extend(envs.iter().map(|e| e.id.to_string()));
        let answer = push(&relay, &worker, team, &envs).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
        assert_eq!(answer.json["results"].as_array().unwrap().len(), batch);
    }
    let mut after = 0;
    let mut pages = Vec::new();
    let mut ids = Vec::new();
    loop {
        let page = pull(&relay, &lead, team, after, Some(10)).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.json);
        assert_eq!(page.json["head"], 25);
        let s = seqs(&page);
        ids.extend(
            page.json["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["envelope"]["id"].as_str().unwrap().to_string()),
        );
        pages.push((s.clone(), page.json["more"].as_bool().unwrap()));
        if !page.json["more"].as_bool().unwrap() {
            break;
        }
        after = *s.last().unwrap();
    }
    assert_eq!(pages.len(), 3);
    assert_eq!(pages[0].0, (1..=10).collect::<Vec<_>>());
    assert_eq!(pages[2].0, (21..=25).collect::<Vec<_>>());
    assert_eq!([pages[0].1, pages[1].1, pages[2].1], [true, true, false]);
    assert_eq!(ids, expected_ids);

    // Default limit, and a cursor at the head.
    let all = pull(&relay, &lead, team, 0, None).await;
    assert_eq!(seqs(&all).len(), 25);
    let empty = pull(&relay, &lead, team, 25, None).await;
    assert_eq!(
        (seqs(&empty).len(), empty.json["more"].as_bool()),
        (0, Some(false))
    );
    let bad = pull(&relay, &lead, team, 0, Some(0)).await;
    assert_eq!(bad.code(), "bad_request");
}

#[tokio::test]
async fn push_is_idempotent() {
    let relay = Relay::start();
    let (team, lead) = new_team(&relay).await;
    let envs: Vec<_> = (0..3)
        .map(|_| lead.envelope(team, RecordId::random(), EnvelopeKind::Change, 0))
        .collect();
    let first = push(&relay, &lead, team, &envs).await;
    let second = push(&relay, &lead, team, &envs).await;
    assert_eq!(second.status, StatusCode::OK);
    let results = |a: &Answer| -> Vec<(u64, bool)> {
        a.json["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["seq"].as_u64().unwrap(),
                    r["duplicate"].as_bool().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(results(&first), [(1, false), (2, false), (3, false)]);
    assert_eq!(results(&second), [(1, true), (2, true), (3, true)]);
    let page = pull(&relay, &lead, team, 0, None).await;
    assert_eq!(seqs(&page), [1, 2, 3]);
    assert_eq!(page.json["head"], 3);
}

#[tokio::test]
async fn one_bad_envelope_refuses_the_batch() {
    let relay = Relay::start();
    let (team, lead) = new_team(&relay).await;
    let worker = add_device(&relay, team, &lead, Role::Worker).await;
    let doc = RecordId::random();
    let mut envs: Vec<_> = (0..3)
        .map(|_| worker.envelope(team, doc, EnvelopeKind::Change, 0))
        .collect();
    envs[1].ciphertext[0] ^= 1;
    let answer = push(&relay, &worker, team, &envs).await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::UNAUTHORIZED, "bad_signature")
    );

    // An envelope written by someone else than the authenticated device.
    let by_lead = lead.envelope(team, doc, EnvelopeKind::Change, 0);
    let answer = push(
        &relay,
        &worker,
        team,
        &[worker.envelope(team, doc, EnvelopeKind::Change, 0), by_lead],
    )
    .await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::BAD_REQUEST, "bad_envelope")
    );

    // An envelope of another team.
    let answer = push(
        &relay,
        &worker,
        team,
        &[worker.envelope(TeamId::random(), doc, EnvelopeKind::Change, 0)],
    )
    .await;
    assert_eq!(answer.code(), "bad_envelope");

    // An unknown version.
    let mut future = worker.envelope(team, doc, EnvelopeKind::Change, 0);
    future.v = 2;
    future.sign(&worker.key);
    let answer = push(&relay, &worker, team, &[future]).await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::BAD_REQUEST, "unsupported_version")
    );

    // Only leads erase.
    let answer = push(
        &relay,
        &worker,
        team,
        &[worker.envelope(team, doc, EnvelopeKind::Tombstone, 0)],
    )
    .await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::FORBIDDEN, "not_lead")
    );

    let page = pull(&relay, &lead, team, 0, None).await;
    assert_eq!(seqs(&page), Vec::<u64>::new());
    assert_eq!(page.json["head"], 0);
}

#[tokio::test]
async fn teams_are_isolated() {
    let relay = Relay::start();
    let (team_a, lead_a) = new_team(&relay).await;
    let (team_b, lead_b) = new_team(&relay).await;
    push(
        &relay,
        &lead_b,
        team_b,
        &[lead_b.envelope(team_b, RecordId::random(), EnvelopeKind::Change, 0)],
    )
    .await;
    let answer = pull(&relay, &lead_a, team_b, 0, None).await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::FORBIDDEN, "wrong_team")
    );
    let answer = push(
        &relay,
        &lead_a,
        team_b,
        &[lead_a.envelope(team_b, RecordId::random(), EnvelopeKind::Change, 0)],
    )
    .await;
    assert_eq!(answer.code(), "wrong_team");
    let stranger = Device::new(Role::Lead);
    let answer = pull(&relay, &stranger, team_a, 0, None).await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::UNAUTHORIZED, "unknown_device")
    );
    let answer = pull(&relay, &lead_b, team_b, 0, None).await;
    assert_eq!(seqs(&answer), [1]);
}

#[tokio::test]
async fn request_authentication() {
    let relay = Relay::start();
    let (team, lead) = new_team(&relay).await;
    let path = format!("/v1/teams/{team}/pull?after=0");

    let unsigned = send_raw(&relay, Method::GET, &path, Vec::new(), None).await;
    assert_eq!(
        (unsigned.status, unsigned.code()),
        (StatusCode::UNAUTHORIZED, "unauthenticated")
    );
    let garbage = send_raw(
        &relay,
        Method::GET,
        &path,
        Vec::new(),
        Some("Bearer x".into()),
    )
    .await;
    assert_eq!(garbage.code(), "unauthenticated");

    // Signed for another path.
    let auth = lead.auth("GET", &format!("/v1/teams/{team}/pull?after=1"), b"");
    let wrong = send_raw(&relay, Method::GET, &path, Vec::new(), Some(auth)).await;
    assert_eq!(
        (wrong.status, wrong.code()),
        (StatusCode::UNAUTHORIZED, "bad_signature")
    );

    // The same header twice.
    let auth = lead.auth("GET", &path, b"");
    let first = send_raw(&relay, Method::GET, &path, Vec::new(), Some(auth.clone())).await;
    assert_eq!(first.status, StatusCode::OK);
    let replay = send_raw(&relay, Method::GET, &path, Vec::new(), Some(auth)).await;
    assert_eq!(
        (replay.status, replay.code()),
        (StatusCode::UNAUTHORIZED, "replayed")
    );

    // A clock six minutes behind.
    let skewed = lead.auth_at("GET", &path, b"", now_ms() - 360_000, nonce());
    let answer = send_raw(&relay, Method::GET, &path, Vec::new(), Some(skewed)).await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::UNAUTHORIZED, "clock_skew")
    );
    let server_time = answer.json["server_time"].as_i64().unwrap();
    assert!((server_time - now_ms()).abs() < 60_000);

    // Absurd timestamps do not upset the arithmetic.
    for ts in [i64::MIN, i64::MAX] {
        let auth = lead.auth_at("GET", &path, b"", ts, nonce());
        let answer = send_raw(&relay, Method::GET, &path, Vec::new(), Some(auth)).await;
        assert_eq!(answer.code(), "clock_skew");
    }

    // Within the window, but older than the relay's start.
    let stale = lead.auth_at("GET", &path, b"", relay.started - 1_000, nonce());
    let answer = send_raw(&relay, Method::GET, &path, Vec::new(), Some(stale)).await;
    assert_eq!(answer.code(), "clock_skew");
}

#[tokio::test]
async fn size_limits() {
    let relay = Relay::start();
    let (team, lead) = new_team(&relay).await;
    let doc = RecordId::random();
    let path = format!("/v1/teams/{team}/push");

    // One envelope over 1 MiB of ciphertext.
    let mut big = lead.envelope(team, doc, EnvelopeKind::Change, 0);
    big.ciphertext = vec![7; MAX_CIPHERTEXT_BYTES + 1];
    big.sign(&lead.key);
    let answer = push(&relay, &lead, team, &[big]).await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::PAYLOAD_TOO_LARGE, "too_large")
    );

    // More than 500 envelopes.
    let many: Vec<_> = (0..501)
        .map(|_| lead.envelope(team, doc, EnvelopeKind::Change, 0))
        .collect();
    let answer = push(&relay, &lead, team, &many).await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::PAYLOAD_TOO_LARGE, "too_large")
    );

    // A body over 8 MiB.
    let body = vec![b' '; MAX_BODY_BYTES + 1];
    let auth = lead.auth("POST", &path, &body);
    let answer = send_raw(&relay, Method::POST, &path, body, Some(auth)).await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::PAYLOAD_TOO_LARGE, "too_large")
    );

    let page = pull(&relay, &lead, team, 0, None).await;
    assert_eq!(page.json["head"], 0);
}

#[tokio::test]
async fn rate_limit() {
    let relay = Relay::start_with(&["--rate-limit-per-sec", "0.01", "--rate-limit-burst", "3"]);
    let (team, lead) = new_team(&relay).await; // spends one token
    let mut statuses = Vec::new();
    let mut last = None;
    for _ in 0..3 {
        let answer = pull(&relay, &lead, team, 0, None).await;
        statuses.push(answer.status);
        last = Some(answer);
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    let last = last.unwrap();
    assert_eq!(last.code(), "rate_limited");
    assert!(last.json["retry_after_ms"].as_u64().unwrap() > 0);
    // Another device has its own bucket.
    let (other_team, other_lead) = new_team(&relay).await;
    assert_eq!(
        pull(&relay, &other_lead, other_team, 0, None).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn snapshot_compacts_the_log() {
    let relay = Relay::start();
    let (team, lead) = new_team(&relay).await;
    let (a, b) = (RecordId::random(), RecordId::random());
    let envs = vec![
        lead.envelope(team, a, EnvelopeKind::Change, 0), // 1
        lead.envelope(team, a, EnvelopeKind::Change, 0), // 2
        lead.envelope(team, b, EnvelopeKind::Change, 0), // 3
        lead.envelope(team, a, EnvelopeKind::Change, 0), // 4
        lead.envelope(team, a, EnvelopeKind::Change, 0), // 5
    ];
    assert_eq!(
        push(&relay, &lead, team, &envs).await.status,
        StatusCode::OK
    );
    let path = format!("/v1/teams/{team}/snapshot");

    let too_far = lead.envelope(team, a, EnvelopeKind::Snapshot, 6);
    let answer = send(
        &relay,
        &lead,
        Method::POST,
        &path,
        Some(&serde_json::to_value(&too_far).unwrap()),
    )
    .await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::BAD_REQUEST, "bad_request")
    );
    let not_snapshot = lead.envelope(team, a, EnvelopeKind::Change, 0);
    let answer = send(
        &relay,
        &lead,
        Method::POST,
        &path,
        Some(&serde_json::to_value(&not_snapshot).unwrap()),
    )
    .await;
    assert_eq!(answer.code(), "bad_envelope");

    let snap = lead.envelope(team, a, EnvelopeKind::Snapshot, 4);
    let answer = send(
        &relay,
        &lead,
        Method::POST,
        &path,
        Some(&serde_json::to_value(&snap).unwrap()),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(answer.json, json!({ "seq": 6, "dropped": 3 }));

    // A fresh device bootstraps from 0: the other record, the tail, the snapshot.
    let fresh = add_device(&relay, team, &lead, Role::Worker).await;
    let page = pull(&relay, &fresh, team, 0, None).await;
    assert_eq!(seqs(&page), [3, 5, 6]);
    assert_eq!(page.json["entries"][2]["envelope"]["kind"], "snapshot");
    assert_eq!(page.json["entries"][2]["envelope"]["covers"], 4);

    // Erasure: a lead's tombstone leaves only the tombstone of the record.
    let answer = push(
        &relay,
        &lead,
        team,
        &[lead.envelope(team, a, EnvelopeKind::Tombstone, 0)],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    let page = pull(&relay, &fresh, team, 0, None).await;
    assert_eq!(seqs(&page), [3, 7]);
}

#[tokio::test]
async fn live_socket_announces_new_heads() {
    let relay = Relay::start();
    let (team, lead) = new_team(&relay).await;
    let path = format!("/v1/teams/{team}/live");

    // A plain GET is not an upgrade.
    let plain = send(&relay, &lead, Method::GET, &path, None).await;
    assert_eq!(
        (plain.status, plain.code()),
        (StatusCode::BAD_REQUEST, "bad_request")
    );

    // An unsigned handshake is refused.
    let request = format!("ws://{}{}", relay.addr, path)
        .into_client_request()
        .unwrap();
    assert!(tokio_tungstenite::connect_async(request).await.is_err());

    let mut request = format!("ws://{}{}", relay.addr, path)
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "authorization",
        lead.auth("GET", &path, b"").parse().unwrap(),
    );
    let (mut socket, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
        .await
        .unwrap()
        .unwrap();

    assert_eq!(next_head(&mut socket).await, 0);

    let doc = RecordId::random();
    push(
        &relay,
        &lead,
        team,
        &[
            lead.envelope(team, doc, EnvelopeKind::Change, 0),
            lead.envelope(team, doc, EnvelopeKind::Change, 0),
        ],
    )
    .await;
    assert_eq!(next_head(&mut socket).await, 2);
    push(
        &relay,
        &lead,
        team,
        &[lead.envelope(team, doc, EnvelopeKind::Change, 0)],
    )
    .await;
    assert_eq!(next_head(&mut socket).await, 3);

    let metrics = http()
        .get(relay.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("streetsync_relay_devices_online 1"),
        "{metrics}"
    );
    socket.close(None).await.unwrap();
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next `{"head": N}` frame of a live socket (bounded wait).
async fn next_head(socket: &mut Socket) -> u64 {
    let fut = async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(text))) => {
                    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                    return v["head"].as_u64().unwrap();
                }
                Some(Ok(_)) => continue,
                other => panic!("socket ended: {other:?}"),
            }
        }
    };
    tokio::time::timeout(WAIT, fut)
        .await
        .expect("no head update in time")
}

#[tokio::test]
async fn log_survives_sigkill() {
    let mut relay = Relay::start();
    let (team, lead) = new_team(&relay).await;
    let doc = RecordId::random();
    let envs: Vec<_> = (0..4)
        .map(|_| lead.envelope(team, doc, EnvelopeKind::Change, 0))
        .collect();
    assert_eq!(
        push(&relay, &lead, team, &envs).await.status,
        StatusCode::OK
    );

    relay.kill_and_restart();

    let page = pull(&relay, &lead, team, 0, None).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.json);
    assert_eq!(seqs(&page), [1, 2, 3, 4]);
    // Idempotency and numbering carry across the restart.
    let again = push(&relay, &lead, team, &envs[..1]).await;
    assert_eq!(again.json["results"][0]["duplicate"], true);
    let next = push(
        &relay,
        &lead,
        team,
        &[lead.envelope(team, doc, EnvelopeKind::Change, 0)],
    )
    .await;
    assert_eq!(next.json["results"][0]["seq"], 5);
}

/// Concurrent pushes are committed in shared transactions (group commit): each must still be
/// acknowledged only once durable, get its own sequence numbers, and a refused one must not take
/// the others of its group with it.
#[tokio::test]
async fn concurrent_pushes_are_durable_and_numbered_once() {
    let mut relay = Relay::start();
    let (team, lead) = new_team(&relay).await;
    let mut devices = vec![lead];
    for _ in 0..7 {
        devices.push(add_device(&relay, team, &devices[0], Role::Worker).await);
    }
    let mut batches = Vec::new();
    for device in &devices {
        for k in 0..10 {
            // Every tenth batch carries a snapshot that covers more than the log holds, which the
            // storage refuses (400) inside the shared transaction.
            let covers = if k == 9 { 1_000_000 } else { 0 };
            let kind = if k == 9 {
                EnvelopeKind::Snapshot
            } else {
                EnvelopeKind::Change
            };
            let envs: Vec<_> = (0..3)
                .map(|_| device.envelope(team, RecordId::random(), kind, covers))
                .collect();
            batches.push((device, envs));
        }
    }
    let answers = futures_util::future::join_all(
        batches
            .iter()
            .map(|(device, envs)| push(&relay, device, team, envs)),
    )
    .await;
    let mut acked = std::collections::HashMap::new();
    for ((_, envs), answer) in batches.iter().zip(&answers) {
        if envs[0].kind == EnvelopeKind::Snapshot {
            assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.json);
            continue;
        }
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
        for (env, result) in envs.iter().zip(answer.json["results"].as_array().unwrap()) {
            assert_eq!(result["duplicate"], false);
            acked.insert(env.id.to_string(), result["seq"].as_u64().unwrap());
        }
    }
    assert_eq!(acked.len(), 8 * 9 * 3);

    // Acknowledged means on disk: SIGKILL right after the answers loses nothing.
    relay.kill_and_restart();
    let page = pull(&relay, &devices[0], team, 0, Some(1000)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.json);
    assert_eq!(seqs(&page), (1..=acked.len() as u64).collect::<Vec<_>>());
    assert_eq!(page.json["head"], acked.len() as u64);
    for entry in page.json["entries"].as_array().unwrap() {
        let id = entry["envelope"]["id"].as_str().unwrap();
        assert_eq!(acked.get(id), entry["seq"].as_u64().as_ref(), "{id}");
    }
}

#[tokio::test]
async fn sigterm_closes_sockets_and_exits_zero() {
    let mut relay = Relay::start();
    let (team, lead) = new_team(&relay).await;
    let path = format!("/v1/teams/{team}/live");
    let mut request = format!("ws://{}{}", relay.addr, path)
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "authorization",
        lead.auth("GET", &path, b"").parse().unwrap(),
    );
    let (mut socket, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
        .await
        .unwrap()
        .unwrap();
    let first = tokio::time::timeout(WAIT, socket.next()).await.unwrap();
    assert!(matches!(first, Some(Ok(Message::Text(_)))));

    relay.terminate();
    let closed = tokio::time::timeout(WAIT, async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the socket was not closed");
    drop(socket);
    let status = tokio::task::spawn_blocking(move || relay.wait_exit())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn bundles_reach_only_their_addressee() {
    let relay = Relay::start();
    let (team, lead) = new_team(&relay).await;
    let worker = add_device(&relay, team, &lead, Role::Worker).await;
    let path = format!("/v1/teams/{team}/bundles");
    let body = json!({ "to": worker.id, "blob": "c2VhbGVk" });
    let posted = send(&relay, &lead, Method::POST, &path, Some(&body)).await;
    assert_eq!(posted.status, StatusCode::CREATED, "{}", posted.json);
    let id = posted.json["id"].as_u64().unwrap();

    let mine = send(&relay, &worker, Method::GET, &path, None).await;
    assert_eq!(
        mine.json,
        json!({ "bundles": [{ "id": id, "from": lead.id, "blob": "c2VhbGVk" }], "more": false })
    );
    let not_mine = send(&relay, &lead, Method::GET, &path, None).await;
    assert_eq!(not_mine.json, json!({ "bundles": [], "more": false }));

    let refused = send(&relay, &lead, Method::DELETE, &format!("{path}/{id}"), None).await;
    assert_eq!(refused.code(), "not_found");
    let deleted = send(
        &relay,
        &worker,
        Method::DELETE,
        &format!("{path}/{id}"),
        None,
    )
    .await;
    assert_eq!(deleted.status, StatusCode::OK);
    let mine = send(&relay, &worker, Method::GET, &path, None).await;
    assert_eq!(mine.json, json!({ "bundles": [], "more": false }));

    let stranger = Device::new(Role::Worker);
    let answer = send(
        &relay,
        &lead,
        Method::POST,
        &path,
        Some(&json!({ "to": stranger.id, "blob": "" })),
    )
    .await;
    assert_eq!(answer.code(), "not_found");
}

#[tokio::test]
async fn health_and_metrics() {
    let relay = Relay::start();
    let health = http().get(relay.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(health.text().await.unwrap(), "ok");

    let (team, lead) = new_team(&relay).await;
    push(
        &relay,
        &lead,
        team,
        &[lead.envelope(team, RecordId::random(), EnvelopeKind::Change, 0)],
    )
    .await;
    send_raw(
        &relay,
        Method::GET,
        &format!("/v1/teams/{team}/pull"),
        Vec::new(),
        None,
    )
    .await;

    let metrics = http()
        .get(relay.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "streetsync_relay_envelopes_stored_total 1",
        r#"streetsync_relay_http_requests_total{route="/v1/teams/{team}/push",method="POST",status="200"} 1"#,
        r#"streetsync_relay_errors_total{code="unauthenticated"} 1"#,
        "streetsync_relay_devices_online 0",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
    }
    assert!(
        !metrics.contains(&team.to_string()),
        "metrics must not carry ids"
    );
}

/// Opens `device`'s live socket of `team` with a signed handshake (bounded wait).
async fn connect_live(
    relay: &Relay,
    device: &Device,
    team: TeamId,
) -> Result<Socket, tokio_tungstenite::tungstenite::Error> {
    let path = format!("/v1/teams/{team}/live");
    let mut request = format!("ws://{}{}", relay.addr, path)
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "authorization",
        device.auth("GET", &path, b"").parse().unwrap(),
    );
    tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
        .await
        .expect("no handshake answer in time")
        .map(|(socket, _)| socket)
}

/// Reads the socket until it ends; the close frame's code if the relay sent one. Panics if the
/// socket is still open after [`WAIT`].
async fn until_closed(socket: &mut Socket) -> Option<u16> {
    tokio::time::timeout(WAIT, async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                None | Some(Err(_)) => return None,
                Some(Ok(_)) => {}
            }
        }
    })
    .await
    .expect("the socket was still open")
}

#[tokio::test]
async fn redeem_stores_the_confirmation_and_the_list_returns_it() {
    let relay = Relay::start();
    let (team, lead) = new_team(&relay).await;
    let (created, invite) = create_invite(&relay, team, &lead, Role::Worker).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.json);

    // Open: neither a redeemer nor a confirmation (and the field is absent from the JSON).
    let open = list_invites(&relay, team, &lead).await;
    assert_eq!(open.len(), 1);
    assert_eq!((open[0].id, open[0].role), (invite.id, Role::Worker));
    assert_eq!((&open[0].redeemed_by, open[0].confirm), (&None, None));
    let raw = send(
        &relay,
        &lead,
        Method::GET,
        &format!("/v1/teams/{team}/invites"),
        None,
    )
    .await;
    assert!(
        raw.json["invites"][0].get("confirm").is_none(),
        "{}",
        raw.json
    );

    // Redeemed: the joiner's keys (with the invite's role, whatever it claimed) and exactly the
    // confirmation it posted, byte for byte.
    let mut joiner = Device::new(Role::Lead);
    let confirm: [u8; 32] = std::array::from_fn(|i| i as u8 ^ 0xa5);
    let redeemed = redeem(&relay, &invite, &joiner, confirm).await;
    assert_eq!(redeemed.status, StatusCode::OK, "{}", redeemed.json);
    assert_eq!(redeemed.json["team"], json!(team));
    let listed = list_invites(&relay, team, &lead).await;
    assert_eq!(listed.len(), 1);
    joiner.role = Role::Worker;
    assert_eq!(listed[0].redeemed_by, Some(joiner.keys()));
    assert_eq!(listed[0].confirm, Some(confirm));

    // A second redemption changes neither.
    let again = redeem(&relay, &invite, &Device::new(Role::Worker), [1; 32]).await;
    assert_eq!(
        (again.status, again.code()),
        (StatusCode::CONFLICT, "invite_used")
    );
    let listed = list_invites(&relay, team, &lead).await;
    assert_eq!(listed[0].confirm, Some(confirm));
    assert_eq!(listed[0].redeemed_by, Some(joiner.keys()));
}

#[tokio::test]
async fn leads_cancel_open_invites() {
    let relay = Relay::start();
    let (team, lead) = new_team(&relay).await;
    let worker = add_device(&relay, team, &lead, Role::Worker).await;
    let (other_team, other_lead) = new_team(&relay).await;
    let (_, invite) = create_invite(&relay, team, &lead, Role::Worker).await;
    let (_, kept) = create_invite(&relay, team, &lead, Role::Worker).await;
    let (_, foreign) = create_invite(&relay, other_team, &other_lead, Role::Worker).await;

    // A worker may not; the invite stays.
    let refused = cancel_invite(&relay, team, &worker, &invite.id.to_string()).await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::FORBIDDEN, "not_lead")
    );
    // Unknown ids, and another team's invite, are not found here; a malformed id is a bad request.
    let unknown = cancel_invite(&relay, team, &lead, &InviteId::random().to_string()).await;
    assert_eq!(
        (unknown.status, unknown.code()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let elsewhere = cancel_invite(&relay, team, &lead, &foreign.id.to_string()).await;
    assert_eq!(
        (elsewhere.status, elsewhere.code()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let malformed = cancel_invite(&relay, team, &lead, "not-an-id").await;
    assert_eq!(
        (malformed.status, malformed.code()),
        (StatusCode::BAD_REQUEST, "bad_request")
    );
    assert_eq!(list_invites(&relay, team, &lead).await.len(), 2);

    // A lead may: the invite is gone from the list and no longer redeems.
    let cancelled = cancel_invite(&relay, team, &lead, &invite.id.to_string()).await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.json);
    let left: Vec<_> = list_invites(&relay, team, &lead)
        .await
        .iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(left, [kept.id]);
    let joiner = Device::new(Role::Worker);
    let late = redeem(&relay, &invite, &joiner, [3; 32]).await;
    assert_eq!(
        (late.status, late.code()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let devices = send(
        &relay,
        &lead,
        Method::GET,
        &format!("/v1/teams/{team}/devices"),
        None,
    )
    .await;
    assert_eq!(devices.json["devices"].as_array().unwrap().len(), 2);
    let twice = cancel_invite(&relay, team, &lead, &invite.id.to_string()).await;
    assert_eq!(twice.code(), "not_found");

    // A redeemed invite is the record of who joined: it is not cancelled.
    assert_eq!(
        redeem(&relay, &kept, &joiner, [4; 32]).await.status,
        StatusCode::OK
    );
    let used = cancel_invite(&relay, team, &lead, &kept.id.to_string()).await;
    assert_eq!(
        (used.status, used.code()),
        (StatusCode::CONFLICT, "invite_used")
    );
    assert_eq!(
        list_invites(&relay, team, &lead).await[0].confirm,
        Some([4; 32])
    );
    // The other team's invite was never touched.
    assert_eq!(list_invites(&relay, other_team, &other_lead).await.len(), 1);
}

#[tokio::test]
async fn revocation_cancels_the_open_invites_the_device_created() {
    let relay = Relay::start();
    let (team, founder) = new_team(&relay).await;
    let second = add_device(&relay, team, &founder, Role::Lead).await;
    let (_, open_lead_invite) = create_invite(&relay, team, &second, Role::Lead).await;
    let (_, open_worker_invite) = create_invite(&relay, team, &second, Role::Worker).await;
    let (_, redeemed) = create_invite(&relay, team, &second, Role::Worker).await;
    let (_, founders) = create_invite(&relay, team, &founder, Role::Worker).await;
    let joined = Device::new(Role::Worker);
    assert_eq!(
        redeem(&relay, &redeemed, &joined, [5; 32]).await.status,
        StatusCode::OK
    );
    assert_eq!(list_invites(&relay, team, &founder).await.len(), 4);

    let revoked = send(
        &relay,
        &founder,
        Method::DELETE,
        &format!("/v1/teams/{team}/devices/{}", second.id),
        None,
    )
    .await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.json);

    // The revoked lead's open invites are gone; its redeemed one and the founder's stay.
    let left = list_invites(&relay, team, &founder).await;
    let ids: Vec<_> = left.iter().map(|i| i.id).collect();
    assert_eq!(ids, [redeemed.id, founders.id]);
    assert_eq!(left[0].confirm, Some([5; 32]));
    for gone in [&open_lead_invite, &open_worker_invite] {
        let late = redeem(&relay, gone, &Device::new(Role::Worker), [6; 32]).await;
        assert_eq!(
            (late.status, late.code()),
            (StatusCode::NOT_FOUND, "not_found")
        );
    }
    // The founder's invite still works, and the revoked lead can make no new one.
    let newcomer = Device::new(Role::Worker);
    assert_eq!(
        redeem(&relay, &founders, &newcomer, [7; 32]).await.status,
        StatusCode::OK
    );
    let (refused, _) = create_invite(&relay, team, &second, Role::Lead).await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::UNAUTHORIZED, "revoked")
    );
    // The revoked devices' state survives a restart: the invites stay gone.
    let mut relay = relay;
    relay.kill_and_restart();
    let ids: Vec<_> = list_invites(&relay, team, &founder)
        .await
        .iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(ids, [redeemed.id, founders.id]);
}

#[tokio::test]
async fn revocation_closes_the_devices_live_socket() {
    let relay = Relay::start();
    let (team, lead) = new_team(&relay).await;
    let worker = add_device(&relay, team, &lead, Role::Worker).await;
    let bystander = add_device(&relay, team, &lead, Role::Worker).await;
    // The same device id in another team is another membership; its socket there stays.
    let (other_team, other_lead) = new_team(&relay).await;
    let added = send(
        &relay,
        &other_lead,
        Method::POST,
        &format!("/v1/teams/{other_team}/devices"),
        Some(&serde_json::to_value(worker.keys()).unwrap()),
    )
    .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.json);

    let mut doomed = [
        connect_live(&relay, &worker, team).await.unwrap(),
        connect_live(&relay, &worker, team).await.unwrap(),
    ];
    let mut elsewhere = connect_live(&relay, &worker, other_team).await.unwrap();
    let mut watching = connect_live(&relay, &bystander, team).await.unwrap();
    for socket in doomed.iter_mut().chain([&mut elsewhere, &mut watching]) {
        assert_eq!(next_head(socket).await, 0);
    }

    let revoked = send(
        &relay,
        &lead,
        Method::DELETE,
        &format!("/v1/teams/{team}/devices/{}", worker.id),
        None,
    )
    .await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.json);

    // Both of the revoked device's sockets close, with 1008 (policy), not at its next request.
    for socket in &mut doomed {
        assert_eq!(until_closed(socket).await, Some(1008));
    }
    // Everyone else's sockets keep working.
    let doc = RecordId::random();
    let pushed = push(
        &relay,
        &lead,
        team,
        &[lead.envelope(team, doc, EnvelopeKind::Change, 0)],
    )
    .await;
    assert_eq!(pushed.status, StatusCode::OK, "{}", pushed.json);
    assert_eq!(next_head(&mut watching).await, 1);
    let pushed = push(
        &relay,
        &other_lead,
        other_team,
        &[other_lead.envelope(other_team, doc, EnvelopeKind::Change, 0)],
    )
    .await;
    assert_eq!(pushed.status, StatusCode::OK, "{}", pushed.json);
    assert_eq!(next_head(&mut elsewhere).await, 1);
    // And the revoked device cannot open a new one.
    assert!(connect_live(&relay, &worker, team).await.is_err());
}

#[tokio::test]
async fn a_workers_tombstone_refuses_its_whole_batch() {
    let relay = Relay::start();
    let (team, lead) = new_team(&relay).await;
    let worker = add_device(&relay, team, &lead, Role::Worker).await;
    let (doc, other) = (RecordId::random(), RecordId::random());
    let change = worker.envelope(team, doc, EnvelopeKind::Change, 0);
    let edit = worker.envelope(team, other, EnvelopeKind::Change, 0);
    let tombstone = worker.envelope(team, doc, EnvelopeKind::Tombstone, 0);

    // The tombstone after a valid change, and before one: nothing of either batch is appended.
    for batch in [
        vec![change.clone(), tombstone.clone()],
        vec![tombstone.clone(), edit.clone()],
    ] {
        let answer = push(&relay, &worker, team, &batch).await;
        assert_eq!(
            (answer.status, answer.code()),
            (StatusCode::FORBIDDEN, "not_lead")
        );
    }
    let page = pull(&relay, &lead, team, 0, None).await;
    assert_eq!(seqs(&page), Vec::<u64>::new());
    assert_eq!(page.json["head"], 0);

    // The record is not erased: the worker's changes are stored as new, not "duplicated away".
    let answer = push(&relay, &worker, team, &[change.clone(), edit.clone()]).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    let results = answer.json["results"].as_array().unwrap();
    assert!(
        results.iter().all(|r| r["duplicate"] == false),
        "{}",
        answer.json
    );
    let later = push(
        &relay,
        &worker,
        team,
        &[worker.envelope(team, doc, EnvelopeKind::Change, 0)],
    )
    .await;
    assert_eq!(
        later.json["results"][0]["duplicate"], false,
        "{}",
        later.json
    );
    assert_eq!(seqs(&pull(&relay, &lead, team, 0, None).await), [1, 2, 3]);

    // A lead's tombstone of the same record is accepted.
    let erased = push(
        &relay,
        &lead,
        team,
        &[lead.envelope(team, doc, EnvelopeKind::Tombstone, 0)],
    )
    .await;
    assert_eq!(erased.status, StatusCode::OK, "{}", erased.json);
    assert_eq!(erased.json["results"][0]["seq"], 4);
}
