// Codec registry (docs/format.md#compression): name ↔ WAL suffix ↔ level mapping, and lazy loading so that the WAL
// hot path only ever imports the one compression library it was asked for.
import { LEVELS, type Codec, type CodecName, type LevelSpec } from './types.js';

export type { Codec, CodecName, CompressionProblem, LevelSpec } from './types.js';
export { CompressionFormatError } from './types.js';

export const CODEC_NAMES: readonly CodecName[] = ['gzip', 'bzip2', 'xz', 'snappy', 'zstd', 'lz4'];

/** Suffix appended to a WAL object name (docs/format.md#layout). Backup tars use `.tar` + the same suffix. */
export const WAL_SUFFIX: Record<CodecName, string> = {
  gzip: '.gz',
  bzip2: '.bz2',
  xz: '.xz',
  snappy: '.snappy',
  zstd: '.zst',
  lz4: '.lz4',
};

/**
 * Extensions of a backup archive (`data.tar.gz`, `16384_0001.tar`, …): `tar` plus `tar` + each codec's
 * suffix, barman's four and those our barman-cloud-backup can write (docs/format.md#layout).
 */
export const TAR_EXTENSIONS: ReadonlySet<string> = new Set(['tar', ...Object.values(WAL_SUFFIX).map((s) => `tar${s}`)]);

const BY_SUFFIX = new Map<string, CodecName>(
  (Object.entries(WAL_SUFFIX) as [CodecName, string][]).map(([name, sfx]) => [sfx, name]),
);

/**
 * Compression of an object, decided by its trailing suffix only (barman never sniffs magic
 * bytes, docs/format.md#layout). `…0001.gz` → gzip, `data.tar.bz2` → bzip2, `…0001` → undefined.
 */
export function codecFromSuffix(name: string): CodecName | undefined {
  const dot = name.lastIndexOf('.');
  if (dot < 0) return undefined;
  return BY_SUFFIX.get(name.slice(dot));
}

/**
 * barman's `--compression-level` semantics: low/medium/high map per codec, an absent level means
 * medium, integers are clamped silently to the codec's range, snappy ignores levels (undefined).
 */
export function resolveLevel(codec: CodecName, level?: LevelSpec): number | undefined {
  if (codec === 'snappy') return undefined;
  const t = LEVELS[codec];
  if (level === undefined || level === 'medium') return t.medium;
  if (level === 'low') return t.low;
  if (level === 'high') return t.high;
  if (!Number.isInteger(level)) throw new RangeError(`invalid compression level: ${String(level)}`);
  return Math.min(t.max, Math.max(t.min, level));
}

export interface LoadCodecOptions {
  /**
   * bzip2 only: 'cli' pipes through the system `bzip2` program (native speed), 'js' uses the
   * pure-JavaScript fallback, 'auto' (default) takes the program when it is on the search path
   * (setProgramSearchPath).
   */
  bzip2?: 'auto' | 'cli' | 'js';
}

/** Where a codec that runs a program (bzip2) looks for it; empty until src/cli passes its PATH. */
let programSearchPath = '';

/** The PATH value in which codecs look for their programs (src/cli gives its environment's). */
export function setProgramSearchPath(path: string | undefined): void {
  programSearchPath = path ?? '';
}

/** Imports only the module (and library) of the requested codec. */
export async function loadCodec(name: CodecName, options: LoadCodecOptions = {}): Promise<Codec> {
  switch (name) {
    case 'gzip':
      return (await import('./gzip.js')).gzipCodec;
    case 'bzip2':
      return (await import('./bzip2.js')).createBzip2Codec(options.bzip2 ?? 'auto', programSearchPath);
    case 'xz':
      return (await import('./xz.js')).createXzCodec();
    case 'snappy':
      return (await import('./snappy.js')).createSnappyCodec();
    case 'zstd':
      return (await import('./zstd.js')).createZstdCodec();
    case 'lz4':
      return (await import('./lz4.js')).createLz4Codec();
    default:
      throw new RangeError(`unknown codec: ${String(name)}`);
  }
}
