// Damaged WAL objects never restore: a real PostgreSQL 15 segment is archived with every codec
// through bin/barman-cloud-wal-archive, the stored object is emptied, cut and flipped, and
// bin/barman-cloud-wal-restore must exit 4 with one line naming the object, leaving neither
// wal_dest nor a temp file (on the directory store and on S3 via moto). Also: later runs sweep
// stale temp files of their own making from wal_dest's directory, and nothing else.
import { chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_RETRY, openObjectStore } from '../../src/storage/config.ts';
import type { StoreConfig } from '../../src/storage/config.ts';
import type { ObjectStore } from '../../src/storage/types.ts';
import { cleanEnv, runBin } from '../helpers/run-bin.ts';
import { initCluster, postgresAvailable, requireTool, type PgCluster } from '../helpers/postgres.ts';
import { createS3Bucket, startMoto, type ServerHandle } from '../helpers/servers.ts';
import { MOTO_ENV } from '../helpers/moto.ts';

const CODECS: [string, string[], string][] = [
  ['none', [], ''], ['gzip', ['--gzip'], '.gz'], ['bzip2', ['--bzip2'], '.bz2'], ['xz', ['--xz'], '.xz'],
  ['snappy', ['--snappy'], '.snappy'], ['zstd', ['--zstd'], '.zst'], ['lz4', ['--lz4'], '.lz4'],
];
// a flip that changes the first page is refused by the header check before a codec's checksum at
// the end of its block is reached (bzip2): another line, the same refusal
const DAMAGE_LINE = /^[^\n]* ERROR: Barman cloud WAL restore exception: WAL object (\S+) (is empty|is truncated|is too long|checksum mismatch|is corrupt|is not WAL segment|is another segment)\b[^\n]*\n$/;

let cluster: PgCluster | undefined;
let segment: Buffer;
/** The first segment initdb left in pg_wal. */
let SEGMENT: string;
let moto: ServerHandle;
let work: string;

interface Target {
  label: string;
  /** Store URL and the env the executables need. */
  url: (server: string) => string;
  args: string[];
  env: NodeJS.ProcessEnv;
  open: () => Promise<ObjectStore>;
}

let targets: Target[] = [];

beforeAll(async () => {
  if (!postgresAvailable()) return;
  // initdb alone writes real WAL: its first segment (1 MiB segments keep the test quick).
  cluster = await initCluster({ walSegmentSizeMb: 1 });
  const pgWal = join(cluster.dataDir, 'pg_wal');
  SEGMENT = readdirSync(pgWal).filter((n) => /^[0-9A-F]{24}$/.test(n)).sort()[0]!;
  segment = readFileSync(join(pgWal, SEGMENT));
  expect(segment.length).toBe(1 << 20);
  moto = await startMoto();
  work = mkdtempSync(join(tmpdir(), 'bc-walcorrupt-'));
  const bucket = `corrupt-${process.pid}`;
  await createS3Bucket(moto.url, bucket);
  const fileRoot = join(work, 'store');
  mkdirSync(fileRoot);
  const s3Config: StoreConfig = {
    provider: 'aws-s3', bucket, retry: DEFAULT_RETRY, endpointUrl: moto.url, region: 'us-east-1',
    credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
  };
  targets = [
    { label: 'file store', url: () => `file://${fileRoot}`, args: [], env: cleanEnv(), open: () => openObjectStore({ provider: 'file', bucket: fileRoot, retry: DEFAULT_RETRY }) },
    { label: 'S3 (moto)', url: () => `s3://${bucket}/pfx`, args: ['--endpoint-url', moto.url], env: cleanEnv(MOTO_ENV), open: () => openObjectStore(s3Config) },
  ];
}, 120_000);

afterAll(async () => {
  await cluster?.remove();
  await moto?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

const skip = requireTool('PostgreSQL 15', postgresAvailable());

/** A fresh, empty directory for wal_dest, so that any leftover (dest or temp) is visible. */
function destDir(): string {
  return mkdtempSync(join(work, 'dest-'));
}

async function restore(t: Target, server: string, dir: string) {
  return runBin('barman-cloud-wal-restore', [...t.args, t.url(server), server, SEGMENT, join(dir, 'RECOVERYXLOG')], { env: t.env, timeoutMs: 60_000 });
}

/** Offsets where the snappy framing has chunk boundaries (after the identifier, after each chunk). */
function snappyChunkEnds(packed: Buffer): number[] {
  const ends: number[] = [];
  for (let p = 10; p < packed.length; p += 4 + packed.readUIntLE(p + 1, 3)) ends.push(p);
  return ends.slice(1);
}

describe.skipIf(skip)('damaged WAL objects are refused by wal-restore', () => {
  for (const storeIndex of [0, 1]) {
    describe.each(CODECS)(`%s`, (codec, flags, suffix) => {
      it(`store ${storeIndex ? 'S3 (moto)' : 'file'}: empty, cut and flipped objects exit 4 with one line and leave nothing`, async () => {
        const t = targets[storeIndex]!;
        const server = `srv-${codec}`;
        const src = mkdtempSync(join(work, 'pgwal-'));
        writeFileSync(join(src, SEGMENT), segment);
        const a = await runBin('barman-cloud-wal-archive', [...flags, ...t.args, t.url(server), server, join(src, SEGMENT)], { env: t.env });
        expect({ code: a.code, stderr: a.stderr }).toEqual({ code: 0, stderr: '' });

        const store = await t.open();
        try {
          const [key] = (await (async () => {
            const out: string[] = [];
            for await (const e of store.list('')) if (e.kind === 'object' && e.key.includes(`${server}/wals/`)) out.push(e.key);
            return out;
          })());
          expect(key).toMatch(new RegExp(`(^|/)${server}/wals/0000000100000000/${SEGMENT}${suffix.replace('.', '\\.')}$`));
          const good = await store.getBuffer(key!);

          /** Store `bytes` in place of the object, restore, and return what happened. */
          const attempt = async (bytes: Buffer) => {
            await store.put(key!, bytes);
            const dir = destDir();
            const r = await restore(t, server, dir);
            const left = readdirSync(dir);
            const restored = left.includes('RECOVERYXLOG') ? readFileSync(join(dir, 'RECOVERYXLOG')) : undefined;
            rmSync(dir, { recursive: true, force: true });
            return { r, left, restored };
          };
          const expectRefused = async (bytes: Buffer, phrase: RegExp, why: string) => {
            const { r, left } = await attempt(bytes);
            expect(r.code, `${why}: ${r.stderr}`).toBe(4);
            const m = DAMAGE_LINE.exec(r.stderr);
            expect(m, `${why}: ${r.stderr}`).not.toBeNull();
            expect(m![1]).toBe(key);
            expect(m![2], why).toMatch(phrase);
            expect(left, why).toEqual([]); // no wal_dest, no temp file
          };

          await expectRefused(Buffer.alloc(0), /^is empty$/, 'empty');
          const cuts = new Set([1, 10, 64, good.length >> 1, good.length - 8, good.length - 4, good.length - 1]);
          if (codec === 'none') for (const c of [...cuts]) if (c < 40) cuts.delete(c); // shorter than a page header: see docs
          if (codec === 'snappy') for (const c of snappyChunkEnds(good).slice(0, 3)) cuts.add(c);
          for (const cut of cuts) {
            // snappy: the 10-byte stream identifier alone is a valid stream that holds nothing
            const phrase = codec === 'snappy' && cut === 10 ? /^is empty$/ : /^is truncated$/;
            await expectRefused(good.subarray(0, cut), phrase, `cut at ${cut} of ${good.length}`);
          }

          if (codec !== 'none') {
            // Every codec we write carries a checksum: a flipped byte fails, or (slack in a header)
            // restores the very same bytes. zstd gets 30 flips (it restored wrong bytes before).
            const flips = codec === 'zstd' ? 30 : 4;
            let refused = 0;
            for (let i = 0; i < flips; i++) {
              const at = Math.min(good.length - 1, 4 + Math.floor(((i + 0.5) * (good.length - 4)) / flips));
              const bad = Buffer.from(good);
              bad[at]! ^= 1 << (i % 8);
              const { r, left, restored } = await attempt(bad);
              if (r.code === 0) {
                expect(restored?.equals(segment), `flip at ${at} restored other bytes`).toBe(true);
                continue;
              }
              refused++;
              expect(r.code, r.stderr).toBe(4);
              expect(r.stderr).toMatch(DAMAGE_LINE);
              expect(left, `flip at ${at}`).toEqual([]);
            }
            // Not every flip must fail: in a run of zeros a changed copy offset can rebuild the same bytes.
            expect(refused).toBeGreaterThan(0);
          }

          if (codec !== 'none') {
            // Bytes after the end of the compressed stream are damage too (docs/format.md#codec-ends):
            // the bzip2 program restored the segment with garbage after it, exit 0. Zero padding is
            // part of xz's format and gzip readers skip it (zlib, Python's gzip): those restore, and
            // gzip's stream form waited for ever before.
            for (const [tail, label] of [[Buffer.from('garbage after the stream'), 'garbage'], [Buffer.from('x'), 'one byte'], [Buffer.alloc(512), 'zeros']] as const) {
              const bytes = Buffer.concat([good, tail]);
              if (label === 'zeros' && (codec === 'gzip' || codec === 'xz')) {
                const { r, restored } = await attempt(bytes);
                expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
                expect(restored?.equals(segment), `${label} after the stream`).toBe(true);
              } else {
                await expectRefused(bytes, /^is (corrupt|truncated)$/, `${label} after the stream`);
              }
            }
          }

          // The intact object still restores byte for byte.
          const { r, restored } = await attempt(good);
          expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
          expect(restored?.equals(segment), JSON.stringify({ left: readdirSync(work) })).toBe(true);
        } finally {
          await store.close();
        }
      }, 300_000);
    });
  }
});

describe.skipIf(skip)('stale temp files beside wal_dest', () => {
  it('a later run removes our old temp files only: not fresh ones, other names, symlinks, directories or other owners', async () => {
    const t = targets[0]!;
    const server = 'srv-sweep';
    const src = mkdtempSync(join(work, 'pgwal-'));
    writeFileSync(join(src, SEGMENT), segment);
    expect((await runBin('barman-cloud-wal-archive', ['--lz4', t.url(server), server, join(src, SEGMENT)], { env: t.env })).code).toBe(0);

    const dir = destDir();
    const old = (Date.now() - 11 * 60_000) / 1000;
    const make = (name: string, age = old) => {
      writeFileSync(join(dir, name), 'x');
      utimesSync(join(dir, name), age, age);
    };
    make('RECOVERYXLOG.tmp-barman-cloud-4242-0badc0de'); // ours, old: removed
    make('000000010000000000000007.tmp-barman-cloud-77-12345678'); // ours (a spool copy), old: removed
    make('RECOVERYXLOG.tmp-barman-cloud-4243-0badc0df', Date.now() / 1000 - 60); // ours, one minute old: kept
    make('RECOVERYXLOG.tmp-4244-0badc0de'); // not our pattern: kept
    make('RECOVERYXLOG.tmp-barman-cloud-4245-0badc0d'); // 7 hex digits: kept
    make('RECOVERYXLOG.tmp-barman-cloud-4246-0BADC0DE'); // upper case: kept
    make('postgresql.conf.tmp-barman-cloud'); // kept
    make('target-of-link');
    symlinkSync(join(dir, 'target-of-link'), join(dir, 'RECOVERYXLOG.tmp-barman-cloud-4247-0badc0de')); // a symlink: kept
    mkdirSync(join(dir, 'RECOVERYXLOG.tmp-barman-cloud-4248-0badc0de')); // a directory: kept
    let otherOwner: string | undefined;
    if (process.getuid?.() === 0) {
      otherOwner = 'RECOVERYXLOG.tmp-barman-cloud-4249-0badc0de';
      make(otherOwner);
      chownSync(join(dir, otherOwner), Number(execFileSync('id', ['-u', 'nobody']).toString()), 0);
      utimesSync(join(dir, otherOwner), old, old);
    }
    const before = readdirSync(dir).sort();

    // A run that finds nothing (exit 1) still sweeps.
    const miss = await runBin('barman-cloud-wal-restore', [t.url(server), server, '000000010000000000000099', join(dir, 'RECOVERYXLOG')], { env: t.env });
    expect({ code: miss.code, stderr: miss.stderr }).toEqual({ code: 1, stderr: '' });
    const removed = ['RECOVERYXLOG.tmp-barman-cloud-4242-0badc0de', '000000010000000000000007.tmp-barman-cloud-77-12345678'];
    expect(readdirSync(dir).sort()).toEqual(before.filter((n) => !removed.includes(n)));
    expect(statSync(join(dir, 'target-of-link')).size).toBe(1);
    if (otherOwner) expect(existsSync(join(dir, otherOwner))).toBe(true);

    // A successful run leaves only wal_dest added, and no temp file of its own.
    const ok = await runBin('barman-cloud-wal-restore', [t.url(server), server, SEGMENT, join(dir, 'RECOVERYXLOG')], { env: t.env });
    expect({ code: ok.code, stderr: ok.stderr }).toEqual({ code: 0, stderr: '' });
    expect(readdirSync(dir).sort()).toEqual([...before.filter((n) => !removed.includes(n)), 'RECOVERYXLOG'].sort());
    expect(readFileSync(join(dir, 'RECOVERYXLOG')).equals(segment)).toBe(true);
  }, 120_000);
});
