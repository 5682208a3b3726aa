// Customer-provided keys on Azure (CPK) and GCS (CSEK). Neither server here implements them:
// azurite ignores the x-ms-encryption-* headers (or refuses them in strict mode), so Azure runs
// through an HTTPS proxy that checks the headers of every request and refuses reads as Azure
// documents (test/helpers/proxy.ts, startAzureCpkProxy); our own GCS test server enforces CSEK itself
// (test/servers/gcs-server.mjs). Each provider: the driver sends the key with every object write and
// read and none with listings, reads without the key or with another fail with SseCustomerKeyError
// naming the flag, and a PostgreSQL 15 round trip (archive, backup, catalog, verify, restore, replay)
// works with the key while every reading command without it fails in one line.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { startGcsServer } from '../servers/gcs-server.mjs';
import { startAzurite, azuriteConnectionString, AZURITE_ACCOUNT, makeTestCA, type ServerHandle, type TestCA } from '../helpers/servers.ts';
import { startAzureCpkProxy, type CpkRequest } from '../helpers/proxy.ts';
import { runBin, cleanEnv } from '../helpers/run-bin.ts';
import { tarOf } from '../helpers/tar.ts';
import { segmentFor } from '../helpers/wal-segment.ts';
import { handMadeDone } from '../fixtures/backup-info.ts';
import { openObjectStore, DEFAULT_RETRY, type StoreConfig } from '../../src/storage/config.ts';
import type { ObjectStore } from '../../src/storage/types.ts';
import { SseCustomerKeyError } from '../../src/errors.ts';
import {
  afterRoundTripBackup, fillRoundTrip, requireTool, postgresAvailable, roundTripRows, startArchivingCluster, startRestoredCopy, pgTempDir,
  type PgCluster,
} from '../helpers/postgres.ts';

const MiB = 1024 * 1024;
const KEY = randomBytes(32);
const OTHER_KEY = randomBytes(32);
const sha256 = (k: Buffer) => createHash('sha256').update(k).digest('base64');
const skipPg = requireTool('PostgreSQL 15', postgresAvailable());

type GcsServer = Awaited<ReturnType<typeof startGcsServer>>;
let gcs: GcsServer;
let azurite: ServerHandle;
let proxy: Awaited<ReturnType<typeof startAzureCpkProxy>>;
let ca: TestCA;
let work: string;

beforeAll(async () => {
  ca = makeTestCA();
  [gcs, azurite] = await Promise.all([startGcsServer(), startAzurite()]);
  proxy = await startAzureCpkProxy(azurite.port, ca);
  work = mkdtempSync(join(tmpdir(), 'bc-cpk-'));
  const admin = await openObjectStore(azureConfig('cpk'));
  await admin.createBucket();
  await admin.close();
  await fetch(`${gcs.url}/storage/v1/b?project=test`, { method: 'POST', body: JSON.stringify({ name: 'cpk' }), headers: { 'content-type': 'application/json' } });
}, 60_000);

afterAll(async () => {
  await proxy?.close();
  await Promise.all([gcs?.close(), azurite?.stop()]);
  if (ca) rmSync(ca.dir, { recursive: true, force: true });
  if (work) rmSync(work, { recursive: true, force: true });
});

function azureConfig(container: string, customerKey?: Buffer): StoreConfig {
  return {
    provider: 'azure-blob-storage', bucket: container, retry: { ...DEFAULT_RETRY, maxAttempts: 1 }, ca: ca.caPem,
    auth: { kind: 'connection-string', connectionString: azuriteConnectionString(proxy.url) }, ...(customerKey ? { customerKey } : {}),
  };
}

function gcsConfig(bucket: string, customerKey?: Buffer): StoreConfig {
  return {
    provider: 'google-cloud-storage', bucket, retry: { ...DEFAULT_RETRY, maxAttempts: 1 }, apiEndpoint: gcs.url, projectId: 'test',
    ...(customerKey ? { customerKey } : {}),
  };
}

interface ProviderCase {
  name: string;
  flag: string;
  variable: string;
  /** The server refuses a key sent for an object stored without one (GCS documents it; Azure's answer is not modelled). */
  refusesKeyOnPlain: boolean;
  config(customerKey?: Buffer): StoreConfig;
  /** Object requests since `from` (writes and reads of one object), and listings. */
  requests(from: number): { objects: { what: string; sha?: string }[]; listings: { what: string; sha?: string }[] };
  mark(): number;
  /** Store flags and URL for the executables, and their environment. */
  cli(prefix: string): { args: string[]; env: Record<string, string> };
}

const cases: ProviderCase[] = [
  {
    name: 'Azure customer-provided key (CPK), through the checking proxy',
    flag: '--azure-customer-key-file',
    variable: 'BARMAN_CLOUD_AZURE_CUSTOMER_KEY_FILE',
    refusesKeyOnPlain: false,
    config: (k) => azureConfig('cpk', k),
    mark: () => proxy.requests.length,
    requests(from) {
      const all = proxy.requests.slice(from);
      const isObject = (r: CpkRequest) => r.path.split('/').length > 3 && r.comp !== 'list' && !(r.method === 'DELETE');
      const view = (r: CpkRequest) => ({ what: `${r.method} ${r.path}${r.comp ? `?comp=${r.comp}` : ''}`, ...(r.keySha256 ? { sha: r.keySha256 } : {}) });
      return { objects: all.filter(isObject).map(view), listings: all.filter((r) => r.comp === 'list').map(view) };
    },
    cli: (prefix) => ({
      args: ['--cloud-provider', 'azure-blob-storage', `${proxy.url}/${AZURITE_ACCOUNT}/cpk/${prefix}`],
      env: { AZURE_STORAGE_CONNECTION_STRING: azuriteConnectionString(proxy.url) },
    }),
  },
  {
    name: 'GCS customer-supplied encryption key (CSEK), enforced by our GCS test server',
    flag: '--google-customer-key-file',
    variable: 'BARMAN_CLOUD_GOOGLE_CUSTOMER_KEY_FILE',
    refusesKeyOnPlain: true,
    config: (k) => gcsConfig('cpk', k),
    mark: () => gcs.log.length,
    requests(from) {
      const all = (gcs.log as { method: string; path: string; query: Record<string, string>; encryptionKeySha256?: string }[]).slice(from);
      const view = (r: (typeof all)[number]) => ({
        what: `${r.method} ${r.path}${r.query.uploadType ? `?uploadType=${r.query.uploadType}` : ''}${r.query.alt ? `?alt=${r.query.alt}` : ''}`,
        ...(r.encryptionKeySha256 ? { sha: r.encryptionKeySha256 } : {}),
      });
      const isListing = (r: (typeof all)[number]) => r.method === 'GET' && /\/o$/.test(r.path);
      return { objects: all.filter((r) => !isListing(r)).map(view), listings: all.filter(isListing).map(view) };
    },
    cli: (prefix) => ({ args: ['--cloud-provider', 'google-cloud-storage', `gs://cpk/${prefix}`], env: { STORAGE_EMULATOR_HOST: gcs.url } }),
  },
];

async function withStore<T>(config: StoreConfig, fn: (s: ObjectStore) => Promise<T>): Promise<T> {
  const s = await openObjectStore(config);
  try {
    return await fn(s);
  } finally {
    await s.close();
  }
}

describe.each(cases)('$name', (c) => {
  it('the driver sends the key with every object write and read, none with listings; without it or with another, SseCustomerKeyError naming the flag', async () => {
    const small = randomBytes(1000);
    const big = randomBytes(11 * MiB);
    const start = c.mark();
    await withStore(c.config(KEY), async (s) => {
      await s.put('drv/one', small);
      await s.put('drv/multi', Readable.from([big]), { partSize: 4 * MiB });
      expect((await s.head('drv/one'))?.size).toBe(1000);
      expect((await s.getBuffer('drv/one')).equals(small)).toBe(true);
      expect((await s.getBuffer('drv/multi')).equals(big)).toBe(true);
      for await (const e of s.list('drv/')) void e;
    });
    const seen = c.requests(start);
    expect(seen.objects.length).toBeGreaterThanOrEqual(6); // two uploads (one in several requests), head, two gets
    for (const r of seen.objects) expect(r, r.what).toEqual({ what: r.what, sha: sha256(KEY) });
    expect(seen.listings.length).toBeGreaterThanOrEqual(1);
    for (const r of seen.listings) expect(r.sha, r.what).toBeUndefined();

    for (const [label, key] of [['no key', undefined], ['another key', OTHER_KEY]] as const) {
      await withStore(c.config(key), async (s) => {
        for (const k of ['drv/one', 'drv/multi']) {
          const e = await s.getBuffer(k).then(() => undefined, (err: unknown) => err);
          expect(e, `${label} ${k}`).toBeInstanceOf(SseCustomerKeyError);
          expect((e as Error).message).toContain(c.flag);
          expect((e as Error).message.split('\n')).toHaveLength(1);
        }
      });
    }
    // GCS refuses a key sent for an object stored without one: that is a key error too, not a plain failure.
    if (c.refusesKeyOnPlain) {
      await withStore(c.config(), (s) => s.put('drv/plain', small));
      await withStore(c.config(KEY), async (s) => {
        await expect(s.getBuffer('drv/plain')).rejects.toBeInstanceOf(SseCustomerKeyError);
      });
    }
  }, 60_000);

  it('restore --write-recovery-conf with the key by flag writes a restore_command that reads the WAL with it', async () => {
    const prefix = `rc-${process.pid}-${c.flag.slice(2, 7)}`;
    const keyFile = join(work, `${prefix}.key`);
    writeFileSync(keyFile, KEY.toString('base64'), { mode: 0o600 });
    const id = '20261129T050418';
    const segment = segmentFor('000000010000000000000006');
    await withStore(c.config(KEY), async (s) => {
      await s.put(`${prefix}/srv/base/${id}/data.tar`, await tarOf([{ name: 'PG_VERSION', data: '15\n' }]));
      await s.put(`${prefix}/srv/base/${id}/backup.info`, Buffer.from(handMadeDone()));
      await s.put(`${prefix}/srv/wals/0000000100000000/000000010000000000000006`, segment);
    });
    const { args, env } = c.cli(prefix);
    const noKey = cleanEnv({ ...env, REQUESTS_CA_BUNDLE: ca.caFile });
    const dest = join(work, `${prefix}-data`);
    const r = await runBin('barman-cloud-restore', ['--write-recovery-conf', c.flag, keyFile, ...args, 'srv', id, dest], { env: noKey });
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    const line = readFileSync(join(dest, 'postgresql.auto.conf'), 'utf8').split('\n').find((l) => l.startsWith('restore_command = '))!;
    expect(line).toContain(`'${c.flag}' '${keyFile}'`.replace(/'/g, "''"));
    // run as PostgreSQL would: the conf string unquoted, %f and %p filled in, the key only in the command
    const command = line.slice('restore_command = \''.length, -1).replace(/''/g, "'")
      .replace('%f', '000000010000000000000006').replace('%p', join(dest, 'pg_wal', 'RECOVERYXLOG'));
    // not spawnSync: the proxy and the GCS server answer from this process
    const w = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = spawn('sh', ['-c', command], { env: noKey });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('close', (code) => resolve({ code, stderr }));
    });
    expect(w).toEqual({ code: 0, stderr: '' });
    expect(readFileSync(join(dest, 'pg_wal', 'RECOVERYXLOG')).equals(segment)).toBe(true);
  }, 60_000);

  it('a key on another provider, or with that provider\'s own server-side encryption option, is a usage error (exit 3)', async () => {
    const keyFile = join(work, 'usage.key');
    writeFileSync(keyFile, KEY.toString('base64'));
    const wal = join(work, '000000010000000000000001');
    writeFileSync(wal, randomBytes(1024));
    const file = await runBin('barman-cloud-wal-archive', [c.flag, keyFile, `file://${work}/store`, 'srv', wal], { env: cleanEnv() });
    expect([file.code, file.stderr.trim().split('\n').length]).toEqual([3, 1]);
    expect(file.stderr).toMatch(/only supported on (Azure|GCS), not on a local directory store/);
    const { args, env } = c.cli('usage');
    const other = c.flag === '--azure-customer-key-file' ? ['--encryption-scope', 'scope1'] : ['--kms-key-name', 'projects/p/locations/l/keyRings/r/cryptoKeys/k'];
    const both = await runBin('barman-cloud-wal-archive', [...other, c.flag, keyFile, ...args, 'srv', wal], { env: cleanEnv({ ...env, REQUESTS_CA_BUNDLE: ca.caFile }) });
    expect([both.code, both.stderr.trim().split('\n').length]).toEqual([3, 1]);
    expect(both.stderr).toContain(`cannot be combined with ${c.flag}`);
  });
});

describe.skipIf(skipPg).each(cases)('PostgreSQL 15 round trip: $name', (c) => {
  const clusters: PgCluster[] = [];
  afterAll(async () => {
    for (const cl of clusters) await cl.remove();
  });

  it('archive, backup, catalog, verify and restore with the key; without it every reading command fails in one line naming the flag, writing nothing', async () => {
    // Key and CA where the server's user can read them; the key by environment variable.
    const dir = pgTempDir('bc-cpk-key-');
    const keyFile = join(dir, 'customer.key');
    writeFileSync(keyFile, KEY, { mode: 0o644 });
    const caFile = join(dir, 'ca.pem');
    copyFileSync(ca.caFile, caFile);
    const prefix = `pg-${process.pid}-${c.flag.slice(2, 7)}`;
    const { args, env: providerEnv } = c.cli(prefix);
    const base = { ...providerEnv, REQUESTS_CA_BUNDLE: caFile };
    const withKey = { ...base, [c.variable]: keyFile };
    const primary = await startArchivingCluster(['--lz4', ...args, 'srv'], { serverEnv: withKey });
    clusters.push(primary);
    await fillRoundTrip(primary, 1);
    const env = cleanEnv({ ...primary.env, ...withKey });
    const noKey = cleanEnv({ ...primary.env, ...base });
    const b = await runBin('barman-cloud-backup', ['--immediate-checkpoint', '-n', 'enc', '--lz4', ...args, 'srv'], { env, timeoutMs: 120_000 });
    expect({ code: b.code, stderr: b.stderr }).toEqual({ code: 0, stderr: '' });
    const { lastWal, rows } = await afterRoundTripBackup(primary);

    // With the key: the catalog commands, verify, check-wal-archive.
    const list = await runBin('barman-cloud-backup-list', ['--format', 'json', ...args, 'srv'], { env });
    expect([list.code, list.stderr]).toEqual([0, '']);
    expect((JSON.parse(list.stdout) as { backups_list: { backup_name: string; status: string }[] }).backups_list.map((x) => [x.backup_name, x.status]))
      .toEqual([['enc', 'DONE']]);
    const show = await runBin('barman-cloud-backup-show', ['--format', 'json', ...args, 'srv', 'enc'], { env });
    expect((JSON.parse(show.stdout) as { cloud: { status: string } }).cloud.status).toBe('DONE');
    const keep = await runBin('barman-cloud-backup-keep', ['--status', ...args, 'srv', 'enc'], { env });
    expect([keep.code, keep.stdout.trim()]).toEqual([0, 'Keep: nokeep']);
    const verify = await runBin('barman-cloud', ['verify', ...args, 'srv', 'enc'], { env, timeoutMs: 120_000 });
    expect([verify.code, verify.stderr]).toEqual([0, '']);
    const check = await runBin('barman-cloud-check-wal-archive', [...args, 'srv'], { env });
    expect([check.code, check.stderr]).toEqual([1, expect.stringMatching(/Expected empty archive\n$/)]); // it holds WAL: read with the key

    // Without the key: one line naming the flag, exit 4, nothing at the destination.
    const walDest = join(work, `${prefix}-wal`);
    const wr = await runBin('barman-cloud-wal-restore', [...args, 'srv', lastWal, walDest], { env: noKey });
    expect([wr.code, wr.stderr.trim().split('\n').length]).toEqual([4, 1]);
    expect(wr.stderr).toContain(`give the key with ${c.flag}`);
    expect(existsSync(walDest)).toBe(false);
    const wrongFile = join(work, `${prefix}-wrong.key`);
    writeFileSync(wrongFile, OTHER_KEY);
    const ww = await runBin('barman-cloud-wal-restore', [c.flag, wrongFile, ...args, 'srv', lastWal, walDest], { env: noKey });
    expect([ww.code, ww.stderr.trim().split('\n').length]).toEqual([4, 1]);
    expect(ww.stderr).toContain(`with the key of ${c.flag}`);
    expect(existsSync(walDest)).toBe(false);
    const badDest = join(pgTempDir('bc-cpk-nokey-'), 'data');
    const rn = await runBin('barman-cloud-restore', [...args, 'srv', 'enc', badDest], { env: noKey, timeoutMs: 60_000 });
    expect(rn.code, rn.stderr).toBe(4);
    expect(rn.stderr.trim().split('\n')).toEqual([expect.stringMatching(new RegExp(`^.*ERROR: .*backup\\.info .*give the key with ${c.flag}$`))]);
    expect(existsSync(badDest)).toBe(false);
    const ln = await runBin('barman-cloud-backup-list', [...args, 'srv'], { env: noKey });
    expect(ln.stderr).toContain(c.flag);
    const vn = await runBin('barman-cloud', ['verify', ...args, 'srv', 'enc'], { env: noKey });
    expect(vn.code).not.toBe(0);
    expect(vn.stderr).toContain(c.flag);

    // With the key: restore, replay the WAL (prefetching with --parallel), every row there.
    const dest = join(pgTempDir('bc-cpk-restore-'), 'data');
    const r = await runBin('barman-cloud-restore', [...args, 'srv', 'enc', dest], { env, timeoutMs: 120_000 });
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    const copy = await startRestoredCopy(dest, ['--parallel', '4', ...args, 'srv'], { serverEnv: withKey, clusters });
    expect(await roundTripRows(copy)).toEqual(rows);

    // Every object of the round trip is stored under the key: none of them reads without it.
    await withStore(c.config(), async (s) => {
      const keys: string[] = [];
      for await (const e of s.list(`${prefix}/srv/`)) if (e.kind === 'object') keys.push(e.key);
      expect(keys.some((k) => k.includes('/wals/')) && keys.some((k) => k.endsWith('/backup.info'))).toBe(true);
      for (const k of keys) await expect(s.getBuffer(k), k).rejects.toBeInstanceOf(SseCustomerKeyError);
    });
  }, 400_000);
});
