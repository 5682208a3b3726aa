// Shared codec types (kept apart from index.ts so codec modules can import them without a cycle).
import type { Transform } from 'node:stream';

export type CodecName = 'gzip' | 'bzip2' | 'xz' | 'snappy' | 'zstd' | 'lz4';

/** barman's symbolic levels (`--compression-level low|medium|high`) or an integer. */
export type LevelSpec = 'low' | 'medium' | 'high' | number;

/**
 * One compression format. `level` is an already resolved, clamped integer (see resolveLevel);
 * `undefined` means barman's "medium" default for that codec. Streams keep memory bounded
 * (a fixed number of blocks in flight) and honour back-pressure in both directions.
 */
export interface Codec {
  readonly name: CodecName;
  compress(buf: Buffer, level?: number): Promise<Buffer>;
  /**
   * Compress borrowed chunks (each valid only until the next is read) into output pieces, without
   * holding the input whole; codecs without it compress the whole input with compress().
   */
  compressChunks?(chunks: Iterable<Buffer>, level?: number): Promise<Buffer[]>;
  decompress(buf: Buffer): Promise<Buffer>;
  compressStream(level?: number): Transform;
  decompressStream(): Transform;
}

/** Raised for malformed or truncated compressed input. */
export class CompressionFormatError extends Error {
  constructor(
    readonly codec: CodecName,
    message: string,
  ) {
    super(`${codec}: ${message}`);
    this.name = 'CompressionFormatError';
  }
}
