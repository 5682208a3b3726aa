// Archiving one WAL file (docs/format.md#wal-archive), with one deliberate difference from barman: an existing
// object for the same WAL file (under any compression suffix) is never silently replaced. Same
// content → success without an upload; different content → refusal (PostgreSQL's documented
// archive_command contract), unless overwriting is explicitly allowed. After a conditional create,
// the segment's other objects are checked once more, so that two archivers racing under different
// suffixes cannot both report success for different bytes (docs/architecture.md, "One object per
// segment").
import { basename } from 'node:path';
import { Readable } from 'node:stream';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { AccessDeniedError, NotFoundError, ObjectTooLargeError, OperationError, PreconditionFailedError } from '../errors.js';
import { log } from '../log.js';
import type { ListEntry, ObjectStore, Tag } from '../storage/types.js';
import { chunkedToBuffer, piecesBody, readWhole, sha256Hex, type ChunkedBody } from '../storage/body.js';
import type { ServerLayout } from '../catalog/layout.js';
import { CompressionFormatError, WAL_SUFFIX, codecFromSuffix, loadCodec, type CodecName } from '../compression/index.js';
import { isHistoryFile } from '../xlog.js';
import { AGE_SUFFIX } from '../encryption/names.js';
import type { AgeIdentities } from '../encryption/age.js';
import { recordedWalEncryption, settleWalEncryption } from './encryption-mode.js';

export interface ArchiveOptions {
  codec?: CodecName;
  /** Resolved codec level (see compression/resolveLevel). */
  level?: number;
  tags?: Tag[];
  /** Tags for .history files instead of `tags` when non-empty (docs/format.md#tags). */
  historyTags?: Tag[];
  /** Replace an existing object with different content (barman's behaviour). */
  allowOverwrite?: boolean;
  /** Azure block size / concurrency for large uploads (--max-block-size, --max-concurrency). */
  partSize?: number;
  concurrency?: number;
  singlePutMax?: number;
  /** age recipients: the object is stored encrypted, as `<name><codec suffix>.age`. */
  recipients?: readonly string[];
  /** age identities, only to compare with an encrypted copy already archived. */
  identities?: AgeIdentities;
  /** Archive although the archive holds WAL of the other kind (plain vs encrypted). */
  allowMixedEncryption?: boolean;
  /** Listings of WAL directories shared between uploads (the --async worker); else one LIST per check. */
  listings?: WalListings;
  /** The archive's encryption record shared between uploads (the --async worker); else one GET per file. */
  encryptionRecord?: () => Promise<string | undefined | null>;
}

/**
 * The keys below a WAL directory prefix. `recent` may answer from a listing made before the call
 * (the pre-check: what it misses, the conditional create and the settle catch); `fresh` only from
 * one started after the call (the settle after our create relies on list-after-write).
 */
export interface WalListings {
  recent(dirPrefix: string): Promise<string[]>;
  fresh(dirPrefix: string): Promise<string[]>;
}

export type ArchiveOutcome = 'uploaded' | 'already-archived' | 'overwritten';

/** Bytes read at once: one reused buffer per pass over a file (see storage/body.ts for why). */
const CHUNK_SIZE = 256 << 10;

/**
 * A WAL file on disk (segments are at most 1 GiB, normally 16 MiB), read in chunks when needed rather
 * than held in one fresh Buffer: hashing and sending a 16 MiB segment then costs ~16 ms instead of
 * ~100 ms of page faults (measured, docs/architecture.md#decisions, "WAL files are read in chunks").
 */
export interface WalFile {
  name: string;
  path: string;
  /** Size when opened: every pass reads exactly this many bytes, or fails. */
  size: number;
  /** Hex SHA-256 of the content, computed on first use (one read pass). */
  readonly sha256: string;
  /** The content as an upload body (its SHA-256 read on first use). */
  body(): ChunkedBody;
  /** The whole content in one Buffer, for the codecs that compress a whole Buffer. */
  read(): Buffer;
}

function* fileChunks(path: string, size: number): Generator<Buffer> {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.allocUnsafeSlow(Math.min(CHUNK_SIZE, Math.max(1, size)));
    let at = 0;
    while (at < size) {
      const n = readSync(fd, buf, 0, Math.min(buf.length, size - at), at);
      if (n === 0) throw new OperationError(`WAL file ${path} shrank while it was read (${at} of ${size} bytes)`);
      at += n;
      yield buf.subarray(0, n);
    }
  } finally {
    closeSync(fd);
  }
}

export async function readWalFile(path: string): Promise<WalFile> {
  // Open and read one byte now, so that a missing, unreadable or non-regular file fails here with
  // the system's message, before any request is made. Synchronous, as the reads that follow are:
  // node:fs/promises would be loaded for this alone (~2 ms of CPU per call; docs/benchmarks-history.md).
  const fd = openSync(path, 'r');
  let size: number;
  try {
    size = fstatSync(fd).size;
    readSync(fd, Buffer.alloc(1), 0, 1, 0);
  } finally {
    closeSync(fd);
  }
  let digest: string | undefined;
  const wal: WalFile = {
    name: basename(path),
    path,
    size,
    get sha256() {
      return (digest ??= sha256Hex(fileChunks(path, size)));
    },
    body: () => ({
      kind: 'chunked',
      length: size,
      get sha256() {
        return wal.sha256;
      },
      chunks: () => fileChunks(path, size),
    }),
    read: () => chunkedToBuffer(wal.body()),
  };
  return wal;
}

/** Objects that hold this WAL file: the exact key plus one known compression suffix, each also encrypted (`.age`). */
async function existingCopies(
  store: ObjectStore, layout: ServerLayout, walName: string, listings?: WalListings, when: 'recent' | 'fresh' = 'fresh',
): Promise<string[]> {
  const key = layout.walKey(walName);
  const found: string[] = [];
  const keys = listings
    ? (await listings[when](key.slice(0, key.lastIndexOf('/') + 1))).filter((k) => k.startsWith(key))
    : objectKeys(store.list(key, { delimiter: '/' }));
  for await (const k of keys) {
    // only keys below the one asked for: a listing that strays (another server's copy of the same
    // name) must not pass for ours (docs/format.md#listed-keys)
    if (!k.startsWith(key)) continue;
    let rest = k.slice(key.length);
    if (rest.endsWith(AGE_SUFFIX)) rest = rest.slice(0, -AGE_SUFFIX.length);
    if (rest === '' || (codecFromSuffix(rest) !== undefined && WAL_SUFFIX[codecFromSuffix(rest)!] === rest)) found.push(k);
  }
  return found;
}

async function* objectKeys(entries: AsyncIterable<ListEntry>): AsyncGenerator<string> {
  for await (const e of entries) if (e.kind === 'object') yield e.key;
}

/**
 * The SHA-256 of a stored copy's plain bytes, or a word that matches no digest. A copy is read and
 * decompressed only up to what a copy of a `plainSize`-byte file can take (snappy's worst case is
 * +17%): anything larger is different content, never a reason to fill memory
 * (docs/format.md#metadata-limits).
 */
async function storedDigest(store: ObjectStore, key: string, plainSize: number, identities?: AgeIdentities): Promise<string> {
  let raw: Buffer;
  try {
    raw = await store.getBuffer(key, { maxBytes: Math.ceil(plainSize * 1.25) + (1 << 20) });
  } catch (e) {
    if (e instanceof ObjectTooLargeError) return 'too-large';
    throw e;
  }
  if (key.endsWith(AGE_SUFFIX)) {
    if (!identities) {
      throw new OperationError(
        `WAL file ${basename(key).slice(0, 24)} is already archived encrypted as ${key} and cannot be compared without ` +
          'an identity: give --encryption-identity-file (or BARMAN_CLOUD_ENCRYPTION_IDENTITY_FILE), or use --overwrite',
      );
    }
    const { decryptBuffer } = await import('../encryption/age.js');
    raw = await decryptBuffer(identities, raw, `WAL object ${key}`);
    key = key.slice(0, -AGE_SUFFIX.length);
  }
  const codec = codecFromSuffix(key);
  if (!codec) return sha256Hex([raw]);
  try {
    const inflating = Readable.from([raw]).pipe((await loadCodec(codec)).decompressStream());
    return sha256Hex([await readWhole(inflating, { key, maxBytes: plainSize })]);
  } catch (e) {
    if (e instanceof ObjectTooLargeError) return 'too-large';
    if (!(e instanceof CompressionFormatError)) throw e;
    // A damaged copy holds no segment's bytes: it matches nothing, so it is refused like any
    // different content (or replaced under --overwrite).
    log.warning(e.describe(`WAL object ${key}`));
    return 'unreadable';
  }
}

/** The compressed file as an upload body: the codec's output pieces. */
async function compressedBody(wal: WalFile, codecName: CodecName, level: number | undefined): Promise<ChunkedBody> {
  const codec = await loadCodec(codecName);
  return piecesBody(codec.compressChunks
    ? await codec.compressChunks(wal.body().chunks(), level)
    : [await codec.compress(wal.read(), level)]);
}

/** A listing refused to this credential counts as empty (as in the pre-check); any other failure stands. */
function unlisted(e: unknown): string[] {
  if (!(e instanceof AccessDeniedError)) throw e;
  return [];
}

/** The pre-check found copies of the segment: the create is abandoned and they are judged. */
class CopiesFound extends Error {
  constructor(readonly keys: string[]) {
    super('copies of the WAL file are already archived');
  }
}

export async function archiveWal(
  store: ObjectStore,
  layout: ServerLayout,
  wal: WalFile,
  options: ArchiveOptions = {},
  mayGate = true,
): Promise<ArchiveOutcome> {
  const suffix = (options.codec ? WAL_SUFFIX[options.codec] : '') + (options.recipients ? AGE_SUFFIX : '');
  const key = layout.walKey(wal.name) + suffix;
  const tags = isHistoryFile(wal.name) && options.historyTags?.length ? options.historyTags : options.tags;
  const putOptions = {
    tags: tags?.length ? tags : undefined,
    partSize: options.partSize,
    concurrency: options.concurrency,
    singlePutMax: options.singlePutMax,
  };

  // The pre-check (a LIST of the segment's copies) is on the wire first; the compression (thread
  // pool) and the SHA-256 an S3 upload is signed with run meanwhile: the hashing waits one
  // event-loop turn (setImmediate).
  const listing = existingCopies(store, layout, wal.name, options.listings, 'recent').catch((e: unknown) => {
    // A write-only credential (s3:PutObject alone) may not list: the conditional create below is
    // then the only guard against overwriting, and a conflict it finds is judged by reading.
    if (!(e instanceof AccessDeniedError)) throw e;
    log.debug(`Cannot list the copies of ${wal.name} (${e.message}); relying on the conditional upload`);
    return [] as string[];
  });
  // Awaited below, but the gated put awaits the body first: a listing failing meanwhile (a missing
  // bucket) must not become an unhandled rejection that kills the process with a stack trace.
  void listing.catch(() => undefined);
  const body = (options.codec ? compressedBody(wal, options.codec, options.level) : Promise.resolve(wal.body()))
    .then(async (b) => (options.recipients ? (await import('../encryption/age.js')).encryptedBody(b, options.recipients) : b))
    .then((b) => new Promise<ChunkedBody>((resolve) => setImmediate(() => {
      store.prepareBody?.(b);
      resolve(b);
    })));

  // Where the store can hold back an upload's last byte, the pre-check's answer releases it: the
  // LIST costs no time of its own, yet nothing is created before it has found no other copy.
  // --overwrite needs the copies before it uploads (it deletes the others after), so it waits.
  // The archive's encryption record is read alongside (one small GET, no added round trip) and
  // settled before anything is created: plain and encrypted WAL never mix silently.
  const encryptionSettled = (options.encryptionRecord?.() ?? recordedWalEncryption(store, layout)).then((recorded) =>
    settleWalEncryption(store, layout, options.recipients ? 'age' : 'none', recorded, options.allowMixedEncryption === true));
  void encryptionSettled.catch(() => undefined); // awaited below; a put failing first must not leave it unhandled
  const gated = mayGate && store.holdsCommit === true && !options.allowOverwrite;
  let existing: string[] = [];
  let overwrite = false;
  if (!gated) {
    [existing] = await Promise.all([listing, body, encryptionSettled]);
    if (existing.length > 0) {
      const verdict = await compareExisting(store, wal, existing, options);
      if (verdict === 'identical') return 'already-archived';
      overwrite = verdict === 'overwrite';
    }
  }
  try {
    await store.put(key, await body, {
      ...putOptions,
      ifNoneMatch: !overwrite,
      ...(gated ? { commitGate: Promise.all([listing, encryptionSettled]).then(([keys]) => { if (keys.length > 0) throw new CopiesFound(keys); }) } : {}),
    });
  } catch (e) {
    if (e instanceof CopiesFound) {
      // Found before anything was created: judged as without the gate (no --overwrite here).
      if ((await compareExisting(store, wal, e.keys, options)) === 'identical') return 'already-archived';
      // Withdrawn meanwhile by their archivers: start again, this time the pre-check first.
      return archiveWal(store, layout, wal, options, false);
    }
    if (!(e instanceof PreconditionFailedError)) throw e;
    // Another archiver stored it between our listing and our upload (or we could not list): judge
    // what it stored, and every other copy of the segment the pre-check may not have seen.
    const keys = [...new Set([key, ...(await listing), ...(gated ? await existingCopies(store, layout, wal.name, options.listings).catch(unlisted) : [])])];
    const verdict = await compareExisting(store, wal, keys, options).catch((err: unknown) => {
      if (!(err instanceof AccessDeniedError)) throw err;
      if (options.allowOverwrite) return 'overwrite' as const;
      throw new OperationError(
        `WAL file ${wal.name} is already archived as ${key} and this credential cannot read it to compare ` +
          `(${err.message}); grant read access (s3:GetObject) or use --overwrite`,
        { cause: err },
      );
    });
    if (verdict === 'identical') return 'already-archived';
    if (verdict === 'absent') {
      // It was there and is gone again (withdrawn by its archiver): PostgreSQL will call again.
      throw new OperationError(`WAL file ${wal.name} changed in the archive while it was archived (${key}); try again`);
    }
    await store.put(key, await body, putOptions);
    existing = keys;
    overwrite = true;
  }
  if (overwrite) {
    // Leave exactly one copy, so that restore cannot pick the replaced content under another suffix.
    const stale = existing.filter((k) => k !== key);
    if (stale.length) await store.deleteMany(stale);
    return 'overwritten';
  }
  await settleConcurrentCopies(store, layout, wal, key, options);
  return 'uploaded';
}

/**
 * Called after our conditional create of `ownKey` succeeded. Another archiver may have created the
 * same segment under another suffix meanwhile (the conditional create only guards one key). Every
 * creator lists after its create, and list-after-write is consistent, so of two creators at least
 * one sees the other's object. A sibling with the same content is harmless (kept: deleting it, or
 * ours, could remove the copy a third archiver has just reported as archived). A sibling with
 * different content makes us withdraw our own object and fail; the other creator either saw ours
 * and does the same (both fail, PostgreSQL retries), or did not see it and keeps its success, whose
 * object nobody deletes. Hence at most one content survives, and it is the content of whoever
 * reported success. We delete only what we created.
 */
async function settleConcurrentCopies(
  store: ObjectStore, layout: ServerLayout, wal: WalFile, ownKey: string, options: ArchiveOptions,
): Promise<void> {
  let siblings: string[];
  try {
    siblings = (await existingCopies(store, layout, wal.name, options.listings)).filter((k) => k !== ownKey);
  } catch (e) {
    // A write-only credential may not list: keep the conditional create as the only guard.
    if (!(e instanceof AccessDeniedError)) throw e;
    log.debug(`Cannot list the copies of ${wal.name} (${e.message}); not checking for a concurrent archiver`);
    return;
  }
  for (const k of siblings) {
    const digest = await storedDigest(store, k, wal.size, options.identities).catch((e: unknown) => {
      if (e instanceof NotFoundError) return undefined; // withdrawn by its own archiver
      throw e;
    });
    if (digest === undefined || digest === wal.sha256) continue;
    await store.delete(ownKey);
    throw new OperationError(
      `WAL file ${wal.name} was archived concurrently with different content as ${k}; ` +
        `our copy ${ownKey} was withdrawn, refusing to archive it`,
    );
  }
}

/**
 * Decide about copies already in the archive: 'identical' when every one that still exists holds
 * the same bytes, 'absent' when none exists any more; otherwise refuse (exit 1) unless overwriting
 * is allowed. A mix of same and different content is refused too: which one is the archive's?
 */
async function compareExisting(
  store: ObjectStore,
  wal: WalFile,
  keys: string[],
  options: ArchiveOptions,
): Promise<'identical' | 'overwrite' | 'absent'> {
  const different: string[] = [];
  let same: string | undefined;
  for (const k of keys) {
    const digest = await storedDigest(store, k, wal.size, options.identities).catch((e: unknown) => {
      if (e instanceof NotFoundError) return undefined; // withdrawn by a concurrent archiver
      throw e;
    });
    if (digest === undefined) continue;
    if (digest === wal.sha256) same ??= k;
    else different.push(k);
  }
  if (different.length === 0) {
    if (same === undefined) return 'absent';
    log.info(`WAL file ${wal.name} is already archived with identical content as ${same}`);
    return 'identical';
  }
  if (options.allowOverwrite) {
    log.warning(`Overwriting WAL file ${wal.name} in the archive (${keys.join(', ')}) with different content`);
    return 'overwrite';
  }
  throw new OperationError(
    `WAL file ${wal.name} is already archived with different content (${different.join(', ')}); ` +
      'refusing to overwrite it (use --overwrite to replace it)',
  );
}
