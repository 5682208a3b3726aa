// Argument value validators, argparse `type=` style: each returns the parsed value or throws an
// ArgumentTypeError whose message the parser prints as `argument <flag>: <message>` (exit 3).

export class ArgumentTypeError extends Error {}

const SIZE_UNITS = 'KMGTPEZY';

/**
 * The one size parser (docs/format.md#sizes): plain integer = bytes; `<n>[K|M|G|…]B` uses base 1024 and
 * `<n>[K|M|G|…]iB` base 1000 (barman's inversion of SI, kept for compatibility). Fractions allowed,
 * case-insensitive, values below 1 rejected.
 */
export function parseSize(raw: string): number {
  const m = /^\s*(\d+(?:\.\d*)?|\.\d+)\s*(?:([kmgtpezy]?)(i?)b)?\s*$/i.exec(raw);
  if (!m) throw new ArgumentTypeError(`${JSON.stringify(raw)} is not a valid size`);
  const [, number, prefix = '', binary = ''] = m;
  const base = binary ? 1000 : 1024;
  const exponent = prefix ? SIZE_UNITS.indexOf(prefix.toUpperCase()) + 1 : 0;
  const bytes = Math.trunc(Number(number) * base ** exponent);
  if (!(bytes >= 1)) throw new ArgumentTypeError(`Negative or zero value '${raw}' is not a valid size`);
  return bytes;
}

export function parseInteger(raw: string): number {
  if (!/^\s*[-+]?\d+\s*$/.test(raw)) throw new ArgumentTypeError(`invalid int value: '${raw}'`);
  return Number.parseInt(raw, 10);
}

export function parsePositiveInteger(raw: string): number {
  const n = parseInteger(raw);
  if (n < 1) throw new ArgumentTypeError(`'${raw}' is not a positive integer`);
  return n;
}

/**
 * The most segments `wal-restore --parallel` may ask for at once (docs/commands/wal-restore.md#prefetch):
 * each is a file in pg_wal's volume, and the window's names are computed up front, so a count
 * without a bound made the call hang and grow instead of failing.
 */
export const MAX_PREFETCH_SEGMENTS = 1024;

/** `--parallel`: a positive integer up to MAX_PREFETCH_SEGMENTS. */
export function parsePrefetchCount(raw: string): number {
  const n = parsePositiveInteger(raw);
  if (n > MAX_PREFETCH_SEGMENTS) throw new ArgumentTypeError(`'${raw}' is more than ${MAX_PREFETCH_SEGMENTS} segments`);
  return n;
}

/**
 * --heartbeat-interval: 1 s to a day, what parts.json's run record may hold (MAX_HEARTBEAT_SECONDS in
 * src/catalog/parts-list.ts, kept equal by test/unit/parts-list.test.ts; not imported, so that the
 * launcher does not load the catalog).
 */
export function parseHeartbeatSeconds(raw: string): number {
  const n = parsePositiveInteger(raw);
  if (n > 86_400) throw new ArgumentTypeError(`'${raw}' is more than 86400 seconds`);
  return n;
}

export function parseNonNegativeInteger(raw: string): number {
  const n = parseInteger(raw);
  if (n < 0) throw new ArgumentTypeError(`'${raw}' is not a non-negative integer`);
  return n;
}

/**
 * `--target-tli` (barman's check_tli): `current`, `latest` or a decimal timeline ≥ 1 (Python's int():
 * surrounding blanks and a sign allowed, no hex). Returned as a string, normalized when numeric.
 */
export function parseTargetTimeline(raw: string): string {
  if (raw === 'current' || raw === 'latest') return raw;
  if (!/^\s*[-+]?\d+\s*$/.test(raw)) throw new ArgumentTypeError(`'${raw}' is not a valid input`);
  const n = Number.parseInt(raw, 10);
  if (n < 1) throw new ArgumentTypeError(`'${raw}' is not a valid positive integer`);
  return String(n);
}

/**
 * `--compression-level`: low, medium, high or an integer (clamped later per codec,
 * docs/format.md#compression). Python's int has no bound, so barman clamps any number of digits;
 * past the safe integers (Infinity at ~309 digits) every value clamps alike, so one stands for them.
 */
export function parseCompressionLevel(raw: string): 'low' | 'medium' | 'high' | number {
  if (raw === 'low' || raw === 'medium' || raw === 'high') return raw;
  if (/^-?\d+$/.test(raw)) return Math.max(-Number.MAX_SAFE_INTEGER, Math.min(Number.MAX_SAFE_INTEGER, Number(raw)));
  throw new ArgumentTypeError(`invalid value: '${raw}' (low, medium, high or an integer)`);
}
