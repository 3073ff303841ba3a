"""The Python scenario: the streetsync package (generated bindings + the real library) against a
real relay, with two stores as two devices. Async calls run with asyncio."""

import asyncio
import gc
import threading
import time
import weakref

import pytest
import streetsync
from streetsync import (
    ChangeOrigin,
    ClientFilter,
    Consent,
    ContactFilter,
    MaterialCount,
    Referral,
    ReferralOutcome,
    ReviewState,
    Role,
    StreetsyncError,
    SyncPhase,
    SyncStatus,
    TeamSetup,
    Workspace,
    new_client_draft,
    new_contact_draft,
)


class RecordingSyncListener(streetsync.SyncListener):
    def __init__(self):
        self.statuses = []
        self.progress = []
        self.reports = []

    def on_status(self, status):
        self.statuses.append(status)

    def on_progress(self, progress):
        self.progress.append(progress)

    def on_synced(self, report):
        self.reports.append(report)


class RecordingChangeListener(streetsync.ChangeListener):
    def __init__(self):
        self.lock = threading.Lock()
        self.snapshots = []
        self.changes = []
        self.snapshot_first = True

    def on_snapshot(self, snapshot):
        self.snapshots.append(snapshot)

    def on_changes(self, changes):
        with self.lock:
            if not self.snapshots:
                self.snapshot_first = False
            self.changes.extend(changes)


class ThrowingListener(streetsync.ChangeListener):
    """Records every call, then raises: the store must carry on and keep delivering."""

    def __init__(self):
        self.lock = threading.Lock()
        self.snapshots = 0
        self.changed = []

    def on_snapshot(self, snapshot):
        with self.lock:
            self.snapshots += 1
        raise RuntimeError("host bug in on_snapshot")

    def on_changes(self, changes):
        with self.lock:
            self.changed.extend(c.id for c in changes)
        raise RuntimeError("host bug in on_changes")


def draft(date="2026-11-23", time_="14:30", area="hauptbahnhof", **fields):
    d = new_contact_draft(date, time_, area)
    for k, v in fields.items():
        setattr(d, k, v)
    return d


async def wait_until(cond, timeout=15.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        await asyncio.sleep(0.05)
    return cond()


def test_storage_key_wrong_key_and_key_change(tmp_path):
    path = str(tmp_path / "probe.db")
    key = streetsync.generate_storage_key()
    assert len(key) == 32
    ws = Workspace.open(path, key)
    assert ws.team_id() is None
    new_key = streetsync.generate_storage_key()
    ws.change_storage_key(new_key)
    del ws
    gc.collect()
    with pytest.raises(StreetsyncError.WrongKey):
        Workspace.open(path, key)
    assert Workspace.open(path, new_key).team_id() is None
    with pytest.raises(StreetsyncError.InvalidInput) as e:
        Workspace.open(str(tmp_path / "short.db"), b"short")
    assert e.value.field == "storage_key"


def test_not_in_a_team_is_typed(open_store):
    ws = open_store("alone")
    with pytest.raises(StreetsyncError.NotAMember):
        ws.team()
    with pytest.raises(StreetsyncError.NotAMember) as e:
        ws.my_role()
    assert "create a team" in str(e.value)


def test_two_devices_log_sync_listen_filter_delete_and_erase(team):
    lead, lead_sync, worker, worker_sync = team
    t = lead.team()
    assert [a.id for a in t.areas] == ["hauptbahnhof", "stadtpark"]
    assert worker.team().id == t.id
    assert worker.my_role() == Role.WORKER
    assert {d.device_id for d in lead.team().roster} == {lead.device_id(), worker.device_id()}
    partner = lead.add_partner(streetsync.PartnerDraft(name="Suchtberatung Mitte", offers=["Substitution"]))
    material = t.materials[0].id

    changes = RecordingChangeListener()
    subscription = lead.subscribe(changes)
    assert len(changes.snapshots) == 1 and changes.snapshots[0].contacts == 0

    async def scenario():
        await lead_sync.sync_once(None)  # the partner directory reaches the worker
        await worker_sync.sync_once(None)
        c1 = worker.create_contact(
            draft(
                end_time="15:10",
                place="Hauptbahnhof Nordausgang",
                note="Talked about the night shelter.",
                client_code="MA-1987-K",
                materials=[MaterialCount(material_id=material, count=3)],
                referrals=[
                    Referral(
                        id="r1",
                        partner_id=partner.id,
                        reason="Substitution",
                        consent=Consent(
                            scope="health data",
                            recipient="Suchtberatung Mitte",
                            purpose="appointment",
                            given_on="2026-11-23",
                        ),
                        outcome=ReferralOutcome.OPEN,
                    )
                ],
            )
        )
        c2 = worker.create_contact(draft("2026-11-24", "09:00", "stadtpark", persons=3, note="Group at the fountain."))
        c3 = lead.create_contact(draft("2026-11-20", "18:00", "stadtpark", safeguarding=True))
        assert worker.pending_changes() == 2  # c1 and c2, nothing else

        listener = RecordingSyncListener()
        report = await worker_sync.sync_once(listener)
        assert report.pushed == 2
        assert listener.statuses[0] == SyncStatus.SYNCING()
        assert listener.statuses[-1].is_IDLE()
        assert max(p.done for p in listener.progress if p.phase == SyncPhase.PUSHING) == 2
        assert len(listener.reports) == 1
        assert worker.pending_changes() == 0

        await lead_sync.sync_once(None)
        remote = {c.id for c in changes.changes if c.origin == ChangeOrigin.REMOTE}
        assert {c1.id, c2.id} <= remote
        assert changes.snapshot_first
        await worker_sync.sync_once(None)
        return c1, c2, c3

    c1, c2, c3 = asyncio.run(scenario())
    assert lead.get_contact(c1.id).fields.referrals[0].consent.given_on == "2026-11-23"

    # List and filter.
    assert lead.list_contacts(ContactFilter()).total == 3
    assert worker.list_contacts(ContactFilter()).total == 3
    assert [s.id for s in lead.list_contacts(ContactFilter(text="shelter")).items] == [c1.id]
    assert [s.id for s in lead.list_contacts(ContactFilter(area_id="stadtpark")).items] == [c2.id, c3.id]
    assert [s.id for s in lead.list_contacts(ContactFilter(from_date="2026-11-21", to_date="2026-11-23")).items] == [
        c1.id
    ]
    assert lead.list_contacts(ContactFilter(safeguarding_first=True)).items[0].id == c3.id
    page = lead.list_contacts(ContactFilter(limit=2))
    assert len(page.items) == 2 and page.total == 3

    # Delete (any author) and erase (leads only); both reach the other device.
    worker.delete_contact(c2.id)
    with pytest.raises(StreetsyncError.NotAllowed):
        worker.erase_record(c1.id)
    lead.erase_record(c1.id)

    async def propagate():
        await worker_sync.sync_once(None)
        await lead_sync.sync_once(None)
        await worker_sync.sync_once(None)

    asyncio.run(propagate())
    assert any(c.id == c2.id and c.removed and c.origin == ChangeOrigin.REMOTE for c in changes.changes)
    for ws in (lead, worker):
        for gone in (c1.id, c2.id):
            with pytest.raises(StreetsyncError.NotFound):
                ws.get_contact(gone)
    assert [s.id for s in worker.list_contacts(ContactFilter()).items] == [c3.id]
    assert lead_sync.quarantine_report() == [] and worker_sync.quarantine_report() == []

    subscription.cancel()
    assert not subscription.is_active()
    before = len(changes.changes)
    lead.create_contact(draft())
    assert len(changes.changes) == before
    del subscription, lead_sync, worker_sync, lead, worker
    gc.collect()


def test_invalid_input_names_the_field(team):
    lead, _, worker, _ = team
    material = lead.team().materials[0].id
    with pytest.raises(StreetsyncError.InvalidInput) as e:
        worker.create_contact(draft(materials=[MaterialCount(material_id=material, count=-1)]))
    assert e.value.field == f"materials[{material}].count"
    assert "negative" in str(e.value)
    with pytest.raises(StreetsyncError.InvalidInput) as e:
        worker.create_contact(draft(date="23.11.2026"))
    assert e.value.field == "date"
    with pytest.raises(StreetsyncError.InvalidInput) as e:
        new_contact_draft("2026-11-23", "25:99", "hauptbahnhof")
    assert e.value.field == "start_time"
    with pytest.raises(StreetsyncError.InvalidInput) as e:
        lead.get_contact("not-an-id")
    assert e.value.field == "id"
    with pytest.raises(StreetsyncError.InvalidInput) as e:
        lead.list_contacts(ContactFilter(from_date="2026-12-01", to_date="2026-11-01"))
    assert e.value.field == "to_date"
    with pytest.raises(StreetsyncError.InvalidInput) as e:
        worker.create_contact(draft(persons=0))
    assert e.value.field == "persons"
    with pytest.raises(StreetsyncError.NotFound):
        lead.get_contact("00" * 16)


def test_review_round_trip(team):
    lead, lead_sync, worker, worker_sync = team

    async def run():
        c = worker.create_contact(draft(note="Needs a shelter place."))
        worker.submit_contact(c.id)
        with pytest.raises(StreetsyncError.NotAllowed):
            worker.approve_contact(c.id)
        await worker_sync.sync_once(None)
        await lead_sync.sync_once(None)
        asked = lead.request_changes(c.id, "Which shelter?")
        assert asked.open_question and asked.review == ReviewState.CHANGES_REQUESTED
        await lead_sync.sync_once(None)
        await worker_sync.sync_once(None)
        answered = worker.answer_contact(c.id, "Notunterkunft Nord.")
        assert answered.review == ReviewState.SUBMITTED
        await worker_sync.sync_once(None)
        await lead_sync.sync_once(None)
        lead.comment_contact(c.id, "Thanks.")
        approved = lead.approve_contact(c.id)
        assert approved.review == ReviewState.APPROVED
        assert [k.kind for k in approved.comments] == [
            streetsync.CommentKind.QUESTION,
            streetsync.CommentKind.ANSWER,
            streetsync.CommentKind.REMARK,
        ]
        history = lead.history(c.id)
        assert history[0].device_id == worker.device_id()
        assert "approve" in [h.message for h in history]
        queue = lead.list_contacts(ContactFilter(review=ReviewState.APPROVED))
        assert [s.id for s in queue.items] == [c.id]

    asyncio.run(run())


def test_clients_and_catalogs(team):
    lead, _, worker, _ = team
    client = worker.create_client(
        streetsync.ClientDraft(
            code="MA-1987-K",
            alias="Maik",
            age_band=streetsync.AgeBand.FROM27_TO39,
            gender=streetsync.Gender.MALE,
            consents=[Consent(scope="contact data", recipient="Jobcenter", purpose="appointment", given_on="2026-11-01")],
        )
    )
    assert [c.id for c in worker.list_clients(ClientFilter(text="maik"))] == [client.id]
    assert worker.list_clients(ClientFilter())[0].active_consents == 1
    with pytest.raises(StreetsyncError.InvalidInput) as e:
        worker.create_client(new_client_draft("ma-1987-k"))
    assert e.value.field == "code"
    with pytest.raises(StreetsyncError.InvalidInput) as e:
        worker.create_client(new_client_draft("Max Mustermann"))
    assert e.value.field == "code"
    worker.delete_client(client.id)
    assert worker.list_clients(ClientFilter()) == []

    entry = lead.add_catalog_entry(streetsync.Catalog.AREA, "Südstadt")
    assert entry.id in [a.id for a in lead.catalog(streetsync.Catalog.AREA)]
    with pytest.raises(StreetsyncError.NotAllowed):
        worker.add_catalog_entry(streetsync.Catalog.TOPIC, "Wohnen")


def test_listener_exceptions_do_not_break_the_store(team):
    lead, lead_sync, worker, worker_sync = team
    throwing = ThrowingListener()
    sub = lead.subscribe(throwing)
    c = lead.create_contact(draft(note="still stored"))
    assert lead.get_contact(c.id).fields.note == "still stored"
    sync_listener = ThrowingSyncListener()
    report = asyncio.run(lead_sync.sync_once(sync_listener))
    # The sync did its work despite the listener raising at every call ...
    assert report.pushed == 1
    assert lead.pending_changes() == 0
    # ... and the listener kept getting events after its first exception: every status up to the
    # last, and the report.
    assert sync_listener.statuses[0] == SyncStatus.SYNCING()
    assert sync_listener.statuses[-1].is_IDLE(), sync_listener.statuses
    assert len(sync_listener.reports) == 1 and sync_listener.reports[0].pushed == 1
    # The store still works, and the throwing change listener got both changes: the one before
    # its first exception and the one after.
    c2 = lead.create_contact(draft(note="after the exception"))
    assert lead.get_contact(c2.id).fields.note == "after the exception"
    assert asyncio.run(wait_until(lambda: c2.id in throwing.changed, 5)), throwing.changed
    assert c.id in throwing.changed
    assert throwing.snapshots == 1
    sub.cancel()


class ThrowingSyncListener(streetsync.SyncListener):
    """Records every call, then raises."""

    def __init__(self):
        self.statuses = []
        self.reports = []

    def on_status(self, status):
        self.statuses.append(status)
        raise RuntimeError("host bug")

    def on_progress(self, progress):
        raise RuntimeError("host bug")

    def on_synced(self, report):
        self.reports.append(report)
        raise RuntimeError("host bug")


def test_live_sync_delivers_status_first_and_remote_changes(team):
    lead, lead_sync, worker, worker_sync = team
    changes = RecordingChangeListener()
    sub = lead.subscribe(changes)

    async def run():
        listener = RecordingSyncListener()
        live = lead_sync.start_live(listener)
        assert await wait_until(lambda: listener.statuses, 5)
        assert listener.statuses[0] == SyncStatus.CONNECTING()
        assert await wait_until(lambda: any(s.is_IDLE() for s in listener.statuses), 10)
        assert live.is_running()
        c = worker.create_contact(draft(note="live"))
        await worker_sync.sync_once(None)
        assert await wait_until(lambda: any(ch.id == c.id for ch in changes.changes), 15), listener.statuses
        live.stop()
        assert await wait_until(lambda: listener.statuses[-1] == SyncStatus.STOPPED(), 5)
        assert not live.is_running()
        assert live.status() == SyncStatus.STOPPED()

    asyncio.run(run())
    sub.cancel()


def test_revoked_device_gets_a_typed_error(team):
    lead, lead_sync, worker, worker_sync = team

    async def run():
        await lead_sync.revoke_device(worker.device_id())
        assert lead.key_epochs() == [1, 2]
        with pytest.raises(StreetsyncError.Revoked):
            await worker_sync.sync_once(None)

    asyncio.run(run())


def test_cancelled_sync_is_cancelled(team):
    lead, lead_sync, _, _ = team
    for i in range(3):
        lead.create_contact(draft(note="queued %d" % i))
    assert lead.pending_changes() == 3

    async def run():
        listener = RecordingSyncListener()
        alive = weakref.ref(listener)
        task = asyncio.ensure_future(lead_sync.sync_once(listener))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        del task
        # The Rust future was dropped, not left running: it never finishes (no report, the
        # outbox still holds what it would have pushed) ...
        await asyncio.sleep(2)
        assert listener.reports == [], "a cancelled sync finished in the background"
        assert lead.pending_changes() == 3
        # ... and it let go of the listener it held (the handle uniffi keeps for Rust is freed
        # only when the Rust side drops its reference, i.e. with the future).
        del listener
        gc.collect()
        assert alive() is None, "the cancelled future still holds the listener"
        # The client still works afterwards and pushes what the cancelled sync did not.
        report = await lead_sync.sync_once(None)
        assert report.pushed == 3
        assert lead.pending_changes() == 0

    asyncio.run(run())


def test_statistics_suppress_small_counts_and_export_csv(team):
    lead, lead_sync, worker, worker_sync = team
    # Five persons in the Hauptbahnhof in March, one person in the Stadtpark.
    for i in range(5):
        worker.create_contact(draft(date="2026-03-0%d" % (i + 1), note="Notiz %d MARKERNOTE" % i))
    worker.create_contact(draft(date="2026-03-10", area="stadtpark"))
    asyncio.run(worker_sync.sync_once(None))
    asyncio.run(lead_sync.sync_once(None))
    stats = lead.statistics("2026-03-01", "2026-03-31")
    assert stats.total.contacts.value == 6
    areas = {t.dimension: t for t in stats.tables}["area"]
    rows = {r.key: r for r in areas.rows}
    assert rows["stadtpark"].persons.value is None and rows["stadtpark"].persons.text == "<3"
    # 6 - 5 would give the Stadtpark's one person away: secondary suppression hides the
    # Hauptbahnhof too, marked "x" (not small) rather than "<3".
    hbf = rows["hauptbahnhof"].persons
    assert hbf.value is None and hbf.text == "x" and hbf.secondary
    assert stats.secondary_suppressed > 0
    assert stats.total.persons.value == 6
    csv_text = lead.statistics_csv("2026-03-01", "2026-03-31")
    assert "<3" in csv_text
    with pytest.raises(StreetsyncError.InvalidInput) as e:
        lead.statistics("2026-03-31", "2026-03-01")
    assert e.value.field == "to"
    export = lead.export_contacts_csv("2026-03-01", "2026-03-31", False)
    assert len(export.strip().splitlines()) == 7  # header + six contacts
    assert "MARKERNOTE" not in export, "notes stay out unless asked for"
    assert "MARKERNOTE" in lead.export_contacts_csv(None, None, True)
