#!/usr/bin/env node
// OmniKV command-line client for Node.js 20, against a running `omnikv demo`.
//
//   node web/omnikv.mjs [--url http://127.0.0.1:8080] [--token T] put KEY VALUE | get KEY [--local] | delete KEY | watch NODE_ID
//
// A demo started with --token needs it: pass --token or set OMNIKV_TOKEN.
//
// Frames are built and decoded by the visualizer's wasm (web/pkg-node, from scripts/build-web),
// i.e. by the same Rust core types the nodes use; this file only moves them over WebSockets.
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

const USAGE = 'usage: omnikv.mjs [--url URL] [--token T] put KEY VALUE | get KEY [--local] | delete KEY | watch NODE_ID [--count N]';
// Per attempt: a node answers every request, with a timeout error at worst; this only guards
// against a node that died mid-request.
const REPLY_TIMEOUT_MS = 15000;
/** How long one request may take over all its attempts (the native client's default too). */
const SEND_DEADLINE_MS = 10000;

function parseArgs(argv) {
  const opts = { url: process.env.OMNIKV_URL || 'http://127.0.0.1:8080', local: false, count: Infinity };
  const rest = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--url') opts.url = argv[++i];
    else if (a === '--token') process.env.OMNIKV_TOKEN = argv[++i];
    else if (a === '--local') opts.local = true;
    else if (a === '--count') opts.count = Number(argv[++i]);
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
async function send(url, frame) {
  // Until a node answers or the deadline passes, with a growing pause between attempts: right
  // after a leader dies every node may say it cannot reach the leader until one is elected.
  const deadline = Date.now() + SEND_DEADLINE_MS;
  let lastError = 'no node is up';
  for (let attempt = 0; Date.now() < deadline; attempt++) {
    if (attempt > 0) await new Promise((r) => setTimeout(r, Math.min(50 * attempt, 500)));
    const targets = JSON.parse(viz.clientTargets(await clusterJson(url)));
    if (targets.length === 0) continue;
    const target = targets[attempt % targets.length];
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

async function request(url, op, key, value, read) {
  // One request per run. A write first opens a session (its id is the reply's index) and is
  // then the session's request 0; retries keep the id, so the cluster applies it exactly once.
  // Reads need no session: a random id pairs the reply with the request.
  const nonce = Math.floor(Math.random() * 2 ** 52) + 1;
  let client = nonce;
  if (op !== 'get') {
    const opened = await send(url, viz.openSessionRequest(nonce));
    if (!opened.ok) return opened;
    client = opened.index;
  }
  return send(url, viz.clientRequest(client, 0, op, key, value, read));
}

async function watch(url, nodeId, count) {
  const wsUrl = viz.eventsUrl(await clusterJson(url), Number(nodeId));
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
  switch (cmd) {
    case 'put':
    case 'get':
    case 'delete': {
      const need = cmd === 'put' ? 2 : 1;
      if (args.length !== need) throw new Error(USAGE);
      const reply = await request(opts.url, cmd, args[0], args[1] ?? '', opts.local ? 'local' : 'linearizable');
      if (!reply.ok) { console.error(reply.text); process.exit(1); }
      if (cmd === 'get') {
        if (reply.value === null) { console.error(`${args[0]}: not found`); process.exit(3); }
        console.log(reply.value);
      } else {
        console.log(reply.text);
      }
      break;
    }
    case 'watch':
      if (args.length !== 1) throw new Error(USAGE);
      await watch(opts.url, args[0], opts.count);
      break;
    default:
      throw new Error(USAGE);
  }
}

main().catch((e) => { console.error(`omnikv: ${e.message}`); process.exit(2); });
