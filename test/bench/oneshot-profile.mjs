// Where the time of ONE one-shot WAL call goes, against its floor, on moto and on Ceph RGW started
// in the same run (issue 14, "Find the ~120 ms"):
//
//   node test/bench/oneshot-profile.mjs [--rounds 15] [--servers moto,rgw] [--json FILE]
//
// Interleaved medians of: `node -e 0`; a bare `curl --aws-sigv4` PUT (UNSIGNED-PAYLOAD) and GET of
// the same 16 MiB segment, and of its lz4 bytes; our wal-archive (none, --lz4) and wal-restore
// (none, lz4); barman 3.4's wal-archive and wal-restore when installed. floor = node -e 0 + curl
// of the same bytes. Each call's client CPU (user + sys of the process tree, from bash's `times`
// around it; less noisy than wall time on a shared machine) is reported beside its wall time.
// Then a few traced runs of ours (test/bench/oneshot-trace.mjs preloaded) give the phases: Node's
// boot, everything up to the first request (module load, config, opening the file), each request
// with its server time (body sent → answer's headers), hashing, reading, lz4, and the exit. The
// server's CPU per call is read from /proc (utime + stime of its processes) around every call.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync, linkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { median, walSegment, withLongPageHeader } from './lib.mjs';
import { descendants, listenerPid, processCpuMs, RGW_KEYS, startMoto, startRgw } from './servers.mjs';

const root = resolve(import.meta.dirname, '..', '..');
const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '15' },
    traced: { type: 'string', default: '5' },
    servers: { type: 'string', default: 'moto,rgw' },
    json: { type: 'string' },
    // Another checkout's build (e.g. main) run beside ours, interleaved: before/after in one run.
    baseline: { type: 'string' },
  },
});
const rounds = Number(values.rounds);
const tracedRuns = Number(values.traced);
const KEY = { id: RGW_KEYS.accessKeyId, secret: RGW_KEYS.secretAccessKey };

const segName = (i) => `0000000100000${(0x100 + Math.floor(i / 256)).toString(16).toUpperCase().padStart(3, '0')}000000${(i % 256).toString(16).toUpperCase().padStart(2, '0')}`;



/**
 * One call, timed, with the CPU (user + sys) of everything it started: bash's `times` prints the
 * children's totals (getrusage, ms resolution) once the command has exited.
 */
function runTimed(cmd, args, env) {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn('bash', ['-c', '"$@"; rc=$?; times >&2; exit $rc', 'bash', cmd, ...args], { stdio: ['ignore', 'ignore', 'pipe'], env });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      if (code !== 0) return reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${stderr.slice(-500)}`));
      const m = /(\d+)m([\d.]+)s (\d+)m([\d.]+)s\s*$/.exec(stderr.trim());
      resolve({ ms, cpu: m ? (Number(m[1]) * 60 + Number(m[2]) + Number(m[3]) * 60 + Number(m[4])) * 1000 : NaN });
    });
  });
}

const curlAuth = ['--aws-sigv4', 'aws:amz:us-east-1:s3', '--user', `${KEY.id}:${KEY.secret}`, '-H', 'x-amz-content-sha256: UNSIGNED-PAYLOAD'];

async function profileServer(name, server, work, segment) {
  const bucket = `oneshot-${name}`;
  execFileSync('curl', ['-sf', '-X', 'PUT', ...curlAuth, `${server.url}/${bucket}`]);
  const env = { ...process.env, PATH: `${dirname(process.execPath)}:${process.env.PATH}`,
    AWS_ACCESS_KEY_ID: KEY.id, AWS_SECRET_ACCESS_KEY: KEY.secret, AWS_DEFAULT_REGION: 'us-east-1' };
  // As in test/bench/wal.mjs: PostgreSQL's environment has no NODE_EXTRA_CA_CERTS (it costs Node
  // ~50 ms per start when set to the system bundle).
  delete env.NODE_EXTRA_CA_CERTS;
  const url = ['--endpoint-url', server.url, `s3://${bucket}/bench`, 'srv'];
  const master = join(work, 'segment');
  const pg = join(work, name, 'pg_wal');
  mkdirSync(pg, { recursive: true });
  let seq = 0;
  const fresh = () => {
    const p = join(pg, segName(seq++));
    linkSync(master, p);
    return p;
  };
  // The segments restored are copies with their own long page header (wal-restore refuses one without).
  const placed = (n) => (writeFileSync(join(pg, n), withLongPageHeader(readFileSync(master), n)), join(pg, n));
  // One segment to GET/restore, stored by us (plain) and by curl.
  const restoreName = segName(9999);
  execFileSync(join(root, 'bin/barman-cloud-wal-archive'), [...url, placed(restoreName)], { env });
  const restoreKey = `${server.url}/${bucket}/bench/srv/wals/${restoreName.slice(0, 16)}/${restoreName}`;
  // The same segment stored --lz4 by us; its bytes are the lz4 floor's payload.
  const restoreLz4 = segName(9998);
  execFileSync(join(root, 'bin/barman-cloud-wal-archive'), ['--lz4', ...url, placed(restoreLz4)], { env });
  const lz4Key = `${server.url}/${bucket}/bench/srv/wals/${restoreLz4.slice(0, 16)}/${restoreLz4}.lz4`;
  const lz4Bytes = join(work, `${name}.lz4`);
  execFileSync('curl', ['-sf', ...curlAuth, '-o', lz4Bytes, lz4Key]);
  const barman = ['/usr/bin/barman-cloud-wal-archive', '/usr/bin/barman-cloud-wal-restore'].every((b) => existsSync(b));
  // PostgreSQL's own %p: wal-restore leaves its sync to PostgreSQL there only (docs/format.md#restore-durability).
  const dest = join(work, name, 'pg_wal', 'RECOVERYXLOG');
  mkdirSync(dirname(dest), { recursive: true });
  const bin = (b) => join(root, 'bin', b);
  const pids = descendants(server.pid);

  const contenders = [
    { label: 'node -e 0', cmd: process.execPath, args: ['-e', '0'] },
    { label: 'curl PUT', cmd: 'curl', before: () => ['-sf', ...curlAuth, '-T', master, `${server.url}/${bucket}/curl/${seq++}`] },
    { label: 'curl GET', cmd: 'curl', before: () => ['-sf', ...curlAuth, '-o', dest, restoreKey] },
    { label: 'curl PUT lz4 bytes', cmd: 'curl', before: () => ['-sf', ...curlAuth, '-T', lz4Bytes, `${server.url}/${bucket}/curl/${seq++}.lz4`] },
    { label: 'curl GET lz4 bytes', cmd: 'curl', before: () => ['-sf', ...curlAuth, '-o', dest, lz4Key] },
    { label: 'archive none', cmd: bin('barman-cloud-wal-archive'), before: () => [...url, fresh()] },
    { label: 'archive lz4', cmd: bin('barman-cloud-wal-archive'), before: () => ['--lz4', ...url, fresh()] },
    { label: 'restore', cmd: bin('barman-cloud-wal-restore'), before: () => [...url, restoreName, dest] },
    { label: 'restore lz4', cmd: bin('barman-cloud-wal-restore'), before: () => [...url, restoreLz4, dest] },
  ];
  if (barman) {
    contenders.push(
      { label: 'barman 3.4 archive none', cmd: '/usr/bin/barman-cloud-wal-archive', before: () => [...url, fresh()] },
      { label: 'barman 3.4 restore', cmd: '/usr/bin/barman-cloud-wal-restore', before: () => [...url, restoreName, dest] },
    );
  }
  if (values.baseline) {
    const base = (b) => join(resolve(values.baseline), 'bin', b);
    contenders.push(
      { label: 'baseline archive none', cmd: base('barman-cloud-wal-archive'), before: () => [...url, fresh()] },
      { label: 'baseline archive lz4', cmd: base('barman-cloud-wal-archive'), before: () => ['--lz4', ...url, fresh()] },
      { label: 'baseline restore', cmd: base('barman-cloud-wal-restore'), before: () => [...url, restoreName, dest] },
      { label: 'baseline restore lz4', cmd: base('barman-cloud-wal-restore'), before: () => [...url, restoreLz4, dest] },
    );
  }
  const samples = new Map(contenders.map((c) => [c.label, { wall: [], cpu: [], client: [] }]));
  for (let r = -2; r < rounds; r++) {
    for (let k = 0; k < contenders.length; k++) {
      const c = contenders[(k + Math.max(r, 0)) % contenders.length];
      const args = c.before ? c.before() : c.args;
      rmSync(dest, { force: true });
      const cpu0 = processCpuMs(pids);
      const { ms, cpu: client } = await runTimed(c.cmd, args, env);
      const cpu = processCpuMs(pids) - cpu0;
      if (r >= 0) {
        samples.get(c.label).wall.push(ms);
        samples.get(c.label).cpu.push(cpu);
        samples.get(c.label).client.push(client);
      }
    }
  }
  const med = (l) => median(samples.get(l).wall);
  const meanCpu = (l) => samples.get(l).cpu.reduce((a, b) => a + b, 0) / samples.get(l).cpu.length;
  const node0 = med('node -e 0');
  const rows = contenders.map((c) => ({ label: c.label, median: med(c.label), serverCpu: meanCpu(c.label), clientCpu: median(samples.get(c.label).client) }));
  const floors = {
    archive: node0 + med('curl PUT'), restore: node0 + med('curl GET'),
    archiveLz4: node0 + med('curl PUT lz4 bytes'), restoreLz4: node0 + med('curl GET lz4 bytes'),
  };
  for (const row of rows) {
    if (/archive none$/.test(row.label)) row.overFloor = row.median - floors.archive;
    if (/archive lz4$/.test(row.label)) row.overFloor = row.median - floors.archiveLz4;
    if (/restore$/.test(row.label)) row.overFloor = row.median - floors.restore;
    if (/restore lz4$/.test(row.label)) row.overFloor = row.median - floors.restoreLz4;
  }
  if (barman) {
    const b = { archive: med('barman 3.4 archive none'), restore: med('barman 3.4 restore') };
    for (const row of rows) {
      if (row.label.startsWith('barman')) continue;
      if (/archive (none|lz4)$/.test(row.label)) row.vsBarman = b.archive / row.median;
      if (/restore( lz4)?$/.test(row.label)) row.vsBarman = b.restore / row.median;
    }
  }

  // Traced runs: the phases of ours.
  const traceFile = join(work, `${name}.trace`);
  const traced = {};
  for (const [label, lz4] of [['archive none', false], ['archive lz4', true], ['restore', false], ['restore lz4', false]]) {
    writeFileSync(traceFile, '');
    const c = contenders.find((x) => x.label === label);
    const tenv = { ...env, BC_ONESHOT_TRACE: traceFile, NODE_OPTIONS: `--import ${join(root, 'test/bench/oneshot-trace.mjs')}`,
      ...(lz4 ? { BC_ONESHOT_TRACE_LZ4: '1' } : {}) };
    for (let i = 0; i < tracedRuns; i++) {
      rmSync(dest, { force: true });
      await runTimed(c.cmd, c.before(), tenv);
    }
    traced[label] = readFileSync(traceFile, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l));
  }
  return { rows, floors, node0, traced };
}

/** Median of each phase over the traced runs. */
function phases(runs) {
  const pick = (f) => median(runs.map(f).filter((x) => Number.isFinite(x)));
  const out = [['Node boot (to preload)', pick((t) => t.boot)], ['up to the first request (modules, config, file open)', pick((t) => t.requests[0]?.start - t.boot)]];
  const n = Math.max(...runs.map((t) => t.requests.length));
  for (let i = 0; i < n; i++) {
    const rs = runs.map((t) => t.requests[i]).filter(Boolean);
    const first = rs[0];
    out.push([`${first.method} ${first.path.includes('?list') ? 'LIST' : 'object'} (${first.status}): issue → body sent`, median(rs.map((r) => r.sent - r.start))]);
    out.push([`  server: body sent → headers`, median(rs.map((r) => r.headers - r.sent))]);
    out.push([`  answer body`, median(rs.map((r) => r.end - r.headers))]);
    if (i + 1 < n) out.push([`  gap to next request`, median(runs.map((t) => (t.requests[i + 1] && t.requests[i].end ? t.requests[i + 1].start - t.requests[i].end : NaN)).filter(Number.isFinite))]);
  }
  out.push(['last answer → exit', pick((t) => t.exit - Math.max(...t.requests.map((r) => r.end ?? NaN)))]);
  // Client CPU (process.cpuUsage, user + sys of this process): Node's boot, up to the first
  // request, from there to exit.
  out.push(['CPU: Node boot (to preload)', pick((t) => t.cpu?.boot)]);
  out.push(['CPU: preload → first request', pick((t) => t.cpu?.first - t.cpu?.boot)]);
  out.push(['CPU: first request → exit', pick((t) => t.cpu?.exit - t.cpu?.first)]);
  out.push(['CPU: whole process', pick((t) => t.cpu?.exit)]);
  out.push(['total (process start → exit)', pick((t) => t.exit)]);
  for (const alg of new Set(runs.flatMap((t) => Object.keys(t.hash)))) out.push([`(inside) hashing ${alg}`, pick((t) => t.hash[alg] ?? 0)]);
  out.push(['(inside) fs.readSync', pick((t) => t.read)]);
  if (runs.some((t) => t.lz4.calls)) out.push(['(inside) lz4 first block call → last result', pick((t) => t.lz4.last - t.lz4.first)]);
  return out;
}

const work = mkdtempSync(join(tmpdir(), 'bc-oneshot-'));
writeFileSync(join(work, 'segment'), walSegment());
const results = {};
const stops = [];
try {
  for (const name of values.servers.split(',')) {
    // Every round stores ~7 segments of 16 MiB: RGW's default memstore fills within ~10 rounds, and
    // a full OSD stalls every PUT (curl's and ours alike) instead of refusing it.
    const server = name === 'moto' ? await startMoto() : await startRgw({ memstoreMib: 6144 });
    if (name === 'moto') server.pid = listenerPid(server.url);
    stops.push(server.stop);
    results[name] = await profileServer(name, server, work, null);
    await server.stop();
    stops.pop();
  }
} finally {
  for (const s of stops) await s();
  rmSync(work, { recursive: true, force: true });
}
const f = (x) => (x === undefined ? '' : x.toFixed(1));
for (const [name, r] of Object.entries(results)) {
  console.log(`\n### ${name}: ${rounds} interleaved rounds (medians; server CPU = mean per call)\n`);
  console.log('| what | wall ms | − floor ms | barman 3.4 ÷ this | client CPU ms | server CPU ms |\n|---|---|---|---|---|---|');
  const x = (v) => (v === undefined ? '' : `${v.toFixed(2)}×`);
  for (const row of r.rows) console.log(`| ${row.label} | ${f(row.median)} | ${f(row.overFloor)} | ${x(row.vsBarman)} | ${f(row.clientCpu)} | ${f(row.serverCpu)} |`);
  console.log(`| floor archive (node -e 0 + curl PUT) | ${f(r.floors.archive)} | | | | |`);
  console.log(`| floor archive lz4 (node -e 0 + curl PUT of the lz4 bytes) | ${f(r.floors.archiveLz4)} | | | | |`);
  console.log(`| floor restore (node -e 0 + curl GET) | ${f(r.floors.restore)} | | | | |`);
  console.log(`| floor restore lz4 (node -e 0 + curl GET of the lz4 bytes) | ${f(r.floors.restoreLz4)} | | | | |`);
  for (const [label, runs] of Object.entries(r.traced)) {
    console.log(`\n${name}, ${label}: phases, median of ${runs.length} traced runs (ms since process start)\n`);
    console.log('| phase | ms |\n|---|---|');
    for (const [p, ms] of phases(runs)) console.log(`| ${p} | ${f(ms)} |`);
  }
}
if (values.json) writeFileSync(values.json, JSON.stringify(results, null, 1));
