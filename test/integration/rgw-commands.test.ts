// Every command as an executable against Ceph's RADOS Gateway, a second real S3 implementation that
// predates the AWS SDK's default checksums (aws-chunked trailers), with DEFAULT settings: no
// AWS_REQUEST_CHECKSUM_CALCULATION / AWS_RESPONSE_CHECKSUM_VALIDATION in the environment (cleanEnv
// drops every AWS_ variable). Static keys take the lean client for the small requests; a profile
// takes the SDK client for everything. Also: a PostgreSQL 15 round trip, a write-only credential,
// `backup-delete --batch-size` counted on the wire, and the fallback when DeleteObjects is refused.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { startRgw, rgwAvailable, createS3Bucket, grantPutObjectOnly, type RgwHandle, type S3Keys } from '../helpers/servers.ts';
import { runBin, cleanEnv } from '../helpers/run-bin.ts';
import { deletedKeys, isBulkDelete, startS3Proxy, type S3Refusal } from '../helpers/proxy.ts';
import { segmentFor, writeWalFile } from '../helpers/wal-segment.ts';
import { openObjectStore, DEFAULT_RETRY } from '../../src/storage/config.ts';
import {
  afterRoundTripBackup, fillRoundTrip, requireTool, postgresAvailable, roundTripRows, startArchivingCluster, startRestoredCopy, pgTempDir,
  type PgCluster,
} from '../helpers/postgres.ts';

const MiB = 1024 * 1024;
const skipRgw = requireTool('Ceph RADOS Gateway', rgwAvailable());
const skipPg = skipRgw || requireTool('PostgreSQL 15', postgresAvailable());

let rgw: RgwHandle;
let work: string;
let bucketSeq = 0;

const keyEnv = (k: S3Keys) => ({ AWS_ACCESS_KEY_ID: k.accessKeyId, AWS_SECRET_ACCESS_KEY: k.secretAccessKey, AWS_DEFAULT_REGION: 'us-east-1' });

/** The same admin keys through a shared-credentials profile: the SDK's default chain, the SDK client. */
function profileEnv(k: S3Keys): Record<string, string> {
  const file = join(work, `credentials-${k.accessKeyId}`);
  writeFileSync(file, `[rgw]\naws_access_key_id = ${k.accessKeyId}\naws_secret_access_key = ${k.secretAccessKey}\n`, { mode: 0o600 });
  return { AWS_SHARED_CREDENTIALS_FILE: file, AWS_CONFIG_FILE: join(work, 'no-config'), AWS_PROFILE: 'rgw', AWS_DEFAULT_REGION: 'us-east-1' };
}

async function newBucket(): Promise<string> {
  const name = `rgw-${process.pid}-${++bucketSeq}`;
  await createS3Bucket(rgw.url, name, undefined, rgw.admin);
  return name;
}

async function adminStore(bucket: string) {
  return openObjectStore({
    provider: 'aws-s3', bucket, retry: DEFAULT_RETRY, endpointUrl: rgw.url, region: 'us-east-1',
    credentials: { ...rgw.admin }, client: 'sdk',
  });
}

async function keysIn(bucket: string, prefix = ''): Promise<string[]> {
  const s = await adminStore(bucket);
  const out: string[] = [];
  try {
    for await (const e of s.list(prefix)) if (e.kind === 'object') out.push(e.key);
  } finally {
    await s.close();
  }
  return out;
}

/** A segment-sized file of WAL-like bytes in the test's pg_wal, starting with its long page header. */
const writeSegment = (name: string): string => writeWalFile(join(work, 'pg_wal'), name, segmentFor(name));

/**
 * A loopback proxy in front of RGW that records every bulk delete (POST ?delete) with the number of
 * keys in its body, and every single DELETE, and can refuse the bulk deletes the way stores without
 * DeleteObjects (or without the checksum it wants) do.
 */
async function startDeleteProxy(refuse?: S3Refusal) {
  const batches: number[] = [];
  const single: string[] = [];
  const proxy = await startS3Proxy(rgw.port, (r) => (refuse !== undefined && isBulkDelete(r) ? refuse : false), undefined, {
    hold: (r) => {
      if (r.method === 'DELETE') single.push(r.url);
      if (isBulkDelete(r)) batches.push(deletedKeys(r).length);
      return undefined;
    },
  });
  return { ...proxy, batches, single };
}

// One cluster for the whole file (started only where Ceph is installed).
beforeAll(async () => {
  if (skipRgw) return;
  work = mkdtempSync(join(tmpdir(), 'bc-rgw-cmd-'));
  rgw = await startRgw();
}, 90_000);
afterAll(async () => {
  await rgw?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe.skipIf(skipRgw)('the commands on Ceph RGW with default settings', () => {

  it('is a store that refuses the SDK default checksums on a streamed PutObject (what broke boto3 1.36 users)', async () => {
    const { S3Client, PutObjectCommand } = await import('@aws-sdk/client-s3');
    const bucket = await newBucket();
    // The SDK as shipped (WHEN_SUPPORTED): a stream body goes out aws-chunked with a trailing
    // checksum, which RGW 16 does not understand.
    const raw = new S3Client({ endpoint: rgw.url, region: 'us-east-1', forcePathStyle: true, credentials: rgw.admin });
    try {
      const err = await raw
        .send(new PutObjectCommand({ Bucket: bucket, Key: 'raw', Body: Readable.from([Buffer.from('x'.repeat(1000))]), ContentLength: 1000 }))
        .then(() => null, (e: { name?: string; $metadata?: { httpStatusCode?: number } }) => e);
      expect([err?.$metadata?.httpStatusCode, err?.name]).toEqual([411, 'MissingContentLength']);
    } finally {
      raw.destroy();
    }
  });

  it.each([
    ['static keys (lean client)', () => keyEnv(rgw.admin)],
    ['a profile (SDK client)', () => profileEnv(rgw.admin)],
    // The SDK's checksums asked for explicitly: our uploads are sized buffers, never aws-chunked
    // streams, so a store that ignores x-amz-checksum-* headers still takes them.
    ['a profile and AWS_*_CHECKSUM_*=when_supported', () => ({
      ...profileEnv(rgw.admin), AWS_REQUEST_CHECKSUM_CALCULATION: 'when_supported', AWS_RESPONSE_CHECKSUM_VALIDATION: 'WHEN_SUPPORTED',
    })],
  ])('check-wal-archive, wal-archive and wal-restore round trip with %s', async (_what, mkEnv) => {
    const bucket = await newBucket();
    const env = cleanEnv(mkEnv());
    const url = ['--endpoint-url', rgw.url, `s3://${bucket}/pfx`, 'srv'];
    expect(await runBin('barman-cloud-check-wal-archive', url, { env })).toMatchObject({ code: 0, stderr: '' });
    const seg1 = writeSegment('000000010000000000000001');
    const seg2 = writeSegment('000000010000000000000002');
    const a1 = await runBin('barman-cloud-wal-archive', [...url, seg1], { env });
    const a2 = await runBin('barman-cloud-wal-archive', ['--lz4', '--tags', 'env,test run', ...url, seg2], { env });
    expect([a1.code, a1.stderr, a2.code, a2.stderr]).toEqual([0, '', 0, '']);
    // Archiving the same segment again is a no-op success; other bytes under its name are refused.
    expect((await runBin('barman-cloud-wal-archive', [...url, seg1], { env })).code).toBe(0);
    const clashDir = mkdtempSync(join(work, 'clash-'));
    const clash = join(clashDir, '000000010000000000000001');
    writeFileSync(clash, randomBytes(16 * MiB));
    expect((await runBin('barman-cloud-wal-archive', [...url, clash], { env })).code).toBe(1);
    expect((await keysIn(bucket, 'pfx/srv/wals/')).sort()).toEqual([
      'pfx/srv/wals/0000000100000000/000000010000000000000001',
      'pfx/srv/wals/0000000100000000/000000010000000000000002.lz4',
    ]);
    const s = await adminStore(bucket);
    try {
      expect(await s.getTags('pfx/srv/wals/0000000100000000/000000010000000000000002.lz4')).toEqual([['env', 'test run']]);
    } finally {
      await s.close();
    }
    for (const [name, original] of [['000000010000000000000001', seg1], ['000000010000000000000002', seg2]] as const) {
      const dest = join(work, `restored-${name}`);
      const r = await runBin('barman-cloud-wal-restore', [...url, name, dest], { env });
      expect([r.code, r.stderr]).toEqual([0, '']);
      expect(readFileSync(dest).equals(readFileSync(original))).toBe(true);
      rmSync(dest);
    }
    const missing = await runBin('barman-cloud-wal-restore', [...url, '000000010000000000000009', join(work, 'nine')], { env });
    expect(missing.code).toBe(1);
    // A used archive is not a fresh one.
    expect((await runBin('barman-cloud-check-wal-archive', url, { env })).code).toBe(1);
  }, 120_000);
});

describe.skipIf(skipRgw)('a write-only credential on Ceph RGW (bucket policy: s3:PutObject only)', () => {

  // The listing before the upload is refused: the conditional upload is the only guard (#13 item 4).
  it('archives WAL with wal-archive, and can do nothing else', async () => {
    const bucket = await newBucket();
    const writer = await rgw.createUser('walwriter');
    await grantPutObjectOnly(rgw.url, rgw.admin, bucket, 'walwriter');
    const env = cleanEnv(keyEnv(writer));
    const url = ['--endpoint-url', rgw.url, `s3://${bucket}/pfx`, 'srv'];
    // The policy really is write-only: this user may not list (or read) the bucket.
    const s = await openObjectStore({
      provider: 'aws-s3', bucket, retry: DEFAULT_RETRY, endpointUrl: rgw.url, region: 'us-east-1', credentials: writer, client: 'sdk',
    });
    try {
      await expect((async () => {
        for await (const _ of s.list('pfx/')) break;
      })()).rejects.toMatchObject({ name: 'AccessDeniedError' });
    } finally {
      await s.close();
    }
    const seg = writeSegment('000000010000000000000005');
    const a = await runBin('barman-cloud-wal-archive', ['--lz4', ...url, seg], { env });
    expect([a.code, a.stderr]).toEqual([0, '']);
    expect(await keysIn(bucket, 'pfx/srv/wals/')).toEqual(['pfx/srv/wals/0000000100000000/000000010000000000000005.lz4']);
  }, 60_000);
});

describe.skipIf(skipPg)('PostgreSQL 15 backed up to and restored from Ceph RGW with default settings', () => {
  let primary: PgCluster;
  let bucket: string;
  const clusters: PgCluster[] = [];
  const target = () => [`s3://${bucket}/cluster`, 'srv'];
  const url = () => ['--endpoint-url', rgw.url, ...target()];
  const keys = () => keyEnv(rgw.admin);

  beforeAll(async () => {
    bucket = await newBucket();
    primary = await startArchivingCluster(['--lz4', ...url()], { serverEnv: keys() });
    clusters.push(primary);
    await fillRoundTrip(primary, 2);
  }, 120_000);

  afterAll(async () => {
    for (const c of clusters) await c.remove();
  });

  it('backup (multipart, several parts, tagged) → list/show/keep → restore → the copy starts with every row', async () => {
    const env = cleanEnv({ ...keys(), ...primary.env });
    // -S 8MiB cuts the data archive into several tar parts; the larger ones go up as multipart uploads.
    const b = await runBin('barman-cloud-backup', ['--immediate-checkpoint', '-n', 'bk-one', '-S', '8MiB', '--tags', 'env,test run', ...url()], { env, timeoutMs: 120_000 });
    expect({ code: b.code, stderr: b.stderr }).toEqual({ code: 0, stderr: '' });
    const objects = await keysIn(bucket, 'cluster/srv/base/');
    const tars = objects.filter((k) => /\/data(_\d+)?\.tar$/.test(k));
    expect(tars.length).toBeGreaterThanOrEqual(2);
    const s = await adminStore(bucket);
    try {
      const info = objects.find((k) => k.endsWith('/backup.info'))!;
      expect(await s.getTags(info)).toEqual([['env', 'test run']]);
      expect((await s.head(tars[0]!))!.size).toBeGreaterThan(5 * MiB);
    } finally {
      await s.close();
    }
    // A multipart upload's ETag ends in -<parts>.
    const { S3Client, HeadObjectCommand } = await import('@aws-sdk/client-s3');
    const raw = new S3Client({ endpoint: rgw.url, region: 'us-east-1', forcePathStyle: true, credentials: rgw.admin });
    try {
      expect((await raw.send(new HeadObjectCommand({ Bucket: bucket, Key: tars[0]! }))).ETag).toMatch(/-[2-9]"$/);
    } finally {
      raw.destroy();
    }

    // The catalog commands through the SDK client (a profile), the upload above through static keys.
    const penv = cleanEnv({ ...profileEnv(rgw.admin), ...primary.env });
    const list = await runBin('barman-cloud-backup-list', ['--format', 'json', ...url()], { env: penv });
    expect([list.code, list.stderr]).toEqual([0, '']);
    const mine = (JSON.parse(list.stdout) as { backups_list: Record<string, unknown>[] }).backups_list;
    expect(mine.map((x) => [x.backup_name, x.status])).toEqual([['bk-one', 'DONE']]);
    const show = await runBin('barman-cloud-backup-show', ['--format', 'json', ...url(), 'bk-one'], { env: penv });
    expect((JSON.parse(show.stdout) as { cloud: { status: string } }).cloud.status).toBe('DONE');
    const keep = await runBin('barman-cloud-backup-keep', ['--target', 'standalone', ...url(), 'bk-one'], { env: penv });
    expect([keep.code, keep.stderr]).toEqual([0, '']);
    const status = await runBin('barman-cloud-backup-keep', ['--status', ...url(), 'bk-one'], { env });
    expect(status.stdout.trim()).toBe('Keep: standalone');
    expect((await runBin('barman-cloud-backup-keep', ['--release', ...url(), 'bk-one'], { env })).code).toBe(0);
    expect((await runBin('barman-cloud-backup-keep', ['--status', ...url(), 'bk-one'], { env })).stdout.trim()).toBe('Keep: nokeep');

    const { rows } = await afterRoundTripBackup(primary);

    const dest = join(pgTempDir('bc-rgw-restore-'), 'data');
    const r = await runBin('barman-cloud-restore', [...url(), 'bk-one', dest], { env, timeoutMs: 120_000 });
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    const copy = await startRestoredCopy(dest, url(), { serverEnv: keys(), clusters });
    expect(await roundTripRows(copy)).toEqual(rows);
    await copy.remove();
  }, 300_000);

  it('backup-delete --batch-size 2 sends at most 2 keys per DeleteObjects request', async () => {
    const env = cleanEnv({ ...keys(), ...primary.env });
    const b = await runBin('barman-cloud-backup', ['--immediate-checkpoint', '-n', 'bk-two', ...url()], { env, timeoutMs: 120_000 });
    expect([b.code, b.stderr]).toEqual([0, '']);
    await primary.waitForArchived(await primary.switchWal(), 60_000);
    const before = await keysIn(bucket, 'cluster/srv/');
    const firstId = before.find((k) => k.endsWith('/backup.info'))!.split('/')[3]!;
    const proxy = await startDeleteProxy();
    try {
      const d = await runBin('barman-cloud-backup-delete', ['--endpoint-url', proxy.url, '--batch-size', '2', ...target(), '-b', 'bk-one'], { env, timeoutMs: 60_000 });
      expect([d.code, d.stderr]).toEqual([0, '']);
      const after = await keysIn(bucket, 'cluster/srv/');
      const gone = before.filter((k) => !after.includes(k));
      expect(gone.filter((k) => k.includes(`/base/${firstId}/`)).length).toBeGreaterThanOrEqual(3);
      // Every deleted key went through a bulk request of at most two keys.
      expect(proxy.batches.reduce((a, n) => a + n, 0)).toBe(gone.length);
      expect(Math.max(...proxy.batches)).toBe(2);
      expect(proxy.single).toEqual([]);
    } finally {
      await proxy.close();
    }
  }, 180_000);

  it('backup-delete falls back to one DeleteObject per key when DeleteObjects is refused (501 NotImplemented)', async () => {
    const env = cleanEnv({ ...keys(), ...primary.env });
    const b = await runBin('barman-cloud-backup', ['--immediate-checkpoint', '-n', 'bk-three', ...url()], { env, timeoutMs: 120_000 });
    expect([b.code, b.stderr]).toEqual([0, '']);
    await primary.waitForArchived(await primary.switchWal(), 60_000);
    const before = await keysIn(bucket, 'cluster/srv/');
    const proxy = await startDeleteProxy({ status: 501, code: 'NotImplemented', message: 'A header you provided implies functionality that is not implemented' });
    try {
      const d = await runBin('barman-cloud-backup-delete', ['--endpoint-url', proxy.url, ...target(), '-r', 'REDUNDANCY 1'], { env, timeoutMs: 60_000 });
      expect([d.code, d.stderr]).toEqual([0, '']);
      const after = await keysIn(bucket, 'cluster/srv/');
      const gone = before.filter((k) => !after.includes(k));
      expect(gone.some((k) => k.endsWith('/backup.info'))).toBe(true);
      expect(proxy.batches.length).toBeGreaterThan(0);
      expect(proxy.single.length).toBe(gone.length);
      const list = await runBin('barman-cloud-backup-list', ['--format', 'json', ...url()], { env });
      expect((JSON.parse(list.stdout) as { backups_list: { backup_name: string }[] }).backups_list.map((x) => x.backup_name)).toEqual(['bk-three']);
    } finally {
      await proxy.close();
    }
  }, 180_000);
});
