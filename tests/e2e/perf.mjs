#!/usr/bin/env node
// Measures the visualizer under load and prints figures; a benchmark, not a test (`node --test`
// does not pick it up, and nothing here fails on a slow machine).
//
//   node tests/e2e/perf.mjs [--seconds 20] [--memory-seconds 180] [--clients 16] [--key-space 100000] [--paused]
//
// It starts a real `omnikv demo`, opens the page in headless Chromium, drives puts with
// `omnikv bench load` against every node, and measures over a window of --seconds:
//   - event frames the page received per second (counted on its /events WebSockets),
//   - inputs the page recorded per second (the timeline's end position),
//   - animation frames per second and the longest gap between two frames,
//   - long tasks (> 50 ms) and main-thread busy time (CDP Performance metrics),
//   - JS heap, wasm linear memory and DOM node count at the start and the end.
// Then it keeps the load on for --memory-seconds past the recording's cap and samples memory
// after a forced GC, to show that it stays bounded while the oldest inputs are dropped.
//
// Binary: OMNIKV_BIN, else the release build if there is one, else the debug build.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { homedir, loadavg, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { CHROMIUM_ARGS, chromiumPath, collectProblems, launchBrowser } from './browser.mjs';

const targetDir = process.env.CARGO_TARGET_DIR || join(homedir(), '.cache/omnikv/target');
if (!process.env.OMNIKV_BIN && existsSync(join(targetDir, 'release/omnikv'))) {
  process.env.OMNIKV_BIN = join(targetDir, 'release/omnikv');
}
const { startDemo, until, sleep, omnikvBin, repoRoot } = await import('./demo.mjs');
const { default: WebSocket } = await import('ws');

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}
const SECONDS = option('seconds', 20);
const MEMORY_SECONDS = option('memory-seconds', 180);
// One load window per load level (comma-separated); the memory check uses the last. A number
// is `omnikv bench load --clients N` (as fast as the cluster goes); `40/s` is a paced loop of 40
// puts a second through the leader (the frames the page then receives include the idle
// cluster's heartbeats and status events).
const CLIENTS = (process.argv.includes('--clients') ? process.argv[process.argv.indexOf('--clients') + 1] : '40/s,1,16')
  .split(',');
const KEY_SPACE = option('key-space', 100000);
const SAMPLE_S = option('sample-seconds', 20);
// --profile FILE: also record a CPU profile of the page over the load window (open it in Chrome
// DevTools) and print the functions with the most self time.
const DRIVER = process.argv.includes('--driver') ? process.argv[process.argv.indexOf('--driver') + 1] : 'playwright';
// --trace FILE: also record a Chrome trace over the load window and print where the page's main
// thread spent its time (self time per trace event).
const TRACE = process.argv.includes('--trace') ? process.argv[process.argv.indexOf('--trace') + 1] : null;
// --paused: also measure a window with the view paused (Pause) under the last load.
const PAUSED = process.argv.includes('--paused');
const PROFILE = process.argv.includes('--profile') ? process.argv[process.argv.indexOf('--profile') + 1] : null;
// --hide SELECTOR: hide what matches (display: none) for the whole run, to see what a panel
// costs by its absence (for example `--hide '#ring'`, `--hide '#cards'`, `--hide '#diagram'`).
const HIDE = process.argv.includes('--hide') ? process.argv[process.argv.indexOf('--hide') + 1] : null;
// --css RULES: add a stylesheet for the whole run, to measure a style change before making it
// (for example `--css '#ring { contain: strict; }'`).
// --mutations: count the DOM changes the page makes in each window, by kind and element, and
// print the most frequent (what a frame asks the browser to restyle, lay out and paint).
const MUTATIONS = process.argv.includes('--mutations');
const CSS = process.argv.includes('--css') ? process.argv[process.argv.indexOf('--css') + 1] : null;

const mb = (b) => (b / 1048576).toFixed(1);
const load = () => loadavg().map((l) => l.toFixed(2)).join(' ');

let demo, browser, bench;
const problems = [];

// Counts the event frames the page's sockets receive, in the page (installed before its scripts).
const COUNT_FRAMES = `(() => {
  window.__eventFrames = 0;
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(url, protocols) {
      super(url, protocols);
      if (String(url).endsWith('/events')) this.addEventListener('message', () => { window.__eventFrames++; });
    }
  };
})();`;
const WINDOW = ['--window-size=1400,1100'];

// Playwright keeps the DevTools Network domain enabled on its pages, so the browser copies
// every WebSocket frame into the DevTools protocol: a cost no real visitor pays. `--driver cdp`
// drives Chromium over the bare protocol instead, with only Runtime, Performance and
// HeapProfiler enabled; `--driver playwright` (the default) shows the page as the tests see it.
async function playwrightDriver() {
  const b = await launchBrowser(WINDOW);
  const page = await b.newPage({ viewport: { width: 1400, height: 1100 } });
  collectProblems(page, problems);
  await page.addInitScript(COUNT_FRAMES);
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Performance.enable');
  return {
    on: (method, fn) => cdp.on(method, fn),
    send: (method, params) => cdp.send(method, params),
    evaluate: (fn, arg) => page.evaluate(fn, arg),
    goto: (url) => page.goto(url),
    close: () => b.close(),
  };
}

async function rawDriver() {
  const profileDir = mkdtempSync(join(tmpdir(), 'omnikv-perf-chromium-'));
  const child = spawn(chromiumPath, [...CHROMIUM_ARGS, ...WINDOW,
    '--remote-debugging-port=0', `--user-data-dir=${profileDir}`, 'about:blank'], { stdio: ['ignore', 'ignore', 'pipe'] });
  const endpoint = await new Promise((ok, fail) => {
    let err = '';
    child.stderr.on('data', (d) => {
      err += d;
      const m = err.match(/DevTools listening on (ws:\/\/\S+)/);
      if (m) ok(m[1]);
    });
    child.once('exit', () => fail(new Error(`chromium exited: ${err}`)));
  });
  const ws = new WebSocket(endpoint, { perMessageDeflate: false, maxPayload: 512 << 20 });
  await new Promise((ok, fail) => { ws.once('open', ok); ws.once('error', fail); });
  let next = 1;
  const waiting = new Map();
  const handlers = new Map();
  ws.on('message', (data) => {
    const msg = JSON.parse(data.toString());
    if (msg.id && waiting.has(msg.id)) {
      const { ok, fail } = waiting.get(msg.id);
      waiting.delete(msg.id);
      if (msg.error) fail(new Error(`${msg.error.message}`)); else ok(msg.result);
    } else if (handlers.has(msg.method)) {
      handlers.get(msg.method)(msg.params);
    } else if (msg.method === 'Runtime.exceptionThrown') {
      problems.push(`page error: ${msg.params.exceptionDetails.exception?.description ?? msg.params.exceptionDetails.text}`);
    } else if (msg.method === 'Runtime.consoleAPICalled' && msg.params.type === 'error') {
      problems.push(`console error: ${msg.params.args.map((a) => a.value ?? a.description).join(' ')}`);
    }
  });
  const raw = (method, params = {}, sessionId) => new Promise((ok, fail) => {
    const id = next++;
    waiting.set(id, { ok, fail });
    ws.send(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }));
  });
  const { targetId } = await raw('Target.createTarget', { url: 'about:blank' });
  const { sessionId } = await raw('Target.attachToTarget', { targetId, flatten: true });
  const send = (method, params) => raw(method, params, sessionId);
  await send('Page.enable');
  await send('Runtime.enable');
  await send('Performance.enable');
  await send('Emulation.setDeviceMetricsOverride', { width: 1400, height: 1100, deviceScaleFactor: 1, mobile: false });
  await send('Page.addScriptToEvaluateOnNewDocument', { source: COUNT_FRAMES });
  const evaluate = async (fn, arg) => {
    const { result, exceptionDetails } = await send('Runtime.evaluate', {
      expression: `(${fn})(${JSON.stringify(arg)})`, returnByValue: true, awaitPromise: true,
    });
    if (exceptionDetails) throw new Error(exceptionDetails.exception?.description ?? exceptionDetails.text);
    return result.value;
  };
  return {
    on: (method, fn) => handlers.set(method, fn),
    send, evaluate,
    goto: async (url) => {
      await send('Page.navigate', { url });
      await until('the page loaded', () => evaluate(() => document.readyState === 'complete'));
    },
    close: async () => {
      ws.close();
      child.kill('SIGTERM');
      await Promise.race([new Promise((r) => child.once('exit', r)), sleep(3000)]);
      if (child.exitCode === null) child.kill('SIGKILL');
      rmSync(profileDir, { recursive: true, force: true });
    },
  };
}

async function main() {
  console.log(`machine: ${cpus().length} cores (${cpus()[0]?.model.trim()}), load average ${load()}; binary ${omnikvBin}`);
  demo = await startDemo();
  const driver = DRIVER === 'cdp' ? await rawDriver() : await playwrightDriver();
  browser = driver;
  const { send, evaluate } = driver;
  const metrics = async () => {
    const { metrics: m } = await send('Performance.getMetrics');
    return Object.fromEntries(m.map(({ name, value }) => [name, value]));
  };
  // The wasm's linear memory (the model and the recording live there, not in the JS heap).
  const wasmBytes = async () => {
    const proto = await send('Runtime.evaluate', { expression: 'WebAssembly.Memory.prototype' });
    const { objects } = await send('Runtime.queryObjects', { prototypeObjectId: proto.result.objectId });
    const { result } = await send('Runtime.callFunctionOn', {
      objectId: objects.objectId, returnByValue: true,
      functionDeclaration: 'function () { return this.reduce((s, m) => s + m.buffer.byteLength, 0); }',
    });
    return result.value;
  };
  const gc = () => send('HeapProfiler.collectGarbage');
  const frames = () => evaluate(() => window.__eventFrames);

  await driver.goto(demo.url + '/');
  const addStyle = (rules) => evaluate((r) => {
    const style = document.createElement('style');
    style.textContent = r;
    document.head.append(style);
  }, rules);
  if (HIDE) {
    await addStyle(`${HIDE} { display: none !important; }`);
    console.log(`hidden: ${HIDE}`);
  }
  if (CSS) {
    await addStyle(CSS);
    console.log(`added style: ${CSS}`);
  }
  const clusterView = await demo.cluster();
  const nodes = clusterView.nodes;
  await until('every node drawn and streaming', async () => evaluate(
    (n) => document.querySelectorAll('.node[data-node-id]').length === n && window.__eventFrames > n * 2, nodes.length));

  // Frame and long-task counters inside the page.
  await evaluate(() => {
    const p = window.__perf = { get events() { return window.__eventFrames; }, frames: 0, slow: 0, maxGap: 0, last: performance.now(), longTasks: 0, longMs: 0 };
    const tick = (t) => {
      const gap = t - p.last;
      p.last = t;
      p.frames++;
      if (gap > 1000 / 30) p.slow++;
      if (gap > p.maxGap) p.maxGap = gap;
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
    try {
      new PerformanceObserver((list) => {
        for (const e of list.getEntries()) { p.longTasks++; p.longMs += e.duration; }
      }).observe({ type: 'longtask' });
    } catch { /* not supported */ }
  });

  if (MUTATIONS) {
    await evaluate(() => {
      window.__mutations = new Map();
      const name = (n) => (n.nodeType === 1 ? n : n.parentElement);
      const describe = (e) => `${e?.tagName?.toLowerCase()}${e?.classList?.length ? '.' + [...e.classList].join('.') : ''}${e?.id ? '#' + e.id : ''}`;
      new MutationObserver((records) => {
        for (const r of records) {
          const k = `${r.type} ${describe(name(r.target))}${r.attributeName ? ' @' + r.attributeName : ''}`;
          window.__mutations.set(k, (window.__mutations.get(k) || 0) + 1);
        }
      }).observe(document.body, { subtree: true, childList: true, attributes: true, characterData: true });
    });
  }

  const timeline = async () => evaluate(() => {
    const s = document.getElementById('scrub');
    const info = document.getElementById('timeline-info').textContent;
    const dropped = Number((info.match(/(\d+) oldest dropped/) || [0, 0])[1]);
    return { start: Number(s.min), end: Number(s.max), dropped, info };
  });

  const snapshot = async () => {
    const [perf, m, tl, wasm] = await Promise.all([
      evaluate(() => ({ ...window.__perf })), metrics(), timeline(), wasmBytes()]);
    return { t: Date.now(), perf, m, tl, wasm, framesIn: perf.events };
  };

  const window_ = async (label, seconds) => {
    await evaluate(() => { window.__perf.maxGap = 0; window.__perf.slow = 0; });
    if (MUTATIONS) await evaluate(() => window.__mutations.clear());
    const a = await snapshot();
    const l1 = loadavg()[0];
    await sleep(seconds * 1000);
    const b = await snapshot();
    const s = (b.t - a.t) / 1000;
    if (MUTATIONS) {
      const top = await evaluate(() => [...window.__mutations].sort((x, y) => y[1] - x[1]).slice(0, 45));
      console.log(`\nDOM changes per second, ${label}:`);
      for (const [k, n] of top) console.log(`${(n / s).toFixed(1).padStart(9)}  ${k}`);
    }
    return {
      label,
      seconds: s,
      fps: (b.perf.frames - a.perf.frames) / s,
      slowFrames: b.perf.slow,
      maxGapMs: b.perf.maxGap,
      framesInPerS: (b.framesIn - a.framesIn) / s,
      recordedPerS: (b.tl.end - a.tl.end) / s,
      longTasks: b.perf.longTasks - a.perf.longTasks,
      longMs: b.perf.longMs - a.perf.longMs,
      busy: (b.m.TaskDuration - a.m.TaskDuration) / s,
      // The main thread's own CPU time: busy time above it is time a task waited for a core.
      onCpu: (b.m.ThreadTime - a.m.ThreadTime) / s,
      script: (b.m.ScriptDuration - a.m.ScriptDuration) / s,
      layout: (b.m.LayoutDuration - a.m.LayoutDuration + b.m.RecalcStyleDuration - a.m.RecalcStyleDuration) / s,
      heapStart: a.m.JSHeapUsedSize, heapEnd: b.m.JSHeapUsedSize,
      wasmStart: a.wasm, wasmEnd: b.wasm,
      domStart: a.m.Nodes, domEnd: b.m.Nodes,
      tl: b.tl,
      load: `${l1.toFixed(2)} -> ${loadavg()[0].toFixed(2)}`,
    };
  };

  const results = [];
  results.push(await window_('idle', Math.min(10, SECONDS)));

  // Load: puts through every node, with each number of clients in turn.
  const endpoints = nodes.map((n) => n.ws.replace(/\/$/, '')).join(',');
  const startLoad = (clients) => {
    if (clients.endsWith('/s')) return startPaced(Number(clients.slice(0, -2)));
    const total = SECONDS + MEMORY_SECONDS + 60;
    bench = spawn(omnikvBin, ['bench', 'load', '--endpoint', endpoints, '--clients', String(clients),
      '--key-space', String(KEY_SPACE), '--duration-s', String(total), '--warmup-ms', '0', '--no-progress',
      '--timeout-ms', '10000'], { stdio: 'ignore' });
  };
  const startPaced = (rate) => {
    const require = createRequire(import.meta.url);
    const viz = require(join(repoRoot, 'web/pkg-node/omnikv_viz.js'));
    const leader = nodes.find((n) => n.id === clusterView.leader) || nodes[0];
    const ws = new WebSocket(`${leader.ws.replace(/\/$/, '')}/client`);
    const client = Math.floor(Math.random() * 2 ** 40) + 1;
    let seq = 0;
    const timer = setInterval(() => {
      if (ws.readyState !== WebSocket.OPEN) return;
      seq++;
      ws.send(viz.clientRequest(client, seq, 'put', `k${seq % KEY_SPACE}`, 'v'.repeat(256), 'linearizable'));
    }, 1000 / rate);
    ws.on('error', () => {});
    bench = { exitCode: null, kill: () => { clearInterval(timer); ws.close(); bench.exitCode = 0; }, once: (_, f) => f() };
  };
  const stopLoad = async () => {
    bench.kill('SIGINT');
    await Promise.race([new Promise((r) => bench.once('exit', r)), sleep(3000)]);
    if (bench.exitCode === null) bench.kill('SIGKILL');
  };
  for (const [k, clients] of CLIENTS.entries()) {
    if (k > 0) await stopLoad();
    startLoad(clients);
    await sleep(5000);
    const label = clients.endsWith('/s') ? `${clients.slice(0, -2)} puts/s` : `bench, ${clients} clients`;
    results.push(await window_(label, SECONDS));
  }
  if (PROFILE) {
    await send('Profiler.enable');
    await send('Profiler.setSamplingInterval', { interval: 500 });
    await send('Profiler.start');
  }
  let traceEvents = [];
  let traceDone;
  if (TRACE) {
    driver.on('Tracing.dataCollected', (p) => { traceEvents.push(...p.value); });
    traceDone = new Promise((r) => driver.on('Tracing.tracingComplete', r));
    await send('Tracing.start', { transferMode: 'ReportEvents', traceConfig: {
      includedCategories: ['devtools.timeline', 'disabled-by-default-devtools.timeline', 'v8', 'blink', 'toplevel'] } });
  }
  if (PROFILE || TRACE) results.push(await window_(`${CLIENTS.at(-1)}, traced`, SECONDS));
  if (PAUSED) {
    // The view paused under the same load: the recording goes on behind a still picture.
    await evaluate(() => document.getElementById('pause-view').click());
    results.push(await window_(`${CLIENTS.at(-1)}, view paused`, SECONDS));
    await evaluate(() => document.querySelector('[data-action="live"]')?.click());
  }
  if (TRACE) {
    await send('Tracing.end');
    await traceDone;
    writeFileSync(TRACE, JSON.stringify({ traceEvents }));
    printTrace(traceEvents);
    traceEvents = [];
  }
  if (PROFILE) {
    const { profile } = await send('Profiler.stop');
    writeFileSync(PROFILE, JSON.stringify(profile));
    printProfile(profile);
  }

  // Memory: keep the load on past the recording's cap; sample after a forced GC.
  const samples = [];
  const sample = async () => {
    await gc();
    const m = await metrics();
    const tl = await timeline();
    samples.push({ at: Math.round((Date.now() - t0) / 1000), heap: m.JSHeapUsedSize, wasm: await wasmBytes(),
      dom: m.Nodes, tl, framesIn: await frames(), load: loadavg()[0] });
  };
  const t0 = Date.now();
  await sample();
  while (Date.now() - t0 < MEMORY_SECONDS * 1000) {
    await sleep(SAMPLE_S * 1000);
    await sample();
  }
  await stopLoad();

  // ---- report ----
  console.log(`\nVisualizer under load: ${nodes.length} nodes; puts of 256 B values over ${KEY_SPACE} keys ` +
    `(paced through the leader, or omnikv bench load through every node)\n`);
  const row = (cells) => `| ${cells.join(' | ')} |`;
  console.log(row(['window', 's', 'event frames/s', 'recorded/s', 'fps', 'frames > 33 ms', 'longest frame gap',
    'long tasks (ms)', 'main thread busy', 'on CPU', 'script', 'style+layout', 'JS heap', 'wasm memory', 'DOM nodes', 'load avg']));
  console.log(row(Array(15).fill('---')));
  for (const r of results) {
    console.log(row([r.label, r.seconds.toFixed(1), r.framesInPerS.toFixed(0), r.recordedPerS.toFixed(0),
      r.fps.toFixed(1), r.slowFrames, `${r.maxGapMs.toFixed(0)} ms`, `${r.longTasks} (${r.longMs.toFixed(0)})`,
      `${(r.busy * 100).toFixed(0)}%`, `${(r.onCpu * 100).toFixed(0)}%`, `${(r.script * 100).toFixed(0)}%`, `${(r.layout * 100).toFixed(0)}%`,
      `${mb(r.heapStart)} -> ${mb(r.heapEnd)} MB`, `${mb(r.wasmStart)} -> ${mb(r.wasmEnd)} MB`,
      `${r.domStart} -> ${r.domEnd}`, r.load]));
  }
  console.log(`\nMemory over ${MEMORY_SECONDS} s more of the last load (after a forced GC):\n`);
  console.log(row(['t (s)', 'event frames received', 'recorded', 'kept', 'dropped', 'JS heap', 'wasm memory', 'DOM nodes', 'load avg']));
  console.log(row(Array(9).fill('---')));
  for (const s of samples) {
    console.log(row([s.at, s.framesIn, s.tl.end, s.tl.end - s.tl.start, s.tl.dropped, `${mb(s.heap)} MB`,
      `${mb(s.wasm)} MB`, s.dom, s.load.toFixed(2)]));
  }
  const full = samples.filter((s) => s.tl.dropped > 0);
  if (full.length >= 2) {
    const [f, l] = [full[0], full[full.length - 1]];
    console.log(`\nOnce the recording was full (${f.tl.end - f.tl.start} inputs kept): ` +
      `${l.tl.dropped - f.tl.dropped} more inputs dropped, JS heap ${mb(f.heap)} -> ${mb(l.heap)} MB, ` +
      `wasm memory ${mb(f.wasm)} -> ${mb(l.wasm)} MB, DOM nodes ${f.dom} -> ${l.dom}.`);
  } else {
    console.log('\nThe recording did not reach its cap; run longer (--memory-seconds) to see it drop.');
  }
  console.log(`timeline: "${samples[samples.length - 1].tl.info}"`);
  if (problems.length) console.log(`\npage problems:\n${problems.slice(0, 10).join('\n')}`);
  console.log(`\nload average at the end: ${load()}`);
}

function printTrace(events) {
  const main = events.find((e) => e.name === 'thread_name' && e.args?.name === 'CrRendererMain');
  const on = events.filter((e) => main && e.pid === main.pid && e.tid === main.tid && e.ph === 'X' && e.dur !== undefined)
    .sort((a, b) => a.ts - b.ts || b.dur - a.dur);
  const self = new Map();
  const stack = [];
  let top = 0;
  for (const e of on) {
    while (stack.length && stack[stack.length - 1].ts + stack[stack.length - 1].dur <= e.ts) stack.pop();
    if (stack.length) stack[stack.length - 1].child += e.dur; else top += e.dur;
    e.child = 0;
    stack.push(e);
  }
  for (const e of on) self.set(e.name, (self.get(e.name) || 0) + e.dur - e.child);
  const span = (on[on.length - 1]?.ts - on[0]?.ts) || 1;
  console.log(`\nMain thread (${TRACE}): busy ${(100 * top / span).toFixed(0)}% of ${(span / 1e6).toFixed(1)} s; self time by event:`);
  for (const [name, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 25)) {
    console.log(`${(us / 1000).toFixed(0).padStart(8)} ms ${(100 * us / span).toFixed(1).padStart(5)}%  ${name}`);
  }
}

function printProfile(profile) {
  const dt = new Map();
  for (let i = 0; i < profile.samples.length; i++) {
    dt.set(profile.samples[i], (dt.get(profile.samples[i]) || 0) + (profile.timeDeltas[i] || 0));
  }
  const self = new Map();
  let total = 0;
  for (const n of profile.nodes) {
    const us = dt.get(n.id) || 0;
    total += us;
    const name = `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url.split('/').pop()}`;
    self.set(name, (self.get(name) || 0) + us);
  }
  // Inclusive time per function (a name counted once per stack).
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const nameOf = (n) => `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url.split('/').pop()}`;
  const incl = new Map();
  const walk = (n, seen) => {
    const name = nameOf(n).replace(/::h[0-9a-f]{16}/, '');
    const fresh = !seen.has(name);
    const inner = fresh ? new Set(seen).add(name) : seen;
    let t = dt.get(n.id) || 0;
    for (const c of n.children || []) t += walk(byId.get(c), inner);
    if (fresh) incl.set(name, (incl.get(name) || 0) + t);
    return t;
  };
  walk(profile.nodes[0], new Set());
  console.log(`\nCPU profile (${PROFILE}), inclusive time, top 40:`);
  for (const [name, us] of [...incl].sort((a, b) => b[1] - a[1]).slice(0, 40)) {
    console.log(`${(us / 1000).toFixed(0).padStart(8)} ms ${(100 * us / total).toFixed(1).padStart(5)}%  ${name.slice(0, 150)}`);
  }
  console.log(`\nCPU profile (${PROFILE}), self time, top 30 of ${(total / 1e6).toFixed(1)} s:`);
  for (const [name, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 30)) {
    console.log(`${(us / 1000).toFixed(0).padStart(8)} ms ${(100 * us / total).toFixed(1).padStart(5)}%  ${name}`);
  }
}

try {
  await main();
} finally {
  if (bench && bench.exitCode === null) bench.kill('SIGKILL');
  await browser?.close().catch(() => {});
  await demo?.stop();
}
