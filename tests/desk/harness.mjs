// The desk's browser-test harness: a real relay process on 127.0.0.1, a lead's store and two
// workers' stores made with the real `streetsync` binary, the real `streetsync desk` on the lead's
// store, and Debian's Chromium driven by playwright-core (never a downloaded browser). Every wait
// has a deadline; nothing here measures speed.

import { spawn, execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { mkdtempSync, mkdirSync, rmSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import http from 'node:http';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const TARGET = process.env.CARGO_TARGET_DIR || path.join(ROOT, 'target');
export const RELAY_BIN = process.env.STREETSYNC_RELAY_BIN || path.join(TARGET, 'debug', 'streetsync-relay');
export const CLI_BIN = process.env.STREETSYNC_CLI_BIN || path.join(TARGET, 'debug', 'streetsync');
export const SCREENSHOTS = path.join(TARGET, 'desk-screenshots');
export const CHROMIUM = process.env.DESK_CHROMIUM || '/usr/bin/chromium';
const NODE_DIR = process.env.DESK_NODE_DIR || path.join(process.env.HOME || '/root', '.cache', 'streetsync', 'desk-node');

// playwright-core and axe-core live in the cache dir run.sh fills with `npm ci`.
const requireFromCache = createRequire(path.join(NODE_DIR, 'package.json'));
export const { chromium } = requireFromCache('playwright-core');
export const axe = requireFromCache('axe-core');

export const PASSPHRASE = 'correct horse battery';

/** Every process the harness started, so none outlives the run (also when run.sh's timeout hits). */
const children = new Set();
function track(child) {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}
process.once('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.once(sig, () => {
    for (const c of children) c.kill('SIGKILL');
    process.exit(130);
  });
}

/** Runs `fn` until it returns a truthy value or `ms` pass; returns that value or throws `what`. */
export async function eventually(what, fn, ms = 20_000, every = 200) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? `: ${last.message}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, every));
  }
}

/** Reads lines of a child's stdout until `match` returns a value, with a deadline. */
function firstLine(child, match, what, ms = 30_000) {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => {
      reject(new Error(`timed out after ${ms} ms waiting for ${what}; output so far: ${JSON.stringify(buf)}`));
    }, ms);
    const onData = (chunk) => {
      buf += chunk.toString();
      for (const line of buf.split('\n')) {
        const v = match(line.trim());
        if (v) {
          clearTimeout(timer);
          child.stdout.off('data', onData);
          resolve(v);
          return;
        }
      }
    };
    child.stdout.on('data', onData);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${what}: the process exited (${code ?? signal}) first; output: ${JSON.stringify(buf)}`));
    });
  });
}

/** Stops a child: SIGINT (the desk's Ctrl-C), then SIGKILL after a grace period. */
export async function stop(child, graceMs = 5_000) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGINT');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/** The real relay binary on a free port of 127.0.0.1. */
export async function startRelay(dataDir) {
  mkdirSync(dataDir, { recursive: true });
  const child = track(spawn(
    RELAY_BIN,
    ['--bind', '127.0.0.1:0', '--data-dir', dataDir, '--rate-limit-per-sec', '100000', '--rate-limit-burst', '100000'],
    { env: { ...process.env, STREETSYNC_RELAY_LOG: 'warn' }, stdio: ['ignore', 'pipe', 'inherit'] },
  ));
  const addr = await firstLine(child, (l) => l.startsWith('listening on ') && l.slice('listening on '.length), 'the relay');
  return { child, url: `http://${addr}` };
}

/** One device's store, driven through the real `streetsync` binary (the core underneath). */
export class Store {
  constructor(dir, name) {
    this.name = name;
    this.path = path.join(dir, `${name}.db`);
  }

  env() {
    const env = {
      ...process.env,
      STREETSYNC_PASSPHRASE: PASSPHRASE,
      // Test stores only: PBKDF2 with 1,000 iterations (honoured by debug builds only).
      STREETSYNC_TEST_KDF_ITERATIONS: '1000',
      NO_COLOR: '1',
    };
    delete env.STREETSYNC_RELAY;
    delete env.STREETSYNC_STORE;
    return env;
  }

  /** Runs a command; resolves with { code, stdout, stderr }. */
  run(args, ms = 60_000) {
    return new Promise((resolve) => {
      execFile(CLI_BIN, ['--store', this.path, ...args], { env: this.env(), timeout: ms }, (err, stdout, stderr) => {
        resolve({ code: err ? (err.code ?? 1) : 0, stdout, stderr });
      });
    });
  }

  async ok(args) {
    const r = await this.run(args);
    if (r.code !== 0) throw new Error(`${this.name}: streetsync ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
    return r.stdout;
  }

  async json(args) {
    return JSON.parse(await this.ok(['--json', ...args]));
  }

  /** Logs a contact and returns its id. */
  async add(args) {
    return (await this.json(['contact', 'add', ...args])).id;
  }

  async deviceId() {
    const m = await this.json(['members']);
    return m.members.find((d) => d.this_device).device;
  }
}

/**
 * The team: Lea (lead, the desk's store), Sam and Kim (workers) joined with invites, all synced;
 * Sam logs four contacts (one a child-protection concern, one for a suppressed statistics cell,
 * one to erase); Lea keeps a partner, a client and a referral with consent.
 */
export async function makeTeam(dir, relayUrl) {
  const lea = new Store(dir, 'lea');
  const sam = new Store(dir, 'sam');
  const kim = new Store(dir, 'kim');
  await lea.ok(['init', '--team', 'Streetwork Mitte', '--name', 'Lea', '--area', 'Hauptbahnhof', '--area', 'Stadtpark', '--relay', relayUrl]);
  await lea.ok(['sync']);
  for (const [w, name] of [[sam, 'Sam'], [kim, 'Kim']]) {
    const { code } = await lea.json(['invite', '--name', name]);
    await w.ok(['--relay', relayUrl, 'join', code]);
  }
  await lea.ok(['sync']);
  await sam.ok(['sync']);
  await kim.ok(['sync']);

  const common = ['--date', '2026-09-14', '--time', '10:15', '--gender', 'male', '--topic', 'wohnen', '--submit'];
  const contacts = {
    concern: await sam.add(['--area', 'stadtpark', '--place', 'Spielplatz Lindenallee', '--persons', '4', '--age', '14_17',
      '--safeguarding', '--note', 'Schläft seit zwei Nächten im Park, Eltern nicht erreichbar.', ...common]),
    keyboard: await sam.add(['--area', 'hauptbahnhof', '--place', 'Nordausgang', '--persons', '3', '--age', '18_20',
      '--code', 'AB-1990', '--note', 'Fragt nach einem Schlafplatz.', ...common]),
    // A second topic of one person: the topic table has no sum relation, so this row is hidden by
    // primary suppression alone (`<3`), while the partition tables of so few contacts are withheld
    // or hidden further by secondary suppression (docs/statistics.md).
    lonely: await sam.add(['--area', 'hauptbahnhof', '--place', 'Bahnhofsmission', '--persons', '1', '--age', '65_plus',
      '--topic', 'sucht', '--note', 'Allein unterwegs.', ...common]),
    erase: await sam.add(['--area', 'stadtpark', '--place', 'Brunnen', '--persons', '2', '--age', '21_26',
      '--note', 'Bitte löschen (Art. 17).', ...common]),
  };
  await sam.ok(['sync']);
  await lea.ok(['sync']);

  const partner = await lea.json(['directory', 'add', '--name', 'Suchthilfe Mitte', '--offer', 'Beratung', '--person', 'Frau Kaya', '--phone', '030123']);
  await lea.ok(['clients', 'add', 'AB-1990', '--alias', 'Skater']);
  await lea.ok(['referral', 'add', contacts.keyboard, '--partner', partner.id, '--reason', 'Beratung',
    '--scope', 'Name, Telefon', '--recipient', 'Suchthilfe Mitte', '--purpose', 'Ersttermin', '--consent-date', '2026-09-14']);
  await lea.ok(['sync']);
  return { lea, sam, kim, contacts };
}

/** `streetsync desk` on the lead's store; resolves once it printed its one line. */
export async function startDesk(store, extraArgs = []) {
  const child = track(spawn(CLI_BIN, ['--store', store.path, 'desk', '--no-browser', '--port', '0', ...extraArgs], {
    env: store.env(),
    stdio: ['ignore', 'pipe', 'pipe'],
  }));
  let stderr = '';
  child.stderr.on('data', (c) => {
    stderr += c.toString();
  });
  const url = await firstLine(child, (l) => {
    const m = /^Desk: (http:\/\/127\.0\.0\.1:(\d+)\/\?token=(\S+))$/.exec(l);
    return m && { url: m[1], port: Number(m[2]), token: m[3] };
  }, 'the desk\'s "Desk: URL" line').catch((e) => {
    throw new Error(`${e.message}; stderr: ${stderr}`);
  });
  return { child, ...url, origin: `http://127.0.0.1:${url.port}`, stderr: () => stderr };
}

/**
 * A plain HTTP request with exactly the headers given (Node's http, so Host and Origin can be
 * forged); resolves with { status, headers, body }.
 */
export function request(port, { method = 'GET', path: p = '/', headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: p, headers, setHost: !('Host' in headers || 'host' in headers) }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (c) => {
        data += c;
      });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: data }));
    });
    req.setTimeout(10_000, () => req.destroy(new Error(`${method} ${p} timed out`)));
    req.on('error', reject);
    if (body) req.write(body);
    req.end();
  });
}

/** Debian's Chromium with a fresh profile; downloads accepted; the page's CSP left in force. */
export async function launchBrowser() {
  const profile = mkdtempSync(path.join(tmpdir(), 'desk-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      // A German lead's browser: date inputs read dd.mm.yyyy, as the desk's own dates do.
      '--lang=de-DE',
    ],
    acceptDownloads: true,
    viewport: { width: 1280, height: 900 },
    locale: 'de-DE',
    timeout: 60_000,
  });
  context.setDefaultTimeout(15_000);
  context.setDefaultNavigationTimeout(20_000);
  let closed = false;
  return {
    context,
    profile,
    /** Closes the browser (it flushes its profile to disk); the profile stays for inspection. */
    async closeBrowser() {
      if (!closed) {
        closed = true;
        await context.close().catch(() => {});
      }
    },
    async close() {
      await this.closeBrowser();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/**
 * Watches a page for what the desk promises never to do: a request to any other origin, a
 * Content-Security-Policy violation, a script error. `problems()` lists what happened.
 */
export function watch(page, origin) {
  const found = [];
  let requests = 0;
  page.on('request', (r) => {
    requests++;
    const u = r.url();
    if (!(u.startsWith(`${origin}/`) || u.startsWith('data:') || u === 'about:blank')) {
      found.push(`request to another origin: ${u}`);
    }
  });
  page.on('console', (m) => {
    const t = m.text();
    if (/Content Security Policy|Refused to/i.test(t)) found.push(`CSP: ${t}`);
  });
  page.on('pageerror', (e) => found.push(`script error: ${e.message}`));
  return { problems: () => found.slice(), requests: () => requests };
}

/**
 * axe-core in the page (evaluated through the DevTools protocol, so the desk's CSP stays in force
 * for the page itself); returns the serious and critical violations as readable lines.
 */
export async function seriousViolations(page) {
  const has = await page.evaluate(() => typeof window.axe !== 'undefined');
  if (!has) await page.evaluate(axe.source);
  const result = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.slice(0, 5).map((n) => n.target.join(' ')),
    }));
  });
  return result
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.impact} ${v.id} (${v.help}): ${v.nodes.join(', ')}`);
}

/** The temp dir of a run. */
export function scratch() {
  return mkdtempSync(path.join(tmpdir(), 'desk-e2e-'));
}

/**
 * Every file under `root` that holds one of `needles` (as UTF-8 or UTF-16LE, the two encodings
 * Chromium writes strings in), as `file: needle` lines.
 */
export function filesHolding(root, needles) {
  const hits = [];
  const patterns = needles.flatMap((n) => [[n, Buffer.from(n, 'utf8')], [n, Buffer.from(n, 'utf16le')]]);
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && statSync(p).size < 256 * 1024 * 1024) {
        const bytes = readFileSync(p);
        for (const [n, b] of patterns) if (bytes.includes(b)) hits.push(`${path.relative(root, p)}: ${n}`);
      }
    }
  };
  walk(root);
  return [...new Set(hits)];
}
