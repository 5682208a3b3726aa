// `npm run bench encryption` (not in the default set): what age encryption costs a one-shot WAL
// call, as CPU seconds (user + system, getrusage of the child, to the microsecond) per call, plain
// and encrypted interleaved in the same loop with a `node -e 0` floor, into the local directory
// store (no network to blur it). The segment is 16 MiB of pgbench-like records (walSegment of
// test/bench/lib.mjs, as wal.mjs uses), archived with --lz4 and uncompressed.
// On a shared machine one call's CPU time varies by more than the ~10 ms encryption adds, so each
// round's plain and encrypted calls are paired (run back to back, in alternating order) and the
// verdict reads the paired ratios: their median and interquartile range are reported beside the
// ratio of the medians, and the target is met only when both are within it.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { walSegment, withLongPageHeader } from './lib.mjs';

export const title = 'Client-side encryption (age): CPU per one-shot WAL call, plain vs encrypted';


// getrusage(RUSAGE_CHILDREN) through Python: microseconds, where GNU time's %U/%S are 10 ms ticks
// (two ticks were the whole difference being measured). Read before and after the call: `python3`
// may be a shim (pyenv's is a shell script) whose own children, waited for before it execs Python,
// stay in the total (~0.23 s per call here), which deflated every ratio this bench reported.
const RUSAGE = 'import resource,subprocess,sys\nc=lambda u:u.ru_utime+u.ru_stime\nb=c(resource.getrusage(resource.RUSAGE_CHILDREN))\n' +
  'r=subprocess.run(sys.argv[1:],stdout=subprocess.DEVNULL,stderr=subprocess.PIPE)\n' +
  'u=c(resource.getrusage(resource.RUSAGE_CHILDREN))-b\nsys.stderr.write(r.stderr.decode(errors="replace"))\nsys.stderr.write("\\n%d %.6f\\n" % (r.returncode, u))';

/** CPU seconds (user + system) of one command and its children; throws on failure. */
export function commandCpu(cmd, args, env) {
  const r = spawnSync('python3', ['-c', RUSAGE, cmd, ...args], { env, encoding: 'utf8' });
  const [code, secs] = r.stderr.trim().split('\n').at(-1).split(' ');
  if (r.status !== 0 || code !== '0') throw new Error(`${cmd} ${args.join(' ')} exited ${code}: ${r.stderr.slice(-600)}`);
  return Number(secs);
}

const sorted = (a) => [...a].sort((x, y) => x - y);
/** Linear-interpolated quantile `p` (0-1): quartiles of a 21-round sample need more than a rank. */
const quantile = (a, p) => {
  const s = sorted(a);
  const at = (s.length - 1) * p;
  const lo = Math.floor(at);
  return s[lo] + (s[Math.ceil(at)] - s[lo]) * (at - lo);
};
const median = (a) => quantile(a, 0.5);

export async function run({ root, rounds }) {
  const work = mkdtempSync(join(tmpdir(), 'bc-bench-enc-'));
  const bin = (b) => join(process.env.BENCH_BIN_DIR ?? join(root, 'bin'), b);
  const env = { PATH: process.env.PATH, HOME: process.env.HOME };
  const identity = join(work, 'identity.txt');
  const recipient = join(work, 'recipient.txt');
  execFileSync('age-keygen', ['-o', identity], { stdio: 'ignore' });
  writeFileSync(recipient, execFileSync('age-keygen', ['-y', identity]));
  // the directory store's root must exist, as a bucket must
  for (const d of ['plain/lz4', 'plain/none', 'enc/lz4', 'enc/none']) mkdirSync(join(work, d), { recursive: true });
  const segment = walSegment();
  // Segment numbers 0x10-0xFF of one log file: a 16 MiB segment's number stays below 0x100.
  const n = Math.min(Math.max(5, rounds), 240);
  // --lz4 (what the issue's target was first measured on) and uncompressed, where the cipher has
  // three times the bytes and nothing else to hide behind.
  const codecs = [['lz4', ['--lz4']], ['none', []]];
  const t = { floor: [] };
  for (const [c] of codecs) for (const k of ['archivePlain', 'archiveAge', 'restorePlain', 'restoreAge']) t[`${c}:${k}`] = [];
  try {
    for (let i = 0; i < n; i++) {
      const name = `0000000100000000000000${(0x10 + i).toString(16).toUpperCase().padStart(2, '0')}`;
      const src = join(work, `pg_wal-${i}`);
      mkdirSync(src);
      writeFileSync(join(src, name), withLongPageHeader(segment, name)); // restore refuses a segment without its own header
      t.floor.push(commandCpu(process.execPath, ['-e', '0'], env));
      // Each pair back to back, the encrypted call first in every other round: a load change
      // between the two then favours neither side over the whole run.
      const pair = (plainCall, ageCall) => {
        if (i % 2) ageCall();
        plainCall();
        if (!(i % 2)) ageCall();
      };
      for (const [c, flags] of codecs) {
        const plain = [`file://${join(work, 'plain', c)}`, 'srv'];
        const enc = [`file://${join(work, 'enc', c)}`, 'srv'];
        pair(
          () => t[`${c}:archivePlain`].push(commandCpu(bin('barman-cloud-wal-archive'), [...flags, ...plain, join(src, name)], env)),
          () => t[`${c}:archiveAge`].push(commandCpu(bin('barman-cloud-wal-archive'), [...flags, '--encryption-recipient-file', recipient, ...enc, join(src, name)], env)),
        );
        pair(
          () => t[`${c}:restorePlain`].push(commandCpu(bin('barman-cloud-wal-restore'), [...plain, name, join(work, `out-plain-${i}`)], env)),
          () => t[`${c}:restoreAge`].push(commandCpu(bin('barman-cloud-wal-restore'), ['--encryption-identity-file', identity, ...enc, name, join(work, `out-age-${i}`)], env)),
        );
        rmSync(join(work, `out-plain-${i}`));
        rmSync(join(work, `out-age-${i}`));
      }
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const s = (x) => `${(x * 1000).toFixed(1)} ms`;
  const ratios = (plainT, ageT) => ageT.map((a, i) => a / plainT[i]);
  const spread = (r) => ({ mid: median(r), q1: quantile(r, 0.25), q3: quantile(r, 0.75) });
  const verdict = (p, a) => ({ ofMedians: median(a) / median(p), paired: spread(ratios(p, a)) });
  const x = (r) => `${r.toFixed(2)}×`;
  const added = (p, a) => { const d = a.map((v, i) => v - p[i]); return `${median(d) >= 0 ? '+' : ''}${s(median(d))} (IQR ${s(quantile(d, 0.25))} to ${s(quantile(d, 0.75))})`; };
  const row = (what, p, a, v) => [what, s(median(p)), s(median(a)), x(v.ofMedians), `${x(v.paired.mid)} (IQR ${x(v.paired.q1)}–${x(v.paired.q3)})`, added(p, a)];
  const rows = [['`node -e 0` (floor)', s(median(t.floor)), '–', '–', '–', '–']];
  // Met only when both readings are within the target: the paired median alone would forgive a
  // skewed run, the ratio of medians alone a run whose pairs disagree with it.
  const targets = {};
  for (const [c, flags] of codecs) {
    for (const [cmd, k] of [['wal-archive', 'archive'], ['wal-restore', 'restore']]) {
      const p = t[`${c}:${k}Plain`], a = t[`${c}:${k}Age`];
      const v = verdict(p, a);
      rows.push(row(`\`${cmd}${k === 'archive' && flags.length ? ` ${flags.join(' ')}` : ''}\` (${c}) one-shot`, p, a, v));
      targets[`encrypted ${cmd} (${c}) CPU`] = {
        target: '≤ 1.10× plain',
        value: `${x(v.ofMedians)} of medians, ${x(v.paired.mid)} paired (IQR ${x(v.paired.q1)}–${x(v.paired.q3)})`,
        met: v.ofMedians <= 1.1 && v.paired.mid <= 1.1,
      };
    }
  }
  const notes = [
    `${n} rounds, each: the floor, then for --lz4 and for no compression plain and encrypted archive, then plain and encrypted restore of the same segment name (CPU user + system per call; the pair's order alternates by round).`,
    'Ratio of medians: median encrypted CPU over median plain CPU. Paired: the median of the rounds\' own encrypted/plain ratios, with their interquartile range; an IQR that straddles 1.10 means the run cannot tell the call from the target. Added: the median of the per-round differences.',
  ];
  return { headers: ['call', 'plain (CPU)', 'age-encrypted (CPU)', 'ratio of medians', 'paired ratio', 'added (paired)'], rows, notes, targets };
}
