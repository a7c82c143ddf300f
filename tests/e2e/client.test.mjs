// The Node.js client (web/omnikv.mjs) against a real demo: put, get, delete, scan, cas, batch
// and watch with the Rust CLI's flags and exit codes, the event stream, and a put that
// survives the leader being killed.
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
  return omnikvWithInput(null, ...args);
}

async function omnikvWithInput(input, ...args) {
  try {
    const child = run('node', [cli, '--demo', demo.url, ...args], { timeout: 60000 });
    if (input !== null) child.child.stdin.end(input);
    const { stdout, stderr } = await child;
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
  assert.equal(gone.code, 1, 'a missing key exits 1, as with the Rust CLI');
  assert.match(gone.stderr, /not found/);
  const bad = await omnikv('put', '', 'x');
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /key must not be empty/);
});

test('scan, cas, batch and watch, with the Rust CLI\'s flags and exit codes', async () => {
  for (const [k, v] of [['user/b', '2'], ['user/a', '1'], ['user/c', '3'], ['zz', '9']]) {
    assert.equal((await omnikv('put', k, v)).code, 0);
  }
  const page = await omnikv('scan', '--prefix', 'user/', '--limit', '2');
  assert.deepEqual(page, { code: 0, stdout: 'user/a\t1\nuser/b\t2', stderr: '' });
  assert.equal((await omnikv('scan', '--from', 'user/b', '--to', 'zz')).stdout, 'user/b\t2\nuser/c\t3');
  assert.equal((await omnikv('scan', '--prefix', 'nobody/')).code, 1);

  assert.deepEqual(await omnikv('cas', 'user/a', '10', '--expect', '1'), { code: 0, stdout: 'ok', stderr: '' });
  const stale = await omnikv('cas', 'user/a', '11', '--expect', '1');
  assert.equal(stale.code, 1);
  assert.match(stale.stderr, /comparison failed[\s\S]*user\/a\t10\t\(mod_index \d+\)/);
  assert.equal((await omnikv('cas', 'new', 'v', '--expect-absent')).code, 0);
  assert.equal((await omnikv('cas', 'new', '--delete', '--expect', 'v')).code, 0);
  assert.equal((await omnikv('cas', 'new', 'v')).code, 2, 'an expectation is required');

  const batch = '{"value":{"key":"user/b","value":"2"}}\n{"put":{"key":"user/b","value":"20"}}\n{"delete":{"key":"user/c"}}\n';
  assert.equal((await omnikvWithInput(batch, 'batch')).code, 0);
  assert.equal((await omnikvWithInput(batch, 'batch')).code, 1, 'its guard no longer holds');
  assert.equal((await omnikv('scan', '--prefix', 'user/')).stdout, 'user/a\t10\nuser/b\t20');

  const changes = await omnikv('watch', '--prefix', 'user/', '--from-index', '0', '--count', '3');
  assert.equal(changes.code, 0, changes.stderr);
  const lines = changes.stdout.split('\n').map((l) => l.split('\t').slice(1).join(' '));
  assert.deepEqual(lines, ['put user/b 2', 'put user/a 1', 'put user/c 3']);
});

test('events prints decoded events, one per line', async () => {
  const { nodes } = await demo.cluster();
  const res = await omnikv('events', String(nodes[0].id), '--count', '5');
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
