#!/usr/bin/env node
// OmniKV's command-line client for Node.js 20, against a running `omnikv demo`. The same verbs,
// flags and exit codes as the Rust CLI (`omnikv`): 0 success, 1 not there, 2 error.
//
//   node web/omnikv.mjs [--demo http://127.0.0.1:8080] [--token T] COMMAND
//     put KEY VALUE | get KEY [--local] | delete KEY
//     watch NODE_ID [--count N]                 decoded events of one node, one per line
//     top [--seconds N]                         live dashboard (k N kill, r N restart, q quit)
//     tour [--slow]                             narrated scenario; exits 1 at a failing step
//     record --seconds N FILE                   a trace the page's Import opens
//
// A demo started with --token needs it: pass --token or set OMNIKV_TOKEN. Frames are built
// and decoded by the visualizer's wasm (web/pkg-node), see client.mjs.
import WebSocket from 'ws';
import { viz, clusterJson, request } from './client.mjs';

const USAGE = `usage: omnikv.mjs [--demo URL] [--token T] put KEY VALUE | get KEY [--local] | delete KEY
       | watch NODE_ID [--count N] | top [--seconds N] | tour [--slow] | record --seconds N FILE`;

function parseArgs(argv) {
  const opts = { demo: process.env.OMNIKV_DEMO || 'http://127.0.0.1:8080', local: false, count: Infinity, slow: false };
  const rest = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    // `--url` is the name this client used before it took the Rust CLI's `--demo`.
    if (a === '--demo' || a === '--url') opts.demo = argv[++i];
    else if (a === '--token') process.env.OMNIKV_TOKEN = argv[++i];
    else if (a === '--local') opts.local = true;
    else if (a === '--slow') opts.slow = true;
    else if (a === '--count') opts.count = Number(argv[++i]);
    else if (a === '--seconds') opts.seconds = Number(argv[++i]);
    else if (a === '-h' || a === '--help') { console.log(USAGE); process.exit(0); }
    else rest.push(a);
  }
  return { opts, rest };
}

async function watch(demo, nodeId, count) {
  const wsUrl = viz.eventsUrl(await clusterJson(demo), Number(nodeId));
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

function usage() {
  console.error(USAGE);
  process.exit(2);
}

async function main() {
  const { opts, rest } = parseArgs(process.argv.slice(2));
  const [cmd, ...args] = rest;
  switch (cmd) {
    case 'put':
    case 'get':
    case 'delete': {
      if (args.length !== (cmd === 'put' ? 2 : 1)) usage();
      const reply = await request(opts.demo, cmd, args[0], args[1] ?? '', opts.local ? 'local' : 'linearizable');
      if (!reply.ok) { console.error(`omnikv: ${reply.text}`); process.exit(2); }
      if (cmd === 'get') {
        if (reply.value === null) { console.error(`${args[0]}: not found`); process.exit(1); }
        console.log(reply.value);
      } else {
        console.log(reply.text);
      }
      break;
    }
    case 'watch':
      if (args.length !== 1) usage();
      await watch(opts.demo, args[0], opts.count);
      break;
    case 'top': {
      const { top } = await import('./top.mjs');
      await top({ demo: opts.demo, seconds: opts.seconds });
      break;
    }
    case 'tour': {
      const { tour, StepFailed } = await import('./tour.mjs');
      try {
        await tour({ demo: opts.demo, slow: opts.slow });
      } catch (e) {
        if (!(e instanceof StepFailed)) throw e;
        console.error(`omnikv: tour failed at ${e.message}`);
        process.exit(1);
      }
      break;
    }
    case 'record': {
      if (args.length !== 1 || !(opts.seconds > 0)) usage();
      const { record } = await import('./record.mjs');
      await record({ demo: opts.demo, seconds: opts.seconds, file: args[0] });
      break;
    }
    default:
      usage();
  }
  process.exit(0);
}

main().catch((e) => { console.error(`omnikv: ${e.message}`); process.exit(2); });
