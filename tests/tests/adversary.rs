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
