// One-shot wal-archive of two (or more) builds, interleaved, on moto and Ceph RGW started here:
// none, --lz4, and both with --encryption-recipient-file (age), beside a floor (node -e 0, bare
// curl --aws-sigv4 UNSIGNED-PAYLOAD PUTs of the same bytes). Per call: wall time, client CPU
// (user + sys of the process tree, getrusage through Python, to the microsecond) and the server's
// CPU (its process group, from /proc). Prints medians, paired ratios of each build against the
// first, and each build's paired encrypted/plain ratio with its interquartile range.
//
//   BUILDS='{"main":"/tmp/main-copy/bin","branch":"bin"}' ROUNDS=15 STORES=moto,rgw \
//     VARIANTS=none,lz4,none+age,lz4+age node test/bench/wal-builds.mjs
//   COMMAND=restore BUILDS=… STORES=file,moto VARIANTS=none,lz4 node test/bench/wal-builds.mjs
//
// ENV_<build>='{"VAR":"value"}' adds environment variables to one build's calls.
//
// COMMAND=restore measures wal-restore instead: each variant's segment is archived once by the
// first build, then every call restores it into a fresh <dir>/pg_wal/RECOVERYXLOG, as PostgreSQL
// names it (removed after the call); the floor is node -e 0 and a bare curl GET (cp on the file
// store) of the same object. Each restore row also reports "+pg": the call plus what PostgreSQL
// then does to the same file before replaying it (durable_rename: fsync of the file, rename, fsync
// of pg_wal; timed here after the call), so that a sync left to PostgreSQL is not counted as saved.
import { spawnSync, execFileSync } from 'node:child_process';
import { closeSync, fsyncSync, mkdirSync, mkdtempSync, openSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
const root = join(import.meta.dirname, '..', '..');
const { startStores } = await import(join(root, 'test/bench/stores.mjs'));
const { walSegment, withLongPageHeader } = await import(join(root, 'test/bench/lib.mjs'));
const work = mkdtempSync(join(tmpdir(), 'sign-ab-'));
const { stores, stopAll } = await startStores(work, (process.env.STORES ?? 'moto,rgw').split(','));
const rounds = Number(process.env.ROUNDS ?? 7);
const builds = JSON.parse(process.env.BUILDS ?? JSON.stringify({ this: join(root, 'bin') }));
const variants = (process.env.VARIANTS ?? 'none,lz4,none+age,lz4+age').split(',');
const restoreMode = process.env.COMMAND === 'restore';
execFileSync('age-keygen', ['-o', join(work, 'id')], { stdio: 'ignore' });
writeFileSync(join(work, 'rcpt'), execFileSync('age-keygen', ['-y', join(work, 'id')]));
const seg = walSegment();
const master = join(work, 'segment');
writeFileSync(master, seg);
execFileSync('lz4', ['-q', '-1', '-f', master, master + '.lz4']);
// CPU read before and after the call: a `python3` shim's own children (pyenv's) stay in RUSAGE_CHILDREN.
const PY = 'import resource,subprocess,sys,time\nc=lambda u:u.ru_utime+u.ru_stime\nb=c(resource.getrusage(resource.RUSAGE_CHILDREN))\nt=time.monotonic()\nr=subprocess.run(sys.argv[1:],stdout=subprocess.DEVNULL,stderr=subprocess.PIPE)\nw=time.monotonic()-t\nu=c(resource.getrusage(resource.RUSAGE_CHILDREN))-b\nsys.stderr.write(r.stderr.decode(errors="replace"))\nsys.stderr.write("\\n%d %.6f %.6f\\n" % (r.returncode, w, u))';
function run(cmd, args, env, store) {
  const s0 = store.serverCpu?.() ?? NaN;
  const r = spawnSync('python3', ['-c', PY, cmd, ...args], { env, encoding: 'utf8' });
  const s1 = store.serverCpu?.() ?? NaN;
  const [code, wall, cpu] = r.stderr.trim().split('\n').at(-1).split(' ');
  if (code !== '0') throw new Error(`${cmd} ${args.join(' ')}: ${code} ${r.stderr.slice(-400)}`);
  return { wall: wall * 1000, cpu: cpu * 1000, srv: (s1 - s0) * 1000 };
}
const med = (a) => { const s = [...a].sort((x, y) => x - y); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
let seq = 0;
const fresh = () => {
  const dir = join(work, `src-${seq}`); mkdirSync(dir);
  const name = `00000001000000${(0x10 + (seq >> 8)).toString(16).toUpperCase().padStart(2, '0')}000000${(seq % 256).toString(16).toUpperCase().padStart(2, '0')}`;
  seq++;
  const p = join(dir, name);
  writeFileSync(p, withLongPageHeader(seg, name)); // restore refuses a segment without its own header
  return p;
};
let pgSeq = 0;
/** A fresh pg_wal/RECOVERYXLOG path, as PostgreSQL passes %p. */
const recoveryXlog = () => {
  const dir = join(work, 'pgdata', String(pgSeq++), 'pg_wal');
  mkdirSync(dir, { recursive: true });
  return join(dir, 'RECOVERYXLOG');
};
/** What PostgreSQL does with a restored segment before replay (KeepFileRestoredFromArchive → durable_rename), timed in ms. */
const postgresKeeps = (dest) => {
  const t = process.hrtime.bigint();
  const fd = openSync(dest, 'r+'); fsyncSync(fd); closeSync(fd);
  const kept = join(dest, '..', '000000010000000000000001');
  renameSync(dest, kept);
  const d = openSync(join(dest, '..'), 'r'); fsyncSync(d); closeSync(d);
  return Number(process.hrtime.bigint() - t) / 1e6;
};
/** `f` given a fresh RECOVERYXLOG path; that data directory is removed after. */
const inRecoveryXlog = (f) => {
  const dest = recoveryXlog();
  try {
    return f(dest);
  } finally {
    rmSync(join(dest, '..', '..'), { recursive: true, force: true });
  }
};
/** One restore call into a fresh RECOVERYXLOG; `pg` adds PostgreSQL's durable_rename after it. */
const restoreCall = (cmd, args, env, store) => inRecoveryXlog((dest) => {
  const x = run(cmd, [...args, dest], env, store);
  return { ...x, pg: x.wall + postgresKeeps(dest) };
});
for (const store of stores) {
  for (const b of ['bare', 'seed', ...Object.keys(builds)]) await store.makeBucket(b);
  const c = [];
  if (restoreMode) {
    const first = Object.values(builds)[0];
    const seeded = {};
    for (const v of variants) {
      const flags = [...(v.startsWith('lz4') ? ['--lz4'] : []), ...(v.endsWith('+age') ? ['--encryption-recipient-file', join(work, 'rcpt')] : [])];
      const p = fresh();
      run(join(first, 'barman-cloud-wal-archive'), [...flags, ...store.ours('seed', v.replace('+', '-')), p], store.env, store);
      seeded[v] = p.slice(-24);
    }
    for (const [bname, dir] of Object.entries(builds)) for (const v of variants) {
      const flags = v.endsWith('+age') ? ['--encryption-identity-file', join(work, 'id')] : [];
      c.push({ label: `${bname} ${v}`, go: () => restoreCall(join(dir, 'barman-cloud-wal-restore'), [...flags, ...store.ours('seed', v.replace('+', '-')), seeded[v]], { ...store.env, ...(JSON.parse(process.env[`ENV_${bname}`] ?? '{}')) }, store) });
    }
    for (const [l, f, key] of [['get 16MiB', master, 'g-16'], ['get lz4', master + '.lz4', 'g-lz4']]) {
      const [cmd, args] = store.putArgs(f, 'bare', key);
      run(cmd, args, store.env, store);
      c.push({ label: l, go: () => inRecoveryXlog((dest) => {
        const [gc, ga] = store.getArgs('bare', key, dest);
        return run(gc, ga, store.env, store);
      }) });
    }
  } else for (const [bname, dir] of Object.entries(builds)) for (const v of variants) {
    const flags = [...(v.startsWith('lz4') ? ['--lz4'] : []), ...(v.endsWith('+age') ? ['--encryption-recipient-file', join(work, 'rcpt')] : [])];
    c.push({ label: `${bname} ${v}`, go: () => run(join(dir, 'barman-cloud-wal-archive'), [...flags, ...store.ours(bname, v.replace('+', '-')), fresh()], { ...store.env, ...(JSON.parse(process.env[`ENV_${bname}`] ?? '{}')) }, store) });
  }
  let k = 0;
  if (!restoreMode) for (const [l, f] of [['curl 16MiB', master], ['curl lz4', master + '.lz4']]) c.push({ label: l, go: () => { const [cmd, args] = store.putArgs(f, 'bare', `o-${k++}`); return run(cmd, args, store.env, store); } });
  c.push({ label: 'node -e 0', go: () => run(process.execPath, ['-e', '0'], store.env, store) });
  const S = c.map(() => []);
  for (let r = -1; r < rounds; r++) for (let j = 0; j < c.length; j++) { const i = (j + Math.max(r, 0)) % c.length; const x = c[i].go(); if (r >= 0) S[i].push(x); }
  console.log(`\n== ${store.name} (${rounds} rounds, medians ms)`);
  console.log('label'.padEnd(22), 'wall'.padStart(7), 'cpu'.padStart(7), 'srvcpu'.padStart(7));
  for (let i = 0; i < c.length; i++) console.log(c[i].label.padEnd(22), med(S[i].map((x) => x.wall)).toFixed(0).padStart(7), med(S[i].map((x) => x.cpu)).toFixed(0).padStart(7), med(S[i].map((x) => x.srv)).toFixed(0).padStart(7), S[i][0]?.pg === undefined ? '' : `+pg ${med(S[i].map((x) => x.pg)).toFixed(0)}`);
  const names = Object.keys(builds);
  const idx = (l) => c.findIndex((x) => x.label === l);
  for (const bn of names) for (const [enc, plain] of [['none+age', 'none'], ['lz4+age', 'lz4']]) {
    const e = S[idx(`${bn} ${enc}`)], p = S[idx(`${bn} ${plain}`)];
    if (!e || !p) continue;
    const q = (f) => { const r = e.map((x, i) => f(x) / f(p[i])).sort((a, b) => a - b); return `${med(r).toFixed(3)} (IQR ${r[Math.floor(r.length / 4)].toFixed(2)}-${r[Math.floor(3 * r.length / 4)].toFixed(2)})`; };
    console.log(`paired ${bn} ${enc}/${plain}: wall ${q((x) => x.wall)} cpu ${q((x) => x.cpu)}`);
  }
  if (process.env.SAMPLES) writeFileSync(`${process.env.SAMPLES}-${store.id}.json`, JSON.stringify(c.map((x, i) => ({ label: x.label, samples: S[i] }))));
  for (const other of names.slice(1)) for (const v of variants) {
    const a = S[c.findIndex((x) => x.label === `${names[0]} ${v}`)], b = S[c.findIndex((x) => x.label === `${other} ${v}`)];
    const ratios = (f) => med(a.map((x, i) => f(b[i]) / f(x))).toFixed(3);
    console.log(`paired ${other}/${names[0]} ${v}: wall ${ratios((x) => x.wall)} cpu ${ratios((x) => x.cpu)} srv ${ratios((x) => x.srv + 1e-9)}${a[0]?.pg === undefined ? '' : ` wall+pg ${ratios((x) => x.pg)}; median difference wall ${med(a.map((x, i) => b[i].wall - x.wall)).toFixed(1)} ms, wall+pg ${med(a.map((x, i) => b[i].pg - x.pg)).toFixed(1)} ms`}`);
  }
}
await stopAll();
