// The zstd frame container (RFC 8878 §3.1), walked without decoding:
//
//   frame     = magic fd2fb528:u32le | FHD | [window descriptor] | [dict id] | [content size] | block* | [checksum:u32le]
//   FHD       = content size flag:2 | single segment:1 | unused:1 | reserved:1 | checksum flag:1 | dict id flag:2
//   block     = header:u24le (last:1, type:2, size:21) | body (raw: size bytes, RLE: 1 byte, compressed: size bytes)
//   skippable = magic 184d2a5?:u32le | size:u32le | size bytes
//
// Two jobs that the binding we use does not do: it ends a stream without complaint wherever the
// input stops (mid-block or before the checksum, measured), so the walker tells a complete input
// from a cut one; and libzstd's streaming API here cannot ask for the content checksum, so
// FrameSealer sets the FHD flag and appends the low 32 bits of XXH64(content) itself. libzstd
// still verifies that checksum when decoding.
import { Xxh64 } from './xxhash.js';

const ZSTD_MAGIC = 0xfd2fb528;
const SKIPPABLE_MASK = 0xfffffff0;
const SKIPPABLE_MAGIC = 0x184d2a50;
const CHECKSUM_FLAG = 0x04;
const FHD_OFFSET = 4;

/** Why a walk stopped: the caller turns these into CompressionFormatErrors. */
export class FrameWalkError extends Error {
  constructor(
    message: string,
    readonly truncated: boolean,
  ) {
    super(message);
  }
}

type Step =
  | { kind: 'magic' }
  | { kind: 'fhd' }
  | { kind: 'header-rest' }
  | { kind: 'block-header' }
  | { kind: 'skippable-size' }
  | { kind: 'skip'; then: 'block-header' | 'checksum' | 'magic' }
  | { kind: 'checksum' };

/**
 * Follows frame and block boundaries across chunks of any size. end() throws unless the input
 * stopped exactly after a complete frame (or skippable frame) and held at least one.
 */
export class FrameWalker {
  private step: Step = { kind: 'magic' };
  private need = 4; // bytes still wanted by a fixed-size step, or to skip
  private readonly held = Buffer.alloc(16);
  private heldLen = 0;
  private lastBlock = false;
  private hasChecksum = false;
  private frames = 0;

  update(chunk: Uint8Array): void {
    let off = 0;
    while (off < chunk.length) {
      const take = Math.min(this.need, chunk.length - off);
      if (this.step.kind === 'skip') {
        this.need -= take;
        off += take;
        if (this.need === 0) this.after(this.step.then);
        continue;
      }
      this.held.set(chunk.subarray(off, off + take), this.heldLen);
      this.heldLen += take;
      this.need -= take;
      off += take;
      if (this.need === 0) this.complete();
    }
  }

  end(): void {
    if (this.step.kind === 'magic' && this.heldLen === 0 && this.frames > 0) return;
    if (this.frames === 0 && this.step.kind === 'magic' && this.heldLen === 0) throw new FrameWalkError('no frame at all', true);
    throw new FrameWalkError(`input ends inside a frame (${this.step.kind === 'skip' ? `${this.need} bytes short` : `at the ${this.step.kind}`})`, true);
  }

  private expect(kind: Step['kind'], bytes: number): void {
    this.step = { kind } as Step;
    this.need = bytes;
    this.heldLen = 0;
  }

  private skip(bytes: number, then: 'block-header' | 'checksum' | 'magic'): void {
    this.heldLen = 0;
    if (bytes === 0) return this.after(then);
    this.step = { kind: 'skip', then };
    this.need = bytes;
  }

  private after(next: 'block-header' | 'checksum' | 'magic'): void {
    if (next === 'block-header') return this.expect('block-header', 3);
    if (next === 'checksum') return this.expect('checksum', 4);
    this.frames++;
    this.expect('magic', 4);
  }

  private complete(): void {
    const b = this.held;
    switch (this.step.kind) {
      case 'magic': {
        const magic = b.readUInt32LE(0);
        if (magic === ZSTD_MAGIC) return this.expect('fhd', 1);
        if (((magic & SKIPPABLE_MASK) >>> 0) === SKIPPABLE_MAGIC) return this.expect('skippable-size', 4);
        throw new FrameWalkError(`not a zstd frame (magic ${magic.toString(16).padStart(8, '0')})`, false);
      }
      case 'fhd': {
        const fhd = b[0]!;
        if (fhd & 0x08) throw new FrameWalkError('reserved bit set in the frame header', false);
        const fcsFlag = fhd >> 6;
        const single = (fhd >> 5) & 1;
        this.hasChecksum = (fhd & CHECKSUM_FLAG) !== 0;
        const rest = (single ? 0 : 1) + [0, 1, 2, 4][fhd & 3]! + [single, 2, 4, 8][fcsFlag]!;
        this.lastBlock = false;
        if (rest === 0) return this.expect('block-header', 3);
        return this.expect('header-rest', rest);
      }
      case 'header-rest':
        return this.expect('block-header', 3);
      case 'block-header': {
        const h = b[0]! | (b[1]! << 8) | (b[2]! << 16);
        this.lastBlock = (h & 1) === 1;
        const type = (h >> 1) & 3;
        if (type === 3) throw new FrameWalkError('reserved block type', false);
        const body = type === 1 ? 1 : h >>> 3;
        return this.skip(body, this.lastBlock ? (this.hasChecksum ? 'checksum' : 'magic') : 'block-header');
      }
      case 'checksum':
        return this.after('magic');
      case 'skippable-size':
        return this.skip(b.readUInt32LE(0), 'magic');
      case 'skip':
        return;
    }
  }
}

/**
 * Turns the output of a libzstd stream that wrote no content checksum into a frame that has one:
 * the checksum flag is set in the header as it passes, and trailer() gives the 4 bytes to append.
 * The flag changes no other header field's size or meaning, so the blocks stay valid as they are.
 */
export class FrameSealer {
  private readonly hash = new Xxh64();
  private seen = 0;
  private alreadyChecked = false;

  /** Every uncompressed byte, in order. */
  content(chunk: Uint8Array): void {
    this.hash.update(chunk);
  }

  /** Every compressed byte, in order; patches the header byte in place (the buffers are ours). */
  output(chunk: Buffer): Buffer {
    if (this.seen <= FHD_OFFSET && this.seen + chunk.length > FHD_OFFSET) {
      const at = FHD_OFFSET - this.seen;
      if (this.seen === 0 && chunk.length >= 4 && chunk.readUInt32LE(0) !== ZSTD_MAGIC) throw new Error('zstd compressor wrote no frame magic');
      this.alreadyChecked = (chunk[at]! & CHECKSUM_FLAG) !== 0;
      chunk[at]! |= CHECKSUM_FLAG;
    }
    this.seen += chunk.length;
    return chunk;
  }

  /** The content checksum to end the frame with (empty if the library already wrote one). */
  trailer(): Buffer {
    if (this.seen <= FHD_OFFSET) throw new Error('zstd compressor wrote no frame header');
    if (this.alreadyChecked) return Buffer.alloc(0);
    const out = Buffer.alloc(4);
    out.writeUInt32LE(Number(this.hash.digest() & 0xffffffffn));
    return out;
  }
}
