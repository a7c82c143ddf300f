// The Node.js client (web/omnikv.mjs) against a real demo: put, get, delete, watch, and a put
// that survives the leader being killed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startDemo, repoRoot } from './demo.mjs';

const run = promisify(execFile);
const cli = join(repoRoot, 'web/omnikv.mjs');
let demo;

async function omnikv(...args) {
  try {
    const { stdout, stderr } = await run('node', [cli, '--demo', demo.url, ...args], { timeout: 60000 });
    return { code: 0, stdout: stdout.trim(), stderr: stderr.trim() };
  } catch (e) {
    return { code: e.code, stdout: (e.stdout || '').trim(), stderr: (e.stderr || '').trim() };
  }
}

before(async () => { demo = await startDemo(); });
after(async () => { await demo?.stop(); });

test('put, get, delete', async () => {
  const put = await omnikv('put', 'fruit', 'apple');
  assert.equal(put.code, 0, put.stderr);
  assert.match(put.stdout, /^ok \(node \d+, index \d+\)$/);
  assert.deepEqual(await omnikv('get', 'fruit'), { code: 0, stdout: 'apple', stderr: '' });
  // Like the get above, a local read goes to the leader first; the leader applied the put
  // before it answered that get, so its own copy must hold the value.
  assert.deepEqual(await omnikv('get', 'fruit', '--local'), { code: 0, stdout: 'apple', stderr: '' });
  assert.equal((await omnikv('delete', 'fruit')).code, 0);
  const gone = await omnikv('get', 'fruit');
  assert.equal(gone.code, 1, 'a missing key exits 1, as the Rust CLI does');
  assert.match(gone.stderr, /not found/);
  const bad = await omnikv('put', '', 'x');
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /key must not be empty/);
});

test('watch prints decoded events, one per line', async () => {
  const { nodes } = await demo.cluster();
  const res = await omnikv('watch', String(nodes[0].id), '--count', '5');
  assert.equal(res.code, 0, res.stderr);
  const lines = res.stdout.split('\n');
  assert.equal(lines.length, 5);
  assert.match(lines[0], new RegExp(`^node=${nodes[0].id} seq=\\d+ status role=`));
  for (const l of lines) assert.match(l, /^node=\d+ seq=\d+ \w+/);
});

test('a put succeeds after the leader is killed', async () => {
  const { leader } = await demo.cluster();
  const kill = await fetch(`${demo.url}/api/nodes/${leader}/kill`, { method: 'POST' });
  assert.equal((await kill.json()).ok, true);
  const put = await omnikv('put', 'after', 'failover');
  assert.equal(put.code, 0, put.stderr);
  assert.equal((await omnikv('get', 'after')).stdout, 'failover');
});
