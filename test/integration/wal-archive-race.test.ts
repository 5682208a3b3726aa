// Two real `barman-cloud-wal-archive` processes racing on one segment with different codecs (so the
// conditional create cannot arbitrate: the keys differ). The archive must end with one content, and
// an archiver may report success only for the content the archive holds (docs/architecture.md,
// "One object per segment").
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { createHash } from 'node:crypto';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startMoto, createS3Bucket, type ServerHandle } from '../helpers/servers.ts';
import { runBin, cleanEnv, type BinResult } from '../helpers/run-bin.ts';
import { walSegmentBytes, writeWalFile } from '../helpers/wal-segment.ts';
import { MOTO_ENV, openMotoStore } from '../helpers/moto.ts';
import { openObjectStore, DEFAULT_RETRY } from '../../src/storage/config.ts';
import type { ObjectStore } from '../../src/storage/types.ts';
import { codecFromSuffix, loadCodec } from '../../src/compression/index.ts';
import { AccessDeniedError } from '../../src/errors.ts';
import { setLogSink, setVerbosity } from '../../src/log.ts';
import { ServerLayout } from '../../src/catalog/layout.ts';
import { archiveWal, readWalFile } from '../../src/wal/archive.ts';

const SEGMENT = '0000000100000000000000C3';
const SEGMENT_SIZE = 4 * 1024 * 1024;
const ROUNDS = 16;

let moto: ServerHandle;
let work: string;
let seq = 0;

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

interface Target {
  /** Destination arguments of the command line (URL, server name). */
  args: string[];
  env: NodeJS.ProcessEnv;
  store: ObjectStore;
  prefix: string;
}

async function fileTarget(): Promise<Target> {
  const root = join(work, `store-${++seq}`);
  mkdirSync(root);
  const store = await openObjectStore({ provider: 'file', bucket: root, retry: DEFAULT_RETRY });
  return { args: [`file://${root}`, 'srv'], env: cleanEnv(), store, prefix: 'srv/wals/' };
}

async function s3Target(): Promise<Target> {
  const bucket = `race-${process.pid}-${++seq}`;
  await createS3Bucket(moto.url, bucket);
  const store = await openMotoStore(moto, bucket);
  return { args: ['--endpoint-url', moto.url, `s3://${bucket}/pfx`, 'srv'], env: cleanEnv(MOTO_ENV), store, prefix: 'pfx/srv/wals/' };
}

/** Content digest (after decompression) of every stored object of the segment, by key. */
async function storedContents(t: Target): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for await (const e of t.store.list(t.prefix)) {
    if (e.kind !== 'object' || !e.key.includes(SEGMENT)) continue;
    const raw = await t.store.getBuffer(e.key);
    const codec = codecFromSuffix(e.key);
    out.set(e.key, sha(codec ? await (await loadCodec(codec)).decompress(raw) : raw));
  }
  return out;
}

async function clear(t: Target): Promise<void> {
  const keys: string[] = [];
  for await (const e of t.store.list(t.prefix)) if (e.kind === 'object') keys.push(e.key);
  if (keys.length) await t.store.deleteMany(keys);
}

/** One round: two archivers started together, each with its own pg_wal copy of the segment. */
async function race(t: Target, round: number, a: Buffer, b: Buffer): Promise<[BinResult, BinResult]> {
  const paths = [a, b].map((data, i) => {
    return writeWalFile(join(work, `pgwal-${seq}-${round}-${i}`), SEGMENT, data);
  });
  return Promise.all([
    runBin('barman-cloud-wal-archive', ['--gzip', ...t.args, paths[0]!], { env: t.env }),
    runBin('barman-cloud-wal-archive', ['--lz4', ...t.args, paths[1]!], { env: t.env }),
  ]);
}

beforeAll(async () => {
  moto = await startMoto();
  work = mkdtempSync(join(tmpdir(), 'bc-race-'));
});
afterAll(async () => {
  await moto?.stop();
  rmSync(work, { recursive: true, force: true });
});

describe.each([
  ['file store', fileTarget],
  ['S3 (moto)', s3Target],
])('concurrent wal-archive of one segment, %s', (_name, makeTarget) => {
  it(`different content: at most one succeeds, and the archive holds only its content (${ROUNDS} rounds)`, async () => {
    const t = await makeTarget();
    const outcomes: string[] = [];
    try {
      for (let round = 0; round < ROUNDS; round++) {
        const a = walSegmentBytes(SEGMENT_SIZE, `a${round}`);
        const b = walSegmentBytes(SEGMENT_SIZE, `b${round}`);
        const results = await race(t, round, a, b);
        const stored = await storedContents(t);
        const contents = new Set(stored.values());
        const winners = results.map((r, i) => (r.code === 0 ? sha([a, b][i]!) : undefined)).filter((w) => w !== undefined);
        const verdict = { round, codes: results.map((r) => r.code), stored: [...stored.keys()], contents: contents.size };
        // A loser exits 1 (barman's "different content" refusal), with one line on stderr.
        for (const r of results) {
          if (r.code !== 0) {
            expect({ ...verdict, code: r.code }).toMatchObject({ code: 1 });
            expect(r.stderr.trim().split('\n')).toHaveLength(1);
          }
        }
        expect(winners.length, JSON.stringify(verdict)).toBeLessThanOrEqual(1);
        expect(contents.size, JSON.stringify(verdict)).toBeLessThanOrEqual(1);
        if (winners.length === 1) expect([...contents], JSON.stringify(verdict)).toEqual(winners);
        outcomes.push(`${results.map((r) => r.code).join('/')}:${stored.size}`);
        await clear(t);
      }
    } finally {
      await t.store.close();
    }
    // exit codes and objects left per round, for the record (how often the race was real)
    console.log(`${_name}: ${outcomes.join(' ')}`);
  }, 240_000);

  it('same content: both succeed, and every object left holds that content', async () => {
    const t = await makeTarget();
    try {
      for (let round = 0; round < ROUNDS / 2; round++) {
        const data = walSegmentBytes(SEGMENT_SIZE, `same${round}`);
        const results = await race(t, round, data, data);
        const stored = await storedContents(t);
        expect(results.map((r) => ({ code: r.code, stderr: r.stderr }))).toEqual([
          { code: 0, stderr: '' }, { code: 0, stderr: '' },
        ]);
        expect(stored.size).toBeGreaterThanOrEqual(1);
        expect(new Set(stored.values())).toEqual(new Set([sha(data)]));
        await clear(t);
      }
    } finally {
      await t.store.close();
    }
  }, 240_000);
});

describe('the check after the conditional create, interleavings forced in one process', () => {
  /** A file store whose listings run `beforeList(n)` first (n counts the listings). */
  async function hookedStore(beforeList: (n: number) => Promise<void>): Promise<ObjectStore> {
    const root = join(work, `hooked-${++seq}`);
    mkdirSync(root);
    const inner = await openObjectStore({ provider: 'file', bucket: root, retry: DEFAULT_RETRY });
    let n = 0;
    return new Proxy(inner, {
      get(target, prop, receiver) {
        if (prop !== 'list') {
          const v = Reflect.get(target, prop, receiver) as unknown;
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        }
        return (prefix: string, options?: object) => (async function* () {
          await beforeList(++n);
          yield* target.list(prefix, options);
        })();
      },
    });
  }

  function walFile(data: Buffer, tag: string): string {
    return writeWalFile(join(work, `pgwal-hooked-${++seq}-${tag}`), SEGMENT, data);
  }

  it('a different copy created between our listing and our create: ours is withdrawn, exit 1, theirs stays', async () => {
    const layout = new ServerLayout('', 'srv');
    const theirs = walSegmentBytes(SEGMENT_SIZE, 'theirs');
    // Listing 1 is our pre-check (empty); the other archiver creates its .gz before listing 2.
    const store = await hookedStore(async (n) => {
      if (n === 2) await store.put(`${layout.walKey(SEGMENT)}.gz`, await (await loadCodec('gzip')).compress(theirs));
    });
    const wal = await readWalFile(walFile(walSegmentBytes(SEGMENT_SIZE, 'ours'), 'ours'));
    const err = await archiveWal(store, layout, wal, { codec: 'lz4' }).then(() => undefined, (e: unknown) => e as Error & { exitCode: number });
    expect(err?.exitCode).toBe(1);
    expect(err?.message).toMatch(/concurrently with different content .*\.gz/);
    const keys: string[] = [];
    for await (const e of store.list('srv/')) if (e.kind === 'object') keys.push(e.key);
    expect(keys).toEqual([`${layout.walKey(SEGMENT)}.gz`]);
    await store.close();
  });

  it('the same content created concurrently under another suffix: success, both copies kept', async () => {
    const layout = new ServerLayout('', 'srv');
    const data = walSegmentBytes(SEGMENT_SIZE, 'same');
    const store = await hookedStore(async (n) => {
      if (n === 2) await store.put(`${layout.walKey(SEGMENT)}.gz`, await (await loadCodec('gzip')).compress(data));
    });
    expect(await archiveWal(store, layout, await readWalFile(walFile(data, 'same')), { codec: 'lz4' })).toBe('uploaded');
    const keys: string[] = [];
    for await (const e of store.list('srv/')) if (e.kind === 'object') keys.push(e.key);
    expect(keys).toEqual([`${layout.walKey(SEGMENT)}.gz`, `${layout.walKey(SEGMENT)}.lz4`]);
    await store.close();
  });

  it('copies of both contents already stored (a crash mid-race): refused with exit 1, nothing uploaded', async () => {
    const layout = new ServerLayout('', 'srv');
    const ours = walSegmentBytes(SEGMENT_SIZE, 'ours-left');
    const store = await hookedStore(async () => {});
    await store.put(`${layout.walKey(SEGMENT)}.gz`, await (await loadCodec('gzip')).compress(ours));
    await store.put(`${layout.walKey(SEGMENT)}.lz4`, await (await loadCodec('lz4')).compress(walSegmentBytes(SEGMENT_SIZE, 'other-left')));
    const err = await archiveWal(store, layout, await readWalFile(walFile(ours, 'mixed')), { codec: 'zstd' })
      .then(() => undefined, (e: unknown) => e as Error & { exitCode: number });
    expect(err?.exitCode).toBe(1);
    expect(err?.message).toMatch(/already archived with different content \(\S+\.lz4\)/);
    expect(await store.head(`${layout.walKey(SEGMENT)}.zst`)).toBeNull();
    await store.close();
  });

  it('a LIST refused after the create (write-only credential) keeps the conditional create as the guard, with a debug line', async () => {
    const layout = new ServerLayout('', 'srv');
    const store = await hookedStore(async (n) => {
      if (n === 2) throw new AccessDeniedError('AccessDenied: s3:ListBucket not allowed (HTTP 403)');
    });
    const lines: string[] = [];
    setLogSink((line) => lines.push(line));
    setVerbosity(2, 0);
    try {
      expect(await archiveWal(store, layout, await readWalFile(walFile(walSegmentBytes(SEGMENT_SIZE, 'wo'), 'wo')), { codec: 'lz4' })).toBe('uploaded');
    } finally {
      setVerbosity(0, 0);
      setLogSink((line) => process.stderr.write(line));
    }
    expect(lines.filter((l) => /DEBUG.*not checking for a concurrent archiver/.test(l))).toHaveLength(1);
    expect((await store.head(`${layout.walKey(SEGMENT)}.lz4`))?.size).toBeGreaterThan(0);
    await store.close();
  });
});
