// The Azure driver against a real azurite: round trips, blocks, ranges, listings, batches, errors,
// every auth kind, and the managed-identity / DefaultAzureCredential chains over HTTPS + OAuth.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, request as httpRequest } from 'node:http';
import { Readable } from 'node:stream';
import {
  ContainerClient, ContainerSASPermissions, StorageSharedKeyCredential, generateBlobSASQueryParameters,
} from '@azure/storage-blob';
import { AzureObjectStore } from '../../src/storage/azure/azure.js';
import type { AzureStoreConfig, RetryPolicy } from '../../src/storage/config.js';
import type { ListEntry } from '../../src/storage/types.js';
import {
  AccessDeniedError, BucketNotFoundError, NetworkError, NotFoundError, PreconditionFailedError,
} from '../../src/errors.js';
import {
  AZURITE_ACCOUNT, AZURITE_KEY, azuriteConnectionString, freePort, makeTestCA, startAzurite, startTokenServer,
  type ServerHandle, type TestCA,
} from '../helpers/servers.js';

const FAST_RETRY: RetryPolicy = {
  maxAttempts: 3, baseDelayMs: 50, maxDelayMs: 200, connectTimeoutMs: 2_000, readTimeoutMs: 5_000,
};
const MiB = 1024 * 1024;

function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

/** The error a promise rejects with; fails the test if it resolves. */
async function failure(p: Promise<unknown>): Promise<Error> {
  return p.then(
    (v) => {
      throw new Error(`expected a rejection, got ${String(v)}`);
    },
    (e: unknown) => e as Error,
  );
}

async function drain(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** A stream that yields `data` in small chunks, then optionally fails. */
function chunked(data: Buffer, chunk = 64 * 1024, failAfter?: number): Readable {
  let pos = 0;
  return new Readable({
    read() {
      if (failAfter !== undefined && pos >= failAfter) {
        this.destroy(new Error('source failed'));
        return;
      }
      if (pos >= data.length) {
        this.push(null);
        return;
      }
      this.push(data.subarray(pos, pos + chunk));
      pos += chunk;
    },
  });
}

/** A pass-through proxy to `target` that refuses every Blob Batch request, as some stores do. */
async function startBatchRefusingProxy(target: string): Promise<{ url: string; refused: () => number; stop: () => Promise<void> }> {
  const t = new URL(target);
  let refused = 0;
  const srv = createServer((req, res) => {
    if (req.url?.includes('comp=batch')) {
      refused++;
      req.resume();
      res.writeHead(400, { 'content-type': 'application/xml', 'x-ms-error-code': 'InvalidInput' });
      res.end('<?xml version="1.0" encoding="utf-8"?><Error><Code>InvalidInput</Code><Message>no batches here</Message></Error>');
      return;
    }
    const up = httpRequest(
      { host: t.hostname, port: t.port, method: req.method, path: req.url, headers: req.headers },
      (ur) => {
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        ur.pipe(res);
      },
    );
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    refused: () => refused,
    stop: () =>
      new Promise<void>((r) => {
        srv.closeAllConnections();
        srv.close(() => r());
      }),
  };
}

function cfg(bucket: string, auth: AzureStoreConfig['auth'], extra: Partial<AzureStoreConfig> = {}): AzureStoreConfig {
  return { provider: 'azure-blob-storage', bucket, retry: FAST_RETRY, auth, ...extra };
}

/** Stores opened with `open`, for one describe, and `closeAll` for its afterAll. */
function storeKeeper(): { open: (c: AzureStoreConfig) => AzureObjectStore; closeAll: () => Promise<void> } {
  const stores: AzureObjectStore[] = [];
  return {
    open: (c) => {
      const s = new AzureObjectStore(c);
      stores.push(s);
      return s;
    },
    closeAll: async () => {
      for (const s of stores) await s.close();
    },
  };
}

describe('AzureObjectStore against azurite (http)', () => {
  let azurite: ServerHandle;
  let conn: string;
  let store: AzureObjectStore;
  const { open, closeAll } = storeKeeper();

  beforeAll(async () => {
    azurite = await startAzurite();
    conn = azuriteConnectionString(azurite.url);
    store = open(cfg('main', { kind: 'connection-string', connectionString: conn }));
    await store.createBucket();
    await store.createBucket(); // idempotent
  });

  afterAll(async () => {
    await closeAll();
    await azurite?.stop();
  });

  it('reports its identity', () => {
    expect(store.provider).toBe('azure-blob-storage');
    expect(store.bucket).toBe('main');
    expect(store.maxDeleteBatch).toBe(256);
  });

  it('round-trips a Buffer, with head and getBuffer', async () => {
    const data = randomBytes(100_000);
    await store.put('buf/one.bin', data);
    expect(await store.getBuffer('buf/one.bin')).toEqual(data);
    const info = await store.head('buf/one.bin');
    expect(info).toMatchObject({ key: 'buf/one.bin', size: 100_000 });
    expect(info?.lastModified).toBeInstanceOf(Date);
    // Empty objects too.
    await store.put('buf/empty', Buffer.alloc(0));
    expect((await store.getBuffer('buf/empty')).length).toBe(0);
    expect(await store.head('buf/empty')).toMatchObject({ size: 0 });
  });

  it('head returns null for a missing blob', async () => {
    expect(await store.head('nope/missing')).toBeNull();
  });

  it('streams an upload as >= 3 staged blocks and reads it back intact', async () => {
    const data = randomBytes(3 * MiB + 12_345);
    await store.put('stream/big.bin', chunked(data), { partSize: 1 * MiB, concurrency: 2 });
    const back = await drain(await store.get('stream/big.bin'));
    expect(back.length).toBe(data.length);
    expect(sha256(back)).toBe(sha256(data));
    const sdk = new ContainerClient(conn, 'main');
    const blocks = await sdk.getBlockBlobClient('stream/big.bin').getBlockList('committed');
    expect(blocks.committedBlocks?.length).toBe(4);
  });

  it('streams an empty Readable', async () => {
    await store.put('stream/empty', Readable.from([]));
    expect(await store.head('stream/empty')).toMatchObject({ size: 0 });
  });

  it('a failing source stream leaves no committed blob', async () => {
    const data = randomBytes(3 * MiB);
    await expect(store.put('stream/failed.bin', chunked(data, 64 * 1024, 2 * MiB), { partSize: 1 * MiB })).rejects.toThrow(
      /source failed/,
    );
    expect(await store.head('stream/failed.bin')).toBeNull();
  });

  it('an aborted streamed upload rejects and commits nothing', async () => {
    const ac = new AbortController();
    let sent = 0;
    const endless = new Readable({
      read() {
        if (sent >= 2 * MiB && !ac.signal.aborted) setImmediate(() => ac.abort(new Error('stop now')));
        sent += 64 * 1024;
        this.push(randomBytes(64 * 1024));
      },
    });
    await expect(store.put('stream/aborted', endless, { partSize: 512 * 1024, signal: ac.signal })).rejects.toThrow('stop now');
    expect(await store.head('stream/aborted')).toBeNull();
    const pre = new AbortController();
    pre.abort(new Error('already aborted'));
    await expect(store.put('stream/aborted', chunked(Buffer.from('x')), { signal: pre.signal })).rejects.toThrow(
      'already aborted',
    );
    await expect(store.put('stream/aborted', Buffer.from('x'), { signal: pre.signal })).rejects.toThrow('already aborted');
    expect(await store.head('stream/aborted')).toBeNull();
  });

  it('reads byte ranges', async () => {
    const data = randomBytes(10_000);
    await store.put('range/obj', data);
    expect(await store.getBuffer('range/obj', { start: 100, end: 199 })).toEqual(data.subarray(100, 200));
    expect(await store.getBuffer('range/obj', { start: 9_990 })).toEqual(data.subarray(9_990));
    expect(await store.getBuffer('range/obj', { end: 9 })).toEqual(data.subarray(0, 10));
    expect(await drain(await store.get('range/obj', { start: 5_000, end: 5_000 }))).toEqual(data.subarray(5_000, 5_001));
  });

  it('throws NotFoundError for missing blobs, before any stream is returned', async () => {
    await expect(store.get('nope/x')).rejects.toBeInstanceOf(NotFoundError);
    await expect(store.getBuffer('nope/x')).rejects.toBeInstanceOf(NotFoundError);
    await expect(store.getTags('nope/x')).rejects.toBeInstanceOf(NotFoundError);
    await store.delete('nope/x'); // missing is fine
  });

  it('throws BucketNotFoundError on a missing container', async () => {
    const missing = open(cfg('no-such-container', { kind: 'connection-string', connectionString: conn }));
    expect(await missing.bucketExists()).toBe(false);
    await expect(missing.get('a')).rejects.toBeInstanceOf(BucketNotFoundError);
    await expect(missing.head('a')).rejects.toBeInstanceOf(BucketNotFoundError);
    await expect(missing.put('a', Buffer.from('x'))).rejects.toBeInstanceOf(BucketNotFoundError);
    await expect(collect(missing.list(''))).rejects.toBeInstanceOf(BucketNotFoundError);
    await expect(missing.put('a', Buffer.from('x'))).rejects.toThrow('Bucket no-such-container does not exist');
    expect(await store.bucketExists()).toBe(true);
  });

  it('refuses to overwrite with ifNoneMatch (Buffer and stream)', async () => {
    await store.put('cond/a', Buffer.from('first'), { ifNoneMatch: true });
    await expect(store.put('cond/a', Buffer.from('second'), { ifNoneMatch: true })).rejects.toBeInstanceOf(
      PreconditionFailedError,
    );
    await expect(store.put('cond/a', chunked(Buffer.from('third')), { ifNoneMatch: true })).rejects.toBeInstanceOf(
      PreconditionFailedError,
    );
    expect((await store.getBuffer('cond/a')).toString()).toBe('first');
    // Without the condition it overwrites.
    await store.put('cond/a', Buffer.from('fourth'));
    expect((await store.getBuffer('cond/a')).toString()).toBe('fourth');
  });

  it('round-trips blob index tags; later duplicates win', async () => {
    await store.put('tags/buf', Buffer.from('x'), {
      tags: [['env', 'test'], ['owner', 'me'], ['env', 'prod']],
    });
    expect(Object.fromEntries(await store.getTags('tags/buf'))).toEqual({ env: 'prod', owner: 'me' });
    await store.put('tags/stream', chunked(randomBytes(300_000)), { tags: [['k', 'v w']], partSize: 128 * 1024 });
    expect(await store.getTags('tags/stream')).toEqual([['k', 'v w']]);
    expect(await store.getTags('buf/one.bin')).toEqual([]);
  });

  it('lists over many pages (>= 1,000 keys), in key order', async () => {
    const keys = Array.from({ length: 1_050 }, (_, i) => `many/k${String(i).padStart(5, '0')}`);
    const queue = [...keys];
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        for (let k = queue.shift(); k; k = queue.shift()) await store.put(k, Buffer.from(k));
      }),
    );
    const paged = await collect(store.list('many/', { pageSize: 100 }));
    expect(paged.map((e) => (e.kind === 'object' ? e.key : e.prefix))).toEqual(keys);
    expect(paged.every((e) => e.kind === 'object' && e.size === e.key.length)).toBe(true);
    // Default page size (5,000 on Azure) and one more page boundary.
    expect((await collect(store.list('many/'))).length).toBe(1_050);
    expect((await collect(store.list('many/k0000', { pageSize: 3 }))).length).toBe(10);
  });

  it('lists with a delimiter: nested prefixes and objects, merged in key order', async () => {
    for (const k of ['tree/a/1', 'tree/a/2', 'tree/b/x/1', 'tree/b/y', 'tree/c', 'tree/d/1', 'tree/e']) {
      await store.put(k, Buffer.from(k));
    }
    const show = (entries: ListEntry[]) =>
      entries.map((e) => (e.kind === 'object' ? `o:${e.key}` : `p:${e.prefix}`));
    const expected = ['p:tree/a/', 'p:tree/b/', 'o:tree/c', 'p:tree/d/', 'o:tree/e'];
    expect(show(await collect(store.list('tree/', { delimiter: '/' })))).toEqual(expected);
    expect(show(await collect(store.list('tree/', { delimiter: '/', pageSize: 2 })))).toEqual(expected);
    expect(show(await collect(store.list('tree/b/', { delimiter: '/' })))).toEqual(['p:tree/b/x/', 'o:tree/b/y']);
    expect(show(await collect(store.list('tree/b/x/', { delimiter: '/' })))).toEqual(['o:tree/b/x/1']);
    expect(show(await collect(store.list('tree/')))).toEqual(
      ['tree/a/1', 'tree/a/2', 'tree/b/x/1', 'tree/b/y', 'tree/c', 'tree/d/1', 'tree/e'].map((k) => `o:${k}`),
    );
    expect(await collect(store.list('nothing-here/', { delimiter: '/' }))).toEqual([]);
  });

  it('deleteMany in batches, counting missing blobs as deleted', async () => {
    const keys = Array.from({ length: 300 }, (_, i) => `del/k${String(i).padStart(4, '0')}`);
    for (let i = 0; i < keys.length; i += 30) {
      await Promise.all(keys.slice(i, i + 30).map((k) => store.put(k, Buffer.from('d'))));
    }
    const missing = ['del/missing-1', 'del/missing-2'];
    const res = await store.deleteMany([...keys.slice(0, 200), ...missing]);
    expect(res.errors).toEqual([]);
    expect(res.deleted.sort()).toEqual([...keys.slice(0, 200), ...missing].sort());
    const small = await store.deleteMany(keys.slice(200), 7);
    expect(small.errors).toEqual([]);
    expect(small.deleted.length).toBe(100);
    expect(await collect(store.list('del/'))).toEqual([]);
    expect(await store.deleteMany([])).toEqual({ deleted: [], errors: [] });
    await store.put('del/single', Buffer.from('x'));
    await store.delete('del/single');
    expect(await store.head('del/single')).toBeNull();
  });

  it('deleteMany reports a blob the service refuses to delete, and deletes the rest', async () => {
    await store.put('lease/locked', Buffer.from('l'));
    await store.put('lease/free', Buffer.from('f'));
    const sdk = new ContainerClient(conn, 'main');
    const lease = sdk.getBlobClient('lease/locked').getBlobLeaseClient();
    await lease.acquireLease(-1);
    try {
      const res = await store.deleteMany(['lease/free', 'lease/locked', 'lease/missing']);
      expect(res.deleted.sort()).toEqual(['lease/free', 'lease/missing']);
      expect(res.errors.map((e) => e.key)).toEqual(['lease/locked']);
      expect(res.errors[0]!.message).toMatch(/Lease/i);
    } finally {
      await lease.releaseLease();
      await store.delete('lease/locked');
    }
  });

  it('deleteMany falls back to one delete per blob when the batch request is refused', async () => {
    const proxy = await startBatchRefusingProxy(azurite.url);
    try {
      const s = open(cfg('main', { kind: 'connection-string', connectionString: azuriteConnectionString(proxy.url) }));
      const keys = Array.from({ length: 20 }, (_, i) => `fallback/k${i}`);
      await Promise.all(keys.map((k) => s.put(k, Buffer.from(k))));
      const res = await s.deleteMany([...keys, 'fallback/missing'], 8);
      expect(res.errors).toEqual([]);
      expect(res.deleted.sort()).toEqual([...keys, 'fallback/missing'].sort());
      expect(await collect(s.list('fallback/'))).toEqual([]);
      // Refused once, then the driver stops trying batches.
      expect(proxy.refused()).toBe(1);
    } finally {
      await proxy.stop();
    }
  });

  it('authenticates with account name + shared key', async () => {
    const s = open(cfg('main', { kind: 'shared-key', accountName: AZURITE_ACCOUNT, accountKey: AZURITE_KEY }, {
      accountUrl: `${azurite.url}/${AZURITE_ACCOUNT}`,
    }));
    expect(await s.testConnectivity()).toBe('ok');
    await s.put('sk/a', Buffer.from('shared key'));
    expect((await s.getBuffer('sk/a')).toString()).toBe('shared key');
    expect((await s.deleteMany(['sk/a', 'sk/missing'])).deleted.length).toBe(2);
  });

  it('refuses a wrong key with AccessDeniedError, without leaking the key', async () => {
    const wrongKey = Buffer.from('definitely-not-the-key-0123456789').toString('base64');
    const s = open(cfg('main', { kind: 'shared-key', accountName: AZURITE_ACCOUNT, accountKey: wrongKey }, {
      accountUrl: `${azurite.url}/${AZURITE_ACCOUNT}`,
    }));
    const err = await failure(s.getBuffer('buf/one.bin'));
    expect(err).toBeInstanceOf(AccessDeniedError);
    expect(err.message).not.toContain(wrongKey);
    const badConn = conn.replace(AZURITE_KEY, wrongKey);
    const s2 = open(cfg('main', { kind: 'connection-string', connectionString: badConn }));
    const err2 = await failure(s2.put('x', Buffer.from('x')));
    expect(err2).toBeInstanceOf(AccessDeniedError);
    expect(err2.message).not.toContain(wrongKey);
    expect(err2.message).not.toContain('AccountKey');
  });

  it('authenticates with a container SAS token (leading ? accepted)', async () => {
    const sas = generateBlobSASQueryParameters(
      {
        containerName: 'main',
        permissions: ContainerSASPermissions.parse('racwdlt'),
        expiresOn: new Date(Date.now() + 3_600_000),
      },
      new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY),
    ).toString();
    const s = open(cfg('main', { kind: 'sas', sasToken: `?${sas}` }, { accountUrl: `${azurite.url}/${AZURITE_ACCOUNT}` }));
    expect(await s.testConnectivity()).toBe('ok');
    expect(await s.bucketExists()).toBe(true);
    await s.put('sas/a', Buffer.from('via sas'), { tags: [['t', '1']] });
    await s.put('sas/b', chunked(randomBytes(200_000)), { partSize: 64 * 1024 });
    expect((await s.getBuffer('sas/a')).toString()).toBe('via sas');
    expect(await s.getTags('sas/a')).toEqual([['t', '1']]);
    expect((await collect(s.list('sas/'))).length).toBe(2);
    const res = await s.deleteMany(['sas/a', 'sas/b', 'sas/missing']);
    expect(res.errors).toEqual([]);
    expect(await collect(s.list('sas/'))).toEqual([]);

    // A tampered signature is refused, and the signature never shows in the message.
    const sig = new URLSearchParams(sas).get('sig')!;
    const badSig = Buffer.from('x'.repeat(32)).toString('base64');
    const bad = open(cfg('main', { kind: 'sas', sasToken: sas.replace(encodeURIComponent(sig), encodeURIComponent(badSig)) }, {
      accountUrl: `${azurite.url}/${AZURITE_ACCOUNT}`,
    }));
    const err = await failure(bad.getBuffer('buf/one.bin'));
    expect(err).toBeInstanceOf(AccessDeniedError);
    expect(err.message).not.toContain(badSig);
    expect(err.message).not.toContain(encodeURIComponent(badSig));
    expect(err.message).not.toMatch(/sig=/);
  });

  it('testConnectivity: ok, bucket-missing, NetworkError on a closed port within seconds', async () => {
    expect(await store.testConnectivity()).toBe('ok');
    const missing = open(cfg('absent', { kind: 'connection-string', connectionString: conn }));
    expect(await missing.testConnectivity()).toBe('bucket-missing');
    const port = await freePort();
    const closed = open(cfg('main', { kind: 'connection-string', connectionString: azuriteConnectionString(`http://127.0.0.1:${port}`) }));
    const t0 = Date.now();
    const err = await failure(closed.testConnectivity());
    expect(err).toBeInstanceOf(NetworkError);
    expect(err.message).toMatch(/ECONNREFUSED/);
    expect(err.message).not.toContain(AZURITE_KEY);
    expect(err.message.split('\n').length).toBe(1);
    expect(Date.now() - t0).toBeLessThan(5_000);
    await expect(closed.get('x')).rejects.toBeInstanceOf(NetworkError);
    await expect(closed.put('x', Buffer.from('x'))).rejects.toBeInstanceOf(NetworkError);
    await expect(closed.deleteMany(['x'])).rejects.toBeInstanceOf(NetworkError);
  });

  it('fails within seconds, without hanging, when azurite dies mid-download', async () => {
    const doomed = await startAzurite();
    const s = open(cfg('dl-container', { kind: 'connection-string', connectionString: azuriteConnectionString(doomed.url) }));
    try {
      await s.createBucket();
      await s.put('big', randomBytes(48 * MiB));
      const stream = await s.get('big');
      const first = await new Promise<Buffer>((res, rej) => {
        stream.once('data', (c: Buffer) => {
          stream.pause();
          res(c);
        });
        stream.once('error', rej);
      });
      expect(first.length).toBeGreaterThan(0);
      await doomed.stop();
      const t0 = Date.now();
      const err = await drain(stream).then(
        () => new Error('download completed although the server died'),
        (e: unknown) => e as Error,
      );
      expect(err).toBeInstanceOf(NetworkError);
      expect(Date.now() - t0).toBeLessThan(10_000);
    } finally {
      await doomed.stop();
    }
  }, 60_000);
});

describe('AzureObjectStore token credentials over HTTPS (azurite --oauth basic)', () => {
  let ca: TestCA;
  let azurite: ServerHandle;
  let token: Awaited<ReturnType<typeof startTokenServer>>;
  let accountUrl: string;
  const saved: Record<string, string | undefined> = {};
  const ENV = [
    'IDENTITY_ENDPOINT', 'IDENTITY_HEADER', 'AZURE_CLIENT_ID', 'AZURE_CLIENT_SECRET', 'AZURE_TENANT_ID',
    'AZURE_CLIENT_CERTIFICATE_PATH', 'AZURE_FEDERATED_TOKEN_FILE', 'AZURE_USERNAME', 'AZURE_PASSWORD',
    'AZURE_TOKEN_CREDENTIALS', 'MSI_ENDPOINT', 'MSI_SECRET', 'IDENTITY_SERVER_THUMBPRINT', 'IMDS_ENDPOINT',
  ];
  const { open, closeAll } = storeKeeper();

  beforeAll(async () => {
    ca = makeTestCA();
    azurite = await startAzurite({ tls: ca, oauth: true });
    token = await startTokenServer();
    accountUrl = `https://127.0.0.1:${azurite.port}/${AZURITE_ACCOUNT}`;
    for (const k of ENV) {
      saved[k] = process.env[k];
      delete process.env[k];
    }
    process.env.IDENTITY_ENDPOINT = token.url;
    process.env.IDENTITY_HEADER = token.header;
  });

  afterAll(async () => {
    for (const k of ENV) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
    await closeAll();
    await token?.stop();
    await azurite?.stop();
  });

  it('ManagedIdentityCredential: token from the loopback endpoint, blob requests over HTTPS with the extra CA', async () => {
    const before = token.requests();
    const s = open(cfg('mi-container', { kind: 'token-credential', credential: 'managed-identity' }, { accountUrl, ca: ca.caPem }));
    await s.createBucket();
    expect(await s.testConnectivity()).toBe('ok');
    const data = randomBytes(50_000);
    await s.put('obj', data, { tags: [['via', 'mi']] });
    expect(await s.getBuffer('obj')).toEqual(data);
    expect(await s.getTags('obj')).toEqual([['via', 'mi']]);
    await s.put('streamed', chunked(randomBytes(300_000)), { partSize: 100_000 });
    expect((await s.head('streamed'))?.size).toBe(300_000);
    expect((await s.deleteMany(['obj', 'streamed', 'missing'])).errors).toEqual([]);
    expect(token.requests()).toBeGreaterThan(before);
  });

  it('DefaultAzureCredential falls through to managed identity', async () => {
    // MSAL keeps managed-identity tokens in one static cache per process: empty it, so that this
    // credential has to go through the chain to the token endpoint again.
    const msal = await import('@azure/msal-node');
    (msal.ManagedIdentityApplication as unknown as { nodeStorage?: unknown }).nodeStorage = undefined;
    const before = token.requests();
    const s = open(cfg('dac-container', { kind: 'token-credential', credential: 'default' }, { accountUrl, ca: ca.caPem }));
    await s.createBucket();
    await s.put('obj', Buffer.from('default chain'));
    expect((await s.getBuffer('obj')).toString()).toBe('default chain');
    expect(token.requests()).toBeGreaterThan(before);
  });

  it('shared key works over the same HTTPS endpoint with the CA, and fails with NetworkError without it', async () => {
    const withCa = open(cfg('mi-container', { kind: 'shared-key', accountName: AZURITE_ACCOUNT, accountKey: AZURITE_KEY }, {
      accountUrl, ca: ca.caPem,
    }));
    expect(await withCa.testConnectivity()).toBe('ok');
    const withoutCa = open(cfg('mi-container', { kind: 'shared-key', accountName: AZURITE_ACCOUNT, accountKey: AZURITE_KEY }, {
      accountUrl,
    }));
    const err = await failure(withoutCa.head('obj'));
    expect(err).toBeInstanceOf(NetworkError);
    expect(err.message.split('\n').length).toBe(1);
    await expect(withoutCa.testConnectivity()).rejects.toBeInstanceOf(NetworkError);
  });

  it('a token credential without the CA fails with NetworkError', async () => {
    const s = open(cfg('mi-container', { kind: 'token-credential', credential: 'managed-identity' }, { accountUrl }));
    await expect(s.getBuffer('x')).rejects.toBeInstanceOf(NetworkError);
  });

  it('a connection string to the HTTPS endpoint honours the CA', async () => {
    const s = open(cfg('mi-container', { kind: 'connection-string', connectionString: azuriteConnectionString(azurite.url) }, {
      ca: ca.caPem,
    }));
    expect(await s.testConnectivity()).toBe('ok');
  });
});
