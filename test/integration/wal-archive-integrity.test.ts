// End-to-end integrity of a WAL upload: one byte of the segment changed on the way to Ceph RGW (a
// proxy between us and the server) must be refused by the server, not stored. The lean S3 client
// signs a WAL PUT with the body's SHA-256 (x-amz-content-sha256); RGW recomputes it and answers
// XAmzContentSHA256Mismatch. An encrypted segment is signed chunk by chunk as it is sent (streamed
// signed payload, aws-chunked): RGW checks each chunk's signature and refuses the request.
// (moto checks neither a payload hash nor chunk signatures, so it cannot be the witness.)
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRgw, rgwAvailable, createS3Bucket, type RgwHandle } from '../helpers/servers.ts';
import { startS3Proxy, type Proxy, type ProxiedRequest } from '../helpers/proxy.ts';
import { runBin, cleanEnv } from '../helpers/run-bin.ts';
import { segmentFor, writeWalFile } from '../helpers/wal-segment.ts';
import { requireTool } from '../helpers/postgres.ts';
import { openObjectStore, DEFAULT_RETRY } from '../../src/storage/config.ts';

const skip = requireTool('Ceph RADOS Gateway', rgwAvailable());
const skipAge = requireTool('age-keygen', (() => {
  try {
    execFileSync('age-keygen', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})());

let rgw: RgwHandle;
let proxy: Proxy;
let work: string;
let bucket: string;
let corrupt = true;
const damaged: string[] = [];

/** Flip one byte in the middle of a WAL upload's body. */
function flipOnePayloadByte(r: ProxiedRequest): Buffer {
  if (!corrupt || r.method !== 'PUT' || !r.url.includes('/wals/') || r.body.length < 200_000) return r.body;
  const body = Buffer.from(r.body);
  const at = body.length >> 1;
  body[at] = body[at]! ^ 0x01;
  damaged.push(`${r.url} ${r.headers['x-amz-content-sha256'] ?? ''}`);
  return body;
}

function segment(name: string): { path: string; bytes: Buffer } {
  const bytes = segmentFor(name);
  return { path: writeWalFile(join(work, 'pg_wal'), name, bytes), bytes };
}

async function walKeys(): Promise<string[]> {
  const store = await openObjectStore({
    provider: 'aws-s3', bucket, retry: DEFAULT_RETRY, endpointUrl: rgw.url, region: 'us-east-1', credentials: { ...rgw.admin },
  });
  const keys: string[] = [];
  try {
    for await (const e of store.list('integrity/')) if (e.kind === 'object' && e.key.includes('/wals/')) keys.push(e.key);
  } finally {
    await store.close();
  }
  return keys;
}

const env = () => cleanEnv({ AWS_ACCESS_KEY_ID: rgw.admin.accessKeyId, AWS_SECRET_ACCESS_KEY: rgw.admin.secretAccessKey, AWS_DEFAULT_REGION: 'us-east-1' });
// Encrypted WAL goes to a server of its own: plain and encrypted WAL never mix in one archive.
const archive = (flags: readonly string[], path: string, server = 'srv') =>
  runBin('barman-cloud-wal-archive', [...flags, '--endpoint-url', proxy.url, `s3://${bucket}/integrity`, server, path], { env: env(), timeoutMs: 120_000 });

beforeAll(async () => {
  if (skip) return;
  work = mkdtempSync(join(tmpdir(), 'bc-walintegrity-'));
  rgw = await startRgw();
  bucket = `integrity-${process.pid}`;
  await createS3Bucket(rgw.url, bucket, undefined, rgw.admin);
  if (!skipAge) {
    execFileSync('age-keygen', ['-o', join(work, 'identity')], { stdio: 'ignore' });
    writeFileSync(join(work, 'recipient'), execFileSync('age-keygen', ['-y', join(work, 'identity')]));
  }
  proxy = await startS3Proxy(Number(new URL(rgw.url).port), () => false, flipOnePayloadByte);
}, 120_000);

afterAll(async () => {
  await proxy?.close();
  await rgw?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe.skipIf(skip)('wal-archive: a body changed on the way is refused by the server (RGW)', () => {
  const recipient = () => ['--encryption-recipient-file', join(work, 'recipient')];
  for (const [label, flags, name, encrypted] of [
    ['uncompressed', () => [], '000000010000000000000001', false],
    ['lz4', () => ['--lz4'], '000000010000000000000002', false],
    ['encrypted (streamed signed payload)', recipient, '000000010000000000000003', true],
    ['lz4, encrypted (streamed signed payload)', () => ['--lz4', ...recipient()], '000000010000000000000004', true],
  ] as const) {
    it.skipIf(encrypted && skipAge)(`${label}: exit 4 (as barman for any failure) with one line, nothing stored; the same file through an honest proxy is stored intact`, async () => {
      const { path, bytes } = segment(name);
      corrupt = true;
      damaged.length = 0;
      const server = encrypted ? 'srv-age' : 'srv';
      const refused = await archive(flags(), path, server);
      expect(damaged.length, refused.stderr).toBeGreaterThan(0); // the proxy did change the upload
      expect(refused.code).toBe(4);
      expect(damaged[0]).toContain(encrypted ? 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD' : ' ');
      if (encrypted) expect(refused.stderr).toMatch(/SignatureDoesNotMatch|XAmzContentSHA256Mismatch/);
      expect(refused.stderr.trim().split('\n')).toHaveLength(1);
      expect(refused.stderr).not.toContain(rgw.admin.secretAccessKey);
      expect((await walKeys()).filter((k) => k.includes(name))).toEqual([]);

      corrupt = false;
      const stored = await archive(flags(), path, server);
      expect(stored.stderr).toBe('');
      expect(stored.code).toBe(0);
      const dest = join(work, `restored-${name}`);
      const identity = encrypted ? ['--encryption-identity-file', join(work, 'identity')] : [];
      const restored = await runBin('barman-cloud-wal-restore', [...identity, '--endpoint-url', rgw.url, `s3://${bucket}/integrity`, server, name, dest], { env: env() });
      expect(restored.code).toBe(0);
      expect(readFileSync(dest).equals(bytes)).toBe(true);
    }, 120_000);
  }
});
