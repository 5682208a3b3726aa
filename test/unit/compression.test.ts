import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { createRequire } from 'node:module';
import { PassThrough, Readable, Writable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import {
  CODEC_NAMES,
  CompressionFormatError,
  WAL_SUFFIX,
  codecFromSuffix,
  loadCodec,
  resolveLevel,
  setProgramSearchPath,
  TAR_EXTENSIONS,
  type Codec,
  type CodecName,
} from '../../src/compression/index.js';
import { GeneralError } from '../../src/errors.js';
import { findBzip2Program } from '../../src/compression/bzip2.js';
import { walLike } from '../fixtures/wal-like.ts';

const require = createRequire(import.meta.url);

/** Buffer equality without vitest's element-wise diff (far too slow on MiB buffers). */
function expectSame(actual: Buffer, expected: Buffer): void {
  expect(actual.length).toBe(expected.length);
  expect(actual.equals(expected)).toBe(true);
}

// Packages that belong to one codec each (lz4-napi is lz4's own).
const FOREIGN_PACKAGES = [
  '/node_modules/snappy/',
  '/node_modules/@napi-rs/snappy',
  '/node_modules/@node-rs/crc32',
  '/node_modules/@cloudpss/zstd/',
  '/node_modules/lzma-native/',
  '/node_modules/compressjs/',
  '/node_modules/unbzip2-stream/',
];
const loaded = (needle: string) => Object.keys(require.cache).some((k) => k.includes(needle));

// Must stay the first test of this file: it looks at what this worker has loaded so far.
describe('lazy loading', () => {
  it("loadCodec('lz4') loads lz4-napi and none of the other codecs' packages", async () => {
    // lz4-napi, or its binding package (@antoniomuso/lz4-napi-<platform>, src/compression/native.ts).
    for (const p of [...FOREIGN_PACKAGES, 'lz4-napi']) expect(loaded(p), p).toBe(false);
    const codec = await loadCodec('lz4');
    await codec.compress(Buffer.from('x'));
    expect(loaded('lz4-napi')).toBe(true);
    for (const p of FOREIGN_PACKAGES) expect(loaded(p), p).toBe(false);
  });
});

const MAGIC: Record<CodecName, Buffer> = {
  gzip: Buffer.from([0x1f, 0x8b, 0x08]),
  bzip2: Buffer.from('BZh'),
  xz: Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]),
  snappy: Buffer.from([0xff, 0x06, 0x00, 0x00, 0x73, 0x4e, 0x61, 0x50, 0x70, 0x59]),
  zstd: Buffer.from([0x28, 0xb5, 0x2f, 0xfd]),
  lz4: Buffer.from([0x04, 0x22, 0x4d, 0x18]),
};

describe('suffixes', () => {
  it('maps every codec to barman’s WAL suffix', () => {
    expect(WAL_SUFFIX).toEqual({ gzip: '.gz', bzip2: '.bz2', xz: '.xz', snappy: '.snappy', zstd: '.zst', lz4: '.lz4' });
    // backup archives: barman's tar, tar.gz, tar.bz2, tar.snappy and the ones our backup also writes
    expect([...TAR_EXTENSIONS].sort()).toEqual(['tar', 'tar.bz2', 'tar.gz', 'tar.lz4', 'tar.snappy', 'tar.xz', 'tar.zst']);
  });

  it('detects the codec from the trailing suffix only', () => {
    expect(codecFromSuffix('000000010000000000000001.gz')).toBe('gzip');
    expect(codecFromSuffix('000000010000000000000001.bz2')).toBe('bzip2');
    expect(codecFromSuffix('000000010000000000000001.xz')).toBe('xz');
    expect(codecFromSuffix('000000010000000000000001.snappy')).toBe('snappy');
    expect(codecFromSuffix('000000010000000000000001.zst')).toBe('zstd');
    expect(codecFromSuffix('000000010000000000000001.lz4')).toBe('lz4');
    expect(codecFromSuffix('000000010000000000000001.partial.gz')).toBe('gzip');
    expect(codecFromSuffix('000000010000000000000001.00000028.backup.zst')).toBe('zstd');
    expect(codecFromSuffix('00000002.history.lz4')).toBe('lz4');
    expect(codecFromSuffix('data.tar.bz2')).toBe('bzip2');
    expect(codecFromSuffix('data_0001.tar.snappy')).toBe('snappy');
    expect(codecFromSuffix('000000010000000000000001')).toBeUndefined();
    expect(codecFromSuffix('000000010000000000000001.partial')).toBeUndefined();
    expect(codecFromSuffix('data.tar')).toBeUndefined();
    expect(codecFromSuffix('file.gz.tmp')).toBeUndefined();
    expect(codecFromSuffix('file.GZ')).toBeUndefined();
    expect(codecFromSuffix('file.zstd')).toBeUndefined();
    expect(codecFromSuffix('file.lz')).toBeUndefined();
  });
});

describe('resolveLevel (barman/compression.py LEVEL_* table)', () => {
  const table: [CodecName, number, number, number, number, number][] = [
    // codec, low, medium, high, min, max
    ['gzip', 1, 6, 9, 1, 9],
    ['bzip2', 1, 5, 9, 1, 9],
    ['xz', 1, 3, 5, 1, 9],
    ['zstd', 1, 4, 9, -22, 22],
    ['lz4', 0, 6, 10, 0, 16],
  ];
  it.each(table)('%s: low %i, medium %i, high %i, range %i..%i', (codec, low, medium, high, min, max) => {
    expect(resolveLevel(codec, 'low')).toBe(low);
    expect(resolveLevel(codec, 'medium')).toBe(medium);
    expect(resolveLevel(codec)).toBe(medium);
    expect(resolveLevel(codec, 'high')).toBe(high);
    expect(resolveLevel(codec, min)).toBe(min);
    expect(resolveLevel(codec, max)).toBe(max);
    expect(resolveLevel(codec, min - 1)).toBe(min);
    expect(resolveLevel(codec, max + 1)).toBe(max);
    expect(resolveLevel(codec, -1000)).toBe(min);
    expect(resolveLevel(codec, 1000)).toBe(max);
    expect(resolveLevel(codec, low + 1)).toBe(low + 1);
  });
  it('snappy ignores levels', () => {
    expect(resolveLevel('snappy')).toBeUndefined();
    expect(resolveLevel('snappy', 'high')).toBeUndefined();
    expect(resolveLevel('snappy', 7)).toBeUndefined();
  });
  it('gzip/bzip2/xz 0 clamps to 1, zstd keeps negative levels', () => {
    expect(resolveLevel('gzip', 0)).toBe(1);
    expect(resolveLevel('bzip2', 0)).toBe(1);
    expect(resolveLevel('xz', 0)).toBe(1);
    expect(resolveLevel('zstd', -5)).toBe(-5);
    expect(resolveLevel('zstd', 0)).toBe(0);
  });
  it('rejects non-integers', () => {
    expect(() => resolveLevel('gzip', 2.5)).toThrow(RangeError);
  });
});

/** A source of `total` bytes in 64 KiB chunks that records how far it ran ahead of the sink. */
class Source extends Readable {
  produced = 0;
  private n = 0;
  readonly hash = createHash('sha256');
  constructor(
    private readonly total: number,
    private readonly seed: number,
  ) {
    super({ highWaterMark: 64 << 10 });
  }
  sink: { consumed: number } | null = null;
  maxLead = 0; // produced but not yet written to the sink: what the pipeline holds
  override _read(): void {
    if (this.sink) this.maxLead = Math.max(this.maxLead, this.produced - this.sink.consumed);
    if (this.produced >= this.total) return void this.push(null);
    const size = Math.min(64 << 10, this.total - this.produced);
    // alternate incompressible and compressible chunks
    const chunk = this.n++ % 3 === 0 ? walLike(size, this.seed + this.n) : Buffer.alloc(size, this.n & 0xff);
    if (this.n % 5 === 0) chunk.fill(0, 0, size >> 1);
    this.hash.update(chunk);
    this.produced += size;
    this.push(chunk);
  }
}

/** A slow sink: small buffer and periodic pauses, so back-pressure has to reach the source. */
class SlowSink extends Writable {
  consumed = 0;
  private writes = 0;
  readonly hash = createHash('sha256');
  constructor(source: Source) {
    super({ highWaterMark: 16 << 10 });
    source.sink = this;
  }
  override _write(chunk: Buffer, _e: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.hash.update(chunk);
    this.consumed += chunk.length;
    if (++this.writes % 16 === 0) setTimeout(cb, 1);
    else cb();
  }
}

async function streamRoundTrip(codec: Codec, total: number, level?: number) {
  const source = new Source(total, 99);
  const sink = new SlowSink(source);
  await pipeline(source, codec.compressStream(level), codec.decompressStream(), sink);
  expect(sink.consumed).toBe(total);
  expect(sink.hash.digest('hex')).toBe(source.hash.digest('hex'));
  if (process.env.BC_DEBUG_LEAD) console.log(codec.name, total, 'maxLead', source.maxLead);
  return source.maxLead;
}

async function collect(input: Buffer, ...stages: Transform[]): Promise<Buffer> {
  const parts: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _e, cb) {
      parts.push(chunk);
      cb();
    },
  });
  await pipeline([Readable.from([input]), ...stages, sink]);
  return Buffer.concat(parts);
}

const BIG = 20 << 20;

interface Variant {
  label: string;
  name: CodecName;
  load: () => Promise<Codec>;
  big: number; // bytes pushed through the stream round trip
  lead: number; // bound on how far the source may run ahead of the sink
}

const variants: Variant[] = [
  ...CODEC_NAMES.filter((n) => n !== 'bzip2').map((name) => ({
    label: name,
    name,
    load: () => loadCodec(name),
    big: BIG,
    lead: 16 << 20,
  })),
  { label: 'bzip2 (bzip2 program)', name: 'bzip2', load: () => loadCodec('bzip2', { bzip2: 'cli' }), big: BIG, lead: 16 << 20 },
  // The pure-JS fallback compresses at well under 1 MB/s: keep its stream small. unbzip2-stream
  // waits for ~one block of *compressed* input (≤ 525 kB) before decoding, which for this very
  // compressible source is the whole stream, so no lead bound is asserted for it.
  { label: 'bzip2 (JavaScript)', name: 'bzip2', load: () => loadCodec('bzip2', { bzip2: 'js' }), big: 3 << 20, lead: (3 << 20) + 1 },
];

describe.each(variants)('$label', ({ name, load, big, lead }) => {
  it('round-trips buffers: empty, tiny, 1 MiB mixed', async () => {
    const codec = await load();
    expect(codec.name).toBe(name);
    for (const input of [Buffer.alloc(0), Buffer.from('a'), walLike(1 << 20)]) {
      const packed = await codec.compress(input);
      expectSame(await codec.decompress(packed), input);
    }
  });

  it('writes the format’s magic bytes', async () => {
    const codec = await load();
    const packed = await codec.compress(walLike(100_000));
    expect(packed.subarray(0, MAGIC[name].length)).toEqual(MAGIC[name]);
    const streamed = await collect(walLike(100_000), codec.compressStream());
    expect(streamed.subarray(0, MAGIC[name].length)).toEqual(MAGIC[name]);
  });

  it('accepts every resolved level', async () => {
    const codec = await load();
    const input = walLike(200_000, 7);
    for (const spec of ['low', 'medium', 'high'] as const) {
      const level = resolveLevel(name, spec);
      expectSame(await codec.decompress(await codec.compress(input, level)), input);
    }
  });

  it('stream and buffer forms interoperate', async () => {
    const codec = await load();
    const input = walLike(300_000, 3);
    expectSame(await collect(await codec.compress(input), codec.decompressStream()), input);
    expectSame(await codec.decompress(await collect(input, codec.compressStream())), input);
    expectSame(await collect(Buffer.alloc(0), codec.compressStream(), codec.decompressStream()), Buffer.alloc(0));
  });

  it(`streams ${big >> 20 || 1} MiB through compress → decompress with back-pressure`, async () => {
    const codec = await load();
    const maxLead = await streamRoundTrip(codec, big);
    expect(maxLead).toBeLessThan(lead);
  });

  it('rejects corrupt or truncated input', async () => {
    const codec = await load();
    const packed = await codec.compress(walLike(300_000, 5));
    const truncated = packed.subarray(0, packed.length >> 1);
    await expect(codec.decompress(truncated)).rejects.toThrow();
    await expect(collect(truncated, codec.decompressStream())).rejects.toThrow();
    const garbage = Buffer.from('this is definitely not compressed data, not at all'.repeat(10));
    await expect(codec.decompress(garbage)).rejects.toThrow();
  });
});

/** The error a decompression fails with (buffer or stream form), or null when it succeeded. */
async function failure(run: () => Promise<unknown>): Promise<CompressionFormatError | null> {
  try {
    await run();
    return null;
  } catch (err) {
    expect(err).toBeInstanceOf(CompressionFormatError);
    return err as CompressionFormatError;
  }
}

describe.each(variants)('$label: damaged input', ({ name, load }) => {
  const plain = walLike(600_000, 21);

  it('refuses empty input, as a GeneralError (exit 4) that names the object in one line', async () => {
    const codec = await load();
    for (const run of [() => codec.decompress(Buffer.alloc(0)), () => collect(Buffer.alloc(0), codec.decompressStream())]) {
      const err = await failure(run);
      expect(err?.problem).toBe('empty');
      expect(err).toBeInstanceOf(GeneralError);
      expect(err!.exitCode).toBe(4);
      expect(err!.describe('wals/X.gz')).toMatch(new RegExp(`^wals/X\\.gz is empty \\(${name}: [^\\n]+\\)$`));
    }
  });

  it('refuses input cut anywhere, also right before the end of the format', async () => {
    const codec = await load();
    const packed = await codec.compress(plain);
    const cuts = [1, 2, 4, 9, 10, 17, 40, packed.length >> 2, packed.length >> 1, packed.length - 9, packed.length - 8, packed.length - 5, packed.length - 4, packed.length - 1];
    for (const cut of cuts) {
      const cutDown = packed.subarray(0, cut);
      if (name === 'snappy' && cut === 10) continue; // the stream identifier alone: a valid empty stream
      for (const run of [() => codec.decompress(cutDown), () => collect(cutDown, codec.decompressStream())]) {
        const err = await failure(run);
        expect(err?.problem, `${name} cut at ${cut} of ${packed.length}`).toBe('truncated');
        expect(err!.describe('X')).toMatch(/^X is truncated \(/);
      }
    }
  });

  it('refuses bytes after the end of the stream; zero padding only where the format or its readers allow it (gzip, xz)', async () => {
    const codec = await load();
    const packed = await codec.compress(plain);
    /** The stream form, its input ending only after the decoder had time to take the last bytes. */
    const lateEnd = (input: Buffer) => collect(input, new PassThrough(), codec.decompressStream());
    const slowSource = async (input: Buffer) => {
      const parts: Buffer[] = [];
      const source = Readable.from((async function* () {
        yield input;
        await new Promise((r) => setTimeout(r, 100));
      })());
      await pipeline(source, codec.decompressStream(), new Writable({
        write(chunk: Buffer, _e, cb) {
          parts.push(chunk);
          cb();
        },
      }));
      return Buffer.concat(parts);
    };
    for (const [label, tail] of [['garbage', Buffer.from('garbage after the stream')], ['one byte', Buffer.from('x')], ['zeros', Buffer.alloc(512)]] as const) {
      const input = Buffer.concat([packed, tail]);
      for (const run of [() => codec.decompress(input), () => lateEnd(input), () => slowSource(input)]) {
        let out: Buffer | undefined;
        const err = await failure(async () => {
          out = await Promise.race([
            run(),
            new Promise<never>((_, reject) => setTimeout(() => reject(new CompressionFormatError(name, 'did not finish in 10 s')), 10_000)),
          ]);
        });
        if (label === 'zeros' && (name === 'gzip' || name === 'xz')) {
          expect(err?.message, `${name}: ${label}`).toBeUndefined();
          expectSame(out!, plain);
        } else {
          expect(err?.problem, `${name}: ${label}: ${err?.message}`).toMatch(/^(corrupt|truncated)$/);
        }
      }
    }
  });

  it('detects single flipped bytes: each fails or (header slack) decodes to the same bytes', async () => {
    const codec = await load();
    const packed = await codec.compress(plain);
    let failed = 0;
    for (let i = 0; i < 30; i++) {
      const flipped = Buffer.from(packed);
      flipped[Math.floor(((i + 0.5) * packed.length) / 30)]! ^= 1 << (i % 8);
      for (const run of [() => codec.decompress(flipped), () => collect(flipped, codec.decompressStream())]) {
        let out: Buffer | undefined;
        const err = await failure(async () => {
          out = (await run()) as Buffer;
        });
        if (err) failed++;
        else expect(out!.equals(plain), `${name}: flip ${i} decoded to other bytes`).toBe(true);
      }
    }
    expect(failed).toBeGreaterThan(40); // almost every flip lands in checked data
  });
});

describe('lz4 content checksum', () => {
  // Our frames carry no block checksums: a flipped byte inside a stored (incompressible) block
  // decodes without error, and only the frame's content checksum can refuse it.
  it('a flipped byte in a stored block fails the content checksum, whole and streamed', async () => {
    const codec = await loadCodec('lz4');
    const input = randomBytes(100_000);
    const frame = await codec.compress(input);
    const bad = Buffer.from(frame);
    bad[frame.length >> 1]! ^= 0x01;
    expect((await failure(() => codec.decompress(bad)))?.problem).toBe('checksum');
    expect((await failure(() => collect(bad, codec.decompressStream())))?.problem).toBe('checksum');
  });
});

describe('zstd content checksum', () => {
  it('every frame we write sets the content checksum flag and ends with XXH64', async () => {
    const codec = await loadCodec('zstd');
    const input = walLike(300_000, 2);
    const frames = [
      await codec.compress(input),
      await collect(input, codec.compressStream()),
      Buffer.concat(await codec.compressChunks!([input.subarray(0, 100_000), input.subarray(100_000)])),
    ];
    for (const frame of frames) {
      expect(frame[4]! & 0x04).toBe(0x04); // Frame_Header_Descriptor: Content_Checksum_flag
      // the last 4 bytes are the low 32 bits of XXH64(content): a flip there must fail
      const bad = Buffer.from(frame);
      bad[bad.length - 1]! ^= 0x80;
      expect((await failure(() => codec.decompress(bad)))?.problem).toBe('checksum');
      expect((await failure(() => collect(bad, codec.decompressStream())))?.problem).toBe('checksum');
    }
  });
});

describe('snappy framing: a cut between two chunks', () => {
  it('is a valid shorter stream (the format has no end marker; WAL restore checks the size)', async () => {
    const codec = await loadCodec('snappy');
    const input = walLike(200_000, 4);
    const packed = await codec.compress(input);
    const firstChunkEnd = 10 + 4 + packed.readUIntLE(11, 3);
    const prefix = await codec.decompress(packed.subarray(0, firstChunkEnd));
    expect(prefix.equals(input.subarray(0, 65_536))).toBe(true);
  });
});

describe('snappy framing layout', () => {
  it('writes identifier, then typed chunks of at most 64 KiB with masked CRC-32C', async () => {
    const { maskedCrc32c } = await import('../../src/compression/snappy.js');
    const codec = await loadCodec('snappy');
    const { randomBytes } = await import('node:crypto');
    const plain = [Buffer.alloc(65_536, 0x61), randomBytes(65_536), Buffer.from('tail')];
    for (const out of [await codec.compress(Buffer.concat(plain)), await collect(Buffer.concat(plain), codec.compressStream())]) {
      expectSame(out.subarray(0, 10), MAGIC.snappy);
      const chunks: { type: number; crc: number; body: Buffer }[] = [];
      for (let p = 10; p < out.length; ) {
        const len = out.readUIntLE(p + 1, 3);
        chunks.push({ type: out[p]!, crc: out.readUInt32LE(p + 4), body: out.subarray(p + 8, p + 4 + len) });
        p += 4 + len;
      }
      // compressible → 0x00; random 64 KiB (no 12.5 % saving) and a 4-byte tail → 0x01 (stored)
      expect(chunks.map((c) => c.type)).toEqual([0x00, 0x01, 0x01]);
      expect(chunks[0]!.body.length).toBeLessThan(4000);
      expectSame(chunks[1]!.body, plain[1]!);
      expectSame(chunks[2]!.body, plain[2]!);
      chunks.forEach((c, i) => expect(c.crc).toBe(maskedCrc32c(plain[i]!)));
    }
  });

  it('masks CRC-32C as ((crc >> 15) | (crc << 17)) + 0xa282ead8', async () => {
    const { maskedCrc32c } = await import('../../src/compression/snappy.js');
    // CRC-32C("123456789") = 0xe3069283 (the standard check value)
    const crc = 0xe3069283;
    const masked = ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0;
    expect(maskedCrc32c(Buffer.from('123456789'))).toBe(masked);
  });

  it('detects a bad checksum, a missing identifier, reserved chunk types; skips padding', async () => {
    const codec = await loadCodec('snappy');
    const good = await codec.compress(Buffer.from('hello hello hello hello'));
    const badCrc = Buffer.from(good);
    badCrc[14]! ^= 0xff;
    await expect(codec.decompress(badCrc)).rejects.toBeInstanceOf(CompressionFormatError);
    await expect(codec.decompress(good.subarray(10))).rejects.toThrow(/identifier/);
    const reserved = Buffer.concat([good.subarray(0, 10), Buffer.from([0x02, 0x00, 0x00, 0x00]), good.subarray(10)]);
    await expect(codec.decompress(reserved)).rejects.toThrow(/unskippable/);
    const padded = Buffer.concat([good.subarray(0, 10), Buffer.from([0xfe, 0x03, 0x00, 0x00, 0, 0, 0]), good.subarray(10), good]);
    expect((await codec.decompress(padded)).toString()).toBe('hello hello hello hello'.repeat(2));
  });

  it('interoperates with the snappy package’s own (Rust snap) frame encoder and decoder', async () => {
    const snappy = await import('snappy');
    const codec = await loadCodec('snappy');
    const input = walLike(3 << 20, 11);
    const c = new snappy.Compressor();
    const theirs = Buffer.concat([c.update(input), await c.finish()]);
    expectSame(await codec.decompress(theirs), input);
    const d = new snappy.Decompressor();
    const ours = await codec.compress(input);
    expectSame(Buffer.concat([d.update(ours), await d.finish()]), input);
  });
});

describe('compressChunks (borrowed chunks, one buffer refilled for each)', () => {
  // Every codec a WAL file is archived with but xz: none may read the segment whole (peak RSS, issue 14).
  // Small chunks for bzip2: its program's stdin queues them when the pipe is full.
  it.each([['lz4', 65_536], ['zstd', 65_536], ['gzip', 65_536], ['snappy', 65_536], ['bzip2', 4096]] as [CodecName, number][])('%s: the pieces decode to the input', async (name, chunkSize) => {
    const codec = await loadCodec(name, { bzip2: 'cli' });
    expect(codec.compressChunks).toBeTypeOf('function');
    const input = Buffer.concat([(await import('node:crypto')).randomBytes(600_003), walLike(2 << 20, 8)]);
    const buf = Buffer.alloc(chunkSize);
    const pieces = await codec.compressChunks!((function* () {
      for (let at = 0; at < input.length; at += buf.length) {
        yield buf.subarray(0, input.copy(buf, 0, at, Math.min(input.length, at + buf.length)));
      }
    })());
    expect((await codec.decompress(Buffer.concat(pieces))).equals(input)).toBe(true);
  });
});

describe('lz4 frame layout', () => {
  it('xxh32 matches the reference vectors', async () => {
    const { xxh32, Xxh32, Xxh64 } = await import('../../src/compression/xxhash.js');
    expect(xxh32(Buffer.alloc(0))).toBe(0x02cc5d05);
    expect(xxh32(Buffer.from('a'))).toBe(0x550d7456);
    expect(xxh32(Buffer.from('abc'))).toBe(0x32d153ff);
    // the content checksum lz4(1) writes for this input (…0000 0000 2f3b 29e2)
    expect(xxh32(Buffer.from('Nobody inspects the spammish repetition'))).toBe(0xe2293b2f);
    const odd = Buffer.concat([Buffer.from([1]), walLike(4096, 9)]).subarray(1); // unaligned view
    expect(xxh32(odd)).toBe(xxh32(Buffer.from(odd)));
    const data = walLike(1000, 4);
    const whole = xxh32(data);
    const parts = new Xxh32();
    for (let i = 0; i < data.length; i += 7) parts.update(data.subarray(i, i + 7));
    expect(parts.digest()).toBe(whole);
    // XXH64 (the zstd content checksum's source): reference vectors, and one large update (a whole
    // segment) against many small ones.
    expect(new Xxh64().digest()).toBe(0xef46db3751d8e999n);
    expect(new Xxh64().update(Buffer.from('a')).digest()).toBe(0xd24ec4f1a98c6e5bn);
    expect(new Xxh64().update(Buffer.from('abc')).digest()).toBe(0x44bc2cf5ad770999n);
    const big = walLike(16 << 20, 5);
    const piecewise = new Xxh64();
    const piecewise32 = new Xxh32();
    for (let i = 0; i < big.length; i += 65_537) {
      piecewise.update(big.subarray(i, i + 65_537));
      piecewise32.update(big.subarray(i, i + 65_537));
    }
    expect(new Xxh64().update(big).digest()).toBe(piecewise.digest());
    expect(xxh32(big)).toBe(piecewise32.digest());
  });

  it('writes one frame: FLG independent blocks + content checksum, 256 KiB blocks', async () => {
    const codec = await loadCodec('lz4');
    const input = walLike(9 << 20);
    const out = await codec.compress(input);
    expect(out.subarray(0, 6)).toEqual(Buffer.from([0x04, 0x22, 0x4d, 0x18, 0x64, 0x50]));
    // 9 MiB in 256 KiB blocks: 36 size words, the first right after the 7-byte header.
    let blocks = 0;
    for (let off = 7; out.readUInt32LE(off) !== 0; off += 4 + (out.readUInt32LE(off) & 0x7fffffff)) blocks++;
    expect(blocks).toBe(36);
    const { decompressFrameSync } = await import('lz4-napi');
    expectSame(decompressFrameSync(out), input);
  });

  it('compressChunks: borrowed chunks (one buffer refilled each time) give the same frame as compress', async () => {
    const codec = await loadCodec('lz4');
    // Random data first makes stored (incompressible) blocks, which must be copies: their pooled
    // buffers are refilled by the blocks after them.
    const input = Buffer.concat([(await import('node:crypto')).randomBytes(700_001), walLike(3 << 20, 5), walLike(123_457, 6)]);
    for (const chunkSize of [7, 65_536, 256 << 10, 300_000]) {
      // tiny chunks only over a prefix that crosses two block boundaries: the point is the boundaries
      const data = chunkSize === 7 ? input.subarray(0, 600_000) : input;
      const buf = Buffer.alloc(chunkSize);
      const pieces = await codec.compressChunks!((function* () {
        for (let at = 0; at < data.length; at += chunkSize) {
          const n = data.copy(buf, 0, at, Math.min(data.length, at + chunkSize));
          yield buf.subarray(0, n);
        }
      })());
      const frame = Buffer.concat(pieces);
      expect(frame.equals(await codec.compress(data))).toBe(true);
      const { decompressFrameSync } = await import('lz4-napi');
      expectSame(decompressFrameSync(frame), data);
    }
    expect(Buffer.concat(await codec.compressChunks!([])).equals(await codec.compress(Buffer.alloc(0)))).toBe(true);
  });

  it('reads lz4-napi frames and concatenated/skippable frames', async () => {
    const { compressFrameSync } = await import('lz4-napi');
    const codec = await loadCodec('lz4');
    const a = walLike(200_000, 1);
    const b = walLike(300_000, 2);
    const skippable = Buffer.from([0x5a, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 1, 2, 3]);
    const joined = Buffer.concat([compressFrameSync(a), skippable, await codec.compress(b)]);
    expectSame(await codec.decompress(joined), Buffer.concat([a, b]));
    expectSame(await collect(joined, codec.decompressStream()), Buffer.concat([a, b]));
  });

  it('detects a content checksum mismatch', async () => {
    const codec = await loadCodec('lz4');
    const out = Buffer.from(await codec.compress(Buffer.alloc(1000, 7)));
    out[out.length - 1]! ^= 1;
    await expect(codec.decompress(out)).rejects.toThrow(/checksum/);
    await expect(collect(out, codec.decompressStream())).rejects.toThrow(/checksum/);
  });

  it('decodes a frame of several blocks in order, and stops at a corrupt block', async () => {
    const codec = await loadCodec('lz4');
    // Several blocks, each different.
    const plain = Buffer.concat([walLike(4 << 20, 1), walLike(4 << 20, 2), walLike(4 << 20, 3), walLike(1000, 4)]);
    const packed = Buffer.from(await codec.compress(plain));
    expectSame(await codec.decompress(packed), plain);
    expectSame(await collect(packed, codec.decompressStream()), plain);
    // Corrupt the second block's data: the block size word of block 1 is at offset 7.
    const second = 7 + 4 + packed.readUInt32LE(7) + 4 + 100;
    packed[second]! ^= 0xff;
    await expect(codec.decompress(packed)).rejects.toThrow(/corrupt|checksum/);
    await expect(collect(packed, codec.decompressStream())).rejects.toThrow(/corrupt|checksum/);
  });
});

describe('bzip2 JavaScript encoder', () => {
  it('splices several blocks into one stream that the bzip2 program and the JS decoder read', async () => {
    const { Bzip2JsEncoder } = await import('../../src/compression/bzip2-js.js');
    const enc = new Bzip2JsEncoder(1);
    expect(enc.pieceSize).toBe(79_984);
    const js = await loadCodec('bzip2', { bzip2: 'js' });
    const input = Buffer.concat([walLike(200_000, 8), Buffer.alloc(50_000, 0x41), Buffer.from('aaaabbbbccccdddd'.repeat(4000))]);
    const packed = await js.compress(input, 1);
    expect(packed.subarray(0, 4).toString('latin1')).toBe('BZh1');
    expectSame(await js.decompress(packed), input);
    if (findBzip2Program(process.env.PATH ?? '')) {
      const cli = await loadCodec('bzip2', { bzip2: 'cli' });
      expectSame(await cli.decompress(packed), input);
    }
  });
});

describe('loadCodec', () => {
  it('looks for the bzip2 program only on the search path src/cli gives (never in process.env itself)', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'bc-bzip2-path-')), 'bin');
    mkdirSync(dir);
    symlinkSync(findBzip2Program(process.env.PATH ?? '') ?? '/usr/bin/bzip2', join(dir, 'bzip2'));
    try {
      setProgramSearchPath('');
      await expect(loadCodec('bzip2', { bzip2: 'cli' })).rejects.toThrow(/no bzip2 program/);
      setProgramSearchPath(`/nonexistent${delimiter}${dir}`);
      const cli = await loadCodec('bzip2', { bzip2: 'cli' });
      expectSame(await cli.decompress(await cli.compress(Buffer.from('path'), 1)), Buffer.from('path'));
    } finally {
      setProgramSearchPath(process.env.PATH);
      rmSync(join(dir, '..'), { recursive: true, force: true });
    }
  });
  it('returns a codec for every name and rejects unknown ones', async () => {
    for (const name of CODEC_NAMES) expect((await loadCodec(name)).name).toBe(name);
    await expect(loadCodec('brotli' as CodecName)).rejects.toThrow(/unknown codec/);
  });
});
