// A server that accepts the connection and then stops reading (upload) or sending (download) must
// cost about 2 × --read-timeout, not one read timeout per attempt of every request; a refused or
// reset connection is still retried per the policy. A loopback TCP proxy in front of moto stalls a
// connection once more than STALL_AFTER bytes went through it in the chosen direction, so the
// small requests (LIST, HEAD, CreateMultipartUpload, Abort) pass and the large bodies hang.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, mkdirSync, writeFileSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { startMoto, createS3Bucket, startAzurite, azuriteConnectionString, type ServerHandle } from '../helpers/servers.ts';
import { runBin, cleanEnv } from '../helpers/run-bin.ts';
import { startTcpProxy, type TcpProxyMode } from '../helpers/proxy.ts';
import { DEFAULT_RETRY, openObjectStore } from '../../src/storage/config.ts';
import { ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import { S3ObjectStore } from '../../src/storage/s3/s3.ts';
import { NetworkError } from '../../src/errors.ts';
import type { StoreConfig } from '../../src/storage/config.ts';
import { MOTO_ENV } from '../helpers/moto.ts';
import { withLongPageHeader } from '../helpers/wal-segment.ts';

const MiB = 1024 * 1024;
const READ_TIMEOUT_S = 2;
const STALL_AFTER = 256 * 1024;
/** Generous: 2.5 read timeouts, plus a Node start-up on a busy machine. */
const BOUND_MS = 2.5 * READ_TIMEOUT_S * 1000 + 2500;
const SEGMENT = '000000010000000000000042';

const startProxy = (targetUrl: string, mode: TcpProxyMode) => startTcpProxy(targetUrl, mode, STALL_AFTER);

let moto: ServerHandle;
let work: string;
let seq = 0;

async function bucket(): Promise<string> {
  const name = `stall-${process.pid}-${++seq}`;
  await createS3Bucket(moto.url, name);
  return name;
}

function walFile(data: Buffer): string {
  const dir = join(work, `pgwal-${++seq}`);
  mkdirSync(dir);
  writeFileSync(join(dir, SEGMENT), data);
  return join(dir, SEGMENT);
}

beforeAll(async () => {
  moto = await startMoto();
  work = mkdtempSync(join(tmpdir(), 'bc-stall-'));
});
afterAll(async () => {
  await moto?.stop();
  rmSync(work, { recursive: true, force: true });
});

describe(`a stalled server fails within ~2 × --read-timeout (${READ_TIMEOUT_S} s)`, () => {
  it('wal-archive (lean S3 client): the upload stalls', async () => {
    const b = await bucket();
    const proxy = await startProxy(moto.url, 'stall-upload');
    try {
      const r = await runBin('barman-cloud-wal-archive', [
        '--read-timeout', String(READ_TIMEOUT_S), '--endpoint-url', proxy.url, `s3://${b}/p`, 'srv', walFile(randomBytes(16 * MiB)),
      ], { env: cleanEnv(MOTO_ENV), timeoutMs: 120_000 });
      expect({ code: r.code, lines: r.stderr.trim().split('\n').length }).toEqual({ code: 4, lines: 1 });
      expect(r.stderr).toMatch(/Read timeout on endpoint URL/);
      expect(r.ms).toBeGreaterThanOrEqual(READ_TIMEOUT_S * 1000);
      expect(r.ms).toBeLessThan(BOUND_MS);
    } finally {
      await proxy.close();
    }
  }, 150_000);

  // The Azure SDK retries by its own rules: an error naming a timeout is retried (3 attempts, each
  // costing its read timeouts), so a stall must not read as one to it (src/storage/retry.ts).
  it('wal-archive (Azure SDK): the upload stalls', async () => {
    const azurite = await startAzurite();
    try {
      const s = await openObjectStore({
        provider: 'azure-blob-storage', bucket: 'stall', retry: DEFAULT_RETRY,
        auth: { kind: 'connection-string', connectionString: azuriteConnectionString(azurite.url) },
      } as StoreConfig);
      await s.createBucket();
      await s.close();
      const proxy = await startProxy(azurite.url, 'stall-upload');
      try {
        const r = await runBin('barman-cloud-wal-archive', [
          '--read-timeout', String(READ_TIMEOUT_S), '--cloud-provider', 'azure-blob-storage',
          `${proxy.url}/devstoreaccount1/stall`, 'srv', walFile(randomBytes(16 * MiB)),
        ], { env: cleanEnv({ AZURE_STORAGE_CONNECTION_STRING: azuriteConnectionString(proxy.url) }), timeoutMs: 120_000 });
        expect({ code: r.code, lines: r.stderr.trim().split('\n').length }).toEqual({ code: 4, lines: 1 });
        expect(r.stderr).toMatch(/Azure Blob Storage unreachable .*: the server moved no data for 2000 ms/);
        expect(r.ms).toBeGreaterThanOrEqual(READ_TIMEOUT_S * 1000);
        // The Azure SDK's start costs ~1.5 s more than the lean S3 client's; its three attempts, each
        // of two read timeouts, took 12.6 s before stalls were made final.
        expect(r.ms).toBeLessThan(BOUND_MS + 1500);
      } finally {
        await proxy.close();
      }
    } finally {
      await azurite.stop();
    }
  }, 150_000);

  it('wal-restore (lean S3 client): the download stalls, nothing is left at the destination', async () => {
    const b = await bucket();
    const store = await openObjectStore({
      provider: 'aws-s3', bucket: b, retry: DEFAULT_RETRY, endpointUrl: moto.url, region: 'us-east-1',
      credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
    });
    await store.put(`p/srv/wals/0000000100000000/${SEGMENT}`, withLongPageHeader(randomBytes(16 * MiB), SEGMENT));
    await store.close();
    const proxy = await startProxy(moto.url, 'stall-download');
    const dest = join(work, `restored-${++seq}`);
    try {
      const r = await runBin('barman-cloud-wal-restore', [
        '--read-timeout', String(READ_TIMEOUT_S), '--endpoint-url', proxy.url, `s3://${b}/p`, 'srv', SEGMENT, dest,
      ], { env: cleanEnv(MOTO_ENV), timeoutMs: 120_000 });
      expect({ code: r.code, lines: r.stderr.trim().split('\n').length }).toEqual({ code: 4, lines: 1 });
      expect(r.stderr).toMatch(/timeout/i);
      expect(r.ms).toBeGreaterThanOrEqual(READ_TIMEOUT_S * 1000);
      expect(r.ms).toBeLessThan(BOUND_MS);
      expect(existsSync(dest)).toBe(false);
    } finally {
      await proxy.close();
    }
  }, 150_000);

  it('a multipart part upload through the SDK driver stalls: NetworkError, upload aborted', async () => {
    const b = await bucket();
    const proxy = await startProxy(moto.url, 'stall-upload');
    const store = new S3ObjectStore({
      provider: 'aws-s3', bucket: b, endpointUrl: proxy.url, region: 'us-east-1',
      credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
      retry: { ...DEFAULT_RETRY, readTimeoutMs: READ_TIMEOUT_S * 1000 },
    });
    try {
      const started = Date.now();
      const err = await store.put('p/srv/base/x/data.tar', Readable.from([randomBytes(6 * MiB), randomBytes(6 * MiB)]), {
        partSize: 5 * MiB, concurrency: 1,
      }).then(() => undefined, (e: unknown) => e);
      const ms = Date.now() - started;
      expect(err).toBeInstanceOf(NetworkError);
      expect(ms).toBeGreaterThanOrEqual(READ_TIMEOUT_S * 1000);
      expect(ms).toBeLessThan(2.5 * READ_TIMEOUT_S * 1000 + 500);
      const { Uploads } = await store.client.send(new ListMultipartUploadsCommand({ Bucket: b }));
      expect(Uploads ?? []).toEqual([]);
    } finally {
      await store.close();
      await proxy.close();
    }
  }, 150_000);
});

describe('a refused or reset connection is still retried', () => {
  it('wal-archive succeeds when the first connection is reset', async () => {
    const b = await bucket();
    const proxy = await startProxy(moto.url, 'reset-first');
    try {
      const r = await runBin('barman-cloud-wal-archive', [
        '--read-timeout', String(READ_TIMEOUT_S), '--endpoint-url', proxy.url, `s3://${b}/p`, 'srv', walFile(randomBytes(64 * 1024)),
      ], { env: cleanEnv(MOTO_ENV), timeoutMs: 60_000 });
      expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
      expect(proxy.connections()).toBeGreaterThanOrEqual(2);
    } finally {
      await proxy.close();
    }
  }, 60_000);

  it('the SDK driver succeeds when the first connection is reset', async () => {
    const b = await bucket();
    const proxy = await startProxy(moto.url, 'reset-first');
    const store = new S3ObjectStore({
      provider: 'aws-s3', bucket: b, endpointUrl: proxy.url, region: 'us-east-1',
      credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
      retry: { ...DEFAULT_RETRY, readTimeoutMs: READ_TIMEOUT_S * 1000 },
    });
    try {
      await store.put('p/k', Buffer.from('retried'));
      expect((await store.getBuffer('p/k')).toString()).toBe('retried');
      expect(proxy.connections()).toBeGreaterThanOrEqual(2);
    } finally {
      await store.close();
      await proxy.close();
    }
  }, 60_000);
});
