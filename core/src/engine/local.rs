//! Local writes: every mutation of a contact or client follows one path — validate, hydrate the
//! record's Automerge document, apply, reconcile, commit, then write document, projection and
//! outbox entry in one durable SQLite transaction. If anything fails before the commit, nothing is
//! written.

use automerge::AutoCommit;
use automerge::transaction::{CommitOptions, Transactable};
use autosurgeon::{Hydrate, Reconcile, hydrate, reconcile};
use streetsync_wire::RecordId;
use zeroize::Zeroizing;

use crate::doc::client::ClientDoc;
use crate::doc::contact::ContactDoc;
use crate::error::{Error, Result, ValidationError};
use crate::kinds::RecordKind;
use crate::model::client::{Client, ClientDraft};
use crate::model::contact::{Comment, Contact, ContactDraft, MAX_COMMENT_CHARS};
use crate::model::vocab::{CommentKind, ReviewState};
use crate::query::{
    ClientFilter, ClientSummary, ContactFilter, ContactPage, ContactSummary, NoteCopy,
};
use crate::store::{Projection, Writer};

use super::{Engine, check_len};

impl Engine {
    // ---- generic record path ----------------------------------------------------------

    /// Commits `doc`'s pending operations, stores the document and queues the change.
    pub(crate) fn finish(
        &self,
        w: &mut Writer<'_>,
        id: RecordId,
        kind: RecordKind,
        doc: &mut AutoCommit,
        before: &[automerge::ChangeHash],
        message: &str,
    ) -> Result<()> {
        doc.commit_with(
            CommitOptions::default()
                .with_message(message.to_owned())
                .with_time(crate::clock::now_ms() / 1000),
        );
        if doc.get_heads() == before {
            return Ok(());
        }
        let saved = Zeroizing::new(doc.save());
        w.put_doc_bytes(&id, kind, &saved)?;
        if before.is_empty() {
            // A new record: the saved document is exactly its changes, and receivers load a saved
            // document like changes, so encode once and store once (the entry points at it).
            w.push_outbox_document(&id, kind, &saved)?;
        } else {
            let changes = Zeroizing::new(doc.save_after(before));
            w.push_outbox(&id, kind, &changes)?;
        }
        Ok(())
    }

    /// Loads a record of `kind`, applies `f` to its hydrated form, and writes everything back.
    fn mutate<D, T>(
        &self,
        id: RecordId,
        kind: RecordKind,
        message: &str,
        f: impl FnOnce(&mut D, &Writer<'_>) -> Result<T>,
        project: impl FnOnce(&D) -> Result<Option<Projection>>,
    ) -> Result<T>
    where
        D: Hydrate + Reconcile,
    {
        self.store
            .write(|w| {
                let (found, mut doc) = w.doc(&id)?.ok_or(Error::NotFound { kind, id })?;
                if found != kind || crate::doc::is_deleted(&doc) {
                    return Err(Error::NotFound { kind, id });
                }
                doc.set_actor(self.actor.clone());
                let before = doc.get_heads();
                let mut d: D = hydrate(&doc)?;
                let out = f(&mut d, w)?;
                reconcile(&mut doc, &d)?;
                self.finish(w, id, kind, &mut doc, &before, message)?;
                match project(&d)? {
                    Some(p) => w.put_projection(&id, p)?,
                    None => w.remove_projection(&id)?,
                }
                Ok(out)
            })
            .inspect(|_| self.local(id, kind, false))
    }

    fn create<D: Reconcile>(
        &self,
        id: RecordId,
        kind: RecordKind,
        d: &D,
        projection: Projection,
    ) -> Result<()> {
        self.store.write(|w| {
            let mut doc = crate::doc::new().with_actor(self.actor.clone());
            let before = doc.get_heads();
            reconcile(&mut doc, d)?;
            self.finish(w, id, kind, &mut doc, &before, "create")?;
            w.put_projection(&id, projection)
        })?;
        self.local(id, kind, false);
        Ok(())
    }

    fn read_doc<D: Hydrate>(&self, id: RecordId, kind: RecordKind) -> Result<D> {
        self.store.read(|r| {
            let (found, doc) = r.doc(&id)?.ok_or(Error::NotFound { kind, id })?;
            if found != kind || crate::doc::is_deleted(&doc) {
                return Err(Error::NotFound { kind, id });
            }
            Ok(hydrate(&doc)?)
        })
    }

    fn soft_delete(&self, id: RecordId, kind: RecordKind) -> Result<()> {
        self.store.write(|w| {
            let (found, mut doc) = w.doc(&id)?.ok_or(Error::NotFound { kind, id })?;
            if found != kind || crate::doc::is_deleted(&doc) {
                return Err(Error::NotFound { kind, id });
            }
            doc.set_actor(self.actor.clone());
            let before = doc.get_heads();
            doc.put(automerge::ROOT, "deleted", true)?;
            self.finish(w, id, kind, &mut doc, &before, "delete")?;
            w.remove_projection(&id)
        })?;
        self.local(id, kind, true);
        Ok(())
    }

    // ---- contacts ---------------------------------------------------------------------

    /// Logs a new contact. Durable when this returns.
    pub(crate) fn create_contact(&self, draft: ContactDraft) -> Result<Contact> {
        let team = self.team()?;
        draft.validate(&team, None)?;
        let id = RecordId::random();
        let doc = ContactDoc::new(
            id,
            &draft,
            &self.device_id().to_string(),
            crate::clock::now_ms(),
        );
        let contact = doc.to_contact()?;
        self.create(
            id,
            RecordKind::Contact,
            &doc,
            Projection::Contact(Box::new(ContactSummary::of(&contact))),
        )?;
        Ok(contact)
    }

    /// Replaces a contact's fields. The note is merged by character with concurrent edits.
    pub(crate) fn update_contact(&self, id: RecordId, draft: ContactDraft) -> Result<Contact> {
        let team = self.team()?;
        self.mutate(
            id,
            RecordKind::Contact,
            "edit contact",
            |d: &mut ContactDoc, _| {
                let old = d.to_contact()?;
                draft.validate(&team, Some(&old.fields))?;
                d.apply(&draft, crate::clock::now_ms());
                d.to_contact()
            },
            contact_projection,
        )
    }

    /// One contact.
    pub(crate) fn get_contact(&self, id: RecordId) -> Result<Contact> {
        self.read_doc::<ContactDoc>(id, RecordKind::Contact)?
            .to_contact()
    }

    /// Lists contacts matching `filter`, newest first.
    pub(crate) fn list_contacts(&self, filter: &ContactFilter) -> Result<ContactPage> {
        filter.validate()?;
        self.store.read(|r| Ok(filter.run(r.cache.contacts.iter())))
    }

    /// Every contact's projection (for hosts with views of their own).
    pub(crate) fn contact_summaries(&self) -> Result<Vec<ContactSummary>> {
        self.contact_summaries_between(None, None, NoteCopy::With)
    }

    /// The projections of the contacts dated within `from..=to` (either end open), for statistics
    /// and export. Statistics never read a note, so `NoteCopy::Without` leaves it empty: copying
    /// every note of a large team only to count contacts made statistics slower and, for a moment,
    /// doubled the memory the cache holds.
    pub(crate) fn contact_summaries_between(
        &self,
        from: Option<chrono::NaiveDate>,
        to: Option<chrono::NaiveDate>,
        note: NoteCopy,
    ) -> Result<Vec<ContactSummary>> {
        self.store.read(|r| {
            Ok(r.cache
                .contacts
                .iter()
                .filter(|(_, c)| c.dated_within(from, to))
                .map(|(id, c)| match note {
                    NoteCopy::With => c.summary(*id),
                    NoteCopy::Without => c.summary_without_note(*id),
                })
                .collect())
        })
    }

    /// Deletes a contact logged by mistake; the deletion syncs to the team. (Erasure of every
    /// trace on the relay and all devices is the lead's separate `erase`.)
    pub(crate) fn delete_contact(&self, id: RecordId) -> Result<()> {
        self.soft_delete(id, RecordKind::Contact)
    }

    // ---- review -----------------------------------------------------------------------

    fn review(
        &self,
        id: RecordId,
        message: &str,
        f: impl FnOnce(&mut ContactDoc, &Contact) -> Result<()>,
    ) -> Result<Contact> {
        self.mutate(
            id,
            RecordKind::Contact,
            message,
            |d: &mut ContactDoc, _| {
                let c = d.to_contact()?;
                f(d, &c)?;
                d.to_contact()
            },
            contact_projection,
        )
    }

    fn comment_of(&self, kind: CommentKind, text: &str) -> Result<Comment> {
        check_len("text", text, MAX_COMMENT_CHARS)?;
        Ok(Comment {
            id: hex::encode(crate::crypto::random_bytes::<8>()?),
            author: self.device_id().to_string(),
            at: crate::clock::now_ms(),
            kind,
            text: text.to_owned(),
        })
    }

    /// Hands a contact in for review.
    pub(crate) fn submit_contact(&self, id: RecordId) -> Result<Contact> {
        self.review(id, "submit for review", |d, c| match c.review {
            ReviewState::Approved => {
                Err(Error::NotAllowed("the contact is already approved".into()))
            }
            _ => {
                d.set_review(ReviewState::Submitted, crate::clock::now_ms());
                Ok(())
            }
        })
    }

    /// Approves a contact (leads only).
    pub(crate) fn approve_contact(&self, id: RecordId) -> Result<Contact> {
        self.require_lead("approve a contact")?;
        self.review(id, "approve", |d, _| {
            d.set_review(ReviewState::Approved, crate::clock::now_ms());
            Ok(())
        })
    }

    /// Sends a question back to the worker (leads only); the contact waits for an answer.
    pub(crate) fn request_changes(&self, id: RecordId, question: &str) -> Result<Contact> {
        self.require_lead("ask for changes")?;
        let comment = self.comment_of(CommentKind::Question, question)?;
        self.review(id, "request changes", |d, _| {
            d.add_comment(comment, crate::clock::now_ms());
            d.set_review(ReviewState::ChangesRequested, crate::clock::now_ms());
            Ok(())
        })
    }

    /// Adds a remark to the review thread.
    pub(crate) fn comment_contact(&self, id: RecordId, text: &str) -> Result<Contact> {
        let comment = self.comment_of(CommentKind::Remark, text)?;
        self.review(id, "comment", |d, _| {
            d.add_comment(comment, crate::clock::now_ms());
            Ok(())
        })
    }

    /// Answers the lead's question and hands the contact in again.
    pub(crate) fn answer_contact(&self, id: RecordId, text: &str) -> Result<Contact> {
        let comment = self.comment_of(CommentKind::Answer, text)?;
        self.review(id, "answer", |d, _| {
            d.add_comment(comment, crate::clock::now_ms());
            d.set_review(ReviewState::Submitted, crate::clock::now_ms());
            Ok(())
        })
    }

    // ---- clients ----------------------------------------------------------------------

    fn check_code_free(&self, code: &str, except: Option<RecordId>) -> Result<()> {
        let taken = self.store.read(|r| {
            Ok(r.cache
                .clients
                .values()
                .any(|c| c.code.eq_ignore_ascii_case(code) && Some(c.id) != except))
        })?;
        if taken {
            return Err(ValidationError::new(
                "code",
                format!("'{code}' is already used by another client"),
            )
            .into());
        }
        Ok(())
    }

    /// Creates a client record.
    pub(crate) fn create_client(&self, draft: ClientDraft) -> Result<Client> {
        self.team()?;
        draft.validate()?;
        self.check_code_free(&draft.code, None)?;
        let id = RecordId::random();
        let doc = ClientDoc::new(
            id,
            &draft,
            &self.device_id().to_string(),
            crate::clock::now_ms(),
        );
        let client = doc.to_client()?;
        self.create(
            id,
            RecordKind::Client,
            &doc,
            Projection::Client(ClientSummary::of(&client)),
        )?;
        Ok(client)
    }

    /// Replaces a client's fields; notes merge by character.
    pub(crate) fn update_client(&self, id: RecordId, draft: ClientDraft) -> Result<Client> {
        draft.validate()?;
        self.check_code_free(&draft.code, Some(id))?;
        self.mutate(
            id,
            RecordKind::Client,
            "edit client",
            |d: &mut ClientDoc, _| {
                d.apply(&draft, crate::clock::now_ms());
                d.to_client()
            },
            |d| Ok(Some(Projection::Client(ClientSummary::of(&d.to_client()?)))),
        )
    }

    /// One client.
    pub(crate) fn get_client(&self, id: RecordId) -> Result<Client> {
        self.read_doc::<ClientDoc>(id, RecordKind::Client)?
            .to_client()
    }

    /// Lists clients matching `filter`, by code.
    pub(crate) fn list_clients(&self, filter: &ClientFilter) -> Result<Vec<ClientSummary>> {
        self.store.read(|r| {
            let mut v: Vec<ClientSummary> = r
                .cache
                .clients
                .values()
                .filter(|c| filter.matches(c))
                .cloned()
                .collect();
            v.sort_by(|a, b| a.code.cmp(&b.code));
            Ok(v)
        })
    }

    /// Deletes a client record; the deletion syncs to the team.
    pub(crate) fn delete_client(&self, id: RecordId) -> Result<()> {
        self.soft_delete(id, RecordKind::Client)
    }

    /// Ids of records whose stored data failed to open (damaged file); everything else works.
    pub(crate) fn damaged_records(&self) -> Result<Vec<RecordId>> {
        self.store.read(|r| Ok(r.cache.damaged.clone()))
    }

    /// How many local changes wait to be pushed to the relay.
    pub(crate) fn pending_changes(&self) -> Result<u64> {
        self.store.read(|r| r.outbox_len())
    }

    /// Erases a contact or client everywhere (GDPR Art. 17; leads only): the local copy goes now,
    /// the relay deletes every envelope of it when the tombstone arrives, and every device deletes
    /// its copy at its next sync. Works offline; the tombstone waits in the outbox.
    pub(crate) fn erase_record(&self, id: RecordId) -> Result<()> {
        self.require_lead("erase records")?;
        let kind = self.store.read(|r| match r.doc(&id)? {
            Some((RecordKind::Team, _)) => Err(Error::NotAllowed(
                "the team document cannot be erased".into(),
            )),
            Some((kind, _)) => Ok(kind),
            None => Err(Error::NotFound {
                kind: RecordKind::Contact,
                id,
            }),
        })?;
        self.store.write(|w| {
            w.erase_record(&id, crate::clock::now_ms())?;
            w.push_tombstone(&id, kind)
        })?;
        self.local(id, kind, true);
        // Reported done only once the old pages are gone from the files.
        self.store.check_wiped()
    }

    /// See [`Workspace::wipe_erased`](crate::Workspace::wipe_erased).
    pub(crate) fn wipe_erased(&self) -> Result<()> {
        self.store.check_wiped()
    }

    /// Re-seals the whole store under a new storage key or passphrase. The old key stops working
    /// at once; nothing sealed under it stays in the file or its WAL.
    pub(crate) fn change_storage_key(&self, new_key: &crate::crypto::KeySource) -> Result<()> {
        self.store.rekey(new_key)
    }

    /// After the relay lost its log (restored from a backup, or rolled back), a worker sends
    /// every change it made again, as change envelopes of its own: only leads' snapshots are
    /// accepted, and a worker's own changes are the part of a record only it can vouch for.
    /// Receivers that hold them already ignore them. Returns how many records were queued.
    pub(crate) fn requeue_own_changes(&self) -> Result<u64> {
        let me = self.device_id();
        self.store.write(|w| {
            let mut n = 0;
            for id in w.due_for_snapshot(i64::MIN, &[])? {
                let Some((kind, mut doc)) = w.doc(&id)? else {
                    continue;
                };
                let own: Zeroizing<Vec<u8>> = Zeroizing::new(
                    doc.get_changes(&[])
                        .iter()
                        .filter(|c| c.actor_id().to_bytes().starts_with(me.as_bytes()))
                        .flat_map(|c| c.raw_bytes().to_vec())
                        .collect(),
                );
                if own.is_empty() {
                    continue;
                }
                w.push_outbox(&id, kind, &own)?;
                n += 1;
            }
            Ok(n)
        })
    }

    /// Up to `limit` local changes waiting for the relay, oldest first.
    pub(crate) fn pending_outbox(&self, limit: usize) -> Result<Vec<crate::store::OutboxEntry>> {
        self.store.read(|r| r.outbox(limit))
    }

    /// The whole document of a record (`Automerge::save`), for snapshots and for handing a record
    /// to another store.
    pub(crate) fn export_document(&self, id: RecordId) -> Result<Vec<u8>> {
        self.store.read(|r| {
            let (_, mut doc) = r.doc(&id)?.ok_or(Error::NotFound {
                kind: RecordKind::Contact,
                id,
            })?;
            Ok(doc.save())
        })
    }

    /// Sets a top-level string field of a record WITHOUT any validation or role check, and queues
    /// the change for sync. Exists only so tests can play a malicious or buggy teammate whose
    /// changes the other devices must refuse; an app must never call it.
    #[cfg(feature = "testing")]
    pub(crate) fn unchecked_change(&self, id: RecordId, field: &str, value: &str) -> Result<()> {
        self.store.write(|w| {
            let (kind, mut doc) = w.doc(&id)?.ok_or(Error::NotFound {
                kind: RecordKind::Contact,
                id,
            })?;
            doc.set_actor(self.actor.clone());
            let before = doc.get_heads();
            doc.put(automerge::ROOT, field, value)?;
            self.finish(w, id, kind, &mut doc, &before, "unchecked")
        })
    }
}

fn contact_projection(d: &ContactDoc) -> Result<Option<Projection>> {
    Ok(Some(Projection::Contact(Box::new(ContactSummary::of(
        &d.to_contact()?,
    )))))
}
