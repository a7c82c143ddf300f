// Drives the visualizer page in Debian's Chromium against a real demo cluster: put from the
// form, kill the leader from the UI, put again, restart the killed node and watch it catch up;
// messages in flight on the ring, a link cut and healed by clicking it, a scenario button, and
// a snapshot taking the place of the oldest entries in every node's log strip.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { launchBrowser, collectProblems } from './browser.mjs';
import WebSocket from 'ws';
import { startDemo, until, repoRoot } from './demo.mjs';

const artifacts = process.env.ARTIFACTS_DIR || join(repoRoot, 'tmp/artifacts');
let demo, browser, page;
const problems = [];

before(async () => {
  demo = await startDemo();
  browser = await launchBrowser();
  page = await browser.newPage({ viewport: { width: 1400, height: 1100 } });
  collectProblems(page, problems);
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

/** The link a-b as the control API reports it: true (connected) or false (cut). */
async function apiLink(a, b) {
  const { links } = await demo.cluster();
  return links.find((l) => (l.a === a && l.b === b) || (l.a === b && l.b === a))?.connected;
}

const ringLink = (a, b) => page.locator(`#ring-links .link[data-a="${a}"][data-b="${b}"]`);

/** Puts `count` keys through `wsUrl`'s client endpoint, pipelined; resolves once all are ok. */
async function putMany(wsUrl, prefix, count) {
  const ws = new WebSocket(`${wsUrl}/client`);
  await new Promise((ok, fail) => { ws.once('open', ok); ws.once('error', fail); });
  // Writes need a session; its id is the index at which the cluster applied the opening.
  const nonce = Math.floor(Math.random() * 2 ** 40) + 1;
  ws.send(JSON.stringify({ id: { client: nonce, seq: 0 }, op: 'open_session' }));
  const opened = JSON.parse(await new Promise((ok, fail) => { ws.once('message', ok); ws.once('error', fail); }));
  if (!opened.ok) throw new Error(`open_session refused: ${JSON.stringify(opened)}`);
  const client = opened.ok.index;
  const done = new Promise((ok, fail) => {
    let left = count;
    ws.on('message', (data) => {
      if (!JSON.parse(data.toString()).ok) fail(new Error(`put refused: ${data}`));
      else if (--left === 0) ok();
    });
    ws.once('error', fail);
  });
  for (let seq = 0; seq < count; seq++) {
    ws.send(JSON.stringify({ id: { client, seq }, op: { put: { key: `${prefix}${seq}`, value: String(seq) } } }));
  }
  try { await done; } finally { ws.close(); }
}

test('messages fly across the ring, and a put sends replication messages', async () => {
  // An idle cluster still exchanges heartbeats: a dot must move from one frame to the next.
  const moved = await page.evaluate(async () => {
    const frame = () => new Promise((r) => requestAnimationFrame(r));
    const key = (d) => `${d.dataset.from}/${d.dataset.msgId}`;
    const end = performance.now() + 10000;
    while (performance.now() < end) {
      const dot = document.querySelector('#ring-msgs .msg');
      if (dot) {
        const [id, x, y] = [key(dot), dot.getAttribute('cx'), dot.getAttribute('cy')];
        await frame(); await frame();
        const again = [...document.querySelectorAll('#ring-msgs .msg')].find((d) => key(d) === id);
        if (again && (again.getAttribute('cx') !== x || again.getAttribute('cy') !== y)) return true;
      }
      await frame();
    }
    return false;
  });
  assert.ok(moved, 'no message dot moved across the ring');

  // Idle, nothing is replicated; armed before the put so that a dot's 900 ms flight is seen.
  const replicated = page.waitForSelector('#ring-msgs .msg[data-class="replicate"]', { state: 'attached', timeout: 20000 });
  await put('animated', 'yes');
  await replicated;
  assert.deepEqual(problems, []);
});

test('a link is cut and healed by clicking it on the ring', async () => {
  const [a, b] = (await demo.cluster()).nodes.map((n) => n.id);
  assert.equal(await apiLink(a, b), true);
  await ringLink(a, b).click();
  await until(`link ${a}-${b} cut in the nodes`, async () => (await apiLink(a, b)) === false);
  await until(`link ${a}-${b} drawn cut`, async () => (await ringLink(a, b).getAttribute('data-connected')) === 'false');
  assert.equal(await ringLink(a, b).getAttribute('aria-label'), `Heal link ${a}–${b}`);

  await ringLink(a, b).click();
  await until(`link ${a}-${b} healed in the nodes`, async () => (await apiLink(a, b)) === true);
  await until(`link ${a}-${b} drawn connected`, async () => (await ringLink(a, b).getAttribute('data-connected')) === 'true');
  assert.deepEqual(problems, []);
});

test('a scenario button cuts links, writes go on, and heal restores every link', async () => {
  await page.getByRole('button', { name: 'Scenario quorum loss', exact: true }).click();
  await until('links cut by the scenario', async () => (await demo.cluster()).links.some((l) => !l.connected));
  await until('cut links drawn', async () => (await page.locator('#ring-links .link[data-connected="false"]').count()) > 0);
  await put('during', 'quorum-loss');

  await page.getByRole('button', { name: 'Heal all links', exact: true }).click();
  await until('every link healed', async () => (await demo.cluster()).links.every((l) => l.connected));
  await until('no cut link drawn', async () => (await page.locator('#ring-links .link[data-connected="false"]').count()) === 0);
  await until('the write made during the scenario on every node', kvHas('during', 'quorum-loss'), 30000);
  assert.deepEqual(problems, []);
});

test('a snapshot appears at the head of every log strip', async () => {
  // The demo snapshots every 50 decided entries; 60 more put every node past the next one.
  const { nodes } = await demo.cluster();
  const leader = await until('a leader', async () => (await demo.cluster()).leader);
  const snapAt = async (id) => Number(await page.getAttribute(`.card[data-node-id="${id}"] .snap`, 'data-index')) || 0;
  const snapBefore = Math.max(...await Promise.all(nodes.map((n) => snapAt(n.id))));
  await putMany(nodes.find((n) => n.id === leader).ws, 'snap-', 60);
  for (const { id } of nodes) {
    const snap = page.locator(`.card[data-node-id="${id}"] .snap`);
    const at = await until(`a snapshot in node ${id}'s log strip`, async () => {
      if (await snap.getAttribute('hidden') !== null) return false;
      const idx = Number(await snap.getAttribute('data-index'));
      return idx > snapBefore && idx;
    }, 30000);
    assert.match(await snap.textContent(), new RegExp(`\\.\\.${at}\\b`));
    // Entries the snapshot replaced are no longer drawn in the strip.
    const shown = await page.locator(`.card[data-node-id="${id}"] .strip .entry`).evaluateAll(
      (es) => es.map((e) => Number(e.dataset.index)));
    assert.ok(shown.every((i) => i >= at), `node ${id} draws entries below its snapshot at ${at}: ${shown}`);
  }
  assert.deepEqual(problems, []);
});

test('scan a prefix, compare-and-swap and watch changes from the client panel', async () => {
  const result = async () => {
    await until('an answer', async () => !(await page.textContent('#result')).startsWith('sending'), 30000);
    return [await page.getAttribute('#result', 'data-status'), await page.textContent('#result')];
  };
  const fill = async (fields) => {
    for (const [label, value] of Object.entries(fields)) await page.getByLabel(label, { exact: true }).fill(value);
  };
  const click = (name) => page.getByRole('button', { name, exact: true }).click();

  // Watch the prefix before writing under it: the feed shows the writes, newest first.
  await fill({ Key: 'fruit/' });
  await page.getByLabel('Watch', { exact: true }).check();
  await until('the watch opened', async () => /watching through node \d/.test(await page.textContent('#watch-status')));
  await put('fruit/apple', 'red');
  await put('fruit/pear', 'green');

  await fill({ Key: 'fruit/' });
  await click('Scan');
  const [scanStatus, scanned] = await result();
  assert.equal(scanStatus, 'ok');
  assert.match(scanned, /^2 keys: fruit\/apple=red, fruit\/pear=green \(node \d, index \d+\)/);

  // A CAS that expects what the key holds swaps it; the same CAS again finds the new value.
  await page.getByLabel('CAS expects', { exact: true }).selectOption('value');
  await fill({ Key: 'fruit/apple', Value: 'yellow', Expected: 'red' });
  await click('CAS');
  const [okStatus, swapped] = await result();
  assert.equal(okStatus, 'ok');
  assert.match(swapped, /^swapped \(node \d, index \d+\)/);
  await click('CAS');
  const [failStatus, failed] = await result();
  assert.equal(failStatus, 'err', 'a failed comparison is shown as not done');
  assert.match(failed, /^comparison failed: found fruit\/apple=yellow \(index \d+\)/);
  await page.getByLabel('CAS expects', { exact: true }).selectOption('absent');
  await fill({ Key: 'fruit/kiwi', Value: 'brown' });
  await click('CAS');
  assert.match((await result())[1], /^swapped/);

  // The requests are in the client log like puts, and the table shows the swap.
  await until('the CAS in the client log', async () =>
    (await page.locator('.client-log').textContent()).includes('cas fruit/apple=yellow if red'));
  await until('fruit/apple=yellow in every table', kvHas('fruit/apple', 'yellow'));

  const feed = async () => page.locator('#watch-feed li').allTextContents();
  await until('the watch feed shows every change', async () => (await feed()).length === 4, 15000);
  const lines = await feed();
  assert.match(lines[0], /^\d+ put fruit\/kiwi=brown$/);
  assert.match(lines[1], /^\d+ put fruit\/apple=yellow$/);
  assert.match(lines[3], /^\d+ put fruit\/apple=red$/);
  const indices = lines.map((l) => Number(l.split(' ')[0]));
  assert.deepEqual([...indices].sort((a, b) => b - a), indices, 'newest first, in log order');
  // Writes outside the prefix are not in the feed.
  await put('vegetable/leek', 'white');
  await page.getByLabel('Watch', { exact: true }).uncheck();
  assert.equal(await page.locator('#watch-feed').isVisible(), false);
  assert.deepEqual(problems, []);
});
