#!/usr/bin/env node
// OmniKV command-line client for Node.js 20, against a running `omnikv demo`.
//
//   node web/omnikv.mjs [--demo http://127.0.0.1:8080 | --node ws://...] [--token T] VERB ...
//
// The verbs, flags and exit codes of the Rust CLI (`omnikv`): put, get, delete, scan, cas,
// batch, watch (changes to keys); plus events NODE_ID (a node's event stream). A demo started
// with --token needs it: pass --token or set OMNIKV_TOKEN.
//
// Frames are built and decoded by the visualizer's wasm (web/pkg-node, from scripts/build-web),
// i.e. by the same Rust core types the nodes use; this file only moves them over WebSockets.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import WebSocket from 'ws';

const require = createRequire(import.meta.url);
let viz;
try {
  viz = require('./pkg-node/omnikv_viz.js');
} catch (e) {
  console.error(`omnikv: cannot load web/pkg-node (run scripts/build-web first): ${e.message}`);
  process.exit(2);
}

const USAGE = `usage: omnikv.mjs [--demo URL | --node WS_URL] [--token T] VERB ...
  put KEY VALUE | get KEY [--local] | delete KEY
  scan (--prefix P | --from A --to B) [--limit N] [--local]
  cas KEY (NEW | --delete) (--expect OLD | --expect-absent | --expect-index N)
  batch < JSON lines | watch (--prefix P | --from A --to B) [--from-index N] [--count N]
  events NODE_ID [--count N]
exit 0: done; 1: not found, nothing matched, comparison failed, compacted; 2: error`;
// Per attempt: a node answers every request, with a timeout error at worst; this only guards
// against a node that died mid-request.
const REPLY_TIMEOUT_MS = 15000;
/** How long one request may take over all its attempts (the native client's default too). */
const SEND_DEADLINE_MS = 10000;

/** The same flags as the Rust CLI (`omnikv --help`); `--url` is the old name of `--demo`. */
function parseArgs(argv) {
  const opts = {
    demo: process.env.OMNIKV_URL || 'http://127.0.0.1:8080', node: null, local: false,
    count: Infinity, limit: Infinity, prefix: '', from: '', to: '', fromIndex: undefined,
    expect: null, expectAbsent: false, expectIndex: null, delete: false,
  };
  const rest = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--demo' || a === '--url') opts.demo = argv[++i];
    else if (a === '--node') opts.node = argv[++i];
    else if (a === '--token') process.env.OMNIKV_TOKEN = argv[++i];
    else if (a === '--local') opts.local = true;
    else if (a === '--count') opts.count = Number(argv[++i]);
    else if (a === '--limit') opts.limit = Number(argv[++i]);
    else if (a === '--prefix') opts.prefix = argv[++i];
    else if (a === '--from') opts.from = argv[++i];
    else if (a === '--to') opts.to = argv[++i];
    else if (a === '--from-index') opts.fromIndex = Number(argv[++i]);
    else if (a === '--expect') opts.expect = argv[++i];
    else if (a === '--expect-absent') opts.expectAbsent = true;
    else if (a === '--expect-index') opts.expectIndex = argv[++i];
    else if (a === '--delete') opts.delete = true;
    else if (a === '-h' || a === '--help') { console.log(USAGE); process.exit(0); }
    else rest.push(a);
  }
  return { opts, rest };
}

async function clusterJson(url) {
  const token = process.env.OMNIKV_TOKEN;
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  const res = await fetch(`${url.replace(/\/$/, '')}/api/cluster`, { headers });
  if (res.status === 401) throw new Error('the demo needs its token: pass --token or set OMNIKV_TOKEN');
  if (!res.ok) throw new Error(`launcher answered ${res.status}`);
  return res.text();
}

/** Sends one frame on a fresh connection and resolves with the first reply frame. */
function exchange(wsUrl, frame) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(wsUrl);
    const timer = setTimeout(() => { ws.terminate(); reject(new Error('no reply in time')); }, REPLY_TIMEOUT_MS);
    ws.on('open', () => ws.send(frame));
    ws.on('message', (data) => { clearTimeout(timer); ws.close(); resolve(data.toString()); });
    ws.on('error', (e) => { clearTimeout(timer); reject(e); });
    ws.on('close', () => { clearTimeout(timer); reject(new Error('connection closed')); });
  });
}

/**
 * Sends `frame` until a node answers it, moving to another node when the outcome is unknown;
 * which replies are retried is decided by the wasm (omnikv-core's one retry rule).
 */
async function targets(opts) {
  if (opts.node) return [{ id: 0, ws: opts.node }];
  return JSON.parse(viz.clientTargets(await clusterJson(opts.demo)));
}

async function send(opts, frame) {
  // Until a node answers or the deadline passes, with a growing pause between attempts: right
  // after a leader dies every node may say it cannot reach the leader until one is elected.
  const deadline = Date.now() + SEND_DEADLINE_MS;
  let lastError = 'no node is up';
  for (let attempt = 0; Date.now() < deadline; attempt++) {
    if (attempt > 0) await new Promise((r) => setTimeout(r, Math.min(50 * attempt, 500)));
    const nodes = await targets(opts);
    if (nodes.length === 0) continue;
    const target = nodes[attempt % nodes.length];
    try {
      const reply = JSON.parse(viz.interpretResponse(await exchange(`${target.ws}/client`, frame)));
      if (reply.ok || !reply.retry) return reply;
      lastError = reply.text;
    } catch (e) {
      lastError = `node ${target.id}: ${e.message}`;
    }
  }
  return { ok: false, retry: false, value: null, index: null, text: `gave up after ${SEND_DEADLINE_MS} ms: ${lastError}` };
}

/**
 * One request per run: `build(client, seq)` makes its frame. A write first opens a session (its
 * id is the reply's index) and is then the session's request 0; retries keep the id, so the
 * cluster applies it exactly once. Reads need no session: a random id pairs reply and request.
 */
async function call(opts, isWrite, build) {
  const nonce = Math.floor(Math.random() * 2 ** 52) + 1;
  let client = nonce;
  if (isWrite) {
    const opened = await send(opts, viz.openSessionRequest(nonce));
    if (!opened.ok) return opened;
    client = opened.index;
  }
  return send(opts, build(client, 0));
}

/** Prints a scan's pages until the range or `--limit` ends; whether any key matched. */
async function scan(opts) {
  let after = '';
  let left = opts.limit;
  let printed = 0;
  while (left > 0) {
    const limit = Math.min(left, 1000);
    const reply = await call(opts, false, (c, s) =>
      viz.scanRequest(c, s, opts.prefix, opts.from, opts.to, after, limit, opts.local));
    if (!reply.ok) throw new Error(reply.text);
    for (const line of reply.lines) console.log(line);
    printed += reply.lines.length;
    left -= reply.lines.length;
    if (reply.next_after === null) break;
    after = reply.next_after;
  }
  return printed > 0;
}

/** Prints a transaction's outcome: `ok`, or what its failed guards found (exit 1). */
function reportTxn(reply) {
  if (!reply.ok) throw new Error(reply.text);
  if (reply.succeeded) { console.log('ok'); return 0; }
  console.error(`comparison failed at index ${reply.index}`);
  for (const line of reply.lines) console.error(line);
  return 1;
}

/** Prints the changes of the watched keys, moving to another node (from where the last frame
 *  left off) when one fails; resolves with the exit code. */
async function watchChanges(opts) {
  let fromIndex = opts.fromIndex;
  let seen = 0;
  let heardAt = Date.now();
  for (let attempt = 0; Date.now() - heardAt < SEND_DEADLINE_MS; attempt++) {
    const nodes = await targets(opts).catch(() => []);
    if (nodes.length === 0) { await new Promise((r) => setTimeout(r, 200)); continue; }
    const target = nodes[attempt % nodes.length];
    const code = await new Promise((resolve) => {
      const ws = new WebSocket(`${target.ws}/watch`);
      ws.on('open', () => ws.send(viz.watchRequest(opts.prefix, opts.from, opts.to, fromIndex)));
      ws.on('message', (data) => {
        heardAt = Date.now();
        const step = JSON.parse(viz.interpretWatchFrame(data.toString()));
        if (step.error !== null) { console.error(`omnikv: ${step.error}`); ws.terminate(); resolve(2); return; }
        if (step.compacted !== null) {
          console.error(`the nodes keep changes from index ${step.compacted} on: scan, then watch from the scan's index + 1`);
          ws.terminate(); resolve(1); return;
        }
        for (const line of step.lines) {
          if (seen >= opts.count) break;
          console.log(line);
          seen++;
        }
        fromIndex = step.up_to;
        if (seen >= opts.count) { ws.terminate(); resolve(0); }
      });
      ws.on('error', () => {});
      ws.on('close', () => resolve(null));
    });
    if (code !== null) return code;
    await new Promise((r) => setTimeout(r, 50));
  }
  console.error(`omnikv: no node answered the watch for ${SEND_DEADLINE_MS} ms`);
  return 2;
}

async function events(opts, nodeId, count) {
  const wsUrl = viz.eventsUrl(await clusterJson(opts.demo), Number(nodeId));
  const ws = new WebSocket(wsUrl);
  let seen = 0;
  await new Promise((resolve, reject) => {
    ws.on('message', (data) => {
      if (seen >= count) return; // frames already in flight after close()
      let lines = [];
      try {
        lines = viz.describeEvents(data.toString()).split('\n');
      } catch (e) {
        console.error(`omnikv: ${e.message}`);
      }
      // A frame may carry several events; print exactly `count` of them.
      for (const line of lines.slice(0, count - seen)) console.log(line);
      seen += lines.length;
      if (seen >= count) { ws.close(); }
    });
    ws.on('error', reject);
    ws.on('close', resolve);
  });
}

async function main() {
  const { opts, rest } = parseArgs(process.argv.slice(2));
  const [cmd, ...args] = rest;
  const read = opts.local ? 'local' : 'linearizable';
  switch (cmd) {
    case 'put':
    case 'get':
    case 'delete': {
      const need = cmd === 'put' ? 2 : 1;
      if (args.length !== need) throw new Error(USAGE);
      const reply = await call(opts, cmd !== 'get', (c, s) =>
        viz.clientRequest(c, s, cmd, args[0], args[1] ?? '', read));
      if (!reply.ok) throw new Error(reply.text);
      if (cmd === 'get') {
        if (reply.value === null) { console.error(`${args[0]}: not found`); return 1; }
        console.log(reply.value);
      } else {
        console.log(reply.text);
      }
      return 0;
    }
    case 'scan':
      if (args.length !== 0) throw new Error(USAGE);
      return (await scan(opts)) ? 0 : 1;
    case 'cas': {
      const [key, value] = args;
      const expectations = [opts.expect !== null, opts.expectAbsent, opts.expectIndex !== null];
      const newOk = opts.delete ? args.length === 1 : args.length === 2;
      if (!newOk || expectations.filter(Boolean).length !== 1) throw new Error(USAGE);
      const [kind, expect] = opts.expect !== null ? ['value', opts.expect]
        : opts.expectAbsent ? ['absent', ''] : ['index', opts.expectIndex];
      return reportTxn(await call(opts, true, (c, s) =>
        viz.casRequest(c, s, key, opts.delete ? undefined : value, kind, expect)));
    }
    case 'batch': {
      if (args.length !== 0) throw new Error(USAGE);
      const lines = readFileSync(0, 'utf8');
      return reportTxn(await call(opts, true, (c, s) => viz.batchRequest(c, s, lines)));
    }
    case 'watch':
      if (args.length !== 0) throw new Error(USAGE);
      return watchChanges(opts);
    case 'events':
      if (args.length !== 1) throw new Error(USAGE);
      await events(opts, args[0], opts.count);
      return 0;
    default:
      throw new Error(USAGE);
  }
}

main().then((code) => process.exit(code)).catch((e) => { console.error(`omnikv: ${e.message}`); process.exit(2); });
