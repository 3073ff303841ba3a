//! Desk benchmark (issue 15): the review queue, the contacts page and a search from it, rendered
//! server-side for a store of 10,000 realistic contacts (the core's bench fixtures: German place
//! names, notes of 100-600 characters; a third handed in for review, 1 in 50 a child-protection
//! concern), through the desk's whole router in-process: the Host and token checks, the store
//! query, the maud templates, the Fluent texts and the full response body. No socket and no
//! browser: what is measured is the server's part of a page load.
//!
//! Run with `cargo bench -p streetsync-tests --bench desk`. Prints the figures and writes them to
//! `<target>/bench/desk.json` as `{"<figure>": {"value", "unit", "goal", "lower_is_better"}}`.
//! Goals: p50 of the review queue and of the contacts page at most 50 ms, a search at most 100 ms.
//! `DESK_BENCH_CONTACTS` (10,000) and `DESK_BENCH_ROUNDS` (200) change the size.
#![allow(clippy::unwrap_used, missing_docs)]

#[path = "../../core/tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Map, Value, json};
use streetsync_cli::desk::{DeskConfig, DeskState, Opener, TOKEN_COOKIE, router};
use streetsync_core::{ContactFilter, ReviewState, Workspace};
use tower::ServiceExt as _;

/// Days the contacts spread over (two years from 2025-01-01), as in the store bench.
const DAYS: u64 = 730;
const PORT: u16 = 4000;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

/// The `q`-quantile (0..=1) of `samples`, nearest rank.
fn quantile(samples: &mut [f64], q: f64) -> f64 {
    samples.sort_by(f64::total_cmp);
    let rank = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len());
    samples[rank - 1]
}

/// `CARGO_TARGET_DIR` if set, else the workspace's `target`.
fn target_dir() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

struct Figures(Map<String, Value>);

impl Figures {
    fn add(&mut self, key: &str, value: f64, unit: &str, goal: Option<f64>) {
        let verdict = match goal {
            Some(g) if value <= g => format!("goal <= {g}: met"),
            Some(g) => format!("goal <= {g}: MISSED"),
            None => "no goal".to_owned(),
        };
        println!("{key:<28} {value:>10.3} {unit:<3} ({verdict})");
        let value = (value * 1_000.0).round() / 1_000.0;
        self.0.insert(
            key.to_owned(),
            json!({ "value": value, "unit": unit, "goal": goal, "lower_is_better": true }),
        );
    }
}

/// The lead's store: `n` contacts, every third handed in, the concerns among them too.
fn fill(dir: &Path, n: usize) -> Workspace {
    let ws = common::lead_store(dir);
    let mut rng = common::Rng(0xdec0_de15_2026_0001);
    let started = Instant::now();
    for i in 0..n {
        let day = rng.below(DAYS) as u32;
        let draft = common::draft(&mut rng, day);
        let concern = draft.safeguarding;
        let c = ws.create_contact(draft).unwrap();
        if concern || i % 3 == 0 {
            ws.submit_contact(c.id).unwrap();
        }
        if (i + 1) % 2_500 == 0 {
            println!(
                "  {} contacts saved, {:.1} s",
                i + 1,
                started.elapsed().as_secs_f64()
            );
        }
    }
    ws
}

/// One page, through the whole router; returns the time and the body.
async fn get(app: &axum::Router, token: &str, uri: &str) -> (Duration, String) {
    let req = Request::get(uri)
        .header("host", format!("127.0.0.1:{PORT}"))
        .header("cookie", format!("{TOKEN_COOKIE}={token}"))
        .body(Body::empty())
        .unwrap();
    let t = Instant::now();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    let took = t.elapsed();
    let body = String::from_utf8(bytes.to_vec()).unwrap();
    assert_eq!(
        status,
        StatusCode::OK,
        "{uri}: {}",
        &body[..body.len().min(300)]
    );
    (took, body)
}

/// p50 and p99 of `rounds` loads of the addresses `uris` (in turn), after a warm-up; every page
/// must contain `must` (so an error page is never what gets measured).
async fn measure(
    app: &axum::Router,
    token: &str,
    uris: &[String],
    must: &str,
    rounds: usize,
) -> (f64, f64) {
    for uri in uris {
        let (_, body) = get(app, token, uri).await;
        assert!(body.contains(must), "{uri} has no {must:?}");
    }
    let mut samples = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let (took, body) = get(app, token, &uris[i % uris.len()]).await;
        assert!(body.contains(must));
        samples.push(ms(took));
    }
    (quantile(&mut samples, 0.5), quantile(&mut samples, 0.99))
}

fn main() {
    let n = env_or("DESK_BENCH_CONTACTS", 10_000);
    let rounds = env_or("DESK_BENCH_ROUNDS", 200);
    let dir = tempfile::tempdir().unwrap();
    println!("desk benchmark: {n} contacts in {}", dir.path().display());
    let ws = Arc::new(fill(dir.path(), n));
    let total = ws.list_contacts(&ContactFilter::default()).unwrap().total;
    assert_eq!(total, n);
    let submitted = ws
        .list_contacts(&ContactFilter {
            review: Some(ReviewState::Submitted),
            limit: 1,
            ..Default::default()
        })
        .unwrap()
        .total;
    println!("  {submitted} contacts wait for review");

    let path = dir.path().join("lead.db");
    let opener: Opener = Arc::new(move |_: &str| Workspace::open(&path, common::key(1)));
    let state = DeskState::new(
        DeskConfig {
            port: PORT,
            relay: None,
            idle_lock: Duration::from_secs(3_600),
        },
        ws.clone(),
        opener,
    )
    .unwrap();
    let token = state.token().to_owned();
    let app = router(state);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    let mut figures = Figures(Map::new());
    rt.block_on(async {
        let review = ["/review".to_owned(), "/review?page=20".to_owned()];
        let (p50, p99) = measure(&app, &token, &review, "data-testid=\"review-row\"", rounds).await;
        figures.add("review_queue_p50_ms", p50, "ms", Some(50.0));
        figures.add("review_queue_p99_ms", p99, "ms", None);

        let contacts = ["/contacts".to_owned(), "/contacts?page=50".to_owned()];
        let (p50, p99) = measure(
            &app,
            &token,
            &contacts,
            "data-testid=\"contacts-total\"",
            rounds,
        )
        .await;
        figures.add("contacts_page_p50_ms", p50, "ms", Some(50.0));
        figures.add("contacts_page_p99_ms", p99, "ms", None);

        // The filters of the contacts page: an area and a quarter, a topic and a review state.
        let filtered = [
            "/contacts?area=stadtpark&from=2025-04-01&to=2025-06-30".to_owned(),
            "/contacts?topic=wohnen&state=submitted".to_owned(),
        ];
        let (p50, _) = measure(
            &app,
            &token,
            &filtered,
            "data-testid=\"contacts-total\"",
            rounds,
        )
        .await;
        figures.add("contacts_filtered_p50_ms", p50, "ms", None);

        // Searches as a lead types them: a word in many notes, a place, two words, a client code.
        let searches: Vec<String> = ["Schlafplatz", "Skatepark", "Jobcenter+Termin", "MA-19"]
            .iter()
            .map(|q| format!("/contacts?q={q}"))
            .collect();
        let (p50, p99) = measure(
            &app,
            &token,
            &searches,
            "data-testid=\"contacts-total\"",
            rounds,
        )
        .await;
        figures.add("contacts_search_p50_ms", p50, "ms", Some(100.0));
        figures.add("contacts_search_p99_ms", p99, "ms", None);

        // One contact with its thread and history.
        let some = ws
            .list_contacts(&ContactFilter {
                limit: 20,
                ..Default::default()
            })
            .unwrap();
        let one: Vec<String> = some
            .items
            .iter()
            .map(|c| format!("/contacts/{}", c.id))
            .collect();
        let (p50, _) = measure(&app, &token, &one, "data-testid=\"contact-note\"", rounds).await;
        figures.add("contact_page_p50_ms", p50, "ms", None);
    });

    let out = target_dir().join("bench");
    std::fs::create_dir_all(&out).unwrap();
    let path = out.join("desk.json");
    let text = serde_json::to_string_pretty(&Value::Object(figures.0)).unwrap();
    std::fs::write(&path, text + "\n").unwrap();
    println!("figures written to {}", path.display());
}
