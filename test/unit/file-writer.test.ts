import { closeSync, fstatSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CoalescingFileWriter, writeCoalesced } from '../../src/file-writer.ts';

describe('CoalescingFileWriter', () => {
  it('writes every byte in order, whatever the chunk sizes around its buffer size', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bc-writer-'));
    try {
      const sizes = [1, 4095, 4096, 4097, 10_000, 0, 16_384, 3, 50_000, 4096, 1];
      const chunks = sizes.map((n) => randomBytes(n));
      const file = join(dir, 'out');
      const fd = openSync(file, 'wx');
      const writer = new CoalescingFileWriter(fd, Buffer.alloc(4096));
      // The caller may refill a chunk once write() has returned: do it, to prove nothing keeps it.
      for (const c of chunks) {
        const copy = Buffer.from(c);
        writer.write(copy);
        copy.fill(0xee);
      }
      writer.flush();
      closeSync(fd);
      expect(readFileSync(file).equals(Buffer.concat(chunks))).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a chunk of 256 KiB or more goes to the file at once, after what is buffered, not through the buffer', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bc-writer-'));
    try {
      const chunks = [randomBytes(1000), randomBytes(512 * 1024), randomBytes(3000), randomBytes(2 * 1024 * 1024)];
      const file = join(dir, 'out');
      const fd = openSync(file, 'wx');
      const writer = new CoalescingFileWriter(fd);
      writer.write(chunks[0]!);
      expect(fstatSync(fd).size).toBe(0); // small: buffered
      writer.write(chunks[1]!);
      expect(fstatSync(fd).size).toBe(1000 + 512 * 1024); // large: the buffered bytes, then it, written
      writer.write(chunks[2]!);
      writer.write(chunks[3]!);
      expect(fstatSync(fd).size).toBe(1000 + 512 * 1024 + 3000 + 2 * 1024 * 1024);
      writer.flush();
      closeSync(fd);
      expect(readFileSync(file).equals(Buffer.concat(chunks))).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('writeCoalesced (the thread-pool flavour) writes every byte in order, even from one borrowed buffer', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bc-writer-'));
    try {
      const sizes = [1, 4095, 4096, 4097, 10_000, 0, 16_384, 3, 50_000, 4096, 1];
      const chunks = sizes.map((n) => randomBytes(n));
      // As a WAL file is read: every chunk lands in the same buffer, refilled for the next one.
      const borrowed = Buffer.alloc(50_000);
      function* lent() {
        for (const c of chunks) {
          borrowed.fill(0xee);
          c.copy(borrowed);
          yield borrowed.subarray(0, c.length);
        }
      }
      const file = join(dir, 'out');
      const fh = await open(file, 'wx');
      await writeCoalesced(fh, lent(), Buffer.alloc(4096));
      await fh.close();
      expect(readFileSync(file).equals(Buffer.concat(chunks))).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
