// Uniform failure reporting for decompressors built on libraries (zlib, liblzma, libzstd, the
// bzip2 program): empty input is refused, and whatever the library throws becomes one
// CompressionFormatError that says whether the input was truncated, failed a checksum or is
// otherwise corrupt. Without the empty check a zero-length object decodes to zero bytes with
// several libraries, and a restore would install an empty file as a success.
import { Transform, type TransformCallback } from 'node:stream';
import { CompressionFormatError, type CodecName, type CompressionProblem } from './types.js';

/** Maps a library's error message to what went wrong. */
export type Classifier = (message: string) => CompressionProblem;

export function asFormatError(codec: CodecName, err: unknown, classify: Classifier): CompressionFormatError {
  if (err instanceof CompressionFormatError) return err;
  const message = (err instanceof Error ? err.message : String(err)).replace(/\s+/g, ' ').trim();
  return new CompressionFormatError(codec, message, classify(message));
}

export function emptyInput(codec: CodecName): CompressionFormatError {
  return new CompressionFormatError(codec, 'no compressed data at all', 'empty');
}

/** Whole-buffer form of the same rules. */
export async function checkedDecompress(
  codec: CodecName,
  buf: Buffer,
  classify: Classifier,
  decode: (buf: Buffer) => Buffer | Promise<Buffer>,
): Promise<Buffer> {
  if (buf.length === 0) throw emptyInput(codec);
  try {
    return await decode(buf);
  } catch (err) {
    throw asFormatError(codec, err, classify);
  }
}

/**
 * Wraps a library's decompressing Transform. Back-pressure passes through: the inner stream is
 * paused while our readable side is full, and a write waits for the inner stream to drain.
 */
export class CheckedDecompressStream extends Transform {
  private seen = 0;
  private flushed: TransformCallback | null = null;
  private innerEnded = false;

  constructor(
    private readonly codec: CodecName,
    private readonly inner: Transform,
    classify: Classifier,
  ) {
    super();
    inner.on('data', (d: Buffer) => {
      if (!this.push(d)) inner.pause();
    });
    inner.on('error', (err) => this.destroy(asFormatError(codec, err, classify)));
    inner.on('end', () => {
      this.innerEnded = true;
      this.flushed?.();
    });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    if (chunk.length === 0) return done();
    this.seen += chunk.length;
    if (this.inner.write(chunk)) done();
    else this.inner.once('drain', () => done());
  }

  override _read(size: number): void {
    this.inner.resume();
    super._read(size);
  }

  override _flush(done: TransformCallback): void {
    if (this.seen === 0) return done(emptyInput(this.codec));
    if (this.innerEnded) {
      // zlib's gunzip ends at a member followed by zeros (padding, for it) before its input does;
      // waiting for an 'end' already past hung for ever. What it is still given, it checks first.
      this.inner.once('finish', () => done());
      this.inner.end();
      return;
    }
    this.flushed = done;
    this.inner.end();
  }

  override _destroy(err: Error | null, done: (error?: Error | null) => void): void {
    this.inner.destroy();
    done(err);
  }
}
