// The History panel in Debian's Chromium against a real demo: the page's own client operations
// are checked for linearizability in the page. An ordinary run is linearizable; a local read
// through a follower whose links are cut, after a newer value was written through the leader,
// is a stale read: the panel says "not linearizable" and highlights the fragment (the two writes
// and the read), with the cut drawn as bands on the same axis. An exported trace carries the
// history: imported, it shows the same verdict.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { until, sleep } from './demo.mjs';
import { demoSession, artifacts } from './session.mjs';

const session = demoSession();
const { problems } = session;
let demo, page;

before(async () => {
  await session.start();
  ({ demo, page } = session);
  await page.goto(demo.url + '/');
  await until('a leader on the page', async () => (await page.locator('.node[data-leader="true"]').count()) === 1);
});
after(() => session.stop());

/** Sends one request from the form and returns its answer line once it finished. */
async function request(button, { key, value, node = 'auto', read = 'linearizable' }) {
  await page.getByLabel('Key', { exact: true }).fill(key);
  if (value !== undefined) await page.getByLabel('Value', { exact: true }).fill(value);
  await page.getByLabel('Target node').selectOption(node);
  await page.getByLabel('Read mode').selectOption(read);
  const before = await page.locator('#result').textContent();
  await page.getByRole('button', { name: button, exact: true }).click();
  return until(`${button} ${key} answered`, async () => {
    const line = await page.locator('#result').textContent();
    return line !== before && / — \d+ ms$/.test(line) ? line : null;
  });
}

async function setLink(a, b, connected) {
  const r = await fetch(`${demo.url}/api/links`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ a, b, connected }),
  });
  assert.equal(r.status, 200, await r.text());
}

async function openHistory() {
  const drawer = page.getByRole('complementary', { name: 'History' });
  if (!(await drawer.isVisible())) await page.locator('#history-toggle').click();
  await drawer.waitFor({ state: 'visible' });
  return drawer;
}

async function closeHistory() {
  await page.getByRole('button', { name: 'Close history' }).click();
}

test('an ordinary run is linearizable', async () => {
  assert.match(await request('Put', { key: 'plain', value: 'a' }), /^ok/);
  assert.match(await request('Get', { key: 'plain' }), /^a \(node/);
  assert.match(await request('Put', { key: 'plain', value: 'b' }), /^ok/);
  assert.match(await request('Get', { key: 'plain', read: 'local' }), /^b \(node/);
  await openHistory();
  const verdict = page.locator('#history-verdict');
  await until('a verdict', async () => (await verdict.getAttribute('data-verdict')) === 'linearizable');
  assert.match(await verdict.textContent(), /^linearizable: 4 operations on 1 keys/);
  assert.equal(await page.locator('#history-plot .op[data-key="plain"]').count(), 4);
  assert.equal(await page.locator('#history-plot .op[data-illegal="true"]').count(), 0);
  // The drawer opens over the page: the one-screen layout still scrolls nothing.
  const fits = await page.evaluate(() => {
    const r = document.getElementById('history').getBoundingClientRect();
    return document.scrollingElement.scrollHeight <= innerHeight && r.top >= 0 && r.bottom <= innerHeight;
  });
  assert.ok(fits, 'the History drawer fits the screen without scrolling');
  await page.screenshot({ path: join(artifacts, 'history-linearizable.png') });
  await page.keyboard.press('Escape');
  await page.getByRole('complementary', { name: 'History' }).waitFor({ state: 'hidden' });
});

test('a stale local read through a cut follower is marked not linearizable', async () => {
  const { leader } = await demo.cluster();
  const follower = (await demo.cluster()).nodes.map((n) => n.id).find((id) => id !== leader);
  const others = (await demo.cluster()).nodes.map((n) => n.id).filter((id) => id !== follower);
  assert.match(await request('Put', { key: 'stale', value: 'old' }), /^ok/);
  // The follower holds the old value before it is cut off.
  await until('the follower applied the old value', async () =>
    /^old \(node/.test(await request('Get', { key: 'stale', node: String(follower), read: 'local' })));
  for (const other of others) await setLink(follower, other, false);
  try {
    await until('the cut on the page', async () => (await page.locator('#ring [data-connected="false"]').count()) >= 2);
    assert.match(await request('Put', { key: 'stale', value: 'new' }), /^ok/);
    const read = await request('Get', { key: 'stale', node: String(follower), read: 'local' });
    assert.match(read, new RegExp(`^old \\(node ${follower}`), 'the cut follower still answers its old copy');
    await openHistory();
    const verdict = page.locator('#history-verdict');
    await until('a verdict', async () => (await verdict.getAttribute('data-verdict')) === 'not-linearizable');
    assert.match(await verdict.textContent(), /key stale .*put old, put new, get → old/);
    const illegal = page.locator('#history-plot .op[data-illegal="true"]');
    assert.equal(await illegal.count(), 3);
    for (let i = 0; i < 3; i++) assert.equal(await illegal.nth(i).getAttribute('data-key'), 'stale');
    const cuts = page.locator('#history-plot rect.fault[data-fault$=" cut"]');
    assert.ok(await cuts.count() >= 2, 'the cut links are drawn as bands');
    assert.match(await page.locator('#history-faults').textContent(), /cut/);
    await page.screenshot({ path: join(artifacts, 'history-stale-read.png') });
  } finally {
    for (const other of others) await setLink(follower, other, true);
  }
  assert.deepEqual(problems, []);
});

test('an exported trace carries the history: imported, it shows the same verdict', async () => {
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: 'Export trace', exact: true }).click(),
  ]);
  const file = join(artifacts, 'history-trace.bin');
  await download.saveAs(file);
  await closeHistory();
  await page.setInputFiles('#import', file);
  await until('trace shown', async () => / trace$/.test(await page.textContent('#timeline-info')));
  await sleep(300);
  await openHistory();
  const verdict = page.locator('#history-verdict');
  await until('a verdict', async () => (await verdict.getAttribute('data-verdict')) === 'not-linearizable');
  assert.match(await verdict.textContent(), /key stale .*put old, put new, get → old/);
  assert.equal(await page.locator('#history-plot .op[data-illegal="true"]').count(), 3);
  assert.ok(await page.locator('#history-plot rect.fault[data-fault$=" cut"]').count() >= 2);
  await page.getByRole('button', { name: 'Live', exact: true }).click();
  assert.deepEqual(problems, []);
});
