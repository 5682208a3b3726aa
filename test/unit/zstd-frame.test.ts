// The zstd frame walker and sealer (src/compression/zstd-frame.ts) on frames built by hand from
// RFC 8878, then decoded by libzstd through the codec: the walker must agree with the format on
// where frames end, and the sealer's checksum must be the one libzstd verifies.
import { describe, expect, it } from 'vitest';
import { loadCodec } from '../../src/compression/index.js';
import { CompressionFormatError } from '../../src/compression/types.js';
import { FrameSealer, FrameWalkError, FrameWalker } from '../../src/compression/zstd-frame.js';
import { Xxh64 } from '../../src/compression/xxhash.js';

const MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);
const blockHeader = (last: boolean, type: number, size: number) => {
  const h = (size << 3) | (type << 1) | (last ? 1 : 0);
  return Buffer.from([h & 0xff, (h >> 8) & 0xff, (h >> 16) & 0xff]);
};
const le32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
};
const xxh64low = (data: Buffer) => Number(new Xxh64().update(data).digest() & 0xffffffffn);

/** Single-segment frame (1-byte content size: under 256 bytes) of a raw and an RLE block, optional checksum. */
function handFrame(text: string, rle: number, checksum: boolean): { frame: Buffer; content: Buffer } {
  const raw = Buffer.from(text);
  const content = Buffer.concat([raw, Buffer.alloc(rle, 0x61)]);
  const fhd = 0x20 | (checksum ? 0x04 : 0); // single segment, FCS flag 0 → 1-byte content size
  const frame = Buffer.concat([
    MAGIC,
    Buffer.from([fhd, content.length]),
    blockHeader(false, 0, raw.length),
    raw,
    blockHeader(true, 1, rle),
    Buffer.from([0x61]),
    checksum ? le32(xxh64low(content)) : Buffer.alloc(0),
  ]);
  return { frame, content };
}

/** Skippable frame: magic 184d2a5X, size, payload. */
const skippable = (payload: string) => Buffer.concat([le32(0x184d2a53), le32(payload.length), Buffer.from(payload)]);

function walk(input: Buffer, chunk = input.length || 1): void {
  const w = new FrameWalker();
  for (let i = 0; i < input.length; i += chunk) w.update(input.subarray(i, i + chunk));
  w.end();
}

describe('XXH64', () => {
  it('matches the reference vectors (seed 0)', () => {
    expect(new Xxh64().digest()).toBe(0xef46db3751d8e999n);
    expect(new Xxh64().update(Buffer.from('a')).digest()).toBe(0xd24ec4f1a98c6e5bn);
    expect(new Xxh64().update(Buffer.from('ab')).update(Buffer.from('c')).digest()).toBe(0x44bc2cf5ad770999n);
  });
});

describe('FrameWalker', () => {
  const one = handFrame('hello', 200, true);
  const two = Buffer.concat([one.frame, skippable('note'), handFrame('again', 7, false).frame]);

  it('hand-built frames are what libzstd decodes (the walker and the decoder read the same format)', async () => {
    const codec = await loadCodec('zstd');
    expect((await codec.decompress(one.frame)).equals(one.content)).toBe(true);
    expect((await codec.decompress(two)).toString()).toBe(`hello${'a'.repeat(200)}again${'a'.repeat(7)}`);
  });

  it('accepts complete frames, skippable frames and concatenations, in chunks of any size', () => {
    for (const chunk of [1, 2, 3, 7, 1000]) {
      walk(one.frame, chunk);
      walk(two, chunk);
    }
  });

  it('refuses every cut that is not a frame boundary, as truncated', () => {
    const boundaries = new Set([one.frame.length, one.frame.length + skippable('note').length, two.length]);
    for (let cut = 0; cut < two.length; cut++) {
      if (boundaries.has(cut)) {
        walk(two.subarray(0, cut));
        continue;
      }
      let err: unknown;
      try {
        walk(two.subarray(0, cut), 2);
      } catch (e) {
        err = e;
      }
      expect(err, `cut at ${cut}`).toBeInstanceOf(FrameWalkError);
      expect((err as FrameWalkError).truncated, `cut at ${cut}`).toBe(true);
    }
  });

  it('refuses a foreign magic, the reserved header bit and the reserved block type, as corrupt', () => {
    const bad = [
      Buffer.from('not zstd at all'),
      Buffer.concat([MAGIC, Buffer.from([0x28, 1]), blockHeader(true, 0, 1), Buffer.from('x')]), // reserved bit 3
      Buffer.concat([MAGIC, Buffer.from([0x20, 1]), blockHeader(true, 3, 1), Buffer.from('x')]),
    ];
    for (const input of bad) {
      expect(() => walk(input)).toThrow(FrameWalkError);
      try {
        walk(input);
      } catch (e) {
        expect((e as FrameWalkError).truncated).toBe(false);
      }
    }
  });

  it('the codec reports a cut at the checksum as truncated, though every block decoded', async () => {
    const codec = await loadCodec('zstd');
    const cut = one.frame.subarray(0, one.frame.length - 2);
    const err = await codec.decompress(cut).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CompressionFormatError);
    expect((err as CompressionFormatError).problem).toBe('truncated');
  });
});

describe('FrameSealer', () => {
  it('sets the checksum flag wherever the header byte falls and ends with XXH64 of the content', async () => {
    const codec = await loadCodec('zstd');
    const plain = handFrame('sealed', 50, false);
    for (const size of [1, 3, 4, 5, 64]) {
      const sealer = new FrameSealer();
      sealer.content(plain.content.subarray(0, 10));
      sealer.content(plain.content.subarray(10));
      const pieces: Buffer[] = [];
      const copy = Buffer.from(plain.frame);
      for (let i = 0; i < copy.length; i += size) pieces.push(sealer.output(copy.subarray(i, i + size)));
      pieces.push(sealer.trailer());
      const sealed = Buffer.concat(pieces);
      expect(sealed.equals(handFrame('sealed', 50, true).frame), `pieces of ${size}`).toBe(true);
      expect((await codec.decompress(sealed)).equals(plain.content)).toBe(true);
    }
  });

  it('adds nothing to a frame that already carries a checksum', () => {
    const checked = handFrame('x', 1, true);
    const sealer = new FrameSealer();
    sealer.content(checked.content);
    sealer.output(Buffer.from(checked.frame.subarray(0, checked.frame.length - 4)));
    expect(sealer.trailer().length).toBe(0);
  });
});
