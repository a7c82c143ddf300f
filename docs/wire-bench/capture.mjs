// Subscribes to every node's /events of a running `omnikv demo` for SECONDS and writes every
// event line to OUT: `node capture.mjs http://127.0.0.1:8080 events.jsonl 10`.
import { createRequire } from 'node:module';
import fs from 'node:fs';
const require = createRequire(new URL('../../web/package.json', import.meta.url));
const WebSocket = require('ws');
const [url, out, seconds] = process.argv.slice(2);
const view = await (await fetch(`${url}/api/cluster`)).json();
const lines = [];
const socks = view.nodes.map(n => {
  const ws = new WebSocket(`${n.ws}/events`);
  ws.on('message', d => { for (const l of d.toString().split('\n')) if (l.trim()) lines.push(l); });
  return ws;
});
await new Promise(r => setTimeout(r, seconds * 1000));
socks.forEach(s => s.close());
fs.writeFileSync(out, lines.join('\n') + '\n');
console.log(`${lines.length} events, ${lines.reduce((a, l) => a + l.length + 1, 0)} bytes`);
process.exit(0);
