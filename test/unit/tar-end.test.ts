// TarEndTap (src/backup/tar-end.ts, docs/format.md#tar-end) through the real extractor: zero-filled
// members of every size around a block, long names (PAX headers) and every chunking of the stream
// restore as they are; a tar appended after the end is refused whatever the chunking.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { extractArchive } from '../../src/backup/extract.ts';
import { tarOf, type TarMember } from '../helpers/tar.ts';

const root = mkdtempSync(join(tmpdir(), 'bc-tar-end-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;

const zeros = (size: number) => '\0'.repeat(size);
const MEMBERS: TarMember[] = [
  { name: 'empty', data: '' },
  { name: 'z1', data: zeros(1) },
  { name: 'z511', data: zeros(511) },
  { name: 'z512', data: zeros(512) },
  { name: 'z513', data: zeros(513) },
  { name: `${'long-'.repeat(30)}name`, data: zeros(1024) },
  { name: 'z300k', data: zeros(300 * 1024) },
  { name: 'dir', type: 'directory' },
  { name: 'dir/last', data: 'x' },
];

function chunked(body: Buffer, size: number): Readable {
  const pieces: Buffer[] = [];
  for (let i = 0; i < body.length; i += size) pieces.push(body.subarray(i, i + size));
  return Readable.from(pieces, { objectMode: false });
}

describe('TarEndTap', () => {
  it.each([1, 7, 511, 512, 4096, 100_000, 1 << 20])('zero-filled members restore whole, chunks of %i bytes', async (size) => {
    const dest = join(root, `ok${++n}`);
    const stats = await extractArchive(chunked(await tarOf(MEMBERS), size), dest);
    expect(stats.files).toBe(8);
    expect(readFileSync(join(dest, 'z300k')).equals(Buffer.alloc(300 * 1024))).toBe(true);
    expect(readFileSync(join(dest, `${'long-'.repeat(30)}name`)).length).toBe(1024);
    expect(readFileSync(join(dest, 'dir/last'), 'utf8')).toBe('x');
  });

  it.each([1, 512, 4096, 1 << 20])('a tar appended after the end is refused, chunks of %i bytes', async (size) => {
    const body = Buffer.concat([await tarOf(MEMBERS), await tarOf([{ name: 'planted', data: 'x' }])]);
    await expect(extractArchive(chunked(body, size), join(root, `bad${++n}`))).rejects.toThrow(/^a member follows the end of the tar \(a zero block at offset \d+\)$/);
  });
});
