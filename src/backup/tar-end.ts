// Where a tar ends (docs/format.md#tar-end), for restore and verify alike. tar-stream does not insist
// on the two zero blocks that end a tar, and where a header is due it skips a zero block and reads
// on, whereas tarfile (barman) and GNU tar stop at the first one. So a part cut at a member boundary
// would read as complete, and members placed after the end (a second tar appended, a second codec
// frame) would be restored although no tar tool lists them. This tap sees the bytes tar-stream
// parses; the caller tells it where each member lies.
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { bytesMoved } from '../reclaim.js';

const BLOCK = 512;
/** The two zero blocks that end every tar (Python's tarfile and our producer write them). */
const END_OF_ARCHIVE = 2 * BLOCK;
/** Zero runs are compared this much at a time: one call instead of one per block. */
const ZERO_SPAN = Buffer.alloc(64 * 1024);

export class TarEndTap extends Transform {
  /** Tar bytes passed on. */
  bytes = 0;
  /** How many of the last bytes are zeros (counted up to END_OF_ARCHIVE per chunk). */
  private trailingZeros = 0;
  /**
   * Runs [start, end) of all-zero blocks not known to lie inside a member's data. The tap runs
   * ahead of the parser only by what the pipeline buffers, so this stays short.
   */
  private zeroRuns: [number, number][] = [];
  /** Blocks before this offset are a known member's data. */
  private dataEnd = 0;
  /** Whether the block being read is all zeros so far. */
  private blockZero = true;

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    // A known member's data is skipped (it is most of the bytes, and zero pages are common there);
    // dataEnd is a block boundary, so a block starts where the skip ends.
    let pos = 0;
    if (this.dataEnd > this.bytes) {
      pos = Math.min(chunk.length, this.dataEnd - this.bytes);
      this.blockZero = true;
    }
    while (pos < chunk.length) {
      const inBlock = (this.bytes + pos) % BLOCK;
      if (inBlock === 0 && chunk[pos] === 0) {
        const span = Math.min(chunk.length - pos, ZERO_SPAN.length) & ~(BLOCK - 1);
        if (span > 0 && ZERO_SPAN.compare(chunk, pos, pos + span, 0, span) === 0) {
          this.noteZeros(this.bytes + pos, span);
          pos += span;
          continue;
        }
      }
      const take = Math.min(BLOCK - inBlock, chunk.length - pos);
      if (this.blockZero) this.blockZero = chunk[pos] === 0 && ZERO_SPAN.compare(chunk, pos, pos + take, 0, take) === 0;
      pos += take;
      if (inBlock + take === BLOCK) {
        if (this.blockZero) this.noteZeros(this.bytes + pos - BLOCK, BLOCK);
        this.blockZero = true;
      }
    }
    const n = Math.min(chunk.length, END_OF_ARCHIVE);
    let z = 0;
    while (z < n && chunk[chunk.length - 1 - z] === 0) z++;
    this.trailingZeros = z === chunk.length ? this.trailingZeros + z : z;
    this.bytes += chunk.length;
    // Every tar byte, headers included, counts towards the next collection (src/reclaim.ts): a run
    // of small files moves little content but many reads, each dead once its members are parsed.
    bytesMoved(chunk.length);
    cb(null, chunk);
  }

  private noteZeros(start: number, length: number): void {
    const from = Math.max(start, this.dataEnd);
    const to = start + length;
    if (from >= to) return;
    const last = this.zeroRuns.at(-1);
    if (last && last[1] === from) last[1] = to;
    else this.zeroRuns.push([from, to]);
  }

  /**
   * A member whose header starts at `offset` (tar-stream's entry stream `offset`) and holds `size`
   * bytes of data. Returns the refusal when a zero block came where a header was due before it.
   */
  private member(offset: number, size: number): string | undefined {
    const end = offset + BLOCK + Math.ceil(size / BLOCK) * BLOCK;
    const early = this.zeroRuns.find(([start]) => start < offset)?.[0];
    this.zeroRuns = this.zeroRuns.filter(([, e]) => e > end).map(([s, e]) => [Math.max(s, end), e]);
    this.dataEnd = Math.max(this.dataEnd, end);
    return early === undefined ? undefined : `a member follows the end of the tar (a zero block at offset ${early})`;
  }

  /**
   * For tar-stream's 'entry' listener, before the member is used: a member that follows the end of
   * the tar (member()) ends the entry with an error, `earlier` if the caller already holds one (the
   * first error is the one reported), which is returned; undefined lets the caller go on.
   */
  refuseLate(header: { size?: number }, entry: unknown, next: (error?: Error) => void, earlier?: Error): Error | undefined {
    const late = this.member((entry as { offset: number }).offset, header.size ?? 0);
    if (late === undefined) return undefined;
    const error = earlier ?? new Error(late);
    (entry as Readable).on('error', () => undefined); // next() destroys it with the same error
    next(error);
    return error;
  }

  /** After the last byte: the refusal when the tar does not end with its two zero blocks. */
  unended(): string | undefined {
    return this.trailingZeros < END_OF_ARCHIVE ? 'the tar has no end-of-archive marker (truncated?)' : undefined;
  }
}
