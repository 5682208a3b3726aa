// S3 SSE-C (customer-provided keys) against Ceph RGW, which really encrypts with the key and checks
// its MD5 (moto 5.2 ignores the headers altogether, so it proves nothing here). RGW takes customer
// keys over HTTPS only: the first tests use its HTTPS endpoint with that default; the rest use the
// plain endpoint of the same RGW with `rgw crypt require ssl = false` (simpler for the executables
// and the recording proxy).
// Both S3 clients, every command of a PostgreSQL 15 round trip, the refusals without or with another
// key, and that the key never reaches stderr, even at DEBUG.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { startRgw, rgwAvailable, createS3Bucket, makeTestCA, type RgwHandle, type TestCA } from '../helpers/servers.ts';
import { runBin, cleanEnv } from '../helpers/run-bin.ts';
import { startS3Proxy, type ProxiedRequest } from '../helpers/proxy.ts';
import { withLongPageHeader } from '../helpers/wal-segment.ts';
import { openObjectStore, DEFAULT_RETRY, type S3StoreConfig } from '../../src/storage/config.ts';
import { SseCustomerKeyError } from '../../src/errors.ts';
import {
  afterRoundTripBackup, fillRoundTrip, requireTool, postgresAvailable, roundTripRows, startArchivingCluster, startRestoredCopy, pgTempDir,
  type PgCluster,
} from '../helpers/postgres.ts';

const MiB = 1024 * 1024;
const skipRgw = requireTool('Ceph RADOS Gateway', rgwAvailable());
const skipPg = skipRgw || requireTool('PostgreSQL 15', postgresAvailable());

let rgw: RgwHandle;
let ca: TestCA;
let work: string;
let seq = 0;
const KEY = randomBytes(32);
const OTHER_KEY = randomBytes(32);

async function newBucket(): Promise<string> {
  const name = `ssec-${process.pid}-${++seq}`;
  await createS3Bucket(rgw.url, name, undefined, rgw.admin);
  return name;
}

function store(bucket: string, client: 'auto' | 'sdk', sseCustomerKey?: Buffer, https = false) {
  const config: S3StoreConfig = {
    provider: 'aws-s3', bucket, retry: { ...DEFAULT_RETRY, maxAttempts: 1 }, endpointUrl: https ? rgw.httpsUrl! : rgw.url,
    region: 'us-east-1', credentials: { ...rgw.admin }, client, ca: ca.caPem, ...(sseCustomerKey ? { sseCustomerKey } : {}),
  };
  return openObjectStore(config);
}

beforeAll(async () => {
  if (skipRgw) return;
  ca = makeTestCA();
  rgw = await startRgw({ tls: ca, sseCOverHttp: true });
  work = mkdtempSync(join(tmpdir(), 'bc-ssec-'));
}, 120_000);

afterAll(async () => {
  await rgw?.stop();
  if (ca) rmSync(ca.dir, { recursive: true, force: true });
  if (work) rmSync(work, { recursive: true, force: true });
});

describe.skipIf(skipRgw)('SSE-C in both S3 clients against RGW', () => {
  for (const client of ['auto', 'sdk'] as const) {
    it(`${client === 'auto' ? 'lean' : 'SDK'} client over HTTPS with --endpoint-ca (RGW's default: customer keys over TLS only): put (single and multipart), head, get; another key refused`, async () => {
      const bucket = await newBucket();
      const s = await store(bucket, client, KEY, true);
      const other = await store(bucket, client, OTHER_KEY, true);
      const body = randomBytes(200_000);
      const large = randomBytes(11 * MiB);
      try {
        await s.put('wal', body);
        // UploadPart goes out with Expect: 100-continue, which the SDK's handler once sent without our CA.
        await s.put('large', Readable.from([large]), { partSize: 5 * MiB });
        expect((await s.head('wal'))!.size).toBe(body.length);
        expect(await s.getBuffer('wal')).toEqual(body);
        expect((await s.getBuffer('large')).equals(large)).toBe(true);
        await expect(other.getBuffer('wal')).rejects.toBeInstanceOf(SseCustomerKeyError);
      } finally {
        await s.close();
        await other.close();
      }
    }, 60_000);
  }

  for (const client of ['auto', 'sdk'] as const) {
    it(`${client === 'auto' ? 'lean' : 'SDK'} client: put (single and multipart), head and get with the key; without it or with another, SseCustomerKeyError`, async () => {
      const bucket = await newBucket();
      const s = await store(bucket, client, KEY);
      const small = randomBytes(100_000);
      const large = randomBytes(12 * MiB);
      try {
        await s.put('small', small);
        // A body whose passes are costly, as an encrypted segment's: the lean client signs it chunk
        // by chunk as it is sent over plain HTTP (aws-chunked), with the SSE-C headers signed too.
        const sealed = { kind: 'chunked' as const, length: small.length, costlyPasses: true, get sha256() { return createHash('sha256').update(small).digest('hex'); }, chunks: () => [small.subarray(0, 70_000), small.subarray(70_000)] };
        await s.put('sealed', sealed);
        expect(await s.getBuffer('sealed')).toEqual(small);
        // A stream: a multipart upload (CreateMultipartUpload, UploadPart…, Complete) with 5 MiB parts.
        await s.put('large', Readable.from([large]), { partSize: 5 * MiB });
        expect((await s.head('small'))!.size).toBe(small.length);
        expect(await s.getBuffer('small')).toEqual(small);
        expect(createHash('sha256').update(await s.getBuffer('large')).digest('hex')).toBe(createHash('sha256').update(large).digest('hex'));
        expect(await s.getBuffer('large', { start: 10, end: 19 })).toEqual(large.subarray(10, 20));
      } finally {
        await s.close();
      }
      for (const [label, key] of [['without a key', undefined], ['with another key', OTHER_KEY]] as const) {
        for (const c of ['auto', 'sdk'] as const) {
          const other = await store(bucket, c, key);
          try {
            for (const k of ['small', 'sealed', 'large']) {
              for (const op of [() => other.head(k), () => other.getBuffer(k), () => other.get(k)]) {
                const e = await op().then(() => undefined, (err: unknown) => err);
                expect(e, `${label}, ${c}, ${k}`).toBeInstanceOf(SseCustomerKeyError);
                expect((e as Error).message).toContain('--sse-customer-key-file');
                expect((e as Error).message).not.toContain('\n');
              }
            }
          } finally {
            await other.close();
          }
        }
      }
    }, 120_000);
  }
});

describe.skipIf(skipRgw)('the exact SSE-C headers on every object request', () => {
  it('both clients: PUT, CreateMultipartUpload, UploadPart, Complete, HEAD, GET carry algorithm, key and key MD5; listing does not', async () => {
    const seen: ProxiedRequest[] = [];
    const proxy = await startS3Proxy(rgw.port, () => false, undefined, { hold: (r) => void seen.push(r) });
    const bucket = await newBucket();
    try {
      for (const client of ['auto', 'sdk'] as const) {
        const s = await openObjectStore({
          provider: 'aws-s3', bucket, retry: { ...DEFAULT_RETRY, maxAttempts: 1 }, endpointUrl: proxy.url,
          region: 'us-east-1', credentials: { ...rgw.admin }, client, sseCustomerKey: KEY,
        });
        try {
          await s.put(`${client}/one`, randomBytes(1000));
          await s.put(`${client}/multi`, Readable.from([randomBytes(11 * MiB)]), { partSize: 5 * MiB });
          await s.head(`${client}/one`);
          await s.getBuffer(`${client}/multi`);
          for await (const e of s.list(`${client}/`)) void e;
        } finally {
          await s.close();
        }
      }
    } finally {
      await proxy.close();
    }
    const expected = {
      'x-amz-server-side-encryption-customer-algorithm': 'AES256',
      'x-amz-server-side-encryption-customer-key': KEY.toString('base64'),
      'x-amz-server-side-encryption-customer-key-md5': createHash('md5').update(KEY).digest('base64'),
    };
    const objectRequests = seen.filter((r) => new URL(r.url, 'http://x').pathname.split('/').slice(2).join('/') !== '');
    const listings = seen.filter((r) => !objectRequests.includes(r));
    // Per client: PUT; create, 3 parts, complete; HEAD; GET.
    expect(objectRequests.map((r) => `${r.method} ${r.url.replace(/uploadId=[^&]+/, 'uploadId=U').replace(/&?x-id=[A-Za-z]+/, '').replace('uploads=', 'uploads').replace(/\?$/, '')}`).sort()).toEqual(
      (['auto', 'sdk'] as const).flatMap((c) => [
        `PUT /${bucket}/${c}/one`, `POST /${bucket}/${c}/multi?uploads`, `PUT /${bucket}/${c}/multi?partNumber=1&uploadId=U`,
        `PUT /${bucket}/${c}/multi?partNumber=2&uploadId=U`, `PUT /${bucket}/${c}/multi?partNumber=3&uploadId=U`,
        `POST /${bucket}/${c}/multi?uploadId=U`, `HEAD /${bucket}/${c}/one`, `GET /${bucket}/${c}/multi`,
      ]).sort(),
    );
    for (const r of objectRequests) expect(r.headers, `${r.method} ${r.url}`).toMatchObject(expected);
    expect(listings.length).toBeGreaterThanOrEqual(2);
    for (const r of listings) expect(r.headers['x-amz-server-side-encryption-customer-key']).toBeUndefined();
  }, 120_000);
});

describe.skipIf(skipPg)('PostgreSQL 15 with SSE-C on RGW: archive, backup, catalog, verify, restore', () => {
  let primary: PgCluster;
  let bucket: string;
  let keyFile: string;
  const clusters: PgCluster[] = [];
  const target = () => [`s3://${bucket}/cluster`, 'srv'];
  const url = () => ['--endpoint-url', rgw.url, ...target()];
  const keys = () => ({ AWS_ACCESS_KEY_ID: rgw.admin.accessKeyId, AWS_SECRET_ACCESS_KEY: rgw.admin.secretAccessKey, AWS_DEFAULT_REGION: 'us-east-1' });

  beforeAll(async () => {
    bucket = await newBucket();
    // Base64 in a file the server's user owns, named by the environment variable.
    const dir = pgTempDir('bc-ssec-key-');
    keyFile = join(dir, 'sse-c.key');
    writeFileSync(keyFile, `${KEY.toString('base64')}\n`, { mode: 0o600 });
    chownSync(keyFile, statSync(dir).uid, statSync(dir).gid);
    primary = await startArchivingCluster(['--lz4', ...url()], { serverEnv: { ...keys(), BARMAN_CLOUD_SSE_CUSTOMER_KEY_FILE: keyFile } });
    clusters.push(primary);
    await fillRoundTrip(primary, 2);
  }, 120_000);

  afterAll(async () => {
    for (const c of clusters) await c.remove();
  });

  it('round trip with the key; without it every reading command fails naming the flag (wal-restore: one line, exit 4) and writes nothing', async () => {
    const withKey = cleanEnv({ ...keys(), ...primary.env, BARMAN_CLOUD_SSE_CUSTOMER_KEY_FILE: keyFile });
    const noKey = cleanEnv({ ...keys(), ...primary.env });
    const b = await runBin('barman-cloud-backup', ['--immediate-checkpoint', '-n', 'enc', '-S', '8MiB', ...url()], { env: withKey, timeoutMs: 120_000 });
    expect({ code: b.code, stderr: b.stderr }).toEqual({ code: 0, stderr: '' });
    const { lastWal, rows } = await afterRoundTripBackup(primary);

    // Stored encrypted: a plain GET of any object is refused by RGW.
    const plain = await store(bucket, 'sdk');
    try {
      const all: string[] = [];
      for await (const e of plain.list('cluster/srv/')) if (e.kind === 'object') all.push(e.key);
      expect(all.some((k) => k.includes('/wals/'))).toBe(true);
      expect(all.some((k) => k.endsWith('/backup.info'))).toBe(true);
      for (const k of all) await expect(plain.getBuffer(k), k).rejects.toBeInstanceOf(SseCustomerKeyError);
    } finally {
      await plain.close();
    }

    // Catalog and verify with the key (the key by flag here, by environment elsewhere).
    const flag = ['--sse-customer-key-file', keyFile];
    const list = await runBin('barman-cloud-backup-list', ['--format', 'json', ...flag, ...url()], { env: noKey });
    expect([list.code, list.stderr]).toEqual([0, '']);
    expect((JSON.parse(list.stdout) as { backups_list: { backup_name: string; status: string }[] }).backups_list.map((x) => [x.backup_name, x.status]))
      .toEqual([['enc', 'DONE']]);
    const show = await runBin('barman-cloud-backup-show', ['--format', 'json', ...flag, ...url(), 'enc'], { env: noKey });
    expect((JSON.parse(show.stdout) as { cloud: { status: string } }).cloud.status).toBe('DONE');
    const keep = await runBin('barman-cloud-backup-keep', ['--status', ...url(), 'enc'], { env: withKey });
    expect([keep.code, keep.stdout.trim()]).toEqual([0, 'Keep: nokeep']);
    const verify = await runBin('barman-cloud', ['verify', ...url(), 'enc'], { env: withKey, timeoutMs: 120_000 });
    expect([verify.code, verify.stderr]).toEqual([0, '']);
    const check = await runBin('barman-cloud-check-wal-archive', url(), { env: withKey });
    // An archive that holds WAL is not empty: the check refuses it (exit 1), having read it with the key.
    expect(check.code).toBe(1);

    // Without the key: one line naming the flag, exit 4 (barman's code for a failed read), no file.
    const walDest = join(work, 'restored-wal');
    const wr = await runBin('barman-cloud-wal-restore', [...url(), lastWal, walDest], { env: noKey });
    expect(wr.code).toBe(4);
    expect(wr.stderr.trim().split('\n')).toHaveLength(1);
    expect(wr.stderr).toMatch(/encrypted with a customer-provided key \(SSE-C\): give the key with --sse-customer-key-file/);
    expect(existsSync(walDest)).toBe(false);
    const wrongFile = join(work, 'wrong.key');
    writeFileSync(wrongFile, OTHER_KEY, { mode: 0o600 });
    const ww = await runBin('barman-cloud-wal-restore', ['--sse-customer-key-file', wrongFile, ...url(), lastWal, walDest], { env: noKey });
    expect([ww.code, ww.stderr.trim().split('\n').length]).toEqual([4, 1]);
    expect(ww.stderr).toMatch(/with the key of --sse-customer-key-file/);
    expect(existsSync(walDest)).toBe(false);

    const badDest = join(pgTempDir('bc-ssec-nokey-'), 'data');
    const rn = await runBin('barman-cloud-restore', [...url(), 'enc', badDest], { env: noKey, timeoutMs: 60_000 });
    // The name matches nothing readable because backup.info needs the key: that one line, exit 4
    // (not a WARNING per backup followed by "Unknown backup").
    expect(rn.code, rn.stderr).toBe(4);
    expect(rn.stderr.trim().split('\n').map((l) => l.replace(/^.*?\] /, ''))).toEqual([
      expect.stringMatching(/^ERROR: Barman cloud restore exception: object \S+\/backup\.info is encrypted with a customer-provided key \(SSE-C\): give the key with --sse-customer-key-file$/),
    ]);
    expect(existsSync(badDest)).toBe(false);
    const ln = await runBin('barman-cloud-backup-list', ['--format', 'json', ...url()], { env: noKey });
    expect(ln.stderr).toMatch(/--sse-customer-key-file/);
    const vn = await runBin('barman-cloud', ['verify', ...url(), 'enc'], { env: noKey });
    expect(vn.code).not.toBe(0);
    expect(vn.stderr).toMatch(/--sse-customer-key-file/);

    // With the key: restore, replay the encrypted WAL, every row there.
    const dest = join(pgTempDir('bc-ssec-restore-'), 'data');
    const r = await runBin('barman-cloud-restore', [...url(), 'enc', dest], { env: withKey, timeoutMs: 120_000 });
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    const copy = await startRestoredCopy(dest, url(), { serverEnv: { ...keys(), BARMAN_CLOUD_SSE_CUSTOMER_KEY_FILE: keyFile }, clusters });
    expect(await roundTripRows(copy)).toEqual(rows);
  }, 400_000);
});

describe.skipIf(skipRgw)('the SSE-C key stays secret', () => {
  it('never on stderr at DEBUG, in success and in failure, in any of its encodings', async () => {
    const bucket = await newBucket();
    const keyFile = join(work, 'debug.key');
    writeFileSync(keyFile, KEY, { mode: 0o600 });
    const wal = join(work, '000000010000000000000042');
    writeFileSync(wal, withLongPageHeader(randomBytes(16 * MiB), '000000010000000000000042'));
    const url = ['--endpoint-url', rgw.url, `s3://${bucket}/c`, 'srv'];
    const env = cleanEnv({ AWS_ACCESS_KEY_ID: rgw.admin.accessKeyId, AWS_SECRET_ACCESS_KEY: rgw.admin.secretAccessKey, AWS_DEFAULT_REGION: 'us-east-1' });
    // The same keys through a profile: the SDK client, whose -vv logs each request.
    const credentials = join(work, 'credentials');
    writeFileSync(credentials, `[rgw]\naws_access_key_id = ${rgw.admin.accessKeyId}\naws_secret_access_key = ${rgw.admin.secretAccessKey}\n`);
    const sdkEnv = cleanEnv({ AWS_SHARED_CREDENTIALS_FILE: credentials, AWS_CONFIG_FILE: join(work, 'none'), AWS_PROFILE: 'rgw', AWS_DEFAULT_REGION: 'us-east-1' });
    const outputs: string[] = [];
    for (const e of [env, sdkEnv]) {
      // The second run finds the segment archived and reads it back to compare.
      const a = await runBin('barman-cloud-wal-archive', ['-vv', '--sse-customer-key-file', keyFile, ...url, wal], { env: e });
      expect(a.code).toBe(0);
      outputs.push(a.stdout + a.stderr);
    }
    const dest = join(work, 'dbg-out');
    const ok = await runBin('barman-cloud-wal-restore', ['-vv', '--sse-customer-key-file', keyFile, ...url, '000000010000000000000042', dest], { env });
    expect(ok.code).toBe(0);
    outputs.push(ok.stdout + ok.stderr);
    writeFileSync(keyFile, OTHER_KEY.toString('base64'));
    rmSync(dest, { force: true });
    for (const e of [env, sdkEnv]) {
      const bad = await runBin('barman-cloud-wal-restore', ['-vv', '--sse-customer-key-file', keyFile, ...url, '000000010000000000000042', dest], { env: e });
      expect(bad.code).toBe(4);
      outputs.push(bad.stdout + bad.stderr);
    }
    const list = await runBin('barman-cloud-backup-list', ['-vv', '--sse-customer-key-file', keyFile, ...url], { env });
    outputs.push(list.stdout + list.stderr);
    const all = outputs.join('\n');
    expect(all).toMatch(/DEBUG/);
    for (const k of [KEY, OTHER_KEY]) {
      for (const form of [k.toString('base64'), k.toString('hex'), k.toString('base64url'), encodeURIComponent(k.toString('base64'))]) {
        expect(all.includes(form), form).toBe(false);
      }
      expect(Buffer.from(all, 'latin1').includes(k)).toBe(false);
    }
  }, 120_000);
});
