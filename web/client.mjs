// The Node.js side of OmniKV's protocols: the launcher's control API, client requests with the
// one retry rule, and node event streams. Frames are built and decoded by the visualizer's
// wasm (web/pkg-node, from scripts/build-web), i.e. by the same Rust core types the nodes use;
// this module only moves them over HTTP and WebSockets.
import { createRequire } from 'node:module';
import WebSocket from 'ws';

const require = createRequire(import.meta.url);

/** The wasm package, or an exit with the command that builds it. */
export function loadViz() {
  try {
    return require('./pkg-node/omnikv_viz.js');
  } catch (e) {
    console.error(`omnikv: cannot load web/pkg-node (run scripts/build-web first): ${e.message}`);
    process.exit(2);
  }
}

export const viz = loadViz();

// Per attempt: a node answers every request, with a timeout error at worst; this only guards
// against a node that died mid-request.
const REPLY_TIMEOUT_MS = 15000;
/** How long one request may take over all its attempts (the native client's default too). */
export const SEND_DEADLINE_MS = 10000;

function authHeaders() {
  const token = process.env.OMNIKV_TOKEN;
  return token ? { Authorization: `Bearer ${token}` } : {};
}

/** The launcher's `/api/cluster`, as text (the wasm decodes it). */
export async function clusterJson(demo) {
  const res = await fetch(`${demo.replace(/\/$/, '')}/api/cluster`, { headers: authHeaders() });
  if (res.status === 401) throw new Error('the demo needs its token: pass --token or set OMNIKV_TOKEN');
  if (!res.ok) throw new Error(`launcher answered ${res.status}`);
  return res.text();
}

/** A control action (`POST /api/...`); resolves with `{ok, message}` or throws its message. */
export async function control(demo, path, body) {
  const res = await fetch(`${demo.replace(/\/$/, '')}${path}`, {
    method: 'POST',
    headers: { ...authHeaders(), 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const reply = await res.json().catch(() => ({ ok: false, message: `launcher answered ${res.status}` }));
  if (!reply.ok) throw new Error(reply.message);
  return reply;
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
 * which replies are retried is decided by the wasm (omnikv-core's one retry rule). `targets`
 * gives the nodes to try, in order (by default the demo's, leader first).
 */
export async function send(demo, frame, targets) {
  // Until a node answers or the deadline passes, with a growing pause between attempts: right
  // after a leader dies every node may say it cannot reach the leader until one is elected.
  const deadline = Date.now() + SEND_DEADLINE_MS;
  let lastError = 'no node is up';
  for (let attempt = 0; Date.now() < deadline; attempt++) {
    if (attempt > 0) await new Promise((r) => setTimeout(r, Math.min(50 * attempt, 500)));
    const nodes = targets ?? JSON.parse(viz.clientTargets(await clusterJson(demo)));
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
 * One request: `build(client, seq)` makes its frame. A write first opens a session (its id is
 * the reply's index) and is then the session's request 0; retries keep the id, so the cluster
 * applies it exactly once. Reads need no session: a random id pairs the reply with the request.
 */
export async function call(demo, targets, isWrite, build) {
  const nonce = Math.floor(Math.random() * 2 ** 52) + 1;
  let client = nonce;
  if (isWrite) {
    const opened = await send(demo, viz.openSessionRequest(nonce), targets);
    if (!opened.ok) return opened;
    client = opened.index;
  }
  return send(demo, build(client, 0), targets);
}

/** A put, get or delete (see `call`). */
export function request(demo, op, key, value, read, targets) {
  return call(demo, targets, op !== 'get', (c, s) =>
    viz.clientRequest(c, s, op, key, value ?? '', read ?? 'linearizable'));
}

/**
 * Follows the event streams of every node the demo reports, reconnecting to nodes that come
 * back, and hands each frame to `onFrame(nodeId, text)`, each launcher poll to
 * `onCluster(json)` and each stream opened or closed to `onStream(nodeId, connected)`.
 * Returns a function that stops it.
 */
export function followEvents(demo, { onFrame, onCluster, onStream }) {
  const open = new Map();
  let stopped = false;
  const poll = async () => {
    while (!stopped) {
      try {
        const json = await clusterJson(demo);
        onCluster?.(json);
        for (const n of JSON.parse(viz.clientTargets(json))) {
          if (open.has(n.id)) continue;
          const ws = new WebSocket(`${n.ws}/events`);
          open.set(n.id, ws);
          ws.on('open', () => { if (!stopped) onStream?.(n.id, true); });
          ws.on('message', (data) => { if (!stopped) onFrame(n.id, data.toString()); });
          ws.on('error', () => {});
          ws.on('close', () => {
            if (open.get(n.id) === ws) open.delete(n.id);
            if (!stopped) onStream?.(n.id, false);
          });
        }
      } catch {
        // The launcher is restarting a node or busy: the next poll tries again.
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  };
  poll();
  return () => {
    stopped = true;
    for (const ws of open.values()) ws.terminate();
  };
}

/** Feeds a wasm `Observer` everything the demo shows; returns a function that stops it. */
export function observe(demo, observer) {
  return followEvents(demo, {
    onFrame: (id, text) => observer.events(id, text, Date.now()),
    onCluster: (json) => {
      try {
        observer.cluster(json, Date.now());
      } catch {
        // A view that does not decode is skipped; the next poll brings another.
      }
    },
    onStream: (id, connected) => observer.stream(id, connected, Date.now()),
  });
}

/**
 * A demo watched through a wasm `Observer`: `view()` is its dashboard now, `act(path)` carries
 * out a control action and puts it on the record (the story tells scenarios from them), and
 * `stop()` ends the watching.
 */
export function watchDemo(demo) {
  const observer = new viz.Observer();
  const stop = observe(demo, observer);
  const act = async (path) => {
    const reply = await control(demo, path);
    observer.control(path, Date.now());
    return reply;
  };
  const view = () => JSON.parse(observer.dashboard(Date.now()));
  return { observer, act, view, stop };
}
