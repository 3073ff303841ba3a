//! End-to-end tests of the `streetsync` terminal client: the real binary, real stores in temp dirs,
//! and the real relay binary on 127.0.0.1. Every workflow of issue 6 plus the bad input each
//! command can get: a one-line message, the documented exit code, and nothing changed.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::Relay;
use serde_json::Value;

/// The real CLI binary: `STREETSYNC_CLI_BIN`, or built once per test process into its own target
/// dir (like the relay), so a stale binary is never tested.
fn cli_binary() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(p) = std::env::var("STREETSYNC_CLI_BIN") {
            return PathBuf::from(p);
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .to_owned();
        let target = root.join("target").join("e2e-cli");
        let status = Command::new(env!("CARGO"))
            .current_dir(&root)
            .args(["build", "-q", "-p", "streetsync", "--bin", "streetsync"])
            .env("CARGO_TARGET_DIR", &target)
            .status()
            .unwrap();
        assert!(status.success(), "building the CLI failed");
        target.join("debug").join("streetsync")
    })
    .clone()
}

const PASS: &str = "correct horse battery";

/// One device's store.
struct Store {
    path: PathBuf,
}

impl Store {
    fn new(dir: &Path, name: &str) -> Store {
        Store {
            path: dir.join(format!("{name}.db")),
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(cli_binary());
        c.arg("--store")
            .arg(&self.path)
            .args(args)
            .env("STREETSYNC_PASSPHRASE", PASS)
            .env("STREETSYNC_TEST_KDF_ITERATIONS", "1000")
            .env_remove("STREETSYNC_RELAY")
            .env_remove("STREETSYNC_STORE")
            .env("NO_COLOR", "1");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs and expects success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} failed ({:?}): {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs with `--json` and parses stdout.
    fn json(&self, args: &[&str]) -> Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        serde_json::from_str(&self.ok(&a)).unwrap()
    }

    /// Runs and expects exit `code` with a one-line message; returns stderr.
    fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(
            out.status.code(),
            Some(code),
            "{args:?}: expected exit {code}, stderr: {err}, stdout: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
        assert!(!err.contains("RUST_BACKTRACE"), "{args:?}: {err}");
        assert_eq!(
            err.trim().lines().count(),
            1,
            "{args:?}: not one line: {err}"
        );
        assert!(err.starts_with("streetsync: "), "{args:?}: {err}");
        err
    }

    /// Every contact as JSON (ids in one page).
    fn contacts(&self) -> Vec<Value> {
        self.json(&["contact", "list", "--limit", "1000"])["items"]
            .as_array()
            .unwrap()
            .clone()
    }

    fn contact(&self, id: &str) -> Value {
        self.json(&["contact", "show", id])
    }

    /// Adds a contact and returns its id.
    fn add(&self, args: &[&str]) -> String {
        let mut a = vec!["contact", "add"];
        a.extend_from_slice(args);
        self.json(&a)["id"].as_str().unwrap().to_owned()
    }
}

fn lead(dir: &Path, relay: Option<&Relay>) -> Store {
    let s = Store::new(dir, "lead");
    let mut args = vec![
        "init",
        "--team",
        "Streetwork Mitte",
        "--name",
        "Lea",
        "--area",
        "Hauptbahnhof",
        "--area",
        "Stadtpark",
    ];
    let url;
    if let Some(r) = relay {
        url = r.url();
        args.extend_from_slice(&["--relay", &url]);
    }
    s.ok(&args);
    s
}

/// A lead and a worker that joined with an invite, both synced.
fn team(dir: &Path, relay: &Relay) -> (Store, Store) {
    let lead = lead(dir, Some(relay));
    lead.ok(&["sync"]);
    let invite = lead.json(&["invite", "--name", "Sam"]);
    let code = invite["code"].as_str().unwrap();
    let worker = Store::new(dir, "worker");
    worker.ok(&["--relay", &relay.url(), "join", code]);
    lead.ok(&["sync"]);
    worker.ok(&["sync"]);
    (lead, worker)
}

#[test]
fn a_team_forms_and_the_review_loop_closes() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(&dir.path().join("relay"));
    let (lead, worker) = team(dir.path(), &relay);

    // Members: both devices on the roster, the relay address remembered next to the store.
    let m = lead.json(&["members"]);
    let names: Vec<&str> = m["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["member"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Lea", "Sam"]);
    assert!(lead.ok(&["members"]).contains("this device"));
    assert!(Path::new(&format!("{}.config.json", worker.path.display())).exists());

    // The worker logs contacts offline; one is a child-protection concern.
    let plain = worker.add(&[
        "--area",
        "stadtpark",
        "--date",
        "2026-09-14",
        "--time",
        "10:15",
        "--place",
        "Spielplatz",
        "--persons",
        "2",
        "--age",
        "18_20",
        "--gender",
        "male",
        "--topic",
        "wohnen",
        "--material",
        "essen=2",
        "--note",
        "Fragt nach einem Schlafplatz.",
        "--submit",
    ]);
    let flagged = worker.add(&[
        "--area",
        "hauptbahnhof",
        "--date",
        "2026-09-10",
        "--place",
        "Nordausgang",
        "--safeguarding",
        "--note",
        "14-Jährige schläft im Park.",
        "--submit",
    ]);
    worker.ok(&["sync"]);
    lead.ok(&["sync"]);

    // Safeguarding heads the lead's review queue, although it is older.
    let queue = lead.json(&["contact", "list", "--review-queue"]);
    assert_eq!(queue["items"][0]["id"], flagged.as_str());
    assert_eq!(queue["items"][1]["id"], plain.as_str());
    let inbox = lead.json(&["inbox"]);
    assert_eq!(inbox["role"], "lead");
    assert_eq!(inbox["items"][0]["id"], flagged.as_str());
    assert!(
        lead.ok(&["contact", "list", "--review-queue"])
            .contains("§8a")
    );

    // Bad review input changes nothing.
    lead.fails(&["ask", &flagged[..8], " "], 2);
    lead.fails(&["ask", "zzzz", "Frage"], 2);
    lead.fails(&["ask", "00000000", "Frage"], 4);
    worker.fails(&["approve", &flagged[..8]], 3);
    assert_eq!(lead.contact(&flagged)["review"], "submitted");
    assert_eq!(worker.contact(&flagged)["review"], "submitted");

    // The lead asks; the worker's device shows it after the next sync.
    lead.ok(&["ask", &flagged[..8], "Wurde das Jugendamt informiert?"]);
    lead.ok(&["sync"]);
    assert_eq!(
        worker.json(&["inbox"])["items"].as_array().unwrap().len(),
        0
    );
    worker.ok(&["sync"]);
    let inbox = worker.json(&["inbox"]);
    assert_eq!(inbox["role"], "worker");
    assert_eq!(inbox["items"][0]["id"], flagged.as_str());
    assert_eq!(
        inbox["items"][0]["question"],
        "Wurde das Jugendamt informiert?"
    );
    assert!(worker.ok(&["inbox"]).contains("Jugendamt"));

    // The worker answers and edits; the lead sees both and approves.
    worker.fails(&["answer", &flagged[..8], ""], 2);
    worker.ok(&["answer", &flagged[..8], "Ja, heute telefonisch."]);
    worker.ok(&[
        "contact",
        "edit",
        &flagged[..8],
        "--append-note",
        "Jugendamt informiert.",
    ]);
    worker.ok(&["sync"]);
    lead.ok(&["sync"]);
    let c = lead.contact(&flagged);
    assert_eq!(c["review"], "submitted");
    assert_eq!(c["comments"][1]["text"], "Ja, heute telefonisch.");
    assert!(
        c["fields"]["note"]
            .as_str()
            .unwrap()
            .ends_with("Jugendamt informiert.")
    );
    lead.ok(&["comment", &flagged[..8], "Danke."]);
    lead.ok(&["approve", &flagged[..8]]);
    lead.ok(&["sync"]);
    worker.ok(&["sync"]);
    assert_eq!(worker.contact(&flagged)["review"], "approved");
    assert_eq!(
        worker.json(&["inbox"])["items"].as_array().unwrap().len(),
        0
    );
    let shown = lead.ok(&["contact", "show", &flagged[..8]]);
    assert!(shown.contains("child-protection") && shown.contains("Danke."));
    let history = lead.json(&["history", &flagged[..8]]);
    let messages: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["message"].as_str().unwrap())
        .collect();
    assert!(messages.contains(&"request changes") && messages.contains(&"approve"));
    assert!(lead.ok(&["history", &flagged[..8]]).contains("Sam"));
}

#[test]
fn contacts_are_added_listed_shown_and_edited_and_bad_input_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let lead = lead(dir.path(), None);
    let id = lead.add(&[
        "--area",
        "hauptbahnhof",
        "--date",
        "2026-09-01",
        "--time",
        "09:30",
        "--end",
        "10:00",
        "--setting",
        "drop_in",
        "--persons",
        "3",
        "--code",
        "AB-1990",
        "--housing",
        "rough",
        "--intervention",
        "counselling",
        "--note",
        "Schlafsack übergeben",
    ]);
    lead.add(&["--area", "stadtpark", "--date", "2026-10-01"]);
    assert_eq!(lead.contacts().len(), 2);
    let before = lead.contacts();

    // Each bad value is refused with a clear message and exit 2; nothing is saved.
    for (args, needle) in [
        (vec!["--area", "mond"], "unknown id 'mond'"),
        (vec!["--area", "stadtpark", "--persons", "0"], "persons"),
        (vec!["--area", "stadtpark", "--age", "old"], "--age"),
        (vec!["--area", "stadtpark", "--gender", "x"], "--gender"),
        (
            vec!["--area", "stadtpark", "--setting", "moon"],
            "--setting",
        ),
        (
            vec!["--area", "stadtpark", "--material", "essen"],
            "id=count",
        ),
        (
            vec!["--area", "stadtpark", "--material", "essen=-1"],
            "negative",
        ),
        (vec!["--area", "stadtpark", "--topic", "nope"], "topics"),
        (
            vec!["--area", "stadtpark", "--code", "Anna Maier"],
            "client_code",
        ),
        (vec!["--area", "stadtpark", "--time", "25:00"], "time"),
        (vec!["--area", "stadtpark", "--date", "2026-13-01"], "date"),
        (
            vec!["--area", "stadtpark", "--time", "10:00", "--end", "09:00"],
            "end_time",
        ),
        (vec![], "--area is required"),
    ] {
        let mut a = vec!["contact", "add"];
        a.extend_from_slice(&args);
        let err = lead.fails(&a, 2);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    assert_eq!(lead.contacts(), before);

    // List with the core's filters.
    let l = lead.json(&["contact", "list", "--area", "hauptbahnhof"]);
    assert_eq!(l["total"], 1);
    let l = lead.json(&["contact", "list", "--search", "schlafsack"]);
    assert_eq!(l["items"][0]["id"], id.as_str());
    let l = lead.json(&["contact", "list", "--from", "2026-09-15"]);
    assert_eq!(l["total"], 1);
    let l = lead.json(&["contact", "list", "--code", "ab-1990"]);
    assert_eq!(l["total"], 1);
    assert_eq!(lead.json(&["contact", "list", "--mine"])["total"], 2);
    let table = lead.ok(&["contact", "list"]);
    assert!(table.contains(&id[..8]) && table.contains("2 of 2"));
    lead.fails(
        &[
            "contact",
            "list",
            "--from",
            "2026-10-01",
            "--to",
            "2026-09-01",
        ],
        2,
    );
    lead.fails(&["contact", "list", "--review", "done"], 2);
    lead.fails(&["contact", "list", "--area", "mond"], 2);
    lead.fails(&["contact", "list", "--limit", "0"], 2);

    // Show, by a prefix of the id.
    let c = lead.contact(&id[..6]);
    assert_eq!(c["fields"]["setting"], "drop_in");
    assert_eq!(c["fields"]["end_time"], "10:00:00");
    let text = lead.ok(&["contact", "show", &id[..6]]);
    assert!(text.contains("Schlafsack übergeben") && text.contains("AB-1990"));
    lead.fails(&["contact", "show", "abcdef0123"], 4);
    lead.fails(&["contact", "show", "xyz"], 2);

    // Edit only what is given.
    lead.ok(&[
        "contact",
        "edit",
        &id[..8],
        "--persons",
        "4",
        "--place",
        "Gleis 1",
    ]);
    let c = lead.contact(&id);
    assert_eq!(c["fields"]["persons"], 4);
    assert_eq!(c["fields"]["place"], "Gleis 1");
    assert_eq!(c["fields"]["note"], "Schlafsack übergeben");
    let before = lead.contact(&id);
    lead.fails(&["contact", "edit", &id[..8]], 2);
    lead.fails(&["contact", "edit", &id[..8], "--persons", "-2"], 2);
    lead.fails(&["contact", "edit", &id[..8], "--area", "mond"], 2);
    lead.fails(
        &["contact", "edit", &id[..8], "--code", "A", "--no-code"],
        2,
    );
    lead.fails(&["contact", "edit", "00000000", "--persons", "2"], 4);
    assert_eq!(lead.contact(&id), before);

    // Clients.
    lead.ok(&[
        "clients", "add", "AB-1990", "--alias", "Skater", "--age", "18_20",
    ]);
    lead.fails(&["clients", "add", "AB-1990"], 2);
    lead.fails(&["clients", "add", "Anna Maier"], 2);
    lead.fails(&["clients", "add", "CD-1", "--gender", "x"], 2);
    let clients = lead.json(&["clients", "list"]);
    assert_eq!(clients.as_array().unwrap().len(), 1);
    let shown = lead.json(&["clients", "show", "ab-1990"]);
    assert_eq!(shown["contacts"][0]["id"], id.as_str());
    assert!(lead.ok(&["clients", "list"]).contains("Skater"));
    lead.fails(&["clients", "show", "ZZ-1"], 4);
}

#[test]
fn referrals_need_consent_unless_anonymous_and_consent_can_be_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let lead = lead(dir.path(), None);

    // The partner directory.
    let p = lead.json(&[
        "directory",
        "add",
        "--name",
        "Schuldnerberatung Mitte",
        "--offer",
        "Schuldnerberatung",
        "--phone",
        "030 123",
    ]);
    let partner = p["id"].as_str().unwrap().to_owned();
    lead.fails(&["directory", "add", "--phone", "1"], 2);
    lead.fails(&["directory", "edit", &partner], 2);
    lead.fails(&["directory", "edit", "nope", "--phone", "1"], 4);
    lead.ok(&[
        "directory",
        "edit",
        &partner,
        "--phone",
        "030 999",
        "--notes",
        "Di 9-12",
    ]);
    let list = lead.json(&["directory", "list"]);
    assert_eq!(list[0]["phone"], "030 999");
    assert_eq!(list[0]["offers"][0], "Schuldnerberatung");
    assert!(
        lead.ok(&["directory", "list"])
            .contains("Schuldnerberatung Mitte")
    );

    let coded = lead.add(&["--area", "stadtpark", "--code", "AB-1990"]);
    let anon = lead.add(&["--area", "stadtpark"]);
    let referrals = |id: &str| lead.contact(id)["fields"]["referrals"].clone();

    // Without consent: refused with a clear message, nothing changed.
    let err = lead.fails(&["referral", "add", &coded[..8], "--partner", &partner], 2);
    assert!(err.contains("consent"), "{err}");
    let err = lead.fails(
        &[
            "referral",
            "add",
            &coded[..8],
            "--partner",
            &partner,
            "--scope",
            "Name",
        ],
        2,
    );
    assert!(err.contains("--recipient"), "{err}");
    let err = lead.fails(
        &[
            "referral",
            "add",
            &coded[..8],
            "--partner",
            &partner,
            "--anonymous",
        ],
        2,
    );
    assert!(err.contains("client code"), "{err}");
    lead.fails(
        &[
            "referral",
            "add",
            &anon[..8],
            "--partner",
            &partner,
            "--anonymous",
            "--scope",
            "x",
        ],
        2,
    );
    lead.fails(
        &[
            "referral",
            "add",
            &coded[..8],
            "--partner",
            "nope",
            "--anonymous",
        ],
        2,
    );
    let consent = [
        "--scope",
        "Name, Schulden",
        "--recipient",
        "Schuldnerberatung Mitte",
        "--purpose",
        "Termin",
        "--consent-date",
        "2026-09-14",
    ];
    let mut bad = vec!["referral", "add", &coded[..8], "--partner", &partner];
    bad.extend_from_slice(&consent);
    bad[6] = " ";
    lead.fails(&bad, 2);
    assert_eq!(referrals(&coded), Value::Array(vec![]));

    // With consent, and anonymous without a client code.
    let mut a = vec![
        "referral",
        "add",
        &coded[..8],
        "--partner",
        &partner,
        "--reason",
        "Schulden",
    ];
    a.extend_from_slice(&consent);
    lead.ok(&a);
    lead.ok(&[
        "referral",
        "add",
        &anon[..8],
        "--partner",
        &partner,
        "--anonymous",
    ]);
    let r = referrals(&coded);
    assert_eq!(r[0]["consent"]["recipient"], "Schuldnerberatung Mitte");
    assert_eq!(r[0]["consent"]["given_on"], "2026-09-14");
    assert_eq!(r[0]["consent"]["revoked_on"], Value::Null);
    assert_eq!(referrals(&anon)[0]["consent"], Value::Null);
    assert!(
        lead.contact(&coded)["fields"]["interventions"]
            .as_array()
            .unwrap()
            .contains(&Value::from("referral"))
    );

    // Revoking consent is recorded; bad revocations change nothing.
    let rid = r[0]["id"].as_str().unwrap().to_owned();
    let anon_rid = referrals(&anon)[0]["id"].as_str().unwrap().to_owned();
    lead.fails(&["referral", "revoke-consent", &coded[..8], "r-none"], 4);
    lead.fails(&["referral", "revoke-consent", &anon[..8], &anon_rid], 2);
    lead.fails(
        &[
            "referral",
            "revoke-consent",
            &coded[..8],
            &rid,
            "--date",
            "2026-01-01",
        ],
        2,
    );
    assert_eq!(referrals(&coded)[0]["consent"]["revoked_on"], Value::Null);
    lead.ok(&[
        "referral",
        "revoke-consent",
        &coded[..8],
        &rid,
        "--date",
        "2026-10-01",
    ]);
    assert_eq!(referrals(&coded)[0]["consent"]["revoked_on"], "2026-10-01");
    lead.fails(&["referral", "revoke-consent", &coded[..8], &rid], 2);
    assert!(
        lead.ok(&["contact", "show", &coded[..8]])
            .contains("REVOKED 2026-10-01")
    );
}

#[test]
fn statistics_suppress_small_cells_in_every_output() {
    let dir = tempfile::tempdir().unwrap();
    let lead = lead(dir.path(), None);
    // Hauptbahnhof in September: a group of 3 and one client met twice on one day (counted
    // once): 4 persons.
    lead.add(&[
        "--area",
        "hauptbahnhof",
        "--date",
        "2026-09-01",
        "--persons",
        "3",
        "--gender",
        "female",
    ]);
    for t in ["10:00", "15:00"] {
        lead.add(&[
            "--area",
            "hauptbahnhof",
            "--date",
            "2026-09-02",
            "--time",
            t,
            "--code",
            "AB-1990",
            "--gender",
            "female",
            "--material",
            "naloxon=7",
        ]);
    }
    // Stadtpark: one person, so every cell of it is suppressed.
    lead.add(&[
        "--area",
        "stadtpark",
        "--date",
        "2026-10-05",
        "--gender",
        "male",
        "--material",
        "spritzen=13",
    ]);
    // Hauptbahnhof in October: two pairs. Total minus Hauptbahnhof would give Stadtpark's one
    // person away, so secondary suppression hides Hauptbahnhof too (as `x`, not as `<3`).
    for t in ["09:00", "11:00"] {
        lead.add(&[
            "--area",
            "hauptbahnhof",
            "--date",
            "2026-10-06",
            "--time",
            t,
            "--persons",
            "2",
            "--gender",
            "female",
        ]);
    }
    // Outside the range.
    lead.add(&[
        "--area",
        "stadtpark",
        "--date",
        "2025-10-05",
        "--persons",
        "9",
    ]);

    let s = lead.json(&["stats", "--from", "2026-09-01", "--to", "2026-12-31"]);
    assert_eq!(s["total"]["contacts"], 6);
    assert_eq!(s["total"]["persons"], 9);
    let area = |key: &str| {
        s["tables"][1]["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["key"] == key)
            .unwrap()
            .clone()
    };
    assert_eq!(s["tables"][1]["dimension"], "area");
    assert_eq!(area("hauptbahnhof")["persons"], "x");
    assert_eq!(area("hauptbahnhof")["contacts"], "x");
    assert!(s["disclosure"]["secondary"].as_u64().unwrap() > 0);
    // The chart keeps a published cell (September at Hauptbahnhof).
    assert!(
        s["month_area"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["contacts"] == 3)
    );
    assert_eq!(area("stadtpark")["persons"], "<3");
    assert_eq!(area("stadtpark")["contacts"], "<3");
    let json_text = serde_json::to_string(&s).unwrap();
    assert!(!json_text.contains("13"), "a suppressed amount leaked");

    let table = lead.ok(&["stats", "--from", "2026-09-01", "--to", "2026-12-31"]);
    assert!(
        table.contains("<3") && table.contains("Stadtpark"),
        "{table}"
    );
    assert!(!table.contains("13"), "{table}");

    // CSV to a file and to stdout; SVG chart.
    let csv_path = dir.path().join("stats.csv");
    let svg_path = dir.path().join("chart.svg");
    lead.ok(&[
        "stats",
        "--from",
        "2026-09-01",
        "--to",
        "2026-12-31",
        "--csv",
        csv_path.to_str().unwrap(),
        "--svg",
        svg_path.to_str().unwrap(),
    ]);
    let csv = std::fs::read_to_string(&csv_path).unwrap();
    assert!(csv.starts_with("dimension,key,label,contacts,persons,amount\n"));
    assert!(csv.contains("area,stadtpark,Stadtpark,<3,<3,"), "{csv}");
    assert!(csv.contains("area,hauptbahnhof,Hauptbahnhof,x,x,"), "{csv}");
    assert!(csv.contains("month,2026-09,2026-09,3,4,"), "{csv}");
    assert!(
        csv.contains("material,naloxon,Naloxon (naloxone doses),<3,<3,<3"),
        "{csv}"
    );
    assert!(!csv.contains(",13"), "{csv}");
    let stdout_csv = lead.ok(&[
        "stats",
        "--from",
        "2026-09-01",
        "--to",
        "2026-12-31",
        "--csv",
    ]);
    assert_eq!(stdout_csv, csv);
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("<text") && svg.contains("Hauptbahnhof") && svg.contains("2026-09"));
    assert!(svg.contains("<polyline") || svg.contains("<path"));

    // Bad ranges: clear message, exit 2, no files.
    let nocsv = dir.path().join("none.csv");
    let nosvg = dir.path().join("none.svg");
    let err = lead.fails(
        &[
            "stats",
            "--from",
            "2026-12-31",
            "--to",
            "2026-01-01",
            "--csv",
            nocsv.to_str().unwrap(),
            "--svg",
            nosvg.to_str().unwrap(),
        ],
        2,
    );
    assert!(err.contains("before"), "{err}");
    lead.fails(&["stats", "--from", "1990-01-01", "--to", "2026-01-01"], 2);
    lead.fails(&["stats", "--from", "yesterday", "--to", "2026-01-01"], 2);
    lead.fails(&["stats", "--to", "2026-01-01"], 2);
    assert!(!nocsv.exists() && !nosvg.exists());
    lead.fails(
        &[
            "stats",
            "--from",
            "2026-01-01",
            "--to",
            "2026-12-31",
            "--svg",
            dir.path().to_str().unwrap(),
        ],
        2,
    );
}

#[test]
fn export_writes_contacts_without_notes_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    let lead = lead(dir.path(), None);
    lead.add(&[
        "--area",
        "hauptbahnhof",
        "--date",
        "2026-09-01",
        "--note",
        "vertraulich, Zeile 1\nZeile 2",
    ]);
    lead.add(&[
        "--area",
        "stadtpark",
        "--date",
        "2026-10-01",
        "--place",
        "Park \"Süd\", Bank",
    ]);
    let out = dir.path().join("contacts.csv");
    let o = lead.json(&["export", "--out", out.to_str().unwrap()]);
    assert_eq!(o["contacts"], 2);
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(!text.contains("vertraulich"));
    assert!(text.starts_with("id,date,start_time,area_id,area,place,"));
    assert_eq!(text.lines().count(), 3);
    assert!(text.contains("\"Park \"\"Süd\"\", Bank\""));

    let with = dir.path().join("with-notes.csv");
    lead.ok(&[
        "export",
        "--include-notes",
        "--from",
        "2026-09-01",
        "--to",
        "2026-09-30",
        "--out",
        with.to_str().unwrap(),
    ]);
    let text = std::fs::read_to_string(&with).unwrap();
    assert!(text.contains(",note\n") && text.contains("vertraulich, Zeile 1\nZeile 2"));
    assert!(!text.contains("stadtpark"));
    // Piped to stdout: no progress bar, just CSV.
    let piped = lead.ok(&["export", "--out", "-"]);
    assert!(piped.starts_with("id,date,"));
    assert!(!piped.contains('\r'));

    let bad = dir.path().join("bad.csv");
    lead.fails(
        &[
            "export",
            "--from",
            "2026-10-01",
            "--to",
            "2026-09-01",
            "--out",
            bad.to_str().unwrap(),
        ],
        2,
    );
    lead.fails(
        &[
            "export",
            "--out",
            dir.path().join("no/such/dir/x.csv").to_str().unwrap(),
        ],
        2,
    );
    lead.fails(&["export"], 2);
    assert!(!bad.exists());
}

#[test]
fn erase_and_revoke_reach_every_device() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(&dir.path().join("relay"));
    let (lead, worker) = team(dir.path(), &relay);
    let id = worker.add(&["--area", "stadtpark", "--note", "Bitte löschen (Art. 17)"]);
    let keep = worker.add(&["--area", "stadtpark", "--note", "bleibt"]);
    worker.ok(&["sync"]);
    lead.ok(&["sync"]);
    assert_eq!(lead.contacts().len(), 2);

    // Bad erase requests change nothing.
    let err = lead.fails(&["erase", &id[..8]], 2);
    assert!(err.contains("--yes"), "{err}");
    worker.fails(&["erase", &id[..8], "--yes"], 3);
    lead.fails(&["erase", "00000000", "--yes"], 4);
    assert_eq!(lead.contacts().len(), 2);
    assert_eq!(worker.contacts().len(), 2);

    lead.ok(&["erase", &id[..8], "--yes"]);
    assert_eq!(lead.contacts().len(), 1);
    lead.ok(&["sync"]);
    worker.ok(&["sync"]);
    let left: Vec<Value> = worker
        .contacts()
        .into_iter()
        .map(|c| c["id"].clone())
        .collect();
    assert_eq!(left, [Value::from(keep.as_str())]);

    // Revoke: bad input first, then the worker is cut off at once.
    lead.fails(&["revoke", "Nobody"], 4);
    worker.fails(&["revoke", "Lea"], 3);
    lead.fails(&["revoke", "Lea"], 3);
    lead.ok(&["revoke", "Sam"]);
    let m = lead.json(&["members"]);
    let sam = m["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["member"] == "Sam")
        .unwrap()
        .clone();
    assert_eq!(sam["revoked"], true);
    lead.fails(&["revoke", "Sam"], 4);
    // Refused by the relay as a removed device: the not-allowed exit code and a message that
    // says so.
    let err = worker.fails(&["sync"], 3);
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.contains("relay refused the request (revoked)")
            && err.contains("this device was revoked by a team lead"),
        "the message names the removal: {err}"
    );
    // The worker's local work is still there.
    assert_eq!(worker.contacts().len(), 1);
}

#[test]
fn team_commands_refuse_bad_input_and_keep_the_store_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(&dir.path().join("relay"));
    let (lead, worker) = team(dir.path(), &relay);

    // init: a second team on a store, missing areas, bad relay address.
    lead.fails(&["init", "--team", "X", "--name", "Y", "--area", "Z"], 3);
    let fresh = Store::new(dir.path(), "fresh");
    fresh.fails(&["init", "--team", "X", "--name", "Y"], 2);
    fresh.fails(&["init", "--team", "X", "--name", "Y", "--area", " "], 2);
    fresh.fails(&["init", "--team", " ", "--name", "Y", "--area", "Z"], 2);
    fresh.fails(
        &[
            "--relay",
            "relay.example",
            "init",
            "--team",
            "X",
            "--name",
            "Y",
            "--area",
            "Z",
        ],
        2,
    );
    assert!(!fresh.path.exists(), "a refused init left a store behind");

    // invite: bad validity, empty name, a worker, no relay.
    lead.fails(&["invite", "--name", "Kim", "--valid-hours", "0"], 2);
    lead.fails(&["invite", "--name", "Kim", "--valid-hours", "500"], 2);
    lead.fails(&["invite", "--name", " "], 2);
    worker.fails(&["invite", "--name", "Kim"], 3);

    // join: a mistyped code, an already joined store, a store of another team.
    let newbie = Store::new(dir.path(), "newbie");
    let err = newbie.fails(&["--relay", &relay.url(), "join", "AAAA-BBBB"], 2);
    assert!(err.contains("invite code"), "{err}");
    assert!(!newbie.path.exists(), "a refused join left a store behind");
    newbie.fails(&["join", "AAAA-BBBB"], 2); // no relay known
    worker.fails(&["join", "AAAA-BBBB"], 3);
    let code = lead.json(&["invite", "--name", "Kim"])["code"]
        .as_str()
        .unwrap()
        .to_owned();
    newbie.ok(&["--relay", &relay.url(), "join", &code]);
    let again = Store::new(dir.path(), "again");
    again.fails(&["--relay", &relay.url(), "join", &code], 3);
    assert!(!again.path.exists());

    // The passphrase and the store.
    let out = lead
        .cmd(&["contact", "list"])
        .env("STREETSYNC_PASSPHRASE", "not the passphrase")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6));
    assert!(String::from_utf8_lossy(&out.stderr).contains("passphrase"));
    let out = lead
        .cmd(&["contact", "list"])
        .env_remove("STREETSYNC_PASSPHRASE")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let pass_file = dir.path().join("pass.txt");
    std::fs::write(&pass_file, format!("{PASS}\n")).unwrap();
    let out = lead
        .cmd(&["--passphrase-file", pass_file.to_str().unwrap(), "members"])
        .env_remove("STREETSYNC_PASSPHRASE")
        .output()
        .unwrap();
    assert!(out.status.success());
    let missing = Store::new(dir.path(), "missing");
    missing.fails(&["contact", "list"], 4);
    assert!(!missing.path.exists());

    // sync: no relay known (exit 2), relay unreachable (exit 5), work stays local.
    let solo = Store::new(dir.path(), "solo");
    solo.ok(&["init", "--team", "Solo", "--name", "Kim", "--area", "Park"]);
    solo.fails(&["sync"], 2);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    solo.add(&["--area", "park"]);
    solo.fails(&["--relay", &format!("http://127.0.0.1:{port}"), "sync"], 5);
    assert_eq!(solo.contacts().len(), 1);

    // Unknown commands and flags.
    lead.fails(&["frobnicate"], 2);
    let out = lead.run(&["contact", "add", "--colour", "red"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn every_command_has_help_with_examples() {
    let s = Store::new(Path::new("/nonexistent"), "x");
    let top = s.ok(&["--help"]);
    assert!(top.contains("streetsync demo") && top.contains("Exit codes"));
    for cmd in [
        vec!["init"],
        vec!["invite"],
        vec!["join"],
        vec!["members"],
        vec!["revoke"],
        vec!["contact", "add"],
        vec!["contact", "list"],
        vec!["contact", "show"],
        vec!["contact", "edit"],
        vec!["approve"],
        vec!["ask"],
        vec!["comment"],
        vec!["answer"],
        vec!["inbox"],
        vec!["clients", "list"],
        vec!["referral", "add"],
        vec!["referral", "revoke-consent"],
        vec!["directory", "add"],
        vec!["directory", "list"],
        vec!["directory", "edit"],
        vec!["stats"],
        vec!["export"],
        vec!["sync"],
        vec!["erase"],
        vec!["history"],
        vec!["demo"],
    ] {
        let mut a = cmd.clone();
        a.push("--help");
        let h = s.ok(&a);
        assert!(h.contains("Example"), "{cmd:?} has no example:\n{h}");
    }
}

#[test]
fn the_demo_runs_the_whole_product() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::new(dir.path(), "unused");
    let out = s.ok(&["demo"]);
    // Convergence checked here, not taken from the demo's own verdict: the note as each device
    // holds it after the concurrent edits, equal, and with both edits in it.
    let note_of = |device: &str| {
        out.lines()
            .find_map(|l| l.trim_start().strip_prefix(device))
            .map(|rest| rest.trim().trim_matches('"').to_owned())
            .unwrap_or_else(|| panic!("no {device:?} line in:\n{out}"))
    };
    let (phone, office) = (note_of("phone:"), note_of("office:"));
    assert_eq!(phone, office, "the two devices differ after sync");
    assert!(
        office.starts_with("[Rückruf Jobcenter erledigt] ")
            && office.ends_with(" Termin am Montag um 10 Uhr vereinbart."),
        "both concurrent edits survive the merge: {office:?}"
    );
    for needle in [
        "relay on http://127.0.0.1:",
        "both phones joined",
        "child-protection concern",
        "inbox has 1 question",
        "Sam's phone shows 'approved'",
        "<3",
        "Referrals per partner organisation",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
    assert!(!s.path.exists());
}

#[test]
fn the_demo_keeps_its_stores_for_the_desk() {
    let dir = tempfile::tempdir().unwrap();
    let kept = dir.path().join("kept");
    let s = Store::new(dir.path(), "unused");
    let out = s.ok(&["demo", "--keep", kept.to_str().unwrap()]);
    let lead_store = kept.join("lea-office.db");
    // The last lines are the commands that bring the relay back and open Lea's desk.
    let desk_line = format!("streetsync desk --store {}", lead_store.display());
    assert!(out.contains(&desk_line), "missing {desk_line:?} in:\n{out}");
    assert!(out.contains("streetsync-relay --bind 127.0.0.1:"), "{out}");
    assert!(
        out.contains(&format!("--data-dir {}", kept.join("relay").display())),
        "{out}"
    );
    for name in ["lea-office", "sam-phone", "kim-phone"] {
        assert!(kept.join(format!("{name}.db")).exists(), "{name} not kept");
    }

    // The kept stores open with the passphrase (Store::cmd sets STREETSYNC_PASSPHRASE) and hold
    // the demo's data: Lea sees all 48 contacts and the team of three.
    let lea = Store { path: lead_store };
    assert_eq!(lea.contacts().len(), 48);
    assert_eq!(
        lea.json(&["members"])["members"].as_array().unwrap().len(),
        3
    );
    let sam = Store {
        path: kept.join("sam-phone.db"),
    };
    let approved = sam
        .contacts()
        .into_iter()
        .filter(|c| c["review"] == "approved")
        .count();
    assert_eq!(approved, 1, "Sam's approved contact is kept");

    // The relay's data is kept too: a relay started on it at the remembered address serves the
    // lead's sync, and a worker's new contact reaches the lead through it.
    let config: Value =
        serde_json::from_slice(&std::fs::read(kept.join("lea-office.db.config.json")).unwrap())
            .unwrap();
    let url = config["relay"].as_str().unwrap();
    let relay = Relay::start_on(&kept.join("relay"), url.strip_prefix("http://").unwrap());
    assert_eq!(relay.url(), url);
    sam.add(&[
        "--area",
        "stadtpark",
        "--date",
        "2026-11-02",
        "--persons",
        "1",
        "--note",
        "After the demo",
        "--submit",
    ]);
    sam.ok(&["sync"]);
    lea.ok(&["sync"]);
    assert_eq!(lea.contacts().len(), 49);

    // A folder with files in it is refused, and nothing in it is touched.
    let err = s.fails(&["demo", "--keep", kept.to_str().unwrap()], 2);
    assert!(err.contains("not empty"), "{err}");
    assert_eq!(lea.contacts().len(), 49);
}
