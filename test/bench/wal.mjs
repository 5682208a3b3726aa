// WAL hot path, side by side with barman-cloud 3.4 on the same moto server and the same full
// 16 MiB segment: one-shot archive and restore latency, spool hits, sustained rates with parallel
// archiving and restore prefetch, and peak RSS.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, linkSync, mkdirSync, mkdtempSync, rmSync, writeFileSync, renameSync, readdirSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { compare, runOnce, median, fmt } from './lib.mjs';
import { startMoto } from './servers.mjs';

export const title = 'WAL archive and restore (16 MiB segment, moto on loopback)';

const SEG = 16 * 1024 * 1024;

/** A full segment that compresses like OLTP WAL (~2-3x): 8 KiB pages of tuple-like records. */
function walSegment() {
  const buf = Buffer.alloc(SEG);
  let off = 0;
  let n = 0;
  while (off < SEG) {
    const rec = Buffer.from(`|${(n++).toString(16).padStart(8, '0')}|aid=${Math.floor(Math.random() * 1e7)}|bid=${n % 50}|` +
      `abalance=${Math.floor(Math.random() * 1e5) - 5e4}|filler=${' '.repeat(20)}`);
    rec.copy(buf, off);
    off += rec.length;
    if (n % 16 === 0 && off + 32 < SEG) {
      randomBytes(32).copy(buf, off);
      off += 32;
    }
  }
  return buf;
}

const segName = (i) => `00000001000000${(0x10 + Math.floor(i / 256)).toString(16).toUpperCase().padStart(2, '0')}000000${(i % 256).toString(16).toUpperCase().padStart(2, '0')}`;

export async function run({ root, rounds }) {
  const moto = await startMoto();
  const work = mkdtempSync(join(tmpdir(), 'bc-bench-wal-'));
  // NODE_EXTRA_CA_CERTS (set on these machines to the system bundle) costs Node ~50 ms at every
  // start; PostgreSQL's environment does not have it, and Python ignores it: unset for everyone.
  // Our WAL commands run as PostgreSQL runs them: the executable itself (its shell front), node on PATH.
  const env = {
    ...process.env, PATH: `${dirname(process.execPath)}:${process.env.PATH}`,
    AWS_ACCESS_KEY_ID: 'x', AWS_SECRET_ACCESS_KEY: 'x', AWS_DEFAULT_REGION: 'us-east-1',
  };
  delete env.NODE_EXTRA_CA_CERTS;
  const ours = (bin) => join(root, 'bin', bin);
  const node = process.execPath;
  const haveBarman = existsSync('/usr/bin/barman-cloud-wal-archive');
  const segment = walSegment();
  const master = join(work, 'segment');
  writeFileSync(master, segment);
  const rows = [];
  const notes = [];
  try {
    const url = (bucket) => ['--endpoint-url', moto.url, `s3://${bucket}/bench`, 'srv'];
    for (const b of ['ours', 'theirs', 'par', 'pre']) {
      execFileSync(node, [ours('barman-cloud-check-wal-archive'), ...url(b)], { env });
    }
    // Every archive call gets a fresh segment name (same bytes, hard-linked), as PostgreSQL does.
    let seq = 0;
    const fresh = (dir) => {
      mkdirSync(dir, { recursive: true });
      const p = join(dir, segName(seq++));
      linkSync(master, p);
      return p;
    };
    const archiveDir = join(work, 'archive-src');
    const contenders = [
      { label: 'ours wal-archive (none)', bucket: 'ours', flags: [] },
      { label: 'ours wal-archive --lz4', bucket: 'ours', flags: ['--lz4'] },
      { label: 'ours wal-archive --zstd', bucket: 'ours', flags: ['--zstd'] },
    ].map((c) => {
      const ctx = { label: c.label, cmd: ours('barman-cloud-wal-archive'), args: [], env };
      ctx.before = () => (ctx.args = [...c.flags, ...url(c.bucket), fresh(archiveDir)]);
      return ctx;
    });
    if (haveBarman) {
      for (const [label, flags] of [['barman-cloud-wal-archive 3.4 (none)', []], ['barman-cloud-wal-archive 3.4 -z', ['-z']]]) {
        const ctx = { label, cmd: '/usr/bin/barman-cloud-wal-archive', args: [], env };
        ctx.before = () => (ctx.args = [...flags, ...url('theirs'), fresh(archiveDir)]);
        contenders.push(ctx);
      }
    }
    const archive = await compare(contenders, { rounds });

    // Restore of one archived segment (uncompressed and lz4 objects).
    const restoreSrc = fresh(join(work, 'restore-src'));
    const rname = restoreSrc.split('/').pop();
    execFileSync(ours('barman-cloud-wal-archive'), [...url('theirs'), restoreSrc], { env });
    const lz4Src = fresh(join(work, 'restore-src'));
    const lname = lz4Src.split('/').pop();
    execFileSync(ours('barman-cloud-wal-archive'), ['--lz4', ...url('ours'), lz4Src], { env });
    const dest = join(work, 'restored');
    const restoreContenders = [
      { label: 'ours wal-restore (none)', cmd: ours('barman-cloud-wal-restore'), args: [...url('theirs'), rname, dest], env },
      { label: 'ours wal-restore (lz4 object)', cmd: ours('barman-cloud-wal-restore'), args: [...url('ours'), lname, dest], env },
    ];
    if (haveBarman) {
      restoreContenders.push({ label: 'barman-cloud-wal-restore 3.4 (none)', cmd: '/usr/bin/barman-cloud-wal-restore', args: [...url('theirs'), rname, dest], env });
    }
    const restore = await compare(restoreContenders, { rounds });

    const all = [...archive, ...restore];
    const barmanArchive = archive.find((r) => r.label.includes('3.4 (none)'))?.median;
    const barmanRestore = restore.find((r) => r.label.includes('3.4'))?.median;
    for (const r of all) {
      const base = r.label.includes('restore') ? barmanRestore : barmanArchive;
      rows.push([r.label, fmt(r.median), fmt(r.p90), base ? `${(base / r.median).toFixed(2)}×` : 'n/a']);
    }

    // Sustained archiving as PostgreSQL drives it: one call per segment, oldest .ready first.
    const sustain = async (flags, count) => {
      const pgwal = join(work, `pg_wal-${flags.join('')}-${seq}`);
      mkdirSync(join(pgwal, 'archive_status'), { recursive: true });
      const names = [];
      for (let i = 0; i < count; i++) {
        const p = fresh(pgwal);
        names.push(p.split('/').pop());
        writeFileSync(join(pgwal, 'archive_status', `${names.at(-1)}.ready`), '');
      }
      const spool = join(work, `spool-${seq}`);
      const started = process.hrtime.bigint();
      const times = [];
      for (const n of names) {
        times.push(await runOnce(ours('barman-cloud-wal-archive'), [...flags, '--spool-dir', spool, ...url('par'), join(pgwal, n)], { env }));
        renameSync(join(pgwal, 'archive_status', `${n}.ready`), join(pgwal, 'archive_status', `${n}.done`));
      }
      const secs = Number(process.hrtime.bigint() - started) / 1e9;
      return { rate: count / secs, times };
    };
    const parCount = 96;
    const par = await sustain(['--lz4', '--max-parallel', '8'], parCount);
    const sorted = [...par.times].sort((a, b) => a - b);
    // Spool hits are the calls that did no upload: the fastest 7 of every 8.
    const hits = sorted.slice(0, Math.floor(parCount * 7 / 8));
    rows.push(['sustained archive, --lz4 --max-parallel 8 (PostgreSQL-like sequential calls)', `${par.rate.toFixed(1)} seg/s`, '', '']);
    rows.push(['archive call answered from the spool', fmt(median(hits)), '', '']);
    const serial = await sustain(['--lz4'], 24);
    rows.push(['sustained archive, --lz4, no parallelism', `${serial.rate.toFixed(1)} seg/s`, '', '']);

    // Sustained restore with prefetch: the segments archived above, requested in order.
    const pgwalNames = readdirSync(join(work, 'archive-src')).sort();
    const preNames = [];
    for (let i = 0; i < 96; i++) {
      const p = fresh(join(work, 'pre-src'));
      preNames.push(p.split('/').pop());
      execFileSync(ours('barman-cloud-wal-archive'), ['--lz4', ...url('pre'), p], { env });
    }
    const preSpool = join(work, 'prefetch-spool');
    const preTimes = [];
    const t0 = process.hrtime.bigint();
    for (const n of preNames) {
      preTimes.push(await runOnce(ours('barman-cloud-wal-restore'), ['--parallel', '16', '--spool-dir', preSpool, ...url('pre'), n, join(work, 'RECOVERYXLOG')], { env }));
    }
    const preRate = preNames.length / (Number(process.hrtime.bigint() - t0) / 1e9);
    const preHits = [...preTimes].sort((a, b) => a - b).slice(0, Math.floor(preNames.length * 15 / 16));
    rows.push(['sustained restore, --parallel 16 (sequential calls)', `${preRate.toFixed(1)} seg/s`, '', '']);
    rows.push(['restore call answered from the spool', fmt(median(preHits)), '', '']);
    void pgwalNames;

    // Peak RSS of one archive call (GNU time), uncompressed and lz4.
    for (const flags of [[], ['--lz4']]) {
      const r = spawnSync('/usr/bin/time', ['-f', '%M', ours('barman-cloud-wal-archive'), ...flags, ...url('ours'), fresh(archiveDir)], { env, encoding: 'utf8' });
      const kb = Number(r.stderr.trim().split('\n').at(-1));
      rows.push([`peak RSS, wal-archive ${flags.join(' ') || '(none)'}`, `${(kb / 1024).toFixed(0)} MB`, '', '']);
    }
    if (haveBarman) {
      const r = spawnSync('/usr/bin/time', ['-f', '%M', '/usr/bin/barman-cloud-wal-archive', ...url('theirs'), fresh(archiveDir)], { env, encoding: 'utf8' });
      rows.push(['peak RSS, barman-cloud-wal-archive 3.4', `${(Number(r.stderr.trim().split('\n').at(-1)) / 1024).toFixed(0)} MB`, '', '']);
    }
    const node0 = await compare([{ label: 'node -e 0', cmd: node, args: ['-e', '0'], env }], { rounds: 10 });
    notes.push(`Floor on this machine during the run: \`node -e 0\` median ${fmt(node0[0].median)}.`);
    notes.push('Targets (issue 3): one-shot archive ≤ 150 ms and ≥ 3.5× barman; restore ≤ 150 ms; spool hit ≤ 60 ms; ≥ 30 seg/s sustained archive (lz4, parallel) and restore (prefetch); peak RSS ≤ 100 MB.');
  } finally {
    moto.stop();
    rmSync(work, { recursive: true, force: true });
  }
  return { headers: ['what', 'median', 'p90', 'speed-up vs barman 3.4'], rows, notes };
}
