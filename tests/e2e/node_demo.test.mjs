// The Node.js half of the demo against a real cluster: the narrated tour (which passes on a
// healthy cluster and fails, naming its step, on one that is not whole), the terminal dashboard
// in plain mode through a leader kill, the npm package installed into a fresh prefix, and a
// trace recorded from Node.js that the page imports and shows.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startDemo, until, sleep, repoRoot } from './demo.mjs';
import { launchBrowser, collectProblems } from './browser.mjs';

const run = promisify(execFile);
const cli = join(repoRoot, 'web/omnikv.mjs');
const artifacts = process.env.ARTIFACTS_DIR || join(repoRoot, 'tmp/artifacts');
let demo;

async function omnikv(...args) {
  try {
    const { stdout, stderr } = await run('node', [cli, '--demo', demo.url, ...args], { timeout: 120000 });
    return { code: 0, stdout, stderr };
  } catch (e) {
    return { code: e.code, stdout: e.stdout || '', stderr: e.stderr || '' };
  }
}

before(async () => { mkdirSync(artifacts, { recursive: true }); demo = await startDemo(); });
after(async () => { await demo?.stop(); });

test('the tour walks a healthy cluster through a failover and ends with equal digests', async () => {
  const res = await omnikv('tour');
  assert.equal(res.code, 0, `${res.stdout}\n${res.stderr}`);
  const steps = res.stdout.split('\n').filter((l) => /^\d+\. /.test(l));
  assert.equal(steps.length, 8, res.stdout);
  const killed = res.stdout.match(/SIGKILL node (\d+), the leader\n {3}node \d+ leads, \d+ ms after the kill/);
  assert.ok(killed, res.stdout);
  assert.match(res.stdout, /serves tour=second from its own copy \d+ ms after the restart/);
  // The story calls the node "(leader)" when its kill is on the record before the election,
  // which is a race between the launcher's process poll and the survivors' ballots.
  assert.match(res.stdout, new RegExp(`what happened: node ${killed[1]} (\\(leader\\) )?went down`));
  const digests = [...res.stdout.matchAll(/node \d+: applied (\d+), digest ([0-9a-f]+)/g)];
  assert.equal(digests.length, 3, res.stdout);
  assert.equal(new Set(digests.map((m) => `${m[1]} ${m[2]}`)).size, 1, 'replicas differ');
  assert.match(res.stdout, /The tour is over/);
});

test('top in plain mode shows the new leader after the leader is killed', async () => {
  const { leader } = await demo.cluster();
  const running = omnikv('top', '--seconds', '8');
  await sleep(2500);
  const kill = await fetch(`${demo.url}/api/nodes/${leader}/kill`, { method: 'POST' });
  assert.equal((await kill.json()).ok, true);
  const res = await running;
  await fetch(`${demo.url}/api/nodes/${leader}/restart`, { method: 'POST' });
  assert.equal(res.code, 0, res.stderr);
  const status = res.stdout.split('\n').filter((l) => l.startsWith('status leader='));
  assert.ok(status.length >= 3, res.stdout);
  assert.match(status[0], new RegExp(`^status leader=${leader} `));
  const last = status.at(-1).match(/^status leader=(\d+) /);
  assert.ok(last && Number(last[1]) !== leader, `still led by ${leader}:\n${res.stdout}`);
  assert.match(status.at(-1), new RegExp(`${leader}:down/`));
  assert.match(res.stdout, new RegExp(`\\d\\d:\\d\\d:\\d\\d\\.\\d{3} node ${leader} (\\(leader\\) )?went down`));
  assert.match(res.stdout, new RegExp(`\\d\\d:\\d\\d:\\d\\d\\.\\d{3} node ${last[1]} leads`));
  await until('every node up again', async () => (await demo.cluster()).nodes.every((n) => n.state === 'up'));
});

test('npm pack makes a package that works after a global install', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'omnikv-pack-'));
  try {
    await run('npm', ['pack', '--pack-destination', dir], { cwd: join(repoRoot, 'web') });
    const tarball = join(dir, 'omnikv-web-0.1.0.tgz');
    // ws is bundled in the tarball: the install needs no network.
    await run('npm', ['install', '-g', '--offline', '--prefix', join(dir, 'prefix'), tarball]);
    const bin = join(dir, 'prefix/bin/omnikv-js');
    const installed = (...args) => run(bin, ['--demo', demo.url, ...args], { timeout: 60000 });
    assert.match((await installed('put', 'packaged', 'yes')).stdout, /^ok/);
    assert.equal((await installed('get', 'packaged')).stdout.trim(), 'yes');
    await assert.rejects(installed('get', 'never-written'), (e) => e.code === 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a trace recorded from Node.js opens in the page', async () => {
  const file = join(artifacts, 'node-recorded-trace.bin');
  const res = await omnikv('record', '--seconds', '2', file);
  assert.equal(res.code, 0, res.stderr);
  assert.match(res.stdout, /^recorded \d+ records in 2 s to /);
  const browser = await launchBrowser();
  const problems = [];
  try {
    const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
    collectProblems(page, problems);
    await page.goto(demo.url);
    // The import control is wired when the page's wasm starts: a file chosen before that is lost.
    await until('the page running', async () => /events recorded/.test(await page.textContent('#timeline-info')));
    await page.setInputFiles('#import', file);
    await until('trace shown', async () => / trace$/.test(await page.textContent('#timeline-info')));
    assert.equal(await page.getAttribute('body', 'data-source'), 'trace');
    assert.equal(await page.locator('.node[data-node-id]').count(), 3);
    await page.screenshot({ path: join(artifacts, 'node-recorded-trace.png') });
  } finally {
    await browser.close();
  }
  assert.deepEqual(problems, []);
});

test('the tour fails at its first step, naming it, when a node is not up', async () => {
  const { nodes } = await demo.cluster();
  const paused = nodes[0].id;
  assert.equal((await (await fetch(`${demo.url}/api/nodes/${paused}/pause`, { method: 'POST' })).json()).ok, true);
  try {
    const res = await omnikv('tour');
    assert.equal(res.code, 1, res.stdout);
    assert.match(res.stderr, /tour failed at step 1 \(The cluster: every node up, one leader\)/);
  } finally {
    await fetch(`${demo.url}/api/nodes/${paused}/resume`, { method: 'POST' });
  }
});
