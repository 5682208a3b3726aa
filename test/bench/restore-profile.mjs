// Where a restore's time goes (issue 14, "slow restores"): one pgbench backup of ours (uncompressed)
// in RGW, then interleaved rounds of a bare GET | tar -x (the floor) and our restore from each
// build in RESTORE_BINS (colon-separated bin/ directories, default this tree's), each with its wall
// time, our CPU (user + sys from GNU time), peak RSS and the server's CPU (radosgw + ceph-osd, from
// /proc) over the same interval. Medians printed at the end. Not part of `npm run bench`.
//   node test/bench/restore-profile.mjs        (RESTORE_SCALE=20, RESTORE_ROUNDS=5)
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startStores } from './stores.mjs';
import { startPostgres } from './pg.mjs';

const root = resolve(import.meta.dirname, '../..');
const scale = Number(process.env.RESTORE_SCALE ?? 20);
const rounds = Number(process.env.RESTORE_ROUNDS ?? 5);
const bins = (process.env.RESTORE_BINS ?? join(root, 'bin')).split(':');
const extra = (process.env.RESTORE_ARGS ?? '-J 4').split(' ').filter(Boolean);

function timed(cmd, args, env) {
  return new Promise((res, rej) => {
    const t0 = process.hrtime.bigint();
    const child = spawn('/usr/bin/time', ['-f', '%M %U %S', cmd, ...args], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => (err = (err + d).slice(-4000)));
    child.on('close', (code) => {
      const secs = Number(process.hrtime.bigint() - t0) / 1e9;
      if (code !== 0) return rej(new Error(`${cmd} ${args.join(' ')}: exit ${code}: ${err.slice(-600)}`));
      const [kb, u, s] = err.trim().split('\n').at(-1).split(' ').map(Number);
      res({ secs, cpu: u + s, rss: kb / 1024 });
    });
  });
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const work = mkdtempSync(join(tmpdir(), 'bc-restore-profile-'));
chmodSync(work, 0o755);
const { stores, stopAll } = await startStores(work, ['rgw']);
const store = stores[0];
const pg = await startPostgres(join(work, 'pg'), ['archive_mode = on', "archive_command = '/bin/true'"]);
try {
  pg.pgbench(scale);
  const mb = Number(pg.psql("SELECT pg_database_size('postgres')")) / 1e6;
  const env = { ...store.env, ...pg.env };
  await store.makeBucket('ours');
  await store.makeBucket('bare');
  await timed(process.execPath, [join(bins[0], 'barman-cloud-backup'), '-J', '4', '--immediate-checkpoint', ...store.ours('ours', 'b')], env);
  const tar = join(work, 'data.tar');
  await timed('sh', ['-c', `tar -cf ${tar} --warning=no-file-changed --exclude='./pg_wal/*' -C ${pg.data} .`], env);
  const [pc, pa] = store.putArgs(tar, 'bare', 'floor');
  await timed(pc, pa, env);
  const [gc, ga] = store.getArgs('bare', 'floor', '-');
  const floorCmd = `${gc} ${ga.map((a) => `'${a}'`).join(' ')} | tar -xf - -C `;
  const results = { floor: [] };
  for (const b of bins) results[b] = [];
  for (let r = 0; r < rounds; r++) {
    for (const who of ['floor', ...bins]) {
      const dest = join(work, `dest-${r}`);
      mkdirSync(dest, { recursive: true });
      const s0 = store.serverCpu();
      const m = who === 'floor'
        ? await timed('sh', ['-c', floorCmd + dest], env)
        : await timed(process.execPath, [join(who, 'barman-cloud-restore'), ...extra, ...store.ours('ours', 'b'), 'latest', dest], env);
      m.server = store.serverCpu() - s0;
      results[who].push(m);
      rmSync(dest, { recursive: true, force: true });
      console.log(`round ${r} ${who}: ${m.secs.toFixed(2)} s wall, CPU ${m.cpu.toFixed(2)} s, server ${m.server.toFixed(2)} s, RSS ${m.rss.toFixed(0)} MB`);
    }
  }
  console.log(`\npgbench scale ${scale}, ${mb.toFixed(0)} MB, ${rounds} rounds, medians (ratio to the floor's wall in the same round):`);
  for (const [who, ms] of Object.entries(results)) {
    const ratio = median(ms.map((m, i) => m.secs / results.floor[i].secs));
    console.log(`${who}: wall ${median(ms.map((m) => m.secs)).toFixed(2)} s (${(mb / median(ms.map((m) => m.secs))).toFixed(0)} MB/s, ${ratio.toFixed(2)}× floor), `
      + `CPU ${median(ms.map((m) => m.cpu)).toFixed(2)} s, server CPU ${median(ms.map((m) => m.server)).toFixed(2)} s, RSS ${median(ms.map((m) => m.rss)).toFixed(0)} MB`);
  }
  // RESTORE_PROF_DIR: one more restore per build under --cpu-prof, and one under strace -c -f.
  const profDir = process.env.RESTORE_PROF_DIR;
  if (profDir) {
    for (const [i, b] of bins.entries()) {
      const dest = join(work, 'dest-prof');
      mkdirSync(dest, { recursive: true });
      await timed(process.execPath, ['--cpu-prof', `--cpu-prof-dir=${join(profDir, String(i))}`, join(b, 'barman-cloud-restore'), ...extra, ...store.ours('ours', 'b'), 'latest', dest], env);
      rmSync(dest, { recursive: true, force: true });
      mkdirSync(dest, { recursive: true });
      await timed('strace', ['-c', '-f', '-o', join(profDir, `strace-${i}.txt`), process.execPath, join(b, 'barman-cloud-restore'), ...extra, ...store.ours('ours', 'b'), 'latest', dest], env);
      rmSync(dest, { recursive: true, force: true });
    }
  }
} finally {
  pg.stop();
  await stopAll();
  rmSync(work, { recursive: true, force: true });
}
