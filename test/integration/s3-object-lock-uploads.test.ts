// Uploads into an S3 bucket with Object Lock: S3 (and moto) refuse a PutObject there without
// Content-MD5 or a flexible checksum, and S3 an UploadPart likewise. barman-cloud 3.4's botocore
// sent Content-MD5 on both, so a drop-in must upload there too: both our clients send the upload
// again with Content-MD5 once refused (docs/configuration.md#object-lock-buckets).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { startMoto, type ServerHandle } from '../helpers/servers.ts';
import { runBin, cleanEnv } from '../helpers/run-bin.ts';
import { segmentFor, walSegmentBytes, writeWalFile } from '../helpers/wal-segment.ts';
import { MOTO_ENV, MOTO_KEYS } from '../helpers/moto.ts';
import { startS3Proxy, type Proxy } from '../helpers/proxy.ts';
import { DEFAULT_RETRY, openObjectStore } from '../../src/storage/config.ts';
import { readWhole } from '../../src/storage/body.ts';

const MiB = 1024 * 1024;
const LOCKED = 'locked-bucket';

let moto: ServerHandle;
let work: string;

async function createLockedBucket(endpoint: string, bucket: string): Promise<void> {
  const { S3Client, CreateBucketCommand, PutObjectLockConfigurationCommand } = await import('@aws-sdk/client-s3');
  const client = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: MOTO_KEYS });
  try {
    await client.send(new CreateBucketCommand({ Bucket: bucket, ObjectLockEnabledForBucket: true }));
    await client.send(new PutObjectLockConfigurationCommand({
      Bucket: bucket,
      ObjectLockConfiguration: { ObjectLockEnabled: 'Enabled', Rule: { DefaultRetention: { Mode: 'GOVERNANCE', Days: 1 } } },
    }));
  } finally {
    client.destroy();
  }
}

const storeOn = (endpointUrl: string, client: 'auto' | 'sdk') => openObjectStore({
  provider: 'aws-s3', bucket: LOCKED, retry: DEFAULT_RETRY, endpointUrl, region: 'us-east-1', credentials: { ...MOTO_KEYS }, client,
});

beforeAll(async () => {
  moto = await startMoto();
  await createLockedBucket(moto.url, LOCKED);
  work = mkdtempSync(join(tmpdir(), 'bc-object-lock-'));
});
afterAll(async () => {
  await moto?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('uploads into a bucket with Object Lock (default retention)', () => {
  it('wal-archive stores a segment plain and with --lz4, and wal-restore gives it back byte for byte', async () => {
    const env = cleanEnv(MOTO_ENV);
    const url = `s3://${LOCKED}/pfx`;
    for (const [codec, name] of [[[], '000000010000000000000001'], [['--lz4'], '000000010000000000000002']] as const) {
      const path = writeWalFile(work, name, segmentFor(name, 16 * MiB));
      const archived = await runBin('barman-cloud-wal-archive', [...codec, '--endpoint-url', moto.url, url, 'srv', path], { env });
      expect({ codec, code: archived.code, stderr: archived.stderr }).toEqual({ codec, code: 0, stderr: '' });
      const dest = join(work, `${name}.restored`);
      const restored = await runBin('barman-cloud-wal-restore', ['--endpoint-url', moto.url, url, 'srv', name, dest], { env });
      expect(restored.code).toBe(0);
      expect(readFileSync(dest).equals(readFileSync(path))).toBe(true);
    }
  });

  it('an encrypted segment (signed chunk by chunk as it is sent) is sent again with Content-MD5 and restores byte for byte', async () => {
    const env = cleanEnv(MOTO_ENV);
    const url = `s3://${LOCKED}/pfx`;
    execFileSync('age-keygen', ['-o', join(work, 'identity')], { stdio: 'ignore' });
    writeFileSync(join(work, 'recipient'), execFileSync('age-keygen', ['-y', join(work, 'identity')]));
    const seen: string[] = [];
    // Records each WAL upload's signing mode and Content-MD5, and passes it on to moto.
    const proxy = await startS3Proxy(moto.port, (r) => {
      if (r.method === 'PUT' && r.url.includes('/wals/')) seen.push(`${String(r.headers['x-amz-content-sha256'])} md5=${r.headers['content-md5'] ? 'yes' : 'no'}`);
      return false;
    });
    try {
      for (const [codec, name] of [[[], '000000010000000000000003'], [['--lz4'], '000000010000000000000004']] as const) {
        seen.length = 0;
        const path = writeWalFile(work, name, segmentFor(name, 16 * MiB));
        const archived = await runBin('barman-cloud-wal-archive', [...codec, '--encryption-recipient-file', join(work, 'recipient'), '--endpoint-url', proxy.url, url, 'srv-age', path], { env });
        expect({ codec, code: archived.code, stderr: archived.stderr }).toEqual({ codec, code: 0, stderr: '' });
        // Refused without Content-MD5 first unless the encryption record's upload, made alongside, learnt it first.
        expect(seen.at(-1)).toBe('STREAMING-AWS4-HMAC-SHA256-PAYLOAD md5=yes');
        expect(seen.length === 1 || seen[0] === 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD md5=no').toBe(true);
        const dest = join(work, `${name}.restored`);
        const restored = await runBin('barman-cloud-wal-restore', ['--encryption-identity-file', join(work, 'identity'), '--endpoint-url', moto.url, url, 'srv-age', name, dest], { env });
        expect(restored.code).toBe(0);
        expect(readFileSync(dest).equals(readFileSync(path))).toBe(true);
      }
    } finally {
      await proxy.close();
    }
  });

  it('the SDK driver stores a single PutObject there', async () => {
    const store = await storeOn(moto.url, 'sdk');
    try {
      const body = walSegmentBytes(2 * MiB);
      await store.put('sdk/one', body);
      expect((await store.getBuffer('sdk/one')).equals(body)).toBe(true);
    } finally {
      await store.close();
    }
  });

  // moto checks PutObject only; S3 refuses parts as well: a proxy plays that rule in front of moto.
  it.each(['auto', 'sdk'] as const)('a multipart stream (%s client) has its refused part sent again with Content-MD5', async (client) => {
    let refused = 0;
    let partsWithMd5 = 0;
    const proxy: Proxy = await startS3Proxy(moto.port, (r) => {
      if (r.method !== 'PUT' || !/[?&]partNumber=/.test(r.url)) return false;
      if (r.headers['content-md5']) {
        partsWithMd5++;
        return false;
      }
      refused++;
      return { status: 400, code: 'InvalidRequest', message: 'Content-MD5 OR x-amz-checksum- HTTP header is required for Put Part requests with Object Lock parameters' };
    });
    const store = await storeOn(proxy.url, client);
    try {
      const body = walSegmentBytes(12 * MiB);
      await store.put(`${client}/stream`, Readable.from([body.subarray(0, 7 * MiB), body.subarray(7 * MiB)]), { partSize: 5 * MiB, concurrency: 1 });
      expect((await readWhole(await store.get(`${client}/stream`))).equals(body)).toBe(true);
      expect(refused).toBe(1); // the first part; every later one carried Content-MD5 up front
      expect(partsWithMd5).toBeGreaterThanOrEqual(3);
    } finally {
      await store.close();
      await proxy.close();
    }
  });
});
