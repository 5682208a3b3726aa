// `npm run bench encryption` (not in the default set): what age encryption costs a one-shot WAL
// call, as CPU seconds (user + system, from GNU time) per call, plain and encrypted interleaved in
// the same loop with a `node -e 0` floor (getrusage of the child, to the microsecond), into the local directory store (no network to blur it).
// The segment is 16 MiB of pgbench-like records (walSegment of test/bench/lib.mjs, as wal.mjs uses), --lz4.
import { execFileSync, spawnSync } from 'node:child_process';
import { linkSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { walSegment } from './lib.mjs';

export const title = 'Client-side encryption (age): CPU per one-shot WAL call, plain vs encrypted';


// getrusage(RUSAGE_CHILDREN) through Python: microseconds, where GNU time's %U/%S are 10 ms ticks
// (two ticks were the whole difference being measured).
const RUSAGE = 'import resource,subprocess,sys\nr=subprocess.run(sys.argv[1:],stdout=subprocess.DEVNULL,stderr=subprocess.PIPE)\n' +
  'u=resource.getrusage(resource.RUSAGE_CHILDREN)\nsys.stderr.write(r.stderr.decode(errors="replace"))\nsys.stderr.write("\\n%d %.6f\\n" % (r.returncode, u.ru_utime + u.ru_stime))';

/** CPU seconds (user + system) of one command and its children; throws on failure. */
function cpu(cmd, args, env) {
  const r = spawnSync('python3', ['-c', RUSAGE, cmd, ...args], { env, encoding: 'utf8' });
  const [code, secs] = r.stderr.trim().split('\n').at(-1).split(' ');
  if (r.status !== 0 || code !== '0') throw new Error(`${cmd} ${args.join(' ')} exited ${code}: ${r.stderr.slice(-600)}`);
  return Number(secs);
}

const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];

export async function run({ root, rounds }) {
  const work = mkdtempSync(join(tmpdir(), 'bc-bench-enc-'));
  const bin = (b) => join(process.env.BENCH_BIN_DIR ?? join(root, 'bin'), b);
  const env = { PATH: process.env.PATH, HOME: process.env.HOME };
  const identity = join(work, 'identity.txt');
  const recipient = join(work, 'recipient.txt');
  execFileSync('age-keygen', ['-o', identity], { stdio: 'ignore' });
  writeFileSync(recipient, execFileSync('age-keygen', ['-y', identity]));
  mkdirSync(join(work, 'plain')); // the directory store's root must exist, as a bucket must
  mkdirSync(join(work, 'enc'));
  const master = join(work, 'segment');
  writeFileSync(master, walSegment());
  const n = Math.max(3, Math.min(rounds, 15));
  const t = { floor: [], archivePlain: [], archiveAge: [], restorePlain: [], restoreAge: [] };
  try {
    for (let i = 0; i < n; i++) {
      const name = `0000000100000000000000${(0x10 + i).toString(16).toUpperCase().padStart(2, '0')}`;
      const src = join(work, `pg_wal-${i}`);
      mkdirSync(src);
      linkSync(master, join(src, name));
      const plain = [`file://${join(work, 'plain')}`, 'srv'];
      const enc = [`file://${join(work, 'enc')}`, 'srv'];
      t.floor.push(cpu(process.execPath, ['-e', '0'], env));
      t.archivePlain.push(cpu(bin('barman-cloud-wal-archive'), ['--lz4', ...plain, join(src, name)], env));
      t.archiveAge.push(cpu(bin('barman-cloud-wal-archive'), ['--lz4', '--encryption-recipient-file', recipient, ...enc, join(src, name)], env));
      t.restorePlain.push(cpu(bin('barman-cloud-wal-restore'), [...plain, name, join(work, `out-plain-${i}`)], env));
      t.restoreAge.push(cpu(bin('barman-cloud-wal-restore'), ['--encryption-identity-file', identity, ...enc, name, join(work, `out-age-${i}`)], env));
      rmSync(join(work, `out-plain-${i}`));
      rmSync(join(work, `out-age-${i}`));
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const m = Object.fromEntries(Object.entries(t).map(([k, v]) => [k, median(v)]));
  const s = (x) => `${(x * 1000).toFixed(1)} ms`;
  const row = (what, p, a) => [what, s(p), s(a), `${(a / p).toFixed(2)}×`, `${a >= p ? '+' : ''}${((a - p) * 1000).toFixed(1)} ms`];
  const rows = [
    ['`node -e 0` (floor)', s(m.floor), '–', '–', '–'],
    row('`wal-archive --lz4` one-shot', m.archivePlain, m.archiveAge),
    row('`wal-restore` one-shot', m.restorePlain, m.restoreAge),
  ];
  const targets = {
    'encrypted wal-archive CPU': { target: '≤ 1.10× plain', value: `${(m.archiveAge / m.archivePlain).toFixed(2)}×`, met: m.archiveAge <= 1.1 * m.archivePlain },
    'encrypted wal-restore CPU': { target: '≤ 1.10× plain', value: `${(m.restoreAge / m.restorePlain).toFixed(2)}×`, met: m.restoreAge <= 1.1 * m.restorePlain },
  };
  const notes = [`${n} rounds, each: the floor, then plain and encrypted archive, then plain and encrypted restore of the same segment name (medians of CPU user + system per call).`];
  return { headers: ['call', 'plain (CPU)', 'age-encrypted (CPU)', 'ratio', 'added'], rows, notes, targets };
}
