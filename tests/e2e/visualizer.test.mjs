// Drives the visualizer page in Debian's Chromium against a real demo cluster: put from the
// form, kill the leader from the UI, put again, restart the killed node and watch it catch up.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { startDemo, until, repoRoot } from './demo.mjs';

const artifacts = process.env.ARTIFACTS_DIR || join(repoRoot, 'tmp/artifacts');
let demo, browser, page;
const problems = [];

before(async () => {
  demo = await startDemo();
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--no-first-run', '--disable-sync', '--disable-quic'],
  });
  page = await browser.newPage({ viewport: { width: 1400, height: 1100 } });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console error: ${m.text()}`); });
});

after(async () => {
  if (page) {
    mkdirSync(artifacts, { recursive: true });
    await page.screenshot({ path: join(artifacts, 'visualizer.png'), fullPage: true }).catch(() => {});
  }
  await browser?.close();
  await demo?.stop();
});

const role = (id) => page.getAttribute(`.node[data-node-id="${id}"]`, 'data-role');
const kvHas = (key, value) => async () => {
  const ids = (await demo.cluster()).nodes.filter((n) => n.state === 'up').map((n) => n.id);
  for (const id of ids) {
    const v = await page.getAttribute(`table[data-kv-node="${id}"] tr[data-key="${key}"]`, 'data-value', { timeout: 200 }).catch(() => null);
    if (v !== value) return false;
  }
  return true;
};

async function put(key, value) {
  await page.getByLabel('Key', { exact: true }).fill(key);
  await page.getByLabel('Value', { exact: true }).fill(value);
  await page.getByRole('button', { name: 'Put', exact: true }).click();
  await until(`put ${key} answered`, async () =>
    (await page.getAttribute('#result', 'data-status')) === 'ok'
      && !(await page.textContent('#result')).startsWith('sending'), 30000);
}

test('put, kill the leader, put again, restart and catch up — all from the page', async () => {
  await page.goto(demo.url + '/');
  const nodes = (await demo.cluster()).nodes.map((n) => n.id);
  await until('every node drawn', async () => (await page.locator('.node[data-node-id]').count()) === nodes.length);
  const leader = await until('a leader on the page', async () => {
    for (const id of nodes) if (await role(id) === 'leader') return id;
  });

  await put('color', 'blue');
  await until('color=blue in every table', kvHas('color', 'blue'));
  assert.ok(await page.locator(`.card[data-node-id="${leader}"] .entry[data-status="applied"]`).count() >= 1);

  await page.getByRole('button', { name: `Kill node ${leader}`, exact: true }).click();
  await until('killed node shown down', async () =>
    (await page.getAttribute(`.node[data-node-id="${leader}"]`, 'data-state')) === 'down');
  const next = await until('another leader', async () => {
    for (const id of nodes) if (id !== leader && await role(id) === 'leader') return id;
  }, 30000);
  assert.notEqual(next, leader);

  await put('size', 'large');
  await until('size=large on the live nodes', kvHas('size', 'large'));

  await page.getByRole('button', { name: `Restart node ${leader}`, exact: true }).click();
  await until('restarted node up', async () =>
    (await page.getAttribute(`.node[data-node-id="${leader}"]`, 'data-state')) === 'up', 30000);
  await until('restarted node caught up', async () =>
    (await page.getAttribute(`table[data-kv-node="${leader}"] tr[data-key="size"]`, 'data-value', { timeout: 200 })) === 'large', 30000);

  // Looking back: pause, step back, then live again.
  // (The page redraws on the next animation frame, hence the waits.)
  const mode = (m) => async () => (await page.getAttribute('body', 'data-mode')) === m;
  await page.getByRole('button', { name: 'Pause view', exact: true }).click();
  await until('paused view', mode('paused'));
  const cursor = async () => Number(await page.getAttribute('#scrub', 'data-cursor'));
  const at = await cursor();
  await page.getByRole('button', { name: 'Step back', exact: true }).click();
  await until('one step back', async () => (await cursor()) === at - 1);
  await page.getByRole('button', { name: 'Live', exact: true }).click();
  await until('live view', mode('live'));

  assert.deepEqual(problems, []);
});
