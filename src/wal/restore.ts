// Fetching WAL files (docs/format.md#wal-restore): barman's candidate rules, decompression by suffix, and an
// atomic write (temp file beside the target, fsync, rename) so that a crash never leaves a
// truncated segment where PostgreSQL would read it. Damaged objects (empty, truncated, failing
// their codec's checksum, a segment shorter than its own header states) are refused: exit 4.
import { createWriteStream, promises as fs } from 'node:fs';
import { basename } from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { GeneralError } from '../errors.js';
import { log } from '../log.js';
import type { ServerLayout } from '../catalog/layout.js';
import type { ObjectStore } from '../storage/types.js';
import { CompressionFormatError, codecFromSuffix, loadCodec, WAL_SUFFIX, type CodecName } from '../compression/index.js';
import { isSegmentName, isValidSegmentSize, isWalName, parseSegmentName, segmentsPerLogId } from './names.js';
import { tempBeside } from './temp-files.js';

export interface WalCandidate {
  key: string;
  codec?: CodecName;
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
  let candidate: WalCandidate | null = null;
  for await (const entry of store.list(key, { delimiter: '/' })) {
    if (entry.kind !== 'object') continue;
    if (entry.key === key) {
      candidate = { key };
      continue;
    }
    const codec = codecFromSuffix(entry.key);
    const plain = codec ? entry.key.slice(0, -WAL_SUFFIX[codec].length) : entry.key;
    const name = basename(plain);
    if (!isWalName(name)) {
      log.warning(`Unknown WAL file: ${entry.key}`);
      continue;
    }
    if (name.endsWith('.backup')) continue;
    if (name.endsWith('.partial') && options.noPartial) continue;
    return { key: entry.key, codec };
  }
  return candidate;
}

/** XLogLongPageHeaderData (little-endian): xlp_info @2, xlp_pageaddr @8, xlp_seg_size @32, xlp_xlog_blcksz @36. */
const LONG_HEADER_SIZE = 40;
const XLP_LONG_HEADER = 0x0002;
const XLP_ALL_FLAGS = 0x000f;

/**
 * The segment size stated by the first page of a segment, when that page is PostgreSQL's long
 * page header for exactly this segment (its page address matches the name); otherwise undefined.
 */
export function headerSegmentSize(walName: string, head: Buffer): number | undefined {
  if (!isSegmentName(walName) || head.length < LONG_HEADER_SIZE) return undefined;
  const info = head.readUInt16LE(2);
  if ((info & XLP_LONG_HEADER) === 0 || (info & ~XLP_ALL_FLAGS) !== 0) return undefined;
  const segmentSize = head.readUInt32LE(32);
  const blockSize = head.readUInt32LE(36);
  if (!isValidSegmentSize(segmentSize) || blockSize < 1024 || blockSize > 65536 || (blockSize & (blockSize - 1)) !== 0) return undefined;
  const { log, seg } = parseSegmentName(walName);
  if (seg >= segmentsPerLogId(segmentSize)) return undefined;
  const address = (BigInt(log) << 32n) + BigInt(seg) * BigInt(segmentSize);
  return head.readBigUInt64LE(8) === address ? segmentSize : undefined;
}

/** Counts the plain bytes and keeps the first page header's bytes for the checks after the copy. */
class PlainCheck extends Transform {
  bytes = 0;
  head = Buffer.alloc(0);

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.head.length < LONG_HEADER_SIZE) {
      this.head = Buffer.concat([this.head, chunk.subarray(0, LONG_HEADER_SIZE - this.head.length)]);
    }
    this.bytes += chunk.length;
    callback(null, chunk);
  }

  /**
   * No WAL file is ever empty (segments, .partial, .backup and .history files all hold data); a
   * segment whose first page states its size must have that size. Other sizes are accepted, as
   * barman does (`.partial` files in particular).
   */
  verify(what: string, walName: string, compressed: boolean): void {
    if (this.bytes === 0) throw new GeneralError(`${what} is empty${compressed ? ' (no data after decompression)' : ''}`);
    const expected = headerSegmentSize(walName, this.head);
    if (expected !== undefined && this.bytes !== expected) {
      const how = this.bytes < expected ? 'is truncated' : 'is too long';
      throw new GeneralError(`${what} ${how} (${this.bytes} bytes, its first page states a ${expected}-byte segment)`);
    }
  }
}

/**
 * Stream an object into `target` through its codec; returns the number of plain bytes written.
 * Everything goes to a temp file beside the target first: damaged objects (empty, truncated,
 * failing a checksum) leave neither the target nor the temp file behind.
 */
export async function downloadTo(store: ObjectStore, candidate: WalCandidate, target: string): Promise<number> {
  const tmp = tempBeside(target);
  const what = `WAL object ${candidate.key}`;
  const plainName = basename(candidate.codec ? candidate.key.slice(0, -WAL_SUFFIX[candidate.codec].length) : candidate.key);
  const check = new PlainCheck();
  try {
    const source = await store.get(candidate.key);
    // pipeline() settles only once every stream has closed, so the rm below finds the file.
    const out = createWriteStream(tmp, { flags: 'wx', mode: 0o600 });
    try {
      if (candidate.codec) await pipeline(source, (await loadCodec(candidate.codec)).decompressStream(), check, out);
      else await pipeline(source, check, out);
    } catch (e) {
      if (e instanceof CompressionFormatError) throw new GeneralError(e.describe(what), { cause: e });
      throw e;
    }
    check.verify(what, plainName, candidate.codec !== undefined);
    const fh = await fs.open(tmp, 'r+');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.rename(tmp, target);
    return check.bytes;
  } catch (e) {
    await fs.rm(tmp, { force: true });
    throw e;
  }
}
