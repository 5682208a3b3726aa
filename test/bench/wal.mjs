// The WAL hot path on every store (directory store, moto, Ceph RGW), side by side with barman 3.4
// and pgBackRest 2.45 wherever they do the same job, every row against a floor: `node -e 0` plus a
// bare client (curl --aws-sigv4, or cp + sync) moving the same bytes to the same server.
//
// Scenarios: one-shot archive (none, lz4) and restore; sustained archive as PostgreSQL calls it (one
// call per segment, in order, .ready files present) with --max-parallel 8 and, when the executable
// offers it, --async, against a bare parallel uploader and pgBackRest archive-async; sustained
// restore (--parallel 16, --async) against a bare parallel downloader and pgBackRest async
// archive-get, each also against a same-work floor (the bare loop plus `lz4 -1` / `lz4 -d` of every
// segment); client CPU per archived segment; peak RSS per codec.
//
// BENCH_ROUNDS (one-shot rounds), BENCH_SEGMENTS (segments per sustained run, default 96),
// BENCH_STORES (file,moto,rgw), BENCH_BIN_DIR (whose executables count as "ours"), BENCH_WAL_PARTS
// (oneshot,archive,restore,cpu,rss: which scenarios run; restore needs archive).
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync, renameSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { compare, runOnce, median, fmt, walSegment, SEG } from './lib.mjs';
import { startStores, haveBarman, havePgbackrest, bareParallel, pgbackrestConfig, fakePgdata, pgbackrest, baseEnv } from './stores.mjs';
import { startPostgres } from './pg.mjs';

export const title = 'WAL archive and restore (16 MiB segments; directory store, moto, Ceph RGW; barman 3.4 and pgBackRest 2.45 beside us)';

const segName = (i) => `000000010000${(0x10 + Math.floor(i / 256)).toString(16).toUpperCase().padStart(4, '0')}000000${(i % 256).toString(16).toUpperCase().padStart(2, '0')}`;
const walKey = (prefix, name, ext = '') => `${prefix}/srv/wals/${name.slice(0, 16)}/${name}${ext}`;
const ms = (x) => `${x.toFixed(0)} ms`;
const ratio = (theirs, ours) => (theirs && ours ? `${(theirs / ours).toFixed(2)}×` : '–');

export function probeAsync(bin) {
  const r = spawnSync(bin, ['--help'], { encoding: 'utf8', env: baseEnv() });
  return /--async\b/.test(r.stdout ?? '');
}

export async function run({ root, rounds }) {
  const binDir = process.env.BENCH_BIN_DIR ?? join(root, 'bin');
  const ours = (b) => join(binDir, b);
  const node = process.execPath;
  const work = mkdtempSync(join(tmpdir(), 'bc-bench-wal-'));
  chmodSync(work, 0o755); // PostgreSQL (user postgres) lives inside
  const { stores, stopAll } = await startStores(work);
  const count = Number(process.env.BENCH_SEGMENTS ?? 96);
  const rows = [];
  const notes = [];
  const targets = {};
  const asyncArchive = probeAsync(ours('barman-cloud-wal-archive'));
  const asyncRestore = probeAsync(ours('barman-cloud-wal-restore'));
  const parts = new Set((process.env.BENCH_WAL_PARTS ?? 'oneshot,archive,restore,cpu,rss').split(','));
  let pg;
  try {
    // A real cluster gives pgBackRest what it checks: a stanza, pg_control, and a WAL page header
    // with this system identifier. Every tool archives the same bytes: our synthetic segment with
    // the cluster's first WAL page (header) in front.
    pg = await startPostgres(join(work, 'pg'), ['archive_mode = off']);
    pg.psql('CREATE TABLE t AS SELECT g FROM generate_series(1, 100000) g');
    const walFile = pg.psql('SELECT pg_walfile_name(pg_current_wal_lsn())');
    pg.psql('SELECT pg_switch_wal()');
    const segment = walSegment();
    readFileSync(join(pg.data, 'pg_wal', walFile)).copy(segment, 0, 0, 8192);
    const master = join(work, 'segment');
    writeFileSync(master, segment);
    const lz4Master = join(work, 'segment.lz4');
    execFileSync('lz4', ['-q', '-1', '-f', master, lz4Master]);
    notes.push(`Segment: 16 MiB, ${(readFileSync(lz4Master).length / 2 ** 20).toFixed(1)} MiB after \`lz4 -1\` (tuple-like records; real WAL page header so that pgBackRest accepts it).`);

    // Each file carries the page address its name starts at (bytes 8-15 of the first page), as
    // real WAL does: wal-restore refuses another segment's content under a name (docs/format.md).
    const placeSegment = (p) => {
      const name = p.split('/').pop();
      segment.writeBigUInt64LE((BigInt(`0x${name.slice(8, 16)}`) << 32n) + BigInt(`0x${name.slice(16, 24)}`) * BigInt(segment.length), 8);
      writeFileSync(p, segment);
    };
    let seq = 0;
    const fresh = (dir) => {
      mkdirSync(dir, { recursive: true });
      const p = join(dir, segName(seq++));
      placeSegment(p);
      return p;
    };
    const node0 = () => ({ label: 'node -e 0', cmd: node, args: ['-e', '0'], env: baseEnv() });
    const pgbrFor = {};
    const pgbr = (store, bucket) => {
      const id = `${store.name}-${bucket}`;
      if (!pgbrFor[id]) {
        const cfg = pgbackrestConfig(join(work, 'pgbr', id.replace(/\W/g, '_')), store, bucket, pg);
        pgbackrest(cfg.args('stanza-create'), store.env);
        pgbrFor[id] = cfg;
      }
      return pgbrFor[id];
    };

    // ---- one-shot archive and restore, S3 stores ----
    // The server's CPU per call (its processes, 10 ms ticks, until 100 ms after the answer), median.
    const srvCall = (x) => (Number.isFinite(x) ? `; server CPU ${x.toFixed(0)} ms` : '');
    for (const store of stores.filter((s) => s.kind === 's3' && parts.has('oneshot'))) {
      for (const b of ['ours', 'barman', 'bare', 'pgbr']) await store.makeBucket(b);
      const src = join(work, `oneshot-${store.id}`);
      const c = [];
      const mk = (label, cmd, flags, urlArgs, tail = true) => {
        const ctx = { label, cmd, args: [], env: store.env };
        ctx.before = () => (ctx.args = [...flags, ...urlArgs, ...(tail ? [fresh(src)] : [])]);
        c.push(ctx);
      };
      mk('ours wal-archive (none)', ours('barman-cloud-wal-archive'), [], store.ours('ours'));
      mk('ours wal-archive --lz4', ours('barman-cloud-wal-archive'), ['--lz4'], store.ours('ours'));
      if (haveBarman) mk('barman 3.4 wal-archive (none)', '/usr/bin/barman-cloud-wal-archive', [], store.barman('barman'));
      if (havePgbackrest) {
        const cfg = pgbr(store, 'pgbr');
        mk('pgBackRest archive-push (none)', '/usr/bin/pgbackrest', cfg.args('--compress-type=none', 'archive-push'), []);
        mk('pgBackRest archive-push (lz4)', '/usr/bin/pgbackrest', cfg.args('--compress-type=lz4', 'archive-push'), []);
      }
      let k = 0;
      for (const [label, file] of [['bare curl PUT (16 MiB)', master], ['bare curl PUT (lz4 bytes)', lz4Master]]) {
        const ctx = { label, cmd: 'curl', args: [], env: store.env };
        ctx.before = () => { const [cmd, args] = store.putArgs(file, 'bare', `seg-${k++}`); ctx.cmd = cmd; ctx.args = args; };
        c.push(ctx);
      }
      c.push(node0());
      const aRuns = await compare(c, { rounds, serverCpu: store.serverCpu });
      const a = Object.fromEntries(aRuns.map((r) => [r.label, r.median]));
      const aSrv = Object.fromEntries(aRuns.map((r) => [r.label, r.serverMs]));
      const n0 = a['node -e 0'];
      for (const [codec, floorKey, pgKey] of [['none', 'bare curl PUT (16 MiB)', 'pgBackRest archive-push (none)'], ['lz4', 'bare curl PUT (lz4 bytes)', 'pgBackRest archive-push (lz4)']]) {
        const mineKey = codec === 'none' ? 'ours wal-archive (none)' : 'ours wal-archive --lz4';
        const mine = a[mineKey];
        const floor = n0 + a[floorKey];
        const barman = a['barman 3.4 wal-archive (none)'];
        rows.push([`one-shot wal-archive (${codec})`, store.name, `${ms(mine)}${srvCall(aSrv[mineKey])}`, `${ms(floor)} (${ms(n0)} + ${ms(a[floorKey])})`, ms(mine - floor), ratio(barman, mine), ratio(a[pgKey], mine)]);
        targets[`one-shot wal-archive (${codec}), ${store.name}`] = { value: `${ms(mine)}, floor ${ms(floor)}, ${ratio(barman, mine)} barman`, met: mine <= floor + 30 && barman / mine >= 4 };
      }
      for (const [label, v] of Object.entries(a)) if (!label.startsWith('ours') && label !== 'node -e 0') rows.push([`  ${label}`, store.name, `${ms(v)}${srvCall(aSrv[label])}`, '', '', '', '']);

      // Restore: one segment archived by each tool, fetched again and again.
      const rsrc = fresh(join(work, 'restore-src'));
      const name = rsrc.split('/').pop();
      execFileSync(ours('barman-cloud-wal-archive'), [...store.ours('ours', 'r-none'), rsrc], { env: store.env });
      execFileSync(ours('barman-cloud-wal-archive'), ['--lz4', ...store.ours('ours', 'r-lz4'), rsrc], { env: store.env });
      if (haveBarman) execFileSync('/usr/bin/barman-cloud-wal-archive', [...store.barman('barman', 'r-none'), rsrc], { env: store.env });
      execFileSync(store.putArgs(master, 'bare', 'r-none')[0], store.putArgs(master, 'bare', 'r-none')[1], { env: store.env });
      execFileSync(store.putArgs(lz4Master, 'bare', 'r-lz4')[0], store.putArgs(lz4Master, 'bare', 'r-lz4')[1], { env: store.env });
      // PostgreSQL's own %p: wal-restore leaves its sync to PostgreSQL there only (docs/format.md#restore-durability).
      const dest = join(work, 'pg_wal', 'RECOVERYXLOG');
      mkdirSync(join(work, 'pg_wal'), { recursive: true });
      const r = [
        { label: 'ours wal-restore (none)', cmd: ours('barman-cloud-wal-restore'), args: [...store.ours('ours', 'r-none'), name, dest], env: store.env },
        { label: 'ours wal-restore (lz4)', cmd: ours('barman-cloud-wal-restore'), args: [...store.ours('ours', 'r-lz4'), name, dest], env: store.env },
        { label: 'bare curl GET (16 MiB)', cmd: store.getArgs('bare', 'r-none', dest)[0], args: store.getArgs('bare', 'r-none', dest)[1], env: store.env },
        { label: 'bare curl GET (lz4 bytes)', cmd: store.getArgs('bare', 'r-lz4', dest)[0], args: store.getArgs('bare', 'r-lz4', dest)[1], env: store.env },
        node0(),
      ];
      if (haveBarman) r.push({ label: 'barman 3.4 wal-restore (none)', cmd: '/usr/bin/barman-cloud-wal-restore', args: [...store.barman('barman', 'r-none'), name, dest], env: store.env });
      if (havePgbackrest) {
        for (const codec of ['none', 'lz4']) {
          const cfg = pgbr(store, `pgbr`);
          const dir = join(work, `pgbr-r-${store.id}-${codec}`);
          mkdirSync(dir, { recursive: true });
          const seg = join(dir, segName(100000 + (codec === 'lz4' ? 1 : 0) + (store.name === 'RGW' ? 2 : 0)));
          placeSegment(seg);
          pgbackrest(cfg.args(`--compress-type=${codec}`, 'archive-push', seg), store.env);
          r.push({ label: `pgBackRest archive-get (${codec})`, cmd: '/usr/bin/pgbackrest', args: cfg.args('archive-get', seg.split('/').pop(), dest), env: store.env });
        }
      }
      const gRuns = await compare(r, { rounds, serverCpu: store.serverCpu });
      const g = Object.fromEntries(gRuns.map((x) => [x.label, x.median]));
      const gSrv = Object.fromEntries(gRuns.map((x) => [x.label, x.serverMs]));
      for (const codec of ['none', 'lz4']) {
        const mine = g[`ours wal-restore (${codec})`];
        const bare = g[codec === 'none' ? 'bare curl GET (16 MiB)' : 'bare curl GET (lz4 bytes)'];
        const floor = g['node -e 0'] + bare;
        const barman = g['barman 3.4 wal-restore (none)'];
        rows.push([`one-shot wal-restore (${codec})`, store.name, `${ms(mine)}${srvCall(gSrv[`ours wal-restore (${codec})`])}`, `${ms(floor)} (${ms(g['node -e 0'])} + ${ms(bare)})`, ms(mine - floor), ratio(barman, mine), ratio(g[`pgBackRest archive-get (${codec})`], mine)]);
        targets[`one-shot wal-restore (${codec}), ${store.name}`] = { value: `${ms(mine)}, floor ${ms(floor)}, ${ratio(barman, mine)} barman`, met: mine <= floor + 30 && barman / mine >= 4 };
      }
      for (const [label, v] of Object.entries(g)) if (!label.startsWith('ours') && label !== 'node -e 0') rows.push([`  ${label}`, store.name, `${ms(v)}${srvCall(gSrv[label])}`, '', '', '', '']);
    }

    // ---- sustained archive and restore, every store ----
    /** CPU seconds of this process's reaped children (the calls), and of a running process. */
    const procCpu = (pid, children) => {
      const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const a = f.slice(f.lastIndexOf(')') + 2).split(' ').map(Number);
      return (children ? a[13] + a[14] : a[11] + a[12]) / 100;
    };
    /** The --async worker's CPU so far (it idles 30 s after the run, so it is still there). */
    const workerCpu = (spool) => {
      try {
        const [id] = readdirSync(spool).filter((n) => n !== 'names');
        return procCpu(Number(readFileSync(join(spool, id, 'archive', 'worker.pid'), 'utf8')), false);
      } catch {
        return NaN;
      }
    };
    /**
     * PostgreSQL-like: a pg_wal with `count` .ready segments, one call each, oldest first. Client
     * CPU per segment: the calls (reaped children) plus, with `spool`, the --async worker.
     */
    const sequentialCalls = async (store, label, cmd, argsFor, pgwal, spool) => {
      mkdirSync(join(pgwal, 'archive_status'), { recursive: true });
      const names = [];
      for (let i = 0; i < count; i++) {
        const n = segName(seq++);
        placeSegment(join(pgwal, n));
        writeFileSync(join(pgwal, 'archive_status', `${n}.ready`), '');
        names.push(n);
      }
      const cpu0 = store.serverCpu?.();
      const calls0 = procCpu(process.pid, true);
      const t0 = process.hrtime.bigint();
      const ends = [];
      for (const n of names) {
        await runOnce(cmd, argsFor(join(pgwal, n)), { env: store.env });
        renameSync(join(pgwal, 'archive_status', `${n}.ready`), join(pgwal, 'archive_status', `${n}.done`));
        ends.push(process.hrtime.bigint());
      }
      const clientMs = ((procCpu(process.pid, true) - calls0 + (spool ? workerCpu(spool) : 0)) * 1000) / count;
      return { label, ...rates(t0, ends), names, serverMs: ((store.serverCpu?.() - cpu0) * 1000) / count, clientMs };
    };
    /**
     * The overall rate (the issue's figure) and the rate of calls 2..N: the first call of an --async
     * run starts the worker or prefetcher (a Node start, the first uploads or downloads), a large
     * share of a short run. Shown for the rows with a background worker only: without one, the first
     * call of --max-parallel / --parallel does a whole batch, and calls 2..N ride on it.
     */
    const rates = (t0, ends) => ({
      rate: ends.length / (Number(ends.at(-1) - t0) / 1e9),
      afterFirst: ends.length > 1 ? (ends.length - 1) / (Number(ends.at(-1) - ends[0]) / 1e9) : NaN,
    });
    const rateCell = (r) => `${r.rate.toFixed(1)} seg/s${/async/.test(r.label) && Number.isFinite(r.afterFirst) ? ` (${r.afterFirst.toFixed(1)} seg/s after the first call)` : ''}`;
    /**
     * Same-work floors: the bare loops with the codec's work our calls do, 16 MiB compressed with
     * `lz4 -1` before each upload, each download decoded with `lz4 -d` into a synced file (on two
     * cores the codec, not moving 5 MB, bounds the rate). Client CPU: xargs and all it started.
     */
    const sameWorkArchive = async (store) => {
      const tmp = join(work, `lz4tmp-${store.id}`);
      mkdirSync(tmp, { recursive: true });
      const cpu0 = store.serverCpu?.();
      const calls0 = procCpu(process.pid, true);
      const took = await bareParallel(store.lz4PutShell('bare', tmp), Array.from({ length: count }, (_, i) => [master, `sw/${i}.lz4`]), 8, store.env);
      return { rate: count / (took / 1000), serverMs: ((store.serverCpu?.() - cpu0) * 1000) / count, clientMs: ((procCpu(process.pid, true) - calls0) * 1000) / count };
    };
    const sameWorkRestore = async (store) => {
      const out = join(work, `sw-out-${store.id}`);
      mkdirSync(out, { recursive: true });
      const cpu0 = store.serverCpu?.();
      const calls0 = procCpu(process.pid, true);
      const took = await bareParallel(store.lz4GetShell('bare'), Array.from({ length: count }, (_, i) => [join(out, String(i)), `sw/${i}.lz4`]), 16, store.env);
      const r = { rate: count / (took / 1000), serverMs: ((store.serverCpu?.() - cpu0) * 1000) / count, clientMs: ((procCpu(process.pid, true) - calls0) * 1000) / count };
      // The pipe hides a failed GET (lz4 decodes nothing with status 0): every copy must be whole.
      const short = Array.from({ length: count }, (_, i) => join(out, String(i))).filter((f) => statSync(f).size !== SEG);
      rmSync(out, { recursive: true, force: true });
      if (short.length) throw new Error(`same-work restore floor: ${short.length} of ${count} decoded copies are not ${SEG} bytes`);
      return r;
    };
    for (const store of stores.filter(() => parts.has('archive'))) {
      for (const b of ['sus', 'bare', 'pgbr-sus']) await store.makeBucket(b);
      const results = [];
      const par = await sequentialCalls(store, 'ours --lz4 --max-parallel 8', ours('barman-cloud-wal-archive'),
        (p) => ['--lz4', '--max-parallel', '8', '--spool-dir', join(work, `spool-par-${store.id}`), ...store.ours('sus', 'par'), p], join(work, `pgwal-par-${store.id}`));
      results.push(par);
      let asy;
      if (asyncArchive) {
        asy = await sequentialCalls(store, 'ours --lz4 --async --max-parallel 8', ours('barman-cloud-wal-archive'),
          (p) => ['--lz4', '--async', '--max-parallel', '8', '--spool-dir', join(work, `spool-async-${store.id}`), ...store.ours('sus', 'async'), p],
          join(work, `pgwal-async-${store.id}`), join(work, `spool-async-${store.id}`));
        results.push(asy);
      }
      let pgb;
      if (havePgbackrest) {
        const fake = fakePgdata(join(work, `fakepg-${store.id}`), pg.data);
        const cfg = pgbackrestConfig(join(work, 'pgbr', `sus-${store.id}`.replace(/\W/g, '_')), store, 'pgbr-sus', { ...pg, data: fake });
        pgbackrest(cfg.args('stanza-create', `--pg1-path=${pg.data}`), store.env);
        pgb = await sequentialCalls(store, 'pgBackRest archive-push --archive-async --process-max=8 (lz4)', '/usr/bin/pgbackrest',
          (p) => cfg.args('--compress-type=lz4', '--archive-async', '--process-max=8', 'archive-push', p), join(fake, 'pg_wal'));
        pgb.cfg = cfg;
        pgb.fake = fake;
        results.push(pgb);
      }
      const bareCpu0 = store.serverCpu?.();
      const bareMs = await bareParallel(store.putShell('bare'), Array.from({ length: count }, (_, i) => [lz4Master, `sus/${i}.lz4`]), 8, store.env);
      const bareRate = count / (bareMs / 1000);
      const bareServerMs = ((store.serverCpu?.() - bareCpu0) * 1000) / count;
      const swA = await sameWorkArchive(store);
      const srv = (x) => (Number.isFinite(x) ? `; server CPU ${x.toFixed(0)} ms/seg` : '');
      const cli = (x) => (Number.isFinite(x) && x > 0 ? `; client CPU ${x.toFixed(0)} ms/seg` : '');
      const ofFloors = (rate, bare, same) => `${((rate / bare) * 100).toFixed(0)}% of floor; ${((rate / same) * 100).toFixed(0)}% of same-work floor`;
      for (const r of results) {
        rows.push([`sustained archive, ${count} sequential calls: ${r.label}`, store.name, `${rateCell(r)}${cli(r.clientMs)}${srv(r.serverMs)}`, `${bareRate.toFixed(1)} seg/s (bare ×8)`,
          ofFloors(r.rate, bareRate, swA.rate), '–', pgb && r !== pgb ? ratio(r.rate, pgb.rate) : '']);
      }
      rows.push([`  bare parallel uploader (xargs -P 8, lz4 bytes)`, store.name, `${bareRate.toFixed(1)} seg/s${srv(bareServerMs)}`, '', '', '', '']);
      rows.push([`  bare parallel lz4 -1 + uploader (xargs -P 8)`, store.name, `${swA.rate.toFixed(1)} seg/s${cli(swA.clientMs)}${srv(swA.serverMs)}`, '', '', '', '']);
      const best = asy ?? par;
      const swAText = `same-work floor (bare lz4 -1${store.kind === 'file' ? '' : ' + curl'} ×8) ${swA.rate.toFixed(1)}`;
      targets[`sustained archive, ${store.name}`] = store.kind === 'file'
        ? { value: `${best.rate.toFixed(1)} seg/s (${best.label}); ${swAText}`, met: best.rate >= 50 }
        : { value: `${best.rate.toFixed(1)} seg/s = ${((best.rate / bareRate) * 100).toFixed(0)}% of bare, pgBackRest ${pgb ? pgb.rate.toFixed(1) : '–'}; ${swAText}`, met: best.rate >= 0.8 * bareRate && (!pgb || best.rate > pgb.rate) };

      if (!parts.has('restore')) continue;
      // Restore of what was archived above, in order, one call per segment.
      const rres = [];
      const restoreCalls = async (label, cmd, argsFor, names, dest) => {
        mkdirSync(dirname(dest), { recursive: true });
        const t0 = process.hrtime.bigint();
        const ends = [];
        for (const n of names) {
          await runOnce(cmd, argsFor(n, dest), { env: store.env });
          ends.push(process.hrtime.bigint());
        }
        return { label, ...rates(t0, ends) };
      };
      rres.push(await restoreCalls('ours --parallel 16', ours('barman-cloud-wal-restore'),
        (n, d) => ['--parallel', '16', '--spool-dir', join(work, `pre-${store.id}`), ...store.ours('sus', 'par'), n, d], par.names, join(work, 'pg_wal', 'RECOVERYXLOG')));
      if (asyncRestore) {
        // --async alone prefetches nothing (it needs --parallel 2 or more): it ran one-shot calls.
        rres.push(await restoreCalls('ours --async --parallel 16', ours('barman-cloud-wal-restore'),
          (n, d) => ['--async', '--parallel', '16', '--spool-dir', join(work, `pre-async-${store.id}`), ...store.ours('sus', 'par'), n, d], par.names, join(work, 'pg_wal', 'RECOVERYXLOG')));
      }
      let pgg;
      if (pgb) {
        // Its spool must be empty of the push side's state; a fresh spool path per direction.
        mkdirSync(join(work, `pgbr-get-spool-${store.id}`), { recursive: true });
        pgg = await restoreCalls('pgBackRest archive-get --archive-async --process-max=8', '/usr/bin/pgbackrest',
          (n, d) => pgb.cfg.args('--archive-async', '--process-max=8', '--archive-get-queue-max=256MiB', `--spool-path=${join(work, `pgbr-get-spool-${store.id}`)}`, 'archive-get', n, d),
          pgb.names, join(pgb.fake, 'pg_wal', 'RECOVERYXLOG'));
        rres.push(pgg);
      }
      const dl = join(work, `dl-${store.id}`);
      mkdirSync(dl, { recursive: true });
      const bareGetMs = await bareParallel(store.getShell('bare'), Array.from({ length: count }, (_, i) => [join(dl, String(i)), `sus/${i}.lz4`]), 16, store.env);
      const bareGet = count / (bareGetMs / 1000);
      const swR = await sameWorkRestore(store);
      for (const r of rres) {
        rows.push([`sustained restore, ${count} sequential calls: ${r.label}`, store.name, rateCell(r), `${bareGet.toFixed(1)} seg/s (bare ×16)`,
          ofFloors(r.rate, bareGet, swR.rate), '–', pgg && r !== pgg ? ratio(r.rate, pgg.rate) : '']);
      }
      rows.push([`  bare parallel downloader (xargs -P 16, lz4 bytes)`, store.name, `${bareGet.toFixed(1)} seg/s`, '', '', '', '']);
      rows.push([`  bare parallel downloader + lz4 -d (xargs -P 16)`, store.name, `${swR.rate.toFixed(1)} seg/s${cli(swR.clientMs)}${srv(swR.serverMs)}`, '', '', '', '']);
      const bestR = rres.filter((r) => r.label.startsWith('ours')).sort((x, y) => y.rate - x.rate)[0];
      const swRText = `same-work floor (bare ${store.kind === 'file' ? '' : 'curl + '}lz4 -d ×16) ${swR.rate.toFixed(1)}`;
      targets[`sustained restore, ${store.name}`] = store.kind === 'file'
        ? { value: `${bestR.rate.toFixed(1)} seg/s (${bestR.label}); ${swRText}`, met: bestR.rate >= 80 }
        : { value: `${bestR.rate.toFixed(1)} seg/s = ${((bestR.rate / bareGet) * 100).toFixed(0)}% of bare; ${swRText}`, met: bestR.rate >= 0.8 * bareGet };
    }

    // ---- client CPU per archived segment (user + sys of the processes we start) ----
    const s3 = stores.find((s) => s.kind === 's3') ?? stores[0];
    const cpu = (cmd, args) => {
      const r = spawnSync('/usr/bin/time', ['-f', '%U %S %M', cmd, ...args], { env: s3.env, encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`${cmd} failed: ${r.stderr.slice(-400)}`);
      const [u, s, kb] = r.stderr.trim().split('\n').at(-1).split(' ').map(Number);
      return { cpuMs: (u + s) * 1000, mb: kb / 1024 };
    };
    if (parts.has('cpu')) {
    await s3.makeBucket('cpu');
    const cpuRounds = Math.max(3, Math.min(rounds, 7));
    const oursCpu = [];
    const barmanCpu = [];
    for (let i = 0; i < cpuRounds; i++) {
      oursCpu.push(cpu(ours('barman-cloud-wal-archive'), ['--lz4', ...s3.ours('cpu'), fresh(join(work, 'cpu'))]).cpuMs);
      if (haveBarman && s3.barman) barmanCpu.push(cpu('/usr/bin/barman-cloud-wal-archive', ['-z', ...s3.barman('cpu'), fresh(join(work, 'cpu'))]).cpuMs);
    }
    const oc = median(oursCpu);
    const bc = barmanCpu.length ? median(barmanCpu) : undefined;
    rows.push([`client CPU per segment, one-shot wal-archive --lz4 (user+sys, median of ${cpuRounds})`, s3.name, ms(oc), '', '', bc ? `${(bc / oc).toFixed(1)}× less than barman -z (${ms(bc)})` : '–', '']);
    targets['client CPU per archived segment, lz4'] = { value: `${ms(oc)} vs barman -z ${bc ? ms(bc) : '–'}`, met: bc !== undefined && oc <= bc / 5 };
    }

    // ---- peak RSS per codec (directory store: the codec, not the network, is what varies) ----
    const file = stores.find((s) => s.kind === 'file') ?? s3;
    if (parts.has('rss')) {
    let worstRss = 0;
    for (const [codec, flags] of [['none', []], ['gzip', ['-z']], ['bzip2', ['-j']], ['snappy', ['--snappy']], ['zstd', ['--zstd']], ['lz4', ['--lz4']], ['xz', ['--xz']]]) {
      const p = fresh(join(work, 'rss'));
      const a = cpu(ours('barman-cloud-wal-archive'), [...flags, ...file.ours(`rss-${codec}`), p]);
      const r = cpu(ours('barman-cloud-wal-restore'), [...file.ours(`rss-${codec}`), p.split('/').pop(), join(work, 'RSSXLOG')]);
      rows.push([`peak RSS, wal-archive / wal-restore (${codec})`, file.name, `${a.mb.toFixed(0)} / ${r.mb.toFixed(0)} MB`, '', '', '', '']);
      if (codec !== 'xz') worstRss = Math.max(worstRss, a.mb, r.mb);
    }
    targets['peak RSS wal-archive / wal-restore (all codecs but xz)'] = { value: `max ${worstRss.toFixed(0)} MB`, met: worstRss <= 64 };
    }

    notes.push(`Floors: one-shot rows add the \`node -e 0\` median to a bare \`curl --aws-sigv4 -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD'\` PUT/GET of the same bytes (16 MiB, or the lz4 bytes), interleaved with the contenders; sustained rows compare with a bare \`xargs -P N curl\` loop over ${count} copies of the lz4 bytes (directory store: \`cp\` + \`sync\`).`);
    notes.push('Server CPU of a one-shot call: the CPU of the server\'s process group (moto, or RGW\'s daemons) from just before the call until 100 ms after it ends, read in 10 ms ticks from /proc, median of the rounds; it includes the server\'s background work over that time, so compare it with the bare curl call\'s figure of the same store.');
    notes.push(`Same-work floors ("bare parallel lz4 -1 + uploader", "bare parallel downloader + lz4 -d"): the same loops, but each copy is compressed with \`lz4 -1\` before it is stored (directory store: written and synced; S3: \`lz4 -1 -c\` to a temp file, then the same curl PUT) and each download is decoded with \`lz4 -d\` into a synced file, as our calls do; on two cores that codec work, not moving 5 MB, bounds the rate, so it is the floor a sustained rate can be held to ("M% of same-work floor"). Rates "after the first call" (rows with a background worker: ours --async, pgBackRest --archive-async) leave out the call that starts the worker or prefetcher; in a short run they also gain from what the worker did ahead during that call.`);
    notes.push(`Ratios "vs" are the other tool's time (or our rate) over ours: above 1× we are faster. barman 3.4 has no lz4 and no directory store: its one-shot ratio is against its uncompressed run; CPU is against its -z (gzip level 9).`);
    notes.push(`--async: ${asyncArchive ? 'offered by wal-archive' : 'not offered by this wal-archive (rows appear when it is)'}; ${asyncRestore ? 'offered by wal-restore' : 'not offered by this wal-restore'}.`);
    for (const s of stores) if (s.note) notes.push(`${s.name}: ${s.note}.`);
  } finally {
    pg?.stop();
    await stopAll();
    rmSync(work, { recursive: true, force: true });
  }
  return {
    headers: ['what', 'store', 'median / rate', 'floor', 'ours − floor', 'vs barman 3.4', 'vs pgBackRest'],
    rows, notes, targets,
  };
}
