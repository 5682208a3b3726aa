// barman-cloud-backup of a PostgreSQL 15 cluster holding many small files (issue 14: memory that
// does not grow with the job; backup_manifest keeps a record per file): FILES files of 100 bytes
// in one directory of PGDATA (barman copies files it does not know), backed up into the directory
// store by two builds, interleaved by round (the order rotating), each under GNU time: peak RSS and
// wall time, medians and the paired ratio of the second build to the first. Then the first build's
// last backup is restored by each build, interleaved the same way (peak RSS, wall, paired ratio),
// and each build's last backup by its own barman-cloud-restore, checked with `pg_verifybackup -n`.
//
//   BUILDS='{"main":"/tmp/main-build/bin","ours":"bin"}' FILES=100000 ROUNDS=3 \
//     node test/bench/many-files-backup.mjs
//
// A build's bin/ must sit beside its dist/ and reach a node_modules (a copy of bin/, dist/ and
// package.json with a node_modules symlink will do).
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { median } from './lib.mjs';
import { PG_BIN, startPostgres } from './pg.mjs';

const builds = Object.entries(JSON.parse(process.env.BUILDS ?? '{}')).map(([name, bin]) => [name, resolve(bin)]);
if (builds.length !== 2) throw new Error('BUILDS names two builds\' bin directories, e.g. {"main":"/tmp/main-build/bin","ours":"bin"}');
const files = Number(process.env.FILES ?? 100_000);
const rounds = Number(process.env.ROUNDS ?? 3);
const work = mkdtempSync(join(tmpdir(), 'bc-bench-many-files-'));
chmodSync(work, 0o755);

/** One command under GNU time: its peak RSS (MiB) and wall time (s); a failure stops the bench. */
function timed(bin, args, env) {
  const r = spawnSync('/usr/bin/time', ['-f', 'gnu-time %M %e', process.execPath, bin, ...args], { env, encoding: 'utf8' });
  const m = /gnu-time (\d+) ([\d.]+)\s*$/.exec(r.stderr);
  if (r.status !== 0 || !m) throw new Error(`${bin} ${args.join(' ')}: exit ${r.status}\n${r.stderr.slice(-2000)}`);
  return { peak: Number(m[1]) / 1024, secs: Number(m[2]) };
}

const pg = await startPostgres(join(work, 'pg'), ['archive_mode = on', "archive_command = '/bin/true'"]);
try {
  const extra = join(pg.data, 'many_small_files');
  mkdirSync(extra);
  const body = Buffer.alloc(100, 'x');
  for (let i = 0; i < files; i++) writeFileSync(join(extra, `f${i}`), body);
  const env = { PATH: process.env.PATH, HOME: process.env.HOME, ...pg.env };
  const results = Object.fromEntries(builds.map(([name]) => [name, []]));
  for (const [name] of builds) mkdirSync(join(work, `store-${name}`)); // the directory store's bucket
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < builds.length; k++) {
      const [name, bin] = builds[(k + r) % builds.length];
      pg.psql('CHECKPOINT');
      const store = `file://${join(work, `store-${name}`)}`;
      const res = timed(join(bin, 'barman-cloud-backup'), ['--immediate-checkpoint', store, 'srv'], env);
      results[name].push(res);
      console.log(`round ${r + 1} ${name}: peak ${res.peak.toFixed(1)} MiB, ${res.secs.toFixed(2)} s`);
    }
  }
  const [[a], [b]] = builds;
  console.log(`\n| build | peak RSS per round (MiB) | median | wall per round (s) | median |`);
  console.log('|---|---|---|---|---|');
  for (const [name] of builds) {
    const list = results[name];
    console.log(`| ${name} | ${list.map((x) => x.peak.toFixed(1)).join(', ')} | ${median(list.map((x) => x.peak)).toFixed(1)} | ${list.map((x) => x.secs.toFixed(2)).join(', ')} | ${median(list.map((x) => x.secs)).toFixed(2)} |`);
  }
  const ratio = (f) => median(results[b].map((x, i) => f(x) / f(results[a][i])));
  console.log(`\npaired ${b}/${a}: peak RSS ${ratio((x) => x.peak).toFixed(3)}, wall ${ratio((x) => x.secs).toFixed(3)} (medians of the per-round ratios)`);
  // The same backup (the first build's last) restored by each build, interleaved as above.
  const restores = Object.fromEntries(builds.map(([name]) => [name, []]));
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < builds.length; k++) {
      const [name, bin] = builds[(k + r) % builds.length];
      const dest = join(work, `restore-round-${name}`);
      const res = timed(join(bin, 'barman-cloud-restore'), [`file://${join(work, `store-${a}`)}`, 'srv', 'latest', dest], env);
      restores[name].push(res);
      rmSync(dest, { recursive: true, force: true });
      console.log(`restore round ${r + 1} ${name}: peak ${res.peak.toFixed(1)} MiB, ${res.secs.toFixed(2)} s`);
    }
  }
  console.log(`\n| build | restore peak RSS per round (MiB) | median | wall per round (s) | median |`);
  console.log('|---|---|---|---|---|');
  for (const [name] of builds) {
    const list = restores[name];
    console.log(`| ${name} | ${list.map((x) => x.peak.toFixed(1)).join(', ')} | ${median(list.map((x) => x.peak)).toFixed(1)} | ${list.map((x) => x.secs.toFixed(2)).join(', ')} | ${median(list.map((x) => x.secs)).toFixed(2)} |`);
  }
  const restoreRatio = (f) => median(restores[b].map((x, i) => f(x) / f(restores[a][i])));
  console.log(`\npaired restore ${b}/${a}: peak RSS ${restoreRatio((x) => x.peak).toFixed(3)}, wall ${restoreRatio((x) => x.secs).toFixed(3)}`);
  for (const [name, bin] of builds) {
    const dest = join(work, `restore-${name}`);
    const res = timed(join(bin, 'barman-cloud-restore'), [`file://${join(work, `store-${name}`)}`, 'srv', 'latest', dest], env);
    const manifest = readFileSync(join(dest, 'backup_manifest'));
    const listed = JSON.parse(manifest.toString('utf8')).Files.length;
    const verify = spawnSync(join(PG_BIN, 'pg_verifybackup'), ['-n', dest], { encoding: 'utf8' });
    console.log(`${name}: restore peak ${res.peak.toFixed(1)} MiB, ${res.secs.toFixed(2)} s; backup_manifest ${(manifest.length / 1e6).toFixed(1)} MB listing ${listed} files; pg_verifybackup -n exit ${verify.status}: ${(verify.stdout + verify.stderr).trim()}`);
    rmSync(dest, { recursive: true, force: true });
  }
} finally {
  pg.stop();
  execFileSync('rm', ['-rf', work]);
}
