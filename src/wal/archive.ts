// Archiving one WAL file (spec §2.1, §6), with one deliberate difference from barman: an existing
// object for the same WAL file (under any compression suffix) is never silently replaced. Same
// content → success without an upload; different content → refusal (PostgreSQL's documented
// archive_command contract), unless overwriting is explicitly allowed.
import { createHash } from 'node:crypto';
import { basename } from 'node:path';
import { readFile } from 'node:fs/promises';
import { OperationError, PreconditionFailedError } from '../errors.js';
import { log } from '../log.js';
import type { ObjectStore, Tag } from '../storage/types.js';
import { contentMd5 } from '../storage/s3-common.js';
import type { ServerLayout } from '../catalog/layout.js';
import { WAL_SUFFIX, codecFromSuffix, loadCodec, type CodecName } from '../compression/index.js';
import { isHistoryFile } from './names.js';

export interface ArchiveOptions {
  codec?: CodecName;
  /** Resolved codec level (see compression/resolveLevel). */
  level?: number;
  tags?: Tag[];
  /** Tags for .history files instead of `tags` when non-empty (spec §11.2). */
  historyTags?: Tag[];
  /** Replace an existing object with different content (barman's behaviour). */
  allowOverwrite?: boolean;
  /** Azure block size / concurrency for large uploads (--max-block-size, --max-concurrency). */
  partSize?: number;
  concurrency?: number;
  singlePutMax?: number;
}

export type ArchiveOutcome = 'uploaded' | 'already-archived' | 'overwritten';

/** A WAL file read into memory (segments are at most 1 GiB, normally 16 MiB). */
export interface WalFile {
  name: string;
  data: Buffer;
  /** Computed on first use: only a conflict check or a spool marker needs it. */
  readonly sha256: string;
}

export async function readWalFile(path: string): Promise<WalFile> {
  const data = await readFile(path);
  let digest: string | undefined;
  return {
    name: basename(path),
    data,
    get sha256() {
      digest ??= sha256(data);
      return digest;
    },
  };
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Objects that hold this WAL file: the exact key plus one known compression suffix. */
export async function existingCopies(store: ObjectStore, layout: ServerLayout, walName: string): Promise<string[]> {
  const key = layout.walKey(walName);
  const found: string[] = [];
  for await (const entry of store.list(key, { delimiter: '/' })) {
    if (entry.kind !== 'object') continue;
    const rest = entry.key.slice(key.length);
    if (rest === '' || (codecFromSuffix(rest) !== undefined && WAL_SUFFIX[codecFromSuffix(rest)!] === rest)) found.push(entry.key);
  }
  return found;
}

async function storedDigest(store: ObjectStore, key: string): Promise<string> {
  const raw = await store.getBuffer(key);
  const codec = codecFromSuffix(key);
  const plain = codec ? await (await loadCodec(codec)).decompress(raw) : raw;
  return sha256(plain);
}

export async function archiveWal(
  store: ObjectStore,
  layout: ServerLayout,
  wal: WalFile,
  options: ArchiveOptions = {},
): Promise<ArchiveOutcome> {
  const suffix = options.codec ? WAL_SUFFIX[options.codec] : '';
  const key = layout.walKey(wal.name) + suffix;

  let overwrite = false;
  // The listing (network) overlaps the compression (thread pool) and the Content-MD5 of the body
  // (both S3 drivers send it; other providers do not use it): the digest waits one event-loop turn
  // (setImmediate), so the listing request is already on the wire while the main thread hashes.
  const [existing, [body, md5]] = await Promise.all([
    existingCopies(store, layout, wal.name),
    (options.codec ? loadCodec(options.codec).then((c) => c.compress(wal.data, options.level)) : Promise.resolve(wal.data))
      .then((b) => new Promise<[Buffer, string | undefined]>((resolve) => {
        setImmediate(() => resolve([b, store.provider === 'aws-s3' ? contentMd5(b) : undefined]));
      })),
  ]);
  if (existing.length > 0) {
    const verdict = await compareExisting(store, wal, existing, options);
    if (verdict === 'identical') return 'already-archived';
    overwrite = true;
  }

  const tags = isHistoryFile(wal.name) && options.historyTags?.length ? options.historyTags : options.tags;
  try {
    await store.put(key, body, {
      tags: tags?.length ? tags : undefined,
      ifNoneMatch: !overwrite,
      contentMd5: md5,
      partSize: options.partSize,
      concurrency: options.concurrency,
      singlePutMax: options.singlePutMax,
    });
  } catch (e) {
    if (!(e instanceof PreconditionFailedError)) throw e;
    // Another archiver stored it between our listing and our upload: judge what it stored.
    const verdict = await compareExisting(store, wal, [key], options);
    if (verdict === 'identical') return 'already-archived';
    await store.put(key, body, {
      tags: tags?.length ? tags : undefined, contentMd5: md5, partSize: options.partSize, concurrency: options.concurrency, singlePutMax: options.singlePutMax,
    });
  }
  if (overwrite) {
    // Leave exactly one copy, so that restore cannot pick the replaced content under another suffix.
    const stale = existing.filter((k) => k !== key);
    if (stale.length) await store.deleteMany(stale);
    return 'overwritten';
  }
  return 'uploaded';
}

/**
 * Decide about copies already in the archive: 'identical' when one holds the same bytes;
 * otherwise refuse (exit 1) unless overwriting is allowed.
 */
async function compareExisting(
  store: ObjectStore,
  wal: WalFile,
  keys: string[],
  options: ArchiveOptions,
): Promise<'identical' | 'overwrite'> {
  for (const k of keys) {
    if ((await storedDigest(store, k)) === wal.sha256) {
      log.info(`WAL file ${wal.name} is already archived with identical content as ${k}`);
      return 'identical';
    }
  }
  if (options.allowOverwrite) {
    log.warning(`Overwriting WAL file ${wal.name} in the archive (${keys.join(', ')}) with different content`);
    return 'overwrite';
  }
  throw new OperationError(
    `WAL file ${wal.name} is already archived with different content (${keys.join(', ')}); ` +
      'refusing to overwrite it (use --overwrite to replace it)',
  );
}
