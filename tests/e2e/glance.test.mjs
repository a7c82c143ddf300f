// The page tells what the cluster did, in Debian's Chromium against a real demo: a put draws
// replication arrows in the space-time diagram (an arrow opens in the inspector; one toggle shows
// or hides heartbeats), a leader kill is told in "What happened" with a landmark on the scrub bar
// that jumps there, and the replicas' table digests, which the nodes compute, differ while a
// node is behind and become equal once it has restarted and caught up. Screenshots go to
// ARTIFACTS_DIR for review.
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
  await until('every node drawn', async () => (await page.locator('.node[data-node-id]').count()) === 3);
  await until('a leader on the page', async () => (await page.locator('.node[data-leader="true"]').count()) === 1);
});
after(() => session.stop());

const shot = (name) => page.screenshot({ path: join(artifacts, `${name}.png`) });
const state = (id) => page.getAttribute(`.node[data-node-id="${id}"]`, 'data-state');

async function put(key, value) {
  await page.getByLabel('Key', { exact: true }).fill(key);
  await page.getByLabel('Value', { exact: true }).fill(value);
  await page.getByRole('button', { name: 'Put', exact: true }).click();
  await until(`put ${key} answered`, async () =>
    (await page.getAttribute('#result', 'data-status')) === 'ok'
      && !(await page.textContent('#result')).startsWith('sending'), 30000);
}

async function restart(id) {
  await page.getByRole('button', { name: `Restart node ${id}`, exact: true }).click();
  await until(`node ${id} up again`, async () => (await state(id)) === 'up', 30000);
}

test('a put draws replication arrows in the space-time diagram; one toggle shows heartbeats', async () => {
  const diagram = page.getByRole('group', { name: 'Space-time diagram', exact: true });
  assert.ok(await diagram.isVisible(), 'no space-time diagram on screen');
  const arrows = (cls) => page.locator(`#diagram .arrow[data-class="${cls}"]`);
  const { leader } = await demo.cluster();
  await put('arrow', 'yes');
  // The leader's accept to each follower, and their answers back, drawn send to receive.
  const fromLeader = arrows('replicate').and(page.locator(`[data-from="${leader}"][data-received="true"]`));
  await until('the leader\'s replication arrows', async () => (await fromLeader.count()) >= 2, 5000);
  const toLeader = arrows('replicate').and(page.locator(`[data-to="${leader}"]`));
  assert.ok(await toLeader.count() >= 1, 'no answer drawn back to the leader');
  assert.equal(await arrows('heartbeat').count(), 0, 'heartbeats drawn while their toggle is off');

  // An arrow is a message: clicking it inspects it.
  await page.getByRole('button', { name: 'Pause view', exact: true }).click();
  const arrow = fromLeader.first();
  const id = `${await arrow.getAttribute('data-from')}/${await arrow.getAttribute('data-msg-id')}`;
  await arrow.dispatchEvent('click');
  await until('the inspector shows the message', async () =>
    (await page.textContent('#inspector-title')) === `Message ${id}`);
  assert.match(await page.locator('#inspector-rows').innerText(), /kind\s+AcceptDecide|kind\s+Accepted/);
  await shot('diagram-after-put');
  await page.getByRole('button', { name: 'Close inspector', exact: true }).click();
  await page.getByRole('button', { name: 'Live', exact: true }).click();

  const toggle = page.getByRole('checkbox', { name: 'heartbeats' });
  await toggle.check();
  await until('heartbeat arrows shown', async () => (await arrows('heartbeat').count()) > 0, 5000);
  await toggle.uncheck();
  await until('heartbeat arrows hidden', async () => (await arrows('heartbeat').count()) === 0, 5000);
  assert.deepEqual(problems, []);
});

test('a leader kill is told in "What happened", with a landmark on the scrub bar that jumps there', async () => {
  const { leader } = await demo.cluster();
  const story = page.getByRole('list', { name: 'What happened', exact: true });
  await page.getByRole('button', { name: `Kill node ${leader}`, exact: true }).click();
  // "(leader)" when the kill is on the record before the survivors' election is seen.
  const down = story.getByRole('listitem').filter({ hasText: new RegExp(`node ${leader} (\\(leader\\) )?went down`) });
  await until('the kill told', async () => (await down.count()) === 1, 10000);
  const elected = story.getByRole('listitem').filter({ hasText: new RegExp(`node \\d+ leads, ballot .*, \\d+ ms after node ${leader} was lost`) });
  await until('the election told, with the time since the leader was lost', async () => (await elected.count()) === 1, 30000);

  const mark = page.locator('#scrub-marks .mark[data-kind="down"]');
  assert.equal(await mark.count(), 1);
  assert.match(await mark.getAttribute('aria-label'), new RegExp(`^Jump to \\d\\d:\\d\\d:\\d\\d\\.\\d{3}: node ${leader} (\\(leader\\) )?went down$`));
  const pos = await mark.getAttribute('data-pos');
  await shot('what-happened-after-leader-kill');
  // Dispatched, not clicked at its place: the election's mark, drawn a few pixels later on a
  // long recording, can cover it.
  await mark.dispatchEvent('click');
  await until('paused at the landmark', async () =>
    (await page.getAttribute('body', 'data-mode')) === 'paused'
      && (await page.getAttribute('#scrub', 'data-cursor')) === pos);
  // The picture there: the old leader down, its entry the current one in the list.
  assert.equal(await state(leader), 'down');
  assert.equal(await down.getAttribute('data-when'), 'current');
  // The page learns of the kill from the launcher's answer, which on a loaded machine can come
  // after the survivors' election: the election's entry is in the future of the landmark when
  // it was recorded after it, in its past otherwise.
  const leaderMarks = await page.locator('#scrub-marks .mark[data-kind="leader"]').evaluateAll(
    (marks) => marks.map((m) => Number(m.dataset.pos)));
  const electedPos = Math.max(...leaderMarks);
  assert.equal(await elected.getAttribute('data-when'), electedPos > Number(pos) ? 'future' : 'past');
  // The diagram's cursor stands at the landmark's time, not at the present (which the wait
  // moves on, however soon after the kill the landmark was recorded).
  await sleep(300);
  const cursorMs = Number(await page.getAttribute('#diagram-cursor', 'data-time-ms'));
  assert.ok(Date.now() - cursorMs > 200, `diagram cursor at ${cursorMs}, now ${Date.now()}`);
  await shot('jumped-to-leader-kill');

  await page.getByRole('button', { name: 'Live', exact: true }).click();
  await restart(leader);
  assert.deepEqual(problems, []);
});

test('table digests differ while a node is behind and become equal after its restart', async () => {
  const { nodes, leader } = await demo.cluster();
  const ids = nodes.map((n) => n.id);
  const lagger = ids.find((id) => id !== leader);
  const card = (id) => page.locator(`.card[data-node-id="${id}"]`);
  const digests = () => Promise.all(ids.map(async (id) => [
    await card(id).getAttribute('data-digest'), await card(id).getAttribute('data-digest-idx')]));
  const health = page.getByRole('status', { name: 'Health', exact: true });

  await until('everyone in step', async () => new Set((await digests()).map(String)).size === 1, 20000);
  // The previous test restarts a node: its digest can match at once (nothing was written
  // since), while the header counts it again only once the launcher's cluster view reports
  // its process running, which a fresh CI run saw arrive after the digests.
  await until('the header says one more node can be lost', async () =>
    (await health.innerText()) === 'can lose 1 more node', 20000);
  await page.getByRole('button', { name: `Kill node ${lagger}`, exact: true }).click();
  await until('killed node shown down', async () => (await state(lagger)) === 'down');
  await until('the header says no more node can be lost', async () =>
    (await health.innerText()) === 'can lose no more nodes');
  for (const k of ['a', 'b', 'c']) await put(`digest-${k}`, k);

  // Statuses and the text panels trail the replies by up to a tenth of a second each: wait for
  // the picture rather than assert on the first frame.
  const live = ids.filter((id) => id !== lagger);
  const behind = async () => {
    const [d1, d2, dl] = await Promise.all([...live, lagger].map((id) => card(id).getAttribute('data-digest')));
    const lag = Number(await card(lagger).getAttribute('data-lag'));
    return { agree: d1 === d2, differs: dl !== d1, lag };
  };
  await until('the live replicas agree, the stopped one differs and is shown behind', async () => {
    const b = await behind();
    return b.agree && b.differs && b.lag >= 3;
  }, 10000).catch(async (e) => { throw new Error(`${e.message}: ${JSON.stringify(await behind())}`); });
  await shot('digests-while-behind');

  await restart(lagger);
  await until('every digest equal, at the same applied index', async () => {
    const ds = await digests();
    return ds.every(([d, at]) => d && d !== '00000000' && d === ds[0][0] && at === ds[0][1]);
  }, 30000);
  await until('the lagger in step', async () => (await card(lagger).getAttribute('data-lag')) === '0');
  assert.equal(await health.innerText(), 'can lose 1 more node');
  await sleep(200);
  await shot('digests-equal-after-restart');
  assert.deepEqual(problems, []);
});
