// Seeding and measuring for the retention benchmark, kept apart from test/bench/retention.mjs so that
// the harness can call these functions whatever shape its scenario file takes.
//
//   node test/bench/retention-seed.mjs file [--backups 1000 --wals 200000]   # file store, one run
//   node test/bench/retention-seed.mjs rgw  [--backups 1000 --wals 200000]   # Ceph RGW, one run
//
// The catalog: `backups` DONE backups, each a 3.4-readable backup.info, a tiny data.tar and a
// `.backup` history file, `wals / backups` WAL segments each, on four timelines (a switch every
// quarter, with its `.history` file). `REDUNDANCY backups/2` removes the older half.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';

const ROOT = resolve(import.meta.dirname, '..', '..');
const require = createRequire(import.meta.url);

const hex8 = (n) => n.toString(16).toUpperCase().padStart(8, '0');
/** WAL name of segment number `pos` (16 MiB segments: 256 per log) on timeline `tli`. */
export const walName = (tli, pos) => `${hex8(tli)}${hex8(Math.floor(pos / 256))}${hex8(pos % 256)}`;

export function backupId(i) {
  return new Date(Date.UTC(2023, 0, 1) + i * 3_600_000 * 6).toISOString().slice(0, 19).replace(/[-:]/g, '');
}

function backupInfo(i, tli, begin, end) {
  const d = Date.UTC(2023, 0, 1) + i * 3_600_000 * 6;
  const t = (ms) => `${new Date(ms).toISOString().slice(0, 19).replace('T', ' ')}+00:00`;
  const lsn = (pos) => `${(Math.floor(pos / 256)).toString(16).toUpperCase()}/${((pos % 256) * 0x1000000 + 0x28).toString(16).toUpperCase()}`;
  return [
    'backup_label=None', 'begin_offset=40', `begin_time=${t(d)}`, `begin_wal=${walName(tli, begin)}`, `begin_xlog=${lsn(begin)}`,
    'compression=None', 'config_file=/pg/postgresql.conf', 'copy_stats=None', 'deduplicated_size=None', 'end_offset=256',
    `end_time=${t(d + 60_000)}`, `end_wal=${walName(tli, end)}`, `end_xlog=${lsn(end)}`, 'error=None', 'hba_file=/pg/pg_hba.conf',
    'ident_file=/pg/pg_ident.conf', 'included_files=None', 'mode=None', 'pgdata=/pg', 'server_name=cloud', 'size=None', 'status=DONE',
    'systemid=7713454245083309119', 'tablespaces=None', `timeline=${tli}`, 'version=150018', 'xlog_segment_size=16777216', '',
  ].join('\n');
}

/**
 * The catalog under `server/` as [key, body] pairs, backups first. Backup i starts at segment
 * 1 + i·per on timeline 1 + ⌊4i/backups⌋; its WAL runs to the next backup's start.
 */
export function* catalog({ backups = 1000, wals = 200_000, server = 'srv' } = {}) {
  const per = Math.max(2, Math.floor(wals / backups));
  const tliOf = (i) => 1 + Math.floor((4 * i) / backups);
  const wkey = (name, suffix = '.gz') => `${server}/wals/${name.slice(0, 16)}/${name}${suffix}`;
  for (let i = 0; i < backups; i++) {
    const id = backupId(i);
    const tli = tliOf(i);
    const begin = 1 + i * per;
    yield [`${server}/base/${id}/backup.info`, backupInfo(i, tli, begin, begin + 1)];
    yield [`${server}/base/${id}/data.tar`, `data ${id}`];
    yield [wkey(`${walName(tli, begin)}.00000028.backup`), `label ${id}`];
    if (i > 0 && tliOf(i - 1) !== tli) yield [`${server}/wals/${hex8(tli)}.history`, `${tli - 1}\t0/0\tno recovery target\n`];
  }
  let written = 0;
  for (let i = 0; i < backups && written < wals; i++) {
    const start = 1 + i * per;
    for (let p = start; p < start + per && written < wals; p++, written++) yield [wkey(walName(tliOf(i), p)), 'w'];
  }
}

/**
 * A fresh copy of the catalog in `dir` (a file-store root). The first call writes a template under
 * the system temp directory; later calls copy it with `cp -a` (a few seconds instead of ~20).
 */
export function seedFileStore(dir, opts = {}) {
  const { backups = 1000, wals = 200_000 } = opts;
  const template = join(tmpdir(), `bc-retention-template-${backups}-${wals}-v1`);
  if (!existsSync(join(template, '.complete'))) {
    const tmp = `${template}.${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    const made = new Set();
    for (const [key, body] of catalog(opts)) {
      const parent = join(tmp, key.slice(0, key.lastIndexOf('/')));
      if (!made.has(parent)) {
        mkdirSync(parent, { recursive: true });
        made.add(parent);
      }
      writeFileSync(join(tmp, key), body);
    }
    writeFileSync(join(tmp, '.complete'), '');
    rmSync(template, { recursive: true, force: true });
    renameSync(tmp, template);
  }
  rmSync(dir, { recursive: true, force: true });
  execFileSync('cp', ['-a', template, dir]);
  rmSync(join(dir, '.complete'));
}

/**
 * PUT every [key, body] of `items` into `bucket` at `endpoint` with `parallel` keep-alive requests
 * signed by aws4 (a bare client: no SDK, no retries beyond one on a reset connection).
 */
export async function seedS3({ endpoint, bucket, keys, items, parallel = 64, prefix = '' }) {
  const aws4 = require('aws4');
  const url = new URL(endpoint);
  const agent = new http.Agent({ keepAlive: true, maxSockets: parallel });
  const request = (method, path, body) => new Promise((res, rej) => {
    const opts = aws4.sign({
      host: url.host, method, path, service: 's3', region: 'us-east-1', body,
      headers: { 'Content-Type': 'application/octet-stream', 'X-Amz-Content-Sha256': 'UNSIGNED-PAYLOAD' },
    }, keys);
    const req = http.request({ ...opts, hostname: url.hostname, port: url.port, agent }, (r) => {
      let text = '';
      r.on('data', (d) => (text += d));
      r.on('end', () => (r.statusCode < 300 ? res() : rej(new Error(`${method} ${path}: ${r.statusCode} ${text.slice(0, 200)}`))));
    });
    req.on('error', rej);
    req.end(body);
  });
  await request('PUT', `/${bucket}`, '').catch((e) => {
    if (!/409|BucketAlreadyOwnedByYou/.test(e.message)) throw e;
  });
  const iter = items[Symbol.iterator]();
  let count = 0;
  const worker = async () => {
    for (let n = iter.next(); !n.done; n = iter.next()) {
      const [key, body] = n.value;
      const path = `/${bucket}/${encodeURI(prefix + key)}`;
      await request('PUT', path, body).catch(() => request('PUT', path, body));
      count++;
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  agent.destroy();
  return count;
}

/** Ceph RGW from test/servers/rgw.mjs: { url, keys, stop }. */
export async function startRgw({ memstoreMiB = 6144 } = {}) {
  const { createServer } = await import('node:net');
  const port = await new Promise((res) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => res(p));
    });
  });
  const dir = mkdtempSync(join(tmpdir(), 'bc-rgw-bench-'));
  const keys = { accessKeyId: 'BCTSRGWADMIN00000001', secretAccessKey: 'bc-ts-rgw-admin-test-key' };
  const child = spawn(process.execPath, [
    join(ROOT, 'test', 'servers', 'rgw.mjs'), '--dir', dir, '--port', String(port),
    '--access-key', keys.accessKeyId, '--secret-key', keys.secretAccessKey, '--memstore-mib', String(memstoreMiB),
  ], { stdio: ['ignore', 'pipe', 'inherit'], detached: true });
  await new Promise((res, rej) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      if (out.includes('"ready"')) res();
    });
    child.once('exit', (code) => rej(new Error(`rgw.mjs exited ${code}`)));
  });
  const stop = async () => {
    try {
      process.kill(-child.pid, 'SIGTERM');
    } catch {}
    await new Promise((r) => (child.exitCode !== null ? r() : child.once('exit', r)));
    rmSync(dir, { recursive: true, force: true });
  };
  return { url: `http://127.0.0.1:${port}`, keys, stop, pid: child.pid };
}

/**
 * GNU time around one command: wall ms, peak RSS MB, CPU ms (user + system), stdout. Asynchronous,
 * so that a server's pipes (moto's request log in retention.mjs) keep being drained meanwhile.
 */
export function timed(cmd, args, env) {
  return new Promise((res, rej) => {
    const child = spawn('/usr/bin/time', ['-f', '%e %M %U %S', cmd, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', rej);
    child.on('close', (code) => {
      if (code !== 0) return rej(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${stderr.slice(-800)}`));
      const [secs, kb, user, sys] = stderr.trim().split('\n').at(-1).split(' ').map(Number);
      res({ ms: secs * 1000, mb: kb / 1024, cpuMs: Math.round((user + sys) * 1000), stdout, stderr });
    });
  });
}

/** One `backup-delete -r 'REDUNDANCY backups/2' --format json` run: { ms, mb, summary }. */
export async function runRetention({ url, backups = 1000, env = process.env, extra = [] }) {
  const bin = join(ROOT, 'bin', 'barman-cloud-backup-delete');
  const r = await timed(process.execPath, [bin, ...extra, '--format', 'json', '-r', `REDUNDANCY ${Math.ceil(backups / 2)}`, url, 'srv'], env);
  const { backup_ids: ids, ...summary } = JSON.parse(r.stdout.trim().split('\n').at(-1));
  return { ms: r.ms, mb: r.mb, cpuMs: r.cpuMs, summary: { ...summary, first: ids[0], last: ids.at(-1) } };
}

/** One backup-list --format json run over the catalog: { ms, mb, bytes }. */
export async function runList({ url, env = process.env, extra = [], format = 'json' }) {
  const bin = join(ROOT, 'bin', 'barman-cloud-backup-list');
  const r = await timed(process.execPath, [bin, ...extra, '--format', format, url, 'srv'], env);
  return { ms: r.ms, mb: r.mb, bytes: r.stdout.length };
}

if (process.argv[1] === import.meta.filename) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { backups: { type: 'string', default: '1000' }, wals: { type: 'string', default: '200000' }, list: { type: 'boolean' } },
  });
  const backups = Number(values.backups);
  const wals = Number(values.wals);
  const where = positionals[0] ?? 'file';
  const env = { ...process.env, AWS_ACCESS_KEY_ID: 'x', AWS_SECRET_ACCESS_KEY: 'x', AWS_DEFAULT_REGION: 'us-east-1' };
  const report = (what, r) => console.log(JSON.stringify({ what, ...r }));
  if (where === 'file') {
    const dir = join(tmpdir(), `bc-retention-run-${process.pid}`);
    let t0 = Date.now();
    seedFileStore(dir, { backups, wals });
    report('seed', { ms: Date.now() - t0 });
    try {
      if (values.list) report('backup-list json', await runList({ url: `file://${dir}`, env }));
      else report('backup-delete', await runRetention({ url: `file://${dir}`, backups, env }));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  } else if (where === 'rgw') {
    const rgw = await startRgw();
    try {
      const t0 = Date.now();
      const n = await seedS3({ endpoint: rgw.url, bucket: 'bench', keys: rgw.keys, items: catalog({ backups, wals }) });
      report('seed', { ms: Date.now() - t0, objects: n });
      const renv = { ...env, AWS_ACCESS_KEY_ID: rgw.keys.accessKeyId, AWS_SECRET_ACCESS_KEY: rgw.keys.secretAccessKey };
      const extra = ['--endpoint-url', rgw.url];
      if (values.list) report('backup-list json', await runList({ url: 's3://bench', env: renv, extra }));
      else report('backup-delete', await runRetention({ url: 's3://bench', backups, env: renv, extra }));
    } finally {
      await rgw.stop();
    }
  }
}
