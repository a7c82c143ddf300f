// One sample of what each node of a running cluster holds, as JSON lines on stdout: its RSS
// (now and peak), its data directory's size, and from the node's /admin `dump` the stored
// snapshot's serialized size with its sessions and keys, and the live sessions and keys.
// Used for docs/performance-notes.md, section 9.
//
//   node docs/footprint/sample.mjs LABEL ws://127.0.0.1:PORT,PID,DATA_DIR ...
//
// `ws` comes from web/node_modules (NODE_PATH=web/node_modules). JSON.stringify writes a u64
// parsed as a JS number with as many digits as the node wrote, so the sizes are exact.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { execFileSync } from "node:child_process";

const require = createRequire(import.meta.url);
const WebSocket = require(require.resolve("ws", { paths: (process.env.NODE_PATH ?? "").split(":") }));

function dump(base) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${base}/admin`);
    const timer = setTimeout(() => { ws.terminate(); reject(new Error("dump timed out")); }, 60_000);
    ws.on("open", () => ws.send(JSON.stringify("dump")));
    ws.on("message", (data) => { clearTimeout(timer); ws.close(); resolve(JSON.parse(data.toString())); });
    ws.on("error", reject);
  });
}

function status(pid) {
  const text = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (name) => Number(text.match(new RegExp(`^${name}:\\s+(\\d+) kB`, "m"))[1]);
  return { rss_kb: kb("VmRSS"), hwm_kb: kb("VmHWM") };
}

const [label, ...nodes] = process.argv.slice(2);
for (const spec of nodes) {
  const [base, pid, dir] = spec.split(",");
  const t0 = Date.now();
  const reply = await dump(base);
  const d = reply.dump;
  if (!d) throw new Error(`${base}: ${JSON.stringify(reply)}`);
  const snap = d.snapshot;
  const du = Number(execFileSync("du", ["-sb", dir]).toString().split("\t")[0]);
  console.log(JSON.stringify({
    label,
    node: d.id,
    decided_idx: d.decided_idx,
    compacted_idx: d.compacted_idx,
    kv_keys: Object.keys(d.kv).length,
    sessions: Object.keys(d.sessions).length,
    snapshot_bytes: snap ? JSON.stringify(snap).length : 0,
    snapshot_sessions: snap ? Object.keys(snap.sessions).length : 0,
    snapshot_session_bytes: snap ? JSON.stringify(snap.sessions).length : 0,
    snapshot_keys: snap ? Object.keys(snap.snapshotted).length : 0,
    suffix_len: d.decided_suffix.length,
    data_dir_bytes: du,
    dump_ms: Date.now() - t0,
    ...status(pid),
  }));
}
