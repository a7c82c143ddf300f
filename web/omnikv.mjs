#!/usr/bin/env node
// OmniKV command-line client for Node.js 20, against a running `omnikv demo`.
//
//   node web/omnikv.mjs [--demo http://127.0.0.1:8080 | --node ws://...] [--token T] VERB ...
//
// The verbs, flags and exit codes of the Rust CLI (`omnikv`): put, get, delete, scan, cas,
// batch, watch (changes to keys); plus events NODE_ID (a node's event stream), and the terminal
// half of the demo: top (a live dashboard), tour (a narrated failover) and record (a trace the
// page imports). A demo started with --token needs it: pass --token or set OMNIKV_TOKEN.
//
// Frames are built and decoded by the visualizer's wasm (web/pkg-node, from scripts/build-web),
// i.e. by the same Rust core types the nodes use; client.mjs moves them over WebSockets.
import { readFileSync } from 'node:fs';
import WebSocket from 'ws';
import { viz, clusterJson, call as callOn, SEND_DEADLINE_MS } from './client.mjs';

const USAGE = `usage: omnikv.mjs [--demo URL | --node WS_URL] [--token T] VERB ...
  put KEY VALUE | get KEY [--local] | delete KEY
  scan (--prefix P | --from A --to B) [--limit N] [--local]
  cas KEY (NEW | --delete) (--expect OLD | --expect-absent | --expect-index N)
  batch < JSON lines | watch (--prefix P | --from A --to B) [--from-index N] [--count N]
  events NODE_ID [--count N] | top [--seconds N] | tour [--slow] | record --seconds N FILE
exit 0: done; 1: not found, nothing matched, comparison failed, compacted; 2: error`;
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
    else if (a === '--slow') opts.slow = true;
    else if (a === '--seconds') opts.seconds = Number(argv[++i]);
    else if (a === '-h' || a === '--help') { console.log(USAGE); process.exit(0); }
    else rest.push(a);
  }
  return { opts, rest };
}

/** The nodes to try: the one `--node` names, or the demo's, leader first. */
async function targets(opts) {
  if (opts.node) return [{ id: 0, ws: opts.node }];
  return JSON.parse(viz.clientTargets(await clusterJson(opts.demo)));
}

/** One request (see client.mjs `call`) to the nodes `opts` names. */
function call(opts, isWrite, build) {
  return callOn(opts.demo, opts.node ? [{ id: 0, ws: opts.node }] : undefined, isWrite, build);
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
    case 'top': {
      const { top } = await import('./top.mjs');
      await top({ demo: opts.demo, seconds: opts.seconds });
      return 0;
    }
    case 'tour': {
      const { tour, StepFailed } = await import('./tour.mjs');
      try {
        await tour({ demo: opts.demo, slow: opts.slow });
      } catch (e) {
        if (!(e instanceof StepFailed)) throw e;
        console.error(`omnikv: tour failed at ${e.message}`);
        return 1;
      }
      return 0;
    }
    case 'record': {
      if (args.length !== 1 || !(opts.seconds > 0)) throw new Error(USAGE);
      const { record } = await import('./record.mjs');
      await record({ demo: opts.demo, seconds: opts.seconds, file: args[0] });
      return 0;
    }
    default:
      throw new Error(USAGE);
  }
}

main().then((code) => process.exit(code)).catch((e) => { console.error(`omnikv: ${e.message}`); process.exit(2); });
