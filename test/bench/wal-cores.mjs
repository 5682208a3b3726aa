// How the sustained WAL rates of `npm run bench wal` scale with cores (issue 14: "what would meet
// it"), on the directory store: ours (sequential --lz4 --async --max-parallel 8 archive calls, then
// sequential --async --parallel 16 restore calls) and the same-work floors (xargs -P 8 of `lz4 -1` +
// sync, xargs -P 16 of `lz4 -d` + sync, the very shell text of wal.mjs's rows), each pinned to one
// core and to all cores. Pinning: this process's affinity (taskset -a -p) before each contender,
// which every child inherits, the --async worker and the prefetcher too. Runs interleave the core
// sets and the contenders, the order rotating; each run starts from fresh directories and stops
// the worker it started. Prints every run (with the CPU others used meanwhile, from /proc/stat),
// then medians, the calls' own times and the all-cores / one-core factor. Not part of `npm run bench`.
//   node test/bench/wal-cores.mjs [segments=64] [runs=3] [bin dir=bin]
import { execFileSync } from 'node:child_process';
import { cpus } from 'node:os';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { median, percentile, runOnce, SEG, walSegment, withLongPageHeader } from './lib.mjs';
import { processCpuMs } from './servers.mjs';
import { bareParallel, startStores } from './stores.mjs';

const count = Number(process.argv[2] ?? 64);
const runs = Number(process.argv[3] ?? 3);
const bin = resolve(process.argv[4] ?? join(import.meta.dirname, '..', '..', 'bin'));
const all = `0-${cpus().length - 1}`;
const coreSets = ['0', all];
const segName = (i) => `000000010000${(0x10 + Math.floor(i / 256)).toString(16).toUpperCase().padStart(4, '0')}000000${(i % 256).toString(16).toUpperCase().padStart(2, '0')}`;
const pin = (set) => execFileSync('taskset', ['-a', '-p', '-c', set, String(process.pid)], { stdio: 'ignore' });
const load = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
/** Busy CPU of the whole machine (no idle, no iowait), and of this process with its reaped children (ms). */
const busyMs = () => readFileSync('/proc/stat', 'utf8').split('\n')[0].split(/\s+/).slice(1, 9).reduce((a, x, i) => a + (i === 3 || i === 4 ? 0 : Number(x)), 0) * 10;
const selfMs = () => {
  const f = readFileSync('/proc/self/stat', 'utf8');
  const a = f.slice(f.lastIndexOf(')') + 2).split(' ').map(Number);
  return (a[11] + a[12] + a[13] + a[14]) * 10;
};

const work = mkdtempSync(join(tmpdir(), 'bc-wal-cores-'));
const { stores, stopAll } = await startStores(work, ['file']);
const [store] = stores;
const seg = walSegment();
const master = join(work, 'segment');
writeFileSync(master, seg);
let serial = 0;
let workerTotal = 0;

/** Sequential calls as PostgreSQL makes them; rate overall and after the first call; the worker's CPU per segment. */
async function ours(dir) {
  const pgwal = join(dir, 'pg_wal');
  mkdirSync(join(pgwal, 'archive_status'), { recursive: true });
  const names = [];
  for (let i = 0; i < count; i++) {
    const n = segName(serial++);
    writeFileSync(join(pgwal, n), withLongPageHeader(seg, n));
    writeFileSync(join(pgwal, 'archive_status', `${n}.ready`), '');
    names.push(n);
  }
  execFileSync('sync');
  const url = `file://${join(dir, 'store')}`;
  mkdirSync(join(dir, 'store'));
  const timed = async (each) => {
    const t0 = process.hrtime.bigint();
    const ends = [];
    for (const n of names) {
      await each(n);
      ends.push(process.hrtime.bigint());
    }
    const calls = ends.slice(1).map((e, i) => Number(e - ends[i]) / 1e6);
    return { rate: count / (Number(ends.at(-1) - t0) / 1e9), afterFirst: (count - 1) / (Number(ends.at(-1) - ends[0]) / 1e9), callMs: median(calls), callP90: percentile(calls, 90) };
  };
  const stopWorker = (spool, side) => {
    const [id] = readdirSync(spool).filter((n) => n !== 'names');
    const pid = Number(readFileSync(join(spool, id, side, 'worker.pid'), 'utf8'));
    const ms = processCpuMs([pid]) / count;
    process.kill(pid, 'SIGTERM');
    return ms;
  };
  const a = await timed(async (n) => {
    await runOnce(join(bin, 'barman-cloud-wal-archive'), ['--lz4', '--async', '--max-parallel', '8', '--spool-dir', join(dir, 'spool-a'), url, 'srv', join(pgwal, n)], { env: store.env });
    renameSync(join(pgwal, 'archive_status', `${n}.ready`), join(pgwal, 'archive_status', `${n}.done`));
  });
  a.workerMs = stopWorker(join(dir, 'spool-a'), 'archive');
  workerTotal += a.workerMs * count;
  const dest = join(dir, 'restored', 'RECOVERYXLOG');
  mkdirSync(join(dir, 'restored'));
  const r = await timed((n) => runOnce(join(bin, 'barman-cloud-wal-restore'), ['--async', '--parallel', '16', '--spool-dir', join(dir, 'spool-r'), url, 'srv', n, dest], { env: store.env }));
  r.workerMs = stopWorker(join(dir, 'spool-r'), 'restore');
  workerTotal += r.workerMs * count;
  return { archive: a, restore: r };
}

/** The same-work floors of wal.mjs: `lz4 -1` + sync ×8 into the store, then `lz4 -d` + sync ×16 out of it. */
async function floors(dir) {
  const tag = serial++;
  const key = (i) => `cores-${tag}/${i}.lz4`;
  let ms = await bareParallel(store.lz4PutShell('bare'), Array.from({ length: count }, (_, i) => [master, key(i)]), 8, store.env);
  const archive = { rate: count / (ms / 1000) };
  mkdirSync(join(dir, 'out'));
  const outs = Array.from({ length: count }, (_, i) => join(dir, 'out', String(i)));
  ms = await bareParallel(store.lz4GetShell('bare'), outs.map((o, i) => [o, key(i)]), 16, store.env);
  if (outs.some((o) => statSync(o).size !== SEG)) throw new Error('a decoded copy is not a whole segment');
  return { archive, restore: { rate: count / (ms / 1000) } };
}

const results = [];
const started = new Date();
const load0 = load();
try {
  for (let run = 0; run < runs; run++) {
    const order = [];
    for (const set of run % 2 ? [...coreSets].reverse() : coreSets) for (const who of run % 2 ? ['floors', 'ours'] : ['ours', 'floors']) order.push([set, who]);
    for (const [set, who] of order) {
      const dir = mkdtempSync(join(work, 'run-'));
      pin(set);
      workerTotal = 0;
      const [busy0, self0, t0] = [busyMs(), selfMs(), Date.now()];
      const r = await (who === 'ours' ? ours(dir) : floors(dir));
      // What else ran meanwhile (other jobs, kernel writeback), as a share of one core.
      r.others = +((busyMs() - busy0 - (selfMs() - self0) - workerTotal) / (Date.now() - t0)).toFixed(2);
      pin(all);
      rmSync(dir, { recursive: true, force: true });
      rmSync(join(store.dir, 'bare'), { recursive: true, force: true });
      results.push({ run, set, who, ...r, load: load() });
      process.stdout.write(`${JSON.stringify(results.at(-1))}\n`);
    }
  }
} finally {
  pin(all);
  await stopAll();
  rmSync(work, { recursive: true, force: true });
}
const f = (x) => x.toFixed(1);
process.stdout.write(`\n${count} segments, ${runs} runs, ${started.toISOString().slice(11, 16)}–${new Date().toISOString().slice(11, 16)} UTC, load ${load0} → ${load()}; CPU of others (share of a core) per contender: median ${f(median(results.map((x) => x.others)))}, max ${f(Math.max(...results.map((x) => x.others)))}\n`);
for (const who of ['ours', 'floors']) {
  for (const dir of ['archive', 'restore']) {
    const m = (set, k) => median(results.filter((x) => x.who === who && x.set === set).map((x) => x[dir][k]));
    const line = coreSets.map((set) => `cores ${set}: ${f(m(set, 'rate'))} seg/s${who === 'ours' ? ` (${f(m(set, 'afterFirst'))} after the first call; calls 2..N median ${f(m(set, 'callMs'))} ms, p90 ${f(m(set, 'callP90'))}; worker ${f(m(set, 'workerMs'))} ms/seg)` : ''}`).join('; ');
    const factor = m(all, 'rate') / m('0', 'rate');
    const factor2 = who === 'ours' ? `, after the first call ×${(m(all, 'afterFirst') / m('0', 'afterFirst')).toFixed(2)}` : '';
    process.stdout.write(`${who} ${dir}: ${line}; ×${factor.toFixed(2)} from 1 core to ${cpus().length}${factor2}\n`);
  }
}
