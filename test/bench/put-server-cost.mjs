// What a 16 MiB PUT costs the SERVER, request variant by request variant (issue 14, "the server's
// own time for our PUT"): moto and Ceph RGW started here, each variant run interleaved, the
// server's CPU read around every call, 150 ms after the answer. Two readings: utime + stime of all
// its processes (/proc/PID/stat, 10 ms ticks, exited threads included: moto starts a thread per
// request) and, per process, the summed schedstat of its live threads (nanoseconds: radosgw's and
// ceph-osd's threads live on, so this is the precise figure for RGW). Paired differences against
// the first variant are printed per process.
//
//   node test/bench/put-server-cost.mjs [--rounds 15] [--servers moto,rgw] [--variants a,b] [--ours]
//
// Variants differ from the floor (`curl --aws-sigv4 -T` with UNSIGNED-PAYLOAD, as in
// oneshot-profile.mjs) by one thing each, sent by raw-put.mjs (curl signs an `Expect:` header it
// then leaves out); `--ours` adds our whole wal-archive call (its LISTs and 404 GET included), each
// of its small requests alone, a curl GET and our wal-restore of the same segment.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, mkdirSync, linkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { median, walSegment } from './lib.mjs';
import { descendants, listenerPid, processCpuMs, RGW_KEYS, startMoto, startRgw, TICK_MS } from './servers.mjs';

const root = resolve(import.meta.dirname, '..', '..');
const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '15' },
    servers: { type: 'string', default: 'moto,rgw' },
    variants: { type: 'string' },
    ours: { type: 'boolean', default: false },
    json: { type: 'string' },
  },
});
const rounds = Number(values.rounds);
const KEY = { id: RGW_KEYS.accessKeyId, secret: RGW_KEYS.secretAccessKey };

/** CPU of the live threads of one process, in ms (schedstat: nanoseconds). */
function liveThreadsMs(pid) {
  let ns = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {}
  }
  return ns / 1e6;
}
const commName = (pid) => {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
};


function run(cmd, args, env) {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], env });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${stderr.slice(-500)}`));
      resolve(Number(process.hrtime.bigint() - started) / 1e6);
    });
  });
}

const auth = ['--aws-sigv4', 'aws:amz:us-east-1:s3', '--user', `${KEY.id}:${KEY.secret}`];
const UNSIGNED = ['-H', 'x-amz-content-sha256: UNSIGNED-PAYLOAD'];

async function measure(name, server, work) {
  const bucket = `putcost-${name}`;
  execFileSync('curl', ['-sf', '-X', 'PUT', ...auth, ...UNSIGNED, `${server.url}/${bucket}`]);
  const seg = join(work, 'segment');
  let restored;
  const rawEnv = { ...process.env, AWS_ACCESS_KEY_ID: KEY.id, AWS_SECRET_ACCESS_KEY: KEY.secret };
  let seq = 0;
  const obj = () => `${server.url}/${bucket}/v/${seq++}`;
  const raw = (...o) => ({ cmd: process.execPath, env: rawEnv, args: () => [join(import.meta.dirname, 'raw-put.mjs'), obj(), seg, ...o] });
  const variants = [
    { label: 'curl floor: UNSIGNED-PAYLOAD, Expect', args: () => ['-sf', ...auth, ...UNSIGNED, '-T', seg, obj()] },
    { label: 'raw: UNSIGNED-PAYLOAD', ...raw() },
    { label: 'raw: signed SHA-256', ...raw('--payload', 'sha256') },
    { label: 'raw: UNSIGNED + Content-MD5', ...raw('--md5') },
    { label: 'raw: UNSIGNED + Expect', ...raw('--expect') },
    { label: 'raw: UNSIGNED + Content-Type', ...raw('--type') },
    { label: 'raw: UNSIGNED + If-None-Match', ...raw('--inm') },
    { label: 'raw: UNSIGNED + x-amz-meta', ...raw('--meta') },
    { label: 'raw: UNSIGNED, 256 KiB writes', ...raw('--write', '256') },
    { label: 'raw: UNSIGNED, 1 MiB writes', ...raw('--write', '1024') },
    { label: 'raw: our PUT (SHA-256, type, If-None-Match, 256 KiB)', ...raw('--payload', 'sha256', '--type', '--inm', '--write', '256') },
    { label: 'raw: our PUT with Content-MD5 for SHA-256', ...raw('--md5', '--type', '--inm', '--write', '256') },
  ].filter((v) => !values.variants || values.variants.split(',').some((w) => v.label.includes(w)));
  if (values.ours) {
    const env = { ...process.env, PATH: `${dirname(process.execPath)}:${process.env.PATH}`,
      AWS_ACCESS_KEY_ID: KEY.id, AWS_SECRET_ACCESS_KEY: KEY.secret, AWS_DEFAULT_REGION: 'us-east-1' };
    delete env.NODE_EXTRA_CA_CERTS;
    const pg = join(work, name, 'pg_wal');
    restored = join(work, name, 'restored');
    mkdirSync(pg, { recursive: true });
    let n = 0;
    const fresh = () => {
      const p = join(pg, `0000000100000${(0x100 + Math.floor(n / 256)).toString(16).toUpperCase()}000000${(n % 256).toString(16).toUpperCase().padStart(2, '0')}`);
      n++;
      linkSync(seg, p);
      return p;
    };
    const list = `${server.url}/${bucket}?delimiter=%2F&list-type=2&prefix=bench%2Fsrv%2Fwals%2F0000000100000100%2F000000010000010000000001`;
    variants.push(
      { label: 'ours: wal-archive (LIST, GET 404, PUT, LIST)', cmd: join(root, 'bin/barman-cloud-wal-archive'), env, args: () => ['--endpoint-url', server.url, `s3://${bucket}/bench`, 'srv', fresh()] },
      { label: 'LIST of one name', args: () => ['-s', '-o', '/dev/null', ...auth, ...UNSIGNED, list] },
      { label: 'GET 404', args: () => ['-s', '-o', '/dev/null', ...auth, ...UNSIGNED, `${server.url}/${bucket}/bench/srv/wal-encryption`] },
      { label: 'curl GET of a stored segment', args: () => ['-sf', '-o', restored, ...auth, ...UNSIGNED, `${server.url}/${bucket}/bench/srv/wals/${stored.slice(0, 16)}/${stored}`] },
      { label: 'ours: wal-restore (LIST, GET)', cmd: join(root, 'bin/barman-cloud-wal-restore'), env, args: () => ['--endpoint-url', server.url, `s3://${bucket}/bench`, 'srv', stored, restored] },
    );
    const stored = basename(fresh());
    execFileSync(join(root, 'bin/barman-cloud-wal-archive'), ['--endpoint-url', server.url, `s3://${bucket}/bench`, 'srv', join(pg, stored)], { env });
  }
  const pids = descendants(server.pid);
  // The daemons (not rgw.mjs's node): their live threads, per process.
  const daemons = pids.map((pid) => ({ pid, name: commName(pid) })).filter((d) => d.name !== 'node');
  const samples = new Map(variants.map((v) => [v.label, { cpu: [], wall: [], live: daemons.map(() => []) }]));
  for (let r = -1; r < rounds; r++) {
    for (let k = 0; k < variants.length; k++) {
      const v = variants[(k + Math.max(r, 0)) % variants.length];
      const args = v.args();
      if (values.ours) rmSync(restored, { force: true });
      const c0 = processCpuMs(pids);
      const l0 = daemons.map((d) => liveThreadsMs(d.pid));
      const wall = await run(v.cmd ?? 'curl', args, v.env ?? process.env);
      // The server may still be finishing after its answer: let it settle.
      await new Promise((r2) => setTimeout(r2, 150));
      const cpu = processCpuMs(pids) - c0;
      const live = daemons.map((d, i) => liveThreadsMs(d.pid) - l0[i]);
      if (r >= 0) {
        const s = samples.get(v.label);
        s.cpu.push(cpu);
        s.wall.push(wall);
        live.forEach((x, i) => s.live[i].push(x));
      }
    }
  }
  const mean = (a) => a.reduce((x, y) => x + y, 0) / a.length;
  const se = (a) => Math.sqrt(a.reduce((x, y) => x + (y - mean(a)) ** 2, 0) / (a.length - 1) / a.length);
  const first = samples.get(variants[0].label);
  return {
    daemons: daemons.map((d) => d.name),
    rows: variants.map((v) => {
      const s = samples.get(v.label);
      return {
        label: v.label, serverCpuMean: mean(s.cpu), wall: median(s.wall),
        live: s.live.map((a) => median(a)),
        // Paired against the first variant, round by round: median and standard error of the mean.
        liveDiff: s.live.map((a, i) => { const d = a.map((x, j) => x - first.live[i][j]); return { median: median(d), se: se(d) }; }),
        cpu: s.cpu,
      };
    }),
  };
}

const work = mkdtempSync(join(tmpdir(), 'bc-putcost-'));
// the long page header of the first name fresh() gives: the segment wal-restore fetches
writeFileSync(join(work, 'segment'), walSegment('000000010000010000000000'));
const results = {};
try {
  for (const name of values.servers.split(',')) {
    const server = name === 'moto' ? await startMoto() : await startRgw({ memstoreMib: 6144 });
    if (name === 'moto') server.pid = listenerPid(server.url);
    try {
      results[name] = await measure(name, server, work);
    } finally {
      await server.stop();
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
for (const [name, { daemons, rows }] of Object.entries(results)) {
  console.log(`\n### ${name}: ${rounds} interleaved rounds\n`);
  console.log(`all processes: mean CPU per call (/proc stat, ${TICK_MS} ms ticks); live threads: median per call and paired difference against the first row (median ± standard error), ms\n`);
  console.log(`| variant | wall median | all processes | ${daemons.map((d) => `${d} live | ${d} − first`).join(' | ')} |`);
  console.log(`|---|---|---|${daemons.map(() => '---|---|').join('')}`);
  for (const r of rows) {
    console.log(`| ${r.label} | ${r.wall.toFixed(1)} | ${r.serverCpuMean.toFixed(1)} | ${r.live.map((x, i) => `${x.toFixed(1)} | ${r.liveDiff[i].median.toFixed(1)} ± ${r.liveDiff[i].se.toFixed(1)}`).join(' | ')} |`);
  }
}
if (values.json) writeFileSync(values.json, JSON.stringify(results, null, 1));
