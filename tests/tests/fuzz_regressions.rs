//! Replays the fuzzers' inputs on the stable toolchain, without libFuzzer: every crash fixture in
//! `fuzz/regressions/<target>/` and every seed in `fuzz/seeds/<target>/` goes through the same
//! target functions the fuzzers run (`fuzz/src/targets.rs`, included here by path), and every
//! document input is also merged into a real store with `Workspace::apply_remote`.
//!
//! `write_seeds` (ignored) makes the seed files from real data:
//! `cargo test -p streetsync-tests --test fuzz_regressions -- --ignored write_seeds`.
#![allow(clippy::unwrap_used, missing_docs)]

#[path = "../../fuzz/src/targets.rs"]
mod targets;

use std::path::{Path, PathBuf};

use chrono::{NaiveDate, NaiveTime};
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use streetsync_core::*;
use streetsync_wire as wire;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The files of `fuzz/<kind>/<target>/`, sorted; none if the folder does not exist.
fn inputs(kind: &str, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = fuzz_dir().join(kind).join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            p.is_file() && !name.starts_with('.') && !name.ends_with(".md")
        })
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

#[test]
fn every_fixture_and_seed_replays_without_a_panic() {
    let mut failures = Vec::new();
    let mut count = 0;
    for target in targets::TARGETS {
        let seeds = inputs("seeds", target);
        assert!(!seeds.is_empty(), "fuzz/seeds/{target}/ holds no seed");
        for (path, data) in seeds.iter().chain(inputs("regressions", target).iter()) {
            count += 1;
            if std::panic::catch_unwind(|| targets::run(target, data)).is_err() {
                failures.push(path.display().to_string());
            }
        }
    }
    assert!(failures.is_empty(), "inputs that panic: {failures:#?}");
    println!("{count} fuzz inputs replayed");
}

/// The seeds reach past the first checks of their decoders (a seed that fails at once teaches the
/// fuzzer nothing about what lies behind it).
#[test]
fn seeds_are_accepted_by_their_decoders() {
    use streetsync_core::testing::*;
    let seed = |target: &str, name: &str| {
        std::fs::read(fuzz_dir().join("seeds").join(target).join(name)).unwrap()
    };
    assert!(open_sealed(&seed("sealed_blob", "document.sealed")));
    assert!(!open_sealed(&seed("sealed_blob", "tampered.sealed")));
    for name in ["valid.txt", "typed.txt", "other.txt"] {
        assert!(
            parse_invite_code(&String::from_utf8(seed("invite_code", name)).unwrap()),
            "{name}"
        );
    }
    for name in ["keys.postcard", "keys-3.postcard"] {
        assert!(decode_bundle_message(&seed("bundle", name)), "{name}");
    }
    for name in [
        "base-contact.automerge",
        "base-client.automerge",
        "base-team.automerge",
        "doc-then-changes.automerge",
    ] {
        assert!(merge_document(&seed("document", name)), "{name}");
    }
    for name in ["change.json", "snapshot.json", "tombstone.json"] {
        let env: wire::Envelope = serde_json::from_slice(&seed("envelope", name)).unwrap();
        env.validate_shape().unwrap();
    }
    wire::auth::AuthHeader::parse(&String::from_utf8(seed("auth_header", "header.txt")).unwrap())
        .unwrap();
}

/// The replay covers what is committed: the target list is fuzz/Cargo.toml's (what `smoke.sh`
/// fuzzes), every folder under `fuzz/regressions/` and `fuzz/seeds/` names one of them (a renamed
/// folder would otherwise be replayed by nobody), and every file in them is one of the inputs the
/// replay reads.
#[test]
fn regression_folders_name_real_targets() {
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    let mut bins = Vec::new();
    let mut in_bin = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
        } else if in_bin && let Some(v) = line.strip_prefix("name") {
            bins.push(
                v.trim_start_matches([' ', '='])
                    .trim()
                    .trim_matches('"')
                    .to_owned(),
            );
        }
    }
    assert_eq!(
        bins,
        targets::TARGETS,
        "fuzz/src/targets.rs TARGETS must list fuzz/Cargo.toml's [[bin]] targets"
    );
    for kind in ["regressions", "seeds"] {
        let entries = std::fs::read_dir(fuzz_dir().join(kind))
            .unwrap_or_else(|e| panic!("fuzz/{kind}/: {e}"));
        for e in entries {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            assert!(
                e.path().is_dir(),
                "fuzz/{kind}/{name} is not a target folder"
            );
            assert!(
                targets::TARGETS.contains(&name.as_str()),
                "fuzz/{kind}/{name} names no fuzz target, so its inputs would replay nowhere"
            );
            let files = std::fs::read_dir(e.path())
                .unwrap()
                .map(|f| f.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|f| !f.starts_with('.') && !f.ends_with(".md"))
                .count();
            assert_eq!(
                inputs(kind, &name).len(),
                files,
                "fuzz/{kind}/{name}: every file is replayed"
            );
        }
    }
    // The caught panic sites kept as fixtures (smoke.sh fails on a caught-* site not among them).
    let caught = inputs("regressions", "document")
        .iter()
        .filter(|(p, _)| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("caught-")
        })
        .count();
    assert!(
        caught > 0,
        "fuzz/regressions/document/ holds its caught-* fixtures"
    );
}

/// A store with a team, a partner, a full contact and a client.
struct Fixture {
    _dir: tempfile::TempDir,
    ws: Workspace,
    contact: RecordId,
    client: RecordId,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::open(
        dir.path().join("device.db"),
        KeySource::Key(StorageKey::from_bytes(&[9; 32]).unwrap()),
    )
    .unwrap();
    ws.create_team(TeamSetup {
        team_name: "Streetwork Mitte".into(),
        member_name: "Lea (Leitung)".into(),
        areas: vec!["Hauptbahnhof".into(), "Stadtpark".into(), "Südstadt".into()],
        topics: vec![],
        materials: vec![],
    })
    .unwrap();
    let partner = ws
        .add_partner(PartnerDraft {
            name: "Suchtberatung Mitte".into(),
            offers: vec!["Beratung".into(), "Substitution".into()],
            contact_person: "Frau Öztürk".into(),
            phone: "+49 30 1234567".into(),
            address: "Lindenallee 5".into(),
            notes: "Offene Sprechstunde dienstags.".into(),
        })
        .unwrap();
    ws.add_catalog_entry(Catalog::Area, "Skatepark Süd")
        .unwrap();
    let client = ws
        .create_client(ClientDraft {
            alias: Some("M.".into()),
            age_band: AgeBand::From21To26,
            gender: Gender::Diverse,
            consents: vec![Consent {
                scope: "Weitergabe Name und Anliegen".into(),
                recipient: "Suchtberatung Mitte".into(),
                purpose: "Terminvereinbarung".into(),
                given_on: NaiveDate::from_ymd_opt(2026, 9, 1).unwrap(),
                revoked_on: None,
            }],
            notes: "Kennt das Café Auszeit.".into(),
            ..ClientDraft::new("MA-1990-K")
        })
        .unwrap();
    let mut d = ContactDraft::new(
        NaiveDate::from_ymd_opt(2026, 9, 3).unwrap(),
        NaiveTime::from_hms_opt(14, 30, 0).unwrap(),
        "hauptbahnhof",
    );
    d.end_time = NaiveTime::from_hms_opt(15, 5, 0);
    d.place = "Nordausgang, Brunnen".into();
    d.location = Some(CoarseLocation::new(52.52, 13.37).unwrap());
    d.setting = Setting::Street;
    d.persons = 2;
    d.first_contact = true;
    d.age_band = AgeBand::From21To26;
    d.gender = Gender::Mixed;
    d.client_code = Some("MA-1990-K".into());
    d.housing = Housing::Rough;
    d.topics = vec!["wohnen".into(), "sucht".into()];
    d.interventions = vec![Intervention::Conversation, Intervention::Referral];
    d.materials = vec![MaterialCount {
        material_id: "essen".into(),
        count: 2,
    }];
    d.referrals = vec![Referral {
        id: "r1".into(),
        partner_id: partner.id.clone(),
        reason: "Substitution".into(),
        consent: Some(Consent {
            scope: "Name, Anliegen".into(),
            recipient: partner.name.clone(),
            purpose: "Termin".into(),
            given_on: NaiveDate::from_ymd_opt(2026, 9, 3).unwrap(),
            revoked_on: None,
        }),
        outcome: ReferralOutcome::Open,
    }];
    d.safeguarding = true;
    d.note = "Schläft seit zwei Wochen draußen, möchte zur Suchtberatung.".into();
    let contact = ws.create_contact(d.clone()).unwrap();
    d.note.push_str(" Termin am Donnerstag vereinbart.");
    d.materials[0].count = 5;
    ws.update_contact(contact.id, d).unwrap();
    ws.submit_contact(contact.id).unwrap();
    ws.request_changes(contact.id, "Welche Beratungsstelle genau?")
        .unwrap();
    ws.answer_contact(contact.id, "Die Suchtberatung Mitte.")
        .unwrap();
    Fixture {
        _dir: dir,
        ws,
        contact: contact.id,
        client: client.id,
    }
}

/// Every document input (as it is and with valid chunk checksums) merged into a real store as a
/// teammate's changes: into the store's own contact and client, into a record it does not hold,
/// and into a fresh copy of each base seed document (`base-*.automerge`, what the fuzzer's
/// `receive::merge_into_existing` merges into). Each call returns (an error is fine), a record that
/// took the input still loads, and the store keeps working afterwards.
#[test]
fn document_inputs_merge_into_a_store_without_a_panic() {
    let f = fixture();
    let bases: Vec<Vec<u8>> = inputs("seeds", "document")
        .into_iter()
        .filter(|(p, _)| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("base-")
        })
        .map(|(_, b)| b)
        .collect();
    assert_eq!(bases.len(), 3);
    let mut n = 0;
    for kind in ["seeds", "regressions"] {
        for (path, raw) in inputs(kind, "document") {
            let fixed = targets::with_valid_checksums(&raw);
            for data in [Some(&raw), fixed.as_ref()].into_iter().flatten() {
                let mut targets_ids = vec![
                    (f.contact, None),
                    (f.client, None),
                    (RecordId::random(), None),
                ];
                targets_ids.extend(bases.iter().map(|b| (RecordId::random(), Some(b))));
                for (id, base) in targets_ids {
                    n += 1;
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        if let Some(base) = base {
                            let _ = f.ws.apply_remote(id, base);
                        }
                        f.ws.apply_remote(id, data).is_ok()
                    }));
                    let applied =
                        r.unwrap_or_else(|_| panic!("{} panics in apply_remote", path.display()));
                    // What the store accepted, it can read back.
                    if applied && let Err(e) = f.ws.export_document(id) {
                        panic!("{} leaves record {id} unreadable: {e}", path.display());
                    }
                }
            }
        }
    }
    assert!(n > 0);
    // The inputs may legitimately delete or change the records (apply_remote checks no author);
    // the store must stay readable and undamaged.
    f.ws.list_contacts(&ContactFilter::default()).unwrap();
    f.ws.list_clients(&ClientFilter::default()).unwrap();
    f.ws.team().unwrap();
    assert_eq!(f.ws.damaged_records().unwrap(), Vec::<RecordId>::new());
}

// ---- seeds -------------------------------------------------------------------------------

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = fuzz_dir().join("seeds").join(target);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    // The `document` regressions are changes to these exact documents (and the fuzz target
    // compiles them in): never replace them.
    if name.starts_with("base-") && path.exists() {
        return;
    }
    std::fs::write(path, bytes).unwrap();
}

fn signed_envelope(
    key: &Ed25519KeyPair,
    team: TeamId,
    kind: wire::EnvelopeKind,
    ct: Vec<u8>,
) -> wire::Envelope {
    let mut env = wire::Envelope {
        v: wire::ENVELOPE_VERSION,
        team,
        doc: RecordId::from_bytes([3; 16]),
        id: wire::EnvelopeId::from_bytes([4; 16]),
        kind,
        epoch: 1,
        author: DeviceId::from_public_key(key.public_key().as_ref()),
        covers: if kind == wire::EnvelopeKind::Snapshot {
            42
        } else {
            0
        },
        nonce: [5; 12],
        ciphertext: ct,
        sig: [0; 64],
    };
    env.sign(key);
    env
}

/// RFC 4648 base32 without padding (what invite codes use).
fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut out, mut buf, mut bits) = (String::new(), 0u32, 0);
    for &b in bytes {
        buf = (buf << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buf >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buf << (5 - bits)) & 31) as usize] as char);
    }
    out
}

fn sha256(data: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .to_vec()
}

/// An invite code for `secret`, as `membership::InviteSecret::code` writes it.
fn invite_code(secret: [u8; 16]) -> String {
    let mut v = b"streetsync-invite-check".to_vec();
    v.extend_from_slice(&secret);
    let mut bytes = secret.to_vec();
    bytes.push(sha256(&v)[0]);
    let text = base32(&bytes);
    text.as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("-")
}

/// A blob sealed as `crypto::Sealer` seals documents, under the key `testing::open_sealed` uses.
fn sealed_document(plaintext: &[u8]) -> Vec<u8> {
    use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
    struct Len;
    impl ring::hkdf::KeyType for Len {
        fn len(&self) -> usize {
            32
        }
    }
    let prk = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, b"streetsync").extract(&[42; 32]);
    let mut k = [0u8; 32];
    prk.expand(&[b"streetsync/at-rest/v1"], Len)
        .unwrap()
        .fill(&mut k)
        .unwrap();
    let key = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &k).unwrap());
    let mut aad = b"ss-at-rest-v1".to_vec();
    aad.extend_from_slice(&[2, 1]);
    aad.extend_from_slice(b"fuzz");
    let nonce = [6u8; 12];
    let mut body = plaintext.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad),
        &mut body,
    )
    .unwrap();
    let mut out = vec![1u8];
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&body);
    out
}

fn varint(mut n: usize, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn postcard_str(s: &str, out: &mut Vec<u8>) {
    varint(s.len(), out);
    out.extend_from_slice(s.as_bytes());
}

fn postcard_bytes(b: &[u8], out: &mut Vec<u8>) {
    varint(b.len(), out);
    out.extend_from_slice(b);
}

/// `Vec<TeamKey>` in postcard: length, then per key its epoch (varint) and 32 key bytes.
fn postcard_keys(epochs: &[u32], out: &mut Vec<u8>) {
    varint(epochs.len(), out);
    for &e in epochs {
        varint(e as usize, out);
        out.extend_from_slice(&[e as u8; 32]);
    }
}

#[test]
#[ignore = "writes fuzz/seeds/; run by hand when the formats change"]
fn write_seeds() {
    // document: real documents and change bytes made by the core.
    let f = fixture();
    let team = f.ws.team().unwrap();
    // The Team document's id is kept in clear in the store's `meta` table.
    let team_doc_id = {
        let db = rusqlite::Connection::open(f.ws.path()).unwrap();
        let raw: Vec<u8> = db
            .query_row(
                "SELECT value FROM meta WHERE key = 'team_doc_id'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        RecordId::from_bytes(raw.try_into().unwrap())
    };
    write(
        "document",
        "base-contact.automerge",
        &f.ws.export_document(f.contact).unwrap(),
    );
    write(
        "document",
        "base-client.automerge",
        &f.ws.export_document(f.client).unwrap(),
    );
    let team_doc = f.ws.export_document(team_doc_id).unwrap();
    write("document", "base-team.automerge", &team_doc);
    for (i, e) in f.ws.pending_outbox(100).unwrap().iter().enumerate() {
        write("document", &format!("outbox-{i:02}.changes"), &e.changes);
    }
    // Changes from a second writer (another actor) and a deleted record.
    let other = Workspace::open(
        f.ws.path(),
        KeySource::Key(StorageKey::from_bytes(&[9; 32]).unwrap()),
    )
    .unwrap();
    let before = other.pending_outbox(1000).unwrap().len();
    other
        .comment_contact(f.contact, "Zweites Gerät: Rückmeldung kommt.")
        .unwrap();
    other.delete_client(f.client).unwrap();
    for (i, e) in other.pending_outbox(1000).unwrap()[before..]
        .iter()
        .enumerate()
    {
        write(
            "document",
            &format!("second-actor-{i:02}.changes"),
            &e.changes,
        );
    }
    let mut concatenated = f.ws.export_document(f.contact).unwrap();
    concatenated.extend_from_slice(&other.pending_outbox(1000).unwrap()[before].changes);
    write("document", "doc-then-changes.automerge", &concatenated);

    // envelope and api_json: real signed envelopes and every body of the protocol.
    let key = Ed25519KeyPair::from_seed_unchecked(&[7; 32]).unwrap();
    let device = DeviceId::from_public_key(key.public_key().as_ref());
    let change = signed_envelope(&key, team.id, wire::EnvelopeKind::Change, vec![0xab; 48]);
    let snapshot = signed_envelope(
        &key,
        team.id,
        wire::EnvelopeKind::Snapshot,
        team_doc.clone(),
    );
    let tombstone = signed_envelope(&key, team.id, wire::EnvelopeKind::Tombstone, vec![]);
    for (name, env) in [
        ("change", &change),
        ("snapshot", &snapshot),
        ("tombstone", &tombstone),
    ] {
        write(
            "envelope",
            &format!("{name}.json"),
            &serde_json::to_vec_pretty(env).unwrap(),
        );
    }
    let keys = wire::DeviceKeys {
        id: device,
        sign_pk: key.public_key().as_ref().try_into().unwrap(),
        kx_pk: [8; 32],
        role: Role::Lead,
    };
    let json = |v: serde_json::Value| serde_json::to_vec(&v).unwrap();
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        (
            "push_request",
            serde_json::to_vec(&wire::PushRequest {
                envelopes: vec![change.clone(), tombstone.clone()],
            })
            .unwrap(),
        ),
        (
            "pull_response",
            serde_json::to_vec(&wire::PullResponse {
                entries: vec![
                    wire::PullEntry {
                        seq: 1,
                        envelope: change.clone(),
                    },
                    wire::PullEntry {
                        seq: 7,
                        envelope: snapshot.clone(),
                    },
                ],
                head: 9,
                more: true,
            })
            .unwrap(),
        ),
        (
            "create_invite",
            serde_json::to_vec(&wire::CreateInvite {
                id: wire::InviteId::from_bytes([1; 16]),
                auth_key: [2; 32],
                role: Role::Worker,
                expires_ms: 1_790_000_000_000,
                blob: vec![9; 80],
            })
            .unwrap(),
        ),
        (
            "redeem_invite",
            serde_json::to_vec(&wire::RedeemInvite {
                device: keys.clone(),
                proof: [3; 32],
                confirm: [4; 32],
            })
            .unwrap(),
        ),
        (
            "bundle_list",
            serde_json::to_vec(&wire::BundleList {
                bundles: vec![wire::Bundle {
                    id: 12,
                    from: device,
                    blob: vec![1; 90],
                }],
                more: true,
            })
            .unwrap(),
        ),
        (
            "error_clock_skew",
            serde_json::to_vec(&wire::ErrorBody {
                error: wire::ErrorCode::ClockSkew,
                message: "Your clock is off.".into(),
                server_time: Some(1_790_000_000_000),
                retry_after_ms: None,
            })
            .unwrap(),
        ),
        (
            "error_rate_limited",
            serde_json::to_vec(&wire::ErrorBody {
                error: wire::ErrorCode::RateLimited,
                message: "Slow down.".into(),
                server_time: None,
                retry_after_ms: Some(250),
            })
            .unwrap(),
        ),
        (
            "create_team",
            serde_json::to_vec(&wire::CreateTeam {
                team: team.id,
                device: keys.clone(),
            })
            .unwrap(),
        ),
        (
            "device_list",
            serde_json::to_vec(&wire::DeviceList {
                devices: vec![wire::DeviceInfo {
                    keys: keys.clone(),
                    revoked: false,
                }],
            })
            .unwrap(),
        ),
        (
            "post_bundle",
            serde_json::to_vec(&wire::PostBundle {
                to: device,
                blob: vec![4; 92],
            })
            .unwrap(),
        ),
        (
            "push_response",
            serde_json::to_vec(&wire::PushResponse {
                results: vec![wire::PushResult {
                    id: change.id,
                    seq: 3,
                    duplicate: false,
                }],
            })
            .unwrap(),
        ),
        (
            "invite_list",
            serde_json::to_vec(&wire::InviteList {
                invites: vec![wire::InviteInfo {
                    id: wire::InviteId::from_bytes([1; 16]),
                    role: Role::Worker,
                    expires_ms: 1_790_000_000_000,
                    redeemed_by: Some(keys.clone()),
                    confirm: Some([4; 32]),
                }],
            })
            .unwrap(),
        ),
        (
            "redeem_response",
            serde_json::to_vec(&wire::RedeemResponse {
                team: team.id,
                blob: vec![5; 70],
            })
            .unwrap(),
        ),
        (
            "small_bodies",
            json(serde_json::json!({"id": 3, "seq": 4, "dropped": 2, "head": 9})),
        ),
    ];
    for (name, body) in bodies {
        write("api_json", &format!("{name}.json"), &body);
    }

    // auth_header: a real header, base64url and an id.
    let header = wire::auth::authorization_header(
        &key,
        device,
        "POST",
        &format!("/v1/teams/{}/push", team.id),
        b"{}",
        1_790_000_000_000,
        [0xaa; 16],
    );
    write("auth_header", "header.txt", header.as_bytes());
    write(
        "auth_header",
        "b64.txt",
        wire::b64::encode(&[0xfe; 64]).as_bytes(),
    );
    write("auth_header", "id.txt", team.id.to_string().as_bytes());

    // sealed_blob: a blob that opens, one that does not, and a key bundle's shape.
    write(
        "sealed_blob",
        "document.sealed",
        &sealed_document(b"an Automerge document"),
    );
    let mut tampered = sealed_document(b"an Automerge document");
    *tampered.last_mut().unwrap() ^= 1;
    write("sealed_blob", "tampered.sealed", &tampered);
    let identity = DeviceIdentity::generate().unwrap();
    let bundle =
        streetsync_core::seal_to_device(&identity.kx_public(), b"a bundle message").unwrap();
    write("sealed_blob", "key-bundle.sealed", &bundle);

    // invite_code: a valid code, and the same as a person might type it.
    let code = invite_code([0x5a; 16]);
    write("invite_code", "valid.txt", code.as_bytes());
    write(
        "invite_code",
        "typed.txt",
        code.to_lowercase()
            .replace('-', " ")
            .replace('o', "0")
            .as_bytes(),
    );
    write(
        "invite_code",
        "other.txt",
        invite_code(*b"0123456789abcdef").as_bytes(),
    );

    // bundle: postcard of `BundleMessage::Keys` (variant 0: a lead's key grant).
    for (name, epochs) in [
        ("keys.postcard", &[1u32, 2][..]),
        ("keys-3.postcard", &[1, 2, 3][..]),
    ] {
        let mut grant = vec![0u8];
        postcard_str(&team.id.to_string(), &mut grant);
        postcard_keys(epochs, &mut grant);
        postcard_str(&device.to_string(), &mut grant);
        postcard_bytes(&[7; 64], &mut grant);
        write("bundle", name, &grant);
    }
}
