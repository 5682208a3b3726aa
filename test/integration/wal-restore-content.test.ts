// A compressed WAL object that inflates far past its segment is stopped as soon as it outgrows the
// size the segment's own first page states, not after it has been written out: the restore runs
// with a file-size limit (ulimit -f) of a few segments, so a restore that writes the whole bomb
// before refusing it fails with EFBIG instead of the one-line "is too long" refusal. A write that
// fails (EFBIG here, ENOSPC in life) is reported as itself. A sound segment stored under another
// segment's name is refused, not restored.
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createGzip } from 'node:zlib';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_RETRY, openObjectStore } from '../../src/storage/config.ts';
import { readWhole } from '../../src/storage/body.ts';
import { cleanEnv, runProcess } from '../helpers/run-bin.ts';
import { ROOT } from '../helpers/servers.ts';

const SEGMENT = '000000010000000000000001';
/** Holds segment 5's content (1 MiB segments). */
const MISPLACED = '000000010000000000000004';
/** A sound 16 MiB segment, for a write failure in the middle of the copy. */
const GOOD = '000000010000000000000002';
const SEGMENT_SIZE = 1 << 20;
/** Its object is `<name>.partial` holding segment 8's content (1 MiB segments): chosen for the name. */
const MISPLACED_PARTIAL = '000000010000000000000006';
/** A timeline history file that inflates past the 16 MiB a history file may hold. */
const HISTORY = '00000002.history';
/** A segment name whose object does not start with a long page header: 64 MiB of zeros, gzipped. */
const HEADERLESS = '000000010000000000000007';
/** Plain bytes in the bomb: 64 segments' worth behind a valid first page for a 1 MiB segment. */
const INFLATED = 64 * SEGMENT_SIZE;
/** The restore's file-size limit, in ulimit's 1024-byte blocks: four segments. */
const LIMIT_BLOCKS = (4 * SEGMENT_SIZE) / 1024;

/** XLogLongPageHeaderData of segment `seg` of log 0 on timeline 1 (8 KiB pages). */
function firstPage(seg: number, segmentSize: number): Buffer {
  const h = Buffer.alloc(8192);
  h.writeUInt16LE(0xd110, 0);
  h.writeUInt16LE(0x0002, 2);
  h.writeUInt32LE(1, 4);
  h.writeBigUInt64LE(BigInt(seg * segmentSize), 8);
  h.writeBigUInt64LE(7_000_000_000_000_000_000n, 24);
  h.writeUInt32LE(segmentSize, 32);
  h.writeUInt32LE(8192, 36);
  return h;
}

/** `size` plain bytes: segment `seg`'s first page for `segmentSize`-byte segments, then zeros. */
function* segmentChunks(seg: number, segmentSize: number, size = segmentSize): Generator<Buffer> {
  yield firstPage(seg, segmentSize);
  const zeros = Buffer.alloc(SEGMENT_SIZE);
  for (let n = 8192; n < size; n += zeros.length) yield zeros.subarray(0, Math.min(zeros.length, size - n));
}

/** A restore run with a file-size limit of `blocks` KiB. */
function restoreLimited(walName: string, dest: string, blocks: number) {
  const bin = join(ROOT, 'bin', 'barman-cloud-wal-restore');
  return runProcess('/bin/sh', [
    '-c', `ulimit -f ${blocks}; exec "$0" "$@"`,
    process.execPath, bin, `file://${root}`, 'srv', walName, join(dest, 'RECOVERYXLOG'),
  ], { env: cleanEnv(), timeoutMs: 60_000 });
}

let work: string;
let root: string;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'bc-walinflate-'));
  root = join(work, 'store');
  mkdirSync(root);
  const bomb = await readWhole(Readable.from(segmentChunks(1, SEGMENT_SIZE, INFLATED)).pipe(createGzip()));
  expect(bomb.length).toBeLessThan(INFLATED / 100);
  const store = await openObjectStore({ provider: 'file', bucket: root, retry: DEFAULT_RETRY });
  await store.put(`srv/wals/0000000100000000/${SEGMENT}.gz`, bomb);
  await store.put(`srv/wals/0000000100000000/${GOOD}.gz`, await readWhole(Readable.from(segmentChunks(2, 16 * SEGMENT_SIZE)).pipe(createGzip())));
  await store.put(`srv/wals/0000000100000000/${MISPLACED}`, await readWhole(Readable.from(segmentChunks(5, SEGMENT_SIZE))));
  await store.put(`srv/wals/0000000100000000/${MISPLACED_PARTIAL}.partial`, await readWhole(Readable.from(segmentChunks(8, SEGMENT_SIZE))));
  const history = (function* () {
    const line = Buffer.from('1\t0/3000000\tno recovery target specified\n'.repeat(1000));
    for (let n = 0; n < 17 << 20; n += line.length) yield line;
  })();
  await store.put(`srv/wals/${HISTORY}.gz`, await readWhole(Readable.from(history).pipe(createGzip())));
  const zeros = (function* () {
    const z = Buffer.alloc(SEGMENT_SIZE);
    for (let n = 0; n < 64; n++) yield z;
  })();
  await store.put(`srv/wals/0000000100000000/${HEADERLESS}.gz`, await readWhole(Readable.from(zeros).pipe(createGzip({ level: 1 }))));
  await store.close();
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('wal-restore and objects that are not what their name says', () => {
  it('refuses it (exit 4, one line) before writing more than the segment, leaving nothing', async () => {
    const dest = mkdtempSync(join(work, 'dest-'));
    const r = await restoreLimited(SEGMENT, dest, LIMIT_BLOCKS);
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toMatch(
      new RegExp(`^[^\\n]* ERROR: Barman cloud WAL restore exception: WAL object srv/wals/0000000100000000/${SEGMENT}\\.gz is too long\\b[^\\n]*\\n$`),
    );
    expect(readdirSync(dest)).toEqual([]);
  }, 90_000);

  it('a failed write says why (the file is too large), not that an operation was aborted', async () => {
    const dest = mkdtempSync(join(work, 'dest-'));
    // a sound 16 MiB segment under a 4 MiB limit: the write fails, not the object
    const r = await restoreLimited(GOOD, dest, LIMIT_BLOCKS);
    expect(r.code, r.stderr).not.toBe(0);
    expect(r.stderr).toMatch(/^[^\n]* ERROR: Barman cloud WAL restore exception: [^\n]*EFBIG[^\n]*\n$/);
    expect(readdirSync(dest)).toEqual([]);
    // and with room, the same object restores
    const ok = await restoreLimited(GOOD, dest, 32 * 1024);
    expect({ code: ok.code, stderr: ok.stderr }).toEqual({ code: 0, stderr: '' });
    expect(readdirSync(dest)).toEqual(['RECOVERYXLOG']);
  }, 90_000);

  it('refuses a sound segment stored under another segment\'s name (exit 4, one line), leaving nothing', async () => {
    const dest = mkdtempSync(join(work, 'dest-'));
    const r = await restoreLimited(MISPLACED, dest, LIMIT_BLOCKS);
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toMatch(new RegExp(
      `^[^\\n]* ERROR: Barman cloud WAL restore exception: WAL object srv/wals/0000000100000000/${MISPLACED} is another segment ` +
      `\\(its first page is at 0/500000, ${MISPLACED} starts at 0/400000\\)\\n$`,
    ));
    expect(readdirSync(dest)).toEqual([]);
  }, 90_000);

  it('refuses a history file inflating past 16 MiB (exit 4, one line), leaving nothing', async () => {
    const dest = mkdtempSync(join(work, 'dest-'));
    // 24 MiB of room (dash counts 512-byte blocks): without the limit the whole 17 MiB would be written and restored
    const r = await restoreLimited(HISTORY, dest, 48 * 1024);
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toMatch(new RegExp(
      `^[^\\n]* ERROR: Barman cloud WAL restore exception: WAL object srv/wals/${HISTORY}\\.gz is too long \\(more than 16777216 bytes[^\\n]*\\n$`,
    ));
    expect(readdirSync(dest)).toEqual([]);
  }, 90_000);

  it('refuses a segment without a long page header at its first bytes (exit 4, one line), leaving nothing', async () => {
    const dest = mkdtempSync(join(work, 'dest-'));
    // under the 4 MiB limit: refused before its 64 MiB are written (an EFBIG would say otherwise)
    const r = await restoreLimited(HEADERLESS, dest, LIMIT_BLOCKS);
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toMatch(new RegExp(
      `^[^\\n]* ERROR: Barman cloud WAL restore exception: WAL object srv/wals/0000000100000000/${HEADERLESS}\\.gz is not WAL segment ${HEADERLESS} [^\\n]*\\n$`,
    ));
    expect(readdirSync(dest)).toEqual([]);
  }, 90_000);

  it('refuses a .partial object holding another segment, chosen for the segment\'s name (exit 4, one line)', async () => {
    const dest = mkdtempSync(join(work, 'dest-'));
    const r = await restoreLimited(MISPLACED_PARTIAL, dest, 48 * 1024);
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toMatch(new RegExp(
      `^[^\\n]* ERROR: Barman cloud WAL restore exception: WAL object srv/wals/0000000100000000/${MISPLACED_PARTIAL}\\.partial is another segment ` +
      `\\(its first page is at 0/800000, ${MISPLACED_PARTIAL}\\.partial starts at 0/600000\\)\\n$`,
    ));
    expect(readdirSync(dest)).toEqual([]);
  }, 90_000);
});

