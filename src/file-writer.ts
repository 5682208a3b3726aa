// Writing streamed data to a file in 1 MiB pieces. Data arrives in socket-sized chunks (~64 KiB), and
// one write(2) per chunk cost more here than copying the chunks into a reused buffer first: a GET of
// 320 MB from moto written to a file took (medians of 5) 1.9 s coalesced, 2.0 s with a writeSync per
// chunk, 2.3 s through fs.createWriteStream, 1.6 s not written at all. Used by the restore
// extractor, the file store and wal-restore.
// writeCoalesced is the same through the thread pool, for the file store's WAL puts (see there).
import { writeSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';

export const WRITE_BUFFER_SIZE = 1 << 20;
/**
 * A chunk at least this large is written from where it lies (after what is buffered): copying it
 * would cost more than the one extra write(2) (a restore reading 1 MiB pieces; the prefetcher's
 * decoded lz4 blocks, whose write then reads bytes still in the cache: docs/benchmarks-history.md,
 * "Fifth pass").
 */
const DIRECT_WRITE = 256 * 1024;

export class CoalescingFileWriter {
  private filled = 0;

  constructor(
    private readonly fd: number,
    /** Reused by the caller once flush() has run; its length is the write size. */
    readonly buffer: Buffer = Buffer.allocUnsafeSlow(WRITE_BUFFER_SIZE),
  ) {}

  write(chunk: Buffer): void {
    if (chunk.length >= DIRECT_WRITE || (this.filled === 0 && chunk.length >= this.buffer.length)) {
      if (this.filled > 0) this.flush();
      this.writeAll(chunk, chunk.length);
      return;
    }
    for (let at = 0; at < chunk.length; ) {
      const n = chunk.copy(this.buffer, this.filled, at);
      this.filled += n;
      at += n;
      if (this.filled === this.buffer.length) this.flush();
    }
  }

  /** Writes what is buffered (call before closing the file). */
  flush(): void {
    this.writeAll(this.buffer, this.filled);
    this.filled = 0;
  }

  private writeAll(data: Buffer, length: number): void {
    for (let off = 0; off < length; ) off += writeSync(this.fd, data, off, length - off);
  }
}

/**
 * Write `chunks` to `fh` in pieces of `buffer.length` bytes, each write(2) on the thread pool. A
 * chunk is copied or written before the next one is read, so borrowed chunks are safe.
 */
export async function writeCoalesced(fh: FileHandle, chunks: Iterable<Buffer>, buffer: Buffer = Buffer.allocUnsafeSlow(WRITE_BUFFER_SIZE)): Promise<void> {
  let filled = 0;
  const writeAll = async (data: Buffer, length: number) => {
    for (let off = 0; off < length; ) off += (await fh.write(data, off, length - off)).bytesWritten;
  };
  for (const chunk of chunks) {
    if (filled === 0 && chunk.length >= buffer.length) {
      await writeAll(chunk, chunk.length);
      continue;
    }
    for (let at = 0; at < chunk.length; ) {
      const n = chunk.copy(buffer, filled, at);
      filled += n;
      at += n;
      if (filled === buffer.length) {
        await writeAll(buffer, filled);
        filled = 0;
      }
    }
  }
  await writeAll(buffer, filled);
}
