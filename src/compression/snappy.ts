// Snappy *framing format* (docs/format.md#compression; the format of python-snappy's StreamCompressor that barman uses
// for WALs and `.tar.snappy`). The raw block codec comes from the `snappy` package; the framing
// (stream identifier, typed chunks of at most 64 KiB of data, masked CRC-32C) is written here.
//
//   chunk  = type:u8 | length:u24le (bytes after this 4-byte header) | body
//   0xff   stream identifier, body "sNaPpY" (first chunk; may reappear when streams are concatenated)
//   0x00   compressed data:   masked_crc32c(uncompressed):u32le | raw snappy block
//   0x01   uncompressed data: masked_crc32c(data):u32le | data
//   0x02-0x7f reserved, unskippable (error); 0x80-0xfe skippable (0xfe = padding)
//
// The framing has no end marker, so a stream cut exactly between two chunks is a valid, shorter
// stream: only a cut inside a chunk is detectable here. WAL restore catches the other case by the
// segment's size (src/wal/restore.ts).
import { napiBinding } from './native.js';
import { ByteQueue } from './byte-queue.js';
import { CompressionFormatError, type Codec, type CompressionProblem } from './types.js';
import { emptyInput } from './checked-stream.js';
import { BlockCompressStream, compressThrough } from './block-stream.js';
import { DecoderTransform } from './decoder-stream.js';

// Both packages are CommonJS: loaded with require, not import, because importing CommonJS from an ES
// module has Node lex its source for export names, which here cost ~10 MB of peak RSS (the lexer
// gets optimized) against a WAL call's 64 MB budget (measured on Node 20).
const { crc32c } = napiBinding<typeof import('@node-rs/crc32')>('@node-rs/crc32', (arch) => `@node-rs/crc32-linux-${arch}-gnu`);
const { compressSync, uncompressSync } = napiBinding<typeof import('snappy')>('snappy', (arch) => `@napi-rs/snappy-linux-${arch}-gnu`);

const SNAPPY_STREAM_IDENTIFIER = Buffer.from([0xff, 0x06, 0x00, 0x00, 0x73, 0x4e, 0x61, 0x50, 0x70, 0x59]);
/** Maximum uncompressed bytes in one data chunk. */
const SNAPPY_CHUNK_MAX = 65536;
/** python-snappy stores a chunk uncompressed unless compression saves at least 12.5 %. */
const MIN_SAVING = 0.125;
/** snappy's MaxCompressedLength(65536) = 32 + n + n/6. */
const MAX_COMPRESSED_BODY = 4 + 32 + SNAPPY_CHUNK_MAX + Math.floor(SNAPPY_CHUNK_MAX / 6);

/**
 * Results copied into memory V8 allocates. By default the library hands out external buffers whose
 * size V8 does not count, so the garbage collector never hurries to free them: 20,000 compressed
 * 64 KiB chunks held 2.5 GB of RSS and took 53 s; copied, 70 MB and 2.4 s (measured here).
 */
const COPY_OUTPUT = { copyOutputData: true } as const;

/** CRC-32C masked as the framing format requires, so that CRCs of CRCs stay distinctive. */
export function maskedCrc32c(data: Uint8Array): number {
  const crc = crc32c(data) >>> 0;
  return ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

function fail(message: string, problem: CompressionProblem = 'corrupt'): never {
  throw new CompressionFormatError('snappy', message, problem);
}

/** Frames one piece of at most SNAPPY_CHUNK_MAX bytes: its 8-byte header, then its body. */
function encodeChunk(piece: Buffer): [Buffer, Buffer] {
  const crc = maskedCrc32c(piece);
  const packed = compressSync(piece, COPY_OUTPUT);
  const useCompressed = packed.length < piece.length * (1 - MIN_SAVING);
  const body = useCompressed ? packed : piece;
  const header = Buffer.allocUnsafe(8);
  header[0] = useCompressed ? 0x00 : 0x01;
  header.writeUIntLE(body.length + 4, 1, 3);
  header.writeUInt32LE(crc, 4);
  // Not joined here: the caller's one Buffer.concat (or the stream) takes both.
  return [header, useCompressed ? body : Buffer.from(body)];
}

/** Length announced by a raw snappy block (its leading varint), or -1 when malformed. */
function rawLength(block: Buffer): number {
  let value = 0;
  for (let i = 0, shift = 0; i < 5 && i < block.length; i++, shift += 7) {
    const b = block[i]!;
    value += (b & 0x7f) * 2 ** shift;
    if ((b & 0x80) === 0) return value;
  }
  return -1;
}

/** Incremental parser of a framed stream; returns decoded data chunks as they complete. */
class FrameDecoder {
  private readonly queue = new ByteQueue();
  private sawIdentifier = false;

  write(input: Buffer): Buffer[] {
    this.queue.push(input);
    const out: Buffer[] = [];
    const q = this.queue;
    while (q.length >= 4) {
      const head = q.peek(4);
      const type = head[0]!;
      const length = head.readUIntLE(1, 3);
      if (!this.sawIdentifier && type !== 0xff) fail('stream missing snappy identifier');
      if ((type === 0x00 && length > MAX_COMPRESSED_BODY) || (type === 0x01 && length > SNAPPY_CHUNK_MAX + 4)) {
        fail(`chunk of type ${type} too long (${length} bytes)`);
      }
      if (type >= 0x02 && type <= 0x7f) fail(`reserved unskippable chunk type 0x${type.toString(16)}`);
      if (q.length < 4 + length) break;
      q.skip(4);
      const body = q.take(length);
      if (type === 0xff) {
        if (!body.equals(SNAPPY_STREAM_IDENTIFIER.subarray(4))) fail('bad stream identifier');
        this.sawIdentifier = true;
      } else if (type === 0x00 || type === 0x01) {
        if (length < 4) fail('data chunk shorter than its checksum');
        const expected = body.readUInt32LE(0);
        let data: Buffer;
        if (type === 0x00) {
          const raw = body.subarray(4);
          const n = rawLength(raw);
          if (n < 0 || n > SNAPPY_CHUNK_MAX) fail('compressed chunk announces an invalid length');
          try {
            data = uncompressSync(raw, { asBuffer: true, ...COPY_OUTPUT }) as Buffer;
          } catch (err) {
            fail(`corrupt compressed chunk (${(err as Error).message})`);
          }
          if (data.length !== n) fail('compressed chunk length mismatch');
        } else {
          data = body.subarray(4);
        }
        if (maskedCrc32c(data) !== expected) fail('chunk checksum mismatch', 'checksum');
        if (data.length > 0) out.push(data);
      }
      // 0x80-0xfe: skippable, ignored.
    }
    return out;
  }

  end(): void {
    if (this.queue.length > 0) fail('the stream ends inside a chunk', 'truncated');
  }
}

/** Streaming framing: the stream identifier, then one chunk per 64 KiB of input (the last one shorter). */
class SnappyCompressStream extends BlockCompressStream {
  constructor() {
    super(SNAPPY_CHUNK_MAX, 1);
  }

  protected header(): Buffer {
    return SNAPPY_STREAM_IDENTIFIER;
  }

  protected observe(): void {}

  protected encode(data: Buffer): Promise<Buffer[]> {
    // encodeChunk never returns `data` itself, so a reused block buffer is safe.
    return Promise.resolve(encodeChunk(data));
  }

  protected trailer(): Buffer {
    return Buffer.alloc(0);
  }
}

/** Whole-buffer framing: identifier + one chunk per 64 KiB (an empty input gives the identifier only). */
function snappyFrameSync(buf: Buffer): Buffer {
  const parts: Buffer[] = [SNAPPY_STREAM_IDENTIFIER];
  for (let off = 0; off < buf.length; off += SNAPPY_CHUNK_MAX) {
    parts.push(...encodeChunk(buf.subarray(off, off + SNAPPY_CHUNK_MAX)));
  }
  return Buffer.concat(parts);
}

function snappyUnframeSync(buf: Buffer): Buffer {
  if (buf.length === 0) throw emptyInput('snappy');
  const decoder = new FrameDecoder();
  const out = decoder.write(buf);
  decoder.end();
  return Buffer.concat(out);
}

export function createSnappyCodec(): Codec {
  return {
    name: 'snappy',
    compress: async (buf) => snappyFrameSync(buf),
    compressChunks: (chunks) => compressThrough(new SnappyCompressStream(), chunks),
    decompress: async (buf) => snappyUnframeSync(buf),
    compressStream: () => new SnappyCompressStream(),
    decompressStream: () => new DecoderTransform('snappy', new FrameDecoder()),
  };
}
