// The peer's sync server for the side-by-side benchmark (tests/benches/side_by_side.rs), built the
// way the official automerge-repo-sync-server is: an HTTP server whose upgrade requests go to a
// `ws` WebSocketServer (noServer), a Repo with NodeWSServerAdapter on it, NodeFSStorageAdapter for
// persistence, and a share policy that returns false (the server only syncs documents a client
// asks for by id). The official server uses express for its one HTTP route; plain node:http does
// the same here without another dependency.
//
// usage: node server.mjs <port> <data-dir>
// prints `listening on 127.0.0.1:<port>` once ready.
import fs from "node:fs"
import http from "node:http"
import os from "node:os"
import { WebSocketServer } from "ws"
import { Repo } from "@automerge/automerge-repo"
import { NodeWSServerAdapter } from "@automerge/automerge-repo-network-websocket"
import { NodeFSStorageAdapter } from "@automerge/automerge-repo-storage-nodefs"

const port = parseInt(process.argv[2] ?? "0", 10)
const dir = process.argv[3] ?? ".amrg"
fs.mkdirSync(dir, { recursive: true })

const wsServer = new WebSocketServer({ noServer: true })
const repo = new Repo({
  network: [new NodeWSServerAdapter(wsServer)],
  storage: new NodeFSStorageAdapter(dir),
  peerId: `storage-server-${os.hostname()}`,
  // Don't share documents with clients that did not ask for them.
  sharePolicy: async () => false,
})

const server = http.createServer((req, res) => {
  // Not in the official server: a probe for the benchmark. POST a JSON array of document ids, get
  // back the heads this server holds for each (null if it has no ready copy). The client uses it
  // to confirm an upload when its own sync info for a document never catches up (seen at 3,000
  // documents: the server held every one, the client's sync info lagged for a few hundred).
  if (req.method === "POST" && req.url === "/bench/heads") {
    let body = ""
    req.on("data", chunk => (body += chunk))
    req.on("end", () => {
      const heads = {}
      for (const id of JSON.parse(body || "[]")) {
        const h = repo.handles[id]
        heads[id] = h && h.isReady() ? h.heads() : null
      }
      res.writeHead(200, { "content-type": "application/json" })
      res.end(JSON.stringify(heads))
    })
    return
  }
  res.writeHead(200, { "content-type": "text/plain" })
  res.end("👍 @automerge/automerge-repo-sync-server is running")
})
server.on("upgrade", (request, socket, head) => {
  wsServer.handleUpgrade(request, socket, head, ws => {
    wsServer.emit("connection", ws, request)
  })
})
server.listen(port, "127.0.0.1", () => {
  const addr = server.address()
  process.stdout.write(`listening on 127.0.0.1:${addr.port}\n`)
})

for (const sig of ["SIGTERM", "SIGINT"]) {
  process.on(sig, async () => {
    wsServer.close()
    server.close()
    try {
      await repo.flush()
    } finally {
      process.exit(0)
    }
  })
}
