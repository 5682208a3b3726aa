// The GCS driver against the in-memory GCS JSON-API test server (test/servers/gcs-server.mjs).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { Readable } from 'node:stream';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { startGcsServer, crc32cBase64 } from '../servers/gcs-server.mjs';
import { GcsObjectStore } from '../../src/storage/gcs/gcs.ts';
import type { GcsStoreConfig, RetryPolicy } from '../../src/storage/config.ts';
import type { ListEntry } from '../../src/storage/types.ts';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import {
  AccessDeniedError, BucketNotFoundError, NetworkError, NotFoundError, PreconditionFailedError, StorageError,
} from '../../src/errors.ts';

type GcsServer = Awaited<ReturnType<typeof startGcsServer>>;

// Short timeouts so that failure paths finish in a few seconds.
const RETRY: RetryPolicy = { maxAttempts: 2, baseDelayMs: 50, maxDelayMs: 200, connectTimeoutMs: 1_000, readTimeoutMs: 1_500 };
const KIB = 1024;
const CHUNK = 256 * KIB;

function open(server: GcsServer, extra: Partial<GcsStoreConfig> = {}): GcsObjectStore {
  return new GcsObjectStore({ provider: 'google-cloud-storage', bucket: 'barman', retry: RETRY, apiEndpoint: server.url, ...extra });
}

function pattern(size: number, seed = 1): Buffer {
  const buf = Buffer.alloc(size);
  let x = seed;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    buf[i] = x >>> 24;
  }
  return buf;
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A stream that hands out `data` in `piece`-sized chunks, asynchronously. */
function slowStream(data: Buffer, piece = 64 * KIB): Readable {
  let pos = 0;
  return new Readable({
    read() {
      setImmediate(() => {
        if (pos >= data.length) return void this.push(null);
        this.push(data.subarray(pos, pos + piece));
        pos += piece;
      });
    },
  });
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

async function drain(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function rejectionOf(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error('expected a rejection');
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as { port: number };
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

describe('GcsObjectStore against the GCS test server', () => {
  let server: GcsServer;
  let store: GcsObjectStore;

  beforeAll(async () => {
    server = await startGcsServer();
    store = open(server, { kmsKeyName: 'projects/p/locations/l/keyRings/r/cryptoKeys/k' });
  });
  afterAll(async () => {
    await store?.close();
    await server?.close();
  });

  it('reports a missing bucket, creates it, and tolerates creating it again', async () => {
    expect(await store.testConnectivity()).toBe('bucket-missing');
    expect(await store.bucketExists()).toBe(false);
    await store.createBucket();
    await store.createBucket(); // 409 ignored
    expect(await store.testConnectivity()).toBe('ok');
    expect(await store.bucketExists()).toBe(true);
  });

  it('round-trips a Buffer, with head, tags and the CMEK key', async () => {
    const body = pattern(100_000);
    await store.put('wals/0000000100000000/000000010000000000000001', body, { tags: [['b', '2'], ['a', '1']] });
    const back = await store.getBuffer('wals/0000000100000000/000000010000000000000001');
    expect(sha256(back)).toBe(sha256(body));
    const info = await store.head('wals/0000000100000000/000000010000000000000001');
    expect(info?.size).toBe(100_000);
    expect(info?.lastModified).toBeInstanceOf(Date);
    expect(await store.getTags('wals/0000000100000000/000000010000000000000001')).toEqual([['b', '2'], ['a', '1']]);
    const stored = server.buckets.get('barman')!.objects.get('wals/0000000100000000/000000010000000000000001') as { kmsKeyName?: string };
    expect(stored.kmsKeyName).toBe('projects/p/locations/l/keyRings/r/cryptoKeys/k');
    expect(await store.head('no/such/key')).toBeNull();
  });

  it('streams a multi-chunk resumable upload and reads back identical bytes', async () => {
    const data = pattern(3 * CHUNK + 12_345, 7);
    const before = server.log.length;
    await store.put('base/backup1/data.tar', slowStream(data), { partSize: CHUNK, tags: [['env', 'test']] });
    const puts = server.log.slice(before).filter((r) => r.method === 'PUT');
    expect(puts.map((r) => r.contentRange)).toEqual([
      `bytes 0-${CHUNK - 1}/*`,
      `bytes ${CHUNK}-${2 * CHUNK - 1}/*`,
      `bytes ${2 * CHUNK}-${3 * CHUNK - 1}/*`,
      `bytes ${3 * CHUNK}-${data.length - 1}/${data.length}`,
    ]);
    const back = await drain(await store.get('base/backup1/data.tar'));
    expect(back.length).toBe(data.length);
    expect(sha256(back)).toBe(sha256(data));
    expect(await store.getTags('base/backup1/data.tar')).toEqual([['env', 'test']]);
    // a part size that is not a 256 KiB multiple is rounded up
    await store.put('base/backup1/odd.tar', slowStream(data), { partSize: 300 * KIB });
    expect(sha256(await store.getBuffer('base/backup1/odd.tar'))).toBe(sha256(data));
  });

  it('sends a large Buffer through the resumable path', async () => {
    const big = pattern(33 * 1024 * KIB, 5);
    const before = server.log.length;
    await store.put('base/backup1/big.bin', big, { tags: [['k', 'v']] });
    const ranges = server.log.slice(before).filter((r) => r.method === 'PUT').map((r) => r.contentRange);
    expect(ranges).toHaveLength(5); // 4 × 8 MiB + the last MiB
    expect(sha256(await store.getBuffer('base/backup1/big.bin'))).toBe(sha256(big));
    expect(await store.getTags('base/backup1/big.bin')).toEqual([['k', 'v']]);
  });

  it('stores an empty stream and an empty Buffer', async () => {
    await store.put('empty/stream', Readable.from([]));
    await store.put('empty/buffer', Buffer.alloc(0));
    expect((await store.getBuffer('empty/stream')).length).toBe(0);
    expect((await store.getBuffer('empty/buffer')).length).toBe(0);
    expect((await store.head('empty/stream'))?.size).toBe(0);
  });

  it('reads byte ranges', async () => {
    const body = pattern(10_000, 3);
    await store.put('ranged', body);
    expect(await store.getBuffer('ranged', { start: 100, end: 199 })).toEqual(body.subarray(100, 200));
    expect(await store.getBuffer('ranged', { start: 9_990 })).toEqual(body.subarray(9_990));
    expect(await store.getBuffer('ranged', { start: 0, end: 0 })).toEqual(body.subarray(0, 1));
  });

  it('lists every page in key order, and groups on a delimiter', async () => {
    const keys = ['list/e', 'list/a', 'list/c', 'list/b', 'list/g', 'list/d', 'list/f'];
    for (const k of keys) await store.put(k, Buffer.from(k));
    const before = server.log.length;
    const entries = await collect(store.list('list/', { pageSize: 2 }));
    expect(entries.map((e) => (e.kind === 'object' ? e.key : e.prefix))).toEqual([...keys].sort());
    expect(entries.every((e) => e.kind === 'object' && e.size === 6)).toBe(true);
    const listCalls = server.log.slice(before).filter((r) => r.method === 'GET' && r.path.endsWith('/o'));
    expect(listCalls.length).toBe(4);

    for (const k of ['tree/a', 'tree/b/1', 'tree/b/2', 'tree/c/d/e', 'tree/c/x', 'tree/z', 'treehouse']) {
      await store.put(k, Buffer.from('x'));
    }
    const shape = (e: ListEntry) => (e.kind === 'object' ? `o:${e.key}` : `p:${e.prefix}`);
    for (const pageSize of [1, 2, 1000]) {
      expect((await collect(store.list('tree/', { delimiter: '/', pageSize }))).map(shape)).toEqual([
        'o:tree/a', 'p:tree/b/', 'p:tree/c/', 'o:tree/z',
      ]);
    }
    expect((await collect(store.list('tree/c/', { delimiter: '/' }))).map(shape)).toEqual(['p:tree/c/d/', 'o:tree/c/x']);
    expect((await collect(store.list('tr', { delimiter: '/' }))).map(shape)).toEqual(['p:tree/', 'o:treehouse']);
    expect(await collect(store.list('nothing-here/'))).toEqual([]);
  });

  it('deletes in batches, counting missing objects as deleted', async () => {
    const keys = Array.from({ length: 120 }, (_, i) => `del/${String(i).padStart(3, '0')}`);
    for (const k of keys) await store.put(k, Buffer.from('d'));
    const asked = [...keys, 'del/missing-1', 'del/missing-2'];
    const before = server.log.length;
    const result = await store.deleteMany(asked);
    expect(result.errors).toEqual([]);
    expect(result.deleted).toEqual(asked);
    expect(server.log.slice(before).filter((r) => r.method === 'DELETE').length).toBe(asked.length);
    expect(await collect(store.list('del/'))).toEqual([]);
    await store.put('del/one', Buffer.from('1'));
    expect(await store.deleteMany(['del/one', 'del/two'], 1)).toEqual({ deleted: ['del/one', 'del/two'], errors: [] });
    await store.delete('del/never-existed');
  });

  it('maps a missing object to NotFoundError before any stream is handed out', async () => {
    expect(await rejectionOf(store.get('missing/object'))).toBeInstanceOf(NotFoundError);
    expect(await rejectionOf(store.get('missing/object', { start: 10, end: 20 }))).toBeInstanceOf(NotFoundError);
    expect(await rejectionOf(store.getBuffer('missing/object'))).toBeInstanceOf(NotFoundError);
    expect(await rejectionOf(store.getTags('missing/object'))).toBeInstanceOf(NotFoundError);
    const err = (await rejectionOf(store.get('missing/object'))) as NotFoundError;
    expect(err.key).toBe('missing/object');
  });

  it('maps a missing bucket to BucketNotFoundError', async () => {
    const other = open(server, { bucket: 'no-such-bucket' });
    try {
      expect(await rejectionOf(store.get('x'))).toBeInstanceOf(NotFoundError);
      expect(await rejectionOf(other.head('x'))).toBeInstanceOf(BucketNotFoundError);
      expect(await rejectionOf(collect(other.list('')))).toBeInstanceOf(BucketNotFoundError);
      expect(await rejectionOf(other.put('x', Buffer.from('x')))).toBeInstanceOf(BucketNotFoundError);
      expect(await rejectionOf(other.get('x'))).toBeInstanceOf(BucketNotFoundError);
    } finally {
      await other.close();
    }
  });

  it('refuses to overwrite with ifNoneMatch, for Buffers and streams', async () => {
    await store.put('once', Buffer.from('first'), { ifNoneMatch: true });
    expect(await rejectionOf(store.put('once', Buffer.from('second'), { ifNoneMatch: true }))).toBeInstanceOf(PreconditionFailedError);
    expect(await rejectionOf(store.put('once', slowStream(pattern(CHUNK + 1)), { ifNoneMatch: true, partSize: CHUNK })))
      .toBeInstanceOf(PreconditionFailedError);
    expect((await store.getBuffer('once')).toString()).toBe('first');
    await store.put('once-stream', slowStream(pattern(1000)), { ifNoneMatch: true });
    await store.put('once', Buffer.from('third')); // a plain put overwrites
    expect((await store.getBuffer('once')).toString()).toBe('third');
  });

  it('cancels the resumable session when the source stream fails', async () => {
    const before = server.log.length;
    const failing = new Readable({
      read() {
        if (this.readableLength === 0 && !(this as { sent?: boolean }).sent) {
          (this as { sent?: boolean }).sent = true;
          this.push(pattern(CHUNK));
        } else {
          setImmediate(() => this.destroy(new Error('tar producer failed')));
        }
      },
    });
    const err = await rejectionOf(store.put('broken', failing, { partSize: CHUNK }));
    expect(String((err as Error).message)).toMatch(/tar producer failed/);
    const cancels = server.log.slice(before).filter((r) => r.method === 'DELETE' && r.query.upload_id);
    expect(cancels.length).toBe(1);
    expect(await store.head('broken')).toBeNull();
  });

  it('uses anonymous access with an emulator even when the key file is empty', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gcs-cred-'));
    const keyFile = join(dir, 'application_credentials.json');
    writeFileSync(keyFile, '');
    const saved = { gac: process.env.GOOGLE_APPLICATION_CREDENTIALS, emu: process.env.STORAGE_EMULATOR_HOST };
    process.env.GOOGLE_APPLICATION_CREDENTIALS = keyFile;
    // The client reads STORAGE_EMULATOR_HOST itself (as a base URL without /storage/v1).
    process.env.STORAGE_EMULATOR_HOST = server.url;
    const anon = open(server, { keyFilename: keyFile });
    try {
      expect(await anon.testConnectivity()).toBe('ok');
      await anon.put('anon/obj', Buffer.from('anonymous'));
      await anon.put('anon/stream', slowStream(pattern(CHUNK + 10)), { partSize: CHUNK });
      expect((await anon.getBuffer('anon/obj')).toString()).toBe('anonymous');
      expect((await collect(anon.list('anon/'))).length).toBe(2);
    } finally {
      for (const [k, v] of [['GOOGLE_APPLICATION_CREDENTIALS', saved.gac], ['STORAGE_EMULATOR_HOST', saved.emu]] as const) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
      await anon.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('has the checksums the client verifies, in both directions', async () => {
    expect(crc32cBase64(Buffer.from('123456789'))).toBe('4waSgw=='); // CRC32C check value 0xE3069283
    // The server refuses an upload whose declared md5Hash does not match the bytes.
    const boundary = 'b0undary';
    const payload = Buffer.concat([
      Buffer.from(`--${boundary}\r\nContent-Type: application/json\r\n\r\n${JSON.stringify({ md5Hash: 'AAAAAAAAAAAAAAAAAAAAAA==' })}\r\n`),
      Buffer.from(`--${boundary}\r\nContent-Type: application/octet-stream\r\n\r\nhello\r\n--${boundary}--`),
    ]);
    const res = await fetch(`${server.url}/upload/storage/v1/b/barman/o?uploadType=multipart&name=bad-md5`, {
      method: 'POST', headers: { 'Content-Type': `multipart/related; boundary=${boundary}` }, body: payload,
    });
    expect(res.status).toBe(400);
    // The client checks x-goog-hash on whole-object downloads: corrupt the stored bytes behind its back.
    await store.put('corrupt', pattern(4_000));
    const stored = server.buckets.get('barman')!.objects.get('corrupt') as { data: Buffer };
    stored.data = Buffer.from(stored.data);
    stored.data[100] ^= 0xff;
    const err = await rejectionOf(store.getBuffer('corrupt'));
    expect(err).toBeInstanceOf(StorageError);
    expect(err).not.toBeInstanceOf(NetworkError);
    expect(await store.getBuffer('corrupt', { start: 0, end: 99 })).toEqual(pattern(4_000).subarray(0, 100)); // ranges are not checked
  });

  it('retries transient 503s and maps 403 and persistent 500s', async () => {
    await store.put('retry/obj', Buffer.from('r'));
    server.faults.failNext = { status: 503, count: 1 };
    expect((await store.getBuffer('retry/obj')).toString()).toBe('r');
    server.faults.failNext = { status: 503, count: 1 };
    await store.put('retry/obj2', Buffer.from('r2'));
    server.faults.failNext = { status: 503, count: 1 };
    await store.put('retry/obj3', slowStream(pattern(CHUNK + 5)), { partSize: CHUNK });
    server.faults.failNext = { status: 503, count: 1, method: 'PUT' }; // a chunk of the resumable upload
    const data = pattern(2 * CHUNK + 5);
    await store.put('retry/obj4', slowStream(data), { partSize: CHUNK });
    expect(sha256(await store.getBuffer('retry/obj4'))).toBe(sha256(data));
    server.faults.failNext = { status: 503, count: 1 };
    expect((await collect(store.list('retry/'))).length).toBe(4);
    server.faults.failNext = { status: 403, count: 1, reason: 'forbidden', message: 'caller does not have storage.objects.get access' };
    const denied = await rejectionOf(store.head('retry/obj'));
    expect(denied).toBeInstanceOf(AccessDeniedError);
    expect((denied as Error).message).toMatch(/storage\.objects\.get/);
    server.faults.failNext = { status: 500, count: 10 };
    const failed = await rejectionOf(store.getBuffer('retry/obj'));
    expect(failed).toBeInstanceOf(StorageError);
    expect(failed).not.toBeInstanceOf(NetworkError);
    expect(server.faults.failNext.count).toBe(10 - RETRY.maxAttempts);
    server.faults.failNext = null;
  });

  it('fails with NetworkError when a download stalls', async () => {
    await store.put('stall/download', pattern(512 * KIB));
    server.faults.stallDownloadAfter = 64 * KIB;
    try {
      const t0 = Date.now();
      const stream = await store.get('stall/download');
      const err = await rejectionOf(drain(stream));
      expect(err).toBeInstanceOf(NetworkError);
      expect((err as Error).message).toMatch(/no data from http:\/\/127\.0\.0\.1:\d+ for 1500 ms/);
      expect(Date.now() - t0).toBeLessThan(5_000);
    } finally {
      server.faults.stallDownloadAfter = null;
    }
  });

  it('fails with NetworkError when an upload stalls, and cancels the session', async () => {
    server.faults.stallUploadAfterChunks = 1;
    const before = server.log.length;
    try {
      const t0 = Date.now();
      const err = await rejectionOf(store.put('stall/upload', slowStream(pattern(3 * CHUNK)), { partSize: CHUNK }));
      expect(err).toBeInstanceOf(NetworkError);
      expect(Date.now() - t0).toBeLessThan(8_000);
    } finally {
      server.faults.stallUploadAfterChunks = null;
    }
    expect(server.log.slice(before).some((r) => r.method === 'DELETE' && r.query.upload_id)).toBe(true);
  });
});

describe('GcsObjectStore when the server dies', () => {
  it('gives NetworkError quickly for an endpoint nobody listens on', async () => {
    const port = await freePort();
    const store = new GcsObjectStore({ provider: 'google-cloud-storage', bucket: 'b', retry: RETRY, apiEndpoint: `http://127.0.0.1:${port}` });
    const t0 = Date.now();
    const err = await rejectionOf(store.testConnectivity());
    expect(err).toBeInstanceOf(NetworkError);
    expect((err as Error).message).toMatch(/cannot reach http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED/);
    expect(await rejectionOf(store.get('x'))).toBeInstanceOf(NetworkError);
    expect(await rejectionOf(store.put('x', Buffer.from('x')))).toBeInstanceOf(NetworkError);
    expect(await rejectionOf(store.put('x', slowStream(pattern(1000))))).toBeInstanceOf(NetworkError);
    expect(await rejectionOf(collect(store.list('')))).toBeInstanceOf(NetworkError);
    expect(await rejectionOf(store.deleteMany(['a', 'b']))).toBeInstanceOf(NetworkError);
    expect(Date.now() - t0).toBeLessThan(20_000);
    await store.close();
  });

  it('gives NetworkError when the server is killed mid-download', async () => {
    const server = await startGcsServer();
    const store = open(server);
    await store.createBucket();
    await store.put('big', pattern(2 * 1024 * KIB));
    server.faults.stallDownloadAfter = 128 * KIB;
    const stalled = once(server.events, 'stall');
    const stream = await store.get('big');
    await stalled;
    const t0 = Date.now();
    const reading = rejectionOf(drain(stream));
    await server.close();
    const err = await reading;
    expect(err).toBeInstanceOf(NetworkError);
    // node-fetch 2 does not report a premature close of a Content-Length body: the idle limit does
    expect(Date.now() - t0).toBeLessThan(RETRY.readTimeoutMs + 2_000);
    await store.close();
  });

  // 'ended': the whole source is already read when the server dies (the case the client library's
  // own chunk loop never settles on); 'streaming': the source is still producing.
  for (const [name, source] of [
    ['streaming', () => slowStream(pattern(4 * CHUNK))],
    ['ended', () => Readable.from([pattern(3 * CHUNK + 100)])],
  ] as const) {
    it(`gives NetworkError when the server is killed mid-upload (${name} source)`, async () => {
      const server = await startGcsServer();
      const store = open(server);
      await store.createBucket();
      server.faults.stallUploadAfterChunks = 1;
      const stalled = once(server.events, 'stall');
      const t0 = Date.now();
      const uploading = rejectionOf(store.put('big', source(), { partSize: CHUNK }));
      await stalled;
      await server.close();
      const err = await uploading;
      expect(err).toBeInstanceOf(NetworkError);
      expect(Date.now() - t0).toBeLessThan(6_000);
      await store.close();
    });
  }
});

describe('GcsObjectStore over HTTPS with an extra CA', () => {
  let server: GcsServer;
  let dir: string;
  let cert: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gcs-tls-'));
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=gcs-test',
      '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
    ], { stdio: 'ignore' });
    cert = readFileSync(join(dir, 'cert.pem'), 'utf8');
    server = await startGcsServer({ tls: { key: readFileSync(join(dir, 'key.pem'), 'utf8'), cert } });
  });
  afterAll(async () => {
    await server?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  // Only the positive case: the JSON/download transport keeps one agent per process (see gcs.ts),
  // so a store without the CA in this same process would reuse the trusted agent.
  it('trusts the configured CA on JSON, download, simple and resumable upload requests', async () => {
    const store = open(server, { ca: cert });
    try {
      await store.createBucket();
      expect(await store.testConnectivity()).toBe('ok');
      const data = pattern(2 * CHUNK + 77, 9);
      await store.put('tls/buffer', data);
      await store.put('tls/stream', slowStream(data), { partSize: CHUNK });
      expect(sha256(await store.getBuffer('tls/buffer'))).toBe(sha256(data));
      expect(sha256(await store.getBuffer('tls/stream'))).toBe(sha256(data));
      expect((await collect(store.list('tls/'))).length).toBe(2);
    } finally {
      await store.close();
    }
  });
});
