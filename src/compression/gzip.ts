// gzip (RFC 1952) through Node's zlib: no file name in the header; gunzip accepts concatenated
// members like Python's gzip module does.
//
// Compression uses every core, the way pigz does, and still writes ONE ordinary gzip member that
// every reader (Python's gzip and tarfile, gunzip) decodes: the input is cut into 1 MiB blocks,
// each deflated on its own in the thread pool with the previous 32 KiB of input as its dictionary
// and ended with a sync flush (so the raw deflate pieces join into one stream), then a final empty
// block, and the CRC-32 and length of the whole input.
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { availableParallelism } from 'node:os';
import type { Transform } from 'node:stream';
import { BlockCompressStream, compressThrough } from './block-stream.js';
import { CheckedDecompressStream, checkedDecompress, type Classifier } from './checked-stream.js';
import { LEVELS, type Codec } from './types.js';

const gunzip = promisify(zlib.gunzip);
const deflateRaw = promisify(zlib.deflateRaw) as (buf: Buffer, options: zlib.ZlibOptions) => Promise<Buffer>;
const DEFAULT_LEVEL = LEVELS.gzip.medium;
const STREAM_OPTIONS = { chunkSize: 256 << 10 };
const BLOCK_SIZE = 1 << 20;
const WINDOW = 32 << 10;
/** A final deflate block with no data: ends the stream after the sync-flushed pieces. */
const LAST_BLOCK = Buffer.from([0x03, 0x00]);
const IN_FLIGHT = Math.max(2, Math.min(4, availableParallelism()));

function header(level: number): Buffer {
  // magic, deflate, no flags, no mtime, XFL 2 = best / 4 = fastest, OS 3 = Unix (as Node's gzip)
  return Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, level >= 9 ? 2 : level === 1 ? 4 : 0, 3]);
}

function trailer(crc: number, length: number): Buffer {
  const t = Buffer.alloc(8);
  t.writeUInt32LE(crc >>> 0, 0);
  t.writeUInt32LE(length % 2 ** 32, 4);
  return t;
}

function deflatePiece(data: Buffer, dictionary: Buffer | undefined, level: number): Promise<Buffer> {
  return deflateRaw(data, {
    level,
    finishFlush: zlib.constants.Z_SYNC_FLUSH,
    ...(dictionary ? { dictionary } : {}),
  });
}

class ParallelGzipStream extends BlockCompressStream {
  private crc = 0;
  private length = 0;
  private dictionary: Buffer | undefined;

  constructor(private readonly level: number) {
    super(BLOCK_SIZE, IN_FLIGHT);
  }

  protected header(): Buffer {
    return header(this.level);
  }

  protected observe(chunk: Buffer): void {
    this.crc = zlib.crc32(chunk, this.crc);
    this.length += chunk.length;
  }

  protected async encode(data: Buffer, _reused: boolean): Promise<Buffer[]> {
    const dictionary = this.dictionary;
    // The next block's dictionary: a copy, since the block buffer is refilled later.
    this.dictionary = Buffer.from(data.subarray(Math.max(0, data.length - WINDOW)));
    return [await deflatePiece(data, dictionary, this.level)];
  }

  protected trailer(): Buffer {
    return Buffer.concat([LAST_BLOCK, trailer(this.crc, this.length)]);
  }
}

async function compress(buf: Buffer, level = DEFAULT_LEVEL): Promise<Buffer> {
  const pieces: Promise<Buffer>[] = [];
  // One piece at least: an empty input still needs its (empty) deflate piece.
  for (let off = 0; off === 0 || off < buf.length; off += BLOCK_SIZE) {
    const dictionary = off > 0 ? buf.subarray(Math.max(0, off - WINDOW), off) : undefined;
    pieces.push(deflatePiece(buf.subarray(off, off + BLOCK_SIZE), dictionary, level));
  }
  return Buffer.concat([header(level), ...(await Promise.all(pieces)), LAST_BLOCK, trailer(zlib.crc32(buf), buf.length)]);
}

// zlib.crc32 arrived in Node 20.15: older 20.x compress on one core with zlib's own gzip.
const parallel = typeof zlib.crc32 === 'function';
const gzip = promisify(zlib.gzip);

// zlib: a missing trailer or a cut deflate stream is Z_BUF_ERROR "unexpected end of file"; the
// trailer's CRC-32 and length catch altered data ("incorrect data/length check").
const classify: Classifier = (m) =>
  /unexpected end/i.test(m) ? 'truncated' : /incorrect (data|length) check/i.test(m) ? 'checksum' : 'corrupt';

export const gzipCodec: Codec = {
  name: 'gzip',
  compress: parallel ? compress : (buf, level = DEFAULT_LEVEL) => gzip(buf, { level }),
  ...(parallel ? { compressChunks: (chunks: Iterable<Buffer>, level = DEFAULT_LEVEL) => compressThrough(new ParallelGzipStream(level), chunks) } : {}),
  decompress: (buf) => checkedDecompress('gzip', buf, classify, (b) => gunzip(b)),
  compressStream: (level = DEFAULT_LEVEL): Transform =>
    parallel ? new ParallelGzipStream(level) : zlib.createGzip({ level, ...STREAM_OPTIONS }),
  decompressStream: () => new CheckedDecompressStream('gzip', zlib.createGunzip(STREAM_OPTIONS), classify),
};
