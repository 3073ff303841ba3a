//! Remote apply: a teammate's envelopes, checked against the roster and merged under the
//! authorship and role rules.
//!
//! Each envelope is checked against the roster in the Team document (never the relay's word):
//! team, known author, Ed25519 signature, a key for its epoch, and the AEAD tag over its header.
//! Its Automerge bytes then enter the record only through [`crate::doc::foreign`], and the result
//! must pass the rules in [`check_foreign`]: a change's actor is the device that signed it, only
//! leads change the Team document or move a review to approved or changes-requested. A refused
//! envelope gets a typed [`QuarantineReason`]; the rest of the page goes on. A page is applied in
//! one transaction together with the new cursor.

use automerge::AutoCommit;
use autosurgeon::hydrate;
use serde::{Deserialize, Serialize};
use streetsync_wire::{
    DeviceId, ENVELOPE_VERSION, Envelope, EnvelopeId, EnvelopeKind, RecordId, Role, TeamId,
};
use zeroize::Zeroizing;

use crate::crypto::{DeviceIdentity, TeamKey};
use crate::doc::client::ClientDoc;
use crate::doc::contact::ContactDoc;
use crate::doc::foreign::{self, Merged};
use crate::doc::team::TeamDoc;
use crate::error::{Error, Result};
use crate::kinds::RecordKind;
use crate::model::team::Team;
use crate::model::vocab::ReviewState;
use crate::query::{ClientSummary, ContactSummary};
use crate::store::{Projection, Writer};

use super::Engine;
use super::events::{ChangeOrigin, RecordChange};

/// What happened when remote changes were merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteApplied {
    /// The record's kind.
    pub kind: RecordKind,
    /// Whether the record is now deleted.
    pub deleted: bool,
}

/// Why a pulled envelope was refused. Kept with the envelope in the quarantine and reported to
/// the user; [`QuarantineReason::is_retryable`] decides whether a later sync tries it again.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuarantineReason {
    /// The envelope names another team.
    WrongTeam,
    /// The envelope's shape is wrong (version, sizes).
    Malformed,
    /// The author is not on this device's roster (yet).
    UnknownDevice,
    /// The author's signature does not verify against the roster's key.
    BadSignature,
    /// This device holds no key for the envelope's epoch (yet).
    NoKeyForEpoch,
    /// The ciphertext does not authenticate under the epoch's key.
    TagFailed,
    /// The author's role does not allow the change.
    NotAllowed,
    /// The author was removed from the team before it signed this.
    RevokedAuthor,
    /// The changes depend on changes not received yet.
    MissingDependencies,
    /// The Automerge bytes or the record they make are malformed.
    MalformedDocument,
    /// This device has no team yet.
    NoTeam,
    /// A reason written by another version of streetsync.
    Other(String),
}

impl QuarantineReason {
    /// The names of the reasons that may clear up later: the one list both
    /// [`QuarantineReason::is_retryable`] and the store's compaction query read.
    pub(crate) const RETRYABLE: &'static [&'static str] =
        &["unknown_device", "no_key_for_epoch", "missing_dependencies"];

    /// Reasons that may clear up later (the roster, a key or earlier changes arrive).
    pub fn is_retryable(&self) -> bool {
        Self::RETRYABLE.contains(&self.as_str())
    }

    /// The snake-case name, as stored and reported.
    pub fn as_str(&self) -> &str {
        match self {
            Self::WrongTeam => "wrong_team",
            Self::Malformed => "malformed",
            Self::UnknownDevice => "unknown_device",
            Self::BadSignature => "bad_signature",
            Self::NoKeyForEpoch => "no_key_for_epoch",
            Self::TagFailed => "tag_failed",
            Self::NotAllowed => "not_allowed",
            Self::RevokedAuthor => "revoked_author",
            Self::MissingDependencies => "missing_dependencies",
            Self::MalformedDocument => "malformed_document",
            Self::NoTeam => "no_team",
            Self::Other(s) => s,
        }
    }

    /// Reads a stored name back; unknown names keep their text.
    pub fn parse(s: &str) -> Self {
        match s {
            "wrong_team" => Self::WrongTeam,
            "malformed" => Self::Malformed,
            "unknown_device" => Self::UnknownDevice,
            "bad_signature" => Self::BadSignature,
            "no_key_for_epoch" => Self::NoKeyForEpoch,
            "tag_failed" => Self::TagFailed,
            "not_allowed" => Self::NotAllowed,
            "revoked_author" => Self::RevokedAuthor,
            "missing_dependencies" => Self::MissingDependencies,
            "malformed_document" => Self::MalformedDocument,
            "no_team" => Self::NoTeam,
            other => Self::Other(other.to_owned()),
        }
    }
}

impl std::fmt::Display for QuarantineReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An envelope that was not applied, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quarantined {
    /// Its sequence number on the relay.
    pub seq: u64,
    /// The record it claims to change.
    pub doc: RecordId,
    /// The device it claims to come from.
    pub author: DeviceId,
    /// Why it was refused.
    pub reason: QuarantineReason,
}

/// Who sent remote changes, for the checks that depend on it.
pub(crate) struct RemoteAuthor {
    /// The device that signed the envelope.
    pub(crate) device: DeviceId,
    /// Its role on the roster.
    pub(crate) role: Role,
    /// Whether the changes are a snapshot (holding other authors' changes too).
    pub(crate) snapshot: bool,
}

/// What the merged record will be stored as.
pub(crate) enum Update {
    /// A contact or client: its new projection.
    Record(Projection),
    /// The Team document: the team it now describes.
    Team(Box<Team>),
}

/// A teammate's bytes merged into a record and checked against every rule, not yet stored.
pub(crate) struct Checked {
    pub(crate) merged: Merged,
    pub(crate) kind: RecordKind,
    pub(crate) deleted: bool,
    pub(crate) update: Update,
}

/// The pure half of remote apply, with no store: merges `bytes` into `existing` (the record as
/// stored here, if it is) through [`foreign::open_for_merge`], then applies the authorship and
/// role rules and hydrates the result. `preloaded` is [`foreign::load_new`]'s result for these
/// bytes, computed ahead of time; it is used only if the record is new here. The fuzz targets call
/// exactly this.
pub(crate) fn check_foreign(
    id: RecordId,
    existing: Option<(RecordKind, AutoCommit)>,
    bytes: &[u8],
    author: Option<&RemoteAuthor>,
    preloaded: Option<AutoCommit>,
) -> Result<Checked> {
    // Only a worker's changes need the review state before them (leads may change it).
    let worker = author.is_some_and(|a| a.role != Role::Lead);
    let before_review = match &existing {
        Some((RecordKind::Contact, d)) if worker => {
            hydrate::<_, ContactDoc>(d).ok().map(|c| c.review())
        }
        _ => None,
    };
    let before_team = match &existing {
        Some((RecordKind::Team, d)) => hydrate::<_, TeamDoc>(d).ok().and_then(|t| t.to_team().ok()),
        _ => None,
    };
    let known_kind = existing.as_ref().map(|(k, _)| *k);
    let mut merged = foreign::open_for_merge(id, existing.map(|(_, d)| d), bytes, preloaded)?;
    if let Some(a) = author
        && !a.snapshot
    {
        let forged = foreign::new_actors(id, &mut merged)?
            .iter()
            .any(|actor| !actor.to_bytes().starts_with(a.device.as_bytes()));
        if forged {
            return Err(Error::NotAllowed(format!(
                "changes to record {id} claim another device as their author"
            )));
        }
    }
    let kind = crate::doc::kind_of(&merged.doc)
        .ok_or_else(|| Error::Protocol(format!("record {id} has no known kind")))?;
    if worker && kind == RecordKind::Team {
        return Err(Error::NotAllowed(
            "only leads change the team document".into(),
        ));
    }
    if known_kind.is_some_and(|k| k != kind) {
        return Err(Error::Protocol(format!("record {id} changed its kind")));
    }
    let deleted = crate::doc::is_deleted(&merged.doc);
    let update = match kind {
        RecordKind::Contact => {
            let d: ContactDoc = foreign::guard(id, || hydrate(&merged.doc))?
                .map_err(|e| Error::Protocol(format!("contact {id} is malformed: {e}")))?;
            let review = d.review();
            if worker
                && before_review != Some(review)
                && matches!(
                    review,
                    ReviewState::Approved | ReviewState::ChangesRequested
                )
            {
                return Err(Error::NotAllowed(
                    "only leads approve contacts or ask for changes".into(),
                ));
            }
            let contact = d.to_contact()?;
            if contact.id != id {
                return Err(Error::Protocol(format!(
                    "the document sent as record {id} names record {}",
                    contact.id
                )));
            }
            Update::Record(Projection::Contact(Box::new(ContactSummary::of(&contact))))
        }
        RecordKind::Client => {
            let d: ClientDoc = foreign::guard(id, || hydrate(&merged.doc))?
                .map_err(|e| Error::Protocol(format!("client {id} is malformed: {e}")))?;
            let client = d.to_client()?;
            if client.id != id {
                return Err(Error::Protocol(format!(
                    "the document sent as record {id} names record {}",
                    client.id
                )));
            }
            Update::Record(Projection::Client(ClientSummary::of(&client)))
        }
        RecordKind::Team => {
            let d: TeamDoc = foreign::guard(id, || hydrate(&merged.doc))?
                .map_err(|e| Error::Protocol(format!("team document is malformed: {e}")))?;
            let team = d.to_team()?;
            // Changes this device holds already (a former lead's, pulled again) change nothing
            // and need no rule.
            let mut heads = merged.doc.get_heads();
            let mut old = merged.old_heads.clone();
            heads.sort();
            old.sort();
            if let Some(before) = &before_team
                && heads != old
            {
                team_change_allowed(before, &team, author)?;
            }
            Update::Team(Box::new(team))
        }
    };
    Ok(Checked {
        merged,
        kind,
        deleted,
        update,
    })
}

/// The rules every change of the Team document must keep, whoever sent it and however the relay
/// ordered it: the author is a lead active before the change; nothing is taken back (no device
/// un-revoked or dropped from the roster, no key of a listed device replaced, no revocation or
/// key commitment removed or altered); new key epochs continue the sequence by exactly one each,
/// and new epochs and revocations are recorded by active leads.
fn team_change_allowed(before: &Team, after: &Team, author: Option<&RemoteAuthor>) -> Result<()> {
    let refuse = |why: &str| {
        Err(Error::NotAllowed(format!(
            "team document change refused: {why}"
        )))
    };
    if let Some(a) = author
        && !before.is_active_lead(&a.device)
    {
        return refuse("its author is not an active lead");
    }
    if after.id != before.id {
        return refuse("it changes the team id");
    }
    for d in &before.roster {
        match after.device(&d.device_id) {
            None => return refuse("it drops a device from the roster"),
            Some(n) if d.revoked && !n.revoked => return refuse("it un-revokes a device"),
            Some(n) if n.sign_pk != d.sign_pk || n.kx_pk != d.kx_pk => {
                return refuse("it replaces a device's keys");
            }
            Some(_) => {}
        }
    }
    for r in &before.revocations {
        if after.revocation(&r.device) != Some(r) {
            return refuse("it alters a revocation");
        }
    }
    for e in &before.epochs {
        if !after.epochs.contains(e) {
            return refuse("it alters a key commitment");
        }
    }
    // New entries: epochs continue the sequence by one each; an entry for the newest epoch a
    // device knows may also come from a second lead who rotated at the same moment.
    let mut newest = before.epochs.iter().map(|e| e.epoch).max();
    let mut added: Vec<_> = after
        .epochs
        .iter()
        .filter(|e| !before.epochs.contains(e))
        .collect();
    added.sort_by_key(|e| e.epoch);
    for e in added {
        // A team founded before commitments were recorded starts its record at any epoch.
        let next = match newest {
            Some(n) => n.checked_add(1),
            None => Some(e.epoch),
        };
        if Some(e.epoch) != next && Some(e.epoch) != newest {
            return refuse("a key epoch does not follow the last one by one");
        }
        if !before.is_active_lead(&e.by) || author.is_some_and(|a| !a.snapshot && a.device != e.by)
        {
            return refuse("a key epoch is not started by its author, an active lead");
        }
        newest = Some(e.epoch);
    }
    for r in &after.revocations {
        if before.revocation(&r.device).is_none()
            && (!before.is_active_lead(&r.by)
                || author.is_some_and(|a| !a.snapshot && a.device != r.by))
        {
            return refuse("a revocation is not recorded by its author, an active lead");
        }
    }
    // Retention: every device erases by these periods, so a policy that breaks the rules (a
    // child-protection period shorter than another) is refused here too, not only where it was
    // set; a reported period, once marked, stays (short contacts may already be gone).
    if after.retention != before.retention && after.retention.validate().is_err() {
        return refuse("its retention periods are invalid");
    }
    for r in &before.reported {
        if !after.reported.contains(r) {
            return refuse("it removes a reported statistics period");
        }
    }
    for r in &after.reported {
        if !before.reported.contains(r)
            && (!before.is_active_lead(&r.by)
                || author.is_some_and(|a| !a.snapshot && a.device != r.by))
        {
            return refuse("a reported period is not marked by its author, an active lead");
        }
    }
    Ok(())
}

/// Merges remote changes into record `id` inside an open write transaction (the sync client
/// applies a whole page in one transaction together with its cursor): [`check_foreign`], then the
/// reload check, then document and projection (or team) are written.
pub(crate) fn apply_checked(
    w: &mut Writer<'_>,
    id: RecordId,
    bytes: &[u8],
    author: Option<&RemoteAuthor>,
    preloaded: Option<AutoCommit>,
) -> Result<RemoteApplied> {
    if w.is_erased(&id)? {
        return Err(Error::NotFound {
            kind: RecordKind::Contact,
            id,
        });
    }
    let existing = w.doc(&id)?;
    let mut checked = check_foreign(id, existing, bytes, author, preloaded)?;
    // There is one Team document, the one the device joined with; any other record of kind team
    // would replace the roster and keys in memory.
    if checked.kind == RecordKind::Team
        && w.meta(crate::engine::META_TEAM_DOC)?
            .is_some_and(|team_doc| team_doc != id.as_bytes())
    {
        return Err(Error::NotAllowed(format!(
            "record {id} claims to be a second team document"
        )));
    }
    match foreign::checked_save(id, &mut checked.merged)? {
        Some(saved) => w.put_doc_bytes(&id, checked.kind, &saved)?,
        None => w.put_doc_bytes(&id, checked.kind, bytes)?,
    }
    match checked.update {
        Update::Team(team) => w.set_team(*team),
        Update::Record(_) if checked.deleted => w.remove_projection(&id)?,
        Update::Record(p) => w.put_projection(&id, p)?,
    }
    Ok(RemoteApplied {
        kind: checked.kind,
        deleted: checked.deleted,
    })
}

impl Engine {
    /// Merges Automerge changes (or a whole saved document) received from a teammate into the
    /// record `id`, updating its projection. Idempotent: applying the same changes twice is a no-op.
    pub(crate) fn apply_remote(&self, id: RecordId, changes: &[u8]) -> Result<RemoteApplied> {
        let applied = self
            .store
            .write(|w| apply_checked(w, id, changes, None, None))?;
        self.events.emit(&[RecordChange {
            id,
            kind: applied.kind,
            origin: ChangeOrigin::Remote,
            removed: applied.deleted,
        }]);
        Ok(applied)
    }
}

/// What an envelope is about, before it is sealed.
pub(crate) struct Head {
    pub(crate) doc: RecordId,
    pub(crate) id: EnvelopeId,
    pub(crate) kind: EnvelopeKind,
    pub(crate) covers: u64,
}

/// Seals and signs one envelope.
pub(crate) fn seal_envelope(
    team: TeamId,
    key: &TeamKey,
    me: &DeviceIdentity,
    head: Head,
    plaintext: &[u8],
) -> Result<Envelope> {
    let mut env = Envelope {
        v: ENVELOPE_VERSION,
        team,
        doc: head.doc,
        id: head.id,
        kind: head.kind,
        epoch: key.epoch,
        author: me.device_id(),
        covers: head.covers,
        nonce: crate::crypto::random_bytes()?,
        ciphertext: Vec::new(),
        sig: [0u8; 64],
    };
    let header = env.header_bytes();
    env.ciphertext = key.seal(env.nonce, &header, plaintext)?;
    env.sign(me.signing_key());
    Ok(env)
}

/// Checks an envelope against the roster and opens it.
pub(crate) fn open_envelope(
    env: &Envelope,
    team: &Team,
    keys: &[TeamKey],
) -> std::result::Result<Zeroizing<Vec<u8>>, QuarantineReason> {
    if env.team != team.id {
        return Err(QuarantineReason::WrongTeam);
    }
    if env.validate_shape().is_err() {
        return Err(QuarantineReason::Malformed);
    }
    let device = team
        .device(&env.author)
        .ok_or(QuarantineReason::UnknownDevice)?;
    env.verify(&device.sign_pk)
        .map_err(|_| QuarantineReason::BadSignature)?;
    let key = keys
        .iter()
        .find(|k| k.epoch == env.epoch)
        .ok_or(QuarantineReason::NoKeyForEpoch)?;
    key.open(env.nonce, &env.header_bytes(), &env.ciphertext)
        .ok_or(QuarantineReason::TagFailed)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::model::team::{EpochCommitment, Revocation, RosterDevice};

    fn device(n: u8, role: Role) -> RosterDevice {
        let id = crate::crypto::DeviceIdentity::generate().unwrap();
        RosterDevice {
            device_id: id.device_id(),
            member: format!("m{n}"),
            role,
            sign_pk: id.sign_public(),
            kx_pk: id.kx_public(),
            revoked: false,
        }
    }

    fn team() -> Team {
        let lead = device(1, Role::Lead);
        let worker = device(2, Role::Worker);
        Team {
            id: TeamId::random(),
            name: "T".into(),
            epochs: vec![EpochCommitment {
                epoch: 1,
                commitment: [1; 32],
                by: lead.device_id,
            }],
            roster: vec![lead, worker],
            areas: vec![],
            topics: vec![],
            materials: vec![],
            partners: vec![],
            revocations: vec![],
            retention: Default::default(),
            reported: Vec::new(),
        }
    }

    fn by(team: &Team, i: usize) -> RemoteAuthor {
        RemoteAuthor {
            device: team.roster[i].device_id,
            role: team.roster[i].role,
            snapshot: false,
        }
    }

    fn revoke(t: &mut Team, i: usize, epoch: u32) {
        let lead = t.roster[0].device_id;
        t.roster[i].revoked = true;
        let device = t.roster[i].device_id;
        t.revocations.push(Revocation {
            device,
            after_seq: 7,
            by: lead,
        });
        t.epochs.push(EpochCommitment {
            epoch,
            commitment: [epoch as u8; 32],
            by: lead,
        });
    }

    #[test]
    fn a_lead_revokes_and_commits_to_the_next_epoch() {
        let before = team();
        let mut after = before.clone();
        revoke(&mut after, 1, 2);
        team_change_allowed(&before, &after, Some(&by(&before, 0))).unwrap();
    }

    #[test]
    fn nobody_takes_a_revocation_back() {
        let mut before = team();
        revoke(&mut before, 1, 2);
        let mut after = before.clone();
        after.roster[1].revoked = false;
        let e = team_change_allowed(&before, &after, Some(&by(&before, 0))).unwrap_err();
        assert!(e.to_string().contains("un-revokes"), "{e}");
        let mut after = before.clone();
        after.revocations.clear();
        assert!(team_change_allowed(&before, &after, Some(&by(&before, 0))).is_err());
        let mut after = before.clone();
        after.roster.remove(1);
        assert!(team_change_allowed(&before, &after, Some(&by(&before, 0))).is_err());
    }

    #[test]
    fn epochs_follow_by_exactly_one_and_are_never_replaced() {
        let before = team();
        let lead = before.roster[0].device_id;
        for (epoch, ok) in [(2, true), (3, false), (u32::MAX, false), (1, false)] {
            let mut after = before.clone();
            after.epochs.retain(|e| e.epoch != epoch);
            after.epochs.push(EpochCommitment {
                epoch,
                commitment: [9; 32],
                by: lead,
            });
            let r = team_change_allowed(&before, &after, Some(&by(&before, 0)));
            assert_eq!(r.is_ok(), ok, "epoch {epoch}: {r:?}");
        }
    }

    #[test]
    fn only_an_active_lead_changes_the_team_or_starts_an_epoch() {
        let before = team();
        let mut after = before.clone();
        after.name = "renamed".into();
        assert!(team_change_allowed(&before, &after, Some(&by(&before, 1))).is_err());
        let mut revoked = before.clone();
        revoked.roster[0].revoked = true;
        assert!(team_change_allowed(&revoked, &revoked.clone(), Some(&by(&revoked, 0))).is_err());
        // A lead's epoch recorded under another lead's name is refused in a change envelope.
        let mut after = before.clone();
        after.epochs.push(EpochCommitment {
            epoch: 2,
            commitment: [2; 32],
            by: before.roster[1].device_id,
        });
        assert!(team_change_allowed(&before, &after, Some(&by(&before, 0))).is_err());
    }

    #[test]
    fn a_device_keeps_its_keys() {
        let before = team();
        let mut after = before.clone();
        after.roster[1].kx_pk = [7; 32];
        let e = team_change_allowed(&before, &after, Some(&by(&before, 0))).unwrap_err();
        assert!(e.to_string().contains("keys"), "{e}");
    }

    #[test]
    fn retention_rules_hold_for_every_device() {
        use crate::model::retention::{ReportedPeriod, RetentionPolicy};
        let before = team();
        let lead = before.roster[0].device_id;
        let worker = before.roster[1].device_id;
        let mut after = before.clone();
        after.retention.standard_days = 30;
        team_change_allowed(&before, &after, Some(&by(&before, 0))).unwrap();
        assert!(
            team_change_allowed(&before, &after, Some(&by(&before, 1))).is_err(),
            "a worker sets no periods"
        );
        let mut after = before.clone();
        after.retention = RetentionPolicy {
            safeguarding_days: 10,
            ..RetentionPolicy::default()
        };
        let e = team_change_allowed(&before, &after, Some(&by(&before, 0))).unwrap_err();
        assert!(e.to_string().contains("retention"), "{e}");
        let day = |d| chrono::NaiveDate::from_ymd_opt(2026, 3, d).unwrap();
        let mark = |by| ReportedPeriod {
            from: day(1),
            to: day(31),
            on: day(31),
            by,
        };
        let mut after = before.clone();
        after.reported.push(mark(lead));
        team_change_allowed(&before, &after, Some(&by(&before, 0))).unwrap();
        let mut taken_back = after.clone();
        taken_back.reported.clear();
        assert!(team_change_allowed(&after, &taken_back, Some(&by(&after, 0))).is_err());
        let mut forged = before.clone();
        forged.reported.push(mark(worker));
        assert!(team_change_allowed(&before, &forged, Some(&by(&before, 0))).is_err());
    }

    /// A team with a second lead (roster index 2) and a revoked worker (index 1), so each
    /// authorship clause can be broken on its own.
    fn two_leads_one_revoked() -> Team {
        let mut t = team();
        t.roster.push(device(3, Role::Lead));
        revoke(&mut t, 1, 2);
        t
    }

    fn snapshot_by(team: &Team, i: usize) -> RemoteAuthor {
        RemoteAuthor {
            snapshot: true,
            ..by(team, i)
        }
    }

    #[test]
    fn a_team_with_a_revocation_still_takes_a_leads_change() {
        let before = two_leads_one_revoked();
        let mut after = before.clone();
        after.name = "renamed".into();
        team_change_allowed(&before, &after, Some(&by(&before, 0))).unwrap();
        let mut altered = before.clone();
        altered.revocations[0].after_seq = 8;
        let e = team_change_allowed(&before, &altered, Some(&by(&before, 0))).unwrap_err();
        assert!(e.to_string().contains("alters a revocation"), "{e}");
    }

    /// Entries already on the team keep the name of whoever recorded them; a change envelope of
    /// another lead need not be theirs (cargo-mutants: `&&` against `||` in the "new entry"
    /// test of revocations and of reported periods survived, since every change in these tests
    /// came from the lead who had recorded the existing entries).
    #[test]
    fn another_lead_changes_a_team_whose_entries_the_first_lead_recorded() {
        use crate::model::retention::ReportedPeriod;
        let mut before = two_leads_one_revoked();
        let day = |d| chrono::NaiveDate::from_ymd_opt(2026, 3, d).unwrap();
        before.reported.push(ReportedPeriod {
            from: day(1),
            to: day(31),
            on: day(31),
            by: before.roster[0].device_id,
        });
        assert_eq!(before.revocations[0].by, before.roster[0].device_id);
        let mut after = before.clone();
        after.name = "renamed".into();
        team_change_allowed(&before, &after, Some(&by(&before, 2))).unwrap();
    }

    /// A change of the team that adds one entry recorded `by` someone.
    type AddsEntry<'a> = Box<dyn Fn(DeviceId) -> Team + 'a>;

    #[test]
    fn new_epochs_revocations_and_reports_name_their_author_an_active_lead() {
        use crate::model::retention::ReportedPeriod;
        let before = two_leads_one_revoked();
        let (lead, worker, other_lead) = (
            before.roster[0].device_id,
            before.roster[1].device_id,
            before.roster[2].device_id,
        );
        let day = |d| chrono::NaiveDate::from_ymd_opt(2026, 3, d).unwrap();
        // Each change adds one entry recorded `by` someone.
        let changes: [(&str, AddsEntry); 3] = [
            (
                "epoch",
                Box::new(|by| {
                    let mut t = before.clone();
                    t.epochs.push(EpochCommitment {
                        epoch: 3,
                        commitment: [3; 32],
                        by,
                    });
                    t
                }),
            ),
            (
                "revocation",
                Box::new(|by| {
                    let mut t = before.clone();
                    t.roster[2].revoked = true;
                    t.revocations.push(Revocation {
                        device: other_lead,
                        after_seq: 9,
                        by,
                    });
                    t
                }),
            ),
            (
                "report",
                Box::new(|by| {
                    let mut t = before.clone();
                    t.reported.push(ReportedPeriod {
                        from: day(1),
                        to: day(31),
                        on: day(31),
                        by,
                    });
                    t
                }),
            ),
        ];
        for (what, change) in &changes {
            let ok = |by, author: &RemoteAuthor| {
                team_change_allowed(&before, &change(by), Some(author)).is_ok()
            };
            assert!(ok(lead, &by(&before, 0)), "{what}: a lead's own entry");
            assert!(
                !ok(other_lead, &by(&before, 0)),
                "{what}: a change envelope carries only its author's entries"
            );
            assert!(
                ok(other_lead, &snapshot_by(&before, 0)),
                "{what}: a snapshot carries the other lead's entry"
            );
            assert!(
                !ok(worker, &snapshot_by(&before, 0)),
                "{what}: an entry by a revoked worker, even in a snapshot"
            );
            assert!(
                !ok(worker, &by(&before, 0)),
                "{what}: an entry by a revoked worker"
            );
        }
    }

    fn identity_in(t: &mut Team) -> DeviceIdentity {
        let id = DeviceIdentity::generate().unwrap();
        t.roster.push(RosterDevice {
            device_id: id.device_id(),
            member: "m9".into(),
            role: Role::Worker,
            sign_pk: id.sign_public(),
            kx_pk: id.kx_public(),
            revoked: false,
        });
        id
    }

    fn head() -> Head {
        Head {
            doc: RecordId::from_bytes([5; 16]),
            id: EnvelopeId::random(),
            kind: EnvelopeKind::Change,
            covers: 0,
        }
    }

    #[test]
    fn a_sealed_envelope_opens_only_under_its_team_author_and_key() {
        let mut t = team();
        let me = identity_in(&mut t);
        let key = TeamKey::generate(1).unwrap();
        let env = seal_envelope(t.id, &key, &me, head(), b"changes").unwrap();
        assert_eq!(env.author, me.device_id());
        assert_eq!(env.epoch, 1);
        assert!(!env.ciphertext.windows(7).any(|w| w == b"changes"));
        let keys = [TeamKey::generate(0).unwrap(), key];
        assert_eq!(
            open_envelope(&env, &t, &keys).unwrap().as_slice(),
            b"changes"
        );

        let mut other = t.clone();
        other.id = TeamId::random();
        assert_eq!(
            open_envelope(&env, &other, &keys).unwrap_err(),
            QuarantineReason::WrongTeam
        );
        let mut stranger = team();
        stranger.id = t.id;
        assert_eq!(
            open_envelope(&env, &stranger, &keys).unwrap_err(),
            QuarantineReason::UnknownDevice
        );
        let mut shape = env.clone();
        shape.covers = 1;
        assert_eq!(
            open_envelope(&shape, &t, &keys).unwrap_err(),
            QuarantineReason::Malformed
        );
        let mut forged = env.clone();
        forged.ciphertext[0] ^= 1;
        assert_eq!(
            open_envelope(&forged, &t, &keys).unwrap_err(),
            QuarantineReason::BadSignature
        );
        forged.sign(me.signing_key());
        assert_eq!(
            open_envelope(&forged, &t, &keys).unwrap_err(),
            QuarantineReason::TagFailed
        );
        assert_eq!(
            open_envelope(&env, &t, &keys[..1]).unwrap_err(),
            QuarantineReason::NoKeyForEpoch
        );
    }

    /// A store file in `dir` with a device identity and no team.
    fn engine(dir: &std::path::Path, name: &str) -> Engine {
        let key =
            crate::crypto::KeySource::Key(crate::crypto::StorageKey::from_bytes(&[3; 32]).unwrap());
        Engine::open(&dir.join(name), key, crate::store::schema::SCHEMA_VERSION).unwrap()
    }

    /// A store file in `dir` whose device founded a team.
    fn founded(dir: &std::path::Path, name: &str) -> Engine {
        let e = engine(dir, name);
        e.create_team(crate::engine::team::TeamSetup::for_tests())
            .unwrap();
        e
    }

    /// `apply_checked` writes the projection of what it merged (removed once the record is
    /// deleted), takes further changes of the device's own Team document and refuses a second
    /// one (cargo-mutants: all five mutants of these two conditions survived; the core's own
    /// suites never merged a record into a store that belongs to a team).
    #[test]
    fn remote_apply_follows_the_record_and_keeps_one_team_document() {
        let dir = tempfile::tempdir().unwrap();
        let lead = founded(dir.path(), "lead.db");
        let peer = engine(dir.path(), "peer.db");
        let team_doc = lead.team_doc_id().unwrap();
        let hand = |from: &Engine, to: &Engine, id| {
            to.apply_remote(id, &from.export_document(id).unwrap())
        };
        let applied = |kind, deleted| RemoteApplied { kind, deleted };
        hand(&lead, &peer, team_doc).unwrap();
        let date = chrono::NaiveDate::from_ymd_opt(2026, 9, 4).unwrap();
        let time = chrono::NaiveTime::from_hms_opt(9, 0, 0).unwrap();
        let c = peer
            .create_contact(crate::model::contact::ContactDraft::new(date, time, "nord"))
            .unwrap();

        // A contact merged into the lead's store is listed, and gone from the list once deleted.
        assert_eq!(
            hand(&peer, &lead, c.id).unwrap(),
            applied(RecordKind::Contact, false)
        );
        let listed = |e: &Engine| -> Vec<RecordId> {
            e.contact_summaries()
                .unwrap()
                .into_iter()
                .map(|s| s.id)
                .collect()
        };
        assert_eq!(listed(&lead), vec![c.id]);
        peer.delete_contact(c.id).unwrap();
        assert_eq!(
            hand(&peer, &lead, c.id).unwrap(),
            applied(RecordKind::Contact, true)
        );
        assert!(listed(&lead).is_empty());

        // The lead's own Team document comes back (as every sync of it does) and is taken.
        let team = lead.team().unwrap();
        assert_eq!(
            hand(&lead, &lead, team_doc).unwrap(),
            applied(RecordKind::Team, false)
        );
        // Another team's Team document is refused, whoever's it is; the roster stays.
        let other = founded(dir.path(), "other.db");
        let err = hand(&other, &lead, other.team_doc_id().unwrap()).unwrap_err();
        assert!(
            matches!(err, Error::NotAllowed(ref m) if m.contains("second team document")),
            "{err:?}"
        );
        assert_eq!(lead.team().unwrap(), team);
    }

    #[test]
    fn quarantine_reasons_round_trip_their_names() {
        for r in [
            QuarantineReason::WrongTeam,
            QuarantineReason::Malformed,
            QuarantineReason::UnknownDevice,
            QuarantineReason::BadSignature,
            QuarantineReason::NoKeyForEpoch,
            QuarantineReason::TagFailed,
            QuarantineReason::NotAllowed,
            QuarantineReason::RevokedAuthor,
            QuarantineReason::MissingDependencies,
            QuarantineReason::MalformedDocument,
            QuarantineReason::NoTeam,
            QuarantineReason::Other("from_a_newer_app".into()),
        ] {
            assert_eq!(QuarantineReason::parse(r.as_str()), r);
            assert_eq!(
                r.is_retryable(),
                QuarantineReason::RETRYABLE.contains(&r.as_str()),
                "{r}"
            );
        }
    }
}
