// Two builds side by side on the sustained WAL shape of `npm run bench wal` (issue 14): 32 sequential
// --async archive calls (`--lz4 --max-parallel 8`) into the file store, then 32 prefetched restores
// (`--async --parallel 16`), alternating call by call between build A and build B (each with its own
// pg_wal, spool and store; A first on even segments, B first on odd ones), so that both see the
// same load at the same moments on a shared, noisy machine. Prints per build the worker's and the
// prefetcher's CPU per segment (/proc, 10 ms ticks), minor page faults per segment and peak RSS
// (VmHWM), and B/A ratios; every restored file is compared with the archived bytes. Not part of
// `npm run bench`.
//   node test/bench/sustained-ab.mjs A_BIN_DIR B_BIN_DIR [segments]
import { mkdirSync, mkdtempSync, writeFileSync, readFileSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { walSegment, withLongPageHeader } from './lib.mjs';
import { processCpuMs } from './servers.mjs';
const [binA, binB, countArg] = process.argv.slice(2);
const count = Number(countArg ?? 32);
const segName = (i) => `000000010000${(0x10 + Math.floor(i / 256)).toString(16).toUpperCase().padStart(4, '0')}000000${(i % 256).toString(16).toUpperCase().padStart(2, '0')}`;
const seg = walSegment();
const procStat = (pid) => { const f = readFileSync(`/proc/${pid}/stat`, 'utf8'); return f.slice(f.lastIndexOf(')') + 2).split(' ').map(Number); };
const hwm = (pid) => Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024;
const workerPid = (spool, side) => { const [id] = readdirSync(spool).filter((n) => n !== 'names'); return Number(readFileSync(join(spool, id, side, 'worker.pid'), 'utf8')); };
const sides = [binA, binB].map((bin, k) => {
  const work = mkdtempSync(join(tmpdir(), `bc-sustained-ab${k}-`));
  const store = join(work, 'store');
  mkdirSync(store);
  const pgwal = join(work, 'pg_wal');
  mkdirSync(join(pgwal, 'archive_status'), { recursive: true });
  return { bin, work, url: `file://${store}`, pgwal, spoolA: join(work, 'spool-a'), spoolR: join(work, 'spool-r'), dest: join(work, 'RECOVERYXLOG') };
});
const names = [];
for (let i = 0; i < count; i++) {
  const n = segName(i);
  withLongPageHeader(seg, n).writeBigUInt64LE(BigInt(i) * 0x100000n, 16);
  for (const s of sides) {
    writeFileSync(join(s.pgwal, n), seg);
    writeFileSync(join(s.pgwal, 'archive_status', `${n}.ready`), '');
  }
  names.push(n);
}
spawnSync('sync');
const run = (s, args) => {
  const r = spawnSync(args[0], args.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
  if (r.status !== 0) throw new Error(`${args.join(' ')}: ${r.status} ${r.stderr}`);
};
const out = { count, load0: readFileSync('/proc/loadavg', 'utf8').split(' ')[0] };
names.forEach((n, i) => {
  for (const s of i % 2 ? [...sides].reverse() : sides) {
    run(s, [join(s.bin, 'barman-cloud-wal-archive'), '--lz4', '--async', '--max-parallel', '8', '--spool-dir', s.spoolA, s.url, 'srv', join(s.pgwal, n)]);
    renameSync(join(s.pgwal, 'archive_status', `${n}.ready`), join(s.pgwal, 'archive_status', `${n}.done`));
  }
});
out.archive = sides.map((s) => { const pid = workerPid(s.spoolA, 'archive'); const r = { workerMs: +(processCpuMs([pid]) / count).toFixed(1), faults: Math.round(procStat(pid)[7] / count), hwmMB: +hwm(pid).toFixed(0) }; process.kill(pid, 'SIGTERM'); return r; });
names.forEach((n, i) => {
  for (const s of i % 2 ? [...sides].reverse() : sides) {
    run(s, [join(s.bin, 'barman-cloud-wal-restore'), '--async', '--parallel', '16', '--spool-dir', s.spoolR, s.url, 'srv', n, s.dest]);
    withLongPageHeader(seg, n).writeBigUInt64LE(BigInt(i) * 0x100000n, 16);
    if (!readFileSync(s.dest).equals(seg)) throw new Error(`restore ${n}: wrong bytes`);
  }
});
out.restore = sides.map((s) => { const pid = workerPid(s.spoolR, 'restore'); const r = { workerMs: +(processCpuMs([pid]) / count).toFixed(1), faults: Math.round(procStat(pid)[7] / count), hwmMB: +hwm(pid).toFixed(0) }; process.kill(pid, 'SIGTERM'); return r; });
for (const s of sides) rmSync(s.work, { recursive: true, force: true });
out.load1 = readFileSync('/proc/loadavg', 'utf8').split(' ')[0];
out.ratio = { archive: +(out.archive[1].workerMs / out.archive[0].workerMs).toFixed(3), restore: +(out.restore[1].workerMs / out.restore[0].workerMs).toFixed(3) };
console.log(JSON.stringify(out));
