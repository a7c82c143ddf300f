// Drives the visualizer page in Debian's Chromium against a real demo cluster: put from the
// form, kill the leader from the UI, put again, restart the killed node and watch it catch up;
// messages in flight on the ring, a link cut and healed by clicking it, a scenario button, and
// a snapshot taking the place of the oldest entries in every node's log strip.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { request } from 'node:http';
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import WebSocket from 'ws';
import { until, webDir } from './demo.mjs';
import { demoSession, artifacts } from './session.mjs';

const session = demoSession({
  viewport: { width: 1400, height: 1100 },
  beforeClose: (p) => p.screenshot({ path: join(artifacts, 'visualizer.png'), fullPage: true }),
});
const { problems } = session;
let demo, page;

before(async () => {
  await session.start();
  ({ demo, page } = session);
});
after(() => session.stop());

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
    // Entries the snapshot replaced are no longer drawn in the strip, once it is redrawn (a
    // strip that grew redraws with the text panels, 4 to 10 times a second).
    const strip = page.locator(`.card[data-node-id="${id}"] .strip .entry`);
    const indices = () => strip.evaluateAll((es) => es.map((e) => Number(e.dataset.index)));
    const below = async () => (await indices()).filter((i) => i < at);
    await until(`node ${id} to stop drawing entries below its snapshot at ${at}`,
      async () => (await below()).length === 0, 5000).catch(async () => {
      assert.fail(`node ${id} draws entries below its snapshot at ${at}: ${await indices()}`);
    });
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
  // A write outside the prefix is not in the feed: the next write under it comes after it in
  // the log, so once that one shows, the other would have too.
  await put('vegetable/leek', 'white');
  await put('fruit/fig', 'purple');
  await until('the feed shows the next write under the prefix', async () => (await feed())[0]?.endsWith('put fruit/fig=purple'), 15000);
  assert.ok(!(await feed()).some((l) => l.includes('vegetable')), `${await feed()}`);
  await page.getByLabel('Watch', { exact: true }).uncheck();
  await until('the feed is hidden', async () => !(await page.locator('#watch-feed').isVisible()));
  assert.deepEqual(problems, []);
});

test('step through a write message by message, then recover from a dropped message', async () => {
  const leader = await until('a leader', async () => (await demo.cluster()).leader);
  const ids = (await demo.cluster()).nodes.map((n) => n.id);
  const [f, g] = ids.filter((id) => id !== leader);
  const entry = (id, idx) => page.locator(`.card[data-node-id="${id}"] .entry[data-index="${idx}"]`);
  const status = async (id, idx) => (await entry(id, idx).count()) ? entry(id, idx).getAttribute('data-status') : null;
  const explained = () => page.textContent('#step-explain');
  const heldEverywhere = async () => (await demo.cluster()).links.every((l) => l.held.length === 2);

  await page.getByRole('button', { name: 'Step through a write', exact: true }).click();
  await until('every link held in both directions', heldEverywhere, 15000);
  assert.equal(await page.locator('#step-mode').isChecked(), true);
  await until('the ring draws held links', async () =>
    (await page.locator('#ring-links .link[data-held="true"]').count()) === ids.length * (ids.length - 1) / 2);

  // The put reached the leader, which accepted it; its AcceptDecide to each follower waits.
  const toF = page.getByRole('button', { name: `Deliver AcceptDecide ${leader}->${f}`, exact: true });
  await until('the AcceptDecide to a follower waits, named on its button', async () => (await toF.count()) === 1, 15000);
  const idx = await until('the put in the leader\'s log strip', async () => {
    const titles = await page.locator(`.card[data-node-id="${leader}"] .entry`).evaluateAll(
      (es) => es.filter((e) => e.title.includes('walk')).map((e) => Number(e.dataset.index)));
    return titles.length ? titles[0] : undefined;
  });
  assert.equal(await status(leader, idx), 'accepted');
  assert.equal(await status(f, idx), null, 'the follower has not seen the entry');
  assert.ok((await page.textContent('#result')).startsWith('sending'), 'the put is not answered yet');
  assert.match(await page.textContent(`#ring-links .link text.queue[data-from="${leader}"][data-to="${f}"]`), /AcceptDecide/);

  // 1. AcceptDecide leader->f: f accepts the entry.
  await toF.click();
  await until(`node ${f} accepted entry ${idx}`, async () => (await status(f, idx)) === 'accepted', 15000);
  assert.match(await explained(), new RegExp(`AcceptDecide ${leader}->${f}: leader ${leader} asks node ${f} to accept`));
  assert.equal(await status(leader, idx), 'accepted', 'no majority yet');

  // 2. Accepted f->leader, with the deliver key on the selected direction: a majority, the
  // leader decides, applies and answers the put.
  await until(`node ${f}'s Accepted waits`, async () =>
    (await page.getByRole('button', { name: `Deliver Accepted ${f}->${leader}`, exact: true }).count()) === 1, 15000);
  await page.locator(`#held-list li[data-from="${f}"][data-to="${leader}"] .summary`).click();
  await page.keyboard.press('n');
  await until(`the leader applied entry ${idx}`, async () => (await status(leader, idx)) === 'applied', 15000);
  await until('the put answered', async () => (await page.getAttribute('#result', 'data-status')) === 'ok'
    && !(await page.textContent('#result')).startsWith('sending'), 15000);
  assert.match(await explained(), /Accepted .*accepted up to index/);
  assert.notEqual(await status(f, idx), 'applied', 'the follower has not heard the decision');

  // 3. What tells f the entry is decided (Decide, or the next AcceptDecide): f applies it.
  const decided = await until(`the decision for node ${f} waits`, async () => {
    for (const kind of ['Decide', 'AcceptDecide']) {
      const b = page.getByRole('button', { name: `Deliver ${kind} ${leader}->${f}`, exact: true });
      if (await b.count()) return b;
    }
  }, 15000);
  await decided.click();
  await until(`node ${f} applied entry ${idx}`, async () => (await status(f, idx)) === 'applied', 15000);
  assert.notEqual(await status(g, idx), 'applied', `node ${g}'s messages still wait`);

  // Released, every link delivers what it held: g catches up with the walked write.
  await page.getByLabel('Step mode', { exact: true }).uncheck();
  await until('no link held', async () => (await demo.cluster()).links.every((l) => l.held.length === 0), 15000);
  await until(`node ${g} applied the walked write`, async () => (await status(g, idx)) === 'applied', 30000);

  // A dropped message: the AcceptDecide of a second put to g is dropped, which breaks the
  // link's stream; the write still succeeds through f, and g catches up once released.
  await page.getByLabel('Step mode', { exact: true }).check();
  await until('every link held again', heldEverywhere, 15000);
  await page.getByLabel('Key', { exact: true }).fill('dropped');
  await page.getByLabel('Value', { exact: true }).fill('recovered');
  await page.getByRole('button', { name: 'Put', exact: true }).click();
  await until(`the second put's AcceptDecide to node ${g} waits`, async () =>
    (await page.getByRole('button', { name: `Deliver AcceptDecide ${leader}->${g}`, exact: true }).count()) === 1, 15000);
  await page.getByRole('button', { name: `Drop next ${leader}->${g}`, exact: true }).click();
  await until('the drop explained', async () => new RegExp(`dropped AcceptDecide ${leader}->${g}`).test(await explained()));
  const deliverAll = async (a, b) => {
    const button = page.getByRole('button', { name: `Deliver all ${a}->${b}`, exact: true });
    await until(`messages wait ${a}->${b}`, async () => (await button.count()) === 1, 15000);
    await button.click();
  };
  await deliverAll(leader, f);
  await deliverAll(f, leader);
  await until('the second put answered', async () => (await page.textContent('#result')).startsWith('ok'), 15000);

  await page.getByLabel('Step mode', { exact: true }).uncheck();
  await until('no link held', async () => (await demo.cluster()).links.every((l) => l.held.length === 0), 15000);
  await until('the dropped write reached every node', kvHas('dropped', 'recovered'), 30000);
  assert.deepEqual(problems, []);
});

test('shift-click holds one link, its messages are delivered five at a time, and it is released', async () => {
  const leader = await until('a leader', async () => (await demo.cluster()).leader);
  const f = (await demo.cluster()).nodes.map((n) => n.id).find((id) => id !== leader);
  const [a, b] = [Math.min(leader, f), Math.max(leader, f)];
  const link = page.locator(`#ring-links .link[data-a="${a}"][data-b="${b}"]`);
  const heldDirections = async () => (await demo.cluster()).links.find((l) => l.a === a && l.b === b)?.held.length;
  await link.click({ modifiers: ['Shift'] });
  await until(`link ${a}-${b} held both ways`, async () => (await heldDirections()) === 2, 15000);
  await until('the ring draws it held', async () => (await link.getAttribute('data-held')) === 'true');
  assert.equal((await demo.cluster()).links.filter((l) => l.held.length > 0).length, 1, 'only that link');
  assert.equal(await link.getAttribute('data-connected'), 'true', 'a hold is not a cut');

  // Writes go on through the other follower; what the leader sends f waits, and five at a
  // time is delivered.
  await put('during-hold', 'ok');
  const five = page.getByRole('button', { name: `Deliver next 5 ${leader}->${f}`, exact: true });
  await until(`messages wait ${leader}->${f}`, async () => (await five.count()) === 1, 15000);
  const waiting = async () => (await demo.cluster()).links.find((l) => l.a === a && l.b === b)
    ?.held.find((h) => h.from === leader)?.waiting ?? 0;
  const before = await waiting();
  await five.click();
  await until('five (or all, if fewer) delivered', async () => (await waiting()) === Math.max(0, before - 5), 15000);

  await link.click({ modifiers: ['Shift'] });
  await until(`link ${a}-${b} released`, async () => (await heldDirections()) === 0, 15000);
  await put('after-hold', 'ok');
  await until('the writes reached every node', kvHas('after-hold', 'ok'), 30000);
  await until('the write made during the hold too', kvHas('during-hold', 'ok'), 30000);
  assert.deepEqual(problems, []);
});

test("the page's wasm reaches a browser gzip-compressed, and decompresses to the built file", async () => {
  const url = new URL('/pkg/omnikv_viz_bg.wasm', demo.url);
  const res = await new Promise((ok, fail) =>
    request(url, { headers: { 'accept-encoding': 'gzip' } }, ok).on('error', fail).end());
  const chunks = [];
  for await (const c of res) chunks.push(c);
  const body = Buffer.concat(chunks);
  assert.equal(res.statusCode, 200);
  assert.equal(res.headers['content-encoding'], 'gzip');
  assert.equal(res.headers['content-type'], 'application/wasm');
  const built = readFileSync(join(webDir, 'pkg/omnikv_viz_bg.wasm'));
  assert.ok(body.length < built.length / 2, `${body.length} bytes sent for ${built.length}`);
  assert.ok(gunzipSync(body).equals(built), 'the decompressed wasm is the built one');
});
