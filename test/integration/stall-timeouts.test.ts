// A server that accepts the connection and then stops reading (upload) or sending (download) must
// cost about 2 × --read-timeout, not one read timeout per attempt of every request; a refused or
// reset connection is still retried per the policy. A loopback TCP proxy in front of moto stalls a
// connection once more than STALL_AFTER bytes went through it in the chosen direction, so the
// small requests (LIST, HEAD, CreateMultipartUpload, Abort) pass and the large bodies hang.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, mkdirSync, writeFileSync, existsSync, rmSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { startMoto, createS3Bucket, type ServerHandle } from '../helpers/servers.ts';
import { runBin, cleanEnv } from '../helpers/run-bin.ts';
import { DEFAULT_RETRY, openObjectStore } from '../../src/storage/config.ts';
import { ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import { S3ObjectStore } from '../../src/storage/s3.ts';
import { NetworkError } from '../../src/errors.ts';

const MiB = 1024 * 1024;
const READ_TIMEOUT_S = 2;
const STALL_AFTER = 256 * 1024;
/** Generous: 2.5 read timeouts, plus a Node start-up on a busy machine. */
const BOUND_MS = 2.5 * READ_TIMEOUT_S * 1000 + 2500;
const S3_ENV = { AWS_ACCESS_KEY_ID: 'testing', AWS_SECRET_ACCESS_KEY: 'testing', AWS_DEFAULT_REGION: 'us-east-1' };
const SEGMENT = '000000010000000000000042';

type Mode = 'stall-upload' | 'stall-download' | 'reset-first';

interface Proxy {
  url: string;
  connections: () => number;
  close: () => Promise<void>;
}

/** A TCP proxy to `target` (host:port) that misbehaves as `mode` says. */
async function startProxy(targetUrl: string, mode: Mode): Promise<Proxy> {
  const target = new URL(targetUrl);
  const sockets = new Set<Socket>();
  let count = 0;
  const server: Server = createServer((client) => {
    const n = ++count;
    sockets.add(client);
    client.on('error', () => {});
    if (mode === 'reset-first' && n === 1) {
      client.once('data', () => client.resetAndDestroy());
      return;
    }
    const upstream = connect(Number(target.port), target.hostname);
    sockets.add(upstream);
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    let up = 0;
    let down = 0;
    client.on('data', (chunk: Buffer) => {
      up += chunk.length;
      if (mode === 'stall-upload' && up > STALL_AFTER) {
        client.pause(); // stop reading: the client's writes back up, nothing moves
        return;
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      down += chunk.length;
      if (mode === 'stall-download' && down > STALL_AFTER) {
        upstream.pause(); // stop sending: the client waits for bytes that never come
        return;
      }
      client.write(chunk);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    connections: () => count,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

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
      ], { env: cleanEnv(S3_ENV), timeoutMs: 120_000 });
      expect({ code: r.code, lines: r.stderr.trim().split('\n').length }).toEqual({ code: 4, lines: 1 });
      expect(r.stderr).toMatch(/Read timeout on endpoint URL/);
      expect(r.ms).toBeGreaterThanOrEqual(READ_TIMEOUT_S * 1000);
      expect(r.ms).toBeLessThan(BOUND_MS);
    } finally {
      await proxy.close();
    }
  }, 150_000);

  it('wal-restore (lean S3 client): the download stalls, nothing is left at the destination', async () => {
    const b = await bucket();
    const store = await openObjectStore({
      provider: 'aws-s3', bucket: b, retry: DEFAULT_RETRY, endpointUrl: moto.url, region: 'us-east-1',
      credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
    });
    await store.put(`p/srv/wals/0000000100000000/${SEGMENT}`, randomBytes(16 * MiB));
    await store.close();
    const proxy = await startProxy(moto.url, 'stall-download');
    const dest = join(work, `restored-${++seq}`);
    try {
      const r = await runBin('barman-cloud-wal-restore', [
        '--read-timeout', String(READ_TIMEOUT_S), '--endpoint-url', proxy.url, `s3://${b}/p`, 'srv', SEGMENT, dest,
      ], { env: cleanEnv(S3_ENV), timeoutMs: 120_000 });
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
      ], { env: cleanEnv(S3_ENV), timeoutMs: 60_000 });
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
