// WAL segments for the tests that archive and restore them: compressible like real WAL (every 8 KiB
// page starts with a line of SQL text) yet never twice the same (random bytes on every page), so a
// copy mixed up with another shows. test/bench/lib.mjs keeps its own, slower generator: the
// benchmarks' figures depend on its exact mix.
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

/** `data` written as `<dir>/<name>` (the directory made if needed), as pg_wal holds it; returns the path. */
export function writeWalFile(dir: string, name: string, data: Buffer): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, name);
  writeFileSync(path, data);
  return path;
}
