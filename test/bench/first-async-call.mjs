// The first `wal-archive --async` call of a burst (no worker running) against a one-shot call, for
// two builds side by side (issue 14): each round a fresh spool and one .ready segment of the
// bench's kind, `--lz4` into the directory store, the four variants interleaved with their order
// alternating, each worker stopped before the next call. Prints median and range of wall times.
// Not part of `npm run bench`.
//   node test/bench/first-async-call.mjs A_BIN_DIR B_BIN_DIR [rounds]
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { median, walSegment, withLongPageHeader } from './lib.mjs';
const [binA, binB, roundsArg] = process.argv.slice(2);
const builds = { A: binA, B: binB };
const rounds = Number(roundsArg ?? 11);
const seg = walSegment();
const work = mkdtempSync(join(tmpdir(), 'bc-first-'));
const store = join(work, 'store'); mkdirSync(store);
const pgwal = join(work, 'pg_wal'); mkdirSync(join(pgwal, 'archive_status'), { recursive: true });
const t = { 'A async': [], 'B async': [], 'A one-shot': [], 'B one-shot': [] };
let k = 0;
const name = () => { k++; return `000000010000002${(k >> 8).toString(16).toUpperCase()}000000${(k & 255).toString(16).toUpperCase().padStart(2, '0')}`; };
for (let r = 0; r < rounds; r++) {
  const order = Object.keys(t); if (r % 2) order.reverse();
  for (const label of order) {
    const [b, mode] = label.split(' ');
    const n = name(); const p = join(pgwal, n);
    writeFileSync(p, withLongPageHeader(seg, n));
    writeFileSync(join(pgwal, 'archive_status', `${n}.ready`), '');
    const spool = join(work, `spool-${k}`);
    const args = mode === 'async' ? ['--lz4', '--async', '--spool-dir', spool, `file://${store}`, 'srv', p] : ['--lz4', `file://${store}`, 'srv', p];
    spawnSync('sync');
    const a = process.hrtime.bigint();
    const res = spawnSync(join(builds[b], 'barman-cloud-wal-archive'), args, { stdio: ['ignore', 'ignore', 'pipe'] });
    const ms = Number(process.hrtime.bigint() - a) / 1e6;
    if (res.status !== 0) throw new Error(`${label}: ${res.status} ${res.stderr}`);
    t[label].push(ms);
    rmSync(join(pgwal, 'archive_status', `${n}.ready`));
    if (mode === 'async') {
      // Once the worker holds its lock, stop it: no idle worker loads the next call.
      const dir = readdirSync(spool).filter((d) => d !== 'names').map((d) => join(spool, d, 'archive'))[0];
      for (let i = 0; i < 100; i++) { try { const pid = Number(readFileSync(join(dir, 'worker.pid'), 'utf8')); if (pid) { process.kill(pid, 'SIGTERM'); break; } } catch {} spawnSync('sleep', ['0.05']); }
    }
    spawnSync('sleep', ['0.3']);
  }
}
console.log(JSON.stringify({ rounds, load: readFileSync('/proc/loadavg', 'utf8').split(' ')[0], medians: Object.fromEntries(Object.entries(t).map(([k, v]) => [k, +median(v).toFixed(1)])), ranges: Object.fromEntries(Object.entries(t).map(([k, v]) => [k, [Math.round(Math.min(...v)), Math.round(Math.max(...v))]])) }));
rmSync(work, { recursive: true, force: true });
