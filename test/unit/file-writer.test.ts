import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CoalescingFileWriter } from '../../src/file-writer.ts';

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

});
