// Where a restore's time goes (issue 14, "slow restores"): one pgbench backup of ours (uncompressed)
// in RGW, then interleaved rounds of a bare GET | tar -x (the floor) and our restore from each
// build in RESTORE_BINS (colon-separated bin/ directories, default this tree's), each with its wall
// time, our CPU (user + sys from GNU time), peak RSS and the server's CPU (radosgw + ceph-osd, from
// /proc) over the same interval. On S3 stores barman-cloud-restore 3.4 of barman's own uncompressed
// backup of the same database runs in each round too (RESTORE_BARMAN=0 leaves it out). RESTORE_STORES
// =rgw,file picks the stores (the file store's floor is `tar -x` of the same tar file). Medians and
// paired-median ratios printed at the end. Not part of `npm run bench`.
//   node test/bench/restore-profile.mjs        (RESTORE_SCALE=20, RESTORE_ROUNDS=5)
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startStores, haveBarman } from './stores.mjs';
import { startPostgres } from './pg.mjs';

const root = resolve(import.meta.dirname, '../..');
const scale = Number(process.env.RESTORE_SCALE ?? 20);
const rounds = Number(process.env.RESTORE_ROUNDS ?? 5);
const bins = (process.env.RESTORE_BINS ?? join(root, 'bin')).split(':');
const extra = (process.env.RESTORE_ARGS ?? '-J 4').split(' ').filter(Boolean);
const wantBarman = haveBarman && process.env.RESTORE_BARMAN !== '0';
const storeNames = (process.env.RESTORE_STORES ?? 'rgw').split(',');

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
const { stores, stopAll } = await startStores(work, storeNames);
const pg = await startPostgres(join(work, 'pg'), ['archive_mode = on', "archive_command = '/bin/true'"]);
const runs = [];
try {
  pg.pgbench(scale);
  const mb = Number(pg.psql("SELECT pg_database_size('postgres')")) / 1e6;
  const tar = join(work, 'data.tar');
  await timed('sh', ['-c', `tar -cf ${tar} --warning=no-file-changed --exclude='./pg_wal/*' -C ${pg.data} .`], { ...process.env });
  for (const st of stores) {
    const env = { ...st.env, ...pg.env };
    await st.makeBucket('ours');
    await st.makeBucket('bare');
    await timed(process.execPath, [join(bins[0], 'barman-cloud-backup'), '-J', '4', '--immediate-checkpoint', ...st.ours('ours', 'b')], env);
    let barmanId;
    if (wantBarman && st.barman) {
      await st.makeBucket('barman');
      pg.psql('CHECKPOINT');
      await timed('/usr/bin/barman-cloud-backup', ['-J', '4', '--immediate-checkpoint', ...st.barman('barman', 'b')], env);
      const out = execFileSync(process.execPath, [join(bins[0], 'barman-cloud-backup-list'), '--format', 'json', ...st.barman('barman', 'b')], { env, encoding: 'utf8' });
      barmanId = JSON.parse(out).backups_list.at(-1).backup_id;
    }
    let floorCmd;
    if (st.kind === 'file') floorCmd = `tar -xf ${tar} -C `;
    else {
      const [pc, pa] = st.putArgs(tar, 'bare', 'floor');
      await timed(pc, pa, env);
      const [gc, ga] = st.getArgs('bare', 'floor', '-');
      floorCmd = `${gc} ${ga.map((a) => `'${a}'`).join(' ')} | tar -xf - -C `;
    }
    runs.push({ st, env, barmanId, floorCmd });
  }
  for (const { st, env, barmanId, floorCmd } of runs) {
    const who = ['floor', ...bins, ...(barmanId ? ['barman'] : [])];
    const results = Object.fromEntries(who.map((w) => [w, []]));
    const serverCpu = () => (st.serverCpu ? st.serverCpu() : NaN);
    for (let r = 0; r < rounds; r++) {
      for (const w of who) {
        const dest = join(work, `dest-${r}`);
        mkdirSync(dest, { recursive: true });
        const s0 = serverCpu();
        const m = w === 'floor'
          ? await timed('sh', ['-c', floorCmd + dest], env)
          : w === 'barman'
            ? await timed('/usr/bin/barman-cloud-restore', [...st.barman('barman', 'b'), barmanId, dest], env)
            : await timed(process.execPath, [join(w, 'barman-cloud-restore'), ...extra, ...st.ours('ours', 'b'), 'latest', dest], env);
        m.server = serverCpu() - s0;
        results[w].push(m);
        rmSync(dest, { recursive: true, force: true });
        console.log(`${st.name} round ${r} ${w}: ${m.secs.toFixed(2)} s wall, CPU ${m.cpu.toFixed(2)} s, server ${m.server.toFixed(2)} s, RSS ${m.rss.toFixed(0)} MB`);
      }
    }
    const paired = (a, b) => median(results[a].map((m, i) => m.secs / results[b][i].secs)).toFixed(2);
    console.log(`\n${st.name}: pgbench scale ${scale}, ${mb.toFixed(0)} MB, ${rounds} rounds, medians (paired-median wall ratios in the same rounds):`);
    for (const [w, ms] of Object.entries(results)) {
      console.log(`${w}: wall ${median(ms.map((m) => m.secs)).toFixed(2)} s (${(mb / median(ms.map((m) => m.secs))).toFixed(0)} MB/s, ${paired(w, 'floor')}× floor`
        + `${barmanId ? `, ${paired(w, 'barman')}× barman` : ''}), CPU ${median(ms.map((m) => m.cpu)).toFixed(2)} s, server CPU ${median(ms.map((m) => m.server)).toFixed(2)} s, RSS ${median(ms.map((m) => m.rss)).toFixed(0)} MB`);
    }
  }
  // RESTORE_PROF_DIR: one more restore per build under --cpu-prof, and one under strace -c -f.
  const profDir = process.env.RESTORE_PROF_DIR;
  if (profDir) {
    // on the S3 store when there is one (barman runs only there)
    const { st, env, barmanId } = runs.find((r) => r.barmanId) ?? runs.at(-1);
    for (const [i, b] of bins.entries()) {
      const dest = join(work, 'dest-prof');
      mkdirSync(dest, { recursive: true });
      await timed(process.execPath, ['--cpu-prof', `--cpu-prof-dir=${join(profDir, String(i))}`, join(b, 'barman-cloud-restore'), ...extra, ...st.ours('ours', 'b'), 'latest', dest], env);
      rmSync(dest, { recursive: true, force: true });
      mkdirSync(dest, { recursive: true });
      await timed('strace', ['-c', '-f', '-o', join(profDir, `strace-${i}.txt`), process.execPath, join(b, 'barman-cloud-restore'), ...extra, ...st.ours('ours', 'b'), 'latest', dest], env);
      rmSync(dest, { recursive: true, force: true });
    }
    if (barmanId) {
      const dest = join(work, 'dest-prof');
      mkdirSync(dest, { recursive: true });
      await timed('strace', ['-c', '-f', '-o', join(profDir, 'strace-barman.txt'), '/usr/bin/barman-cloud-restore', ...st.barman('barman', 'b'), barmanId, dest], env);
      rmSync(dest, { recursive: true, force: true });
    }
  }
} finally {
  pg.stop();
  await stopAll();
  rmSync(work, { recursive: true, force: true });
}
