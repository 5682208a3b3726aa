// A compressing Transform that cuts its input into fixed-size blocks and compresses several blocks at
// once in the thread pool, passing results on in input order: a base backup's compression then uses
// more than one core, and reading the next block overlaps compressing this one. The LZ4 frame writer
// and the parallel gzip writer are built on it.
import { Transform, type TransformCallback } from 'node:stream';
import { bytesMoved } from '../reclaim.js';

export abstract class BlockCompressStream extends Transform {
  private started = false;
  /**
   * The block being filled: input is copied in once, with no per-block concatenation. Always
   * copied, never compressed in place: once a write's callback has run, its chunk is no longer
   * referenced, so a writer may refill that buffer (the tar writer's read pool, compressThrough).
   */
  private block: Buffer | undefined;
  private filled = 0;
  /** Blocks being compressed, oldest first; their buffers return to `spare` once passed on. */
  private readonly inFlight: { result: Promise<Buffer[]>; buffer?: Buffer; settled: boolean; size: number }[] = [];
  /**
   * Input taken in whose compressed form has not been passed on yet. A writer that decides on
   * sizes (part rotation, docs/format.md#tar-parts) adds it to the bytes it has seen, so the lag of the blocks in
   * flight never lets a part grow far beyond its limit, whatever the timing.
   */
  pendingBytes = 0;
  private readonly spare: Buffer[] = [];

  constructor(
    private readonly blockSize: number,
    private readonly maxInFlight: number,
  ) {
    // Room for a whole compressed block on the output side. The input side keeps the default small
    // buffer: the writer then waits for each chunk to be taken in (compression itself runs ahead,
    // maxInFlight blocks), so the compressed size it checks for part rotation stays current.
    super({ readableHighWaterMark: blockSize });
  }

  /** Bytes before the first block. */
  protected abstract header(): Buffer;
  /** Every input chunk, in order, before it is cut into blocks (checksums). */
  protected abstract observe(chunk: Buffer): void;
  /**
   * Compress one block. Called in input order; `data` stays unchanged until the promise settles,
   * but when `reused` is set its buffer is refilled afterwards, so it must not be returned as is.
   */
  protected abstract encode(data: Buffer, reused: boolean): Promise<Buffer[]>;
  /** Bytes after the last block. */
  protected abstract trailer(): Buffer;

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.consume(chunk).then(() => done(), done);
  }

  override _flush(done: TransformCallback): void {
    this.finish().then(() => done(), done);
  }

  private start(): void {
    if (!this.started) {
      this.push(this.header());
      this.started = true;
    }
  }

  /** Start compressing a block; blocks already done are passed on at once. */
  private async submit(data: Buffer, buffer?: Buffer): Promise<void> {
    const entry = { result: this.encode(data, buffer !== undefined), buffer, settled: false, size: data.length };
    entry.result.then(() => (entry.settled = true), () => (entry.settled = true));
    this.inFlight.push(entry);
    while (this.inFlight.length >= this.maxInFlight || this.inFlight[0]?.settled) await this.pushOldest();
  }

  private async pushOldest(): Promise<void> {
    const { result, buffer, size } = this.inFlight[0]!;
    const out = await result;
    this.inFlight.shift();
    this.pendingBytes -= size;
    if (buffer) this.spare.push(buffer);
    for (const b of out) this.push(b);
  }

  private async consume(chunk: Buffer): Promise<void> {
    this.start();
    while (this.inFlight[0]?.settled) await this.pushOldest();
    this.observe(chunk);
    this.pendingBytes += chunk.length;
    let input = chunk;
    while (input.length > 0) {
      const block = (this.block ??= this.spare.pop() ?? Buffer.allocUnsafe(this.blockSize));
      const n = input.copy(block, this.filled, 0, Math.min(input.length, this.blockSize - this.filled));
      this.filled += n;
      input = input.subarray(n);
      if (this.filled === this.blockSize) {
        this.block = undefined;
        this.filled = 0;
        await this.submit(block, block);
      }
    }
  }

  private async finish(): Promise<void> {
    this.start();
    if (this.block && this.filled > 0) await this.submit(this.block.subarray(0, this.filled), this.block);
    this.block = undefined;
    this.filled = 0;
    while (this.inFlight.length > 0) await this.pushOldest();
    this.push(this.trailer());
  }
}

/**
 * Compress borrowed chunks (each valid only until the next is read) through a compressing stream
 * that is done with a chunk once its write callback has run (BlockCompressStream, the zstd
 * stream); returns the output pieces.
 */
export async function compressThrough(stream: Transform, chunks: Iterable<Buffer>): Promise<Buffer[]> {
  const pieces: Buffer[] = [];
  stream.on('data', (b: Buffer) => pieces.push(b));
  const ended = new Promise<void>((resolve, reject) => stream.once('end', resolve).once('error', reject));
  for (const chunk of chunks) {
    await new Promise<void>((resolve, reject) => stream.write(chunk, (e) => (e ? reject(e) : resolve())));
    bytesMoved(chunk.length);
  }
  stream.end();
  await ended;
  return pieces;
}
