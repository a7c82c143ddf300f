// `omnikv.mjs top`: a live terminal dashboard of a running demo, drawn from the same wasm model
// the page draws (every node's event stream fed to it): one row per node, the links, messages
// per second by kind, the last client requests and what happened. Fits 80x24 and redraws in
// place a few times a second; when stdout is not a terminal it appends plain lines instead.
// Keys: k N kill, r N restart, p N pause, u N resume, q quit.
import { watchDemo } from './client.mjs';

/** Redraws per second at most. */
const REDRAW_PER_S = 4;
/** Plain-mode summary line period. */
const PLAIN_STATUS_MS = 2000;
const WIDTH = 80;

const fit = (s) => (s.length > WIDTH ? `${s.slice(0, WIDTH - 1)}~` : s);
const pad = (s, n) => String(s).padEnd(n).slice(0, n);

/** The dashboard as at most 24 lines of at most 80 columns. */
export function frame(v, note) {
  const lines = [];
  lines.push(fit(`OmniKV top: leader ${v.leader ?? '-'}, ${v.can_lose}   (k N kill, r N restart, p N pause, u N resume, q quit)`));
  lines.push(`${pad('node', 5)}${pad('state', 11)}${pad('role', 10)}${pad('ballot', 11)}${pad('acc', 7)}${pad('dec', 7)}${pad('app', 7)}${pad('cmp', 7)}${pad('lag', 5)}digest`);
  for (const n of v.nodes.slice(0, 5)) {
    const idx = [n.accepted, n.decided, n.applied, n.compacted].map((i) => pad(i, 7)).join('');
    lines.push(fit(`${pad(n.id, 5)}${pad(n.state, 11)}${pad(n.role, 10)}${pad(n.ballot, 11)}${idx}${pad(n.lag ?? '-', 5)}${n.digest ?? '-'}`));
  }
  const cut = v.links.filter((l) => !l.connected).map((l) => `${l.a}-${l.b}`);
  const held = v.links.flatMap((l) => l.held.map((h) => `${h.from}->${h.to}(${h.waiting})`));
  lines.push(fit(`links: ${cut.length ? `cut ${cut.join(' ')}` : 'all connected'}${held.length ? `; held ${held.join(' ')}` : ''}`));
  const rates = v.messages_per_s.map(([kind, n]) => `${kind} ${n}`);
  lines.push(fit(`messages/s: ${rates.length ? rates.join(', ') : '-'}`));
  lines.push('last requests:');
  for (const r of v.requests.slice(-4)) lines.push(fit(`  ${r}`));
  lines.push('what happened:');
  for (const h of v.happened.slice(-(22 - lines.length))) lines.push(fit(`  ${h.time} ${h.text}`));
  if (note) lines.push(fit(note));
  return lines.slice(0, 24);
}

/** Runs until `q` (or for `seconds`, when given). */
export async function top({ demo, seconds, stdout = process.stdout, stdin = process.stdin }) {
  const { act, view, stop } = watchDemo(demo);
  let note = '';
  let done;
  const finished = new Promise((r) => { done = r; });
  if (seconds) setTimeout(() => done(), seconds * 1000);
  const tty = stdout.isTTY;
  let timer;
  if (tty) {
    stdout.write('\x1b[?25l\x1b[2J');
    timer = setInterval(() => {
      const lines = frame(view(), note);
      // Home, each line cleared to its end, then everything below cleared: no blank flash.
      stdout.write(`\x1b[H${lines.map((l) => `${l}\x1b[K`).join('\n')}\x1b[J`);
    }, 1000 / REDRAW_PER_S);
  } else {
    let told = 0;
    timer = setInterval(() => {
      const v = view();
      for (const h of v.happened.slice(told)) stdout.write(`${h.time} ${h.text}\n`);
      told = v.happened.length;
      const rows = v.nodes.map((n) => `${n.id}:${n.state}/${n.role}/app=${n.applied}`).join(' ');
      stdout.write(`status leader=${v.leader ?? '-'} ${rows}\n`);
    }, PLAIN_STATUS_MS);
  }
  if (stdin.isTTY) {
    stdin.setRawMode(true);
    stdin.resume();
    let pending = '';
    stdin.on('data', async (buf) => {
      const key = buf.toString();
      if (key === 'q' || key === '\u0003') { done(); return; }
      if ('krpu'.includes(key)) { pending = key; note = `${key}: which node?`; return; }
      if (pending && /^[0-9]$/.test(key)) {
        const action = { k: 'kill', r: 'restart', p: 'pause', u: 'resume' }[pending];
        pending = '';
        try {
          note = (await act(`/api/nodes/${key}/${action}`)).message;
        } catch (e) {
          note = `${action} ${key}: ${e.message}`;
        }
      }
    });
  }
  await finished;
  clearInterval(timer);
  stop();
  if (tty) stdout.write('\x1b[?25h\n');
  if (stdin.isTTY) { stdin.setRawMode(false); stdin.pause(); }
}
