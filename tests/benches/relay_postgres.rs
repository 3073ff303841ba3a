//! The relay load bench across instances (issue 16): the field model of `relay_load.rs` (500
//! simulated devices by default, teams of 25, live sockets, scheduled pushes) spread over three
//! relay instances on one PostgreSQL database (`LOAD_INSTANCES`, default 3; device `i` talks to
//! instance `i % n`, so most teams span every instance and delivery crosses LISTEN/NOTIFY), and,
//! in the same run and with the same settings, against the single SQLite relay. Each for
//! `LOAD_SECS` (default 60).
//!
//! PostgreSQL: `STREETSYNC_TEST_DATABASE_URL` if set (a database is created there), else a
//! throwaway cluster started with `tests/postgres/cluster.sh` and stopped afterwards.
//!
//! Figures (prefixed `postgres_` and `sqlite_`) go to stdout and `target/bench/relay_postgres.json`;
//! the bench fails if either backend lost, duplicated or did not deliver an envelope.
#![allow(clippy::unwrap_used, missing_docs)]

#[path = "relay_load.rs"]
mod load;

use std::path::PathBuf;
use std::process::Command;

use load::{Load, Measured, measure, start_relay, write_figures};

fn cluster_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("postgres/cluster.sh")
}

/// The cluster the bench started itself, stopped when dropped.
struct OwnCluster(tempfile::TempDir);

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = Command::new(cluster_script())
            .arg("stop")
            .arg(self.0.path())
            .status();
    }
}

fn database(cluster: &str) -> String {
    let mut id = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id).unwrap();
    let db = format!("bench_{}", hex::encode(id));
    let ok = Command::new("psql")
        .args(["-q", "-v", "ON_ERROR_STOP=1", cluster, "-c"])
        .arg(format!("CREATE DATABASE {db}"))
        .status()
        .unwrap()
        .success();
    assert!(ok, "creating the bench database failed");
    let (base, query) = cluster.split_once('?').unwrap_or((cluster, ""));
    let server = base.rsplit_once('/').unwrap().0;
    if query.is_empty() {
        format!("{server}/{db}")
    } else {
        format!("{server}/{db}?{query}")
    }
}

fn prefixed(prefix: &str, m: &Measured, into: &mut serde_json::Map<String, serde_json::Value>) {
    for (k, v) in m.figures.as_object().unwrap() {
        into.insert(format!("{prefix}_{k}"), v.clone());
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let load = Load::from_env();
    let instances: usize = std::env::var("LOAD_INSTANCES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let (_own, cluster) = match std::env::var("STREETSYNC_TEST_DATABASE_URL") {
        Ok(url) => (None, url),
        Err(_) => {
            let dir = tempfile::tempdir().unwrap();
            let out = Command::new(cluster_script())
                .arg("start")
                .arg(dir.path())
                .output()
                .unwrap();
            assert!(out.status.success(), "starting PostgreSQL failed");
            let url = String::from_utf8(out.stdout).unwrap().trim().to_owned();
            (Some(OwnCluster(dir)), url)
        }
    };
    let url = database(&cluster);

    let relays: Vec<_> = (0..instances)
        .map(|_| start_relay(&["--database-url".into(), url.clone().into()]))
        .collect();
    let bases: Vec<String> = relays.iter().map(|(_, b)| b.clone()).collect();
    let pids: Vec<u32> = relays.iter().map(|(r, _)| r.0.id()).collect();
    let pg = measure(&load, &bases, &pids).await;
    drop(relays);

    let data = tempfile::tempdir().unwrap();
    let (relay, base) = start_relay(&["--data-dir".into(), data.path().into()]);
    let pid = relay.0.id();
    let sqlite = measure(&load, &[base], &[pid]).await;
    drop(relay);

    let mut figures = serde_json::Map::new();
    figures.insert(
        "postgres_instances".into(),
        serde_json::json!({"value": instances, "unit": "relay instances", "goal": 3, "lower_is_better": false}),
    );
    prefixed("postgres", &pg, &mut figures);
    prefixed("sqlite", &sqlite, &mut figures);
    let figures = serde_json::Value::Object(figures);
    println!(
        "relay on PostgreSQL ({instances} instances) beside SQLite: {}",
        serde_json::to_string_pretty(&figures).unwrap()
    );
    write_figures("relay_postgres", &figures);
    pg.check();
    sqlite.check();
}
