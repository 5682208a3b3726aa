// Pure-JavaScript bzip2, used only when no `bzip2` program is available (see bzip2.ts).
//
// Compression: compressjs can only compress a whole input at once, and concatenating its outputs
// would give a multi-stream file that Python's tarfile `r|bz2` (barman-cloud-restore) rejects. So
// the input is cut into pieces that are guaranteed to fit one bzip2 block, each piece is
// compressed on its own, and the single block of each result is spliced bit-exactly into ONE
// stream (the way parallel bzip2 compressors do):
//
//   stream = "BZh" level | block* | eos magic (48 bits 0x177245385090) | combined CRC (32) | pad
//   block  = block magic (48 bits 0x314159265359) | block CRC (32) | … (not byte aligned)
//   combined CRC = fold over blocks of rotl1(c) ^ blockCRC
//
// A piece of n bytes grows to at most 5n/4 bytes after bzip2's initial run-length step (a run of
// 4 equal bytes costs 5), so n = (level·100000 − 19)·4/5 always yields exactly one block.
//
// Decompression: unbzip2-stream (streaming, block by block), wrapped in a real Transform.
import { createRequire } from 'node:module';
import { Transform, type TransformCallback } from 'node:stream';
import { CompressionFormatError, type CompressionProblem } from './types.js';

const require = createRequire(import.meta.url);
type Bzip2Module = typeof import('compressjs/lib/Bzip2.js');
type Unbzip2 = typeof import('unbzip2-stream');

const EOS_HI = 0x177245;
const EOS_LO = 0x385090;
const BLOCK_HI = 0x314159;
const BLOCK_LO = 0x265359;

function readBits(src: Uint8Array, pos: number, count: number): number {
  let v = 0;
  for (let i = 0; i < count; i++, pos++) v = v * 2 + ((src[pos >>> 3]! >>> (7 - (pos & 7))) & 1);
  return v;
}

/** Accumulates a bit string and hands out the whole bytes completed so far. */
class BitWriter {
  private cur = 0; // pending bits, left aligned in a byte
  private n = 0; // number of pending bits (0..7)
  private out: number[] = [];

  bits(count: number, value: number): void {
    for (let i = count - 1; i >= 0; i--) {
      this.cur |= (Math.floor(value / 2 ** i) & 1) << (7 - this.n);
      if (++this.n === 8) {
        this.out.push(this.cur);
        this.cur = 0;
        this.n = 0;
      }
    }
  }

  /** Appends bits [start, end) of src, returning every completed byte (including earlier ones). */
  splice(src: Uint8Array, start: number, end: number): Buffer {
    const head = this.take();
    const bytes = (end - start) >>> 3;
    const body = Buffer.allocUnsafe(bytes);
    let pos = start;
    const n = this.n;
    let cur = this.cur;
    for (let o = 0; o < bytes; o++, pos += 8) {
      const i = pos >>> 3;
      const k = pos & 7;
      const byte = k === 0 ? src[i]! : ((src[i]! << k) | (src[i + 1]! >>> (8 - k))) & 0xff;
      body[o] = cur | (byte >>> n);
      cur = (byte << (8 - n)) & 0xff;
    }
    this.cur = cur;
    const rest = end - pos;
    if (rest > 0) this.bits(rest, readBits(src, pos, rest));
    return Buffer.concat([head, body, this.take()]);
  }

  take(): Buffer {
    const b = Buffer.from(this.out);
    this.out = [];
    return b;
  }

  /** Pads the last byte with zero bits. */
  finish(): Buffer {
    if (this.n > 0) this.bits(8 - this.n, 0);
    return this.take();
  }
}

export class Bzip2JsEncoder {
  private readonly bz: Bzip2Module = require('compressjs/lib/Bzip2.js');
  private readonly writer = new BitWriter();
  private crc = 0;
  private started = false;
  readonly pieceSize: number;

  constructor(private readonly level: number) {
    this.pieceSize = Math.floor(((level * 100000 - 19) * 4) / 5);
  }

  private header(): Buffer {
    if (this.started) return Buffer.alloc(0);
    this.started = true;
    return Buffer.from(`BZh${this.level}`, 'latin1');
  }

  /** Compresses one piece (at most pieceSize bytes) into the stream; returns completed bytes. */
  block(piece: Uint8Array): Buffer {
    const head = this.header();
    if (piece.length === 0) return head;
    if (piece.length > this.pieceSize) throw new RangeError('bzip2 piece larger than one block');
    const z = this.bz.compressFile(piece, undefined, this.level);
    // One-block stream: "BZhN" | block magic | block CRC | … | eos magic | CRC | pad.
    if (readBits(z, 32, 24) !== BLOCK_HI || readBits(z, 56, 24) !== BLOCK_LO) {
      throw new Error('bzip2 (js): unexpected encoder output');
    }
    const blockCrc = readBits(z, 80, 32);
    const total = z.length * 8;
    let end = -1;
    for (let pad = 0; pad < 8 && end < 0; pad++) {
      const e = total - 80 - pad;
      if (readBits(z, e, 24) === EOS_HI && readBits(z, e + 24, 24) === EOS_LO && readBits(z, e + 48, 32) === blockCrc) {
        end = e;
      }
    }
    if (end < 0) throw new Error('bzip2 (js): encoder produced more than one block');
    this.crc = (((this.crc << 1) | (this.crc >>> 31)) ^ blockCrc) >>> 0;
    return Buffer.concat([head, this.writer.splice(z, 32, end)]);
  }

  end(): Buffer {
    const head = this.header();
    this.writer.bits(24, EOS_HI);
    this.writer.bits(24, EOS_LO);
    this.writer.bits(32, this.crc);
    return Buffer.concat([head, this.writer.finish()]);
  }
}

/** Whole-buffer compression with the JavaScript encoder (a single bzip2 stream). */
export function bzip2JsCompressSync(buf: Buffer, level: number): Buffer {
  const enc = new Bzip2JsEncoder(level);
  const parts: Buffer[] = [];
  for (let off = 0; off < buf.length; off += enc.pieceSize) parts.push(enc.block(buf.subarray(off, off + enc.pieceSize)));
  parts.push(enc.end());
  return Buffer.concat(parts);
}

export class Bzip2JsCompressStream extends Transform {
  private readonly enc: Bzip2JsEncoder;
  private carry: Buffer[] = [];
  private carryLen = 0;

  constructor(level: number) {
    super();
    this.enc = new Bzip2JsEncoder(level);
  }

  override _transform(chunk: Buffer, _e: BufferEncoding, done: TransformCallback): void {
    try {
      const size = this.enc.pieceSize;
      let input = chunk;
      while (this.carryLen + input.length >= size) {
        const need = size - this.carryLen;
        const piece = Buffer.concat([...this.carry, input.subarray(0, need)]);
        this.carry = [];
        this.carryLen = 0;
        input = input.subarray(need);
        const out = this.enc.block(piece);
        if (out.length > 0) this.push(out);
      }
      if (input.length > 0) {
        this.carry.push(input);
        this.carryLen += input.length;
      }
      done();
    } catch (err) {
      done(err as Error);
    }
  }

  override _flush(done: TransformCallback): void {
    try {
      if (this.carryLen > 0) this.push(this.enc.block(Buffer.concat(this.carry)));
      this.carry = [];
      this.push(this.enc.end());
      done();
    } catch (err) {
      done(err as Error);
    }
  }
}

/** unbzip2-stream is an old-style `through` stream; this gives it Transform semantics. */
export class Bzip2JsDecompressStream extends Transform {
  private readonly inner: ReturnType<Unbzip2>;
  private failed: Error | null = null;
  private finished = false;
  private onEnd: ((err?: Error | null) => void) | null = null;

  constructor(private readonly classify: (message: string) => CompressionProblem = () => 'corrupt') {
    super();
    const unbzip2 = require('unbzip2-stream') as Unbzip2;
    this.inner = unbzip2();
    this.inner.on('data', (d: Buffer) => this.push(d));
    this.inner.on('error', (err: Error) => {
      // unbzip2-stream reads past the end of its input when the stream is cut (a TypeError).
      this.failed = err instanceof TypeError
        ? new CompressionFormatError('bzip2', 'compressed data ends unexpectedly', 'truncated')
        : new CompressionFormatError('bzip2', err.message, this.classify(err.message));
      this.onEnd?.(this.failed);
    });
    this.inner.on('end', () => {
      this.finished = true;
      this.onEnd?.(this.failed);
    });
  }

  override _transform(chunk: Buffer, _e: BufferEncoding, done: TransformCallback): void {
    if (this.failed) return done(this.failed);
    this.inner.write(chunk); // decodes synchronously, emitting 'data' for each finished block
    done(this.failed);
  }

  override _flush(done: TransformCallback): void {
    if (this.failed) return done(this.failed);
    let called = false;
    const finish = (err?: Error | null) => {
      if (called) return;
      called = true;
      done(err ?? null);
    };
    this.onEnd = finish;
    this.inner.end();
    if (this.finished || this.failed) finish(this.failed);
  }
}
