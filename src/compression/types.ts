// Shared codec types (kept apart from index.ts so codec modules can import them without a cycle).
import type { Transform } from 'node:stream';
import { GeneralError } from '../errors.js';

export type CodecName = 'gzip' | 'bzip2' | 'xz' | 'snappy' | 'zstd' | 'lz4';

/** barman's symbolic levels (`--compression-level low|medium|high`) or an integer. */
export type LevelSpec = 'low' | 'medium' | 'high' | number;

interface LevelTable {
  min: number;
  max: number;
  low: number;
  medium: number;
  high: number;
}

/**
 * barman/compression.py LEVEL_* constants (HEAD 3.17, docs/format.md#compression). Snappy has no
 * levels. The one table of them: resolveLevel (index.ts) maps `--compression-level` through it and
 * each codec takes its `medium` when given no level.
 */
export const LEVELS: Record<Exclude<CodecName, 'snappy'>, LevelTable> = {
  gzip: { min: 1, max: 9, low: 1, medium: 6, high: 9 },
  bzip2: { min: 1, max: 9, low: 1, medium: 5, high: 9 },
  xz: { min: 1, max: 9, low: 1, medium: 3, high: 5 },
  zstd: { min: -22, max: 22, low: 1, medium: 4, high: 9 },
  lz4: { min: 0, max: 16, low: 0, medium: 6, high: 10 },
};

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

/** What is wrong with a compressed input; decides the wording of the message. */
export type CompressionProblem = 'empty' | 'truncated' | 'checksum' | 'corrupt';

const PHRASE: Record<CompressionProblem, string> = {
  empty: 'is empty',
  truncated: 'is truncated',
  checksum: 'checksum mismatch',
  corrupt: 'is corrupt',
};

/**
 * Raised for empty, truncated or malformed compressed input. A GeneralError (exit 4): the data in
 * the store cannot be trusted, which is neither "not found" nor a usage error.
 */
export class CompressionFormatError extends GeneralError {
  constructor(
    readonly codec: CodecName,
    message: string,
    readonly problem: CompressionProblem = 'corrupt',
  ) {
    super(`${codec}: ${message}`);
  }

  /** One line naming the object: `<what> is truncated (zstd: …)`. */
  describe(what: string): string {
    const phrase = PHRASE[this.problem];
    return `${what}${phrase.startsWith('is ') ? ' ' : ': '}${phrase} (${this.message})`;
  }
}
