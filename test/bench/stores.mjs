// The three stores every benchmark scenario runs against (the local directory store, moto, Ceph RGW)
// described alike: how our tools, barman 3.4 and pgBackRest address them, and the bare clients that
// give each row its floor (curl with SigV4 for S3, cp + sync for the directory store).
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync, readFileSync, copyFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import aws4 from 'aws4';
import { makeTestCa, startMoto, startRgw, tlsFront, RGW_KEYS, groupCpuSecs } from './servers.mjs';

export const REGION = 'us-east-1';
const UNSIGNED = 'x-amz-content-sha256: UNSIGNED-PAYLOAD';

export const haveBarman = existsSync('/usr/bin/barman-cloud-wal-archive');
export const havePgbackrest = existsSync('/usr/bin/pgbackrest');

/** Environment of every contender: no NODE_EXTRA_CA_CERTS (PostgreSQL's environment has none; it costs Node ~50 ms). */
export function baseEnv(extra = {}) {
  const env = { ...process.env, PATH: `${process.execPath.replace(/\/node$/, '')}:${process.env.PATH}`, ...extra };
  delete env.NODE_EXTRA_CA_CERTS;
  return env;
}

/**
 * Which stores to run: BENCH_STORES=file,moto,rgw (default all three; RGW only where Ceph is installed).
 * Returns started stores; stopAll() stops them.
 */
export async function startStores(work, wanted = (process.env.BENCH_STORES ?? 'file,moto,rgw').split(',')) {
  const tls = makeTestCa(join(work, 'ca'));
  const stores = [];
  if (wanted.includes('file')) stores.push(fileStore(join(work, 'file-store'), work));
  if (wanted.includes('moto')) {
    const moto = await startMoto();
    const front = await tlsFront(moto.port, tls);
    stores.push(s3Store({
      name: 'moto', url: moto.url, sslPort: front.port, keys: { accessKeyId: 'bench', secretAccessKey: 'bench' }, ca: tls.ca, work,
      stop: () => (front.stop(), moto.stop()), pgid: moto.pgid,
      note: 'pgBackRest reaches moto through a Node TLS terminator (moto serves HTTP or HTTPS, not both): one more loopback hop and TLS for pgBackRest only',
    }));
  }
  if (wanted.includes('rgw') && existsSync('/usr/bin/radosgw')) {
    const memstoreMib = Number(process.env.BENCH_RGW_MEMSTORE_MIB ?? 8192);
    const rgw = await startRgw({ tls, memstoreMib });
    stores.push(s3Store({ name: 'RGW', url: rgw.url, sslPort: rgw.sslPort, keys: RGW_KEYS, ca: tls.ca, work, stop: rgw.stop, pid: rgw.pid, pgid: rgw.pgid, conf: rgw.conf }));
  }
  return { stores, tls, stopAll: async () => { for (const s of stores) await s.stop?.(); } };
}

function fileStore(dir, work) {
  mkdirSync(dir, { recursive: true });
  return {
    name: 'file store', id: 'file', kind: 'file', dir,
    env: baseEnv(),
    async makeBucket() {},
    // The directory store's "bucket" is the whole directory: it must exist, as a bucket must.
    ours: (bucket, prefix = 'bench') => (mkdirSync(join(dir, bucket, prefix), { recursive: true }), [`file://${join(dir, bucket, prefix)}`, 'srv']),
    barman: null,
    pgbackrestRepo: (bucket) => ({ 'repo1-type': 'posix', 'repo1-path': join(dir, bucket, 'pgbackrest') }),
    /** cp + sync of one file: what any tool must at least do to store the bytes durably. */
    putArgs: (file, bucket, key) => ['sh', ['-c', 'mkdir -p "$(dirname "$2")" && cp "$1" "$2" && sync "$2"', 'put', file, join(dir, bucket, key)]],
    getArgs: (bucket, key, out) => (out === '-' ? ['cat', [join(dir, bucket, key)]] : ['cp', [join(dir, bucket, key), out]]),
    /** Shell text of one bare put/get with $1 = local file, $2 = key, for xargs loops. */
    putShell: (bucket) => `mkdir -p "$(dirname "${dir}/${bucket}/$2")" && cp "$1" "${dir}/${bucket}/$2" && sync "${dir}/${bucket}/$2"`,
    getShell: (bucket) => `cp "${dir}/${bucket}/$2" "$1"`,
    /**
     * The same with the codec's work our calls do (test/bench/wal.mjs, same-work floors): `lz4 -1`
     * of $1 into the store, synced; `lz4 -d` of the object into $1, synced (the prefetcher syncs).
     */
    lz4PutShell: (bucket) => `mkdir -p "$(dirname "${dir}/${bucket}/$2")" && lz4 -1 -q -f "$1" "${dir}/${bucket}/$2" && sync "${dir}/${bucket}/$2"`,
    lz4GetShell: (bucket) => `lz4 -d -q -f "${dir}/${bucket}/$2" "$1" && sync "$1"`,
    work,
  };
}

function s3Store({ name, url, sslPort, keys, ca, work, stop, note, pid, pgid, conf }) {
  const env = baseEnv({ AWS_ACCESS_KEY_ID: keys.accessKeyId, AWS_SECRET_ACCESS_KEY: keys.secretAccessKey, AWS_DEFAULT_REGION: REGION });
  const curl = ['--aws-sigv4', `aws:amz:${REGION}:s3`, '--user', `${keys.accessKeyId}:${keys.secretAccessKey}`, '-H', UNSIGNED, '-sS', '--fail'];
  const host = new URL(url);
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  /** One signed request from this process (seeding, bucket creation, bare floors), keep-alive. */
  const s3 = (method, path, body = '', headers = {}) => new Promise((resolve, reject) => {
    const opts = aws4.sign({ host: host.host, path, method, service: 's3', region: REGION, body,
      headers: { 'content-length': Buffer.byteLength(body), ...headers } }, keys);
    const req = request({ ...opts, hostname: host.hostname, port: host.port, agent }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => (res.statusCode < 300 ? resolve(text) : reject(new Error(`${method} ${path}: ${res.statusCode} ${text.slice(0, 300)}`))));
    });
    req.on('error', reject);
    req.end(body);
  });
  return {
    name, id: name.toLowerCase(), kind: 's3', url, sslPort, keys, ca, env, note, pid, pgid, conf, work, s3,
    serverCpu: () => (pgid ? groupCpuSecs(pgid) : NaN),
    stop: async () => (agent.destroy(), await stop()),
    async makeBucket(bucket) {
      await s3('PUT', `/${bucket}`).catch((e) => { if (!/BucketAlreadyOwnedByYou|BucketAlreadyExists/.test(e.message)) throw e; });
    },
    ours: (bucket, prefix = 'bench') => ['--endpoint-url', url, `s3://${bucket}/${prefix}`, 'srv'],
    barman: (bucket, prefix = 'barman') => ['--endpoint-url', url, `s3://${bucket}/${prefix}`, 'srv'],
    pgbackrestRepo: (bucket) => ({
      'repo1-type': 's3', 'repo1-path': '/pgbackrest', 'repo1-s3-bucket': bucket, 'repo1-s3-endpoint': '127.0.0.1',
      'repo1-storage-port': String(sslPort), 'repo1-s3-region': REGION, 'repo1-s3-key': keys.accessKeyId,
      'repo1-s3-key-secret': keys.secretAccessKey, 'repo1-s3-uri-style': 'path', 'repo1-storage-ca-file': ca,
      'repo1-storage-verify-tls': 'y',
    }),
    putArgs: (file, bucket, key) => ['curl', [...curl, '-o', '/dev/null', '-T', file, `${url}/${bucket}/${key}`]],
    getArgs: (bucket, key, out) => ['curl', [...curl, '-o', out, `${url}/${bucket}/${key}`]],
    putShell: (bucket) => `curl ${curl.map(q).join(' ')} -o /dev/null -T "$1" "${url}/${bucket}/$2"`,
    getShell: (bucket) => `curl ${curl.map(q).join(' ')} -o "$1" "${url}/${bucket}/$2"`,
    // PutObject needs a length (no chunked `curl -T -`): `lz4 -1 -c` into a temp file in `tmp`
    // first. sh has no pipefail: a failed GET leaves lz4 an empty input, which it decodes to an
    // empty file with status 0, so the caller checks the decoded sizes.
    lz4PutShell: (bucket, tmp) => `t=${q(tmp)}/$$ && lz4 -1 -q -c "$1" > "$t" && curl ${curl.map(q).join(' ')} -o /dev/null -T "$t" "${url}/${bucket}/$2" && rm -f "$t"`,
    lz4GetShell: (bucket) => `curl ${curl.map(q).join(' ')} "${url}/${bucket}/$2" | lz4 -d -q -c > "$1" && sync "$1"`,
  };
}

const q = (s) => `'${String(s).replace(/'/g, `'\\''`)}'`;

/**
 * A bare parallel loop: `jobs` = [[localFile, key]…] through `xargs -P parallel`, each job one curl
 * (or cp + sync). Returns wall milliseconds.
 */
export function bareParallel(shell, jobs, parallel, env) {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn('xargs', ['-P', String(parallel), '-n', '2', 'sh', '-c', shell, 'bare'], { stdio: ['pipe', 'ignore', 'pipe'], env });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    child.on('close', (code) => (code === 0 ? resolve(Number(process.hrtime.bigint() - started) / 1e6) : reject(new Error(`bare loop exited ${code}: ${err.slice(-500)}`))));
    child.stdin.end(jobs.map(([a, b]) => `${a} ${b}\n`).join(''));
  });
}

/**
 * Seed many small objects with a keep-alive signed client, `parallel` requests in flight (RGW takes
 * ~1,300 small PUT/s this way; moto is seeded in-process instead, see moto-seeded.py).
 */
export async function seedObjects(store, bucket, items, parallel = 32) {
  const it = items[Symbol.iterator]();
  let n = 0;
  const worker = async () => {
    for (let next = it.next(); !next.done; next = it.next()) {
      const [key, body] = next.value;
      await store.s3('PUT', `/${bucket}/${key.split('/').map(encodeURIComponent).join('/')}`, body);
      n++;
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  return n;
}

// ---- pgBackRest ----------------------------------------------------------------------------------

/**
 * A pgBackRest configuration for one stanza: repository options from the store, everything else
 * (locks, logs, spool) under `dir`. pg1 points at `pgdata` (a real cluster or a copy of its
 * pg_control, which archive-push reads to check the WAL's system identifier).
 */
export function pgbackrestConfig(dir, store, bucket, pg, extra = {}) {
  mkdirSync(dir, { recursive: true });
  for (const d of ['lock', 'log', 'spool']) mkdirSync(join(dir, d), { recursive: true });
  const global = {
    ...store.pgbackrestRepo(bucket), 'lock-path': join(dir, 'lock'), 'log-path': join(dir, 'log'), 'spool-path': join(dir, 'spool'),
    'log-level-console': 'warn', 'log-level-file': 'off', 'repo1-retention-full': '99', ...extra,
  };
  const stanza = { 'pg1-path': pg.data, 'pg1-socket-path': pg.sock, 'pg1-port': String(pg.port), 'pg1-user': 'postgres' };
  const text = ['[global]', ...Object.entries(global).map(([k, v]) => `${k}=${v}`), '[bench]', ...Object.entries(stanza).map(([k, v]) => `${k}=${v}`), ''].join('\n');
  const conf = join(dir, 'pgbackrest.conf');
  writeFileSync(conf, text);
  return { conf, args: (...a) => [`--config=${conf}`, '--stanza=bench', ...a] };
}

/** A fake PGDATA holding only what pgBackRest's archive-push/get read: pg_control and PG_VERSION. */
export function fakePgdata(dir, realData) {
  mkdirSync(join(dir, 'global'), { recursive: true });
  mkdirSync(join(dir, 'pg_wal', 'archive_status'), { recursive: true });
  copyFileSync(join(realData, 'global', 'pg_control'), join(dir, 'global', 'pg_control'));
  copyFileSync(join(realData, 'PG_VERSION'), join(dir, 'PG_VERSION'));
  return dir;
}

export function pgbackrest(args, env, opts = {}) {
  return execFileSync('/usr/bin/pgbackrest', args, { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...opts });
}

export const readJson = (p) => JSON.parse(readFileSync(p, 'utf8'));
