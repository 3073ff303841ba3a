// A device of the peer in the side-by-side benchmark (tests/benches/side_by_side.rs): a Repo with
// the websocket client adapter and NodeFS storage in its own directory, the way an app developer
// would use automerge-repo.
//
// usage: node client.mjs <ws-url> <store-dir> <mode> ...
//   create <N> <urls-file> <contacts.json>
//       device A: creates N field-contact documents (the contacts streetsync stores, in the same
//       document shape), waits until the server holds the heads of every one, flushes, and
//       writes their URLs to <urls-file>. SBS_PEER_CREATE_BATCH: documents created before
//       waiting for the server to hold them (0, the default here, creates all first).
//   load <urls-file> [--live]
//       device B (fresh store): finds every URL and waits until each handle is ready, then
//       flushes; with --live it then subscribes to the first URL like `live`.
//       SBS_PEER_FIND_CONCURRENCY: finds in flight (0, the default here, starts all at once).
//   live <url>
//       B: prints `changed <unix-ms>` whenever the document changes.
//   edit <url> [count] [gap-ms]
//       A: once connected and in sync, makes `count` edits to the note, printing
//       `edit <unix-ms>` just before each.
//
// Lines for the bench: `created <ms>`, `uploaded <ms>`, `loaded <ms> <ok> <failed>`,
// `flushed <ms>`, `live-ready`, `changed <unix-ms>`, `edit <unix-ms>`, `progress ...`, `done`;
// `fatal <text>` on failure (exit code 1). automerge-repo logs to stdout too; the bench ignores
// those lines. Times in ms are measured inside the process from the start of the step.
import fs from "node:fs"
import { Repo, Counter, ImmutableString } from "@automerge/automerge-repo"
import { WebSocketClientAdapter } from "@automerge/automerge-repo-network-websocket"
import { NodeFSStorageAdapter } from "@automerge/automerge-repo-storage-nodefs"
import * as A from "@automerge/automerge"

const [url, dir, mode, ...rest] = process.argv.slice(2)
// Finds in flight while loading: 0 (the default) starts them all at once.
const concurrency = parseInt(process.env.SBS_PEER_FIND_CONCURRENCY ?? "0", 10)
// Documents created before waiting for the server to hold them: 0 (the default) creates all.
const batch = parseInt(process.env.SBS_PEER_CREATE_BATCH ?? "0", 10) || Infinity
const out = line => process.stdout.write(line + "\n")
const now = () => performance.timeOrigin + performance.now()
const sleep = ms => new Promise(r => setTimeout(r, ms))

process.on("unhandledRejection", e => {
  out(`fatal ${String(e?.stack ?? e).replace(/\n/g, " | ")}`)
  process.exit(1)
})

function openRepo() {
  fs.mkdirSync(dir, { recursive: true })
  return new Repo({
    network: [new WebSocketClientAdapter(url)],
    storage: new NodeFSStorageAdapter(dir),
  })
}

// The server's storage id, once it is connected (the server is a non-ephemeral peer with storage).
async function serverStorageId(repo, timeoutMs = 30000) {
  const end = Date.now() + timeoutMs
  for (;;) {
    for (const peer of repo.peers) {
      const sid = repo.getStorageIdOfPeer(peer)
      if (sid) return sid
    }
    if (Date.now() > end) throw new Error("no connection to the sync server")
    await sleep(5)
  }
}

const sameHeads = (a, b) =>
  !!a && !!b && a.length === b.length && [...a].sort().join() === [...b].sort().join()

// The benchmark's probe on the server (server.mjs): the heads it holds for each document id.
async function serverHeads(ids) {
  const res = await fetch(url.replace(/^ws/, "http") + "/bench/heads", {
    method: "POST",
    body: JSON.stringify(ids),
  })
  return res.json()
}

// Waits until the server holds the local heads of every handle: by the sync info the repo keeps
// per storage id (updated from the server's sync messages), or, for documents whose sync info
// lags, by asking the server (every 2 s).
async function untilServerHas(handles, sid) {
  let done = 0
  const t0 = performance.now()
  const pending = new Map()
  // Every 2 s, ask the server directly about the documents whose sync info has not caught up.
  const probe = setInterval(async () => {
    if (pending.size === 0) return
    const ids = [...pending.keys()]
    try {
      const heads = await serverHeads(ids)
      for (const id of ids) pending.get(id)?.(heads[id])
    } catch {}
  }, 2000)
  const progress = setInterval(
    () => out(`progress ${((performance.now() - t0) / 1000).toFixed(0)}s ${done}/${handles.length}`),
    5000,
  )
  await Promise.all(
    handles.map(
      h =>
        new Promise(resolve => {
          const onRemote = () => check()
          const check = probed => {
            if (!sameHeads(probed ?? h.getSyncInfo(sid)?.lastHeads, h.heads())) return
            h.off("remote-heads", onRemote)
            pending.delete(h.documentId)
            done++
            resolve()
          }
          pending.set(h.documentId, check)
          h.on("remote-heads", onRemote)
          check()
        }),
    ),
  )
  clearInterval(progress)
  clearInterval(probe)
}

const hex = n => Array.from({ length: n }, () => Math.floor(Math.random() * 16).toString(16)).join("")
const S = s => new ImmutableString(s)
const opt = s => (s == null ? null : S(s))

// The shape of streetsync's ContactDoc (core/src/contact.rs): scalar strings for the fields,
// Automerge text for the note, counters for materials. The bench writes each contact with the
// values exactly as streetsync stores them (dates, `HH:MM` times, vocabulary variant names).
function contactDoc(c, author) {
  const t = Date.now()
  const materials = {}
  for (const [id, count] of c.materials) materials[id] = new Counter(count)
  return {
    schema_version: 1,
    kind: S("contact"),
    id: S(hex(32)),
    date: S(c.date),
    start_time: S(c.start_time),
    end_time: opt(c.end_time),
    area_id: S(c.area_id),
    place: S(c.place),
    location: null,
    setting: S(c.setting),
    persons: c.persons,
    first_contact: c.first_contact,
    age_band: S(c.age_band),
    gender: S(c.gender),
    client_code: opt(c.client_code),
    housing: S(c.housing),
    topics: c.topics.map(S),
    interventions: c.interventions.map(S),
    materials,
    referrals: [],
    safeguarding: c.safeguarding,
    note: c.note,
    review: S("Draft"),
    comments: [],
    author: S(author),
    created_at: t,
    updated_at: t,
    retention: S(c.retention),
  }
}

async function create(n, urlsFile, contactsFile) {
  const contacts = JSON.parse(fs.readFileSync(contactsFile, "utf8"))
  const repo = openRepo()
  const sid = await serverStorageId(repo)
  const author = hex(32)
  const t0 = performance.now()
  const handles = []
  let createMs = 0
  for (let start = 0; start < n; start += batch) {
    const t = performance.now()
    const created = []
    for (let i = start; i < Math.min(n, start + batch); i++) {
      created.push(repo.create(contactDoc(contacts[i % contacts.length], author)))
      // Let the network and storage work while documents are created, as in an app.
      if (i % 100 === 99) await sleep(0)
    }
    createMs += performance.now() - t
    handles.push(...created)
    // Back-pressure: without it, creating thousands of documents in one go floods the server
    // (at 10,000 it crashed with a 60 s timeout in automerge-repo); an importing app would wait.
    if (start + batch < n) await untilServerHas(created, sid)
  }
  out(`created ${createMs.toFixed(1)}`)
  await untilServerHas(handles, sid)
  out(`uploaded ${(performance.now() - t0).toFixed(1)}`)
  fs.writeFileSync(urlsFile, handles.map(h => h.url).join("\n") + "\n")
  const t1 = performance.now()
  await repo.flush()
  out(`flushed ${(performance.now() - t1).toFixed(1)}`)
  await repo.shutdown()
  out("done")
  process.exit(0)
}

async function subscribe(repo, docUrl) {
  const handle = await repo.find(docUrl)
  handle.on("change", () => out(`changed ${now().toFixed(3)}`))
  await serverStorageId(repo)
  out("live-ready")
}

async function load(urlsFile, live) {
  const urls = fs.readFileSync(urlsFile, "utf8").split("\n").filter(Boolean)
  const repo = openRepo()
  const t0 = performance.now()
  let ok = 0
  let failed = 0
  let firstError = null
  const progress = setInterval(
    () => out(`progress ${((performance.now() - t0) / 1000).toFixed(0)}s ${ok + failed}/${urls.length}`),
    5000,
  )
  const open = u =>
    repo.find(u).then(
      h => {
        if (typeof h.doc()?.note === "string") ok++
        else failed++
      },
      e => {
        failed++
        firstError ??= e
      },
    )
  if (concurrency <= 0) {
    // What an app does to open everything it was given: find all, wait for all.
    await Promise.all(urls.map(open))
  } else {
    // At most `concurrency` finds in flight.
    let next = 0
    const worker = async () => {
      while (next < urls.length) await open(urls[next++])
    }
    await Promise.all(Array.from({ length: Math.min(concurrency, urls.length) }, worker))
  }
  clearInterval(progress)
  out(`loaded ${(performance.now() - t0).toFixed(1)} ${ok} ${failed}`)
  if (firstError) out(`first-error ${String(firstError).replace(/\n/g, " | ")}`)
  if (failed > 0) process.exit(1)
  const t1 = performance.now()
  await repo.flush()
  out(`flushed ${(performance.now() - t1).toFixed(1)}`)
  if (live) await subscribe(repo, urls[0])
  else {
    await repo.shutdown()
    out("done")
    process.exit(0)
  }
}

async function edit(docUrl, count, gapMs) {
  const repo = openRepo()
  const sid = await serverStorageId(repo)
  const handle = await repo.find(docUrl)
  await untilServerHas([handle], sid)
  await sleep(gapMs)
  for (let i = 0; i < count; i++) {
    out(`edit ${now().toFixed(3)}`)
    handle.change(d => {
      A.splice(d, ["note"], 0, 0, `Nachtrag ${i + 1}: `)
      d.updated_at = Date.now()
    })
    await untilServerHas([handle], sid)
    await sleep(gapMs)
  }
  await repo.flush()
  await repo.shutdown()
  out("done")
  process.exit(0)
}

switch (mode) {
  case "create":
    await create(parseInt(rest[0], 10), rest[1], rest[2])
    break
  case "load":
    await load(rest[0], rest[1] === "--live")
    break
  case "live":
    await subscribe(openRepo(), rest[0])
    break
  case "edit":
    await edit(rest[0], parseInt(rest[1] ?? "1", 10), parseInt(rest[2] ?? "1000", 10))
    break
  default:
    out(`fatal unknown mode ${mode}`)
    process.exit(2)
}
