// XXH32 (seed 0 by default), needed by the LZ4 frame format for its header checksum byte and for
// the optional block/content checksums. Incremental: update() any number of times, then digest().
const P1 = 0x9e3779b1;
const P2 = 0x85ebca77;
const P3 = 0xc2b2ae3d;
const P4 = 0x27d4eb2f;
const P5 = 0x165667b1;

/** Typed-array word reads are only little-endian on a little-endian host. */
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

const rotl = (x: number, r: number) => ((x << r) | (x >>> (32 - r))) >>> 0;

export class Xxh32 {
  private v1: number;
  private v2: number;
  private v3: number;
  private v4: number;
  private total = 0;
  private readonly tail = Buffer.alloc(16);
  private tailLen = 0;

  constructor(private readonly seed = 0) {
    this.v1 = (seed + P1 + P2) >>> 0;
    this.v2 = (seed + P2) >>> 0;
    this.v3 = seed >>> 0;
    this.v4 = (seed - P1) >>> 0;
  }

  update(data: Uint8Array): this {
    const buf = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    this.total += buf.length;
    let off = 0;
    if (this.tailLen > 0) {
      const take = Math.min(16 - this.tailLen, buf.length);
      buf.copy(this.tail, this.tailLen, 0, take);
      this.tailLen += take;
      off = take;
      if (this.tailLen < 16) return this;
      this.stripes(this.tail, 0, 16);
      this.tailLen = 0;
    }
    const end = off + ((buf.length - off) & ~15);
    if (end > off) this.stripes(buf, off, end);
    if (end < buf.length) {
      buf.copy(this.tail, 0, end);
      this.tailLen = buf.length - end;
    }
    return this;
  }

  /** The 16-byte stripe loop, kept in int32 arithmetic (the hot path of LZ4 checksums). */
  private stripes(b: Buffer, start: number, end: number): void {
    let v1 = this.v1 | 0;
    let v2 = this.v2 | 0;
    let v3 = this.v3 | 0;
    let v4 = this.v4 | 0;
    const at = b.byteOffset + start;
    if (LITTLE_ENDIAN && (at & 3) === 0) {
      // aligned: read little-endian words through a typed-array view (x86/ARM are little-endian)
      const w = new Int32Array(b.buffer, at, (end - start) >> 2);
      for (let i = 0; i < w.length; i += 4) {
        v1 = v1 + Math.imul(w[i]!, P2) | 0;
        v1 = Math.imul((v1 << 13) | (v1 >>> 19), P1);
        v2 = v2 + Math.imul(w[i + 1]!, P2) | 0;
        v2 = Math.imul((v2 << 13) | (v2 >>> 19), P1);
        v3 = v3 + Math.imul(w[i + 2]!, P2) | 0;
        v3 = Math.imul((v3 << 13) | (v3 >>> 19), P1);
        v4 = v4 + Math.imul(w[i + 3]!, P2) | 0;
        v4 = Math.imul((v4 << 13) | (v4 >>> 19), P1);
      }
    } else {
      for (let p = start; p < end; p += 16) {
        v1 = v1 + Math.imul(b[p]! | (b[p + 1]! << 8) | (b[p + 2]! << 16) | (b[p + 3]! << 24), P2) | 0;
        v1 = Math.imul((v1 << 13) | (v1 >>> 19), P1);
        v2 = v2 + Math.imul(b[p + 4]! | (b[p + 5]! << 8) | (b[p + 6]! << 16) | (b[p + 7]! << 24), P2) | 0;
        v2 = Math.imul((v2 << 13) | (v2 >>> 19), P1);
        v3 = v3 + Math.imul(b[p + 8]! | (b[p + 9]! << 8) | (b[p + 10]! << 16) | (b[p + 11]! << 24), P2) | 0;
        v3 = Math.imul((v3 << 13) | (v3 >>> 19), P1);
        v4 = v4 + Math.imul(b[p + 12]! | (b[p + 13]! << 8) | (b[p + 14]! << 16) | (b[p + 15]! << 24), P2) | 0;
        v4 = Math.imul((v4 << 13) | (v4 >>> 19), P1);
      }
    }
    this.v1 = v1 >>> 0;
    this.v2 = v2 >>> 0;
    this.v3 = v3 >>> 0;
    this.v4 = v4 >>> 0;
  }

  digest(): number {
    let h =
      this.total >= 16
        ? (rotl(this.v1, 1) + rotl(this.v2, 7) + rotl(this.v3, 12) + rotl(this.v4, 18)) >>> 0
        : (this.seed + P5) >>> 0;
    h = (h + this.total) >>> 0; // the length is taken modulo 2^32
    let p = 0;
    for (; p + 4 <= this.tailLen; p += 4) {
      h = Math.imul(rotl((h + Math.imul(this.tail.readUInt32LE(p), P3)) >>> 0, 17), P4) >>> 0;
    }
    for (; p < this.tailLen; p++) {
      h = Math.imul(rotl((h + Math.imul(this.tail[p]!, P5)) >>> 0, 11), P1) >>> 0;
    }
    h = Math.imul(h ^ (h >>> 15), P2) >>> 0;
    h = Math.imul(h ^ (h >>> 13), P3) >>> 0;
    return (h ^ (h >>> 16)) >>> 0;
  }
}

export function xxh32(data: Uint8Array, seed = 0): number {
  return new Xxh32(seed).update(data).digest();
}
