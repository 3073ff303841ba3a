//! Several real relay processes on one PostgreSQL database (issue 16, ADR 0011): gap-free
//! numbering under concurrent pushes through three instances, live delivery across instances,
//! nonces and revocations that count on every instance, SIGKILL of one instance, the database
//! lost and back, an unreachable database at start, and the private metrics listener.
//!
//! The database comes from `STREETSYNC_TEST_DATABASE_URL` (tests/postgres/cluster.sh, started by
//! tests/run-all.sh); each test creates its own. A missing URL fails, never skips.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::*;
use futures_util::StreamExt as _;
use reqwest::{Method, StatusCode};
use streetsync_wire::{EnvelopeKind, RecordId, Role, TeamId};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn cluster_url() -> String {
    std::env::var("STREETSYNC_TEST_DATABASE_URL").unwrap_or_else(|_| {
        panic!(
            "STREETSYNC_TEST_DATABASE_URL is not set: these tests need PostgreSQL. Start one with \
             `tests/postgres/cluster.sh start DIR` and export the URL it prints \
             (tests/run-all.sh does both)"
        )
    })
}

fn with_dbname(url: &str, db: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let (server, _) = base.rsplit_once('/').unwrap();
    if query.is_empty() {
        format!("{server}/{db}")
    } else {
        format!("{server}/{db}?{query}")
    }
}

/// A new, empty database on the cluster at `url`; its URL.
async fn fresh_database(url: &str) -> String {
    let db = format!("instances_{}", hex::encode(TeamId::random().as_bytes()));
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot reach the test cluster at {url}: {e}"));
    tokio::spawn(conn);
    client
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await
        .unwrap();
    with_dbname(url, &db)
}

/// `n` relay instances on one fresh database.
async fn instances(n: usize) -> (String, Vec<Relay>) {
    let url = fresh_database(&cluster_url()).await;
    let relays = (0..n)
        .map(|_| Relay::start_with(&["--database-url", &url]))
        .collect();
    (url, relays)
}

async fn connect_live(relay: &Relay, device: &Device, team: TeamId) -> Socket {
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
        .unwrap()
        .0
}

/// The next head a live socket announces (bounded wait).
async fn next_head(socket: &mut Socket) -> u64 {
    tokio::time::timeout(WAIT, async {
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
    })
    .await
    .expect("no head update in time")
}

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

/// Every `(envelope id, seq)` of the team's log, read through `relay`.
async fn log_of(relay: &Relay, device: &Device, team: TeamId) -> Vec<(String, u64)> {
    let page = pull(relay, device, team, 0, Some(1000)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.json);
    assert_eq!(page.json["more"], false);
    page.json["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["envelope"]["id"].as_str().unwrap().to_owned(),
                e["seq"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn three_instances_number_concurrent_pushes_without_gaps() {
    let (_url, relays) = instances(3).await;
    let (team, lead) = new_team(&relays[0]).await;
    let mut devices = vec![lead];
    for i in 0..5 {
        let by = &relays[i % 3];
        devices.push(add_device(by, team, &devices[0], Role::Worker).await);
    }
    let mut batches = Vec::new();
    for (d, device) in devices.iter().enumerate() {
        for k in 0..10 {
            let envs: Vec<_> = (0..3)
                .map(|_| device.envelope(team, RecordId::random(), EnvelopeKind::Change, 0))
                .collect();
            batches.push((&relays[(d + k) % 3], device, envs));
        }
    }
    let answers = futures_util::future::join_all(
        batches
            .iter()
            .map(|(relay, device, envs)| push(relay, device, team, envs)),
    )
    .await;
    let mut acked = HashMap::new();
    for ((_, _, envs), answer) in batches.iter().zip(&answers) {
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
        let seqs: Vec<u64> = answer.json["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["seq"].as_u64().unwrap())
            .collect();
        // One batch, one transaction: consecutive numbers.
        assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
        for (env, seq) in envs.iter().zip(seqs) {
            assert!(acked.insert(env.id.to_string(), seq).is_none());
        }
    }
    let n = acked.len() as u64;
    assert_eq!(n, 6 * 10 * 3);
    // Every instance reads the same gap-free log, each envelope at the seq it was acknowledged.
    for relay in &relays {
        let log = log_of(relay, &devices[0], team).await;
        assert_eq!(
            log.iter().map(|(_, s)| *s).collect::<Vec<_>>(),
            (1..=n).collect::<Vec<_>>()
        );
        for (id, seq) in &log {
            assert_eq!(acked.get(id), Some(seq), "{id}");
        }
    }
}

#[tokio::test]
async fn a_push_on_one_instance_reaches_a_live_socket_on_another() {
    let (_url, relays) = instances(2).await;
    let (team, lead) = new_team(&relays[0]).await;
    let worker = add_device(&relays[0], team, &lead, Role::Worker).await;
    let mut on_b = connect_live(&relays[1], &worker, team).await;
    assert_eq!(next_head(&mut on_b).await, 0);
    let doc = RecordId::random();
    let pushed = push(
        &relays[0],
        &lead,
        team,
        &[
            lead.envelope(team, doc, EnvelopeKind::Change, 0),
            lead.envelope(team, doc, EnvelopeKind::Change, 0),
        ],
    )
    .await;
    assert_eq!(pushed.status, StatusCode::OK, "{}", pushed.json);
    // Delivered through NOTIFY, not by polling: B never saw the push itself.
    assert_eq!(next_head(&mut on_b).await, 2);
    let page = pull(&relays[1], &worker, team, 0, None).await;
    assert_eq!(seqs(&page), [1, 2]);
}

#[tokio::test]
async fn a_nonce_replayed_to_another_instance_is_refused() {
    let (_url, relays) = instances(2).await;
    let (team, lead) = new_team(&relays[0]).await;
    let path = format!("/v1/teams/{team}/pull?after=0");
    let auth = lead.auth("GET", &path, b"");
    let first = send_raw(&relays[0], Method::GET, &path, vec![], Some(auth.clone())).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.json);
    for relay in [&relays[1], &relays[0]] {
        let replay = send_raw(relay, Method::GET, &path, vec![], Some(auth.clone())).await;
        assert_eq!(
            (replay.status, replay.code()),
            (StatusCode::UNAUTHORIZED, "replayed"),
            "{}",
            replay.json
        );
    }
    // Founding a team is authenticated the same way: its replay to another instance is refused
    // as a replay, not answered `team_exists`.
    let other = TeamId::random();
    let founder = Device::new(Role::Lead);
    let body = serde_json::to_vec(&serde_json::json!({ "team": other, "device": founder.keys() }))
        .unwrap();
    let auth = founder.auth("POST", "/v1/teams", &body);
    let created = send_raw(
        &relays[0],
        Method::POST,
        "/v1/teams",
        body.clone(),
        Some(auth.clone()),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.json);
    let replay = send_raw(&relays[1], Method::POST, "/v1/teams", body, Some(auth)).await;
    assert_eq!(replay.code(), "replayed", "{}", replay.json);
}

#[tokio::test]
async fn a_revocation_on_one_instance_counts_on_the_others_at_once() {
    let (url, relays) = instances(3).await;
    let (team, lead) = new_team(&relays[0]).await;
    let worker = add_device(&relays[0], team, &lead, Role::Worker).await;
    // The worker is known to B and C (a request each) and live on both.
    for relay in &relays[1..] {
        assert_eq!(
            pull(relay, &worker, team, 0, None).await.status,
            StatusCode::OK
        );
    }
    let mut on_b = connect_live(&relays[1], &worker, team).await;
    let mut on_c = connect_live(&relays[2], &worker, team).await;
    assert_eq!(next_head(&mut on_b).await, 0);
    assert_eq!(next_head(&mut on_c).await, 0);

    let revoked = send(
        &relays[0],
        &lead,
        Method::DELETE,
        &format!("/v1/teams/{team}/devices/{}", worker.id),
        None,
    )
    .await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.json);
    // The shared nonce table is filled only once a request passed the revocation check
    // (`Signed::admit`), so the revoked device's requests below add no row.
    let (db, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let worker_id = worker.id.as_bytes().to_vec();
    let nonces = || async {
        let row = db
            .query_one(
                "SELECT count(*) FROM nonces WHERE device = $1",
                &[&worker_id.as_slice()],
            )
            .await
            .unwrap();
        row.get::<_, i64>(0)
    };
    let before = nonces().await;
    assert!(before >= 2, "the worker's admitted pulls are recorded");
    // The very next request on any other instance is refused: no instance caches devices.
    for relay in &relays[1..] {
        let refused = pull(relay, &worker, team, 0, None).await;
        assert_eq!(
            (refused.status, refused.code()),
            (StatusCode::UNAUTHORIZED, "revoked"),
            "{}",
            refused.json
        );
        let env = worker.envelope(team, RecordId::random(), EnvelopeKind::Change, 0);
        assert_eq!(push(relay, &worker, team, &[env]).await.code(), "revoked");
    }
    assert_eq!(
        nonces().await,
        before,
        "refused requests leave no nonce behind"
    );
    // And its sockets there close with 1008, through the revocation's NOTIFY.
    assert_eq!(until_closed(&mut on_b).await, Some(1008));
    assert_eq!(until_closed(&mut on_c).await, Some(1008));
}

/// One instance is SIGKILLed while devices push through both: every push it acknowledged is in
/// the log; the devices retry what was not acknowledged on the other instance and converge.
#[tokio::test]
async fn sigkill_of_one_instance_during_pushes_loses_nothing_acknowledged() {
    let (_url, mut relays) = instances(2).await;
    let (team, lead) = new_team(&relays[1]).await;
    let mut devices = vec![lead];
    for _ in 0..3 {
        devices.push(add_device(&relays[1], team, &devices[0], Role::Worker).await);
    }
    let batches: Vec<_> = (0..80)
        .map(|k| {
            let device = &devices[k % devices.len()];
            let envs: Vec<_> = (0..3)
                .map(|_| device.envelope(team, RecordId::random(), EnvelopeKind::Change, 0))
                .collect();
            (k % 2, device, envs)
        })
        .collect();
    let victim_pid = relays[0].child.id();
    let (a, b) = (&relays[0], &relays[1]);
    let pushes = futures_util::future::join_all(batches.iter().enumerate().map(
        |(k, (on, device, envs))| async move {
            if k == 40 {
                // Halfway through: SIGKILL instance A, pushes to it in flight.
                Command::new("kill")
                    .args(["-KILL", &victim_pid.to_string()])
                    .status()
                    .unwrap();
            }
            let relay = if *on == 0 { a } else { b };
            let body = serde_json::json!({ "envelopes": envs });
            let body = serde_json::to_vec(&body).unwrap();
            let path = format!("/v1/teams/{team}/push");
            let auth = device.auth("POST", &path, &body);
            let resp = http()
                .post(relay.url(&path))
                .header("authorization", auth)
                .body(body)
                .send()
                .await;
            match resp {
                Ok(resp) if resp.status() == StatusCode::OK => {
                    let json: serde_json::Value = resp.json().await.unwrap();
                    Some(json)
                }
                _ => None,
            }
        },
    ))
    .await;
    relays[0].child.wait().unwrap();
    let mut acked = HashMap::new();
    let mut unacked = Vec::new();
    for ((on, device, envs), answer) in batches.iter().zip(&pushes) {
        match answer {
            Some(json) => {
                for (env, r) in envs.iter().zip(json["results"].as_array().unwrap()) {
                    acked.insert(env.id.to_string(), r["seq"].as_u64().unwrap());
                }
            }
            None => {
                assert_eq!(*on, 0, "the surviving instance refused a push");
                unacked.push((device, envs));
            }
        }
    }
    assert!(!unacked.is_empty(), "the kill came after every push to A");
    let log: HashMap<_, _> = log_of(&relays[1], &devices[0], team)
        .await
        .into_iter()
        .collect();
    for (id, seq) in &acked {
        assert_eq!(log.get(id), Some(seq), "acknowledged {id} lost");
    }
    // The devices that were on A move to B and retry: duplicates where A had committed without
    // answering, new entries otherwise; afterwards the log holds every envelope exactly once.
    for (device, envs) in unacked {
        let again = push(&relays[1], device, team, envs).await;
        assert_eq!(again.status, StatusCode::OK, "{}", again.json);
    }
    let log = log_of(&relays[1], &devices[0], team).await;
    let n = batches.len() as u64 * 3;
    assert_eq!(
        log.iter().map(|(_, s)| *s).collect::<Vec<_>>(),
        (1..=n).collect::<Vec<_>>()
    );
    let ids: std::collections::HashSet<_> = log.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(ids.len() as u64, n);
    for (_, _, envs) in &batches {
        for env in envs {
            assert!(ids.contains(&env.id.to_string()));
        }
    }
}

fn cluster_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/postgres/cluster.sh")
}

fn cluster(args: &[&str]) -> String {
    let out = Command::new(cluster_script())
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "cluster.sh {args:?} failed");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Stops the private cluster however the test ends.
struct PrivateCluster(tempfile::TempDir);

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = Command::new(cluster_script())
            .args(["kill", self.0.path().to_str().unwrap()])
            .status();
    }
}

/// The database goes away under a running relay (immediate shutdown: connections cut mid-flight)
/// and comes back: requests meanwhile get 503 `storage_unavailable`, the relay recovers without a
/// restart, and the log holds exactly what was acknowledged.
#[tokio::test]
async fn database_lost_while_running_is_503_and_recovers() {
    // Its own cluster: stopping the shared one would fail the other tests.
    let dir = PrivateCluster(tempfile::tempdir().unwrap());
    let path = dir.0.path().to_str().unwrap().to_owned();
    let url = cluster(&["start", &path]);
    let relay = Relay::start_with(&["--database-url", &url]);
    let (team, lead) = new_team(&relay).await;
    let doc = RecordId::random();
    let first = push(
        &relay,
        &lead,
        team,
        &[lead.envelope(team, doc, EnvelopeKind::Change, 0)],
    )
    .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.json);

    cluster(&["kill", &path]);
    let down = push(
        &relay,
        &lead,
        team,
        &[lead.envelope(team, doc, EnvelopeKind::Change, 0)],
    )
    .await;
    assert_eq!(
        (down.status, down.code()),
        (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable"),
        "{}",
        down.json
    );
    let health = http().get(relay.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE);

    cluster(&["restart", &path]);
    // The pool reconnects on its own; the first requests may still meet connections that died.
    let mut recovered = None;
    for _ in 0..100 {
        let env = lead.envelope(team, doc, EnvelopeKind::Change, 0);
        let answer = push(&relay, &lead, team, &[env]).await;
        if answer.status == StatusCode::OK {
            recovered = Some(answer);
            break;
        }
        assert_eq!(answer.code(), "storage_unavailable", "{}", answer.json);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let recovered = recovered.expect("the relay did not recover after the database came back");
    assert_eq!(recovered.json["results"][0]["seq"], 2);
    let page = pull(&relay, &lead, team, 0, None).await;
    assert_eq!(seqs(&page), [1, 2]);
}

/// `sslmode=require`: the relay talks TLS to the database and verifies its certificate, against
/// `--database-ca` for a private CA; without it the unknown certificate stops the relay at start.
#[tokio::test]
async fn the_database_connection_uses_verified_tls_when_the_url_asks() {
    let dir = PrivateCluster(tempfile::tempdir().unwrap());
    let path = dir.0.path().to_str().unwrap().to_owned();
    let out = Command::new(cluster_script())
        .args(["start", &path])
        .env("CLUSTER_TLS", "1")
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "starting the TLS cluster failed");
    let url = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(url.ends_with("sslmode=require"), "{url}");
    let ca = dir.0.path().join("ca.pem");

    // Without the private CA: the certificate does not verify, the relay refuses to start.
    let refused = Command::new(env!("CARGO_BIN_EXE_streetsync-relay"))
        .args(["--bind", "127.0.0.1:0", "--database-url", &url])
        .env("STREETSYNC_RELAY_LOG", "off")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        !String::from_utf8_lossy(&refused.stdout).contains("listening on"),
        "started with an unverified certificate"
    );
    let why = String::from_utf8_lossy(&refused.stderr).to_lowercase();
    assert!(why.contains("certificate"), "{why}");

    let relay = Relay::start_with(&[
        "--database-url",
        &url,
        "--database-ca",
        ca.to_str().unwrap(),
    ]);
    let (team, lead) = new_team(&relay).await;
    let env = lead.envelope(team, RecordId::random(), EnvelopeKind::Change, 0);
    assert_eq!(
        push(&relay, &lead, team, &[env]).await.status,
        StatusCode::OK
    );
    // The server side agrees: the relay's connections are TLS.
    let plain = url.replace("sslmode=require", "sslmode=disable");
    let (client, conn) = tokio_postgres::connect(&plain, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let rows = client
        .query(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a ON a.pid = s.pid
             WHERE a.application_name = 'streetsync-relay'",
            &[],
        )
        .await
        .unwrap();
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|r| r.get::<_, bool>(0)));
}

#[tokio::test]
async fn an_unreachable_database_at_start_is_a_clear_error_and_a_failed_exit() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = Command::new(env!("CARGO_BIN_EXE_streetsync-relay"))
        .args(["--bind", "127.0.0.1:0", "--database-url"])
        .arg(format!("postgres://postgres@127.0.0.1:{port}/postgres"))
        .env("STREETSYNC_RELAY_LOG", "off")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("database unavailable"), "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("listening on"));
}

#[tokio::test]
async fn metrics_and_health_listen_on_a_private_address() {
    let url = fresh_database(&cluster_url()).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let private = format!("127.0.0.1:{port}");
    let relay = Relay::start_with(&["--database-url", &url, "--metrics-listen", &private]);
    let (team, lead) = new_team(&relay).await;
    assert_eq!(
        pull(&relay, &lead, team, 0, None).await.status,
        StatusCode::OK
    );
    let get = |path: &str| http().get(format!("http://{private}{path}")).send();
    let health = get("/healthz").await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains("streetsync_relay_http_requests_total"),
        "{metrics}"
    );
    // Only those two: the API is not reachable there.
    assert_eq!(
        get(&format!("/v1/teams/{team}/pull"))
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
}
