//! The adversarial-relay suite (issue 12, deliverable 7). Each test plays one attack of the
//! security review, by the relay's operator (editing the relay's own SQLite file, rewriting its
//! answers) or by a member, and asserts the SECURE outcome: the attack is refused or reported,
//! and the attacker decrypts nothing.
//!
//! A test collects every security property it finds broken ([`Findings`]) and fails once at the
//! end with the whole list, so one run shows how far an attack gets, not just its first symptom.
//! What is a precondition of the attack (the operator found the open invite, the relay stored the
//! forged envelope) is a plain `assert!`: if that fails, the harness is wrong, not the core.
//!
//! "The attacker decrypts nothing" is checked the same way everywhere: every envelope in the
//! relay's log after the attack point is tried with every key the attacker holds (keys it forged,
//! and keys from every bundle addressed to its device, opened with its X25519 key).
#![allow(clippy::unwrap_used, missing_docs)]

#[path = "common/attacker.rs"]
mod attacker;
mod common;
#[path = "common/operator.rs"]
mod operator;

use std::panic::AssertUnwindSafe;

use attacker::*;
use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, AutoCommit, LoadOptions, ReadDoc, TextEncoding};
use common::*;
use futures_util::FutureExt;
use operator::*;

use streetsync_core::*;
use streetsync_wire::{EnvelopeKind, PushRequest, PushResponse, PushResult};

// ---- the scene ---------------------------------------------------------------------------------

/// A team on a relay the test controls: the operator's harness, a rewriting proxy every device
/// talks through, the founding lead and its workers.
struct Scene {
    op: Operator,
    proxy: RewritingProxy,
    dir: tempfile::TempDir,
    _relay_dir: tempfile::TempDir,
    team: TeamId,
    lead: Device,
    workers: Vec<Device>,
    /// The invite code each worker joined with: a member's only way to its own team keys here.
    codes: Vec<String>,
}

impl Scene {
    async fn new(workers: usize) -> Scene {
        Self::with(workers, SyncOptions::default()).await
    }

    async fn with(workers: usize, worker_options: SyncOptions) -> Scene {
        let relay_dir = tempfile::tempdir().unwrap();
        let op = Operator::start(relay_dir.path());
        let proxy = RewritingProxy::start(op.addr()).await;
        let dir = tempfile::tempdir().unwrap();
        let lead = Device::open(dir.path(), "lead", &proxy.url());
        let team = lead.ws.create_team(setup()).unwrap().id;
        sync(&lead).await;
        let mut s = Scene {
            op,
            proxy,
            dir,
            _relay_dir: relay_dir,
            team,
            lead,
            workers: Vec::new(),
            codes: Vec::new(),
        };
        for i in 0..workers {
            let (d, code) = s
                .invite(&format!("worker{i}"), Role::Worker, worker_options.clone())
                .await;
            s.workers.push(d);
            s.codes.push(code);
        }
        // The lead puts the new devices on the roster; everyone learns the roster.
        s.sync_all().await;
        s
    }

    fn url(&self) -> String {
        self.proxy.url()
    }

    fn everyone(&self) -> Vec<&Device> {
        std::iter::once(&self.lead).chain(&self.workers).collect()
    }

    /// A device that joins with a fresh invite from the lead; returns it and its code.
    async fn invite(&self, name: &str, role: Role, options: SyncOptions) -> (Device, String) {
        let invite = self
            .lead
            .sync
            .create_invite(name, role, 3600)
            .await
            .unwrap();
        let d = Device::with_options(self.dir.path(), name, &self.url(), options);
        d.sync.join_with_invite(&invite.code).await.unwrap();
        (d, invite.code)
    }

    /// A device that joins now and bootstraps from whatever the relay serves (it syncs once more
    /// so that envelopes held back on the first pass are retried).
    async fn newcomer(&self, name: &str) -> Device {
        let (d, _) = self
            .invite(name, Role::Worker, SyncOptions::default())
            .await;
        settle(&[&d]).await;
        d
    }

    async fn sync_all(&self) {
        for d in self.everyone() {
            sync(d).await;
        }
    }
}

/// A sync that must work (setting the scene up).
async fn sync(d: &Device) -> SyncReport {
    d.sync
        .sync_once(None)
        .await
        .unwrap_or_else(|e| panic!("{} could not sync: {e}", d.name))
}

/// Syncs after an attack: a device may report the attack as an error, so errors are printed and
/// the test goes on; what matters is checked on the devices' state afterwards.
async fn settle(devices: &[&Device]) {
    for d in devices {
        if let Err(e) = d.sync.sync_once(None).await {
            eprintln!("{} reports: {e}", d.name);
        }
    }
}

fn roster_entry(d: &Device, id: DeviceId) -> Option<RosterDevice> {
    d.ws.team().unwrap().device(&id).cloned()
}

/// A roster entry in a failure message (without the keys).
fn entry_text(e: &Option<RosterDevice>) -> String {
    match e {
        Some(e) => format!(
            "{:?} as {:?}{}",
            e.member,
            e.role,
            if e.revoked {
                ", revoked"
            } else {
                ", not revoked"
            }
        ),
        None => "absent".into(),
    }
}

/// Every security property a test finds broken.
#[derive(Default)]
struct Findings(Vec<String>);

impl Findings {
    fn check(&mut self, secure: bool, broken: impl Into<String>) {
        if !secure {
            self.0.push(broken.into());
        }
    }

    fn attacker_reads_nothing(&mut self, attacker: &Attacker, s: &Scene, after: u64) {
        let read = attacker.readable(&s.op, s.team, after);
        self.check(
            read.is_empty(),
            format!(
                "the attacker decrypts {} envelope(s) written after the attack:\n      {}",
                read.len(),
                read.join("\n      ")
            ),
        );
    }

    #[track_caller]
    fn finish(self, attack: &str) {
        assert!(
            self.0.is_empty(),
            "{attack}: {} security propert{} broken:\n  - {}",
            self.0.len(),
            if self.0.len() == 1 { "y" } else { "ies" },
            self.0.join("\n  - ")
        );
    }
}

/// The operator plays the redemption of an open invite: it registers its own device in the
/// relay's table and writes it as the invite's `redeemed_by`. The lead created the invite in good
/// faith; nobody typed its code anywhere.
async fn inject(s: &mut Scene, attacker: &Attacker, role: Role) {
    s.lead
        .sync
        .create_invite("Neue Kollegin", role, 3600)
        .await
        .unwrap();
    let (team, keys) = (s.team, attacker.device_keys(role));
    let changed = s.op.edit(|tx| {
        insert_device(tx, team, &keys)?;
        mark_redeemed(tx, team, role, keys.id)
    });
    assert_eq!(changed, 1, "the operator found the open {role:?} invite");
}

/// Leaves a bundle sealed to each device's X25519 key (as the relay registered it) in its
/// mailbox, claiming to come from `from`.
fn post_bundles(s: &mut Scene, from: DeviceId, to: &[DeviceId], message: &[u8]) {
    let team = s.team;
    let sealed: Vec<(DeviceId, Vec<u8>)> = to
        .iter()
        .map(|id| {
            let keys = s.op.device(team, *id);
            (
                *id,
                streetsync_core::seal_to_device(&keys.kx_pk, message).unwrap(),
            )
        })
        .collect();
    s.op.edit(|tx| {
        for (to, blob) in &sealed {
            insert_bundle(tx, team, from, *to, blob)?;
        }
        Ok(())
    });
}

fn ids(devices: &[&Device]) -> Vec<DeviceId> {
    devices.iter().map(|d| d.ws.device_id()).collect()
}

fn push_path(team: TeamId) -> String {
    format!("/v1/teams/{team}/push")
}

fn has_contact(d: &Device, id: RecordId) -> bool {
    d.ws.get_contact(id).is_ok()
}

// ---- finding 1: the relay decides who joins ------------------------------------------------------

mod injected_device_never_reaches_the_roster {
    use super::*;

    /// The operator injects its device as the redeemer of an open invite of `role`. Afterwards a
    /// lost phone is removed, which today sends every team key to every device on the roster.
    async fn through_an_open_invite(role: Role) {
        let mut s = Scene::new(2).await;
        let mut f = Findings::default();
        let mut attacker = Attacker::new(s.dir.path(), "operator-device");
        inject(&mut s, &attacker, role).await;
        let attack = s.op.head(s.team);

        // The lead's next sync is where today's core takes the relay's word for the redeemer.
        match s.lead.sync.sync_once(None).await {
            Ok(r) => f.check(
                r.devices_enrolled == 0,
                format!("the lead enrolled the operator's device: {r:?}"),
            ),
            Err(e) => eprintln!("the lead's sync reports the forged redemption: {e}"),
        }
        settle(&s.everyone()).await;
        for d in s.everyone() {
            let entry = roster_entry(d, attacker.id());
            f.check(
                entry.is_none(),
                format!(
                    "{}'s roster lists the operator's device: {}",
                    d.name,
                    entry_text(&entry)
                ),
            );
        }

        // Work goes on: notes, then a lost phone is removed (a new epoch for everyone on the
        // roster), then more notes.
        let (w0, lost) = (&s.workers[0], &s.workers[1]);
        w0.contact(1, "GEHEIM nach der Einschleusung");
        settle(&[w0, &s.lead]).await;
        s.lead
            .sync
            .revoke_device(lost.ws.device_id())
            .await
            .unwrap();
        w0.contact(2, "GEHEIM nach dem Widerruf");
        s.lead.contact(3, "GEHEIM der Leitung");
        settle(&[w0, &s.lead, w0]).await;

        let got = attacker.collect_bundles(&s.op);
        f.check(
            got == 0,
            format!("{got} team key(s) were granted to the operator's device"),
        );
        f.attacker_reads_nothing(&attacker, &s, attack);
        f.finish(&format!(
            "operator injects its device through a {role:?} invite"
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lead_invite() {
        through_an_open_invite(Role::Lead).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn worker_invite() {
        through_an_open_invite(Role::Worker).await;
    }

    /// The operator names an existing worker as the redeemer of a lead invite: promotion of a
    /// colluding worker. Its role and name must stay as the lead set them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn existing_worker_is_not_promoted() {
        let mut s = Scene::new(1).await;
        let mut f = Findings::default();
        let (team, worker) = (s.team, s.workers[0].ws.device_id());
        s.lead
            .sync
            .create_invite("Übernahme", Role::Lead, 3600)
            .await
            .unwrap();
        let changed = s.op.edit(|tx| mark_redeemed(tx, team, Role::Lead, worker));
        assert_eq!(changed, 1, "the operator found the open lead invite");
        settle(&s.everyone()).await;
        settle(&s.everyone()).await;
        for d in s.everyone() {
            let entry = roster_entry(d, worker).unwrap();
            f.check(
                (entry.role, entry.member.as_str()) == (Role::Worker, "worker0"),
                format!(
                    "{}'s roster now has the worker as {:?} named {:?}",
                    d.name, entry.role, entry.member
                ),
            );
        }
        let role = s.workers[0].ws.my_role();
        f.check(
            matches!(role, Ok(Role::Worker)),
            format!("the worker's own device now has role {role:?}"),
        );
        f.finish("operator promotes an existing worker through a lead invite");
    }

    /// The operator names the lead itself as the redeemer of a worker invite: demotion.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn existing_lead_is_not_demoted() {
        let mut s = Scene::new(1).await;
        let mut f = Findings::default();
        let (team, lead) = (s.team, s.lead.ws.device_id());
        s.lead
            .sync
            .create_invite("Praktikum", Role::Worker, 3600)
            .await
            .unwrap();
        let changed = s.op.edit(|tx| mark_redeemed(tx, team, Role::Worker, lead));
        assert_eq!(changed, 1, "the operator found the open worker invite");
        settle(&s.everyone()).await;
        settle(&s.everyone()).await;
        for d in s.everyone() {
            let entry = roster_entry(d, lead).unwrap();
            f.check(
                (entry.role, entry.member.as_str()) == (Role::Lead, "Lea"),
                format!(
                    "{}'s roster now has the lead as {:?} named {:?}",
                    d.name, entry.role, entry.member
                ),
            );
        }
        let role = s.lead.ws.my_role();
        f.check(
            matches!(role, Ok(Role::Lead)),
            format!("the lead's own device now has role {role:?}"),
        );
        f.finish("operator demotes the lead through a worker invite");
    }
}

// ---- findings 1 and 2: keys from the relay -------------------------------------------------------

/// After an injection attempt through a lead invite, the operator's device grants every device a
/// key of its own: one for the next epoch (what a genuine rotation would make) and one far ahead.
/// Devices must keep sealing under the genuine epoch, and the attacker must read nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_grant_is_refused() {
    let mut s = Scene::new(2).await;
    let mut f = Findings::default();
    let genuine = s.lead.ws.key_epochs().unwrap();
    let mut attacker = Attacker::new(s.dir.path(), "operator-device");
    inject(&mut s, &attacker, Role::Lead).await;
    settle(&s.everyone()).await;
    let attack = s.op.head(s.team);

    let next = RawKey::forge(genuine.iter().max().unwrap() + 1);
    let far = RawKey::forge(1000);
    attacker.knows(&next);
    attacker.knows(&far);
    let targets = ids(&s.everyone());
    for key in [&next, &far] {
        let message = grant_message(s.team, std::slice::from_ref(key), attacker.identity());
        post_bundles(&mut s, attacker.id(), &targets, &message);
    }
    settle(&s.everyone()).await;
    let notes: Vec<(String, RecordId)> = s
        .everyone()
        .iter()
        .enumerate()
        .map(|(i, d)| {
            (
                d.name.clone(),
                d.contact(i as u32, "GEHEIM nach dem Schlüssel").id,
            )
        })
        .collect();
    settle(&s.everyone()).await;
    settle(&s.everyone()).await;

    for d in s.everyone() {
        let epochs = d.ws.key_epochs().unwrap();
        f.check(
            epochs == genuine,
            format!(
                "{} holds epochs {epochs:?}; the lead created only {genuine:?}",
                d.name
            ),
        );
        for (author, note) in &notes {
            f.check(
                has_contact(d, *note),
                format!("{}'s note did not reach {}", author, d.name),
            );
        }
    }
    for (seq, env) in s.op.log_after(s.team, attack) {
        f.check(
            genuine.contains(&env.epoch),
            format!(
                "seq {seq} by {} is sealed under epoch {}, which no lead created",
                env.author, env.epoch
            ),
        );
    }
    attacker.collect_bundles(&s.op);
    f.attacker_reads_nothing(&attacker, &s, attack);
    f.finish("operator grants its own team key");
}

/// The operator's device grants epoch u32::MAX; then the lead removes a lost phone. The rotation
/// must produce the next genuine epoch (2), new notes must be sealed under it, and the attacker
/// must read nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn epoch_overflow_does_not_outlive_revocation() {
    let mut s = Scene::new(2).await;
    let mut f = Findings::default();
    let mut attacker = Attacker::new(s.dir.path(), "operator-device");
    inject(&mut s, &attacker, Role::Lead).await;
    settle(&s.everyone()).await;
    let attack = s.op.head(s.team);

    let overflow = RawKey::forge(u32::MAX);
    attacker.knows(&overflow);
    let targets = ids(&s.everyone());
    let message = grant_message(s.team, &[overflow], attacker.identity());
    post_bundles(&mut s, attacker.id(), &targets, &message);
    settle(&s.everyone()).await;

    // The lead removes a lost phone: a rotation.
    let lost = s.workers[1].ws.device_id();
    match AssertUnwindSafe(s.lead.sync.revoke_device(lost))
        .catch_unwind()
        .await
    {
        Ok(Ok(())) => {}
        Ok(Err(e)) => f.check(false, format!("revoking the lost phone failed: {e}")),
        Err(panic) => {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            f.check(false, format!("revoking the lost phone panicked: {why}"));
        }
    }
    let rotation = s.op.head(s.team);
    let (lead, w0) = (&s.lead, &s.workers[0]);
    settle(&[w0]).await;
    lead.contact(1, "GEHEIM nach der Rotation (Leitung)");
    w0.contact(2, "GEHEIM nach der Rotation");
    settle(&[lead, w0, lead]).await;

    for d in [lead, w0] {
        let epochs = d.ws.key_epochs().unwrap();
        f.check(
            epochs == [1, 2],
            format!(
                "{} holds epochs {epochs:?} after one rotation, not [1, 2]",
                d.name
            ),
        );
    }
    for (seq, env) in s.op.log_after(s.team, rotation) {
        f.check(
            env.epoch == 2,
            format!(
                "seq {seq} ({:?} by {}) is sealed under epoch {}, not the lead's new epoch 2",
                env.kind, env.author, env.epoch
            ),
        );
    }
    attacker.collect_bundles(&s.op);
    f.attacker_reads_nothing(&attacker, &s, attack);
    f.finish("operator grants epoch u32::MAX before a rotation");
}

// ---- finding 3: receivers ignore `revoked` -------------------------------------------------------

/// A change of the Team document that sets `revoked = false` on B's own roster entry, written on
/// B's copy (B could not read the revocation: it is sealed under the new epoch, so the change is
/// concurrent with it). Automerge lets the concurrent put with the higher op counter win, so B
/// raises its counter first by writing the flag many times in one change; receivers see only
/// the last put.
fn unrevoke_change(b: &Device, team_doc: RecordId) -> Vec<u8> {
    let bytes = b.ws.export_document(team_doc).unwrap();
    let mut doc = AutoCommit::load_with_options(
        &bytes,
        LoadOptions::new().text_encoding(TextEncoding::Utf8CodeUnit),
    )
    .unwrap();
    let mut actor = b.ws.device_id().as_bytes().to_vec();
    actor.extend_from_slice(&random::<8>());
    doc.set_actor(ActorId::from(actor));
    let heads = doc.get_heads();
    let (_, roster) = doc.get(automerge::ROOT, "roster").unwrap().unwrap();
    let me = b.ws.device_id().to_string();
    let entry = (0..doc.length(&roster))
        .filter_map(|i| doc.get(&roster, i).unwrap().map(|(_, obj)| obj))
        .find(|obj| {
            matches!(doc.get(obj, "device_id"), Ok(Some((automerge::Value::Scalar(s), _)))
                if matches!(s.as_ref(), automerge::ScalarValue::Str(t) if t.as_str() == me))
        })
        .expect("B is on its own roster");
    // Alternating values: Automerge drops a put of the value already there.
    for _ in 0..2500 {
        doc.put(&entry, "revoked", true).unwrap();
        doc.put(&entry, "revoked", false).unwrap();
    }
    let _ = doc.commit_with(
        CommitOptions::default()
            .with_message("remove devices".to_owned())
            .with_time(chrono::Utc::now().timestamp()),
    );
    let change = doc.save_after(&heads);
    assert!(!change.is_empty(), "the forged change holds operations");
    change
}

/// Lead A removes lead B. A relay colluding with B keeps accepting B, and B changes the Team
/// document to un-revoke itself. Every other device, and one that joins later, must still list B
/// as revoked and refuse (quarantine) the change; B reads nothing written after its removal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_lead_cannot_unrevoke_itself() {
    let mut s = Scene::new(1).await;
    let mut f = Findings::default();
    let (b, code) = s
        .invite("Leitung B", Role::Lead, SyncOptions::default())
        .await;
    settle(&[&s.lead, &s.workers[0], &b]).await;
    let b_id = b.ws.device_id();
    assert_eq!(
        roster_entry(&s.workers[0], b_id).map(|e| e.role),
        Some(Role::Lead)
    );
    let joined = join_bundle(&s.op, &code);
    let team_doc = joined.team_doc_id;

    s.lead.sync.revoke_device(b_id).await.unwrap();
    let removal = s.op.head(s.team);
    let w = &s.workers[0];
    s.lead.contact(1, "GEHEIM nach dem Widerruf (A)");
    w.contact(2, "GEHEIM nach dem Widerruf (W)");
    settle(&[&s.lead, w, &s.lead]).await;

    // The colluding relay serves B again; B pushes its change as it would any other.
    let team = s.team;
    s.op.edit(|tx| set_revoked(tx, team, b_id, false));
    let key = joined.keys.iter().max_by_key(|k| k.epoch).unwrap();
    let change = unrevoke_change(&b, team_doc);
    let env = seal_envelope(
        team,
        team_doc,
        EnvelopeKind::Change,
        0,
        key,
        b.ws.identity(),
        &change,
    );
    let (status, body) = call_as(
        &s.op.url(),
        b.ws.identity(),
        "POST",
        &push_path(team),
        &PushRequest {
            envelopes: vec![env.clone()],
        },
    )
    .await;
    assert_eq!(status, 200, "the colluding relay stores B's change: {body}");

    let w = &s.workers[0];
    settle(&[&s.lead, w]).await;
    let newcomer = s.newcomer("neu").await;
    for d in [&s.lead, w, &newcomer] {
        let entry = roster_entry(d, b_id);
        f.check(
            entry.as_ref().map(|e| e.revoked) == Some(true),
            format!("{}'s roster has B {}", d.name, entry_text(&entry)),
        );
        let refused = d
            .sync
            .quarantine_report()
            .unwrap()
            .iter()
            .any(|q| q.author == b_id && q.doc == team_doc);
        f.check(
            refused,
            format!(
                "{} did not refuse (quarantine) B's Team document change",
                d.name
            ),
        );
    }
    let mut b_reads = Attacker::member(b.ws.clone(), joined.keys.clone());
    b_reads.collect_bundles(&s.op);
    f.attacker_reads_nothing(&b_reads, &s, removal);
    f.finish("a revoked lead un-revokes itself through a colluding relay");
}

// ---- finding 6: snapshots skip the authorship check ---------------------------------------------

/// A worker uploads a snapshot of a contact it wrote, with an extra change whose actor is the
/// lead's device id. No device may then show the lead as an author of that record (the lead never
/// touched it), and compaction must not cost the record's genuine content.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_snapshot_author_is_refused() {
    let mut s = Scene::new(2).await;
    let mut f = Findings::default();
    let (m, other) = (&s.workers[0], &s.workers[1]);
    let lead_id = s.lead.ws.device_id();
    let c = m.contact(1, "echte Notiz von worker0");
    settle(&[m, &s.lead, other]).await;
    let joined = join_bundle(&s.op, &s.codes[0]);

    let bytes = m.ws.export_document(c.id).unwrap();
    let mut doc = AutoCommit::load_with_options(
        &bytes,
        LoadOptions::new().text_encoding(TextEncoding::Utf8CodeUnit),
    )
    .unwrap();
    let mut actor = lead_id.as_bytes().to_vec();
    actor.extend_from_slice(&random::<8>());
    doc.set_actor(ActorId::from(actor));
    doc.put(automerge::ROOT, "place", "vom Lead gefälscht")
        .unwrap();
    let _ = doc.commit_with(
        CommitOptions::default()
            .with_message("edit contact".to_owned())
            .with_time(chrono::Utc::now().timestamp()),
    );
    let snapshot = doc.save();
    let key = joined.keys.iter().max_by_key(|k| k.epoch).unwrap();
    let env = seal_envelope(
        s.team,
        c.id,
        EnvelopeKind::Snapshot,
        s.op.head(s.team),
        key,
        m.ws.identity(),
        &snapshot,
    );
    // An honest relay refuses a worker's snapshot (only leads' snapshots are accepted, because
    // a snapshot carries other members' changes on its maker's word).
    let path = format!("/v1/teams/{}/snapshot", s.team);
    let (status, body) = call_as(&s.op.url(), m.ws.identity(), "POST", &path, &env).await;
    f.check(
        status == 403,
        format!("an honest relay stores a worker's snapshot: {status} {body}"),
    );
    // The operator colludes: it makes the member a lead in its own table, so the relay stores the
    // snapshot and drops every envelope it covers.
    let (team, member) = (s.team, m.ws.device_id());
    s.op.edit(|tx| set_role(tx, team, member, Role::Lead));
    let (m, other) = (&s.workers[0], &s.workers[1]);
    let (status, body) = call_as(&s.op.url(), m.ws.identity(), "POST", &path, &env).await;
    assert_eq!(
        status, 200,
        "the colluding relay stores the worker's snapshot: {body}"
    );

    settle(&[&s.lead, other]).await;
    let newcomer = s.newcomer("neu").await;
    for d in [&s.lead, other, &newcomer] {
        match d.ws.history(c.id) {
            Ok(h) => {
                let forged: Vec<_> = h.iter().filter(|e| e.device == Some(lead_id)).collect();
                f.check(
                    forged.is_empty(),
                    format!(
                        "{}'s history shows the lead as an author: {forged:?}",
                        d.name
                    ),
                );
            }
            Err(e) => f.check(
                false,
                format!("{} has no history of the record: {e}", d.name),
            ),
        }
        let note = d.ws.get_contact(c.id).map(|c| c.fields.note);
        f.check(
            note.as_deref().ok() == Some("echte Notiz von worker0"),
            format!("{} lost the record's genuine content: {note:?}", d.name),
        );
    }
    f.finish("a member forges another device's authorship inside a snapshot");
}

// ---- finding 4: silent discard -------------------------------------------------------------------

mod silent_discard_is_detected {
    use super::*;

    /// The operator registers its device as a lead in the relay's own table and pushes a
    /// tombstone for `doc`. The relay then deletes the record's envelopes and acknowledges every
    /// later push for it as a duplicate, storing nothing.
    async fn forge_tombstone(s: &mut Scene, attacker: &Attacker, doc: RecordId) {
        let (team, keys) = (s.team, attacker.device_keys(Role::Lead));
        s.op.edit(|tx| insert_device(tx, team, &keys));
        let tombstone = seal_envelope(
            team,
            doc,
            EnvelopeKind::Tombstone,
            0,
            &RawKey::forge(1),
            attacker.identity(),
            &[],
        );
        let (status, body) = call_as(
            &s.op.url(),
            attacker.identity(),
            "POST",
            &push_path(team),
            &PushRequest {
                envelopes: vec![tombstone],
            },
        )
        .await;
        assert_eq!(
            status, 200,
            "the relay takes the operator's tombstone: {body}"
        );
        assert!(s.op.read(|c| has_tombstone(c, team, doc)));
    }

    /// A device whose change the relay dropped must still hold it (pending) or have said so:
    /// one of the calls that sent it returned an error.
    fn kept_or_reported(f: &mut Findings, d: &Device, calls: &[std::result::Result<(), Error>]) {
        let pending = d.ws.pending_changes().unwrap();
        f.check(
            pending > 0 || calls.iter().any(|c| c.is_err()),
            format!(
                "{}'s change was dropped by the relay and nobody noticed: its outbox is empty and every call succeeded",
                d.name
            ),
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn forged_tombstone() {
        let mut s = Scene::new(1).await;
        let mut f = Findings::default();
        let c = s.workers[0].contact(1, "vor dem Grabstein");
        settle(&[&s.workers[0], &s.lead]).await;
        let attacker = Attacker::new(s.dir.path(), "operator-device");
        forge_tombstone(&mut s, &attacker, c.id).await;
        settle(&[&s.lead]).await;
        f.check(
            has_contact(&s.lead, c.id),
            "the lead applied the operator's tombstone",
        );

        let w = &s.workers[0];
        let mut fields = w.ws.get_contact(c.id).unwrap().fields;
        fields.note.push_str(" NACHTRAG");
        w.ws.update_contact(c.id, fields).unwrap();
        let r = w.sync.sync_once(None).await.map(drop);
        kept_or_reported(&mut f, w, &[r]);

        // The relay behaves again: the edit must arrive.
        let team = s.team;
        s.op.edit(|tx| forget_erasure(tx, team, c.id));
        let w = &s.workers[0];
        settle(&[w, w, &s.lead]).await;
        let note = s.lead.ws.get_contact(c.id).map(|c| c.fields.note);
        f.check(
            note.as_deref().is_ok_and(|n| n.contains("NACHTRAG")),
            format!("the worker's edit never reached the lead once the relay behaved: {note:?}"),
        );
        f.finish("the relay duplicates away edits behind a forged tombstone");
    }

    /// The same on the Team document: a revocation is dropped, so nobody learns of it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn forged_tombstone_on_the_team_document() {
        let mut s = Scene::new(2).await;
        let mut f = Findings::default();
        let team_doc = join_bundle(&s.op, &s.codes[0]).team_doc_id;
        let attacker = Attacker::new(s.dir.path(), "operator-device");
        forge_tombstone(&mut s, &attacker, team_doc).await;
        settle(&s.everyone()).await;

        let lost = s.workers[1].ws.device_id();
        let revoked = s.lead.sync.revoke_device(lost).await;
        let r = s.lead.sync.sync_once(None).await.map(drop);
        kept_or_reported(&mut f, &s.lead, &[revoked, r]);

        let team = s.team;
        s.op.edit(|tx| forget_erasure(tx, team, team_doc));
        settle(&[&s.lead, &s.lead, &s.workers[0]]).await;
        let entry = roster_entry(&s.workers[0], lost);
        f.check(
            entry.as_ref().is_some_and(|e| e.revoked),
            format!(
                "the revocation never reached worker0 once the relay behaved: worker1 is {}",
                entry_text(&entry)
            ),
        );
        f.finish("the relay duplicates away the Team document behind a forged tombstone");
    }

    /// The relay answers a push with `duplicate: true` for every envelope and stores nothing.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn push_acknowledged_but_not_stored() {
        let s = Scene::new(1).await;
        let mut f = Findings::default();
        s.proxy.answer("POST", "/push", |req| {
            let push: PushRequest = req.json();
            Response::json(
                200,
                &PushResponse {
                    results: push
                        .envelopes
                        .iter()
                        .map(|e| PushResult {
                            id: e.id,
                            seq: 1,
                            duplicate: true,
                        })
                        .collect(),
                },
            )
        });
        let w = &s.workers[0];
        let c = w.contact(1, "nie gespeichert");
        let r = w.sync.sync_once(None).await.map(drop);
        assert!(s.proxy.hits() >= 1, "the proxy answered the push");
        assert!(
            s.op.log_after(s.team, 0).iter().all(|(_, e)| e.doc != c.id),
            "the relay never saw the contact"
        );
        kept_or_reported(&mut f, w, &[r]);

        s.proxy.behave();
        settle(&[w, w, &s.lead]).await;
        f.check(
            has_contact(&s.lead, c.id),
            "the contact never reached the lead once the relay behaved",
        );
        f.finish("the relay acknowledges a push without storing it");
    }
}

// ---- replay ---------------------------------------------------------------------------------------

/// The operator appends copies of every envelope its log held earlier (edits, a review, roster
/// changes, a record's creation from before its erasure) at new sequence numbers. Nothing may
/// change: same records, same history, the erased record stays erased, also on a new device.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_old_envelopes_change_nothing() {
    let mut s = Scene::new(1).await;
    let mut f = Findings::default();
    let (lead, w) = (&s.lead, &s.workers[0]);
    let c = w.contact(1, "Fassung 1");
    w.ws.submit_contact(c.id).unwrap();
    settle(&[w, lead]).await;
    let mut fields = w.ws.get_contact(c.id).unwrap().fields;
    fields.note = "Fassung 2".into();
    w.ws.update_contact(c.id, fields).unwrap();
    settle(&[w, lead]).await;
    lead.ws.approve_contact(c.id).unwrap();
    let gone = w.contact(2, "wird gelöscht");
    settle(&[lead, w, lead]).await;
    // Everything the log held so far, kept by the operator.
    let old = s.op.rows_after(s.team, 0);
    lead.ws.erase_record(gone.id).unwrap();
    settle(&[lead, w]).await;

    let before: Vec<_> = [lead, w]
        .iter()
        .map(|d| (state(d), d.ws.history(c.id).unwrap().len()))
        .collect();
    let team = s.team;
    let copies = s.op.edit(|tx| reappend(tx, team, &old));
    assert_eq!(copies.len(), old.len());

    let (lead, w) = (&s.lead, &s.workers[0]);
    settle(&[w, lead, w]).await;
    let newcomer = s.newcomer("neu").await;
    for (d, (state_before, history_before)) in [lead, w].iter().zip(&before) {
        f.check(
            &state(d) == state_before,
            format!("{}'s records changed after the replay", d.name),
        );
        let h = d.ws.history(c.id).unwrap().len();
        f.check(
            h == *history_before,
            format!(
                "{}'s history of the record has {h} entries after the replay, {history_before} before",
                d.name
            ),
        );
    }
    f.check(
        state(&newcomer) == before[0].0,
        format!(
            "a new device holds other records than the lead: {:?} vs {:?}",
            state(&newcomer),
            before[0].0
        ),
    );
    let h = newcomer.ws.history(c.id).map(|h| h.len());
    f.check(
        h.as_ref().ok() == Some(&before[0].1),
        format!(
            "a new device's history has {h:?} entries, the lead's {}",
            before[0].1
        ),
    );
    for d in [lead, w, &newcomer] {
        f.check(
            !has_contact(d, gone.id),
            format!("the replay brought the erased record back on {}", d.name),
        );
        let got = d.ws.get_contact(c.id).map(|c| (c.review, c.fields.note));
        f.check(
            got.as_ref().ok() == Some(&(ReviewState::Approved, "Fassung 2".to_string())),
            format!("{} has the record as {got:?}", d.name),
        );
    }
    f.finish("the operator replays old envelopes");
}

// ---- rollback -------------------------------------------------------------------------------------

/// The operator puts back an old copy of its database. Before the devices that hold more come
/// back, one device writes enough that the relay's head passes everybody's cursor, so a device
/// cannot tell the rollback from `head < cursor`. Every device must detect the rollback
/// (`SyncReport::relay_restored` is today's signal), and nothing written after the backup may be
/// lost: it is uploaded again and reaches the lead and a new device.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_is_detected() {
    let mut s = Scene::new(2).await;
    let mut f = Findings::default();
    let mut expected: Vec<RecordId> = Vec::new();
    expected.push(s.workers[0].contact(1, "vor dem Backup").id);
    s.sync_all().await;
    let backup = s.op.backup();
    let backed_up = s.op.head(s.team);

    for n in 0..3 {
        expected.push(
            s.workers[0]
                .contact(10 + n, &format!("nach dem Backup {n}"))
                .id,
        );
    }
    // Twice, so that every device's cursor reaches the head (the lead syncs before worker0).
    s.sync_all().await;
    s.sync_all().await;
    let cursor = s.op.head(s.team);
    s.op.restore(&backup);
    assert_eq!(
        s.op.head(s.team),
        backed_up,
        "the relay is back at the backup"
    );

    let (lead, w0, w1) = (&s.lead, &s.workers[0], &s.workers[1]);
    let lifting = (cursor - backed_up) + 3;
    let mut lifted = Vec::new();
    for n in 0..lifting {
        lifted.push(
            w1.contact(20 + n as u32, &format!("nach der Rücksetzung {n}"))
                .id,
        );
    }
    expected.extend(&lifted);
    // The first devices to sync see another envelope at their cursor's position and report the
    // rollback. Once they have re-sent everything (the lead as snapshots), the entry at worker0's
    // cursor may be compacted away, which proves nothing either way: worker0 is not required to
    // notice, only to lose nothing (checked below with the new device).
    for d in [w1, lead, w0] {
        let r = d.sync.sync_once(None).await;
        let detected = r.as_ref().is_ok_and(|r| {
            r.relay_restored
                && r.alerts
                    .iter()
                    .any(|a| matches!(a, SecurityAlert::LogRolledBack { .. }))
        });
        f.check(
            detected || (d.name == w0.name && r.is_ok()),
            format!("{} did not detect the rollback: {r:?}", d.name),
        );
    }
    settle(&[w1, lead, w0, lead]).await;
    let missing: Vec<_> = lifted
        .iter()
        .filter(|id| !has_contact(lead, **id))
        .collect();
    f.check(
        missing.is_empty(),
        format!(
            "the lead skipped {} of worker1's {} contacts written after the rollback",
            missing.len(),
            lifted.len()
        ),
    );
    let newcomer = s.newcomer("neu").await;
    let missing: Vec<_> = expected
        .iter()
        .filter(|id| !has_contact(&newcomer, **id))
        .collect();
    f.check(
        missing.is_empty(),
        format!(
            "a new device lacks {} of the team's {} contacts ({} of them written after the backup and lost with it)",
            missing.len(),
            expected.len(),
            missing.iter().filter(|id| expected[1..4].contains(**id)).count()
        ),
    );
    f.finish("the operator rolls its log back");
}

// ---- finding 5: no attacker ---------------------------------------------------------------------

mod approved_contact_reaches_new_device_after_worker_compaction {
    use super::*;

    /// A worker's contact gets a review by the lead; the worker edits it and syncs with
    /// compaction on (as in normal operation), then compacts everything. A member who joins
    /// afterwards must see the contact with its review.
    async fn reviewed(review: ReviewState) {
        let s = Scene::with(
            1,
            SyncOptions {
                compact_after: 1,
                ..SyncOptions::default()
            },
        )
        .await;
        let mut f = Findings::default();
        let (lead, w) = (&s.lead, &s.workers[0]);
        let c = w.contact(1, "Erstkontakt");
        w.ws.submit_contact(c.id).unwrap();
        sync(w).await;
        sync(lead).await;
        match review {
            ReviewState::Approved => lead.ws.approve_contact(c.id).unwrap(),
            _ => lead
                .ws
                .request_changes(c.id, "Bitte den Ort ergänzen.")
                .unwrap(),
        };
        sync(lead).await;
        sync(w).await;
        let mut fields = w.ws.get_contact(c.id).unwrap().fields;
        fields.note.push_str(" – ergänzt");
        w.ws.update_contact(c.id, fields).unwrap();
        sync(w).await;
        // Only leads' snapshots are accepted, so a worker no longer compacts (its sync above ran
        // with compaction on and uploaded none), and asking it to is refused.
        f.check(
            matches!(w.sync.compact_all().await, Err(Error::NotAllowed(_))),
            "a worker uploads snapshots",
        );
        sync(lead).await;
        lead.sync.compact_all().await.unwrap();

        let newcomer = s.newcomer("neu").await;
        let got = newcomer.ws.get_contact(c.id);
        f.check(
            got.as_ref().is_ok_and(|c| c.review == review),
            format!(
                "the new device has the {review:?} contact as {:?} (quarantine: {:?})",
                got.as_ref().map(|c| (c.review, &c.fields.note)),
                newcomer.sync.quarantine_report().unwrap()
            ),
        );
        f.check(
            got.as_ref()
                .is_ok_and(|c| c.fields.note == "Erstkontakt – ergänzt"),
            "the new device lacks the worker's edit",
        );
        f.finish(&format!(
            "a contact in review state {review:?} after worker compaction"
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn approved() {
        reviewed(ReviewState::Approved).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn changes_requested() {
        reviewed(ReviewState::ChangesRequested).await;
    }

    /// The same after a relay restore, when every device re-uploads a snapshot of every record
    /// (the lead first, then the worker, whose snapshot covers and so replaces the lead's).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn after_relay_restore() {
        let mut s = Scene::new(1).await;
        let mut f = Findings::default();
        let backup = s.op.backup();
        let (lead, w) = (&s.lead, &s.workers[0]);
        let c = w.contact(1, "Erstkontakt");
        w.ws.submit_contact(c.id).unwrap();
        sync(w).await;
        sync(lead).await;
        lead.ws.approve_contact(c.id).unwrap();
        sync(lead).await;
        sync(w).await;
        s.op.restore(&backup);
        let (lead, w) = (&s.lead, &s.workers[0]);
        settle(&[lead, w]).await;

        let newcomer = s.newcomer("neu").await;
        let got = newcomer.ws.get_contact(c.id);
        f.check(
            got.as_ref()
                .is_ok_and(|c| c.review == ReviewState::Approved),
            format!(
                "the new device has the approved contact as {:?} (quarantine: {:?})",
                got.as_ref().map(|c| (c.review, &c.fields.note)),
                newcomer.sync.quarantine_report().unwrap()
            ),
        );
        f.finish("an approved contact after a relay restore");
    }
}

// ---- trust-model gaps of the review: what a member or a lead sends, and two leads at once ---------

/// Pushes envelopes straight to the relay, signed by `who` (a member using its own device key, or
/// a device the colluding relay lets through).
async fn push_as(
    s: &Scene,
    who: &DeviceIdentity,
    envelopes: Vec<streetsync_wire::Envelope>,
) -> (u16, String) {
    call_as(
        &s.op.url(),
        who,
        "POST",
        &push_path(s.team),
        &PushRequest { envelopes },
    )
    .await
}

/// Why `d` refused the envelope(s) `author` sent for `doc`, if it did.
fn refusal(d: &Device, doc: RecordId, author: DeviceId) -> Option<QuarantineReason> {
    d.sync
        .quarantine_report()
        .unwrap()
        .into_iter()
        .find(|q| q.doc == doc && q.author == author)
        .map(|q| q.reason)
}

/// Checks that `d` refused what `author` sent for `doc` with `reason`.
fn check_refused(
    f: &mut Findings,
    d: &Device,
    doc: RecordId,
    author: DeviceId,
    reason: QuarantineReason,
    what: &str,
) {
    let got = refusal(d, doc, author);
    f.check(
        got.as_ref() == Some(&reason),
        format!(
            "{} did not refuse {what} as {reason}: {}",
            d.name,
            match got {
                Some(r) => format!("quarantined as {r}"),
                None => "not quarantined".into(),
            }
        ),
    );
}

/// A device that joins now with a fresh worker invite, as [`Scene::newcomer`], reporting a
/// failure instead of panicking.
async fn try_newcomer(s: &Scene, name: &str) -> std::result::Result<Device, String> {
    let invite = s
        .lead
        .sync
        .create_invite(name, Role::Worker, 3600)
        .await
        .map_err(|e| format!("the lead cannot invite: {e}"))?;
    let d = Device::open(s.dir.path(), name, &s.url());
    d.sync
        .join_with_invite(&invite.code)
        .await
        .map_err(|e| format!("joining fails: {e}"))?;
    settle(&[&d]).await;
    Ok(d)
}

/// Closes a device's store and opens it again (the in-memory caches are rebuilt from the file).
fn reopen(slot: &mut Device, dir: &std::path::Path, url: &str) {
    let name = slot.name.clone();
    let old = std::mem::replace(slot, Device::open(dir, &format!("{name}-placeholder"), url));
    drop(old);
    *slot = Device::open(dir, &name, url);
}

/// Runs a call that may fail or panic; returns a description of how it ended.
async fn outcome<T: std::fmt::Debug>(
    fut: impl std::future::Future<Output = std::result::Result<T, Error>>,
) -> std::result::Result<T, String> {
    match AssertUnwindSafe(fut).catch_unwind().await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("error: {e}")),
        Err(panic) => Err(format!(
            "panic: {}",
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        )),
    }
}

/// The genuine Team document, rewritten as a new record entirely by `author` (every change has
/// `author`'s actor, so the authorship rule holds): `author` is a lead there, and so is the
/// operator's device, which commits to `key` as the next epoch. A device that took this record as
/// its team would take the operator's grant of `key` and seal under it.
fn second_team_document(
    team_doc: &[u8],
    team: TeamId,
    author: DeviceId,
    attacker: &Attacker,
    key: &RawKey,
) -> Vec<u8> {
    let keys = attacker.device_keys(Role::Lead);
    rewrite_document(team_doc, actor_of(author), "add devices", |doc| {
        let me = find_entry(doc, "roster", "device_id", &author.to_string())
            .expect("the author is on the genuine roster");
        doc.put(&me, "role", "lead").unwrap();
        use automerge::ScalarValue as V;
        push_entry(
            doc,
            "roster",
            &[
                ("device_id", V::Str(keys.id.to_string().into())),
                ("member", V::Str("Leitung (Betrieb)".into())),
                ("role", V::Str("lead".into())),
                ("sign_pk", V::Str(hex_of(&keys.sign_pk).into())),
                ("kx_pk", V::Str(hex_of(&keys.kx_pk).into())),
                ("revoked", V::Boolean(false)),
            ],
        );
        push_entry(
            doc,
            "epochs",
            &[
                ("epoch", V::Uint(u64::from(key.epoch))),
                ("commitment", V::Str(hex_of(&commitment(team, key)).into())),
                ("by", V::Str(keys.id.to_string().into())),
            ],
        );
    })
}

/// A worker, and a lead (a malicious one: it is a genuine lead on every roster, and signs with its
/// own key), each push a Change envelope for a NEW record whose document is of kind `team`: the
/// genuine roster plus the operator's device as a lead, committing to a key the operator made.
/// The operator then grants that key. Every device must refuse both records (`not_allowed`), keep
/// its team and keys exactly as they were, also after its store is reopened and on a device that
/// joins later, and the operator must read nothing written afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_team_document_is_refused() {
    let mut s = Scene::new(2).await;
    let mut f = Findings::default();
    let (b, b_code) = s
        .invite("Leitung B", Role::Lead, SyncOptions::default())
        .await;
    settle(&[&s.lead, &b, &s.workers[0], &s.workers[1]]).await;
    settle(&[&s.lead, &b, &s.workers[0], &s.workers[1]]).await;
    let mut b = b;
    assert_eq!(
        roster_entry(&s.workers[1], b.ws.device_id()).map(|e| e.role),
        Some(Role::Lead),
        "lead B is a lead on the roster"
    );
    let joined = join_bundle(&s.op, &s.codes[0]);
    let b_joined = join_bundle(&s.op, &b_code);
    let genuine_team = s.lead.ws.team().unwrap();
    let genuine_epochs = s.lead.ws.key_epochs().unwrap();
    check_commitment_mirror(&genuine_team, &joined.keys);
    let team_bytes = s.workers[0].ws.export_document(joined.team_doc_id).unwrap();

    let mut attacker = Attacker::new(s.dir.path(), "operator-device");
    let forged = RawKey::forge(genuine_epochs.iter().max().unwrap() + 1);
    attacker.knows(&forged);
    let attack = s.op.head(s.team);

    // (author name, author id, the record it claims is a second team document)
    let mut second: Vec<(String, DeviceId, RecordId)> = Vec::new();
    for (who, keys) in [(&s.workers[0], &joined.keys), (&b, &b_joined.keys)] {
        let doc = second_team_document(&team_bytes, s.team, who.ws.device_id(), &attacker, &forged);
        assert!(
            streetsync_core::testing::merge_document(&doc),
            "the forged document is a record of kind team that a device would store"
        );
        let id = RecordId::random();
        let key = keys.iter().max_by_key(|k| k.epoch).unwrap();
        let env = seal_envelope(
            s.team,
            id,
            EnvelopeKind::Change,
            0,
            key,
            who.ws.identity(),
            &doc,
        );
        let (status, body) = push_as(&s, who.ws.identity(), vec![env]).await;
        assert_eq!(
            status, 200,
            "the relay stores {}'s change: {body}",
            who.name
        );
        second.push((who.name.clone(), who.ws.device_id(), id));
    }
    // Everyone pulls the second documents, then the operator grants the key they commit to.
    settle(&[&s.lead, &b, &s.workers[0], &s.workers[1]]).await;
    let targets = ids(&[&s.lead, &b, &s.workers[0], &s.workers[1]]);
    let message = grant_message(s.team, std::slice::from_ref(&forged), attacker.identity());
    post_bundles(&mut s, attacker.id(), &targets, &message);
    settle(&[&s.lead, &b, &s.workers[0], &s.workers[1]]).await;
    settle(&[&s.lead, &b, &s.workers[0], &s.workers[1]]).await;

    let check = |f: &mut Findings, d: &Device, when: &str| {
        let team = d.ws.team().unwrap();
        f.check(
            team == genuine_team,
            format!(
                "{}'s team changed {when}: roster {:?}, epochs {:?}",
                d.name,
                team.roster
                    .iter()
                    .map(|e| (e.member.clone(), e.role))
                    .collect::<Vec<_>>(),
                team.epochs.iter().map(|e| e.epoch).collect::<Vec<_>>()
            ),
        );
        let epochs = d.ws.key_epochs().unwrap();
        f.check(
            epochs == genuine_epochs,
            format!(
                "{} holds key epochs {epochs:?} {when}, not {genuine_epochs:?}",
                d.name
            ),
        );
        for (author_name, author, id) in &second {
            if *author == d.ws.device_id() {
                continue;
            }
            f.check(
                d.ws.export_document(*id).is_err(),
                format!(
                    "{} stores {author_name}'s second team document {when}",
                    d.name
                ),
            );
            check_refused(
                f,
                d,
                *id,
                *author,
                QuarantineReason::NotAllowed,
                &format!("{author_name}'s second team document {when}"),
            );
        }
    };
    for d in [&s.lead, &b, &s.workers[0], &s.workers[1]] {
        check(&mut f, d, "after the attack");
    }

    // The same after the stores are reopened (the team is then loaded from the file).
    let (dir, url) = (s.dir.path().to_owned(), s.url());
    reopen(&mut s.lead, &dir, &url);
    reopen(&mut b, &dir, &url);
    reopen(&mut s.workers[1], &dir, &url);
    for d in [&s.lead, &b, &s.workers[1]] {
        check(&mut f, d, "after reopening its store");
    }
    settle(&[&s.lead, &b, &s.workers[0], &s.workers[1]]).await;
    for d in [&s.lead, &b, &s.workers[1]] {
        check(&mut f, d, "after reopening its store and syncing");
    }

    // A device that joins now bootstraps through both records.
    let newcomer = match try_newcomer(&s, "neu").await {
        Ok(d) => d,
        Err(e) => {
            f.check(false, format!("a new device cannot join the team: {e}"));
            f.finish("a member and a lead send a second record of kind team");
            return;
        }
    };
    let team = newcomer.ws.team().unwrap();
    f.check(
        team.device(&attacker.id()).is_none(),
        "the new device's roster lists the operator's device",
    );
    f.check(
        team.device(&s.workers[0].ws.device_id()).map(|e| e.role) == Some(Role::Worker),
        "the new device's roster has worker0 as a lead",
    );
    f.check(
        team.epochs == genuine_team.epochs,
        format!(
            "the new device's team commits to epochs {:?}, the genuine one to {:?}",
            team.epochs.iter().map(|e| e.epoch).collect::<Vec<_>>(),
            genuine_team
                .epochs
                .iter()
                .map(|e| e.epoch)
                .collect::<Vec<_>>()
        ),
    );
    for (author_name, author, id) in &second {
        check_refused(
            &mut f,
            &newcomer,
            *id,
            *author,
            QuarantineReason::NotAllowed,
            &format!("{author_name}'s second team document"),
        );
    }

    let everyone = [&s.lead, &b, &s.workers[0], &s.workers[1], &newcomer];
    for (i, d) in everyone.iter().enumerate() {
        d.contact(i as u32, "GEHEIM nach dem zweiten Team-Dokument");
    }
    settle(&everyone).await;
    settle(&everyone).await;
    attacker.collect_bundles(&s.op);
    f.attacker_reads_nothing(&attacker, &s, attack);
    f.finish("a member and a lead send a second record of kind team");
}

/// A worker sends a new record whose contact document is a copy of a teammate's contact, with
/// the copy's `id` field still naming that contact. Every device must refuse it
/// (`malformed_document`) and list the genuine contact once. A control record built the same
/// way, whose `id` names itself, is accepted: the refusal is about the id alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_naming_another_record_is_refused() {
    let s = Scene::new(2).await;
    let mut f = Findings::default();
    let (lead, m, other) = (&s.lead, &s.workers[0], &s.workers[1]);
    let c = lead.contact(1, "echte Notiz der Leitung");
    settle(&[lead, m, other]).await;
    let joined = join_bundle(&s.op, &s.codes[0]);
    let key = joined.keys.iter().max_by_key(|k| k.epoch).unwrap();
    let genuine = m.ws.export_document(c.id).unwrap();
    let before: Vec<RecordId> = lead.all().iter().map(|x| x.id).collect();

    let forged_id = RecordId::random();
    let forged = rewrite_document(
        &genuine,
        actor_of(m.ws.device_id()),
        "create contact",
        |_| {},
    );
    let control_id = RecordId::random();
    let control = rewrite_document(
        &genuine,
        actor_of(m.ws.device_id()),
        "create contact",
        |d| {
            d.put(automerge::ROOT, "id", control_id.to_string())
                .unwrap();
            d.put(automerge::ROOT, "place", "Kopie unter eigener Id")
                .unwrap();
        },
    );
    let envs = [(forged_id, &forged), (control_id, &control)]
        .into_iter()
        .map(|(id, doc)| {
            seal_envelope(
                s.team,
                id,
                EnvelopeKind::Change,
                0,
                key,
                m.ws.identity(),
                doc,
            )
        })
        .collect();
    let (status, body) = push_as(&s, m.ws.identity(), envs).await;
    assert_eq!(status, 200, "the relay stores the worker's changes: {body}");

    settle(&[lead, other]).await;
    let newcomer = s.newcomer("neu").await;
    for d in [lead, other, &newcomer] {
        assert!(
            has_contact(d, control_id),
            "{} refused the control record (quarantine: {:?}): the forgery is broken, not the rule",
            d.name,
            d.sync.quarantine_report().unwrap()
        );
        check_refused(
            &mut f,
            d,
            forged_id,
            m.ws.device_id(),
            QuarantineReason::MalformedDocument,
            "the document naming another record",
        );
        let listed: Vec<RecordId> = d.all().iter().map(|x| x.id).collect();
        let copies = listed.iter().filter(|id| **id == c.id).count();
        f.check(
            copies == 1,
            format!("{} lists the lead's contact {copies} times", d.name),
        );
        let mut expected = before.clone();
        expected.push(control_id);
        expected.sort();
        let mut got = listed.clone();
        got.sort();
        f.check(
            got == expected,
            format!(
                "{} lists {} records, expected {} (the lead's, the control): {got:?}",
                d.name,
                got.len(),
                expected.len()
            ),
        );
        f.check(
            d.ws.export_document(forged_id).is_err() && d.ws.get_contact(forged_id).is_err(),
            format!("{} stores the record naming another record", d.name),
        );
        let note =
            d.ws.get_contact(c.id)
                .map(|x| (x.fields.note, x.fields.place));
        f.check(
            note.as_ref()
                .is_ok_and(|(n, _)| n == "echte Notiz der Leitung"),
            format!("{} has the lead's contact as {note:?}", d.name),
        );
    }
    f.finish("a member's record presents itself under another record's id");
}

/// A worker sends a Change envelope (not a snapshot) for a teammate's contact holding two
/// changes: one with its own actor, one whose actor is the lead's device id with a random suffix.
/// Every device must refuse the whole envelope (`not_allowed`), show neither change, and never
/// name the lead in the record's history. A control envelope with only the worker's own change
/// is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_with_a_forged_actor_is_refused() {
    let s = Scene::new(2).await;
    let mut f = Findings::default();
    let (lead, m, other) = (&s.lead, &s.workers[0], &s.workers[1]);
    let lead_id = lead.ws.device_id();
    let c = other.contact(1, "Notiz von worker1");
    settle(&[other, lead, m]).await;
    let joined = join_bundle(&s.op, &s.codes[0]);
    let key = joined.keys.iter().max_by_key(|k| k.epoch).unwrap();

    let mut doc = load_doc(&m.ws.export_document(c.id).unwrap());
    doc.set_actor(actor_of(m.ws.device_id()));
    let h0 = doc.get_heads();
    doc.put(automerge::ROOT, "place", "von worker0 ergänzt")
        .unwrap();
    commit(&mut doc, "edit contact");
    let control = doc.save_after(&h0);
    let h1 = doc.get_heads();
    doc.put(automerge::ROOT, "persons", 7_i64).unwrap();
    commit(&mut doc, "edit contact");
    doc.set_actor(actor_of(lead_id));
    doc.put(automerge::ROOT, "place", "von der Leitung (gefälscht)")
        .unwrap();
    commit(&mut doc, "edit contact");
    let forged = doc.save_after(&h1);
    assert!(!forged.is_empty() && !control.is_empty());

    let seal = |bytes: &[u8]| {
        seal_envelope(
            s.team,
            c.id,
            EnvelopeKind::Change,
            0,
            key,
            m.ws.identity(),
            bytes,
        )
    };
    let (status, body) = push_as(&s, m.ws.identity(), vec![seal(&control)]).await;
    assert_eq!(status, 200, "the relay stores the control change: {body}");
    let forged_env = seal(&forged);
    let (status, body) = push_as(&s, m.ws.identity(), vec![forged_env.clone()]).await;
    assert_eq!(status, 200, "the relay stores the forged change: {body}");

    settle(&[lead, other]).await;
    let newcomer = s.newcomer("neu").await;
    for d in [lead, other, &newcomer] {
        let got =
            d.ws.get_contact(c.id)
                .map(|x| (x.fields.place, x.fields.persons));
        assert!(
            got.as_ref().is_ok_and(|(p, _)| p != "Nordausgang worker1"),
            "{} did not apply worker0's control change ({got:?}, quarantine {:?}): the forgery is broken, not the rule",
            d.name,
            d.sync.quarantine_report().unwrap()
        );
        let q = d
            .sync
            .quarantine_report()
            .unwrap()
            .into_iter()
            .filter(|q| q.doc == c.id && q.author == m.ws.device_id())
            .map(|q| q.reason)
            .collect::<Vec<_>>();
        f.check(
            q == [QuarantineReason::NotAllowed],
            format!(
                "{} did not refuse the envelope with the lead's actor as not_allowed (exactly once): {q:?}",
                d.name
            ),
        );
        f.check(
            got.as_ref().ok() == Some(&("von worker0 ergänzt".to_string(), 1)),
            format!(
                "{} has the contact as {got:?}: parts of the forged envelope were applied",
                d.name
            ),
        );
        match d.ws.history(c.id) {
            Ok(h) => {
                let forged: Vec<_> = h.iter().filter(|e| e.device == Some(lead_id)).collect();
                f.check(
                    forged.is_empty(),
                    format!(
                        "{}'s history shows the lead as an author: {forged:?}",
                        d.name
                    ),
                );
                f.check(
                    h.iter().any(|e| e.device == Some(m.ws.device_id())),
                    format!("{}'s history lacks worker0's own edit", d.name),
                );
            }
            Err(e) => f.check(
                false,
                format!("{} has no history of the record: {e}", d.name),
            ),
        }
    }
    f.finish("a member attributes a change to the lead inside a change envelope");
}

/// Lead A removes lead B. The relay, colluding with B, lets it post key grants again: B grants
/// keys it made for the epoch a worker would take next, signed with its genuine key (valid, but
/// B is no longer an active lead), to a worker that already pulled the revocation and to one
/// that was offline through it. Both must keep the genuine epochs (the first one reports the
/// grant as `ForgedGrant`), and B must read nothing written afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_signed_by_a_revoked_lead_is_refused() {
    let mut s = Scene::new(2).await;
    let mut f = Findings::default();
    let (b, b_code) = s
        .invite("Leitung B", Role::Lead, SyncOptions::default())
        .await;
    settle(&[&s.lead, &b, &s.workers[0], &s.workers[1]]).await;
    settle(&[&s.lead, &b, &s.workers[0], &s.workers[1]]).await;
    let b_id = b.ws.device_id();
    assert_eq!(
        roster_entry(&s.workers[1], b_id).map(|e| e.role),
        Some(Role::Lead),
        "B is a lead on the offline worker's roster"
    );
    let b_joined = join_bundle(&s.op, &b_code);

    // worker1 is offline from here on.
    s.lead.sync.revoke_device(b_id).await.unwrap();
    settle(&[&s.workers[0], &s.lead]).await;
    let genuine = s.lead.ws.key_epochs().unwrap();
    assert_eq!(genuine, [1, 2], "the revocation rotated to epoch 2");
    assert_eq!(s.workers[0].ws.key_epochs().unwrap(), genuine);
    assert_eq!(s.workers[1].ws.key_epochs().unwrap(), [1]);
    let attack = s.op.head(s.team);

    let team = s.team;
    s.op.edit(|tx| set_revoked(tx, team, b_id, false));
    let forged: Vec<RawKey> = [2, 3].into_iter().map(RawKey::forge).collect();
    let mut keys = b_joined.keys.clone();
    keys.extend(forged.iter().cloned());
    let message = grant_message(s.team, &keys, b.ws.identity());
    for w in &s.workers {
        let to = w.ws.device_id();
        let blob =
            streetsync_core::seal_to_device(&s.op.device(s.team, to).kx_pk, &message).unwrap();
        let (status, body) = call_as(
            &s.op.url(),
            b.ws.identity(),
            "POST",
            &format!("/v1/teams/{}/bundles", s.team),
            &streetsync_wire::PostBundle { to, blob },
        )
        .await;
        assert!(
            (200..300).contains(&status),
            "the colluding relay takes B's grant for {}: {status} {body}",
            w.name
        );
    }

    let (w0, w1) = (&s.workers[0], &s.workers[1]);
    match w0.sync.sync_once(None).await {
        Ok(r) => f.check(
            r.alerts
                .iter()
                .any(|a| matches!(a, SecurityAlert::ForgedGrant { from } if *from == b_id)),
            format!(
                "worker0 did not report B's grant as ForgedGrant: alerts {:?}, keys received {}",
                r.alerts, r.keys_received
            ),
        ),
        Err(e) => f.check(false, format!("worker0's sync failed on B's grant: {e}")),
    }
    if let Err(e) = w1.sync.sync_once(None).await {
        f.check(false, format!("worker1's sync failed on the grants: {e}"));
    }
    settle(&[w1, w0]).await;
    for d in [&s.lead, w0, w1] {
        let epochs = d.ws.key_epochs().unwrap();
        f.check(
            epochs == genuine,
            format!("{} holds epochs {epochs:?}, the lead {genuine:?}", d.name),
        );
    }

    let notes: Vec<(String, RecordId)> = [&s.lead, w0, w1]
        .iter()
        .enumerate()
        .map(|(i, d)| {
            (
                d.name.clone(),
                d.contact(i as u32, "GEHEIM nach dem Widerruf von B").id,
            )
        })
        .collect();
    settle(&[&s.lead, w0, w1, &s.lead, w0, w1]).await;
    for d in [&s.lead, w0, w1] {
        for (author, note) in &notes {
            f.check(
                has_contact(d, *note),
                format!("{author}'s note did not reach {}", d.name),
            );
        }
    }
    for (seq, env) in s.op.log_after(s.team, attack) {
        f.check(
            env.author == b_id || env.epoch == 2,
            format!(
                "seq {seq} ({:?} by {}) is sealed under epoch {}, not the genuine epoch 2",
                env.kind, env.author, env.epoch
            ),
        );
    }
    let mut b_reads = Attacker::member(b.ws.clone(), keys);
    b_reads.collect_bundles(&s.op);
    f.attacker_reads_nothing(&b_reads, &s, attack);
    f.finish("a revoked lead grants keys through a colluding relay");
}

/// A tombstone signed by a worker, which the honest relay refuses (403), written by the operator
/// straight into its log. Every device must refuse it (`not_allowed`) and keep the record; the
/// record goes on syncing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workers_tombstone_is_refused_by_devices() {
    let mut s = Scene::new(2).await;
    let mut f = Findings::default();
    let c = s.workers[1].contact(1, "bleibt bestehen");
    settle(&[&s.workers[1], &s.lead, &s.workers[0]]).await;
    let joined = join_bundle(&s.op, &s.codes[0]);
    let key = joined.keys.iter().max_by_key(|k| k.epoch).unwrap();
    let m = s.workers[0].ws.device_id();
    let tomb = seal_tombstone(s.team, c.id, key, s.workers[0].ws.identity());

    let (status, body) = push_as(&s, s.workers[0].ws.identity(), vec![tomb.clone()]).await;
    f.check(
        status == 403,
        format!("the honest relay takes a worker's tombstone: {status} {body}"),
    );
    let team = s.team;
    let seqs =
        s.op.edit(|tx| append(tx, team, std::slice::from_ref(&tomb)));
    assert_eq!(seqs.len(), 1);
    assert!(
        s.op.log_after(s.team, seqs[0] - 1)
            .iter()
            .any(|(_, e)| e.id == tomb.id),
        "the operator's log holds the worker's tombstone"
    );

    settle(&[&s.lead, &s.workers[1], &s.workers[0]]).await;
    let newcomer = s.newcomer("neu").await;
    for d in [&s.lead, &s.workers[0], &s.workers[1], &newcomer] {
        f.check(
            has_contact(d, c.id),
            format!("{} erased the record on the worker's tombstone", d.name),
        );
        if d.ws.device_id() != m {
            check_refused(
                &mut f,
                d,
                c.id,
                m,
                QuarantineReason::NotAllowed,
                "the worker's tombstone",
            );
        }
    }
    // The record lives on: an edit after the tombstone reaches everyone.
    let w1 = &s.workers[1];
    let Ok(contact) = w1.ws.get_contact(c.id) else {
        f.finish("a worker's tombstone in the log");
        return;
    };
    let mut fields = contact.fields;
    fields.note.push_str(" NACHTRAG");
    w1.ws.update_contact(c.id, fields).unwrap();
    settle(&[w1, &s.lead, &s.workers[0], &newcomer]).await;
    for d in [&s.lead, &s.workers[0], &newcomer] {
        let note = d.ws.get_contact(c.id).map(|x| x.fields.note);
        f.check(
            note.as_deref().is_ok_and(|n| n.ends_with("NACHTRAG")),
            format!(
                "worker1's edit after the tombstone did not reach {}: {note:?}",
                d.name
            ),
        );
    }
    f.finish("a worker's tombstone in the log");
}

/// Leads A and B each remove a different worker while the other is cut off (each one's pushes
/// fail until the other has committed its own revocation locally, so each picks its epoch without
/// knowing of the other's). Then they sync: A, B, A, then everyone, twice. Every remaining
/// device must list both workers as revoked, read what A, B and the remaining worker write
/// afterwards, get its outbox empty and its syncs succeeding again, and neither removed worker may
/// read anything written afterwards (with every key it held and every bundle the relay kept for
/// it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_leads_revoking_at_once_converge() {
    let s = Scene::new(3).await;
    let mut f = Findings::default();
    let (b, _) = s
        .invite("Leitung B", Role::Lead, SyncOptions::default())
        .await;
    settle(&[&s.lead, &b, &s.workers[0], &s.workers[1], &s.workers[2]]).await;
    settle(&[&s.lead, &b, &s.workers[0], &s.workers[1], &s.workers[2]]).await;
    let (a_id, b_id) = (s.lead.ws.device_id(), b.ws.device_id());
    let (gone_a, gone_b) = (s.workers[0].ws.device_id(), s.workers[1].ws.device_id());
    for d in [&s.lead, &b, &s.workers[2]] {
        assert_eq!(roster_entry(d, b_id).map(|e| e.role), Some(Role::Lead));
        assert_eq!(d.ws.key_epochs().unwrap(), [1]);
    }
    let cut_off = |proxy: &RewritingProxy, who: DeviceId| {
        proxy.answer_for(who, "POST", "/push", |_| Response {
            status: 503,
            body: b"offline".to_vec(),
        });
    };

    // A removes worker0 while its pushes do not get through.
    cut_off(&s.proxy, a_id);
    let r = outcome(s.lead.sync.revoke_device(gone_a)).await;
    eprintln!("A's revocation of worker0 while cut off: {r:?}");
    s.proxy.behave();
    assert!(
        roster_entry(&s.lead, gone_a).is_some_and(|e| e.revoked),
        "A recorded its revocation locally"
    );
    assert!(
        roster_entry(&b, gone_a).is_some_and(|e| !e.revoked),
        "B has not heard of A's revocation"
    );
    // B removes worker1 likewise, knowing nothing of A's.
    cut_off(&s.proxy, b_id);
    let r = outcome(b.sync.revoke_device(gone_b)).await;
    eprintln!("B's revocation of worker1 while cut off: {r:?}");
    s.proxy.behave();
    assert!(
        roster_entry(&b, gone_b).is_some_and(|e| e.revoked),
        "B recorded its revocation locally"
    );
    assert!(
        roster_entry(&s.lead, gone_b).is_some_and(|e| !e.revoked),
        "A has not heard of B's revocation"
    );

    // Both come back: A, B, A, then everyone, twice.
    let w2 = &s.workers[2];
    let remaining = [&s.lead, &b, w2];
    for d in [&s.lead, &b, &s.lead, &s.lead, &b, w2, &s.lead, &b, w2] {
        match outcome(d.sync.sync_once(None)).await {
            Ok(r) if !r.alerts.is_empty() || !r.quarantined.is_empty() => eprintln!(
                "{} syncs: alerts {:?}, quarantined {:?}",
                d.name, r.alerts, r.quarantined
            ),
            Ok(_) => {}
            Err(e) => eprintln!("{} syncs: {e}", d.name),
        }
    }
    for d in remaining {
        for (gone, name) in [(gone_a, "worker0"), (gone_b, "worker1")] {
            let entry = roster_entry(d, gone);
            f.check(
                entry.as_ref().is_some_and(|e| e.revoked),
                format!("{}'s roster has {name} {}", d.name, entry_text(&entry)),
            );
        }
        eprintln!(
            "{} holds epochs {:?}; its team commits to {:?}",
            d.name,
            d.ws.key_epochs().unwrap(),
            d.ws.team()
                .unwrap()
                .epochs
                .iter()
                .map(|e| (e.epoch, e.by == a_id))
                .collect::<Vec<_>>()
        );
    }

    // Notes written afterwards by A, by B and by the remaining worker.
    let attack = s.op.head(s.team);
    let notes: Vec<(String, RecordId)> = remaining
        .iter()
        .enumerate()
        .map(|(i, d)| {
            (
                d.name.clone(),
                d.contact(i as u32, "GEHEIM nach beiden Widerrufen").id,
            )
        })
        .collect();
    let mut last: Vec<std::result::Result<SyncReport, String>> = Vec::new();
    for round in 0..3 {
        for d in remaining {
            let r = outcome(d.sync.sync_once(None)).await;
            if let Err(e) = &r {
                eprintln!("{} syncs: {e}", d.name);
            }
            if round == 2 {
                last.push(r);
            }
        }
    }
    for (d, r) in remaining.iter().zip(&last) {
        f.check(
            r.is_ok(),
            format!(
                "{}'s sync still fails after both revocations: {}",
                d.name,
                r.as_ref().err().unwrap_or(&String::new())
            ),
        );
    }
    for d in remaining {
        for (author, note) in &notes {
            f.check(
                has_contact(d, *note),
                format!(
                    "{author}'s note written after both revocations did not reach {} (quarantine: {:?})",
                    d.name,
                    d.sync
                        .quarantine_report()
                        .unwrap()
                        .iter()
                        .filter(|q| q.doc == *note)
                        .map(|q| q.reason.clone())
                        .collect::<Vec<_>>()
                ),
            );
        }
        let pending = d.ws.pending_changes().unwrap();
        f.check(
            pending == 0,
            format!(
                "{}'s outbox still holds {pending} change(s) after three syncs since it wrote",
                d.name
            ),
        );
    }
    for (i, name) in [(0, "worker0"), (1, "worker1")] {
        let joined = join_bundle(&s.op, &s.codes[i]);
        let mut gone = Attacker::member(s.workers[i].ws.clone(), joined.keys);
        gone.collect_bundles(&s.op);
        let read = gone.readable(&s.op, s.team, attack);
        f.check(
            read.is_empty(),
            format!(
                "the removed {name} decrypts {} envelope(s) written after both revocations (keys of epochs {:?}):\n      {}",
                read.len(),
                gone.keys.iter().map(|k| k.epoch).collect::<Vec<_>>(),
                read.join("\n      ")
            ),
        );
    }
    f.finish("two leads revoke at the same time");
}
