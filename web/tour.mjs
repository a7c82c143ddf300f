// `omnikv.mjs tour`: a narrated scenario on the real cluster. It writes, kills the leader,
// writes again, restarts the old leader, cuts links, and says at each step what it did and
// what the cluster did, with measured times, from the same wasm model the page draws. A step
// whose expectation fails ends the tour with its name and exit code 1, so the tour is also a
// smoke test of a running demo.
import { request, watchDemo } from './client.mjs';

/** Every step must finish within this long. */
const STEP_TIMEOUT_MS = 30000;
const POLL_MS = 25;
/** How long the tour waits for the cluster to be whole before it begins. */
const READY_TIMEOUT_MS = 10000;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

class StepFailed extends Error {}

/** Polls `check` until it returns something truthy; fails the step with `what` otherwise. */
async function until(what, check, timeoutMs = STEP_TIMEOUT_MS) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const got = await check();
    if (got) return got;
    if (Date.now() > end) throw new StepFailed(`${what} (waited ${timeoutMs} ms)`);
    await sleep(POLL_MS);
  }
}

export async function tour({ demo, slow, out = console.log }) {
  const { act, view, stop } = watchDemo(demo);
  const happenedSince = (ms) => view().happened.filter((h) => h.at_ms >= ms);
  let n = 0;
  const step = async (title, body) => {
    n += 1;
    out(`\n${n}. ${title}`);
    const started = Date.now();
    try {
      await body((line) => out(`   ${line}`), started);
    } catch (e) {
      throw new StepFailed(`step ${n} (${title}): ${e.message}`);
    }
    if (slow) await sleep(2000);
  };
  const write = async (key, value) => {
    const t0 = Date.now();
    const reply = await request(demo, 'put', key, value);
    if (!reply.ok) throw new Error(`put ${key}=${value} failed: ${reply.text}`);
    return { index: reply.index, ms: Date.now() - t0 };
  };
  const upNodes = () => view().nodes.filter((node) => node.state === 'up');
  const localValue = async (node, key) => {
    const reply = await request(demo, 'get', key, '', 'local', [{ id: node.id, ws: node.ws }]);
    return reply.ok ? reply.value : undefined;
  };
  try {
    await step('The cluster: every node up, one leader', async (say) => {
      const v = await until('a leader and every node up', () => {
        const now = view();
        const ready = now.leader != null && now.nodes.length > 0 && now.nodes.every((node) => node.state === 'up');
        return ready ? now : null;
      }, READY_TIMEOUT_MS);
      say(`${v.nodes.length} nodes up, node ${v.leader} leads; the cluster ${v.can_lose}`);
    });
    await step('Write a key', async (say) => {
      const { index, ms } = await write('tour', 'first');
      say(`put tour=first: acknowledged in ${ms} ms at log index ${index}`);
    });
    await step('See it on every replica', async (say, t0) => {
      for (const node of upNodes()) {
        await until(`node ${node.id} holds tour=first`, async () => (await localValue(node, 'tour')) === 'first');
        say(`node ${node.id} (${node.role}) serves tour=first from its own copy (${Date.now() - t0} ms)`);
      }
    });
    let oldLeader;
    await step('Kill the leader', async (say, t0) => {
      oldLeader = view().leader;
      await act(`/api/nodes/${oldLeader}/kill`);
      say(`SIGKILL node ${oldLeader}, the leader`);
      const next = await until('a new leader', () => {
        const l = view().leader;
        return l != null && l !== oldLeader ? l : null;
      });
      say(`node ${next} leads, ${Date.now() - t0} ms after the kill`);
      // The launcher's view of the processes is polled, so a quick election can be seen before
      // the kill is on the record: wait for both before telling the story.
      await until(`node ${oldLeader}'s kill on the record`,
        () => happenedSince(t0).some((h) => h.text.startsWith(`node ${oldLeader} `) && h.text.includes('went down')));
      for (const h of happenedSince(t0)) say(`what happened: ${h.text}`);
    });
    await step('Write again, without the old leader', async (say) => {
      const { index, ms } = await write('tour', 'second');
      say(`put tour=second: acknowledged in ${ms} ms at log index ${index}`);
    });
    await step('Restart the old leader', async (say, t0) => {
      await act(`/api/nodes/${oldLeader}/restart`);
      say(`node ${oldLeader} restarted on its data directory`);
      const node = await until(`node ${oldLeader} up`, () => upNodes().find((x) => x.id === oldLeader));
      await until(`node ${oldLeader} serves tour=second`, async () => (await localValue(node, 'tour')) === 'second');
      say(`node ${oldLeader} serves tour=second from its own copy ${Date.now() - t0} ms after the restart`);
      const caughtUp = happenedSince(t0).filter((h) => h.text.includes('caught up') || h.text.includes('snapshot'));
      for (const h of caughtUp) say(`what happened: ${h.text}`);
    });
    await step('Partial connectivity: the chained scenario, then heal', async (say, t0) => {
      await act('/api/scenarios/chained');
      say('cut the link between the leader and one follower (chained)');
      const { index, ms } = await write('tour', 'third');
      say(`put tour=third during the cut: acknowledged in ${ms} ms at log index ${index}; leader is node ${view().leader}`);
      await act('/api/scenarios/heal');
      say('every link restored');
      for (const h of happenedSince(t0)) say(`what happened: ${h.text}`);
    });
    await step('Every replica ends with the same table', async (say, t0) => {
      const same = await until('equal digests at one applied index', () => {
        const nodes = upNodes();
        const first = nodes[0];
        const equal = nodes.length === view().nodes.length
          && nodes.every((x) => x.digest && x.digest === first.digest && x.applied === first.applied
            && x.digest_at === x.applied);
        return equal ? nodes : null;
      });
      for (const node of same) say(`node ${node.id}: applied ${node.applied}, digest ${node.digest}`);
      say(`equal after ${Date.now() - t0} ms`);
    });
    out('\nThe tour is over: every step did what it should.');
  } finally {
    stop();
  }
}

export { StepFailed };
