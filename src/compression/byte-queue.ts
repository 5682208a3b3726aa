// A FIFO of buffers that hands out exact byte counts without re-copying everything it holds:
// the frame parsers (snappy, lz4) wait for "n more bytes" while the input arrives in arbitrary
// pieces, and concatenating on every write would be quadratic for multi-MiB blocks.

export class ByteQueue {
  private chunks: Buffer[] = [];
  private head = 0; // offset already consumed in chunks[0]
  length = 0;

  push(buf: Buffer): void {
    if (buf.length === 0) return;
    this.chunks.push(buf);
    this.length += buf.length;
  }

  /** The first `n` bytes (n <= length), copied only when they span several chunks. */
  peek(n: number): Buffer {
    if (n > this.length) throw new RangeError(`ByteQueue.peek(${n}) with ${this.length} bytes`);
    const first = this.chunks[0];
    if (first !== undefined && first.length - this.head >= n) return first.subarray(this.head, this.head + n);
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    let offset = this.head;
    for (const chunk of this.chunks) {
      const take = Math.min(chunk.length - offset, n - filled);
      chunk.copy(out, filled, offset, offset + take);
      filled += take;
      offset = 0;
      if (filled === n) break;
    }
    return out;
  }

  /** Copies the first `n` bytes (n <= length) into `out` at `offset`, without removing them. */
  copyTo(out: Buffer, offset: number, n: number): void {
    if (n > this.length) throw new RangeError(`ByteQueue.copyTo(${n}) with ${this.length} bytes`);
    let filled = 0;
    let from = this.head;
    for (const chunk of this.chunks) {
      if (filled === n) break;
      const take = Math.min(chunk.length - from, n - filled);
      chunk.copy(out, offset + filled, from, from + take);
      filled += take;
      from = 0;
    }
  }

  /** Drops `n` bytes from the front. */
  skip(n: number): void {
    if (n > this.length) throw new RangeError(`ByteQueue.skip(${n}) with ${this.length} bytes`);
    this.length -= n;
    while (n > 0) {
      const first = this.chunks[0]!;
      const avail = first.length - this.head;
      if (avail > n) {
        this.head += n;
        return;
      }
      n -= avail;
      this.chunks.shift();
      this.head = 0;
    }
  }

  /** Removes and returns the first `n` bytes. */
  take(n: number): Buffer {
    const out = this.peek(n);
    this.skip(n);
    return out;
  }
}
