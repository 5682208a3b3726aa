// LZ4 *frame* format (magic 04 22 4d 18), the format of Python's lz4.frame that barman reads.
// lz4-napi (lz4_flex, Rust) does the block compression; it only offers whole-buffer frame
// functions, so the frame container is assembled and parsed here to stream with bounded memory:
//
//   frame  = magic:u32le | FLG | BD | [content size:u64le] | [dict id:u32le] | HC | block* | 0:u32le | [xxh32:u32le]
//   block  = size:u32le (high bit = stored uncompressed) | data | [xxh32(data):u32le]
//   FLG    = version 01 | B.Indep | B.Checksum | C.Size | C.Checksum | 0 | DictID
//   BD     = block max size id << 4 (4: 64 KiB, 5: 256 KiB, 6: 1 MiB, 7: 4 MiB)
//   HC     = (xxh32(FLG..last descriptor byte) >> 8) & 0xff
//
// The writer emits ONE frame of independent 256 KiB blocks with a content checksum. The reader
// accepts what lz4(1) and python-lz4 write: linked or independent blocks, any block size,
// optional checksums (verified), content size, concatenated frames and skippable frames.
// lz4-napi has no compression levels (lz4_flex implements the fast mode only), so barman's
// level is accepted and ignored; the output stays a standard frame every reader decodes.
import { napiBinding } from './native.js';
import { BlockCompressStream, compressThrough } from './block-stream.js';
import { ByteQueue } from './byte-queue.js';
import { CompressionFormatError, type Codec, type CompressionProblem } from './types.js';
import { emptyInput } from './checked-stream.js';
import { Xxh32, xxh32 } from './xxhash.js';
import { DecoderTransform } from './decoder-stream.js';

// CommonJS, loaded with require: an import would have Node lex its source for export names, which
// cost several MB of a WAL call's peak RSS (see snappy.ts).
const { compress: lz4Block, compressSync: lz4BlockSync, uncompressSync: lz4BlockDecode } =
  napiBinding<typeof import('lz4-napi')>('lz4-napi', (arch) => `@antoniomuso/lz4-napi-linux-${arch}-gnu`);

const LZ4_FRAME_MAGIC = 0x184d2204;
const SKIPPABLE_MASK = 0xfffffff0;
const SKIPPABLE_MAGIC = 0x184d2a50;
const LEGACY_MAGIC = 0x184c2102;
const BLOCK_SIZES: Record<number, number> = { 4: 64 << 10, 5: 256 << 10, 6: 1 << 20, 7: 4 << 20 };
const WINDOW = 64 << 10; // linked blocks may refer this far back

/**
 * Block size id of the frames we write (5 = 256 KiB). LZ4 matches reach back 64 KiB only, so
 * larger blocks barely compress better (+0.4% here); 4 MiB blocks made lz4-napi (mimalloc, buffers
 * freed on another thread than they were allocated on) hold ~330 MB of RSS on a 1.5 GiB stream and
 * compress at half the speed (258 vs 501 MB/s, measured on this machine).
 */
const WRITE_BLOCK_ID = 5;
const WRITE_BLOCK_SIZE = BLOCK_SIZES[WRITE_BLOCK_ID]!;

function fail(message: string, problem: CompressionProblem = 'corrupt'): never {
  throw new CompressionFormatError('lz4', message, problem);
}

function frameHeader(): Buffer {
  const h = Buffer.alloc(7);
  h.writeUInt32LE(LZ4_FRAME_MAGIC, 0);
  h[4] = 0x40 | 0x20 | 0x04; // version 01, independent blocks, content checksum
  h[5] = WRITE_BLOCK_ID << 4;
  h[6] = (xxh32(h.subarray(4, 6)) >>> 8) & 0xff;
  return h;
}

/** One frame block: its size word, then the LZ4 data (or the input, stored, when that is smaller). */
function frameBlock(data: Buffer, packed: Buffer, reused: boolean): [Buffer, Buffer] {
  const raw = packed.subarray(4); // lz4-napi's output: 4-byte little-endian length prefix + raw LZ4 block
  const stored = raw.length >= data.length;
  // A stored block is the caller's data: copied when the caller reuses that buffer.
  const body = stored ? (reused ? Buffer.from(data) : data) : raw;
  const head = Buffer.allocUnsafe(4);
  head.writeUInt32LE((body.length | (stored ? 0x80000000 : 0)) >>> 0, 0);
  return [head, body];
}

/** A block compressed in the thread pool. */
async function encodeBlock(data: Buffer, reused = false): Promise<[Buffer, Buffer]> {
  return frameBlock(data, await lz4Block(data), reused);
}

function frameTrailer(hash: Xxh32): Buffer {
  const t = Buffer.alloc(8);
  t.writeUInt32LE(hash.digest(), 4); // end mark (0) + content checksum
  return t;
}

/**
 * LZ4 frame writer: one frame of independent 256 KiB blocks. In the thread pool, eight at once (2
 * MiB), for a WAL segment's latency; `inline`, one at a time on this thread, for a base backup's
 * long stream. lz4-napi allocates each output (257 KiB, whatever the block compresses to) with
 * mimalloc on the thread that compresses, and it is freed on this one when collected: each pool
 * thread then kept its own freed pages, 17-24 MB of RSS over a 1.5 GB backup (measured at
 * pgbench scale 100), where outputs made and freed on one thread reuse the same few pages.
 */
class Lz4CompressStream extends BlockCompressStream {
  private readonly hash = new Xxh32();

  constructor(private readonly inline = false) {
    super(WRITE_BLOCK_SIZE, inline ? 1 : 8);
  }

  protected header(): Buffer {
    return frameHeader();
  }

  protected observe(chunk: Buffer): void {
    this.hash.update(chunk);
  }

  protected encode(data: Buffer, reused: boolean): Promise<Buffer[]> {
    return this.inline ? Promise.resolve(frameBlock(data, lz4BlockSync(data), reused)) : encodeBlock(data, reused);
  }

  protected trailer(): Buffer {
    return frameTrailer(this.hash);
  }
}

type State =
  | { kind: 'magic' }
  | { kind: 'skip'; remaining: number }
  | {
      kind: 'blocks';
      linked: boolean;
      blockChecksum: boolean;
      contentChecksum: boolean;
      blockMax: number;
      contentSize: bigint | null;
      produced: bigint;
      hash: Xxh32 | null;
      history: Buffer | null; // last WINDOW bytes of output, for linked blocks
    };

/** Incremental frame parser; returns decoded data as blocks complete. */
class FrameDecoder {
  private readonly q = new ByteQueue();
  private state: State = { kind: 'magic' };

  write(input: Buffer): Buffer[] {
    this.q.push(input);
    const out: Buffer[] = [];
    const q = this.q;
    for (;;) {
      const st = this.state;
      if (st.kind === 'skip') {
        const n = Math.min(st.remaining, q.length);
        q.skip(n);
        st.remaining -= n;
        if (st.remaining > 0) break;
        this.state = { kind: 'magic' };
      } else if (st.kind === 'magic') {
        if (q.length < 4) break;
        const magic = q.peek(4).readUInt32LE(0);
        if ((magic & SKIPPABLE_MASK) >>> 0 === SKIPPABLE_MAGIC) {
          if (q.length < 8) break;
          const size = q.peek(8).readUInt32LE(4);
          q.skip(8);
          this.state = { kind: 'skip', remaining: size };
          continue;
        }
        if (magic === LEGACY_MAGIC) fail('legacy LZ4 format (lz4 -l) is not supported');
        if (magic !== LZ4_FRAME_MAGIC) fail(`not an LZ4 frame (magic 0x${magic.toString(16).padStart(8, '0')})`);
        if (q.length < 7) break;
        const flg = q.peek(6)[4]!;
        const headerLen = 7 + (flg & 0x08 ? 8 : 0) + (flg & 0x01 ? 4 : 0);
        if (q.length < headerLen) break;
        const header = q.take(headerLen);
        this.state = this.parseHeader(header);
      } else {
        if (q.length < 4) break;
        const word = q.peek(4).readUInt32LE(0);
        if (word === 0) {
          const need = 4 + (st.contentChecksum ? 4 : 0);
          if (q.length < need) break;
          const end = q.take(need);
          if (st.hash && end.readUInt32LE(4) !== st.hash.digest()) fail('content checksum mismatch', 'checksum');
          if (st.contentSize !== null && st.contentSize !== st.produced) fail('content size mismatch');
          this.state = { kind: 'magic' };
          continue;
        }
        const stored = (word & 0x80000000) !== 0;
        const size = word & 0x7fffffff;
        if (size > st.blockMax) fail(`block of ${size} bytes exceeds the frame's ${st.blockMax}-byte maximum`);
        const need = 4 + size + (st.blockChecksum ? 4 : 0);
        if (q.length < need) break;
        q.skip(4);
        let data: Buffer;
        if (stored) {
          data = q.take(size);
          if (st.blockChecksum && q.take(4).readUInt32LE(0) !== xxh32(data)) fail('block checksum mismatch', 'checksum');
        } else {
          // Into the reused input buffer behind the size prefix lz4-napi expects: one copy, no garbage.
          const input = this.scratch(4 + size);
          q.copyTo(input, 4, size);
          q.skip(size);
          if (st.blockChecksum && q.take(4).readUInt32LE(0) !== xxh32(input.subarray(4))) fail('block checksum mismatch', 'checksum');
          data = this.decodeBlock(input, st.blockMax, st.linked ? st.history : null);
        }
        if (st.linked) st.history = lastWindow(st.history, data);
        st.hash?.update(data);
        st.produced += BigInt(data.length);
        if (data.length > 0) out.push(data);
      }
    }
    return out;
  }

  private parseHeader(h: Buffer): State {
    const flg = h[4]!;
    const bd = h[5]!;
    if (flg >> 6 !== 1) fail(`unsupported frame version ${flg >> 6}`);
    if (flg & 0x02 || bd & 0x8f) fail('reserved header bits set');
    if (flg & 0x01) fail('frames that need a dictionary are not supported');
    const blockMax = BLOCK_SIZES[(bd >> 4) & 7];
    if (blockMax === undefined) fail(`invalid block size id ${(bd >> 4) & 7}`);
    if (((xxh32(h.subarray(4, h.length - 1)) >>> 8) & 0xff) !== h[h.length - 1]) fail('header checksum mismatch', 'checksum');
    const contentChecksum = (flg & 0x04) !== 0;
    return {
      kind: 'blocks',
      linked: (flg & 0x20) === 0,
      blockChecksum: (flg & 0x10) !== 0,
      contentChecksum,
      blockMax,
      contentSize: flg & 0x08 ? h.readBigUInt64LE(6) : null,
      produced: 0n,
      hash: contentChecksum ? new Xxh32() : null,
      history: null,
    };
  }

  private input: Buffer | undefined;

  /** A buffer of `n` bytes reused from block to block (lz4-napi decodes synchronously and keeps nothing). */
  private scratch(n: number): Buffer {
    if (!this.input || this.input.length < n) this.input = Buffer.allocUnsafe(Math.max(n, 4 + WRITE_BLOCK_SIZE));
    return this.input.subarray(0, n);
  }

  /** `input`: 4 free bytes, then the block. */
  private decodeBlock(input: Buffer, blockMax: number, history: Buffer | null): Buffer {
    // lz4-napi decodes "size-prepended" blocks; the prefix is an upper bound of the output size.
    input.writeUInt32LE(blockMax, 0);
    try {
      return history ? lz4BlockDecode(input, history) : lz4BlockDecode(input);
    } catch (err) {
      fail(`corrupt block (${(err as Error).message})`);
    }
  }

  end(): void {
    if (this.state.kind !== 'magic' || this.q.length > 0) fail('the frame ends before its end mark and checksum', 'truncated');
  }
}

function lastWindow(history: Buffer | null, data: Buffer): Buffer {
  if (data.length >= WINDOW) return Buffer.from(data.subarray(data.length - WINDOW));
  const prev = history ?? Buffer.alloc(0);
  const keep = Math.min(prev.length, WINDOW - data.length);
  return Buffer.concat([prev.subarray(prev.length - keep), data]);
}

async function lz4CompressFrame(buf: Buffer): Promise<Buffer> {
  const parts: Buffer[] = [frameHeader()];
  const blocks: Promise<[Buffer, Buffer]>[] = [];
  for (let off = 0; off < buf.length; off += WRITE_BLOCK_SIZE) {
    blocks.push(encodeBlock(buf.subarray(off, off + WRITE_BLOCK_SIZE)));
  }
  for (const [head, body] of await Promise.all(blocks)) parts.push(head, body);
  parts.push(frameTrailer(new Xxh32().update(buf)));
  return Buffer.concat(parts);
}

function lz4DecompressSync(buf: Buffer): Buffer {
  if (buf.length === 0) throw emptyInput('lz4');
  const decoder = new FrameDecoder();
  const out = decoder.write(buf);
  decoder.end();
  return Buffer.concat(out);
}

export function createLz4Codec(): Codec {
  return {
    name: 'lz4',
    compress: (buf) => lz4CompressFrame(buf),
    compressChunks: (chunks) => compressThrough(new Lz4CompressStream(), chunks),
    decompress: async (buf) => lz4DecompressSync(buf),
    compressStream: () => new Lz4CompressStream(true),
    decompressStream: () => new DecoderTransform('lz4', new FrameDecoder()),
  };
}
