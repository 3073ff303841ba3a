//! The relay's resource limits against an attacker on 127.0.0.1 (issue 13): half-sent requests,
//! invented methods, floods of unauthenticated and revoked requests, full mailboxes, out-of-range
//! cursors and who may found a team. Every wait is bounded; memory is read from
//! `/proc/<pid>/status` and bounded, never timed.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;
use streetsync_wire::{Role, TeamId};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// `VmRSS` and `VmHWM` (peak) of a process, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Reads until the server closes the connection (EOF or reset); false if it is still open at
/// `deadline`.
async fn closed_by_server(stream: TcpStream, deadline: Instant) -> bool {
    answer_then_close(stream, deadline).await.0
}

/// Reads until the server closes the connection: whether it did before `deadline`, and what it
/// sent before closing (an answer such as a 400 or 408, or nothing).
async fn answer_then_close(mut stream: TcpStream, deadline: Instant) -> (bool, Vec<u8>) {
    let mut buf = [0u8; 4096];
    let mut got = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return (false, got),
            Ok(Ok(0)) | Ok(Err(_)) => return (true, got),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// 1,000 connections that never finish their request: 500 stop inside the header, 500 send a
/// header announcing a body and then a tenth of it. The relay must keep its memory bounded while
/// they are open and close every one of them by its timeouts, then still serve.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_requests_cost_bounded_memory_and_are_closed_by_the_timeouts() {
    let relay = Relay::start_with(&[
        "--header-timeout-ms",
        "1000",
        "--body-timeout-ms",
        "1000",
        "--request-timeout-ms",
        "3000",
        "--idle-timeout-ms",
        "2000",
        "--max-connections",
        "2000",
    ]);
    let pid = relay.child.id();
    let health = http().get(relay.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let (rss_before, _) = memory_kib(pid);

    // The body half carries a well-formed, current Authorization header, so the relay gets as
    // far as reading the body (the signature is checked once the body is in).
    let founder = Device::new(Role::Lead);
    let full_body = vec![b'a'; 1000];
    let mut streams = Vec::new();
    for n in 0..1000 {
        let mut s = TcpStream::connect(&relay.addr).await.unwrap();
        let partial = if n % 2 == 0 {
            "POST /v1/teams HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le".to_owned()
        } else {
            format!(
                "POST /v1/teams HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {}\r\n\
                 Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{}",
                founder.auth("POST", "/v1/teams", &full_body),
                "a".repeat(100)
            )
        };
        s.write_all(partial.as_bytes()).await.unwrap();
        streams.push(s);
    }
    // Give the relay a moment to read what was sent (no assertion on this time).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (rss_open, peak_open) = memory_kib(pid);

    let deadline = Instant::now() + Duration::from_secs(30);
    let results =
        futures_util::future::join_all(streams.into_iter().map(|s| answer_then_close(s, deadline)))
            .await;
    let still_open = results.iter().filter(|(closed, _)| !*closed).count();
    // A stalled header gets no answer; a stalled body gets the refusal of the request whose body
    // could not be read (the body timeout, 400) or at the latest the request timeout (408).
    let status = |got: &[u8]| {
        String::from_utf8_lossy(got)
            .chars()
            .take(12)
            .collect::<String>()
    };
    let header_half: Vec<String> = results.iter().step_by(2).map(|(_, g)| status(g)).collect();
    let body_half: Vec<String> = results
        .iter()
        .skip(1)
        .step_by(2)
        .map(|(_, g)| status(g))
        .collect();
    assert!(
        header_half
            .iter()
            .all(|s| s.is_empty() || s.starts_with("HTTP/1.1 408")),
        "{header_half:?}"
    );
    let by_body_timeout = body_half.iter().filter(|s| *s == "HTTP/1.1 400").count();
    assert!(
        body_half
            .iter()
            .all(|s| s == "HTTP/1.1 400" || s == "HTTP/1.1 408"),
        "{:?}",
        body_half
            .iter()
            .filter(|s| *s != "HTTP/1.1 400")
            .take(5)
            .collect::<Vec<_>>()
    );
    eprintln!("stalled bodies answered by the body timeout: {by_body_timeout} of 500");
    let (rss_after, peak_after) = memory_kib(pid);
    eprintln!(
        "half-sent requests: relay VmRSS {rss_before} KiB before, {rss_open} KiB with 1,000 open \
         (VmHWM {peak_open} KiB), {rss_after} KiB after they were closed (VmHWM {peak_after} KiB)"
    );
    assert_eq!(still_open, 0, "connections the relay never closed");
    // 1,000 connections in hyper's buffers: tens of KiB each at most, never unbounded.
    assert!(
        peak_after < rss_before + 96 * 1024,
        "peak {peak_after} KiB against {rss_before} KiB before"
    );
    let health = http().get(relay.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK, "the relay still serves");
}

/// With the connection cap reached by clients that send nothing, a new client waits; it is
/// served once the header timeout has closed them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_cap_holds_and_frees_up_when_idle_clients_are_cut() {
    let relay = Relay::start_with(&[
        "--max-connections",
        "3",
        "--header-timeout-ms",
        "800",
        "--idle-timeout-ms",
        "800",
    ]);
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(TcpStream::connect(&relay.addr).await.unwrap());
    }
    // Let the relay accept all three before the real client arrives.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let health = http().get(relay.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    // The request could only be served once a permit came free, that is once the relay had
    // closed one of the three: at least one is closed already now.
    let mut closed_first = 0;
    let mut rest = Vec::new();
    for mut s in idle {
        let mut buf = [0u8; 64];
        match tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => closed_first += 1,
            _ => rest.push(s),
        }
    }
    assert!(closed_first >= 1, "served past the cap of 3 connections");
    let deadline = Instant::now() + Duration::from_secs(20);
    for s in rest {
        assert!(
            closed_by_server(s, deadline).await,
            "an idle connection stayed open"
        );
    }
}

/// Every series of the request counter, as lines.
async fn request_series(relay: &Relay) -> Vec<String> {
    let text = http()
        .get(relay.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with("streetsync_relay_http_requests_total{"))
        .map(str::to_owned)
        .collect()
}

/// 300 requests with invented methods, without authentication, add at most the one `other`
/// series per route and status they reach.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_invented_methods_add_no_metric_series() {
    let relay = Relay::start();
    let before = request_series(&relay).await;
    for n in 0..300 {
        let method = Method::from_bytes(format!("INVENTED{n}").as_bytes()).unwrap();
        let resp = http()
            .request(method, relay.url("/v1/teams"))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_client_error(), "{}", resp.status());
    }
    let after = request_series(&relay).await;
    let (rss, peak) = memory_kib(relay.child.id());
    eprintln!(
        "300 invented methods: {} -> {} request series; relay VmRSS {rss} KiB, VmHWM {peak} KiB",
        before.len(),
        after.len()
    );
    let text = after.join("\n");
    assert!(
        !text.contains("INVENTED"),
        "a method became a label:\n{text}"
    );
    let new: Vec<_> = after.iter().filter(|l| !before.contains(l)).collect();
    assert!(
        new.len() <= 2,
        "300 invented methods added {} series: {new:?}",
        new.len()
    );
    assert!(
        new.iter()
            .all(|l| l.contains(r#"method="other""#) || l.contains("/metrics")),
        "{new:?}"
    );
}

/// A stream of unauthenticated requests and of requests signed by a revoked device: the relay's
/// memory stays bounded, and none of them reaches the replay cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rss_stays_bounded_under_unauthenticated_and_revoked_requests() {
    let relay = Relay::start_with(&[
        "--rate-limit-per-sec",
        "100000",
        "--rate-limit-burst",
        "100000",
    ]);
    let pid = relay.child.id();
    let (team, lead) = new_team(&relay).await;
    let revoked = add_device(&relay, team, &lead, Role::Worker).await;
    let answer = send(
        &relay,
        &lead,
        Method::DELETE,
        &format!("/v1/teams/{team}/devices/{}", revoked.id),
        None,
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    let replay_nonces = |text: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix("streetsync_relay_replay_nonces "))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let metrics = || async {
        http()
            .get(relay.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let nonces_before = replay_nonces(&metrics().await);

    let pull = format!("/v1/teams/{team}/pull?after=0");
    let client = http();
    // Warm-up, then the measured stream.
    let statuses = flood(&client, &relay, &revoked, &pull, 0, 2_000).await;
    assert!(statuses.iter().all(|s| *s == StatusCode::UNAUTHORIZED));
    let (rss_warm, _) = memory_kib(pid);
    let statuses = flood(&client, &relay, &revoked, &pull, 2_000, 20_000).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::UNAUTHORIZED),
        "every one refused"
    );
    let (rss_end, peak) = memory_kib(pid);
    let nonces_after = replay_nonces(&metrics().await);
    eprintln!(
        "unauthenticated and revoked flood of 20,000 requests: relay VmRSS {rss_warm} KiB after \
         2,000, {rss_end} KiB after 20,000, VmHWM {peak} KiB; replay cache {nonces_before} -> \
         {nonces_after} nonces"
    );
    assert_eq!(
        nonces_after, nonces_before,
        "refused requests must not fill the replay cache"
    );
    assert!(
        peak < rss_warm + 32 * 1024,
        "peak {peak} KiB against {rss_warm} KiB after warm-up"
    );
}

/// Sends requests `from..to` of the flood, 64 at a time: a third without `Authorization`, a third
/// with a malformed one, a third signed (fresh nonces) by the revoked device.
async fn flood(
    client: &reqwest::Client,
    relay: &Relay,
    revoked: &Device,
    path: &str,
    from: usize,
    to: usize,
) -> Vec<StatusCode> {
    let mut statuses = Vec::new();
    let mut n = from;
    while n < to {
        let end = (n + 64).min(to);
        let batch = (n..end).map(|n| {
            let auth = match n % 3 {
                0 => None,
                1 => Some(format!("StreetSync-Ed25519 garbage-{n}")),
                _ => Some(revoked.auth("GET", path, &[])),
            };
            let mut req = client.get(relay.url(path));
            if let Some(auth) = auth {
                req = req.header("authorization", auth);
            }
            async move { req.send().await.unwrap().status() }
        });
        statuses.extend(futures_util::future::join_all(batch).await);
        n = end;
    }
    statuses
}

/// `pull?after=u64::MAX` (and a mailbox cursor beyond range) is a typed 400, not a 500.
#[tokio::test]
async fn out_of_range_cursors_are_a_typed_400() {
    let relay = Relay::start();
    let (team, lead) = new_team(&relay).await;
    for path in [
        format!("/v1/teams/{team}/pull?after={}", u64::MAX),
        format!("/v1/teams/{team}/pull?after={}", i64::MAX as u64 + 1),
        format!("/v1/teams/{team}/bundles?after={}", u64::MAX),
    ] {
        let answer = send(&relay, &lead, Method::GET, &path, None).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{path}: {}",
            answer.json
        );
        assert_eq!(answer.code(), "out_of_range", "{path}");
    }
    let answer = pull(&relay, &lead, team, i64::MAX as u64, None).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
}

/// A mailbox takes at most `--mailbox-bundles` bundles and a sender leaves at most
/// `--sender-bundles`; the addressee reads its mailbox in pages.
#[tokio::test]
async fn mailboxes_have_quotas_and_pages() {
    let relay = Relay::start_with(&["--mailbox-bundles", "5", "--sender-bundles", "7"]);
    let (team, lead) = new_team(&relay).await;
    let worker = add_device(&relay, team, &lead, Role::Worker).await;
    let other = add_device(&relay, team, &lead, Role::Worker).await;
    let path = format!("/v1/teams/{team}/bundles");
    async fn post_bundle(relay: &Relay, path: &str, from: &Device, to: &Device) -> Answer {
        let body = json!({ "to": to.id, "blob": "c2VhbGVk" });
        send(relay, from, Method::POST, path, Some(&body)).await
    }
    let post = |from, to| post_bundle(&relay, &path, from, to);
    for _ in 0..5 {
        let a = post(&worker, &lead).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.json);
    }
    let full = post(&worker, &lead).await;
    assert_eq!(full.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(full.code(), "quota_exceeded");
    // The sender's quota counts over all recipients: 5 + 2 = 7.
    for _ in 0..2 {
        let a = post(&worker, &other).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.json);
    }
    let full = post(&worker, &other).await;
    assert_eq!(full.code(), "quota_exceeded", "{}", full.json);
    // Another sender still reaches `other`'s mailbox.
    let a = post(&lead, &other).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.json);

    let mut after = 0;
    let mut seen = Vec::new();
    loop {
        let page = send(
            &relay,
            &lead,
            Method::GET,
            &format!("{path}?after={after}&limit=2"),
            None,
        )
        .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.json);
        let bundles = page.json["bundles"].as_array().unwrap();
        assert!(bundles.len() <= 2);
        for b in bundles {
            after = b["id"].as_u64().unwrap();
            seen.push(after);
        }
        if !page.json["more"].as_bool().unwrap() {
            break;
        }
    }
    assert_eq!(seen.len(), 5, "{seen:?}");
    assert!(seen.windows(2).all(|w| w[0] < w[1]));
}

/// `--team-founding closed` refuses every new team; `allowlist` lets only the listed devices.
#[tokio::test]
async fn operators_restrict_who_founds_a_team() {
    let relay = Relay::start_with(&["--team-founding", "closed"]);
    let lead = Device::new(Role::Lead);
    let body = json!({ "team": TeamId::random(), "device": lead.keys() });
    let answer = send(&relay, &lead, Method::POST, "/v1/teams", Some(&body)).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.json);
    assert_eq!(answer.code(), "founding_closed");

    let dir = tempfile::tempdir().unwrap();
    let allowed = Device::new(Role::Lead);
    let list = dir.path().join("founders");
    std::fs::write(&list, format!("# founders\n{}\n", allowed.id)).unwrap();
    let relay = Relay::start_with(&[
        "--team-founding",
        "allowlist",
        "--founders-file",
        list.to_str().unwrap(),
    ]);
    let answer = send(&relay, &lead, Method::POST, "/v1/teams", Some(&body)).await;
    assert_eq!(answer.code(), "founding_closed", "{}", answer.json);
    let body = json!({ "team": TeamId::random(), "device": allowed.keys() });
    let answer = send(&relay, &allowed, Method::POST, "/v1/teams", Some(&body)).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.json);
}

/// Replays are refused inside the window, and the replay cache counts only admitted requests.
#[tokio::test]
async fn replays_are_refused_and_only_admitted_nonces_are_kept() {
    let relay = Relay::start();
    let (team, lead) = new_team(&relay).await;
    let path = format!("/v1/teams/{team}/pull?after=0");
    let auth = lead.auth("GET", &path, &[]);
    let first = send_raw(&relay, Method::GET, &path, Vec::new(), Some(auth.clone())).await;
    assert_eq!(first.status, StatusCode::OK);
    let again = send_raw(&relay, Method::GET, &path, Vec::new(), Some(auth)).await;
    assert_eq!(again.code(), "replayed");
}
