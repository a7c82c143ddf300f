// `omnikv.mjs record`: records a running demo for some seconds into a trace file in exactly
// the format the page's Import reads (the wasm timeline writes it), so a run watched from a
// terminal or a CI job can be replayed in the browser.
import { writeFileSync } from 'node:fs';
import { viz, observe } from './client.mjs';

export async function record({ demo, seconds, file, out = console.log }) {
  const observer = new viz.Observer();
  const stop = observe(demo, observer);
  await new Promise((r) => setTimeout(r, seconds * 1000));
  stop();
  const trace = observer.trace();
  writeFileSync(file, trace);
  out(`recorded ${observer.records()} records in ${seconds} s to ${file}`);
}
