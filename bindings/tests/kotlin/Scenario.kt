// The Kotlin scenario test: the generated bindings and the real libstreetsync_ffi against a real
// relay process. Two stores act as two devices (a lead and a worker) in a temp dir.
//
// Run by bindings/tests/run.sh. Arguments: none. Environment: STREETSYNC_RELAY_BIN (the relay
// binary). Prints one line per check and ends with `kotlin: N passed, M failed`; exits non-zero if
// anything failed.

import java.io.BufferedReader
import java.io.File
import java.io.InputStreamReader
import java.nio.file.Files
import java.util.concurrent.CopyOnWriteArrayList
import kotlin.system.exitProcess
import kotlinx.coroutines.delay
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.streetsync.*

var passed = 0
var failed = 0

fun check(name: String, ok: Boolean, detail: () -> String = { "" }) {
    if (ok) {
        passed++
        println("ok   $name")
    } else {
        failed++
        println("FAIL $name ${detail()}")
    }
}

/** Runs `block` and returns the StreetsyncException it throws (or null if it did not throw one). */
inline fun <reified E : StreetsyncException> expectError(block: () -> Unit): E? =
    try {
        block()
        null
    } catch (e: StreetsyncException) {
        e as? E
    }

class RecordingSyncListener : SyncListener {
    val statuses = CopyOnWriteArrayList<SyncStatus>()
    val progress = CopyOnWriteArrayList<SyncProgress>()
    val reports = CopyOnWriteArrayList<SyncReport>()

    override fun onStatus(status: SyncStatus) {
        statuses.add(status)
    }

    override fun onProgress(progress: SyncProgress) {
        this.progress.add(progress)
    }

    override fun onSynced(report: SyncReport) {
        reports.add(report)
    }
}

class RecordingChangeListener : ChangeListener {
    val snapshots = CopyOnWriteArrayList<StoreSnapshot>()
    val changes = CopyOnWriteArrayList<RecordChange>()
    @Volatile var snapshotFirst = true

    override fun onSnapshot(snapshot: StoreSnapshot) {
        snapshots.add(snapshot)
    }

    override fun onChanges(changes: List<RecordChange>) {
        if (snapshots.isEmpty()) snapshotFirst = false
        this.changes.addAll(changes)
    }
}

/** A relay process on a free loopback port. */
class Relay(bin: String, dataDir: File) : AutoCloseable {
    private val process: Process =
        ProcessBuilder(bin, "--bind", "127.0.0.1:0", "--data-dir", dataDir.path)
            .redirectError(ProcessBuilder.Redirect.INHERIT)
            .also { it.environment()["STREETSYNC_RELAY_LOG"] = "warn" }
            .start()
    val url: String

    init {
        val line = BufferedReader(InputStreamReader(process.inputStream)).readLine()
            ?: error("the relay exited before listening")
        require(line.startsWith("listening on ")) { "unexpected relay output: $line" }
        url = "http://" + line.removePrefix("listening on ").trim()
    }

    override fun close() {
        process.destroy()
        process.waitFor()
    }
}

suspend fun waitUntil(timeoutMs: Long, cond: () -> Boolean): Boolean {
    val end = System.currentTimeMillis() + timeoutMs
    while (System.currentTimeMillis() < end) {
        if (cond()) return true
        delay(50)
    }
    return cond()
}

fun scenario(relayBin: String) = runBlocking {
    val dir = Files.createTempDirectory("streetsync-kotlin").toFile()
    Relay(relayBin, File(dir, "relay")).use { relay ->
        check("library version", libraryVersion().isNotEmpty())

        // A wrong key is a typed error and changes nothing.
        val key = generateStorageKey()
        check("storage key is 32 bytes", key.size == 32)
        Workspace.open(File(dir, "probe.db").path, key).use { }
        val wrong = expectError<StreetsyncException.WrongKey> {
            Workspace.open(File(dir, "probe.db").path, generateStorageKey()).close()
        }
        check("wrong key -> WrongKey", wrong != null)
        val shortKey = expectError<StreetsyncException.InvalidInput> {
            Workspace.open(File(dir, "short.db").path, ByteArray(7)).close()
        }
        check("short key -> InvalidInput(storage_key)", shortKey?.field == "storage_key")

        val newKey = generateStorageKey()
        Workspace.open(File(dir, "probe.db").path, key).use { it.changeStorageKey(newKey) }
        check("old key refused after change", expectError<StreetsyncException.WrongKey> { Workspace.open(File(dir, "probe.db").path, key).close() } != null)
        Workspace.open(File(dir, "probe.db").path, newKey).use { check("new key opens", it.teamId() == null) }

        Workspace.open(File(dir, "lead.db").path, generateStorageKey()).use { lead ->
        Workspace.open(File(dir, "worker.db").path, generateStorageKey()).use { worker ->
        SyncClient(lead, relay.url).use { leadSync ->
        worker.syncClient(relay.url).use { workerSync ->
            // Not in a team yet.
            check("no team -> NotAMember", expectError<StreetsyncException.NotAMember> { worker.team() } != null)

            // The lead founds the team and fills the directory.
            val team = lead.createTeam(
                TeamSetup(
                    teamName = "Streetwork Mitte",
                    memberName = "Alex",
                    areas = listOf("Hauptbahnhof", "Stadtpark"),
                ),
            )
            check("team created with areas", team.areas.map { it.id } == listOf("hauptbahnhof", "stadtpark"))
            check("default materials", team.materials.isNotEmpty())
            check("lead role", lead.myRole() == Role.LEAD)
            val partner = lead.addPartner(PartnerDraft(name = "Suchtberatung Mitte", offers = listOf("Substitution")))
            check("partner directory", lead.partners().map { it.id } == listOf(partner.id))
            val material = team.materials.first().id
            val topic = team.topics.first().id

            // A mistyped invite code is a typed error.
            val typo = try {
                workerSync.joinWithInvite("NOT-A-CODE")
                null
            } catch (e: StreetsyncException) {
                e
            }
            check("mistyped invite -> InvalidInput(invite_code)", typo is StreetsyncException.InvalidInput && typo.field == "invite_code") { "$typo" }

            // Enrolment by invite: the lead creates a one-time code, the worker redeems it, the
            // lead's next sync puts the device on the roster.
            val invite = leadSync.createInvite("Sam", Role.WORKER, 3600uL)
            check("invite created", invite.code.isNotBlank() && invite.role == Role.WORKER && invite.member == "Sam")
            val joined = workerSync.joinWithInvite(invite.code)
            check("worker joined", worker.teamId() == team.id && worker.team().name == "Streetwork Mitte") { "$joined" }
            leadSync.syncOnce(null)
            check("lead put the device on the roster", lead.team().roster.map { it.deviceId }.contains(worker.deviceId())) { "${lead.team().roster}" }
            workerSync.syncOnce(null)
            check("worker sees its role", worker.myRole() == Role.WORKER)

            // The lead listens for changes: a snapshot first, then changes.
            val leadChanges = RecordingChangeListener()
            val subscription = lead.subscribe(leadChanges)
            check("snapshot delivered first", leadChanges.snapshots.size == 1 && leadChanges.snapshots[0].contacts == 0uL)

            // Both log contacts.
            val c1 = worker.createContact(
                newContactDraft("2026-11-23", "14:30", "hauptbahnhof").copy(
                    endTime = "15:10",
                    place = "Hauptbahnhof Nordausgang",
                    note = "Talked about the night shelter.",
                    clientCode = "MA-1987-K",
                    topics = listOf(topic),
                    interventions = listOf(Intervention.COUNSELLING, Intervention.REFERRAL),
                    materials = listOf(MaterialCount(material, 3)),
                    referrals = listOf(
                        Referral(
                            id = "r1",
                            partnerId = partner.id,
                            reason = "Substitution",
                            consent = Consent("health data", "Suchtberatung Mitte", "appointment", "2026-11-23"),
                            outcome = ReferralOutcome.OPEN,
                        ),
                    ),
                ),
            )
            check("contact with referral and consent", c1.fields.referrals.single().consent?.givenOn == "2026-11-23")
            check("times round-trip", c1.fields.startTime == "14:30" && c1.fields.endTime == "15:10")
            val c2 = worker.createContact(
                newContactDraft("2026-11-24", "09:00", "stadtpark").copy(persons = 3, note = "Group at the fountain."),
            )
            val c3 = lead.createContact(newContactDraft("2026-11-20", "18:00", "stadtpark").copy(safeguarding = true))
            check("pending changes on worker: c1 and c2", worker.pendingChanges() == 2uL) { "${worker.pendingChanges()}" }

            // A suspend sync with a Kotlin listener receiving status and progress.
            val syncListener = RecordingSyncListener()
            val pushed = workerSync.syncOnce(syncListener)
            check("worker pushed exactly c1 and c2", pushed.pushed == 2uL) { "$pushed" }
            check("status Syncing first", syncListener.statuses.firstOrNull() == SyncStatus.Syncing) { "${syncListener.statuses}" }
            check("status Idle last", syncListener.statuses.lastOrNull() is SyncStatus.Idle) { "${syncListener.statuses}" }
            check("progress received", syncListener.progress.filter { it.phase == SyncPhase.PUSHING }.maxOfOrNull { it.done } == 2uL) { "${syncListener.progress}" }
            check("report delivered", syncListener.reports.size == 1)
            check("outbox empty after sync", worker.pendingChanges() == 0uL)

            // The lead pulls; its change listener sees the worker's records as remote changes.
            leadSync.syncOnce(null)
            val remoteIds = leadChanges.changes.filter { it.origin == ChangeOrigin.REMOTE }.map { it.id }.toSet()
            check("lead listener got remote changes", remoteIds.containsAll(listOf(c1.id, c2.id))) { "${leadChanges.changes}" }
            check("snapshot came before changes", leadChanges.snapshotFirst)
            workerSync.syncOnce(null)

            // List and filter on both devices.
            check("lead lists three", lead.listContacts(ContactFilter()).total == 3uL)
            check("worker lists three", worker.listContacts(ContactFilter()).total == 3uL)
            val byText = lead.listContacts(ContactFilter(text = "SHELTER"))
            check("full-text filter", byText.items.map { it.id } == listOf(c1.id))
            val byArea = lead.listContacts(ContactFilter(areaId = "stadtpark"))
            check("area filter, newest first", byArea.items.map { it.id } == listOf(c2.id, c3.id))
            val byDate = lead.listContacts(ContactFilter(fromDate = "2026-11-21", toDate = "2026-11-23"))
            check("date filter", byDate.items.map { it.id } == listOf(c1.id))
            val queue = lead.listContacts(ContactFilter(safeguardingFirst = true))
            check("safeguarding first", queue.items.first().id == c3.id)
            val page = lead.listContacts(ContactFilter(limit = 2u, offset = 0u))
            check("paging", page.items.size == 2 && page.total == 3uL)
            val full = lead.getContact(c1.id)
            check("lead reads the worker's note", full.fields.note == "Talked about the night shelter.")

            // Typed exceptions on bad input.
            val negative = expectError<StreetsyncException.InvalidInput> {
                worker.createContact(
                    newContactDraft("2026-11-23", "10:00", "hauptbahnhof").copy(materials = listOf(MaterialCount(material, -1))),
                )
            }
            check("negative material count -> InvalidInput naming the field", negative?.field == "materials[$material].count") { "$negative" }
            check("error message is readable", negative?.toString()?.contains("negative") == true) { "${negative?.toString()}" }
            val badDate = expectError<StreetsyncException.InvalidInput> {
                worker.createContact(newContactDraft("2026-11-23", "10:00", "hauptbahnhof").copy(date = "23.11.2026"))
            }
            check("bad date -> InvalidInput(date)", badDate?.field == "date")
            val badDraft = expectError<StreetsyncException.InvalidInput> { newContactDraft("2026-11-23", "25:99", "x") }
            check("bad time -> InvalidInput(start_time)", badDraft?.field == "start_time")
            val badId = expectError<StreetsyncException.InvalidInput> { lead.getContact("not-an-id") }
            check("bad id -> InvalidInput(id)", badId?.field == "id")
            val badRange = expectError<StreetsyncException.InvalidInput> {
                lead.listContacts(ContactFilter(fromDate = "2026-12-01", toDate = "2026-11-01"))
            }
            check("inverted range -> InvalidInput(to_date)", badRange?.field == "to_date")
            val noConsent = expectError<StreetsyncException.InvalidInput> {
                worker.createContact(
                    newContactDraft("2026-11-23", "10:00", "hauptbahnhof").copy(
                        clientCode = "XY-1990",
                        referrals = listOf(Referral("r1", partner.id, "", null, ReferralOutcome.OPEN)),
                    ),
                )
            }
            check("referral without consent -> InvalidInput", noConsent?.field == "referrals[0].consent")
            check("worker cannot approve", expectError<StreetsyncException.NotAllowed> { worker.approveContact(c2.id) } != null)

            // Review round trip across devices.
            worker.submitContact(c2.id)
            workerSync.syncOnce(null)
            leadSync.syncOnce(null)
            val asked = lead.requestChanges(c2.id, "Which fountain?")
            check("lead asks", asked.openQuestion && asked.review == ReviewState.CHANGES_REQUESTED)
            leadSync.syncOnce(null)
            workerSync.syncOnce(null)
            val answered = worker.answerContact(c2.id, "Marktplatz.")
            check("worker answers", answered.review == ReviewState.SUBMITTED && answered.comments.size == 2)
            workerSync.syncOnce(null)
            leadSync.syncOnce(null)
            val approved = lead.approveContact(c2.id)
            check("lead approves", approved.review == ReviewState.APPROVED)
            check("review filter", lead.listContacts(ContactFilter(review = ReviewState.APPROVED)).items.map { it.id } == listOf(c2.id))

            // Clients with consent.
            val client = worker.createClient(
                newClientDraft("MA-1987-K").copy(
                    alias = "Maik",
                    consents = listOf(Consent("contact data", "Jobcenter", "appointment", "2026-11-01")),
                ),
            )
            check("client created", worker.listClients(ClientFilter(text = "maik")).map { it.id } == listOf(client.id))
            check("duplicate client code -> InvalidInput(code)", expectError<StreetsyncException.InvalidInput> { worker.createClient(newClientDraft("ma-1987-k")) }?.field == "code")

            // Live sync on the lead: status first, then the worker's new contact arrives by itself.
            val liveListener = RecordingSyncListener()
            val live = leadSync.startLive(liveListener)
            check("live delivers the current status first", waitUntil(5_000) { liveListener.statuses.isNotEmpty() } && liveListener.statuses.first() == SyncStatus.Connecting)
            check("live becomes idle", waitUntil(10_000) { liveListener.statuses.any { it is SyncStatus.Idle } }) { "${liveListener.statuses}" }
            val c4 = worker.createContact(newContactDraft("2026-11-25", "11:00", "hauptbahnhof").copy(note = "live"))
            workerSync.syncOnce(null)
            check("live sync brings the new contact", waitUntil(15_000) { leadChanges.changes.any { it.id == c4.id } }) { "${liveListener.statuses}" }
            live.stop()
            check("live stops with Stopped last", waitUntil(5_000) { liveListener.statuses.lastOrNull() == SyncStatus.Stopped }) { "${liveListener.statuses}" }
            check("live not running", !live.isRunning())
            live.close()

            // Delete a record; the deletion reaches the other device.
            worker.deleteContact(c4.id)
            workerSync.syncOnce(null)
            leadSync.syncOnce(null)
            check("lead sees the removal", leadChanges.changes.any { it.id == c4.id && it.removed })
            check("deleted -> NotFound", expectError<StreetsyncException.NotFound> { lead.getContact(c4.id) } != null)
            check("deleted contact not listed", lead.listContacts(ContactFilter()).items.none { it.id == c4.id })

            // Cancelling the subscription stops delivery.
            subscription.cancel()
            check("subscription inactive", !subscription.isActive())
            val before = leadChanges.changes.size
            lead.createContact(newContactDraft("2026-11-26", "12:00", "hauptbahnhof"))
            check("no delivery after cancel", leadChanges.changes.size == before)
            subscription.close()

            // Audit trail and erasure (leads only).
            val history = lead.history(c2.id)
            check("history records the review", history.map { it.message }.containsAll(listOf("approve")) && history.first().deviceId == worker.deviceId()) { "$history" }
            check("worker cannot erase", expectError<StreetsyncException.NotAllowed> { worker.eraseRecord(c1.id) } != null)
            lead.eraseRecord(c1.id)
            check("erased locally at once", expectError<StreetsyncException.NotFound> { lead.getContact(c1.id) } != null)
            leadSync.syncOnce(null)
            workerSync.syncOnce(null)
            check("erasure reaches the worker", expectError<StreetsyncException.NotFound> { worker.getContact(c1.id) } != null)

            check("nothing quarantined", leadSync.quarantineReport().isEmpty() && workerSync.quarantineReport().isEmpty())
            check("no damaged records", lead.damagedRecords().isEmpty())

            // A lead removes the worker's device: the relay refuses it from then on.
            leadSync.revokeDevice(worker.deviceId())
            check("new key epoch after revocation", lead.keyEpochs() == listOf(1u, 2u)) { "${lead.keyEpochs()}" }
            val refused = try {
                workerSync.syncOnce(null)
                null
            } catch (e: StreetsyncException) {
                e
            }
            check("revoked device -> Revoked", refused is StreetsyncException.Revoked) { "$refused" }
        }
        }
        }
        }
    }
    dir.deleteRecursively()
}

fun main() {
    val relayBin = System.getenv("STREETSYNC_RELAY_BIN") ?: error("set STREETSYNC_RELAY_BIN")
    try {
        scenario(relayBin)
    } catch (e: Throwable) {
        failed++
        println("FAIL scenario aborted: $e")
        e.printStackTrace()
    }
    println("kotlin: $passed passed, $failed failed")
    exitProcess(if (failed == 0) 0 else 1)
}
