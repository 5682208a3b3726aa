// WAL segments for the tests that archive and restore them: compressible like real WAL (every 8 KiB
// page starts with a line of SQL text) yet never twice the same (random bytes on every page), so a
// copy mixed up with another shows. A segment that is restored must start with its own long page
// header, or wal-restore refuses it (docs/format.md#segment-header): segmentFor() writes one.
// test/bench/lib.mjs keeps its own, slower generator: the benchmarks' figures depend on its exact mix.
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** PostgreSQL's default segment size. */
export const SEGMENT_SIZE = 16 * 1024 * 1024;

/** `size` bytes of WAL-like pages; `tag` is written into every page (a round, a file's name). */
export function walSegmentBytes(size = SEGMENT_SIZE, tag = randomBytes(8).toString('hex')): Buffer {
  const buf = Buffer.alloc(size);
  const text = Buffer.from(`INSERT INTO pgbench_history VALUES ('${tag}', 42, 'abcdefghij'); `);
  for (let off = 0; off < size; off += 8192) {
    text.copy(buf, off, 0, Math.min(text.length, size - off));
    if (off + 200 < size) randomBytes(64).copy(buf, off + 200);
  }
  return buf;
}

/**
 * Writes at the start of `buf` the 40 bytes of XLogLongPageHeaderData (as PostgreSQL 15 writes it,
 * little-endian, 8 KiB pages) that WAL segment `name` (or `name.partial`) starts with, for
 * `segmentSize`-byte segments; returns `buf`.
 */
export function withLongPageHeader(buf: Buffer, name: string, segmentSize = buf.length): Buffer {
  const segment = name.replace(/\.partial$/, '');
  const log = BigInt(Number.parseInt(segment.slice(8, 16), 16));
  const seg = BigInt(Number.parseInt(segment.slice(16, 24), 16));
  buf.fill(0, 0, 40);
  buf.writeUInt16LE(0xd110, 0); // xlp_magic of PostgreSQL 15
  buf.writeUInt16LE(0x0002, 2); // XLP_LONG_HEADER
  buf.writeUInt32LE(Number.parseInt(segment.slice(0, 8), 16), 4); // xlp_tli
  buf.writeBigUInt64LE((log << 32n) + seg * BigInt(segmentSize), 8); // xlp_pageaddr: the segment's start
  buf.writeBigUInt64LE(7_000_000_000_000_000_000n, 24); // xlp_sysid
  buf.writeUInt32LE(segmentSize, 32);
  buf.writeUInt32LE(8192, 36);
  return buf;
}

/** walSegmentBytes() starting with segment `name`'s long page header: what wal-restore accepts under that name. */
export function segmentFor(name: string, size = SEGMENT_SIZE, tag?: string): Buffer {
  return withLongPageHeader(walSegmentBytes(size, tag), name, size);
}

/** `data` written as `<dir>/<name>` (the directory made if needed), as pg_wal holds it; returns the path. */
export function writeWalFile(dir: string, name: string, data: Buffer): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, name);
  writeFileSync(path, data);
  return path;
}
