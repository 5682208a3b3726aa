// Base backup and restore of a pgbench database (BENCH_SCALE, default 100) into each store of
// BENCH_BACKUP_STORES (default rgw; also moto, file), ours with -J 4 beside barman 3.4 and
// pgBackRest 2.45 (process-max 4) at the same compression, each against a floor: a bare curl PUT
// (cp + sync for the directory store) of a file of the same bytes, made beforehand with tar and the
// row's compressor, and for restores a bare GET piped into tar -x. Peak RSS from GNU time.
// With the `age` tools installed, an lz4 + age-encrypted backup and restore of ours run right after
// the plain lz4 ones, with CPU seconds beside them (BENCH_BACKUP_CODECS picks the rows).
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startStores, haveBarman, havePgbackrest, pgbackrestConfig } from './stores.mjs';
import { startPostgres } from './pg.mjs';

const haveAge = (() => {
  try {
    execFileSync('age-keygen', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

export const title = 'Base backup and restore (pgbench database; barman 3.4 and pgBackRest 2.45 beside us)';

/** Wall seconds and peak RSS (MB) of one command through GNU time (asynchronous: servers may live in this process). */
function measured(cmd, args, env, opts = {}) {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn('/usr/bin/time', ['-f', '%M %U %S', cmd, ...args], { env, stdio: ['ignore', 'ignore', 'pipe'], cwd: opts.cwd });
    let err = '';
    child.stderr.on('data', (d) => (err = (err + d).slice(-4000)));
    child.on('close', (code) => {
      const secs = Number(process.hrtime.bigint() - started) / 1e9;
      if (code !== 0 && !opts.allowFailure) return reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${err.slice(-800)}`));
      const [kb, u, s] = err.trim().split('\n').at(-1).split(' ').map(Number);
      resolve({ secs, rssMb: kb / 1024, cpuSecs: u + s });
    });
  });
}
const sh = (script, env) => measured('sh', ['-c', script], env);

export async function run({ root }) {
  const scale = Number(process.env.BENCH_SCALE ?? 100);
  const binDir = process.env.BENCH_BIN_DIR ?? join(root, 'bin');
  const ours = (b) => join(binDir, b);
  const node = process.execPath;
  const work = mkdtempSync(join(tmpdir(), 'bc-bench-backup-'));
  chmodSync(work, 0o755);
  const { stores, stopAll } = await startStores(work, (process.env.BENCH_BACKUP_STORES ?? 'rgw').split(','));
  const rows = [];
  const notes = [];
  const targets = {};
  const codecs = (process.env.BENCH_BACKUP_CODECS ?? 'lz4,lz4+age,none,gzip').split(',').filter((c) => c !== 'lz4+age' || haveAge);
  if (!haveAge) notes.push('The lz4 + age rows need `age-keygen` (Debian package age): left out of this run.');
  // An X25519 key pair for the encrypted rows: the recipient encrypts, the identity restores.
  const identityFile = join(work, 'age-identity.txt');
  const recipientFile = join(work, 'age-recipient.txt');
  if (haveAge) {
    execFileSync('age-keygen', ['-o', identityFile], { stdio: 'ignore' });
    writeFileSync(recipientFile, execFileSync('age-keygen', ['-y', identityFile]));
  }
  let pg;
  try {
    pg = await startPostgres(join(work, 'pg'), ['archive_mode = on', "archive_command = '/bin/true'"]);
    pg.pgbench(scale);
    const mb = Number(pg.psql("SELECT pg_database_size('postgres')")) / 1e6;
    notes.push(`Database: pgbench scale ${scale}, ${mb.toFixed(0)} MB (pg_database_size). Throughput = that size / wall time of the whole command.`);
    const env0 = { ...stores[0].env, ...pg.env };

    // The floor's bytes: the data directory as one tar, and that tar compressed like each row.
    const tarDir = join(work, 'floor');
    mkdirSync(tarDir, { recursive: true });
    const tarOf = { none: join(tarDir, 'data.tar'), lz4: join(tarDir, 'data.tar.lz4'), gzip: join(tarDir, 'data.tar.gz') };
    tarOf['lz4+age'] = tarOf.lz4; // the floor of the encrypted row is the plain lz4 one: what encryption adds shows
    // Without pg_wal's contents, as a base backup leaves them out.
    await sh(`tar -cf ${tarOf.none} --warning=no-file-changed --exclude='./pg_wal/*' -C ${pg.data} . ; lz4 -q -1 -f ${tarOf.none} ${tarOf.lz4} && gzip -6 -c ${tarOf.none} > ${tarOf.gzip}`, env0);
    notes.push(`Floor bytes: tar of PGDATA ${(statSync(tarOf.none).size / 1e6).toFixed(0)} MB, lz4 -1 ${(statSync(tarOf.lz4).size / 1e6).toFixed(0)} MB, gzip -6 ${(statSync(tarOf.gzip).size / 1e6).toFixed(0)} MB (made beforehand, not timed).`);

    for (const store of stores) {
      const env = { ...store.env, ...pg.env };
      for (const b of ['ours', 'barman', 'bare', 'pgbr']) await store.makeBucket(b);
      const results = {};
      const row = (label, r, floor, vsBarman, vsPgbr) => rows.push([label, store.name, `${(mb / r.secs).toFixed(1)} MB/s (${r.secs.toFixed(1)} s)`,
        floor ? `${(mb / floor.secs).toFixed(1)} MB/s (${floor.secs.toFixed(1)} s)` : '–', `${r.rssMb.toFixed(0)} MB`, vsBarman ?? '–', vsPgbr ?? '–']);
      const pgbrCfg = havePgbackrest ? pgbackrestConfig(join(work, 'pgbr', store.id), store, 'pgbr', pg, { 'process-max': '4', 'start-fast': 'y', 'archive-check': 'n' }) : null;
      if (pgbrCfg) await measured('/usr/bin/pgbackrest', pgbrCfg.args('stanza-create'), env);
      const table = [
        ['lz4', ['--lz4'], null, 'lz4'], ['lz4+age', ['--lz4', '--encryption-recipient-file', recipientFile], null, null],
        ['none', [], [], 'none'], ['gzip', ['-z'], ['-z'], 'gz'],
      ];
      for (const [codec, ourFlag, barmanFlag, pgbrType] of table.filter(([c]) => codecs.includes(c))) {
        const [fc, fa] = store.putArgs(tarOf[codec], 'bare', `floor/${codec.replace('+', '-')}`);
        const floor = await measured(fc, fa, env);
        const mine = await measured(node, [ours('barman-cloud-backup'), ...ourFlag, '-J', '4', '--immediate-checkpoint', ...store.ours('ours', `b-${codec}`)], env);
        let barman;
        if (barmanFlag && haveBarman && store.barman) {
          pg.psql('CHECKPOINT');
          barman = await measured('/usr/bin/barman-cloud-backup', [...barmanFlag, '-J', '4', '--immediate-checkpoint', ...store.barman('barman', `b-${codec}`)], env);
        }
        let pgbr;
        if (pgbrCfg && pgbrType) pgbr = await measured('/usr/bin/pgbackrest', pgbrCfg.args(`--compress-type=${pgbrType}`, '--type=full', 'backup'), env);
        results[codec] = { mine, barman, pgbr, floor };
        const cpu = codec === 'lz4+age' && results.lz4
          ? `, CPU ${mine.cpuSecs.toFixed(2)} s vs ${results.lz4.mine.cpuSecs.toFixed(2)} s plain lz4 (${(mine.cpuSecs / results.lz4.mine.cpuSecs).toFixed(2)}×)`
          : `, CPU ${mine.cpuSecs.toFixed(2)} s`;
        row(`backup (${codec}), ours -J 4${cpu}`, mine, floor, barman ? `${(barman.secs / mine.secs).toFixed(2)}×` : undefined, pgbr ? `${(pgbr.secs / mine.secs).toFixed(2)}×` : undefined);
        if (barman) row(`  barman-cloud-backup 3.4 (${codec}) -J 4`, barman);
        if (pgbr) row(`  pgBackRest backup (${codec}) process-max 4`, pgbr);
        rows.push([`  bare PUT of the ${codec} tar (floor)`, store.name, `${(mb / floor.secs).toFixed(1)} MB/s (${floor.secs.toFixed(1)} s)`, '', '', '', '']);
      }
      const r = results;
      if (r.lz4) targets[`backup lz4, ${store.name}`] = { target: '≥ 200 MB/s', value: `${(mb / r.lz4.mine.secs).toFixed(1)} MB/s`, met: mb / r.lz4.mine.secs >= 200 };
      const enc = r['lz4+age'];
      if (enc) targets[`backup lz4 + age, ${store.name}`] = { target: '≥ 150 MB/s', value: `${(mb / enc.mine.secs).toFixed(1)} MB/s`, met: mb / enc.mine.secs >= 150 };
      if (!r.none || !r.lz4) continue; // the restore rows need the plain backups
      if (r.none.barman) targets[`backup uncompressed, ${store.name}`] = { target: '≥ 3× barman 3.4', value: `${(r.none.barman.secs / r.none.mine.secs).toFixed(2)}×`, met: r.none.barman.secs / r.none.mine.secs >= 3 };
      if (r.gzip?.barman) targets[`backup gzip, ${store.name}`] = { target: '≥ 4× barman 3.4', value: `${(r.gzip.barman.secs / r.gzip.mine.secs).toFixed(2)}×`, met: r.gzip.barman.secs / r.gzip.mine.secs >= 4 };

      // Restores: each tool's uncompressed backup (and ours of lz4), -J 4 / process-max 4. Each
      // writes ~1.6 GB into the page cache; run one after the other, a restore paid for the dirty
      // pages of the ones before it (the kernel throttles writers past vm.dirty_ratio), so the
      // order decided the ratios (barman 3.4 2.1x faster than ours in one run, 0.88x in another).
      // So every contender starts from a synced, emptied destination, the order rotates each
      // round, and rows give medians over BENCH_RESTORE_ROUNDS (default 3) rounds.
      const dest = (n) => join(work, `restore-${store.id}-${n}`);
      const [gc, ga] = store.getArgs('bare', 'floor/none', '-');
      const [lc, la] = store.getArgs('bare', 'floor/lz4', '-');
      let barmanId;
      if (haveBarman && store.barman) {
        const list = await new Promise((res, rej) => {
          const c = spawn(node, [ours('barman-cloud-backup-list'), '--format', 'json', ...store.barman('barman', 'b-none')], { env });
          let out = '';
          c.stdout.on('data', (d) => (out += d));
          c.on('close', (code) => (code === 0 ? res(JSON.parse(out)) : rej(new Error('backup-list failed'))));
        });
        barmanId = list.backups_list.at(-1).backup_id;
      }
      let pgbrLabel;
      if (pgbrCfg) {
        // Backups run lz4, none, gzip: the second is the uncompressed one.
        const info = JSON.parse(await new Promise((res) => {
          const c = spawn('/usr/bin/pgbackrest', pgbrCfg.args('--output=json', 'info'), { env });
          let out = '';
          c.stdout.on('data', (d) => (out += d));
          c.on('close', () => res(out));
        }));
        pgbrLabel = info[0].backup[1].label;
      }
      const contenders = [
        ['floor', () => sh(`${gc} ${ga.map((a) => `'${a}'`).join(' ')} | tar -xf - -C ${dest('floor')}`, env)],
        ['floor-lz4', () => sh(`${lc} ${la.map((a) => `'${a}'`).join(' ')} | lz4 -d -c | tar -xf - -C ${dest('floor-lz4')}`, env)],
        ['ours', () => measured(node, [ours('barman-cloud-restore'), '-J', '4', ...store.ours('ours', 'b-none'), 'latest', dest('ours')], env)],
        ['ours-lz4', () => measured(node, [ours('barman-cloud-restore'), '-J', '4', ...store.ours('ours', 'b-lz4'), 'latest', dest('ours-lz4')], env)],
        ...(enc ? [['ours-age', () => measured(node, [ours('barman-cloud-restore'), '-J', '4', '--encryption-identity-file', identityFile, ...store.ours('ours', 'b-lz4+age'), 'latest', dest('ours-age')], env)]] : []),
        ...(barmanId ? [['barman', () => measured('/usr/bin/barman-cloud-restore', [...store.barman('barman', 'b-none'), barmanId, dest('barman')], env)]] : []),
        ...(pgbrLabel ? [['pgbr', () => measured('/usr/bin/pgbackrest', pgbrCfg.args(`--pg1-path=${dest('pgbr')}`, `--set=${pgbrLabel}`, 'restore'), env)]] : []),
      ];
      const restoreRounds = Number(process.env.BENCH_RESTORE_ROUNDS ?? 3);
      const runs = new Map(contenders.map(([k]) => [k, []]));
      for (let round = 0; round < restoreRounds; round++) {
        for (let i = 0; i < contenders.length; i++) {
          const [key, go] = contenders[(i + round) % contenders.length];
          rmSync(dest(key), { recursive: true, force: true });
          // barman and ours make the destination; the floors' tar and pgBackRest need it to exist
          if (key.startsWith('floor') || key === 'pgbr') mkdirSync(dest(key), { recursive: true });
          execFileSync('sync');
          runs.get(key).push(await go());
        }
      }
      const mid = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
      // The median wall time, its run's CPU, and the largest peak RSS of the rounds.
      const summary = (key) => {
        const xs = runs.get(key);
        if (!xs) return undefined;
        return { secs: mid(xs.map((x) => x.secs)), cpuSecs: mid(xs.map((x) => x.cpuSecs)), rssMb: Math.max(...xs.map((x) => x.rssMb)) };
      };
      const floorR = summary('floor');
      const floorLz4R = summary('floor-lz4');
      const oursR = summary('ours');
      const oursLz4R = summary('ours-lz4');
      const oursAgeR = summary('ours-age');
      const barmanR = summary('barman');
      const pgbrR = summary('pgbr');
      const restoreRow = (label, x, vsB, vsP, f = floorR) => rows.push([label, store.name, `${(mb / x.secs).toFixed(1)} MB/s (${x.secs.toFixed(1)} s)`,
        `${(mb / f.secs).toFixed(1)} MB/s (${f.secs.toFixed(1)} s)`, `${x.rssMb.toFixed(0)} MB`, vsB ?? '–', vsP ?? '–']);
      restoreRow('restore (none), ours -J 4', oursR, barmanR ? `${(barmanR.secs / oursR.secs).toFixed(2)}×` : undefined, pgbrR ? `${(pgbrR.secs / oursR.secs).toFixed(2)}×` : undefined);
      restoreRow(`restore (lz4), ours -J 4, CPU ${oursLz4R.cpuSecs.toFixed(2)} s`, oursLz4R, undefined, undefined, floorLz4R);
      if (oursAgeR) {
        restoreRow(`restore (lz4+age), ours -J 4, CPU ${oursAgeR.cpuSecs.toFixed(2)} s (${(oursAgeR.cpuSecs / oursLz4R.cpuSecs).toFixed(2)}× plain lz4)`, oursAgeR, undefined, undefined, floorLz4R);
      }
      if (barmanR) restoreRow('  barman-cloud-restore 3.4 (none)', barmanR);
      if (pgbrR) restoreRow('  pgBackRest restore (none) process-max 4', pgbrR);
      rows.push(['  bare GET of the tar | tar -x (floor)', store.name, `${(mb / floorR.secs).toFixed(1)} MB/s (${floorR.secs.toFixed(1)} s)`, '', '', '', '']);
      rows.push(['  bare GET of the lz4 tar | lz4 -d | tar -x (floor)', store.name, `${(mb / floorLz4R.secs).toFixed(1)} MB/s (${floorLz4R.secs.toFixed(1)} s)`, '', '', '', '']);
      if (barmanR) targets[`restore, ${store.name}`] = { target: '≥ 3× barman 3.4', value: `${(barmanR.secs / oursR.secs).toFixed(2)}×`, met: barmanR.secs / oursR.secs >= 3 };
      const peak = Math.max(...Object.values(r).map((x) => x.mine.rssMb), oursR.rssMb, oursLz4R.rssMb, oursAgeR?.rssMb ?? 0);
      targets[`peak RSS backup / restore -J 4, ${store.name}`] = { target: `≤ 128 MB at scale 100 (this run: scale ${scale})`, value: `max ${peak.toFixed(0)} MB`, met: peak <= 128 };
      for (const d of ['floor', 'floor-lz4', 'ours', 'ours-lz4', 'ours-age', 'barman', 'pgbr']) rmSync(dest(d), { recursive: true, force: true });
    }
    notes.push(`Backups: one run per row. Restores: the median of ${Number(process.env.BENCH_RESTORE_ROUNDS ?? 3)} rounds, each contender starting from \`sync\` and an empty destination, the order rotating by round (CPU: the median of the rounds; peak RSS: their largest). ` +
      'Ratios are the other tool\'s wall time over ours: above 1× we are faster. pgBackRest runs with `--type=full --archive-check=n --start-fast` (it would otherwise wait for its own WAL archive); barman 3.4 has no lz4.');
    for (const s of stores) if (s.note) notes.push(`${s.name}: ${s.note}.`);
  } finally {
    pg?.stop();
    await stopAll();
    rmSync(work, { recursive: true, force: true });
  }
  return { headers: ['what', 'store', 'throughput (wall)', 'floor', 'peak RSS', 'vs barman 3.4', 'vs pgBackRest'], rows, notes, targets };
}
