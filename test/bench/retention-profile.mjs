// Where a retention run's time goes on Ceph RGW, and paired runs of several builds (issue 14).
//
//   node test/bench/retention-profile.mjs [--backups 200] [--wals 40000] [--rounds 3] [--cpu-prof DIR] [BIN_DIR…]
//
// Each round seeds one copy of retention.mjs's catalog per build (prefixes v0/, v1/, … in a fresh
// bucket, all seeded before any run, so that each run meets the same bucket size), then runs
// `backup-delete -r 'REDUNDANCY backups/2'` of each build on its copy, in an order that rotates per
// round. Per run: wall time, our CPU (GNU time), the RGW cluster's CPU (radosgw, OSD, monitor from
// /proc), and a profile from radosgw's own access log (beast lines: start time and latency of every
// request), split into listing, GETs (backup.info, keep), and the DeleteObjects requests before the
// WAL phase, during it and after it; listings with a start-after (the check after a quiet
// DeleteObjects, docs/format.md#result-answers) are a class of their own. BIN_DIR defaults to this
// checkout's bin/. With --cpu-prof DIR, each run of ours writes a V8 CPU profile under
// DIR/r<round>-v<build>/ (node --cpu-prof; it slows the run, so time without it).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { catalog } from './retention.mjs';
import { descendants, processCpuMs } from './servers.mjs';
import { startStores, seedObjects } from './stores.mjs';
import { median } from './lib.mjs';
import { timed } from './retention-seed.mjs';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { backups: { type: 'string', default: '200' }, wals: { type: 'string', default: '40000' }, rounds: { type: 'string', default: '3' }, 'cpu-prof': { type: 'string' } },
});
const backups = Number(values.backups);
const wals = Number(values.wals);
const rounds = Number(values.rounds);
const root = resolve(import.meta.dirname, '..', '..');
const bins = positionals.length > 0 ? positionals.map((p) => resolve(p)) : [join(root, 'bin')];

/** radosgw's beast access lines: { at (ms epoch), ms, method, target }. */
function accessLines(text, fromMs, toMs) {
  const out = [];
  const re = /beast: \S+ \S+ - \S+ \[(\d+)\/(\w+)\/(\d+):(\d+):(\d+):(\d+)\.(\d+) [^\]]*\] "(\w+) (\S+) [^"]*" (\d+) .* latency=([\d.]+)s/;
  const months = { Jan: 0, Feb: 1, Mar: 2, Apr: 3, May: 4, Jun: 5, Jul: 6, Aug: 7, Sep: 8, Oct: 9, Nov: 10, Dec: 11 };
  for (const line of text.split('\n')) {
    const m = re.exec(line);
    if (!m) continue;
    const at = Date.UTC(+m[3], months[m[2]], +m[1], +m[4], +m[5], +m[6], +m[7]);
    if (at < fromMs - 5 || at > toMs) continue;
    out.push({ at, ms: Number(m[11]) * 1000, method: m[8], target: decodeURIComponent(m[9]), status: Number(m[10]) });
  }
  return out;
}

/** Our -v log: when the WAL phase began (ms epoch), from its INFO line. */
function walPhaseStart(stderr) {
  const line = stderr.split('\n').find((l) => l.includes('Deleting the WAL files no remaining backup needs'));
  if (!line) return Infinity;
  const m = /^(\d+)-(\d+)-(\d+) (\d+):(\d+):(\d+),(\d+)/.exec(line);
  return new Date(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6], +m[7]).getTime();
}

/** Each request class: count, sum of latencies, and the span from its first start to its last end. */
function profile(lines, walStart) {
  const classes = {};
  const add = (name, l) => {
    const c = (classes[name] ??= { n: 0, busyMs: 0, first: Infinity, last: 0 });
    c.n++;
    c.busyMs += l.ms;
    c.first = Math.min(c.first, l.at);
    c.last = Math.max(c.last, l.at + l.ms);
  };
  const posts = lines.filter((l) => l.method === 'POST' && /[?&]delete/.test(l.target));
  const walPosts = posts.filter((l) => l.at >= walStart);
  const lastWalListing = Math.max(0, ...lines.filter((l) => l.method === 'GET' && /list-type=2.*prefix=[^&]*\/wals\//.test(l.target) && !/delimiter|start-after/.test(l.target)).map((l) => l.at + l.ms));
  for (const l of lines) {
    if (l.method === 'GET' && /list-type=2/.test(l.target) && /[?&]start-after=/.test(l.target)) add('list check (start-after)', l);
    else if (l.method === 'GET' && /list-type=2/.test(l.target)) add(/prefix=[^&]*\/base\//.test(l.target) ? 'list base/' : 'list wals/', l);
    else if (l.method === 'GET' && l.target.endsWith('/backup.info')) add('GET backup.info', l);
    else if (l.method === 'GET' && /[?&]uploads/.test(l.target)) add('list uploads', l);
    else if (l.method === 'POST' && /[?&]delete/.test(l.target)) {
      // After the WAL listing ended, the last POST (one per 1,000 backups) is phase 3's backup.info batch.
      if (l.at < walStart) add('DeleteObjects, data', l);
      else if (walPosts.length > 0 && l === walPosts.at(-1) && l.at >= lastWalListing) add('DeleteObjects, backup.info', l);
      else add('DeleteObjects, WAL', l);
    } else add(`${l.method} other`, l);
  }
  return classes;
}

const work = mkdtempSync(join(tmpdir(), 'bc-retention-profile-'));
const { stores, stopAll } = await startStores(work, ['rgw']);
const rgw = stores[0];
const rgwLog = join(dirname(rgw.conf), 'log', 'client.rgw.log');
const results = bins.map(() => []);
try {
  const procs = descendants(rgw.pid);
  const names = new Map(procs.map((p) => [p, readFileSync(`/proc/${p}/comm`, 'utf8').trim()]));
  const radosgw = procs.filter((p) => names.get(p) === 'radosgw');
  const osd = procs.filter((p) => names.get(p) === 'ceph-osd');
  for (let r = 0; r < rounds; r++) {
    const bucket = `profile-${r}`;
    await rgw.makeBucket(bucket);
    const t0 = Date.now();
    const items = [...catalog(backups, wals)];
    let seeded = 0;
    for (let v = 0; v < bins.length; v++) seeded += await seedObjects(rgw, bucket, items.map(([k, b]) => [`v${v}/${k}`, b]), 32);
    console.error(`round ${r + 1}: ${seeded} objects seeded in ${((Date.now() - t0) / 1000).toFixed(0)} s; load ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
    for (let k = 0; k < bins.length; k++) {
      const v = (k + r) % bins.length;
      await new Promise((res) => setTimeout(res, 2000)); // radosgw's log and the seeding's tail settle
      const before = { all: processCpuMs(procs), rgw: processCpuMs(radosgw), osd: processCpuMs(osd) };
      const started = Date.now();
      const cpuProf = values['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${resolve(values['cpu-prof'], `r${r + 1}-v${v}`)}`] : [];
      const run = await timed(process.execPath, [...cpuProf, join(bins[v], 'barman-cloud-backup-delete'), '-v', '--format', 'json', '--endpoint-url', rgw.url,
        '-r', `REDUNDANCY ${Math.ceil(backups / 2)}`, `s3://${bucket}/v${v}`, 'srv'], rgw.env);
      const ended = Date.now();
      const server = { all: processCpuMs(procs) - before.all, rgw: processCpuMs(radosgw) - before.rgw, osd: processCpuMs(osd) - before.osd };
      await new Promise((res) => setTimeout(res, 500));
      const summary = JSON.parse(run.stdout.trim().split('\n').at(-1));
      const keys = summary.backup_objects_deleted + summary.wal_objects_deleted;
      const lines = accessLines(readFileSync(rgwLog, 'utf8'), started, ended);
      const prof = profile(lines, walPhaseStart(run.stderr));
      const row = { bin: bins[v], ms: run.ms, ourCpuMs: run.cpuMs, serverCpuMs: server.all, radosgwCpuMs: server.rgw, osdCpuMs: server.osd, keys, requests: lines.length, prof };
      results[v].push(row);
      const phases = Object.entries(prof).map(([n, c]) => `${n}: ${c.n} req, busy ${(c.busyMs / 1000).toFixed(1)} s, span ${((c.last - c.first) / 1000).toFixed(1)} s at +${((c.first - started) / 1000).toFixed(1)} s`).join('; ');
      console.log(JSON.stringify({ round: r + 1, variant: v, bin: bins[v], wallS: +(run.ms / 1000).toFixed(2), ourCpuS: +(run.cpuMs / 1000).toFixed(2),
        serverCpuS: +(server.all / 1000).toFixed(1), radosgwCpuS: +(server.rgw / 1000).toFixed(1), osdCpuS: +(server.osd / 1000).toFixed(1),
        serverCpuMsPerKey: +(server.all / keys).toFixed(3), keys, load: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ') }));
      console.log(`  ${phases}`);
    }
  }
  for (let v = 0; v < bins.length; v++) {
    const rs = results[v];
    console.log(`${bins[v]}: median wall ${(median(rs.map((x) => x.ms)) / 1000).toFixed(2)} s, server CPU ${(median(rs.map((x) => x.serverCpuMs)) / 1000).toFixed(1)} s, ` +
      `ours ${(median(rs.map((x) => x.ourCpuMs)) / 1000).toFixed(2)} s (${rs.length} runs: ${rs.map((x) => (x.ms / 1000).toFixed(1)).join(', ')})`);
  }
  if (bins.length > 1) {
    for (let v = 1; v < bins.length; v++) {
      const ratios = results[v].map((x, i) => x.ms / results[0][i].ms);
      console.log(`${bins[v]} / ${bins[0]}: median paired ratio ${median(ratios).toFixed(3)} (${ratios.map((x) => x.toFixed(3)).join(', ')})`);
    }
  }
} finally {
  await stopAll();
  rmSync(work, { recursive: true, force: true });
}
