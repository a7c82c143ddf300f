// Starts a real `omnikv demo` on a free port with a fresh data dir, and stops it afterwards.
import { spawn } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir, homedir } from 'node:os';
import { basename, join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const targetDir = process.env.CARGO_TARGET_DIR || join(homedir(), '.cache/omnikv/target');
export const omnikvBin = process.env.OMNIKV_BIN || join(targetDir, 'debug/omnikv');
/** The page's files: web/, or OMNIKV_WEB_DIR (e.g. a build that keeps function names). */
export const webDir = process.env.OMNIKV_WEB_DIR || join(repoRoot, 'web');

async function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => ok(port)); });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until it returns a truthy value or `timeoutMs` passes. */
export async function until(what, check, timeoutMs = 20000) {
  const end = Date.now() + timeoutMs;
  let last;
  while (Date.now() < end) {
    try { last = await check(); if (last) return last; } catch (e) { last = e; }
    await sleep(200);
  }
  throw new Error(`timed out waiting for ${what} (last: ${last})`);
}

/**
 * Copies the nodes' logs and the launcher's output into ARTIFACTS_DIR/demo-logs/, so that a
 * failure seen only in a full run can be read afterwards (the data directory itself goes).
 */
function keepLogs(dataDir, output) {
  if (!process.env.ARTIFACTS_DIR) return;
  const dir = join(process.env.ARTIFACTS_DIR, 'demo-logs', basename(dataDir));
  mkdirSync(dir, { recursive: true });
  for (const f of readdirSync(dataDir).filter((n) => n.endsWith('.log'))) {
    cpSync(join(dataDir, f), join(dir, f));
  }
  writeFileSync(join(dir, 'launcher.log'), output);
}

/** `nodes`: cluster size (the demo's default, 3, when not given). */
export async function startDemo({ nodes } = {}) {
  const port = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), 'omnikv-e2e-'));
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(omnikvBin, ['demo', '--http', `127.0.0.1:${port}`, '--data-dir', dataDir,
    '--fresh', '--web-dir', webDir, ...(nodes ? ['--nodes', String(nodes)] : [])], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (d) => { output = (output + d).slice(-20000); };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const cluster = async () => (await fetch(`${url}/api/cluster`)).json();
  await until('a leader', async () => {
    if (child.exitCode !== null) throw new Error(`demo exited: ${output}`);
    const c = await cluster();
    return c.leader != null && c.nodes.every((n) => n.state === 'up');
  }, 60000);
  return {
    url, dataDir, cluster, output: () => output,
    async stop() {
      child.kill('SIGTERM');
      await Promise.race([new Promise((r) => child.once('exit', r)), sleep(5000)]);
      if (child.exitCode === null) child.kill('SIGKILL');
      keepLogs(dataDir, output);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
