// zstd frames (magic 28 b5 2f fd) through @cloudpss/zstd, a Node-API binding of the reference
// libzstd whose compiled binaries ship inside the npm package (Linux x64/arm64 glibc and musl,
// macOS, Windows), so installing needs no C toolchain and no download. One frame per
// object/stream: barman reads WALs with ZstdDecompressor().stream_reader(), which stops at the end
// of the first frame. Frames carry the content checksum (XXH64, 4 bytes): without it most
// single-byte flips decode to wrong bytes silently, and every reader (python-zstandard, zstd(1),
// libzstd here) verifies it. The binding cannot ask libzstd for it, so zstd-frame.ts adds it, and
// tells a cut input from a complete one, which the binding does not either.
import { Transform, type TransformCallback } from 'node:stream';
import { _NapiBindings as binding } from '@cloudpss/zstd/napi';
import { compressThrough } from './block-stream.js';
import { asFormatError, emptyInput, type Classifier } from './checked-stream.js';
import { FrameSealer, FrameWalkError, FrameWalker } from './zstd-frame.js';
import { CompressionFormatError, LEVELS, type Codec } from './types.js';

const DEFAULT_LEVEL = LEVELS.zstd.medium;

const classify: Classifier = (m) => (/checksum/i.test(m) ? 'checksum' : /truncated|incomplete|ends inside|no frame at all/i.test(m) ? 'truncated' : 'corrupt');

const formatError = (err: unknown): CompressionFormatError =>
  err instanceof FrameWalkError
    ? new CompressionFormatError('zstd', err.message, err.truncated ? 'truncated' : 'corrupt')
    : asFormatError('zstd', err, classify);

/**
 * Compresses into one checksummed frame. libzstd copies each input chunk into its window during
 * the synchronous write, so a borrowed chunk may be refilled once its write callback has run.
 */
class CompressStream extends Transform {
  private readonly ctx: InstanceType<typeof binding.Compressor>;
  private readonly sealer = new FrameSealer();
  private readonly out = (piece: Buffer) => void this.push(this.sealer.output(piece));

  constructor(level: number) {
    super();
    this.ctx = new binding.Compressor(level);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    try {
      this.sealer.content(chunk);
      this.ctx.data(chunk, this.out);
      done();
    } catch (err) {
      done(err as Error);
    }
  }

  override _flush(done: TransformCallback): void {
    try {
      this.ctx.end(this.out);
      this.push(this.sealer.trailer());
      done();
    } catch (err) {
      done(err as Error);
    }
  }
}

/** Decodes frames (libzstd verifies each checksum) and refuses input that stops inside one. */
class DecompressStream extends Transform {
  private readonly ctx = new binding.Decompressor();
  private readonly walker = new FrameWalker();
  private seen = 0;
  private readonly out = (piece: Buffer) => void this.push(piece);

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    if (chunk.length === 0) return done();
    this.seen += chunk.length;
    try {
      this.walker.update(chunk);
      this.ctx.data(chunk, this.out);
      done();
    } catch (err) {
      done(formatError(err));
    }
  }

  override _flush(done: TransformCallback): void {
    if (this.seen === 0) return done(emptyInput('zstd'));
    try {
      this.walker.end(); // first: a cut input is 'truncated', whatever libzstd says about it
      this.ctx.end(this.out);
      done();
    } catch (err) {
      done(formatError(err));
    }
  }
}

function compressWhole(buf: Buffer, level: number): Buffer {
  const sealer = new FrameSealer();
  const ctx = new binding.Compressor(level);
  const pieces: Buffer[] = [];
  const emit = (piece: Buffer) => void pieces.push(sealer.output(piece));
  sealer.content(buf);
  if (buf.length > 0) ctx.data(buf, emit);
  ctx.end(emit);
  pieces.push(sealer.trailer());
  return Buffer.concat(pieces);
}

function decompressWhole(buf: Buffer): Buffer {
  if (buf.length === 0) throw emptyInput('zstd');
  const ctx = new binding.Decompressor();
  const walker = new FrameWalker();
  const pieces: Buffer[] = [];
  const emit = (piece: Buffer) => void pieces.push(piece);
  try {
    walker.update(buf);
    ctx.data(buf, emit);
    walker.end();
    ctx.end(emit);
  } catch (err) {
    throw formatError(err);
  }
  return Buffer.concat(pieces);
}

export function createZstdCodec(): Codec {
  return {
    name: 'zstd',
    compress: async (buf, level = DEFAULT_LEVEL) => compressWhole(buf, level),
    compressChunks: (chunks, level = DEFAULT_LEVEL) => compressThrough(new CompressStream(level), chunks),
    decompress: async (buf) => decompressWhole(buf),
    compressStream: (level = DEFAULT_LEVEL): Transform => new CompressStream(level),
    decompressStream: (): Transform => new DecompressStream(),
  };
}
