// Page-side decode cost of 10,000 events in wasm (Node.js, wasm-opt -Oz builds):
//   node decode-bench.mjs PREFIX NAME=path/to/glue.js ...
// PREFIX.jsonl and PREFIX.postcard come from the host benchmark. Every module's decodeEvents
// (and decodePostcard, describeEvents where exported) runs interleaved with the others, 40
// rounds after 3 warm-up rounds; min and median per variant (on a shared machine the minimum
// is the least disturbed figure).
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';

const require = createRequire(import.meta.url);
const [prefix, ...modules] = process.argv.slice(2);
const frame = fs.readFileSync(`${prefix}.jsonl`, 'utf8');
const binary = fs.readFileSync(`${prefix}.postcard`);
const events = frame.split('\n').length;

const variants = {};
for (const arg of modules) {
  const [name, file] = arg.split('=');
  const m = require(path.resolve(file));
  if (m.decodeEvents) variants[`${name}: decodeEvents (JSON)`] = () => m.decodeEvents(frame);
  if (m.decodePostcard) variants[`${name}: decodePostcard`] = () => m.decodePostcard(binary);
  // The Node client's watch path in the shipped wasm: decode, then one line of text per event.
  if (m.describeEvents) {
    variants[`${name}: describeEvents (JSON)`] = () => m.describeEvents(frame).split('\n').length;
  }
}
const times = Object.fromEntries(Object.keys(variants).map(k => [k, []]));
for (let round = 0; round < 43; round++) {
  for (const [name, run] of Object.entries(variants)) {
    const start = performance.now();
    const decoded = run();
    const ms = performance.now() - start;
    if (decoded !== events) throw new Error(`${name}: ${decoded} of ${events} events decoded`);
    if (round >= 3) times[name].push(ms);
  }
}
for (const [name, ms] of Object.entries(times)) {
  ms.sort((a, b) => a - b);
  console.log(`${name}: min ${ms[0].toFixed(1)} ms, median ${ms[ms.length >> 1].toFixed(1)} ms per ${events} events`);
}
