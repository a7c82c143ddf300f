// The page at a glance, in Debian's Chromium against a real demo: at 1366x768 and 1440x900 the
// ring, every node's log strip and KV table, the client form and the timeline are on screen
// without scrolling (with 5 nodes too, at 1440x900); the inspector opens over the page; killing
// a node from its card scrolls nothing; and an imported trace is shown as a trace, opened at its
// first picture, with everything that acts on the live cluster disabled and saying why.
// Screenshots go to ARTIFACTS_DIR for review.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { collectProblems } from './browser.mjs';
import { startDemo, until, sleep } from './demo.mjs';
import { demoSession, artifacts } from './session.mjs';

const session = demoSession();
const { problems } = session;
let demo, browser, page;

before(async () => {
  await session.start();
  ({ demo, browser, page } = session);
});
after(() => session.stop());

const shot = (name) => page.screenshot({ path: join(artifacts, `${name}.png`) });

/**
 * What must be on screen but is not: each named box that is missing, empty or not wholly inside
 * the viewport, and any scrolling of the page (or of its main area) that the layout needs.
 */
function offScreen(p) {
  return p.evaluate(() => {
    const [vw, vh] = [innerWidth, innerHeight];
    const boxes = [['ring', document.getElementById('ring')],
      ['client form', document.getElementById('client-form')],
      ['timeline', document.querySelector('footer.timeline')]];
    for (const card of document.querySelectorAll('#cards .card')) {
      const id = card.dataset.nodeId;
      boxes.push([`node ${id} log strip`, card.querySelector('.log')]);
      boxes.push([`node ${id} KV table`, card.querySelector('table.kv')]);
    }
    const bad = [];
    for (const [name, e] of boxes) {
      const r = e?.getBoundingClientRect();
      if (!r || r.width < 1 || r.height < 1) bad.push(`${name}: not drawn`);
      else if (r.left < 0 || r.top < 0 || r.right > vw + 0.5 || r.bottom > vh + 0.5) {
        bad.push(`${name}: ${Math.round(r.left)},${Math.round(r.top)}–${Math.round(r.right)},${Math.round(r.bottom)} outside ${vw}x${vh}`);
      }
    }
    // Fitting by shrinking to nothing does not count: a readable ring, strips and tables.
    const ring = document.getElementById('ring')?.getBoundingClientRect();
    if (ring && Math.min(ring.width, ring.height) < 200) bad.push(`ring under 200 px: ${Math.round(ring.width)}x${Math.round(ring.height)}`);
    for (const s of document.querySelectorAll('#cards .log')) {
      if (s.getBoundingClientRect().width < 150) bad.push(`a log strip under 150 px wide`);
    }
    // A KV table must show rows, not a sliver.
    for (const t of document.querySelectorAll('#cards table.kv')) {
      if (t.getBoundingClientRect().height < 40) bad.push(`node ${t.dataset.kvNode} KV table under 40 px tall`);
    }
    // Every column of the client requests is in view, not behind a sideways scroll.
    const log = document.querySelector('.client-log');
    if (log && log.scrollWidth > log.clientWidth + 1) bad.push(`client requests scroll sideways: ${log.scrollWidth} > ${log.clientWidth}`);
    const { scrollHeight } = document.scrollingElement;
    if (scrollHeight > vh) bad.push(`page scrolls: scrollHeight ${scrollHeight} > innerHeight ${vh}`);
    const main = document.querySelector('main');
    if (main && main.scrollHeight > main.clientHeight + 1) bad.push(`main scrolls: ${main.scrollHeight} > ${main.clientHeight}`);
    return bad;
  });
}

async function openWithNodes(p, url, count) {
  await p.goto(url + '/');
  await until('every node drawn', async () => (await p.locator('.node[data-node-id]').count()) === count);
  await until('a leader on the page', async () => (await p.locator('.node[data-leader="true"]').count()) === 1);
  await until('every card drawn', async () => (await p.locator('#cards .card table.kv').count()) === count);
}

/** Opens the 3-node demo's page unless an earlier test did. */
async function ensureOpen() {
  if (!page.url().startsWith(demo.url)) await openWithNodes(page, demo.url, 3);
}

async function put(key, value, p = page) {
  await p.getByLabel('Key', { exact: true }).fill(key);
  await p.getByLabel('Value', { exact: true }).fill(value);
  await p.getByRole('button', { name: 'Put', exact: true }).click();
  await until(`put ${key} answered`, async () =>
    (await p.getAttribute('#result', 'data-status')) === 'ok'
      && !(await p.textContent('#result')).startsWith('sending'), 30000);
}

test('one screen at 1366x768 and 1440x900 with 3 nodes', async () => {
  await openWithNodes(page, demo.url, 3);
  await put('color', 'blue');
  const bad = {};
  for (const [width, height] of [[1366, 768], [1440, 900]]) {
    await page.setViewportSize({ width, height });
    await sleep(300); // a frame or two to lay out
    bad[`${width}x${height}`] = await offScreen(page);
    await shot(`layout-3-nodes-${width}x${height}`);
  }
  assert.deepEqual(bad, { '1366x768': [], '1440x900': [] });
  assert.deepEqual(problems, []);
});

test('the inspector opens over the page and closes, moving nothing', async () => {
  await page.setViewportSize({ width: 1366, height: 768 });
  await ensureOpen();
  const inspector = page.locator('[aria-label="Inspector"]');
  assert.equal(await inspector.isVisible(), false, 'an empty inspector is shown before anything is selected');
  const ringBefore = await page.locator('#ring').boundingBox();
  const cardBefore = await page.locator('#cards .card').first().boundingBox();
  await page.locator('.node[data-node-id]').first().click();
  await until('inspector open', () => inspector.isVisible());
  await until('inspector shows the node', async () => /^Node \d+$/.test(await page.textContent('#inspector-title')));
  assert.deepEqual(await page.locator('#ring').boundingBox(), ringBefore);
  assert.deepEqual(await page.locator('#cards .card').first().boundingBox(), cardBefore);
  assert.deepEqual(await offScreen(page), []);
  await shot('inspector-1366x768');
  await page.getByRole('button', { name: 'Close inspector', exact: true }).click();
  await until('inspector closed', async () => !(await inspector.isVisible()));
  assert.deepEqual(problems, []);
});

test('killing a node from its card scrolls nothing', async () => {
  const { nodes, leader } = await demo.cluster();
  const victim = nodes.map((n) => n.id).find((id) => id !== leader);
  await ensureOpen();
  const where = () => page.evaluate(() => ({
    page: document.scrollingElement.scrollTop,
    main: document.querySelector('main').scrollTop,
    ring: Math.round(document.getElementById('ring').getBoundingClientRect().top),
  }));
  const before = await where();
  await page.getByRole('button', { name: `Kill node ${victim}`, exact: true }).click();
  await until('killed node shown down', async () =>
    (await page.getAttribute(`.node[data-node-id="${victim}"]`, 'data-state')) === 'down');
  await sleep(500);
  assert.deepEqual(await where(), before);
  assert.deepEqual(before, { page: 0, main: 0, ring: before.ring });
  assert.deepEqual(await offScreen(page), []);
  await shot('after-kill-1366x768');
  await page.getByRole('button', { name: `Restart node ${victim}`, exact: true }).click();
  await until('restarted node up', async () =>
    (await page.getAttribute(`.node[data-node-id="${victim}"]`, 'data-state')) === 'up', 30000);
  assert.deepEqual(await where(), before);
  assert.deepEqual(problems, []);
});

test('an imported trace opens at its first picture, says "trace" and disables live controls', async () => {
  await ensureOpen();
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: 'Export trace', exact: true }).click(),
  ]);
  // The file picker offers what Export saved (a browser filters the picker by `accept`, which
  // setInputFiles does not).
  const offered = (await page.getAttribute('#import', 'accept')).split(',');
  const saved = download.suggestedFilename();
  assert.ok(offered.some((a) => a.startsWith('.') && saved.endsWith(a)), `${saved} not in ${offered}`);
  const file = join(artifacts, 'layout-trace.bin');
  await download.saveAs(file);
  await page.setInputFiles('#import', file);
  await until('trace shown', async () => / trace$/.test(await page.textContent('#timeline-info')));
  await sleep(300);

  const wrong = [];
  if ((await page.getAttribute('body', 'data-source')) !== 'trace') wrong.push('body[data-source] is not "trace"');
  // The first picture: nodes on the ring (one step earlier the ring is empty: checked below).
  const drawn = await page.locator('.node[data-node-id]').count();
  if (drawn !== 3) wrong.push(`opened with ${drawn} nodes on the ring`);
  const heading = await page.locator('h1').innerText();
  if (!/\btrace\b/.test(heading) || /live cluster/.test(heading)) wrong.push(`heading says "${heading}"`);
  if (/live cluster/.test(await page.title())) wrong.push(`title says "${await page.title()}"`);
  const note = page.getByRole('note');
  if (!(await note.isVisible().catch(() => false))) wrong.push('no visible reason for the disabled controls');
  else if (!/live cluster/.test(await note.innerText())) wrong.push(`reason: ${await note.innerText()}`);
  const liveOnly = ['Put', 'Get', 'Delete', 'Scenario quorum loss', 'Scenario constrained', 'Scenario chained',
    'Heal all links'];
  for (const { id } of (await demo.cluster()).nodes) {
    for (const op of ['Kill', 'Pause', 'Resume', 'Restart']) liveOnly.push(`${op} node ${id}`);
  }
  /** true, false, or null when the control is not on the page. */
  const disabled = (locator) => locator.isDisabled({ timeout: 1000 }).catch(() => null);
  const say = (d) => (d === null ? 'not shown' : 'enabled');
  for (const name of liveOnly) {
    const d = await disabled(page.getByRole('button', { name, exact: true }));
    if (d !== true) wrong.push(`"${name}" ${say(d)}`);
  }
  const [a, b] = (await demo.cluster()).nodes.map((n) => n.id);
  const link = page.locator(`#ring-links .link[data-a="${a}"][data-b="${b}"]`);
  const linkDisabled = await disabled(link);
  if (linkDisabled !== true) wrong.push(`link ${a}-${b} ${say(linkDisabled)}`);
  await shot('trace-1366x768');
  // Clicking the link anyway changes nothing in the cluster.
  if (linkDisabled !== null) await link.click({ force: true });
  await sleep(1000);
  const { links } = await demo.cluster();
  if (!links.every((l) => l.connected)) wrong.push('a click on the trace cut a live link');
  assert.deepEqual(wrong, []);

  await page.getByRole('button', { name: 'Step back', exact: true }).click();
  await until('an empty ring one step earlier', async () => (await page.locator('.node[data-node-id]').count()) === 0);

  // Back to the live cluster: controls enabled, the heading says so.
  await page.getByRole('button', { name: 'Live', exact: true }).click();
  await until('live again', async () => (await page.getAttribute('body', 'data-source')) === 'live');
  assert.match(await page.locator('h1').innerText(), /live cluster/);
  await until('nodes drawn again', async () => (await page.locator('.node[data-node-id]').count()) === 3);
  assert.equal(await page.getByRole('button', { name: 'Put', exact: true }).isDisabled(), false);
  assert.equal(await page.getByRole('button', { name: `Kill node ${a}`, exact: true }).isDisabled(), false);
  assert.equal(await link.isDisabled(), false);
  assert.deepEqual(problems, []);
});

test('with 5 nodes the cards go compact and everything still fits at 1440x900 (and 1366x768)', async () => {
  const five = await startDemo({ nodes: 5 });
  const p = await browser.newPage({ viewport: { width: 1440, height: 900 } });
  try {
    collectProblems(p, problems);
    await openWithNodes(p, five.url, 5);
    await put('color', 'blue', p);
    const bad = {};
    for (const [width, height] of [[1440, 900], [1366, 768]]) {
      await p.setViewportSize({ width, height });
      await sleep(300);
      bad[`${width}x${height}`] = await offScreen(p);
      await p.screenshot({ path: join(artifacts, `layout-5-nodes-${width}x${height}.png`) });
    }
    assert.deepEqual(bad, { '1440x900': [], '1366x768': [] });
    assert.deepEqual(problems, []);
  } finally {
    await p.close();
    await five.stop();
  }
});
