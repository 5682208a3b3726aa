// The one-shot WAL paths' overlaps, on two real servers. The lean S3 client's commit gate (PutOptions.commitGate) on two real servers: the body's last
// byte waits for the gate, so the object cannot exist before it is released, and a refused gate
// abandons the upload with nothing created. wal-archive relies on it to run its pre-check LIST
// while the segment travels (src/wal/archive.ts) without ever creating a copy before that check.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, mkdirSync, readdirSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startMoto, startRgw, rgwAvailable, createS3Bucket, type ServerHandle, type S3Keys } from '../helpers/servers.ts';
import { requireTool } from '../helpers/postgres.ts';
import { openObjectStore, DEFAULT_RETRY } from '../../src/storage/config.ts';
import type { ObjectStore } from '../../src/storage/types.ts';
import { piecesBody } from '../../src/storage/body.ts';
import { ServerLayout } from '../../src/catalog/layout.ts';
import { archiveWal, readWalFile } from '../../src/wal/archive.ts';
import { restoreWal } from '../../src/wal/restore.ts';
import { loadCodec } from '../../src/compression/index.ts';
import { AccessDeniedError } from '../../src/errors.ts';
import { withLongPageHeader } from '../helpers/wal-segment.ts';

const skipRgw = requireTool('Ceph RADOS Gateway', rgwAvailable());
const MOTO_KEYS: S3Keys = { accessKeyId: 'testing', secretAccessKey: 'testing' };
let work: string;
let seq = 0;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'bc-gate-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

const servers: [string, boolean, () => Promise<ServerHandle & { keys: S3Keys }>][] = [
  ['moto', false, async () => ({ ...(await startMoto()), keys: MOTO_KEYS })],
  ['Ceph RGW', skipRgw, async () => {
    const rgw = await startRgw();
    return { ...rgw, keys: rgw.admin };
  }],
];

describe.each(servers)('commit gate on %s', (_name, skip, start) => {
  let server: (ServerHandle & { keys: S3Keys }) | undefined;
  let store: ObjectStore;

  beforeAll(async () => {
    if (skip) return;
    server = await start();
    const bucket = `gate-${process.pid}-${++seq}`;
    await createS3Bucket(server.url, bucket, undefined, server.keys);
    store = await openObjectStore({
      provider: 'aws-s3', bucket, retry: DEFAULT_RETRY, endpointUrl: server.url, region: 'us-east-1', credentials: server.keys,
    });
  }, 120_000);
  afterAll(async () => {
    await store?.close();
    await server?.stop();
  });

  it.skipIf(skip)('the object does not exist before the gate is released, and does after', async () => {
    expect(store.holdsCommit).toBe(true);
    const data = randomBytes(3 << 20);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const put = store.put('held', piecesBody([data.subarray(0, 1 << 20), data.subarray(1 << 20)]), { ifNoneMatch: true, commitGate: gate });
    await new Promise((r) => setTimeout(r, 400));
    expect(await store.head('held')).toBeNull();
    release();
    await put;
    expect((await store.getBuffer('held')).equals(data)).toBe(true);
  });

  it.skipIf(skip)('a refused gate abandons the upload: put() fails with its error, nothing is stored', async () => {
    const refusal = new Error('pre-check refused');
    const gate = new Promise<void>((_, reject) => setTimeout(() => reject(refusal), 200));
    const err = await store.put('refused', piecesBody([randomBytes(2 << 20)]), { ifNoneMatch: true, commitGate: gate })
      .then(() => undefined, (e: unknown) => e);
    expect(err).toBe(refusal);
    await new Promise((r) => setTimeout(r, 200));
    expect(await store.head('refused')).toBeNull();
  });

  it.skipIf(skip)('wal-archive: a different copy under another suffix is refused before anything of ours exists', async () => {
    const layout = new ServerLayout('pfx', 'srv');
    const name = '000000010000000000000042';
    const theirs = Buffer.alloc(1 << 20, 1);
    await store.put(`${layout.walKey(name)}.gz`, await (await loadCodec('gzip')).compress(theirs));
    const dir = join(work, `pg-${++seq}`);
    mkdirSync(dir);
    writeFileSync(join(dir, name), Buffer.alloc(1 << 20, 2));
    const err = await archiveWal(store, layout, await readWalFile(join(dir, name)), { codec: 'lz4' })
      .then(() => undefined, (e: unknown) => e as Error & { exitCode: number });
    expect(err?.exitCode).toBe(1);
    expect(err?.message).toMatch(/already archived with different content/);
    expect(await store.head(`${layout.walKey(name)}.lz4`)).toBeNull();
  });

  // wal-restore fetches the uncompressed key while it lists: that copy is used only when barman's
  // rule (the listing) picks it.
  it.skipIf(skip)('wal-restore: the listing decides, whatever the uncompressed key holds', async () => {
    const layout = new ServerLayout('pfx', 'srv');
    const lz4 = await loadCodec('lz4');
    // a segment of 7s (8s for the other copy) behind segment `name`'s long page header
    const wanted = (name: string) => withLongPageHeader(Buffer.alloc(1 << 20, 7), name);
    const cases: [string, (key: string, name: string) => Promise<void>][] = [
      ['a different uncompressed copy beside the .lz4', (key, name) => store.put(key, withLongPageHeader(Buffer.alloc(1 << 20, 8), name))],
      ['an empty (damaged) uncompressed copy beside the .lz4', (key) => store.put(key, Buffer.alloc(0))],
      ['no uncompressed copy', async () => {}],
    ];
    for (const [i, [what, setup]] of cases.entries()) {
      const name = `00000001000000000000005${i}`;
      await setup(layout.walKey(name), name);
      await store.put(`${layout.walKey(name)}.lz4`, await lz4.compress(wanted(name)));
      const dir = join(work, `restore-${++seq}`);
      mkdirSync(dir);
      expect(await restoreWal(store, layout, name, join(dir, 'RECOVERYXLOG')), what).toBe(true);
      expect(readFileSync(join(dir, 'RECOVERYXLOG')).equals(wanted(name)), what).toBe(true);
      expect(readdirSync(dir), what).toEqual(['RECOVERYXLOG']);
    }
    // The uncompressed copy alone: fetched once, while listing.
    const name = '000000010000000000000060';
    await store.put(layout.walKey(name), wanted(name));
    const dir = join(work, `restore-${++seq}`);
    mkdirSync(dir);
    expect(await restoreWal(store, layout, name, join(dir, 'RECOVERYXLOG'))).toBe(true);
    expect(readFileSync(join(dir, 'RECOVERYXLOG')).equals(wanted(name))).toBe(true);
    expect(await restoreWal(store, layout, '000000010000000000000061', join(dir, 'missing'))).toBe(false);
    expect(readdirSync(dir)).toEqual(['RECOVERYXLOG']);
  });

  it.skipIf(skip)('wal-restore: a failed listing fails the restore and leaves no file, though the GET succeeded', async () => {
    const layout = new ServerLayout('pfx', 'srv');
    const name = '000000010000000000000070';
    await store.put(layout.walKey(name), withLongPageHeader(Buffer.alloc(1 << 20, 9), name));
    // A credential that may read objects but not list them.
    const unlistable = new Proxy(store, {
      get(target, prop, receiver) {
        if (prop === 'list') return () => (async function* () {
          throw new AccessDeniedError('AccessDenied: s3:ListBucket not allowed (HTTP 403)');
        })();
        const v = Reflect.get(target, prop, receiver) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    const dir = join(work, `restore-${++seq}`);
    mkdirSync(dir);
    const err = await restoreWal(unlistable, layout, name, join(dir, 'RECOVERYXLOG')).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(AccessDeniedError);
    expect(readdirSync(dir)).toEqual([]);
  });
});
