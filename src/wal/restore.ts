// Fetching WAL files (docs/format.md#wal-restore): barman's candidate rules, decompression by suffix, and an
// atomic write (temp file beside the target, rename) so that a killed run never leaves a truncated
// segment where PostgreSQL would read it; synced before the rename unless the target is
// PostgreSQL's own restore name, which it syncs itself (docs/format.md#restore-durability). Damaged objects (empty, truncated, failing
// their codec's checksum, a segment or .partial not starting with its own long page header, a segment
// shorter than that header states) are refused: exit 4.
import { basename } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Transform } from 'node:stream';
import { EncryptionKeyError, GeneralError, NotFoundError } from '../errors.js';
import { log } from '../log.js';
import { writeFileAtomic } from '../atomic-file.js';
import { CoalescingFileWriter } from '../file-writer.js';
import type { ServerLayout } from '../catalog/layout.js';
import type { ObjectStore } from '../storage/types.js';
import { CompressionFormatError, codecFromSuffix, loadCodec, WAL_SUFFIX, type CodecName } from '../compression/index.js';
import { isSegmentName, isValidSegmentSize, isWalName, parseSegmentName, segmentsPerLogId, walFileMaxBytes } from '../xlog.js';
import { syncedByPostgres, tempBeside } from './temp-files.js';
import { bytesMoved } from '../reclaim.js';
import { stripAgeSuffix, unencryptedRefused } from '../encryption/names.js';
import type { AgeIdentities } from '../encryption/age.js';

export interface WalCandidate {
  key: string;
  codec?: CodecName;
  /** Stored as an age file (`.age` after the codec suffix). */
  encrypted?: boolean;
  /** Size and last-modified time as listed (findWals): what tells the prefetcher that the object changed. */
  version?: string;
}

/** The WAL file name an object holds: `.age`, then one compression suffix, stripped. */
function plainWalKey(key: string): { plain: string; codec?: CodecName; encrypted: boolean } {
  const { name, encrypted } = stripAgeSuffix(key);
  const codec = codecFromSuffix(name);
  return { plain: codec ? name.slice(0, -WAL_SUFFIX[codec].length) : name, codec, encrypted };
}

/**
 * barman's choice among the objects whose key starts with the WAL file's key (docs/format.md#wal-restore), in key
 * order: the exact uncompressed key is remembered and the search goes on; the first other valid
 * name (one compression suffix stripped; .backup files skipped; .partial skipped with
 * --no-partial) wins at once. barman's stale-suffix quirk is not reproduced.
 */
export async function findWal(
  store: ObjectStore,
  layout: ServerLayout,
  walName: string,
  options: { noPartial?: boolean } = {},
): Promise<WalCandidate | null> {
  const key = layout.walKey(walName);
  const keys: string[] = [];
  for await (const entry of store.list(key, { delimiter: '/' })) if (entry.kind === 'object') keys.push(entry.key);
  return chooseWal(key, keys, options);
}

/** barman's choice for the WAL file stored under `key` among listed object keys, in key order (see findWal). */
function chooseWal(key: string, keys: Iterable<string>, options: { noPartial?: boolean }): WalCandidate | null {
  let candidate: WalCandidate | null = null;
  for (const k of keys) {
    if (!k.startsWith(key)) continue;
    if (k === key) {
      candidate = { key };
      continue;
    }
    const { plain, codec, encrypted } = plainWalKey(k);
    if (encrypted && !codec && plain === key) {
      // encrypted and uncompressed: ranks like the plain exact key (remembered, search goes on)
      candidate = { key: k, encrypted };
      continue;
    }
    const name = basename(plain);
    if (!isWalName(name)) {
      log.warning(`Unknown WAL file: ${k}`);
      continue;
    }
    if (name.endsWith('.backup')) continue;
    if (name.endsWith('.partial') && options.noPartial) continue;
    return { key: k, codec, encrypted };
  }
  return candidate;
}

/**
 * findWal for several WAL files with one LIST per directory (the keys' common prefix): what the
 * prefetcher asks for a window of consecutive segments. Files the listing does not hold map to null.
 */
export async function findWals(
  store: ObjectStore,
  layout: ServerLayout,
  walNames: string[],
  options: { noPartial?: boolean } = {},
): Promise<Map<string, WalCandidate | null>> {
  const byDir = new Map<string, string[]>();
  for (const n of walNames) byDir.set(layout.walDirectory(n), [...(byDir.get(layout.walDirectory(n)) ?? []), n]);
  const found = new Map<string, WalCandidate | null>();
  for (const names of byDir.values()) {
    const keys = names.map((n) => layout.walKey(n));
    let prefix = keys[0] ?? '';
    for (const k of keys) while (!k.startsWith(prefix)) prefix = prefix.slice(0, -1);
    const listed = new Map<string, string>();
    for await (const entry of store.list(prefix, { delimiter: '/' })) {
      if (entry.kind === 'object') listed.set(entry.key, `${entry.size} ${entry.lastModified?.getTime() ?? ''}`);
    }
    names.forEach((n, i) => {
      const c = chooseWal(keys[i]!, listed.keys(), options);
      found.set(n, c && { ...c, version: listed.get(c.key) });
    });
  }
  return found;
}

/** XLogLongPageHeaderData (little-endian): xlp_pageaddr @8, xlp_seg_size @32; 40 bytes in all. */
const LONG_HEADER_SIZE = 40;

/**
 * The first page of a segment read as PostgreSQL's long page header: the segment size it states,
 * the page address it holds and the one this segment name starts at; undefined when the size is no
 * valid segment size (or the name cannot exist with it). Only the two fields PostgreSQL's reader
 * relies on to place a segment are read (docs/format.md#segment-header): the magic, the flag bits
 * and the block size may change in a later version without making real WAL look foreign.
 */
function longPageHeader(walName: string, head: Buffer): { segmentSize: number; address: bigint; expected: bigint } | undefined {
  if (!isSegmentName(walName) || head.length < LONG_HEADER_SIZE) return undefined;
  const segmentSize = head.readUInt32LE(32);
  if (!isValidSegmentSize(segmentSize)) return undefined;
  const { log, seg } = parseSegmentName(walName);
  if (seg >= segmentsPerLogId(segmentSize)) return undefined;
  return { segmentSize, address: head.readBigUInt64LE(8), expected: (BigInt(log) << 32n) + BigInt(seg) * BigInt(segmentSize) };
}

/**
 * The segment size stated by the first page of a segment, when that page is PostgreSQL's long
 * page header for exactly this segment (its page address matches the name); otherwise undefined.
 */
export function headerSegmentSize(walName: string, head: Buffer): number | undefined {
  const h = longPageHeader(walName, head);
  return h && h.address === h.expected ? h.segmentSize : undefined;
}

const lsnText = (at: bigint): string => `${(at >> 32n).toString(16).toUpperCase()}/${(at & 0xffffffffn).toString(16).toUpperCase()}`;

/**
 * Counts the plain bytes and checks the first page of a segment or .partial file before more than
 * its 40 header bytes are written on (docs/format.md#segment-header). A segment that outgrows the
 * size its header states is stopped at once (docs/architecture.md, "WAL archiving and restore"):
 * a few KB of compressed zeros must not fill pg_wal's disk first.
 */
class PlainCheck {
  bytes = 0;
  head = Buffer.alloc(0);
  private stated: number | undefined;
  /** The segment whose long page header must come first: the name itself, or a .partial's segment. */
  private readonly segment: string | undefined;
  /**
   * A history file or a .backup has no first page stating its size: the most its kind may hold
   * stops it, so that an object inflating without end does not fill pg_wal's disk either
   * (docs/format.md#metadata-limits).
   */
  private readonly limit: number;

  constructor(private readonly what: string, private readonly walName: string) {
    this.limit = walFileMaxBytes(walName);
    // a .partial file is its segment, cut short by a timeline switch: its first page must be
    // that segment's too (barman serves it for the segment's name: docs/format.md#wal-restore)
    const segment = walName.replace(/\.partial$/i, '');
    this.segment = isSegmentName(segment) ? segment : undefined;
  }

  see(chunk: Buffer): void {
    if (this.segment !== undefined && this.head.length < LONG_HEADER_SIZE) {
      this.head = Buffer.concat([this.head, chunk.subarray(0, LONG_HEADER_SIZE - this.head.length)]);
      if (this.head.length === LONG_HEADER_SIZE) this.placeSegment(this.segment);
    }
    this.bytes += chunk.length;
    if (this.stated !== undefined && this.bytes > this.stated) {
      throw new GeneralError(`${this.what} is too long (more than the ${this.stated}-byte segment its first page states)`);
    }
    if (this.bytes > this.limit) {
      throw new GeneralError(`${this.what} is too long (more than ${this.limit} bytes, the most a WAL file of its kind may hold)`);
    }
  }

  /**
   * Every segment PostgreSQL writes starts with its long page header, whose page address is the
   * segment's own start: anything else under a segment's name (zeros, random bytes, an HTML page a
   * proxy answered with) PostgreSQL would take for the end of WAL and end recovery there, silently
   * short (docs/commands/wal-restore.md#what-postgresql-does-with-a-failed-restore).
   */
  private placeSegment(segment: string): void {
    const h = longPageHeader(segment, this.head);
    if (h === undefined) throw this.notSegment(segment);
    if (h.address !== h.expected) {
      throw new GeneralError(`${this.what} is another segment (its first page is at ${lsnText(h.address)}, ${this.walName} starts at ${lsnText(h.expected)})`);
    }
    this.stated = h.segmentSize;
  }

  private notSegment(segment: string): GeneralError {
    return new GeneralError(`${this.what} is not WAL segment ${segment} (it does not start with a long page header stating a segment size)`);
  }

  /**
   * No WAL file is ever empty (segments, .partial, .backup and .history files all hold data); a
   * segment must hold at least its long page header and have the size that header states. A
   * .partial file may be shorter, as barman accepts.
   */
  verify(compressed: boolean): void {
    if (this.bytes === 0) throw new GeneralError(`${this.what} is empty${compressed ? ' (no data after decompression)' : ''}`);
    if (this.segment !== undefined && this.head.length < LONG_HEADER_SIZE) throw this.notSegment(this.segment);
    const expected = this.stated;
    if (expected !== undefined && this.segment === this.walName && this.bytes !== expected) {
      const how = this.bytes < expected ? 'is truncated' : 'is too long';
      throw new GeneralError(`${this.what} ${how} (${this.bytes} bytes, its first page states a ${expected}-byte segment)`);
    }
  }
}

/**
 * Writes `source` to the open file `fd` with synchronous writes, small chunks gathered into 1 MiB
 * writes and large ones (an lz4 block decoded, 256 KiB) written from where they lie
 * (src/file-writer.ts). The answer's chunks arrive faster than a write stream's thread-pool round
 * trip per chunk (that cost a restore ~2x curl's time for the same GET, measured:
 * docs/benchmarks-history.md "One-shot WAL profile"), and a write to the page cache blocks for
 * microseconds.
 */
async function writeThrough(source: AsyncIterable<Buffer>, fd: number, check: PlainCheck, own: { error?: unknown }): Promise<void> {
  const writer = new CoalescingFileWriter(fd);
  for await (const chunk of source) {
    try {
      check.see(chunk);
      bytesMoved(chunk.length);
      writer.write(chunk);
    } catch (e) {
      // the pipeline then reports the streams it tears down as aborted: the caller keeps this cause
      // (only our own errors: the source's reach the caller through the pipeline as they are)
      own.error = e;
      throw e;
    }
  }
  try {
    writer.flush();
  } catch (e) {
    own.error = e;
    throw e;
  }
}

/**
 * Stream an object into `target` through its codec; returns the number of plain bytes written.
 * Everything goes to a temp file beside the target first: damaged objects (empty, truncated,
 * failing a checksum) leave neither the target nor the temp file behind. With `confirm`, the
 * checked file is renamed into place only if it resolves true (else removed, and -1 returned).
 */
export async function downloadTo(
  store: ObjectStore,
  candidate: WalCandidate,
  target: string,
  identities?: AgeIdentities,
  confirm?: Promise<boolean>,
): Promise<number> {
  const what = `WAL object ${candidate.key}`;
  // Refused before anything is written: PostgreSQL must never find a file it cannot use.
  if (candidate.encrypted && !identities) {
    throw new EncryptionKeyError(
      `${what} is encrypted (age) and no identity was given: use --encryption-identity-file or BARMAN_CLOUD_ENCRYPTION_IDENTITY_FILE`,
    );
  }
  // Anyone who can write the bucket can plant a plain object where an encrypted one belongs: with an
  // identity, plain WAL is refused unless asked for (docs/encryption.md#plain-objects).
  if (!candidate.encrypted && identities && !identities.allowUnencrypted) throw unencryptedRefused(what);
  const plainName = basename(plainWalKey(candidate.key).plain);
  const check = new PlainCheck(what, plainName);
  const source = await store.get(candidate.key);
  // Whole before it gets its name (src/atomic-file.ts): PostgreSQL replays it once it sees the name.
  // Synced first unless PostgreSQL syncs it itself (syncedByPostgres): a spool's file is handed out as it lies.
  const placed = await writeFileAtomic(
    target,
    async (fd) => {
      const own: { error?: unknown } = {};
      try {
        // pipeline() settles only once every stream has closed: nothing reads the answer after the temp is removed.
        // Decryption is a generator stage, not a Transform: it adds no stream of its own to the pipeline.
        const decrypt = candidate.encrypted ? (await import('../encryption/age.js')).decryptPieces(identities!, what) : undefined;
        const decompress: Transform | undefined = candidate.codec ? (await loadCodec(candidate.codec)).decompressStream() : undefined;
        const sink = (plain: AsyncIterable<Buffer>): Promise<void> => writeThrough(plain, fd, check, own);
        if (decrypt && decompress) await pipeline(source, decrypt, decompress, sink);
        else if (decrypt) await pipeline(source, decrypt, sink);
        else if (decompress) await pipeline(source, decompress, sink);
        else await pipeline(source, sink);
        check.verify(candidate.codec !== undefined);
      } catch (caught) {
        const e = own.error ?? caught;
        if (e instanceof CompressionFormatError) throw new GeneralError(e.describe(what), { cause: e });
        throw e;
      }
    },
    { temp: tempBeside(target), durable: !syncedByPostgres(target), confirm: confirm && (() => confirm) },
  );
  return placed ? check.bytes : -1;
}

/** Settled value or error, to decide once both of two concurrent requests are over. */
type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown };
const settle = <T>(p: Promise<T>): Promise<Settled<T>> => p.then((value) => ({ ok: true, value }), (error: unknown) => ({ ok: false, error }));

/**
 * One WAL file into `dest` as barman chooses it (findWal), without waiting for the listing before
 * the download: the uncompressed key is fetched meanwhile, and put in place only if the listing
 * names exactly that key (else the listing's choice is fetched after it). The LIST then costs no
 * time of its own for an uncompressed archive, and one 404 for a compressed one. Returns false
 * when the archive holds no such file.
 */
export async function restoreWal(
  store: ObjectStore,
  layout: ServerLayout,
  walName: string,
  dest: string,
  options: { noPartial?: boolean; identities?: AgeIdentities } = {},
): Promise<boolean> {
  const exact: WalCandidate = { key: layout.walKey(walName) };
  const listing = findWal(store, layout, walName, options);
  const confirmed = listing.then((c) => c !== null && c.key === exact.key && c.codec === undefined, () => false);
  // Both settle before anything is decided: no request or temp file outlives this call.
  const [listed, guessed] = await Promise.all([settle(listing), settle(downloadTo(store, exact, dest, options.identities, confirmed))]);
  if (!listed.ok) throw listed.error;
  const candidate = listed.value;
  if (candidate === null) return false;
  if (candidate.key === exact.key && candidate.codec === undefined) {
    if (guessed.ok && guessed.value >= 0) return true;
    // Listed, yet the GET failed: a damaged object's error stands; a 404 (withdrawn since) is
    // asked once more, as without the overlap.
    if (!guessed.ok && !(guessed.error instanceof NotFoundError)) throw guessed.error;
  }
  await downloadTo(store, candidate, dest, options.identities);
  return true;
}
